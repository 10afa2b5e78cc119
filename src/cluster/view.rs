//! The membership view: who the members are, and the epoch that numbers this version of the
//! list. The member list's consensus group decides every change (a join, a drain, a removal:
//! `roster`), each a new view with the next epoch; heartbeats gossip it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of the member list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Increases with every change; 0 means "not part of any cluster yet".
    pub epoch: u64,
    /// Member node ids and their node-to-node addresses.
    pub members: BTreeMap<String, String>,
}

impl View {
    /// A cluster of one: `node` alone, at epoch 1.
    pub fn founding(node: &str, addr: &str) -> Self {
        Self {
            epoch: 1,
            members: [(node.to_owned(), addr.to_owned())].into(),
        }
    }

    /// Whether `node` is a member.
    pub fn contains(&self, node: &str) -> bool {
        self.members.contains_key(node)
    }

    /// How many members make a majority.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The next view, with `node` added (or its address updated).
    pub fn with(&self, node: &str, addr: &str) -> Self {
        let mut next = self.clone();
        next.epoch += 1;
        next.members.insert(node.to_owned(), addr.to_owned());
        next
    }

    /// The next view, without `node`.
    pub fn without(&self, node: &str) -> Self {
        let mut next = self.clone();
        next.epoch += 1;
        next.members.remove(node);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majorities() {
        let one = View::founding("a", "x:1");
        assert_eq!(one.majority(), 1);
        let three = one.with("b", "x:2").with("c", "x:3");
        assert_eq!((three.epoch, three.majority()), (3, 2));
        assert_eq!(three.with("d", "x:4").majority(), 3);
        assert_eq!(three.without("c").members.len(), 2);
    }
}
