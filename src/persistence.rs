//! Durable storage: one embedded store per node, behind a narrow interface.
//!
//! Nothing outside this module sees the engine. Callers read typed records by key and write
//! [`WriteBatch`]es; one log writer applies batches atomically in commit order and acknowledges
//! each once a sync (`fdatasync`) that covers it has returned — group commit: every batch queued
//! while one group syncs shares the next sync.

mod codec;
mod engine;
pub mod keys;
mod log;
pub mod migrate;
mod replicated;
mod store;

pub use replicated::{Decided, Proposal, Replicate, Verdict};
pub use store::{DEFAULT_CACHE_BYTES, Durable, Fence, Store, StoreError, WriteBatch};

/// Encodes a record as the store writes it (for records written through a consensus log
/// rather than a [`WriteBatch`]).
pub fn encode_record<T: serde::Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(key, value)
}
