//! Data directories written by sled, the engine before this one.
//!
//! sled 0.34 never fsyncs (an acknowledged write could be lost on power loss), has had no
//! release since 2021 and calls itself beta, so Contrail no longer runs on it. A node refuses
//! to start on a sled directory (rather than silently start empty beside it) and names the
//! converter, `tools/migrate-sled`: a separate program, so that sled and the unmaintained crates
//! it brings stay out of the node's build. It reads the sled records and hands them to
//! [`convert`], which copies every record as it is (same keys, same encoded values with their
//! epochs) into a new store, verifies and syncs the copy, and then puts the new store in the
//! directory's place while the original is kept beside it.

use super::StoreError;
use super::engine::Engine;
use std::path::{Path, PathBuf};

/// Records copied per atomic batch.
const CHUNK: usize = 1_000;

/// Whether `path` holds a sled database (sled 0.34 keeps a `conf` and a `db` file there).
pub fn is_sled_dir(path: &Path) -> bool {
    path.join("conf").is_file() && path.join("db").is_file()
}

/// Refuses to open a sled directory, naming the way forward.
pub(crate) fn refuse_sled(path: &Path) -> Result<(), StoreError> {
    if is_sled_dir(path) {
        return Err(StoreError::Io(format!(
            "{dir} holds a sled database written by an earlier Contrail. sled never fsyncs, so \
             Contrail no longer uses it. Convert it with `cargo run --release --manifest-path \
             tools/migrate-sled/Cargo.toml -- {dir}` (the original is kept as {backup}), then \
             start the node again.",
            dir = path.display(),
            backup = backup_of(path).display(),
        )));
    }
    Ok(())
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Records copied.
    pub records: u64,
    /// Where the original sled directory now is.
    pub backup: PathBuf,
}

fn backup_of(dir: &Path) -> PathBuf {
    sibling(dir, "sled-backup")
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

/// One record of an old store as (key, value) bytes, or why it could not be read.
pub type OldRecord = Result<(Vec<u8>, Vec<u8>), String>;

/// The records of an old store, in key order, read twice: to copy them and to check the copy.
pub trait OldStore {
    /// Every record, in ascending key order.
    fn records(&self) -> Box<dyn Iterator<Item = OldRecord> + '_>;
}

/// Converts the sled directory `dir`, whose records `old` reads, in place: afterwards `dir` is a
/// store this build opens, with every record, and the sled original is at `dir.sled-backup`.
/// Nothing is changed if any step fails (a half-written copy is removed); the node must not be
/// running.
pub fn convert(dir: &Path, old: &dyn OldStore) -> Result<Migrated, StoreError> {
    let io = |what: &str, e: std::io::Error| StoreError::Io(format!("{what}: {e}"));
    if !is_sled_dir(dir) {
        return Err(StoreError::Io(format!(
            "{} is not a sled data directory",
            dir.display()
        )));
    }
    let backup = backup_of(dir);
    if backup.exists() {
        return Err(StoreError::Io(format!(
            "{} already exists; move it away first",
            backup.display()
        )));
    }
    let staging = sibling(dir, "migrating");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io("removing an earlier attempt", e))?;
    }
    let records = match copy(old, &staging) {
        Ok(records) => records,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    std::fs::rename(dir, &backup).map_err(|e| io("moving the sled directory aside", e))?;
    if let Err(e) = std::fs::rename(&staging, dir) {
        let _ = std::fs::rename(&backup, dir);
        return Err(io("moving the new store into place", e));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the parent directory", e))?;
    }
    Ok(Migrated { records, backup })
}

/// Copies every record of `old` into a new store at `to`, synced, and checks the copy record
/// by record.
fn copy(old: &dyn OldStore, to: &Path) -> Result<u64, StoreError> {
    let read_err = |e: String| StoreError::Io(format!("reading the old database: {e}"));
    let new = Engine::open(to, 64 << 20, false)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut records = 0u64;
    for item in old.records() {
        let (k, v) = item.map_err(read_err)?;
        let key = String::from_utf8(k).map_err(|k| StoreError::Corrupt {
            key: String::from_utf8_lossy(k.as_bytes()).into_owned(),
            reason: "key is not UTF-8".into(),
        })?;
        chunk.push((key, Some(v)));
        records += 1;
        if chunk.len() == CHUNK {
            new.apply(std::mem::take(&mut chunk))?;
        }
    }
    new.apply(chunk)?;
    new.persist(true)?;
    let mut checked = 0u64;
    for (item, copy) in old.records().zip(new.scan("")) {
        let (k, v) = item.map_err(read_err)?;
        let (ck, cv) = copy?;
        if *k != *ck || *v != *cv {
            return Err(StoreError::Io(format!(
                "the copy of {} differs from the original",
                String::from_utf8_lossy(&k)
            )));
        }
        checked += 1;
    }
    if checked != records || new.count("") != records {
        return Err(StoreError::Io(format!(
            "copied {records} records but the new store holds {}",
            new.count("")
        )));
    }
    Ok(records)
}
