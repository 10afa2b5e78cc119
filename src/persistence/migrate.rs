//! Data directories written by sled, the engine before this one.
//!
//! sled 0.34 never fsyncs (an acknowledged write could be lost on power loss), has had no
//! release since 2021 and calls itself beta, so Contrail no longer runs on it. A node refuses
//! to start on a sled directory (rather than silently start empty beside it), and
//! `contrail migrate --from-sled DIR` converts one: every record is copied as it is (same keys,
//! same encoded values with their epochs) into a new store, the copy is verified and synced,
//! and then the new store takes the directory's place while the original is kept beside it.

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
             Contrail no longer uses it. Convert it with `contrail migrate --from-sled {dir}` \
             (the original is kept as {backup}), then start the node again.",
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

/// Converts the sled directory `dir` in place: afterwards `dir` is a store this build opens,
/// with every record, and the sled original is at `dir.sled-backup`. Nothing is changed if
/// any step fails (a half-written copy is removed); the node must not be running.
pub fn from_sled(dir: &Path) -> Result<Migrated, StoreError> {
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
    let copied = copy(dir, &staging);
    let records = match copied {
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

/// Copies every record of the sled database at `from` into a new store at `to`, synced, and
/// checks the copy record by record.
fn copy(from: &Path, to: &Path) -> Result<u64, StoreError> {
    let sled_err = |e: sled::Error| StoreError::Io(format!("reading the sled database: {e}"));
    let old = sled::Config::new().path(from).open().map_err(sled_err)?;
    let new = Engine::open(to, 64 << 20, false)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut records = 0u64;
    for item in old.iter() {
        let (k, v) = item.map_err(sled_err)?;
        let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: "key is not UTF-8".into(),
        })?;
        chunk.push((key, Some(v.to_vec())));
        records += 1;
        if chunk.len() == CHUNK {
            new.apply(std::mem::take(&mut chunk))?;
        }
    }
    new.apply(chunk)?;
    new.persist(true)?;
    let mut checked = 0u64;
    for (item, copy) in old.iter().zip(new.scan("")) {
        let (k, v) = item.map_err(sled_err)?;
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
