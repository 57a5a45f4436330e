//! The capture rule as data: which `socket(2)` calls open a channel that can
//! read other processes' traffic. One table, read by every party that enforces
//! or observes it — the eBPF socket probe (`no_std`), the seccomp filter the
//! shim merges into a container's profile, and both decision paths of the
//! supervisor — so that a new channel is one new row, and the kernel filter,
//! the probe and the alert can never disagree on what counts.

use crate::abi::linux::{
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_XDP, NETLINK_NETFILTER, NETLINK_NFLOG,
    RTM_NEWACTION, RTM_NEWLINK, RTM_NEWTFILTER, RTM_SETLINK, SIOCSIFFLAGS, SOCK_PACKET, SOCK_RAW,
    SOCK_TYPE_MASK,
};
use crate::abi::NETLINK_SCAN_BYTES;

/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u64 = 1;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: u64 = 58;

/// The channel a socket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// A packet socket: whole frames of every protocol on an interface.
    Packet,
    /// A raw IP socket: every packet of one IP protocol the host receives.
    Raw,
    /// An `AF_XDP` socket: frames an XDP program redirects to it.
    Xdp,
    /// The legacy ULOG netlink family: packets a `ULOG` rule copies.
    NetfilterLegacyLog,
    /// Netfilter's netlink family. It manages rules (`nft`, `iptables-nft`)
    /// and also delivers the packets of NFLOG groups and NFQUEUE queues: the
    /// environment decides whether the socket itself is allowed
    /// (`netfilter_management`), and binding a group or a queue on it is
    /// capture wherever it is seen.
    Netfilter,
}

impl SocketKind {
    /// Whether the socket reads traffic as soon as it exists. A netfilter
    /// socket does only once a group or queue is bound on it, which the
    /// socket call cannot show.
    pub const fn captures_by_itself(self) -> bool {
        !matches!(self, SocketKind::Netfilter)
    }
}

/// One row of the capture rule: a socket family, and within it the type and
/// protocol (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSocket {
    /// `AF_*` (the first argument of `socket(2)`).
    pub family: u64,
    /// `SOCK_*` (the second argument without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
    pub socket_type: Option<u64>,
    /// The protocol (the third argument).
    pub protocol: Option<u64>,
    /// The channel it opens.
    pub kind: SocketKind,
    /// The family's name, for alerts.
    pub family_name: &'static str,
}

const fn row(
    family: u64,
    socket_type: Option<u64>,
    protocol: Option<u64>,
    kind: SocketKind,
    family_name: &'static str,
) -> CaptureSocket {
    CaptureSocket {
        family,
        socket_type,
        protocol,
        kind,
        family_name,
    }
}

/// Every socket that opens a capture channel: `AF_PACKET` of any type, the
/// obsolete `(AF_INET, SOCK_PACKET)` that the kernel turns into a packet
/// socket, `SOCK_RAW` on `AF_INET` and `AF_INET6`, `AF_XDP`, and netlink's
/// ULOG and netfilter families.
pub const CAPTURE_SOCKETS: [CaptureSocket; 7] = [
    row(AF_PACKET, None, None, SocketKind::Packet, "AF_PACKET"),
    row(
        AF_INET,
        Some(SOCK_PACKET),
        None,
        SocketKind::Packet,
        "AF_INET",
    ),
    row(AF_INET, Some(SOCK_RAW), None, SocketKind::Raw, "AF_INET"),
    row(AF_INET6, Some(SOCK_RAW), None, SocketKind::Raw, "AF_INET6"),
    row(AF_XDP, None, None, SocketKind::Xdp, "AF_XDP"),
    row(
        AF_NETLINK,
        None,
        Some(NETLINK_NFLOG),
        SocketKind::NetfilterLegacyLog,
        "AF_NETLINK",
    ),
    row(
        AF_NETLINK,
        None,
        Some(NETLINK_NETFILTER),
        SocketKind::Netfilter,
        "AF_NETLINK",
    ),
];

/// The row `socket(family, socket_type, protocol)` matches, if it opens a
/// capture channel. The arguments are taken as the kernel reads them: `int`s
/// (the low 32 bits of the register), the type without its flags.
#[inline(always)]
pub fn capture_socket(
    family: u64,
    socket_type: u64,
    protocol: u64,
) -> Option<&'static CaptureSocket> {
    let family = family & 0xffff_ffff;
    let socket_type = socket_type & SOCK_TYPE_MASK;
    let protocol = protocol & 0xffff_ffff;
    // A plain loop over a constant array: bounded, which the eBPF verifier
    // accepts.
    let mut i = 0;
    while i < CAPTURE_SOCKETS.len() {
        let rule = &CAPTURE_SOCKETS[i];
        let type_matches = match rule.socket_type {
            Some(wanted) => wanted == socket_type,
            None => true,
        };
        let protocol_matches = match rule.protocol {
            Some(wanted) => wanted == protocol,
            None => true,
        };
        if rule.family == family && type_matches && protocol_matches {
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

/// The ioctl command that can turn promiscuous mode on from any socket:
/// `SIOCSIFFLAGS` with `IFF_PROMISC` in the flags. The flags live in the
/// caller's memory, so where the environment enforces, the supervisor is sent
/// every `SIOCSIFFLAGS` (decided from the command register alone) and performs
/// the ones it lets through itself, with the copy it judged: a second thread
/// rewriting the request after the check changes nothing.
pub const INTERFACE_FLAGS_IOCTL: u64 = SIOCSIFFLAGS;

/// The flag [`INTERFACE_FLAGS_IOCTL`] must not turn on.
pub const PROMISCUOUS_FLAG: u16 = crate::abi::linux::IFF_PROMISC;

/// A `NETLINK_ROUTE` request that widens what a capture on the host's side
/// of an interface can read, without any capture socket of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChannel {
    /// `RTM_NEWLINK`/`RTM_SETLINK` turning `IFF_PROMISC` on: the interface
    /// takes frames addressed to other hosts.
    Promiscuous,
    /// `RTM_NEWTFILTER`/`RTM_NEWACTION` carrying a tc `mirred` action: a
    /// copy of (or all) the traffic goes to another device.
    Mirroring,
}

/// The channel a `NETLINK_ROUTE` message of this `nlmsg_type` can open, if
/// any. The body decides whether it does ([`sets_promisc`],
/// [`carries_mirred`]). Other netlink families reuse these numbers (generic
/// netlink's controller is 16 too): the socket must be checked as well.
/// `RTM_NEWCHAIN` is not listed: a chain's template holds a classifier's key
/// masks, never actions.
#[inline(always)]
pub const fn link_channel(msg_type: u16) -> Option<LinkChannel> {
    match msg_type {
        RTM_NEWLINK | RTM_SETLINK => Some(LinkChannel::Promiscuous),
        RTM_NEWTFILTER | RTM_NEWACTION => Some(LinkChannel::Mirroring),
        _ => None,
    }
}

/// `IFF_PROMISC` as `struct ifinfomsg` carries it.
const IFF_PROMISC: u32 = 0x100;

/// Whether a link message with these `ifi_flags` and `ifi_change` turns
/// promiscuous mode on, as the kernel combines them (`net/core/rtnetlink.c`,
/// `rtnl_dev_combine_flags`): `ifi_change == 0` takes `ifi_flags` whole,
/// otherwise only the bits in `ifi_change` are taken from `ifi_flags`.
#[inline(always)]
pub const fn sets_promisc(ifi_flags: u32, ifi_change: u32) -> bool {
    ifi_flags & IFF_PROMISC != 0 && (ifi_change == 0 || ifi_change & IFF_PROMISC != 0)
}

/// `TCA_KIND` / `TCA_ACT_KIND`: the attribute type that names a classifier or
/// an action.
const TCA_ACT_KIND: u16 = 1;
/// The bits of `nla_type` that are flags (`NLA_F_NESTED`,
/// `NLA_F_NET_BYTEORDER`), masked off as the kernel's `nla_type()` does.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Whether the first `len` bytes of a traffic-control message (`msg[0]` is
/// its `nlmsghdr`) carry an action of kind `mirred`.
///
/// Not a parse of the nested attributes (a bounded program cannot walk them
/// all): a scan for an attribute of type `TCA_ACT_KIND` whose string is
/// `mirred`. It is complete for what it covers because netlink attributes
/// start on 4-byte boundaries of the message, so the scan looks only there,
/// and because the kernel reads the kind with `nla_strscpy` (up to the
/// attribute's end or a NUL): `mirred` is followed by a NUL or ends the
/// attribute. An action placed beyond the first [`NETLINK_SCAN_BYTES`] bytes
/// (behind large other attributes) is not seen.
///
/// Shaped for the eBPF verifier, which walks a loop once per iteration and
/// each way out of it once: words compared whole, and no running count (a
/// count would make each iteration's states differ by it).
#[inline(always)]
pub fn carries_mirred(msg: &[u8; NETLINK_SCAN_BYTES], len: usize) -> bool {
    const MIRR: u32 = u32::from_ne_bytes(*b"mirr");
    const ED: u16 = u16::from_ne_bytes(*b"ed");
    // An attribute's data starts 4 bytes after its header; the first one
    // can start right after the 16-byte nlmsghdr and the 4-byte tcamsg.
    let mut at = 24;
    while at + 8 <= NETLINK_SCAN_BYTES {
        if at + 6 > len {
            return false;
        }
        let word = u32::from_ne_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
        let half = u16::from_ne_bytes([msg[at + 4], msg[at + 5]]);
        if word == MIRR && half == ED {
            let nla_len = u16::from_ne_bytes([msg[at - 4], msg[at - 3]]);
            let nla_type = u16::from_ne_bytes([msg[at - 2], msg[at - 1]]) & NLA_TYPE_MASK;
            let ends = nla_len == 10 || (nla_len > 10 && at + 7 <= len && msg[at + 6] == 0);
            if nla_type == TCA_ACT_KIND && ends {
                return true;
            }
        }
        at += 4;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(family: u64, socket_type: u64, protocol: u64) -> Option<SocketKind> {
        capture_socket(family, socket_type, protocol).map(|r| r.kind)
    }

    #[test]
    fn the_rule_matches_what_the_kernel_would_create() {
        assert_eq!(kind(AF_PACKET, 2, 0x300), Some(SocketKind::Packet));
        assert_eq!(
            kind(AF_INET, SOCK_RAW | 0x80000, 6),
            Some(SocketKind::Raw),
            "SOCK_CLOEXEC does not hide a raw socket"
        );
        assert_eq!(
            kind(AF_INET | (1 << 32), SOCK_PACKET, 0),
            Some(SocketKind::Packet),
            "the upper half of the register is not part of the int"
        );
        assert_eq!(
            capture_socket(AF_INET6, SOCK_RAW, 0).map(|r| r.family_name),
            Some("AF_INET6")
        );
        assert_eq!(kind(AF_XDP, SOCK_RAW, 0), Some(SocketKind::Xdp));
        assert_eq!(
            kind(AF_NETLINK, SOCK_RAW, NETLINK_NFLOG),
            Some(SocketKind::NetfilterLegacyLog)
        );
        assert_eq!(
            kind(AF_NETLINK, 2, NETLINK_NETFILTER | (7 << 32)),
            Some(SocketKind::Netfilter)
        );
        assert!(kind(AF_NETLINK, SOCK_RAW, 0).is_none(), "NETLINK_ROUTE");
        assert!(kind(AF_INET, 2, 17).is_none(), "UDP");
        assert!(kind(AF_INET6, SOCK_PACKET, 0).is_none(), "no such socket");
        assert!(kind(1, SOCK_RAW, 0).is_none(), "AF_UNIX");
        assert!(SocketKind::Packet.captures_by_itself());
        assert!(!SocketKind::Netfilter.captures_by_itself());
    }

    #[test]
    fn icmp_is_told_by_family_and_protocol() {
        let v4 = capture_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP).unwrap();
        let v6 = capture_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6).unwrap();
        assert!(is_raw_icmp(v4, IPPROTO_ICMP));
        assert!(is_raw_icmp(v6, IPPROTO_ICMPV6));
        assert!(
            !is_raw_icmp(v6, IPPROTO_ICMP),
            "ICMP on a v6 socket is not ping"
        );
        assert!(!is_raw_icmp(v4, 6), "TCP");
        assert!(!is_raw_icmp(v4, 255), "IPPROTO_RAW");
        let packet = capture_socket(AF_PACKET, SOCK_RAW, 0).unwrap();
        assert!(!is_raw_icmp(packet, IPPROTO_ICMP));
    }

    /// A tc message (`nlmsghdr`, `tcamsg`) with one action of `kind`, its
    /// kind attribute `nla_len` long, at `pad` bytes of other attributes.
    fn tc_message(
        kind: &[u8],
        nla_len: u16,
        nla_type: u16,
        pad: usize,
    ) -> ([u8; NETLINK_SCAN_BYTES], usize) {
        let mut msg = [0u8; NETLINK_SCAN_BYTES];
        let mut at = 20 + pad;
        msg[at..at + 2].copy_from_slice(&nla_len.to_ne_bytes());
        msg[at + 2..at + 4].copy_from_slice(&nla_type.to_ne_bytes());
        at += 4;
        msg[at..at + kind.len()].copy_from_slice(kind);
        (msg, at + kind.len().next_multiple_of(4))
    }

    #[test]
    fn promiscuous_mode_follows_rtnl_dev_combine_flags() {
        assert!(sets_promisc(0x100, 0));
        assert!(sets_promisc(0x101, 0x100));
        assert!(sets_promisc(0x100, 0xffff_ffff));
        assert!(
            !sets_promisc(0x100, 0x1),
            "IFF_UP changed, promisc kept as it was"
        );
        assert!(!sets_promisc(0x1, 0x101), "promisc turned off");
        assert!(!sets_promisc(0, 0));
        assert_eq!(link_channel(RTM_NEWLINK), Some(LinkChannel::Promiscuous));
        assert_eq!(link_channel(RTM_SETLINK), Some(LinkChannel::Promiscuous));
        assert_eq!(link_channel(RTM_NEWTFILTER), Some(LinkChannel::Mirroring));
        assert_eq!(link_channel(RTM_NEWACTION), Some(LinkChannel::Mirroring));
        assert_eq!(link_channel(20), None, "RTM_NEWADDR");
    }

    #[test]
    fn mirred_is_found_only_as_an_action_kind() {
        let (msg, len) = tc_message(b"mirred\0", 11, 1, 0);
        assert!(carries_mirred(&msg, len));
        let (msg, len) = tc_message(b"mirred", 10, 1, 0);
        assert!(
            carries_mirred(&msg, len),
            "no NUL: the attribute ends the name"
        );
        let (msg, len) = tc_message(b"mirred", 10, 1 | 0x8000, 64);
        assert!(carries_mirred(&msg, len), "flag bits are masked off");
        let (msg, len) = tc_message(b"mirredx\0", 12, 1, 0);
        assert!(!carries_mirred(&msg, len), "another name");
        let (msg, len) = tc_message(b"mirred\0", 11, 3, 0);
        assert!(!carries_mirred(&msg, len), "not a kind attribute");
        let (msg, len) = tc_message(b"gact\0", 9, 1, 0);
        assert!(!carries_mirred(&msg, len));
        let (mut msg, len) = tc_message(b"mirred\0", 11, 1, 0);
        msg.copy_within(24..32, 26);
        assert!(!carries_mirred(&msg, len + 4), "not on a 4-byte boundary");
        let (msg, _) = tc_message(b"mirred\0", 11, 1, 0);
        assert!(!carries_mirred(&msg, 26), "beyond the bytes sent");
        let (msg, len) = tc_message(b"mirred\0", 11, 1, 480);
        assert!(carries_mirred(&msg, len), "late, within the scanned bytes");
    }
}
