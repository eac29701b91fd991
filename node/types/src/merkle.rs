//! Merkle trees over transaction hashes, as in RFC 6962 section 2.1: leaves are hashed with a
//! 0x00 prefix and inner nodes with 0x01, so a leaf can never pass for an inner node. The root
//! kubechain commits to also binds the leaf count (`0x02 || count as u64 LE || tree hash`): in a
//! plain RFC 6962 tree a proof for a leaf in a full left subtree verifies for several counts, and
//! a receipt must fail when any byte of it changes.

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::Hash;

fn leaf_hash(leaf: &Hash) -> Hash {
    Hash::digest_parts(&[&[0x00], leaf.as_bytes()])
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::digest_parts(&[&[0x01], left.as_bytes(), right.as_bytes()])
}

/// Largest power of two strictly below `n` (n >= 2): RFC 6962's split point.
fn split_point(n: usize) -> usize {
    let mut k = 1;
    // `k < n - k` rather than `2 * k < n`: a proof's leaf count comes from outside, and near
    // `usize::MAX` the doubling would overflow.
    while k < n - k {
        k *= 2;
    }
    k
}

/// The root over `leaves` (transaction hashes in block order), bound to their count.
pub fn root(leaves: &[Hash]) -> Hash {
    counted_root(leaves.len() as u64, &tree_hash(leaves))
}

fn counted_root(leaf_count: u64, tree_hash: &Hash) -> Hash {
    Hash::digest_parts(&[&[0x02], &leaf_count.to_le_bytes(), tree_hash.as_bytes()])
}

/// RFC 6962 Merkle tree hash; the empty tree hashes to SHA-256 of the empty string.
fn tree_hash(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Hash::digest(&[]),
        [leaf] => leaf_hash(leaf),
        _ => {
            let k = split_point(leaves.len());
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// Proof that one leaf is at `index` in a tree of `leaf_count` leaves: the sibling hashes from
/// the leaf up to the root (RFC 6962 audit path).
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema,
)]
pub struct MerkleProof {
    pub index: u64,
    pub leaf_count: u64,
    pub path: Vec<Hash>,
}

impl MerkleProof {
    /// The proof for `leaves[index]`, or `None` if `index` is out of range.
    pub fn new(leaves: &[Hash], index: usize) -> Option<MerkleProof> {
        if index >= leaves.len() {
            return None;
        }
        let mut path = Vec::new();
        audit_path(leaves, index, &mut path);
        Some(MerkleProof { index: index as u64, leaf_count: leaves.len() as u64, path })
    }

    /// Recomputes the root from `leaf` and the path; true if it equals `expected_root`.
    pub fn verify(&self, leaf: &Hash, expected_root: &Hash) -> bool {
        if self.index >= self.leaf_count {
            return false;
        }
        let mut siblings = self.path.iter().rev();
        match fold_path(self.index, self.leaf_count, leaf, &mut siblings) {
            Some(computed) => {
                siblings.next().is_none() && counted_root(self.leaf_count, &computed) == *expected_root
            }
            None => false,
        }
    }
}

fn audit_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    if index < k {
        audit_path(&leaves[..k], index, path);
        path.push(tree_hash(&leaves[k..]));
    } else {
        audit_path(&leaves[k..], index - k, path);
        path.push(tree_hash(&leaves[..k]));
    }
}

/// Walks down the same splits as `audit_path`, consuming siblings from the top of the tree.
fn fold_path<'a>(
    index: u64,
    count: u64,
    leaf: &Hash,
    siblings_top_down: &mut impl Iterator<Item = &'a Hash>,
) -> Option<Hash> {
    if count == 1 {
        return Some(leaf_hash(leaf));
    }
    let k = split_point(count as usize) as u64;
    let sibling = siblings_top_down.next()?;
    if index < k {
        Some(node_hash(&fold_path(index, k, leaf, siblings_top_down)?, sibling))
    } else {
        Some(node_hash(sibling, &fold_path(index - k, count - k, leaf, siblings_top_down)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Hash::digest(&(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves() {
        for n in 1..=33 {
            let leaves = leaves(n);
            let root = root(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = MerkleProof::new(&leaves, index).unwrap();
                assert!(proof.verify(leaf, &root), "n={n} index={index}");
            }
        }
    }

    #[test]
    fn tampered_proofs_fail() {
        let leaves = leaves(11);
        let root = root(&leaves);
        let proof = MerkleProof::new(&leaves, 6).unwrap();
        assert!(!proof.verify(&leaves[5], &root), "wrong leaf");
        assert!(!proof.verify(&leaves[6], &Hash::digest(b"x")), "wrong root");
        let mut moved = proof.clone();
        moved.index = 7;
        assert!(!moved.verify(&leaves[6], &root), "wrong index");
        let mut flipped = proof.clone();
        flipped.path[1].0[0] ^= 1;
        assert!(!flipped.verify(&leaves[6], &root), "tampered sibling");
        let mut short = proof.clone();
        short.path.pop();
        assert!(!short.verify(&leaves[6], &root), "truncated path");
        let mut long = proof.clone();
        long.path.push(Hash::ZERO);
        assert!(!long.verify(&leaves[6], &root), "extended path");
        let mut bigger = proof;
        bigger.leaf_count = 12;
        assert!(!bigger.verify(&leaves[6], &root), "wrong leaf count");
    }

    #[test]
    fn huge_leaf_count_is_rejected_without_overflow() {
        let proof = MerkleProof { index: 0, leaf_count: u64::MAX, path: vec![Hash::ZERO; 3] };
        assert!(!proof.verify(&Hash::ZERO, &Hash::ZERO));
        assert_eq!(split_point(usize::MAX), 1 << (usize::BITS - 1));
    }

    #[test]
    fn out_of_range_index_has_no_proof() {
        assert!(MerkleProof::new(&leaves(3), 3).is_none());
        assert!(MerkleProof::new(&[], 0).is_none());
    }

    #[test]
    fn leaf_cannot_pass_as_inner_node() {
        let leaves = leaves(2);
        let inner = node_hash(&leaf_hash(&leaves[0]), &leaf_hash(&leaves[1]));
        assert_eq!(tree_hash(&leaves), inner);
        assert_ne!(tree_hash(&[inner]), inner);
    }
}
