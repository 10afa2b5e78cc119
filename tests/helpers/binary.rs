//! The real `contrail` binary as a child process.

use super::{ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback port (bound and released; a child node binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `contrail serve` child process on the shipped config, with its own data dir and port.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

impl Server {
    /// Starts `contrail serve` storing in `data`.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Like [`Server::start`], with extra `CONTRAIL__…` variables.
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_contrail"))
            .args([
                "serve",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
            ])
            .env("CONTRAIL__STORAGE__PATH", data)
            .env("CONTRAIL__HTTP__BIND", "127.0.0.1:0")
            .env("CONTRAIL__AUTH__ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CONTRAIL__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CONTRAIL__LOG__FORMAT", "json")
            .env("RUST_LOG", "warn,contrail=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("contrail starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let echo = std::env::var_os("TEST_NODE_LOG").is_some();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                if let Some(addr) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["http_addr"].as_str().map(str::to_owned))
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the node reported its address");
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// SIGKILL.
    pub fn kill9(self) {
        drop(self);
    }
}

impl Drop for Server {
    /// SIGKILL: no chance to flush anything (and no process left behind by a failed test).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
