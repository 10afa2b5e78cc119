//! The real `contrail` binary as a child process.
#![allow(unreachable_pub)]

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
    /// The process (or the tracer running it).
    pub child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Whether `child` is a tracer whose child is the node.
    traced: bool,
}

impl Server {
    /// Starts `contrail serve` storing in `data`.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Like [`Server::start`], with extra `CONTRAIL__…` variables.
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_contrail")),
            data,
            env,
            false,
        )
    }

    /// Like [`Server::start_with`], run under `strace` with `strace_args` (e.g. `-o FILE`).
    pub fn start_traced(data: &Path, env: &[(&str, &str)], strace_args: &[&str]) -> Self {
        let mut strace = Command::new("strace");
        strace
            .args(strace_args)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_contrail"));
        Self::spawn(strace, data, env, true)
    }

    /// `contrail serve` as run by `command` (the binary, or a tracer in front of it).
    fn spawn(mut command: Command, data: &Path, env: &[(&str, &str)], traced: bool) -> Self {
        let mut child = command
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
            .env("RUST_LOG", "warn,contrail=info,warp::filters::trace=off")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("contrail starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Echoed lines name their node by its data directory.
        let who = data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::thread::spawn(move || {
            let echo = std::env::var_os("TEST_NODE_LOG").is_some();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{who}] {line}");
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
            traced,
        }
    }

    /// SIGKILL.
    pub fn kill9(self) {
        drop(self);
    }
}

impl Drop for Server {
    /// SIGKILL: no chance to flush anything (and no process left behind by a failed test).
    /// A traced node is killed by its own PID first (killing only the tracer would detach it
    /// and leave it running); the tracer then exits by itself.
    fn drop(&mut self) {
        if self.traced {
            let pid = self.child.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for node in children.split_whitespace() {
                let _ = Command::new("kill").args(["-9", node]).status();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
