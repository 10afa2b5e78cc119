//! Actors that keep nothing between messages. The payment, notification, accounts and catalog
//! actors (and the cluster's gateway and index publisher) own what they serve in the store, or
//! behind locks that outlive an incarnation, so a restart loses nothing and ractor's per-actor
//! state would stay `()`. They implement [`Stateless`] — one `handle` — and run as a
//! [`StatelessActor`], instead of each repeating ractor's four-part `Actor` impl.

use ractor::{Actor, ActorProcessingErr, ActorRef, Message};

/// An actor that handles each message on its own.
pub trait Stateless: Send + Sync + 'static {
    /// The messages it handles.
    type Msg: Message;

    /// Runs once the actor is up, before its first message; nothing unless overridden.
    fn started(&self, _myself: &ActorRef<Self::Msg>) {}

    /// Handles one message. Failures are answered to the caller; a panic means the actor is
    /// broken and its supervisor restarts it.
    fn handle(&self, message: Self::Msg) -> impl Future<Output = ()> + Send;
}

/// Runs a [`Stateless`] handler as a ractor actor.
#[derive(Clone)]
pub struct StatelessActor<A>(pub A);

impl<A: Stateless> Actor for StatelessActor<A> {
    type Msg = A::Msg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        self.0.started(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.0.handle(message).await;
        Ok(())
    }
}
