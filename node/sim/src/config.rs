//! Everything about one simulated run, derived from its seed.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a Byzantine replica misbehaves; each run picks a few.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// As primary, sends different blocks for the same height to different replicas, and votes
    /// for both.
    Equivocate,
    /// Proposes blocks whose proof-of-work seal is wrong.
    BadSeal,
    /// Corrupts the signatures of some messages it sends.
    BadSignature,
    /// Re-sends old messages it received or sent, to random replicas.
    Replay,
    /// Serves state transfer with forged commit certificates and sends view changes with forged
    /// prepared certificates.
    ForgeCertificates,
    /// Sends nothing at all for stretches of time.
    Silence,
    /// Alters whatever no signature covers: the transactions behind a signed header (in
    /// proposals, prepared certificates, NEW-VIEWs relaying others' view changes and state
    /// responses), the order of lists, certificate votes and claimed tips; re-signs what it may.
    Mutate,
    /// Floods validly signed votes for made-up blocks at every height it may vote on.
    Flood,
    /// As primary, proposes blocks whose header names other rules than they leave scheduled: the
    /// rules before its own admin operations when it has some, a made-up value otherwise.
    LieAboutRules,
}

/// The misbehaviours each run draws from at once (`LieAboutRules` is drawn after everything
/// else, so the runs drawn before it came stay what they were).
pub const ALL_MISBEHAVIOURS: [Misbehaviour; 8] = [
    Misbehaviour::Equivocate,
    Misbehaviour::BadSeal,
    Misbehaviour::BadSignature,
    Misbehaviour::Replay,
    Misbehaviour::ForgeCertificates,
    Misbehaviour::Silence,
    Misbehaviour::Mutate,
    Misbehaviour::Flood,
];

/// A fault in the schedule (all faults end by `SimConfig::heal_at_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Replica `node` stops at `at_ms` and restarts from its storage at `until_ms`.
    Crash { node: usize, at_ms: u64, until_ms: u64 },
    /// Messages between `side` and the rest are dropped from `at_ms` to `until_ms`.
    Partition { side: Vec<usize>, at_ms: u64, until_ms: u64 },
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub replicas: usize,
    /// Indices of the Byzantine replicas (at most f).
    pub byzantine: Vec<usize>,
    pub misbehaviours: Vec<Misbehaviour>,
    pub clients: usize,
    pub txs_per_client: u64,
    /// Clients submit during `[0, submit_until_ms)`.
    pub submit_until_ms: u64,
    pub loss: f64,
    pub duplication: f64,
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    pub faults: Vec<Fault>,
    /// From here on the network is reliable and every crashed replica is back.
    pub heal_at_ms: u64,
    /// Every honest replica must have every transaction committed this long after healing.
    pub liveness_bound_ms: u64,
    pub checkpoint_interval: u64,
    pub pow_difficulty_bits: u8,
    pub block_interval_ms: u64,
    pub max_block_txs: u32,
    pub view_change_timeout_ms: u64,
    /// An admin removes this validator at the first time and adds it back at the second.
    pub reconfiguration: Option<Reconfiguration>,
    /// Client 0 is hostile: it signs with torsion points in R (valid, but batch-sensitive under
    /// a cofactorless rule) and sends a twin with an invalid signature before each transaction.
    pub hostile_client: bool,
    /// One more node, not in genesis, runs from the start as a learner (following the chain,
    /// signing nothing) and is added as a validator at this time (runs without
    /// `reconfiguration` only, so the admin's nonces stay in order).
    pub joiner_added_at_ms: Option<u64>,
}

/// A validator-set change in the middle of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconfiguration {
    pub validator: usize,
    pub remove_at_ms: u64,
    pub add_at_ms: u64,
}

impl SimConfig {
    /// The run for `seed` with `replicas` replicas: faults of every kind, in random measure.
    pub fn from_seed(seed: u64, replicas: usize) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b75_6265_6368_6169);
        let f = kubechain_types::fault_tolerance(replicas);
        let byzantine_count = rng.random_range(0..=f);
        let byzantine: Vec<usize> = pick_distinct(&mut rng, replicas, byzantine_count);
        let misbehaviours = ALL_MISBEHAVIOURS.into_iter().filter(|_| rng.random_bool(0.5)).collect();
        let heal_at_ms = rng.random_range(3_000..15_000);
        let mut faults = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let at_ms = rng.random_range(0..heal_at_ms);
            let until_ms = (at_ms + rng.random_range(200..5_000)).min(heal_at_ms);
            // (One replica cannot be partitioned from anyone: it only crashes.)
            if rng.random_bool(0.5) || replicas < 2 {
                let node = rng.random_range(0..replicas);
                faults.push(Fault::Crash { node, at_ms, until_ms });
            } else {
                let size = rng.random_range(1..=replicas / 2);
                faults.push(Fault::Partition {
                    side: pick_distinct(&mut rng, replicas, size),
                    at_ms,
                    until_ms,
                });
            }
        }
        let min_delay_ms = rng.random_range(1..10);
        let submit_until_ms = rng.random_range(1_000..heal_at_ms);
        // The consortium ejects a validator (a Byzantine one if there is one, so the smaller set
        // still has at most f faulty) and later lets it back.
        let reconfiguration = (replicas > 1 && rng.random_bool(0.3)).then(|| {
            let validator = byzantine.first().copied().unwrap_or_else(|| rng.random_range(0..replicas));
            let remove_at_ms = rng.random_range(0..submit_until_ms);
            Reconfiguration {
                validator,
                remove_at_ms,
                add_at_ms: remove_at_ms + rng.random_range(500..5_000),
            }
        });
        SimConfig {
            seed,
            replicas,
            byzantine,
            misbehaviours,
            clients: 3,
            txs_per_client: rng.random_range(5..25),
            submit_until_ms,
            loss: if rng.random_bool(0.8) { rng.random_range(0.0..0.15) } else { 0.0 },
            duplication: rng.random_range(0.0..0.05),
            min_delay_ms,
            max_delay_ms: min_delay_ms + rng.random_range(0..150),
            faults,
            heal_at_ms,
            liveness_bound_ms: 60_000,
            checkpoint_interval: rng.random_range(2..=8),
            pow_difficulty_bits: rng.random_range(0..=6),
            block_interval_ms: rng.random_range(10..100),
            max_block_txs: rng.random_range(1..=16),
            view_change_timeout_ms: rng.random_range(300..1_000),
            reconfiguration,
            // Drawn last, so the draws before it (and the runs they make) stay what they were.
            hostile_client: rng.random_bool(0.5),
            joiner_added_at_ms: None,
        }
        .with_joiner(&mut rng)
        .with_rules_lies(&mut rng)
    }

    /// Draws the joiner after everything else, for the same reason.
    fn with_joiner(mut self, rng: &mut ChaCha8Rng) -> SimConfig {
        if self.reconfiguration.is_none() && rng.random_bool(0.3) {
            self.joiner_added_at_ms = Some(rng.random_range(0..self.submit_until_ms));
        }
        self
    }

    /// Draws whether Byzantine primaries lie about the rules, last of all, for the same reason.
    fn with_rules_lies(mut self, rng: &mut ChaCha8Rng) -> SimConfig {
        if rng.random_bool(0.5) {
            self.misbehaviours.push(Misbehaviour::LieAboutRules);
        }
        self
    }

    /// Nodes in the run: the genesis validators and the joiner, if any (the last index).
    pub fn nodes(&self) -> usize {
        self.replicas + usize::from(self.joiner_added_at_ms.is_some())
    }

    pub fn is_byzantine(&self, node: usize) -> bool {
        self.byzantine.contains(&node)
    }

    /// Transactions the run must see committed: the clients' and the admin's.
    pub fn total_transactions(&self) -> u64 {
        let admin =
            if self.reconfiguration.is_some() { 2 } else { u64::from(self.joiner_added_at_ms.is_some()) };
        self.txs_per_client * self.clients as u64 + admin
    }
}

fn pick_distinct(rng: &mut impl Rng, n: usize, count: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count.min(n) {
        let j = rng.random_range(i..n);
        all.swap(i, j);
    }
    all.truncate(count.min(n));
    all.sort_unstable();
    all
}
