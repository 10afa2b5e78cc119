//! Clusters of real `contrail` processes on loopback: members with their own data dirs and
//! ports, started one after the other and waited for until every member sees them all up.
#![allow(dead_code, unreachable_pub)]

use super::binary::{Server, free_port};
use super::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, client_of, eventually, flight, flight_spec};
use contrail::cluster::placement;
use contrail_client::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const COOKIE: &str = "cluster-test-cookie";

/// One node of a test cluster: its process, data directory and cluster address.
pub struct Member {
    pub name: String,
    pub port: u16,
    pub data: PathBuf,
    pub seeds: Vec<u16>,
    /// Extra variables for the process (beyond the cluster's own).
    pub env: Vec<(String, String)>,
    pub server: Option<Server>,
    pub app: TestApp,
}

impl Member {
    pub fn start(name: &str, root: &Path, seeds: &[u16]) -> Self {
        Self::start_with(name, root, seeds, &[])
    }

    /// Like [`Member::start`], with extra variables for the process.
    pub fn start_with(name: &str, root: &Path, seeds: &[u16], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let data = root.join(name);
        let mut member = Self {
            name: name.to_owned(),
            port,
            data,
            seeds: seeds.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            server: None,
            app: client_of("http://127.0.0.1:1"),
        };
        member.launch();
        member
    }

    pub fn launch(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let seeds = self
            .seeds
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![
            ("CONTRAIL__CLUSTER__NODE_ID", self.name.as_str()),
            ("CONTRAIL__CLUSTER__LISTEN", listen.as_str()),
            ("CONTRAIL__CLUSTER__COOKIE", COOKIE),
            ("CONTRAIL__CLUSTER__HEARTBEAT_MS", "150"),
            ("CONTRAIL__CLUSTER__DOWN_AFTER_MS", "1200"),
            ("CONTRAIL__CLUSTER__FAULT_INJECTION", "true"),
            ("CONTRAIL__ACTORS__CALL_TIMEOUT_MS", "3000"),
        ];
        if !seeds.is_empty() {
            env.push(("CONTRAIL__CLUSTER__SEEDS", seeds.as_str()));
        }
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let server = Server::start_with(&self.data, &env);
        self.app = client_of(&server.base);
        self.server = Some(server);
    }

    pub fn kill9(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill9();
        }
    }
}

/// Waits until every member reports `n` members, all up, and serves.
pub async fn settled(members: &[&Member], n: usize) {
    for m in members {
        let ok = eventually(Duration::from_secs(60), || async {
            let ready = m.app.api().ready().await.is_ok();
            let admin = m.app.api().signin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
            let Ok(admin) = admin else { return false };
            let view = m.app.api().with_token(&admin.token).cluster().await;
            ready
                && view.is_ok_and(|v| {
                    v.members.len() == n && v.members.iter().all(|x| x.status == "up")
                })
        })
        .await;
        assert!(ok, "{} did not see {n} members up", m.name);
    }
}

/// Starts `names[0]` as the founder and the rest joining through it, one after the other.
pub async fn cluster(root: &Path, names: &[&str]) -> Vec<Member> {
    cluster_with(root, names, &[]).await
}

/// Like [`cluster`], with extra variables for every member's process.
pub async fn cluster_with(root: &Path, names: &[&str], env: &[(&str, &str)]) -> Vec<Member> {
    let first = Member::start_with(names[0], root, &[], env);
    let seed = first.port;
    let mut members = vec![first];
    settled(&members.iter().collect::<Vec<_>>(), 1).await;
    for name in &names[1..] {
        members.push(Member::start_with(name, root, &[seed], env));
        let n = members.len();
        settled(&members.iter().collect::<Vec<_>>(), n).await;
    }
    members
}

/// The owner of an entity id under a member list.
pub fn owner_of(id: &str, members: &[&str]) -> String {
    let tag = &id[4..20];
    placement::owner(members.iter().copied(), tag)
        .expect("owner")
        .to_owned()
}

/// A new customer (signed up through `app`) whose records live on `node` of `members`.
pub async fn customer_on(app: &TestApp, members: &[&str], node: &str) -> Client {
    for _ in 0..40 {
        let (id, client) = app.customer().await;
        if owner_of(&id, members) == node {
            return client;
        }
    }
    panic!("no customer of 40 landed on {node}")
}

/// Creates flights (as `admin`) until each of `wanted` owners has one; returns them.
pub async fn flights_owned_by(
    admin: &Client,
    aircraft: &str,
    members: &[&str],
    wanted: &[&str],
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for i in 0..60 {
        let spec = flight_spec(
            aircraft,
            "DEL",
            "BOM",
            "2031-03-01T08:00:00Z",
            120,
            5000 + i,
        );
        let id = flight(admin, &spec).await;
        let owner = owner_of(&id, members);
        if wanted.contains(&owner.as_str()) {
            found.entry(owner).or_insert(id);
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    assert_eq!(found.len(), wanted.len(), "no flight landed on some node");
    found
}
