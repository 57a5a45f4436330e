//! The capture rule as data: which `socket(2)` calls open a channel that reads
//! other processes' traffic. One table, read by every party that enforces or
//! observes it — the eBPF socket probe (`no_std`), the seccomp filter the shim
//! merges into a container's profile, and both decision paths of the
//! supervisor — so that a new channel is one new row, and the kernel filter,
//! the probe and the alert can never disagree on what counts.

use crate::abi::linux::{AF_INET, AF_INET6, AF_PACKET, SOCK_PACKET, SOCK_RAW, SOCK_TYPE_MASK};

/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u64 = 1;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: u64 = 58;

/// What a capture socket reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// A packet socket: whole frames of every protocol on an interface.
    Packet,
    /// A raw IP socket: every packet of one IP protocol the host receives.
    Raw,
}

/// One row of the capture rule: a socket family, and the type within it
/// (`None`: every type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSocket {
    /// `AF_*` (the first argument of `socket(2)`).
    pub family: u64,
    /// `SOCK_*` (the second argument without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`),
    /// or `None` for every type of the family.
    pub socket_type: Option<u64>,
    /// What it reads.
    pub kind: SocketKind,
    /// The family's name, for alerts.
    pub family_name: &'static str,
}

/// Every socket that captures: `AF_PACKET` of any type, `SOCK_RAW` on
/// `AF_INET` and `AF_INET6`, and the obsolete `(AF_INET, SOCK_PACKET)` that the
/// kernel turns into a packet socket.
pub const CAPTURE_SOCKETS: [CaptureSocket; 4] = [
    CaptureSocket {
        family: AF_PACKET,
        socket_type: None,
        kind: SocketKind::Packet,
        family_name: "AF_PACKET",
    },
    CaptureSocket {
        family: AF_INET,
        socket_type: Some(SOCK_PACKET),
        kind: SocketKind::Packet,
        family_name: "AF_INET",
    },
    CaptureSocket {
        family: AF_INET,
        socket_type: Some(SOCK_RAW),
        kind: SocketKind::Raw,
        family_name: "AF_INET",
    },
    CaptureSocket {
        family: AF_INET6,
        socket_type: Some(SOCK_RAW),
        kind: SocketKind::Raw,
        family_name: "AF_INET6",
    },
];

/// The row `socket(family, socket_type, …)` matches, if it opens a capture
/// channel. Both arguments are taken as the kernel reads them: `int`s (the
/// low 32 bits of the register), the type without its flags.
#[inline(always)]
pub fn capture_socket(family: u64, socket_type: u64) -> Option<&'static CaptureSocket> {
    let family = family & 0xffff_ffff;
    let socket_type = socket_type & SOCK_TYPE_MASK;
    // A plain loop over a constant array: bounded, which the eBPF verifier
    // accepts.
    let mut i = 0;
    while i < CAPTURE_SOCKETS.len() {
        let rule = &CAPTURE_SOCKETS[i];
        let type_matches = match rule.socket_type {
            Some(wanted) => wanted == socket_type,
            None => true,
        };
        if rule.family == family && type_matches {
            return Some(rule);
        }
        i += 1;
    }
    None
}

/// Whether a raw socket of `family` and `protocol` is the ICMP one of its
/// family (`ping`): it reads ICMP only, which the policy may choose not to
/// count as capture (`raw_icmp_is_capture`).
pub fn is_raw_icmp(rule: &CaptureSocket, protocol: u64) -> bool {
    let protocol = protocol & 0xffff_ffff;
    rule.kind == SocketKind::Raw
        && matches!(
            (rule.family, protocol),
            (AF_INET, IPPROTO_ICMP) | (AF_INET6, IPPROTO_ICMPV6)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_matches_what_the_kernel_would_create() {
        assert_eq!(
            capture_socket(AF_PACKET, 2).map(|r| r.kind),
            Some(SocketKind::Packet)
        );
        assert_eq!(
            capture_socket(AF_INET, SOCK_RAW | 0x80000).map(|r| r.kind),
            Some(SocketKind::Raw),
            "SOCK_CLOEXEC does not hide a raw socket"
        );
        assert_eq!(
            capture_socket(AF_INET | (1 << 32), SOCK_PACKET).map(|r| r.kind),
            Some(SocketKind::Packet),
            "the upper half of the register is not part of the int"
        );
        assert_eq!(
            capture_socket(AF_INET6, SOCK_RAW).map(|r| r.family_name),
            Some("AF_INET6")
        );
        assert!(capture_socket(AF_INET, 2).is_none(), "UDP");
        assert!(
            capture_socket(AF_INET6, SOCK_PACKET).is_none(),
            "no such socket"
        );
        assert!(capture_socket(1, SOCK_RAW).is_none(), "AF_UNIX");
    }

    #[test]
    fn icmp_is_told_by_family_and_protocol() {
        let v4 = capture_socket(AF_INET, SOCK_RAW).unwrap();
        let v6 = capture_socket(AF_INET6, SOCK_RAW).unwrap();
        assert!(is_raw_icmp(v4, IPPROTO_ICMP));
        assert!(is_raw_icmp(v6, IPPROTO_ICMPV6));
        assert!(
            !is_raw_icmp(v6, IPPROTO_ICMP),
            "ICMP on a v6 socket is not ping"
        );
        assert!(!is_raw_icmp(v4, 6), "TCP");
        assert!(!is_raw_icmp(v4, 255), "IPPROTO_RAW");
        let packet = capture_socket(AF_PACKET, SOCK_RAW).unwrap();
        assert!(!is_raw_icmp(packet, IPPROTO_ICMP));
    }
}
