//! `/api/v1/cluster` (admin): the operator's view of membership, draining a node, removing a
//! dead one, and (only
//! with `cluster.fault_injection`) cutting links for partition tests.

use super::auth::with_role;
use super::error::ApiError;
use super::{Ctx, Handled, Response, body, json, with};
use crate::actors::services::{Counts, EntityCounts};
use crate::cluster::View;
use crate::cluster::wire::CallBody;
use crate::domain::user::{Role, User};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// One cluster member.
#[derive(Serialize, ToSchema)]
pub(super) struct MemberView {
    pub(super) node_id: String,
    pub(super) addr: String,
    /// `up` or `down` as seen from the answering node.
    pub(super) status: &'static str,
    /// The epoch of the member list (each join, drain or removal makes the next).
    pub(super) epoch: u64,
    /// What the member stores (absent when it cannot be asked).
    pub(super) entities: Option<EntityCounts>,
}

/// One replicated partition as the answering node knows it.
#[derive(Serialize, ToSchema)]
pub(super) struct PartitionView {
    pub(super) id: u16,
    /// Its leader (absent while none is known).
    pub(super) leader: Option<String>,
    /// The consensus term.
    pub(super) term: u64,
    /// The last index of the answering node's copy of the log.
    pub(super) last_log_index: Option<u64>,
    /// The last index the answering node applied.
    pub(super) last_applied: Option<u64>,
    /// The last index known committed: on the leader the highest one a majority of the
    /// replicas has on disk; elsewhere the last applied.
    pub(super) commit_index: Option<u64>,
    /// On the leader: log entries the slowest replica lacks (absent elsewhere).
    pub(super) lag: Option<u64>,
    /// The members holding a voting replica.
    pub(super) replicas: Vec<String>,
    /// Members whose new replica is still catching up (it votes once it has).
    pub(super) learners: Vec<String>,
    /// The replica that should lead it, so that every member leads its share: a leader that
    /// is not hands the partition over once that replica has caught up (absent for the member
    /// list's group, whose leader serves no requests).
    pub(super) preferred_leader: Option<String>,
}

/// The operator's view of the cluster.
#[derive(Serialize, ToSchema)]
pub(super) struct ClusterView {
    pub(super) node_id: String,
    pub(super) epoch: u64,
    /// Whether the answering node is a member and reaches a majority.
    pub(super) serving: bool,
    pub(super) members: Vec<MemberView>,
    /// The replicated partitions (empty on a node without a cluster).
    pub(super) partitions: Vec<PartitionView>,
    /// The consensus group that decides the member list (in a cluster; its `id` follows the
    /// partitions').
    pub(super) member_list: Option<PartitionView>,
}

impl From<crate::cluster::raft::PartitionStatus> for PartitionView {
    fn from(p: crate::cluster::raft::PartitionStatus) -> Self {
        Self {
            id: p.partition,
            leader: p.leader,
            term: p.term,
            last_log_index: p.last_log_index,
            last_applied: p.last_applied,
            commit_index: p.committed,
            lag: p.lag,
            replicas: p.replicas,
            learners: p.learners,
            preferred_leader: None,
        }
    }
}

/// `{"node_id": "node-b"}`: the member to drain or remove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"node_id": "node-b"}))]
pub(super) struct NodeRequest {
    node_id: String,
}

/// `{"blocked": ["node-b"], "for_ms": 5000}`: the peers whose traffic this node drops, and
/// for how long (at most a minute; the fault heals by itself).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"blocked": ["node-b"], "for_ms": 5000}))]
pub(super) struct FaultRequest {
    blocked: BTreeSet<String>,
    #[schema(minimum = 1, maximum = 60000)]
    for_ms: u64,
}

/// The longest fault that can be injected.
const MAX_FAULT_MS: u64 = 60_000;

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let view = warp::path!("api" / "v1" / "cluster")
        .and(warp::get())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and_then(view);
    let drain = warp::path!("api" / "v1" / "cluster" / "drain")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(drain);
    let remove = warp::path!("api" / "v1" / "cluster" / "remove")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(remove);
    let faults = warp::path!("api" / "v1" / "cluster" / "faults")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx))
        .and(body::json())
        .and_then(faults);
    view.or(drain).unify().or(remove).unify().or(faults).unify()
}

/// The cluster's members with status, epoch and entity counts (admin).
#[utoipa::path(get, path = "/api/v1/cluster", operation_id = "cluster_view", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = ClusterView), (status = 403)))]
async fn view(_admin: User, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &cluster_view(&ctx).await))
}

/// Members, their state and what each owns (asked of every member that is up).
pub(super) async fn cluster_view(ctx: &Ctx) -> ClusterView {
    let cluster = &ctx.cluster;
    let current = cluster.view();
    let mut members = Vec::new();
    for (node, addr, up) in cluster.members() {
        let entities = if node == cluster.node() {
            Some(ctx.services.counts().await)
        } else if let (true, Some(gateway)) = (up, cluster.peer_gateway(&node)) {
            let body = CallBody::Gather(Counts.into());
            match cluster.call(&node, &gateway, body).await {
                Ok(bytes) => crate::cluster::wire::decode(&bytes).ok(),
                Err(_) => None,
            }
        } else {
            None
        };
        members.push(MemberView {
            node_id: node,
            addr,
            status: if up { "up" } else { "down" },
            epoch: current.epoch,
            entities,
        });
    }
    let replication = cluster.replication();
    let preferred = replication
        .map(|r| r.preferred_leaders(&current.members))
        .unwrap_or_default();
    let partitions = replication
        .map(|r| r.status())
        .unwrap_or_default()
        .into_iter()
        .map(|status| {
            let wanted = preferred
                .get(usize::from(status.partition))
                .cloned()
                .flatten();
            PartitionView {
                preferred_leader: wanted,
                ..PartitionView::from(status)
            }
        })
        .collect();
    let member_list = replication.map(|r| PartitionView::from(r.member_list_status()));
    ClusterView {
        node_id: cluster.node().to_owned(),
        epoch: current.epoch,
        serving: cluster.serving(),
        members,
        partitions,
        member_list,
    }
}

/// Takes a member out of the member list (admin); each partition's leader then moves its
/// replicas to the others (new replicas catch up before the drained one leaves the group), so
/// the node can be stopped with nothing lost once `GET /api/v1/cluster` shows no replica on it.
/// 503 while the member list's group has no majority.
#[utoipa::path(post, path = "/api/v1/cluster/drain", operation_id = "drain_node", tag = "ops", security(("bearer" = [])),
    request_body = NodeRequest, responses((status = 200, body = ClusterView), (status = 403),
        (status = 404, description = "`not_found`: no such member"), (status = 409, description = "`last_member`: the only member cannot be drained"), (status = 503)))]
async fn drain(admin: User, ctx: Ctx, req: NodeRequest) -> Handled {
    drain_node(&ctx, &req.node_id).await?;
    view(admin, ctx).await
}

/// Takes a member out of the member list (its replicas then move to the others).
pub(super) async fn drain_node(ctx: &Ctx, node_id: &str) -> Result<(), ApiError> {
    let cluster = &ctx.cluster;
    let current = cluster.view();
    if !current.contains(node_id) {
        return Err(ApiError::NotFound);
    }
    if current.members.len() < 2 {
        return Err(ApiError::Conflict {
            code: "last_member",
            message: "the last member cannot be drained".into(),
        });
    }
    let edit = crate::cluster::roster::Edit::Leave {
        node: node_id.to_owned(),
    };
    let next: View = crate::cluster::roster::change(cluster, edit)
        .await
        .map_err(ApiError::Unavailable)?;
    tracing::info!(node = ?node_id, epoch = next.epoch, "node drained");
    Ok(())
}

/// Takes a member that is gone for good (down, its disk lost) out of the cluster (admin): every
/// partition it held a replica of gets one on another member, caught up from the others. Only
/// while it is down, and only while the member list's group has a majority.
#[utoipa::path(post, path = "/api/v1/cluster/remove", operation_id = "remove_node", tag = "ops", security(("bearer" = [])),
    request_body = NodeRequest, responses((status = 200, body = ClusterView), (status = 403),
        (status = 404, description = "`not_found`: no such member"),
        (status = 409, description = "`node_up`: the node answers (drain it instead)"),
        (status = 503, description = "the member list's group has no majority, or no leader yet")))]
async fn remove(admin: User, ctx: Ctx, req: NodeRequest) -> Handled {
    remove_node(&ctx, &req.node_id).await?;
    view(admin, ctx).await
}

/// Removes a dead member (see [`remove`]).
pub(super) async fn remove_node(ctx: &Ctx, node_id: &str) -> Result<(), ApiError> {
    use crate::cluster::roster::{RemoveError, remove_dead};
    match remove_dead(&ctx.cluster, node_id).await {
        Ok(_) => Ok(()),
        Err(RemoveError::NotMember(_)) => Err(ApiError::NotFound),
        Err(e @ RemoveError::Up(_)) => Err(ApiError::Conflict {
            code: "node_up",
            message: e.to_string(),
        }),
        Err(RemoveError::Unavailable(why)) => Err(ApiError::Unavailable(why)),
    }
}

/// Drops all traffic with the given peers (admin; 404 unless `cluster.fault_injection`).
#[utoipa::path(post, path = "/api/v1/cluster/faults", operation_id = "inject_faults", tag = "ops", security(("bearer" = [])),
    request_body = FaultRequest, responses((status = 200, body = super::ops::Status), (status = 400), (status = 403), (status = 404)))]
async fn faults(_admin: User, ctx: Ctx, req: FaultRequest) -> Handled {
    if !ctx.settings.cluster.fault_injection {
        return Err(ApiError::NotFound.into());
    }
    if req.for_ms == 0 || req.for_ms > MAX_FAULT_MS {
        return Err(ApiError::InvalidRequest(format!("for_ms: must be 1..={MAX_FAULT_MS}")).into());
    }
    ctx.cluster
        .set_blocked(req.blocked, std::time::Duration::from_millis(req.for_ms));
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}
