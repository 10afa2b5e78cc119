//! Contrail: a flight and ticket booking backend built as an actor system.
//!
//! See `DESIGN.md` in the team's shared docs for the architecture. Layers, top to bottom:
//! [`http`] (warp), [`actors`] (ractor), [`domain`] (pure rules) and [`persistence`] (sled).
#![warn(missing_docs)]

pub mod actors;
pub mod cluster;
pub mod domain;
pub mod http;
pub mod loadgen;
pub mod persistence;
pub mod settings;
pub mod startup;
pub mod telemetry;
