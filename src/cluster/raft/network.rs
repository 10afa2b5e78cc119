//! How a partition's consensus messages reach the other replicas: encoded, through a
//! [`Transport`] that carries bytes to a named member and brings its answer back.

use super::types::{Member, PartitionId, Replicated};
use futures::future::BoxFuture;
use openraft::AnyError;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Carries one partition's encoded consensus message to a member and returns its encoded
/// answer, or why it could not.
pub trait Transport: Send + Sync + 'static {
    /// Sends `message` for `partition` to `to`, waiting at most `timeout` for the answer.
    fn call(
        &self,
        to: &Member,
        partition: PartitionId,
        message: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, Undelivered>>;
}

/// Why a consensus message got no answer. The engine backs off from an unreachable member but
/// retries a slow one at once (backing off from a follower whose sync was slow would skip
/// heartbeats long enough to start an election).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// No connection to the member (down, or cut off).
    Unreachable(String),
    /// The member did not answer in time.
    Timeout(String),
}

/// A consensus message between replicas.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Replicate entries (or a heartbeat).
    Append(AppendEntriesRequest<Replicated>),
    /// Ask for a vote.
    Vote(VoteRequest<u64>),
    /// One chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<Replicated>),
    /// From the leader handing the group over: stand for election now (see `balance`).
    TakeLead,
}

/// The answer to a [`Message`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// To [`Message::Append`].
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To [`Message::Vote`].
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To [`Message::Snapshot`].
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The receiver has no replica of the partition (or could not read the message).
    Refused(String),
    /// To [`Message::TakeLead`]: the receiver stands for election.
    Standing,
}

/// Makes a partition's connections to its replicas.
pub(super) struct Network {
    transport: Arc<dyn Transport>,
    partition: PartitionId,
}

impl Network {
    /// The network of `partition` over `transport`.
    pub(super) fn new(transport: Arc<dyn Transport>, partition: PartitionId) -> Self {
        Self {
            transport,
            partition,
        }
    }
}

impl RaftNetworkFactory<Replicated> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &Member) -> Connection {
        Connection {
            transport: self.transport.clone(),
            partition: self.partition,
            target,
            member: node.clone(),
        }
    }
}

/// One partition's connection to one replica.
pub(super) struct Connection {
    transport: Arc<dyn Transport>,
    partition: PartitionId,
    target: u64,
    member: Member,
}

type Failed<E = openraft::error::Infallible> = RPCError<u64, Member, RaftError<u64, E>>;

impl Connection {
    /// Sends `message` and returns the answer, or the error the engine expects when there is
    /// none.
    async fn send<E: std::error::Error>(
        &self,
        message: Message,
        option: &RPCOption,
    ) -> Result<Answer, Failed<E>> {
        let bytes = postcard::to_allocvec(&message)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .call(&self.member, self.partition, bytes, option.hard_ttl())
            .await
            .map_err(|e| match e {
                Undelivered::Unreachable(why) => {
                    RPCError::Unreachable(Unreachable::from(AnyError::error(why)))
                }
                Undelivered::Timeout(why) => {
                    RPCError::Network(NetworkError::from(AnyError::error(why)))
                }
            })?;
        let answer: Answer =
            postcard::from_bytes(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match answer {
            Answer::Refused(why) => Err(RPCError::Unreachable(Unreachable::from(AnyError::error(
                why,
            )))),
            answer => Ok(answer),
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> Failed<E> {
        RPCError::Network(NetworkError::from(AnyError::error(format!(
            "node {} answered a different message",
            self.member.name
        ))))
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<u64, E>) -> Failed<E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.member.clone(),
            e,
        ))
    }
}

impl RaftNetwork<Replicated> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Replicated>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Failed> {
        match self.send(Message::Append(rpc), &option).await? {
            Answer::Append(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Replicated>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Failed<InstallSnapshotError>> {
        match self.send(Message::Snapshot(rpc), &option).await? {
            Answer::Snapshot(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, Failed> {
        match self.send(Message::Vote(rpc), &option).await? {
            Answer::Vote(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected()),
        }
    }
}
