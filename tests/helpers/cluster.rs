//! Clusters of real `contrail` processes on loopback: members with their own data dirs and
//! ports, started one after the other and waited for until every member sees them all up and
//! the partitions' leaders are spread over them.
#![allow(dead_code, unreachable_pub)]

use super::binary::{Server, free_port};
use super::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, client_of, eventually, flight, flight_spec};
use contrail::cluster::raft::partition_of;
use contrail_client::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const COOKIE: &str = "cluster-test-cookie";
/// Partitions of every test cluster (few: each is a consensus group on a 2-core machine).
pub const PARTITIONS: u16 = 8;

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
            ("CONTRAIL__CLUSTER__PARTITIONS", "8"),
            ("CONTRAIL__CLUSTER__RAFT_HEARTBEAT_MS", "100"),
            ("CONTRAIL__CLUSTER__ELECTION_TIMEOUT_MS", "600"),
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

/// Like [`cluster`], with extra variables for every member's process; returns once every
/// partition has its replicas and the leaders are spread over the members.
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
    let replicas = env
        .iter()
        .find(|(k, _)| *k == "CONTRAIL__CLUSTER__REPLICAS")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(3)
        .min(names.len());
    let admin = members[0].app.admin().await;
    balanced(&members.iter().collect::<Vec<_>>(), &admin, replicas).await;
    members
}

/// The placement tag of an entity id (`flt_<tag><rest>`).
pub fn tag_of(id: &str) -> &str {
    &id[4..20]
}

/// The partition of an entity id.
pub fn partition_of_id(id: &str) -> usize {
    usize::from(partition_of(tag_of(id), PARTITIONS))
}

/// The leader of every partition, if each of `nodes` names one for it, they all name the same,
/// and that leader reports `replicas` voting replicas and no learner (a member that holds no
/// replica of a partition knows only who leads it, so each partition is read from its leader).
pub async fn leaders(nodes: &[&Member], admin: &Client, replicas: usize) -> Option<Vec<String>> {
    leaders_where(nodes, admin, replicas, false).await
}

/// [`leaders`], and if `preferred`, only once every partition is led by its preferred leader
/// (as its leader reports it).
async fn leaders_where(
    nodes: &[&Member],
    admin: &Client,
    replicas: usize,
    preferred: bool,
) -> Option<Vec<String>> {
    let mut views = Vec::new();
    for node in nodes {
        let view = node.app.signed_as(admin).cluster().await.ok()?;
        if view.partitions.len() != usize::from(PARTITIONS) {
            return None;
        }
        views.push((node.name.clone(), view));
    }
    let mut found = Vec::with_capacity(usize::from(PARTITIONS));
    for p in 0..usize::from(PARTITIONS) {
        let named: Vec<Option<&String>> = views
            .iter()
            .map(|(_, v)| v.partitions[p].leader.as_ref())
            .collect();
        let leader = named.first().copied().flatten()?;
        if named.iter().any(|n| *n != Some(leader)) {
            return None;
        }
        let (_, own) = views.iter().find(|(name, _)| name == leader)?;
        let group = &own.partitions[p];
        if group.replicas.len() != replicas
            || !group.learners.is_empty()
            || (preferred && group.preferred_leader.as_ref() != Some(leader))
        {
            return None;
        }
        found.push(leader.clone());
    }
    Some(found)
}

/// Waits (bounded) until [`leaders_where`] answers.
async fn leaders_until(
    nodes: &[&Member],
    admin: &Client,
    replicas: usize,
    preferred: bool,
) -> Option<Vec<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while tokio::time::Instant::now() < deadline {
        if let Some(found) = leaders_where(nodes, admin, replicas, preferred).await {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Waits (bounded) until [`leaders`] answers.
pub async fn formed(nodes: &[&Member], admin: &Client, replicas: usize) -> Vec<String> {
    match leaders_until(nodes, admin, replicas, false).await {
        Some(found) => found,
        None => panic!(
            "the partitions' groups did not form:\n{}",
            describe(nodes, admin).await
        ),
    }
}

/// Waits (bounded) until the groups are formed and every partition is led by its preferred
/// leader (the leaders hand partitions to their preferred replicas a few seconds after forming;
/// each handover makes the partition answer 503 for a moment, which is over then).
pub async fn balanced(nodes: &[&Member], admin: &Client, replicas: usize) -> Vec<String> {
    match leaders_until(nodes, admin, replicas, true).await {
        Some(found) if nodes.iter().all(|n| found.contains(&n.name)) => found,
        found => panic!(
            "the partitions' leaders did not spread over the members ({found:?}):\n{}",
            describe(nodes, admin).await
        ),
    }
}

/// Every node's view of every partition (leader, voters, learners), for a failure's report.
pub async fn describe(nodes: &[&Member], admin: &Client) -> String {
    let mut out = String::new();
    for node in nodes {
        match node.app.signed_as(admin).cluster().await {
            Ok(view) => {
                out.push_str(&format!("{}:", node.name));
                for p in &view.partitions {
                    out.push_str(&format!(
                        " [{} {:?} (preferred {:?}) {:?} {:?}]",
                        p.id, p.leader, p.preferred_leader, p.replicas, p.learners
                    ));
                }
                out.push('\n');
            }
            Err(e) => out.push_str(&format!("{}: {e}\n", node.name)),
        }
    }
    out
}

/// The node that leads an entity's partition, by `leaders` (from [`formed`]).
pub fn owner_of(id: &str, leaders: &[String]) -> String {
    leaders[partition_of_id(id)].clone()
}

/// A new customer (signed up through `app`) whose partition `node` leads.
pub async fn customer_on(app: &TestApp, leaders: &[String], node: &str) -> Client {
    for _ in 0..40 {
        let (id, client) = app.customer().await;
        if owner_of(&id, leaders) == node {
            return client;
        }
    }
    panic!("no customer of 40 landed on {node}")
}

/// Creates flights (as `admin`) until each of `wanted` leads one's partition; returns them.
pub async fn flights_owned_by(
    admin: &Client,
    aircraft: &str,
    leaders: &[String],
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
        let owner = owner_of(&id, leaders);
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
