//! The WAN between the local stand-ins for three clouds: a delay line that holds each packet
//! leaving a cloud's network namespace for the one-way delay to where it goes, as a long link
//! would. This kernel has no `tc netem`, so `src/bin/wan-delay.rs` takes the packets from an
//! iptables NFQUEUE rule and gives them back through this line. Pure: packets are any `T`,
//! time is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Packets held at most, so a flood cannot grow the program without bound; past it, packets are
/// dropped, as a full router queue would.
pub const MAX_HELD: usize = 65_536;

/// One-way delays by destination address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delays(HashMap<Ipv4Addr, Duration>);

impl Delays {
    /// Parses `ADDRESS=MILLISECONDS` items, e.g. `10.251.0.2=43`.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Delays, String> {
        let mut delays = HashMap::new();
        for item in items {
            let (address, millis) =
                item.split_once('=').ok_or_else(|| format!("{item:?}: want ADDRESS=MILLISECONDS"))?;
            let address: Ipv4Addr =
                address.parse().map_err(|_| format!("{item:?}: {address:?} is not an IPv4 address"))?;
            let millis: u64 = millis
                .parse()
                .map_err(|_| format!("{item:?}: {millis:?} is not a number of milliseconds"))?;
            delays.insert(address, Duration::from_millis(millis));
        }
        Ok(Delays(delays))
    }

    /// The delay of an IPv4 packet (the raw packet, from its header); none when it is not IPv4
    /// or goes somewhere without a delay.
    pub fn of_packet(&self, packet: &[u8]) -> Option<Duration> {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return None;
        }
        let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        self.0.get(&destination).copied()
    }
}

/// What to do with a packet that was just taken from the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// Give it back now (no delay for its destination).
    Pass(T),
    /// Held until its time.
    Held,
    /// The line is full.
    Drop(T),
}

/// Packets in flight, released in order of their due time (and of arrival for equal times),
/// so packets to one destination keep their order.
#[derive(Debug)]
pub struct DelayLine<T> {
    delays: Delays,
    held: BinaryHeap<Reverse<(Instant, u64, Slot<T>)>>,
    arrivals: u64,
}

/// A packet in the heap; compared by nothing (due time and arrival order decide).
#[derive(Debug)]
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> DelayLine<T> {
    pub fn new(delays: Delays) -> Self {
        DelayLine { delays, held: BinaryHeap::new(), arrivals: 0 }
    }

    /// Takes `packet` (whose raw bytes are `bytes`) that arrived `now`.
    pub fn admit(&mut self, packet: T, bytes: &[u8], now: Instant) -> Admission<T> {
        let Some(delay) = self.delays.of_packet(bytes) else { return Admission::Pass(packet) };
        if self.held.len() >= MAX_HELD {
            return Admission::Drop(packet);
        }
        self.arrivals += 1;
        self.held.push(Reverse((now + delay, self.arrivals, Slot(packet))));
        Admission::Held
    }

    /// The next packet due at `now`, if any.
    pub fn due(&mut self, now: Instant) -> Option<T> {
        let Reverse((at, _, _)) = self.held.peek()?;
        if *at > now {
            return None;
        }
        self.held.pop().map(|Reverse((_, _, Slot(packet)))| packet)
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_to(destination: [u8; 4]) -> Vec<u8> {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&destination);
        packet
    }

    #[test]
    fn delays_parse_and_refuse_what_is_not_an_address_and_milliseconds() {
        let delays = Delays::parse(["10.251.0.2=43", "10.251.0.3=56"]).unwrap();
        assert_eq!(delays.of_packet(&ipv4_to([10, 251, 0, 2])), Some(Duration::from_millis(43)));
        assert_eq!(delays.of_packet(&ipv4_to([10, 251, 0, 9])), None);
        assert_eq!(delays.of_packet(&[0x60; 40]), None, "IPv6 passes");
        assert_eq!(delays.of_packet(&[0x45; 8]), None, "a truncated header passes");
        for bad in ["10.251.0.2", "host=4", "10.251.0.2=soon"] {
            assert!(Delays::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn packets_wait_their_destinations_delay_and_keep_their_order() {
        let delays = Delays::parse(["10.0.0.2=40", "10.0.0.3=10"]).unwrap();
        let mut line = DelayLine::new(delays);
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        assert_eq!(line.admit("far-1", &ipv4_to([10, 0, 0, 2]), ms(0)), Admission::Held);
        assert_eq!(line.admit("near", &ipv4_to([10, 0, 0, 3]), ms(1)), Admission::Held);
        assert_eq!(line.admit("far-2", &ipv4_to([10, 0, 0, 2]), ms(1)), Admission::Held);
        assert_eq!(line.admit("local", &ipv4_to([10, 0, 0, 9]), ms(1)), Admission::Pass("local"));
        assert_eq!(line.next_due(), Some(ms(11)));
        assert_eq!(line.due(ms(10)), None);
        assert_eq!(line.due(ms(11)), Some("near"));
        assert_eq!(line.due(ms(40)), Some("far-1"));
        assert_eq!(line.due(ms(40)), None);
        assert_eq!(line.due(ms(41)), Some("far-2"));
        assert_eq!(line.held(), 0);
    }

    #[test]
    fn a_full_line_drops() {
        let mut line = DelayLine::new(Delays::parse(["10.0.0.2=40"]).unwrap());
        let now = Instant::now();
        for n in 0..MAX_HELD {
            assert_eq!(line.admit(n, &ipv4_to([10, 0, 0, 2]), now), Admission::Held);
        }
        assert_eq!(line.admit(MAX_HELD, &ipv4_to([10, 0, 0, 2]), now), Admission::Drop(MAX_HELD));
    }
}
