//! `wan-delay --queue N ADDRESS=MILLISECONDS...`: gives back the packets of netfilter queue N
//! after the one-way delay to their destination (see `kubechain_e2e::wan`). Runs inside a local
//! cloud's network namespace (started by `scripts/clouds.sh`), fed by
//! `iptables -t mangle -A POSTROUTING -o eth0 -j NFQUEUE --queue-num N --queue-bypass`, so the
//! namespace's traffic flows undelayed while no such program runs.

use std::time::{Duration, Instant};

use kubechain_e2e::wan::{Admission, DelayLine, Delays};
use nfq::{Queue, Verdict};

/// Longest sleep between looks at the queue: the delay's precision.
const TICK: Duration = Duration::from_millis(1);

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wan-delay: error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (queue_num, delays) = match args.as_slice() {
        [flag, number, delays @ ..] if flag == "--queue" => {
            let number: u16 =
                number.parse().map_err(|_| format!("--queue wants a number, got {number:?}"))?;
            (number, Delays::parse(delays.iter().map(String::as_str))?)
        }
        _ => return Err("usage: wan-delay --queue N ADDRESS=MILLISECONDS...".into()),
    };
    let mut queue =
        Queue::open().map_err(|error| format!("cannot open a netfilter queue socket: {error}"))?;
    queue.bind(queue_num).map_err(|error| format!("cannot bind queue {queue_num}: {error}"))?;
    queue.set_queue_max_len(queue_num, 65_536).map_err(|error| format!("queue length: {error}"))?;
    queue.set_nonblocking(true);
    let mut line = DelayLine::new(delays);
    eprintln!("wan-delay: delaying queue {queue_num}");
    loop {
        // Everything waiting in the kernel first, then whatever is due.
        loop {
            match queue.recv() {
                Ok(message) => {
                    let bytes = message.get_payload().to_vec();
                    match line.admit(message, &bytes, Instant::now()) {
                        Admission::Held => {}
                        Admission::Pass(passed) => give_back(&mut queue, passed, Verdict::Accept)?,
                        Admission::Drop(dropped) => give_back(&mut queue, dropped, Verdict::Drop)?,
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                // Packets the kernel could not hand over (a full socket buffer) are lost, as on
                // a congested link; the delay goes on.
                Err(error) => {
                    eprintln!("wan-delay: reading queue {queue_num}: {error}");
                    break;
                }
            }
        }
        let now = Instant::now();
        while let Some(message) = line.due(now) {
            give_back(&mut queue, message, Verdict::Accept)?;
        }
        let wait =
            line.next_due().map_or(TICK, |due| due.saturating_duration_since(Instant::now()).min(TICK));
        std::thread::sleep(wait);
    }
}

fn give_back(queue: &mut Queue, mut message: nfq::Message, verdict: Verdict) -> Result<(), String> {
    message.set_verdict(verdict);
    queue.verdict(message).map_err(|error| format!("giving a packet back: {error}"))
}
