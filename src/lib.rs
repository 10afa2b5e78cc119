//! Contrail: a flight and ticket booking backend built as an actor system.
//!
//! See `docs/DESIGN.md` for the architecture. Layers, each using only the ones below it:
//! [`http`] (warp) → [`cluster`] (placement and forwarding, `ractor_cluster`) → [`actors`]
//! (ractor; reaches other nodes only through its router port) → [`persistence`] (fjall) →
//! [`domain`] (pure rules). [`startup`] builds a node from [`settings`].
#![warn(missing_docs)]

pub mod actors;
pub mod channels;
pub mod cluster;
pub mod domain;
pub mod http;
pub mod metrics_catalog;
pub mod persistence;
pub mod settings;
pub mod startup;
pub mod telemetry;
