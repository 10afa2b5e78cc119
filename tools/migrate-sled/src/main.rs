//! `contrail-migrate-sled DIR`: converts the sled data directory `DIR` of an earlier Contrail to
//! the store this build of the node opens, in place; the original is kept as `DIR.sled-backup`.
//! The node must not be running.

use contrail::persistence::migrate::{OldRecord, OldStore, convert, is_sled_dir};
use std::path::PathBuf;
use std::process::ExitCode;

/// The records of a sled database, in key order.
struct Sled(sled::Db);

impl OldStore for Sled {
    fn records(&self) -> Box<dyn Iterator<Item = OldRecord> + '_> {
        Box::new(self.0.iter().map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| e.to_string())
        }))
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: contrail-migrate-sled DIR   (DIR: the old storage.path)");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    // Checked before opening: sled would create an empty database in any other directory.
    if !is_sled_dir(&dir) {
        eprintln!("{} is not a sled data directory", dir.display());
        return ExitCode::FAILURE;
    }
    let db = match sled::Config::new().path(&dir).open() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("opening the sled database in {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    match convert(&dir, &Sled(db)) {
        Ok(done) => {
            println!(
                "converted {} records in {}; the sled original is at {}",
                done.records,
                dir.display(),
                done.backup.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrating {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
