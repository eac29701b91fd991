//! kubechain's durable state, in one RocksDB database with a column family per kind of data.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `blocks` | height (u64 big-endian) | Borsh `CertifiedBlock` (block + commit certificate) |
//! | `block_hashes` | block hash | height (u64 big-endian) |
//! | `tx_index` | transaction hash | Borsh `(height u64, index u32)` |
//! | `state` | application key | application value |
//! | `journal` | height, view (u64 BE each), kind (u8) | Borsh consensus `Record` |
//! | `meta` | name | genesis, tip height, schedule, current view record; `rule_change/` + height (u64 BE): Borsh `RuleChange` of each block that changed the rules (what receipts carry) |
//!
//! A committed block is one synced `WriteBatch` holding the block, its certificate, its index
//! entries, its state changes and the new tip, so a crash at any instant leaves either all of it
//! or none. Consensus journal records are synced before the promise they back is sent.

use std::collections::BTreeMap;
use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use kubechain_consensus::{CertifiedBlock, Record, Recovered, Schedule};
use kubechain_types::encoding::{decode, encode};
use kubechain_types::{Block, CommitCertificate, Genesis, Hash, RuleChange};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};

const BLOCKS: &str = "blocks";
const BLOCK_HASHES: &str = "block_hashes";
const TX_INDEX: &str = "tx_index";
const STATE: &str = "state";
const JOURNAL: &str = "journal";
const META: &str = "meta";
const COLUMN_FAMILIES: [&str; 6] = [BLOCKS, BLOCK_HASHES, TX_INDEX, STATE, JOURNAL, META];

const META_GENESIS: &[u8] = b"genesis";
const META_TIP: &[u8] = b"tip";
const META_SCHEDULE: &[u8] = b"schedule";
const META_VIEW: &[u8] = b"view";
/// Followed by the height of a block that changed the rules: receipts carry those blocks.
const META_RULE_CHANGE: &[u8] = b"rule_change/";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// Also what a store written with another encoding reads as (block headers gained
    /// `rules_hash` before 1.0): the node stops with this error instead of guessing.
    #[error(
        "stored {what} is corrupt, or was written by a kubechain version with another encoding: {detail}"
    )]
    Corrupt { what: &'static str, detail: String },
    #[error(
        "the data directory holds chain {stored:?} (genesis {stored_hash}), not {wanted:?} (genesis {wanted_hash})"
    )]
    OtherChain { stored: String, stored_hash: Hash, wanted: String, wanted_hash: Hash },
    #[error("block {height} does not follow the stored tip {tip}")]
    OutOfOrder { height: u64, tip: u64 },
}

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// Everything one committed block changes, written atomically.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    pub block: &'a Block,
    pub certificate: &'a CommitCertificate,
    /// The validator schedule, when this block changed it.
    pub schedule: Option<&'a Schedule>,
    /// The block's changes to the application state: `None` deletes the key.
    pub state_changes: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// What [`Store::state_listing`] read: per prefix its entries and whether it had more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateListing {
    pub height: u64,
    pub listings: Vec<(Vec<StateEntry>, bool)>,
}

/// A state key (without the listed prefix) and its value.
pub type StateEntry = (Vec<u8>, Vec<u8>);

#[derive(Debug)]
pub struct Store {
    db: DB,
}

fn corrupt(what: &'static str) -> impl Fn(kubechain_types::encoding::DecodeError) -> StorageError {
    move |error| StorageError::Corrupt { what, detail: error.to_string() }
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn rule_change_key(height: u64) -> Vec<u8> {
    [META_RULE_CHANGE, &height_key(height)].concat()
}

fn read_height(bytes: &[u8], what: &'static str) -> Result<u64, StorageError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt { what, detail: format!("{} bytes, expected 8", bytes.len()) })?;
    Ok(u64::from_be_bytes(array))
}

/// Journal keys sort by height, so pruning below a checkpoint is one range delete.
fn journal_key(record: &Record) -> Option<[u8; 17]> {
    let (height, view, kind) = match record {
        Record::View { .. } => return None,
        Record::PrePrepared { view, block } => (block.height(), *view, 0u8),
        Record::Prepared(certificate) => (certificate.block.height(), certificate.view, 1u8),
    };
    let mut key = [0u8; 17];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..16].copy_from_slice(&view.to_be_bytes());
    key[16] = kind;
    Some(key)
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families =
            COLUMN_FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir, families)?;
        Ok(Store { db })
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Every family is created by `open`; a missing one is a programming error.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| unreachable!("column family {name} is opened with the database"))
    }

    /// Records `genesis` and the state it starts from on first start (one synced write);
    /// afterwards checks that the directory belongs to that chain.
    pub fn init_genesis(
        &self,
        genesis: &Genesis,
        initial_state: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        match self.genesis()? {
            Some(stored) if stored.hash() == genesis.hash() => Ok(()),
            Some(stored) => Err(StorageError::OtherChain {
                stored_hash: stored.hash(),
                stored: stored.chain_id,
                wanted_hash: genesis.hash(),
                wanted: genesis.chain_id.clone(),
            }),
            None => {
                let mut batch = WriteBatch::default();
                for (key, value) in initial_state {
                    if let Some(value) = value {
                        batch.put_cf(self.cf(STATE), key, value);
                    }
                }
                batch.put_cf(self.cf(META), META_GENESIS, encode(genesis));
                Ok(self.db.write_opt(batch, &synced())?)
            }
        }
    }

    pub fn genesis(&self) -> Result<Option<Genesis>, StorageError> {
        self.db
            .get_cf(self.cf(META), META_GENESIS)?
            .map(|bytes| decode(&bytes).map_err(corrupt("genesis")))
            .transpose()
    }

    /// Height of the last committed block (0 before block 1).
    pub fn tip_height(&self) -> Result<u64, StorageError> {
        match self.db.get_cf(self.cf(META), META_TIP)? {
            Some(bytes) => read_height(&bytes, "tip height"),
            None => Ok(0),
        }
    }

    /// Stores a committed block and everything it changes in one synced write.
    pub fn commit_block(&self, write: BlockWrite<'_>) -> Result<(), StorageError> {
        let height = write.block.height();
        let tip = self.tip_height()?;
        if height != tip + 1 {
            return Err(StorageError::OutOfOrder { height, tip });
        }
        let mut batch = WriteBatch::default();
        let certified = CertifiedBlock { block: write.block.clone(), certificate: write.certificate.clone() };
        batch.put_cf(self.cf(BLOCKS), height_key(height), encode(&certified));
        batch.put_cf(self.cf(BLOCK_HASHES), write.block.hash().as_bytes(), height_key(height));
        for (index, tx) in write.block.transactions.iter().enumerate() {
            let location = TxLocation { height, index: index as u32 };
            batch.put_cf(self.cf(TX_INDEX), tx.hash().as_bytes(), encode(&location));
        }
        for (key, value) in write.state_changes {
            match value {
                Some(value) => batch.put_cf(self.cf(STATE), key, value),
                None => batch.delete_cf(self.cf(STATE), key),
            }
        }
        if let Some(schedule) = write.schedule {
            batch.put_cf(self.cf(META), META_SCHEDULE, encode(schedule));
            let change = RuleChange::from_block(write.block, write.certificate.clone());
            batch.put_cf(self.cf(META), rule_change_key(height), encode(&change));
        }
        batch.put_cf(self.cf(META), META_TIP, height_key(height));
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StorageError> {
        self.db
            .get_cf(self.cf(BLOCKS), height_key(height))?
            .map(|bytes| decode(&bytes).map_err(corrupt("block")))
            .transpose()
    }

    pub fn height_of(&self, block_hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.db
            .get_cf(self.cf(BLOCK_HASHES), block_hash.as_bytes())?
            .map(|bytes| read_height(&bytes, "block hash index"))
            .transpose()
    }

    /// Up to `max` committed blocks from `from_height` on, for a peer that is catching up.
    pub fn blocks_from(&self, from_height: u64, max: usize) -> Result<Vec<CertifiedBlock>, StorageError> {
        let start = height_key(from_height.max(1));
        self.db
            .iterator_cf(self.cf(BLOCKS), IteratorMode::From(&start, Direction::Forward))
            .take(max)
            .map(|entry| {
                let (_, bytes) = entry?;
                decode(&bytes).map_err(corrupt("block"))
            })
            .collect()
    }

    /// The committed blocks that changed the rules, as receipts carry them, ascending by height;
    /// `in_force_by` stops before the first whose change is not in force at that height.
    pub fn rule_changes(&self, in_force_by: u64, window: u64) -> Result<Vec<RuleChange>, StorageError> {
        let mut changes = Vec::new();
        let start = rule_change_key(0);
        for entry in self.db.iterator_cf(self.cf(META), IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = entry?;
            let Some(height) = key.strip_prefix(META_RULE_CHANGE) else { break };
            if read_height(height, "rule change index")?.saturating_add(window) >= in_force_by {
                break;
            }
            changes.push(decode(&value).map_err(corrupt("rule change"))?);
        }
        Ok(changes)
    }

    pub fn tx_location(&self, tx_hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        self.db
            .get_cf(self.cf(TX_INDEX), tx_hash.as_bytes())?
            .map(|bytes| decode(&bytes).map_err(corrupt("transaction index")))
            .transpose()
    }

    /// Committed application state.
    pub fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(STATE), key)?)
    }

    /// Committed state under each of `prefixes` (key without the prefix, value), at most `max`
    /// entries each (`true` beside one that had more), and the tip height, all read from one
    /// snapshot so they describe the same block.
    pub fn state_listing(&self, prefixes: &[&[u8]], max: usize) -> Result<StateListing, StorageError> {
        let snapshot = self.db.snapshot();
        let height = match snapshot.get_cf(self.cf(META), META_TIP)? {
            Some(bytes) => read_height(&bytes, "tip height")?,
            None => 0,
        };
        let mut listings = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let mut entries = Vec::new();
            let mut more = false;
            let from = IteratorMode::From(prefix, Direction::Forward);
            for entry in snapshot.iterator_cf(self.cf(STATE), from) {
                let (key, value) = entry?;
                let Some(rest) = key.strip_prefix(*prefix) else { break };
                if entries.len() == max {
                    more = true;
                    break;
                }
                entries.push((rest.to_vec(), value.into_vec()));
            }
            listings.push((entries, more));
        }
        Ok(StateListing { height, listings })
    }

    /// Makes a consensus promise durable (synced) before the runtime sends it.
    pub fn persist(&self, record: &Record) -> Result<(), StorageError> {
        self.persist_all(std::slice::from_ref(record))
    }

    /// Makes several promises durable in one synced write (a later view record wins).
    pub fn persist_all(&self, records: &[Record]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for record in records {
            match journal_key(record) {
                Some(key) => batch.put_cf(self.cf(JOURNAL), key, encode(record)),
                None => batch.put_cf(self.cf(META), META_VIEW, encode(record)),
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Forgets journal records for heights up to `through_height` (below a stable checkpoint).
    pub fn prune_journal(&self, through_height: u64) -> Result<(), StorageError> {
        let end = height_key(through_height.saturating_add(1));
        self.db.delete_range_cf(self.cf(JOURNAL), height_key(0), end)?;
        Ok(())
    }

    /// What a restarting replica needs: its last committed block, its schedule and its journal.
    pub fn recover(&self) -> Result<Recovered, StorageError> {
        let tip = self.tip_height()?;
        let last_committed = match tip {
            0 => None,
            height => {
                let certified = self.block(height)?.ok_or(StorageError::Corrupt {
                    what: "tip",
                    detail: format!("block {height} is missing"),
                })?;
                Some((certified.block.header, certified.certificate))
            }
        };
        let schedule: Option<Schedule> = self
            .db
            .get_cf(self.cf(META), META_SCHEDULE)?
            .map(|bytes| decode(&bytes).map_err(corrupt("schedule")))
            .transpose()?;
        if schedule.as_ref().is_some_and(|schedule| !schedule.is_well_formed()) {
            return Err(StorageError::Corrupt { what: "schedule", detail: "no rules in it".into() });
        }
        let mut journal = Vec::new();
        if let Some(bytes) = self.db.get_cf(self.cf(META), META_VIEW)? {
            journal.push(decode(&bytes).map_err(corrupt("view record"))?);
        }
        for entry in self.db.iterator_cf(self.cf(JOURNAL), IteratorMode::Start) {
            let (_, bytes) = entry?;
            journal.push(decode(&bytes).map_err(corrupt("journal record"))?);
        }
        Ok(Recovered { last_committed, schedule, journal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubechain_consensus::PreparedCertificate;
    use kubechain_types::{
        CommitVote, ConsensusParams, Header, Operation, PublicKey, Signature, SigningKey, Transaction,
        TxBody, VoteTarget,
    };

    fn genesis(chain_id: &str) -> Genesis {
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms: 0,
            validators: vec![SigningKey::from_seed([1; 32]).public_key()],
            admins: vec![],
            members: vec![],
            params: ConsensusParams::default(),
        }
    }

    fn block(height: u64, previous_hash: Hash) -> (Block, CommitCertificate) {
        let key = SigningKey::from_seed([2; 32]);
        let tx = Transaction::new(
            TxBody {
                chain_id: "c".into(),
                sender: key.public_key(),
                nonce: height,
                operations: vec![Operation::Delete { key: "k".into() }],
            },
            &key,
        );
        let header = Header {
            chain_id: "c".into(),
            height,
            view: 0,
            previous_hash,
            tx_root: Hash::ZERO,
            state_root: Hash::digest(&height.to_le_bytes()),
            rules_hash: Hash::digest(b"rules"),
            timestamp_ms: height,
            proposer: key.public_key(),
            pow_difficulty: 0,
            pow_nonce: 0,
        };
        let block = Block::new(header, vec![tx]);
        let target = VoteTarget { height, view: 0, block_hash: block.hash() };
        let certificate = CommitCertificate {
            target,
            votes: vec![CommitVote { voter: PublicKey([3; 32]), signature: Signature([4; 64]) }],
        };
        (block, certificate)
    }

    fn changes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn genesis_is_recorded_once_and_pins_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.init_genesis(&genesis("one"), &changes(&[("params", Some("p"))])).unwrap();
        assert_eq!(store.state(b"params").unwrap(), Some(b"p".to_vec()));
        store.init_genesis(&genesis("one"), &BTreeMap::new()).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.init_genesis(&genesis("two"), &BTreeMap::new()),
            Err(StorageError::OtherChain { .. })
        ));
    }

    #[test]
    fn committed_blocks_are_indexed_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (b1, c1) = block(1, Hash::ZERO);
        let (b2, c2) = block(2, b1.hash());
        {
            let store = Store::open(dir.path()).unwrap();
            let state = changes(&[("a", Some("1")), ("b", Some("2"))]);
            store
                .commit_block(BlockWrite {
                    block: &b1,
                    certificate: &c1,
                    schedule: None,
                    state_changes: &state,
                })
                .unwrap();
            let state = changes(&[("a", None)]);
            store
                .commit_block(BlockWrite {
                    block: &b2,
                    certificate: &c2,
                    schedule: Some(&Schedule::from_genesis(&genesis("one"))),
                    state_changes: &state,
                })
                .unwrap();
            let (b4, c4) = block(4, b2.hash());
            let out_of_order = store.commit_block(BlockWrite {
                block: &b4,
                certificate: &c4,
                schedule: None,
                state_changes: &BTreeMap::new(),
            });
            assert!(matches!(out_of_order, Err(StorageError::OutOfOrder { height: 4, tip: 2 })));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tip_height().unwrap(), 2);
        assert_eq!(store.block(2).unwrap().unwrap().block, b2);
        assert_eq!(store.block(3).unwrap(), None);
        assert_eq!(store.height_of(&b1.hash()).unwrap(), Some(1));
        assert_eq!(
            store.tx_location(&b2.transactions[0].hash()).unwrap(),
            Some(TxLocation { height: 2, index: 0 })
        );
        assert_eq!(store.state(b"a").unwrap(), None);
        assert_eq!(store.state(b"b").unwrap(), Some(b"2".to_vec()));
        let heights: Vec<u64> = store.blocks_from(2, 10).unwrap().iter().map(|c| c.block.height()).collect();
        assert_eq!(heights, vec![2]);
        let changes = store.rule_changes(u64::MAX, 4).unwrap();
        assert_eq!(
            changes.iter().map(|change| change.header.height).collect::<Vec<_>>(),
            vec![2],
            "block 2 wrote a schedule"
        );
        assert_eq!(changes[0], RuleChange::from_block(&b2, c2.clone()));
        assert!(store.rule_changes(2 + 4, 4).unwrap().is_empty(), "in force from 2 + 4 + 1 only");
        assert_eq!(store.rule_changes(2 + 4 + 1, 4).unwrap().len(), 1);
        let recovered = store.recover().unwrap();
        assert_eq!(recovered.last_committed.map(|(header, _)| header), Some(b2.header.clone()));
        assert!(recovered.schedule.is_some());
    }

    #[test]
    fn state_listings_stop_at_their_prefix_and_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let genesis_state = changes(&[
            ("admin/a", Some("")),
            ("admin/b", Some("")),
            ("admio", Some("x")),
            ("member/m", Some("k")),
        ]);
        store.init_genesis(&genesis("one"), &genesis_state).unwrap();
        let listing = store.state_listing(&[b"admin/", b"member/", b"nothing/"], 1).unwrap();
        assert_eq!(listing.height, 0);
        assert_eq!(
            listing.listings,
            vec![
                (vec![(b"a".to_vec(), Vec::new())], true),
                (vec![(b"m".to_vec(), b"k".to_vec())], false),
                (Vec::new(), false),
            ]
        );
        let all = store.state_listing(&[b"admin/"], 10).unwrap();
        assert_eq!(all.listings[0], (vec![(b"a".to_vec(), Vec::new()), (b"b".to_vec(), Vec::new())], false));
    }

    /// A store written before headers carried `rules_hash` (one 32-byte field fewer, after
    /// `state_root`) does not decode: recovery fails with an error, it does not panic.
    #[test]
    fn a_block_in_the_encoding_before_rules_hash_is_refused_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (b1, c1) = block(1, Hash::ZERO);
        let write =
            BlockWrite { block: &b1, certificate: &c1, schedule: None, state_changes: &BTreeMap::new() };
        store.commit_block(write).unwrap();
        let mut old = encode(&CertifiedBlock { block: b1.clone(), certificate: c1 });
        // chain_id "c" (4 + 1 bytes), height, view, previous_hash, tx_root, state_root.
        let rules_hash_at = 5 + 8 + 8 + 32 + 32 + 32;
        assert_eq!(&old[rules_hash_at..rules_hash_at + 32], b1.header.rules_hash.as_bytes());
        old.drain(rules_hash_at..rules_hash_at + 32);
        store.db.put_cf(store.cf(BLOCKS), height_key(1), old).unwrap();
        let error = store.recover().expect_err("an old block does not decode");
        assert!(matches!(error, StorageError::Corrupt { what: "block", .. }), "{error}");
        assert!(error.to_string().contains("another encoding"), "{error}");
    }

    #[test]
    fn journal_round_trips_and_prunes_below_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (b3, _) = block(3, Hash::ZERO);
        let (b5, _) = block(5, Hash::ZERO);
        store.persist(&Record::View { view: 1, in_view_change: true }).unwrap();
        store.persist(&Record::View { view: 2, in_view_change: false }).unwrap();
        store.persist(&Record::PrePrepared { view: 2, block: b3.clone() }).unwrap();
        store.persist(&Record::PrePrepared { view: 2, block: b5.clone() }).unwrap();
        let prepared = PreparedCertificate { view: 2, block: b5.clone(), prepares: vec![] };
        store.persist(&Record::Prepared(prepared.clone())).unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let journal = store.recover().unwrap().journal;
        assert_eq!(
            journal,
            vec![
                Record::View { view: 2, in_view_change: false },
                Record::PrePrepared { view: 2, block: b3 },
                Record::PrePrepared { view: 2, block: b5.clone() },
                Record::Prepared(prepared.clone()),
            ]
        );
        store.prune_journal(4).unwrap();
        let journal = store.recover().unwrap().journal;
        assert_eq!(
            journal,
            vec![
                Record::View { view: 2, in_view_change: false },
                Record::PrePrepared { view: 2, block: b5 },
                Record::Prepared(prepared),
            ]
        );
    }
}
