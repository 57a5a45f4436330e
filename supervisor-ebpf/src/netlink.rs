//! The netlink programs: what a process sends on `sendto`/`sendmsg` that turns
//! capture on without a capture socket — an NFLOG or NFQUEUE binding or an
//! nf_tables rule that copies traffic (netfilter), promiscuous mode by
//! `RTM_NEWLINK`/`RTM_SETLINK` or a tc `mirred` action (`NETLINK_ROUTE`) —
//! reported, and killed in enforce containers. The two families are walked by
//! programs of their own on the same tracepoints, each verified alone.

use aya_ebpf::helpers::{bpf_probe_read_user, bpf_send_signal};
use aya_ebpf::macros::tracepoint;
use aya_ebpf::programs::TracePointContext;
use sniffguard_common::abi::{
    linux, EVENT_LINK, EVENT_MIRROR, EVENT_NETFILTER, FLAG_KILLED, FLAG_NETFILTER_SOCKET,
    FLAG_ROUTE_SOCKET, MIRROR_NFT_DUP, MIRROR_XT_TEE, MONITOR_ENFORCE, NETLINK_SCAN_BYTES,
};
use sniffguard_common::capture::{self, LinkChannel};

use sniffguard_common::abi::COUNTER_KILLS;

use crate::probes::{
    count, emit_net, is_netlink_socket, monitored, syscall_arg, Res, SG_NETLINK_SCRATCH, SIGKILL,
};

/// Steps of the scan of one send: a step reads one message header, or one
/// 4-byte position inside an nf_tables rule. It bounds what is looked at per
/// send: a configuration message or a `dup`/`TEE` expression behind more
/// messages and rule bytes than that (about 4 KiB of rules) is not seen.
const NETLINK_SCAN_STEPS: u32 = 1024;
/// Offset of a rule's first attribute (after `nlmsghdr` and `nfgenmsg`).
const NFT_RULE_ATTRS: u64 = 20;
/// `struct user_msghdr`: `msg_iov` at 16.
const MSGHDR_IOV_OFFSET: u64 = 16;
/// `NETLINK_ROUTE` messages looked at per send: a link or tc request hidden
/// behind this many others is not seen.
const NETLINK_MESSAGES_SCANNED: u32 = 4;

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    let _ = report_netlink_send(&ctx, false);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    let _ = report_netlink_send(&ctx, true);
    0
}

/// A send's socket, first buffer (start, length) and destination address
/// (0: none): `sendto`'s arguments, or `sendmsg`'s `msg_name` and first iovec.
fn netlink_send(ctx: &TracePointContext, msghdr: bool) -> Result<(u64, u64, u64, u64), i64> {
    let fd = syscall_arg(ctx, 0)?;
    let (start, len, destination) = if msghdr {
        let msg = syscall_arg(ctx, 1)?;
        // SAFETY: fault-tolerant read of the caller's msghdr.
        let name = unsafe { bpf_probe_read_user(msg as *const u64) }.unwrap_or(0);
        // SAFETY: fault-tolerant reads of the caller's msghdr and first iovec.
        let iov = unsafe { bpf_probe_read_user((msg + MSGHDR_IOV_OFFSET) as *const u64) }
            .map_err(|_| 0)?;
        // SAFETY: as above.
        let base = unsafe { bpf_probe_read_user(iov as *const u64) }.map_err(|_| 0)?;
        // SAFETY: as above.
        let len = unsafe { bpf_probe_read_user((iov + 8) as *const u64) }.map_err(|_| 0)?;
        (base, len, name)
    } else {
        (
            syscall_arg(ctx, 1)?,
            syscall_arg(ctx, 2)?,
            syscall_arg(ctx, 4)?,
        )
    };
    Ok((fd, start, len, destination))
}

/// What a netlink send configures that the probe reports.
enum Found {
    /// An NFLOG or NFQUEUE configuration message (its `nlmsg_type`).
    Binding(u16),
    /// An nf_tables rule that copies traffic (a `MIRROR_*` method).
    Mirror(u32),
}

/// Reports an NFLOG or NFQUEUE configuration message (binding a log group or
/// a queue: what turns netfilter capture on), or an nf_tables rule that
/// mirrors traffic (an nft `dup` expression, an x_tables `TEE` target through
/// iptables-nft's compat expression), sent from a monitored container. The
/// bytes are the sender's, read as the call enters; user space checks the
/// socket is netfilter's while the sender lives.
fn report_netlink_send(ctx: &TracePointContext, msghdr: bool) -> Res {
    let (flags, cgroup) = monitored().ok_or(0)?;
    let (fd, start, len, destination) = netlink_send(ctx, msghdr)?;
    let Some(found) = scan_netlink(start, start.saturating_add(len)) else {
        return Ok(());
    };
    // Where the kill is armed, a message addressed to the kernel's netlink
    // (what libmnl and libnfnetlink send, so nft and iptables-nft too) ends
    // the sender as the call returns: before it can read one packet through
    // a binding, and, for a mirroring rule, while the kernel reads the batch,
    // which it then drops whole (`nfnetlink_rcv_batch` checks for a fatal
    // signal before each message), so the rule is never committed. Without an
    // address the bytes might be another protocol's (a proxy forwarding what
    // a remote peer sent, on a TCP or UDP socket), unless the probe saw the
    // process open this fd as a netfilter socket: otherwise user space checks
    // the socket first and kills after the fact.
    let netfilter = is_netlink_socket(fd, linux::NETLINK_NETFILTER);
    let killed = kill_sender(flags, netfilter || sent_to_netlink(destination));
    let (kind, msg_type, method) = match found {
        Found::Binding(msg_type) => (EVENT_NETFILTER, msg_type, 0),
        Found::Mirror(method) => (EVENT_MIRROR, linux::NFT_NEWRULE_TYPE, method),
    };
    let known = if netfilter { FLAG_NETFILTER_SOCKET } else { 0 };
    let sent = Sent {
        kind,
        cgroup,
        flags: known | if killed { FLAG_KILLED } else { 0 },
        protocol: linux::NETLINK_NETFILTER,
        msg_type,
        value: method,
        fd,
        msghdr,
    };
    emit_netlink(&sent)
}

/// Whether `destination` (a `sockaddr` in the caller's memory, 0: none) is a
/// netlink address: the kernel's, or a peer's.
fn sent_to_netlink(destination: u64) -> bool {
    if destination == 0 {
        return false;
    }
    // SAFETY: fault-tolerant read of the caller's sockaddr.
    let family = unsafe { bpf_probe_read_user(destination as *const u16) }.unwrap_or(0);
    u64::from(family) == linux::AF_NETLINK
}

/// Ends the sender where its container enforces and `armed` says the probe
/// is sure enough of what it saw; whether `SIGKILL` was sent.
fn kill_sender(flags: u32, armed: bool) -> bool {
    // SAFETY: plain helper call; signals the current task.
    if flags & MONITOR_ENFORCE != 0 && armed && unsafe { bpf_send_signal(SIGKILL) } == 0 {
        count(COUNTER_KILLS);
        return true;
    }
    false
}

/// A netlink request to report.
struct Sent {
    kind: u32,
    cgroup: u64,
    /// `FLAG_*` bits.
    flags: u32,
    protocol: u64,
    msg_type: u16,
    value: u32,
    fd: u64,
    msghdr: bool,
}

fn emit_netlink(sent: &Sent) -> Res {
    emit_net(sent.kind, sent.cgroup, |e| {
        e.header.flags |= sent.flags;
        e.family = linux::AF_NETLINK as u32;
        // Which call: 1 for sendmsg, 0 for sendto.
        e.level = u32::from(sent.msghdr);
        e.protocol = sent.protocol as u32;
        e.optname = u32::from(sent.msg_type);
        e.value = sent.value;
        e.fd = sent.fd as u32;
    })
}

/// Walks the netlink messages in the caller's `[start, end)`: the first NFLOG
/// or NFQUEUE configuration message, or the first nf_tables rule that names a
/// `dup` expression or a `TEE` target. The walk is one flat loop (what the
/// verifier can follow): a step reads a message header, or, inside an
/// `NFT_MSG_NEWRULE` message only (its type is checked first), one 4-byte
/// aligned position (netlink attributes are 4-byte aligned) read as an
/// attribute header and the first four bytes of its value: type 1 (flag bits
/// ignored, as the kernel does) and a name the kernel would take for `dup`
/// (`nla_strcmp`: with or without one NUL) or `TEE` (read up to its NUL).
/// Another attribute of type 1 with those bytes is the rule's table
/// (`NFTA_RULE_TABLE`), skipped where libnftnl puts it; one elsewhere could
/// only be a false alarm, never a miss.
fn scan_netlink(start: u64, end: u64) -> Option<Found> {
    // Every state is kept in values the verifier does not know (addresses),
    // and the body branches little (plain additions of user addresses wrap,
    // harmlessly: a wrapped address faults in the read helper), so that its
    // walk of the loop stays within its limits: a counter of messages or a
    // flag would multiply the states it follows, and every branch is a jump
    // it must remember.
    let mut at = start;
    let mut next_message = start;
    // Where the rule being scanned ends (0: not in a rule), and where its
    // attributes start.
    let mut rule_end = 0u64;
    let mut rule_attrs = 0u64;
    for _ in 0..NETLINK_SCAN_STEPS {
        if at.wrapping_add(8) <= rule_end {
            // SAFETY: fault-tolerant read of the caller's buffer.
            let word = unsafe { bpf_probe_read_user(at as *const u64) }.unwrap_or(0);
            // An attribute header (length, type without its flag bits) and
            // the first four bytes of its value.
            let len = word & 0xffff;
            let name = word >> 32;
            if (word >> 16) & linux::NLA_TYPE_MASK == linux::NLA_NAME_TYPE && at != rule_attrs {
                if (len == 8 && name == linux::NAME_DUP)
                    || (len == 7 && name & 0xff_ffff == linux::NAME_DUP)
                {
                    return Some(Found::Mirror(MIRROR_NFT_DUP));
                }
                if len >= 8 && name == linux::NAME_TEE {
                    return Some(Found::Mirror(MIRROR_XT_TEE));
                }
            }
            at = at.wrapping_add(4);
            continue;
        }
        at = next_message;
        if at.wrapping_add(u64::from(linux::NLMSG_HDRLEN)) > end {
            return None;
        }
        // SAFETY: fault-tolerant read of the caller's buffer: the header's
        // length and type.
        let header = unsafe { bpf_probe_read_user(at as *const u64) }.unwrap_or(0);
        let msg_len = header & 0xffff_ffff;
        let msg_type = ((header >> 32) & 0xffff) as u16;
        if msg_len < u64::from(linux::NLMSG_HDRLEN) {
            return None;
        }
        if msg_type == linux::NFULNL_CONFIG_TYPE || msg_type == linux::NFQNL_CONFIG_TYPE {
            return Some(Found::Binding(msg_type));
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        next_message = at.wrapping_add((msg_len + 3) & !3);
        rule_end = 0;
        if msg_type == linux::NFT_NEWRULE_TYPE {
            rule_attrs = at.wrapping_add(NFT_RULE_ATTRS);
            rule_end = next_message.min(end);
            at = rule_attrs;
        }
    }
    None
}

/// `NETLINK_ROUTE` requests are looked at by programs of their own on the
/// same tracepoints: each program is verified alone, and the netfilter scan
/// and the link walk together would exceed what the verifier follows.
#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn link_sendto(ctx: TracePointContext) -> u32 {
    let _ = report_link_send(&ctx, false);
    0
}

/// See [`link_sendto`].
#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn link_sendmsg(ctx: TracePointContext) -> u32 {
    let _ = report_link_send(&ctx, true);
    0
}

/// Reports a `NETLINK_ROUTE` request that sets promiscuous mode or installs a
/// tc `mirred` action ([`sets_promisc`], [`carries_mirred`]), sent from a
/// monitored container, within the first messages of the send. The bytes are
/// the sender's, read as the call enters; user space checks the socket.
fn report_link_send(ctx: &TracePointContext, msghdr: bool) -> Res {
    let (flags, cgroup) = monitored().ok_or(0)?;
    let (fd, mut at, len, destination) = netlink_send(ctx, msghdr)?;
    let end = at.saturating_add(len);
    let send = Send {
        flags,
        cgroup,
        fd,
        destination,
        msghdr,
    };
    let (mut tc_type, mut tc_at, mut tc_len) = (0u16, 0u64, 0u64);
    let mut scanned = 0;
    while scanned < NETLINK_MESSAGES_SCANNED {
        if at.saturating_add(u64::from(linux::NLMSG_HDRLEN)) > end {
            break;
        }
        // SAFETY: fault-tolerant reads of the caller's buffer.
        let Ok(msg_len) = (unsafe { bpf_probe_read_user(at as *const u32) }) else {
            break;
        };
        // SAFETY: as above.
        let Ok(msg_type) =
            (unsafe { bpf_probe_read_user((at + linux::NLMSG_TYPE_OFFSET) as *const u16) })
        else {
            break;
        };
        if msg_len < linux::NLMSG_HDRLEN {
            break;
        }
        match capture::link_channel(msg_type) {
            Some(LinkChannel::Promiscuous) => {
                let available = end.saturating_sub(at).min(u64::from(msg_len));
                if let Some(value) = sets_promisc(at, available) {
                    return report_link(&send, msg_type, value);
                }
            }
            // Searched once the walk is over, and only the first: the
            // search is the costly part, for the verifier too.
            Some(LinkChannel::Mirroring) if tc_type == 0 => {
                tc_type = msg_type;
                tc_at = at;
                tc_len = end.saturating_sub(at).min(u64::from(msg_len));
            }
            _ => {}
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        at = at.saturating_add((u64::from(msg_len) + 3) & !3);
        scanned += 1;
    }
    if tc_type != 0 && carries_mirred(tc_at, tc_len) {
        return report_link(&send, tc_type, 0);
    }
    Ok(())
}

/// Whether the link message at `at` (`len` bytes sent) turns promiscuous
/// mode on; `Some` of its `ifi_flags` if so.
fn sets_promisc(at: u64, len: u64) -> Option<u32> {
    if len < u64::from(linux::NLMSG_HDRLEN + linux::IFINFOMSG_LEN) {
        return None;
    }
    let body = at + u64::from(linux::NLMSG_HDRLEN);
    // SAFETY: fault-tolerant reads of the caller's ifinfomsg.
    let flags =
        unsafe { bpf_probe_read_user((body + linux::IFINFOMSG_FLAGS_OFFSET) as *const u32) }
            .ok()?;
    // SAFETY: as above.
    let change =
        unsafe { bpf_probe_read_user((body + linux::IFINFOMSG_CHANGE_OFFSET) as *const u32) }
            .ok()?;
    capture::sets_promisc(flags, change).then_some(flags)
}

/// Whether the tc message at `at` (`len` bytes sent) carries a `mirred`
/// action, judged by its first `NETLINK_SCAN_BYTES` bytes
/// ([`capture::carries_mirred`]).
#[inline(never)]
fn carries_mirred(at: u64, len: u64) -> bool {
    let Some(scratch) = SG_NETLINK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: the per-CPU scratch slot is exclusively ours while this
    // program runs on this CPU.
    let buf = unsafe { &mut *scratch };
    // Only the bytes sent are read: a message that ends where its mapping
    // ends must not fail the read.
    let len = len.min(NETLINK_SCAN_BYTES as u64) as u32;
    if len == 0 || len > NETLINK_SCAN_BYTES as u32 {
        return false;
    }
    // SAFETY: `buf` holds NETLINK_SCAN_BYTES bytes and `len` is at most
    // that; the helper tolerates faults in the source.
    let read = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            buf.as_mut_ptr().cast(),
            len,
            at as *const core::ffi::c_void,
        )
    };
    read == 0 && capture::carries_mirred(buf, len as usize)
}

/// A netlink send being looked at: its container's monitoring flags and id,
/// the socket, the destination address (0: none) and the call.
#[derive(Clone, Copy)]
struct Send {
    flags: u32,
    cgroup: u64,
    fd: u64,
    destination: u64,
    msghdr: bool,
}

/// Reports a link or tc request. In enforce
/// containers the sender is killed as the call enters when the probe saw it
/// open this fd as a `NETLINK_ROUTE` socket and the message goes to the
/// kernel (no address: the socket's default, or a netlink address); user
/// space checks the rest.
fn report_link(send: &Send, msg_type: u16, value: u32) -> Res {
    let Send {
        flags,
        cgroup,
        fd,
        destination,
        msghdr,
    } = *send;
    let route = is_netlink_socket(fd, linux::NETLINK_ROUTE);
    // To the kernel: no address (the socket's default), or a netlink one.
    let killed = kill_sender(
        flags,
        route && (destination == 0 || sent_to_netlink(destination)),
    );
    let known = if route { FLAG_ROUTE_SOCKET } else { 0 };
    emit_netlink(&Sent {
        kind: EVENT_LINK,
        cgroup,
        flags: known | if killed { FLAG_KILLED } else { 0 },
        protocol: linux::NETLINK_ROUTE,
        msg_type,
        value,
        fd,
        msghdr,
    })
}
