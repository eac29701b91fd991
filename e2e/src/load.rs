//! Client load for the fault suites: one thread per client key, each submitting a transaction at
//! a time to a running (not paused) validator and keeping those a validator reports committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kubechain_api::AccountView;
use kubechain_types::Hash;

use crate::client::{Account, Acknowledged, committed_at, get_as, submit_to};
use crate::processes::Cluster;

/// The load threads; dropping stops and joins them, also when the test panics, so that the
/// cluster (and with it every validator process) is dropped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    loaders: Vec<std::thread::JoinHandle<()>>,
    /// Transactions a validator reported committed, in the order they were.
    pub acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    /// For each of them: when a validator accepted it (ms since the epoch, the clock the nodes
    /// stamp blocks with) and the height it committed at. Between the two it waited.
    pub waits: Arc<Mutex<Vec<(u64, u64)>>>,
}

/// Where loaders send: the APIs to use right now (asked before each transaction, so faults land
/// mid-request), and the HTTP client.
pub type Apis = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

impl Load {
    /// Starts one loader per client key of `cluster`, each sending its next transaction as soon
    /// as the last one is settled.
    pub fn start(cluster: &Arc<Mutex<Cluster>>) -> Load {
        Load::paced(cluster, Duration::ZERO)
    }

    /// [`Load::start`], each loader resting `pause` after each transaction: a steady load whose
    /// block rate a node catching up by state transfer can overtake.
    pub fn paced(cluster: &Arc<Mutex<Cluster>>, pause: Duration) -> Load {
        let (keys, http) = {
            let cluster = cluster.lock().unwrap();
            (cluster.clients.clone(), cluster.http().clone())
        };
        // The cluster is locked only to learn which validators run, never during a request.
        let running = cluster.clone();
        let apis: Apis = Arc::new(move || running.lock().unwrap().running_apis());
        Load::over(apis, http, keys.into_iter().map(Account::new).collect(), pause)
    }

    /// One loader per account, sending through `apis`.
    pub fn over(
        apis: Apis,
        http: reqwest::blocking::Client,
        accounts: Vec<Account>,
        pause: Duration,
    ) -> Load {
        let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
        let waits: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let loaders = accounts
            .into_iter()
            .enumerate()
            .map(|(k, account)| {
                let shared = Shared {
                    apis: apis.clone(),
                    http: http.clone(),
                    acknowledged: acknowledged.clone(),
                    waits: waits.clone(),
                    stop: stop.clone(),
                    pause,
                };
                std::thread::spawn(move || load(k, account, &shared))
            })
            .collect();
        Load { stop, loaders, acknowledged, waits }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for loader in self.loaders.drain(..) {
            let _ = loader.join();
        }
    }
}

/// Submits transactions one at a time to a running validator; a transaction counts as
/// acknowledged when a validator reports it committed. Crashes make submissions fail or stay
/// pending: the account resynchronises its nonce from the chain and goes on.
struct Shared {
    apis: Apis,
    http: reqwest::blocking::Client,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    waits: Arc<Mutex<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
    pause: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn load(client: usize, mut account: Account, shared: &Shared) {
    let Shared { apis, http, acknowledged, waits, stop, pause } = shared;
    let running_apis = || apis();
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) {
        sent += 1;
        let tx = account.put(&format!("load/{client}/{sent}"), &sent.to_be_bytes());
        let hash: Hash = tx.hash();
        let apis = running_apis();
        if apis.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let accepted = submit_to(http, &apis[sent as usize % apis.len()], &tx) == Some(202);
        let accepted_ms = now_ms();
        let mut committed = None;
        for _ in 0..200 {
            if stop.load(Ordering::SeqCst) && !accepted {
                break;
            }
            committed = running_apis().iter().find_map(|api| committed_at(http, api, &hash));
            if committed.is_some() || !accepted {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match committed {
            Some(ack) => {
                waits.lock().unwrap().push((accepted_ms, ack.height));
                acknowledged.lock().unwrap().push(ack);
                // Load shaping, not synchronisation: nothing waits for anything here.
                std::thread::sleep(*pause);
            }
            // Lost with a crashed mempool (or refused): continue from the committed nonce.
            None => {
                let path = format!("/v1/accounts/{}", account.key.public_key());
                let answer = running_apis().iter().find_map(|api| get_as(http, &format!("{api}{path}")));
                if let Some((200, AccountView { nonce, .. })) = answer {
                    account.next_nonce = nonce + 1;
                }
            }
        }
    }
}
