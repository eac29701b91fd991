//! A TCP proxy that can cut its connections: the harness's partition switch.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    blocked: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards each connection to `target` (read at
    /// connect time; `None` refuses, like a node that is down).
    pub fn start(target: Arc<Mutex<Option<SocketAddr>>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let blocked = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_blocked, accept_open) = (blocked.clone(), open.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let target = *target.lock().expect("target lock");
                if accept_blocked.load(Ordering::SeqCst) {
                    continue; // dropped: the dialer sees the connection close
                }
                let Some(Ok(outbound)) = target.map(TcpStream::connect) else { continue };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
                    accept_open.lock().expect("open lock").extend([a, b]);
                }
                pipe(&inbound, &outbound);
                pipe(&outbound, &inbound);
            }
        });
        Proxy { address, blocked, open }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Blocking closes every open connection and refuses new ones until unblocked.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
        if blocked {
            for stream in self.open.lock().expect("open lock").drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
