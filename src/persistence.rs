//! Durable storage: one embedded sled store per node, behind a narrow interface.
//!
//! Nothing outside this module sees a sled type. Callers read typed records by key and write
//! [`WriteBatch`]es; a batch is applied atomically at once (so later reads see it) and is
//! acknowledged only after a flush that started after it has returned (group commit: many
//! batches share one flush).

mod codec;
mod group_commit;
pub mod keys;
mod store;

pub use store::{Durable, Fence, Store, StoreError, WriteBatch};
