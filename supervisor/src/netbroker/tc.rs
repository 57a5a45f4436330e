//! Removing tc mirroring from a network namespace, for the broker: every
//! filter that carries a `mirred` action, on every qdisc and class of every
//! interface, and every standalone `mirred` action.
//!
//! The kernel here cannot refuse one rtnetlink message (no BPF-LSM, no
//! trampolines, no kprobe override), so a container that keeps
//! `CAP_NET_ADMIN` gets its `RTM_NEWTFILTER` applied before the probe's kill
//! lands; in an environment whose policy refuses capture, the mirror it
//! installed must not outlive it.
//!
//! Written by hand rather than with `netlink-packet-route`: the broker needs
//! five requests and a search for a `mirred` action kind inside any
//! classifier's options (kinds a typed model may not know), and it runs under
//! a seccomp filter that allows `sendmsg`/`recvmsg` on one `NETLINK_ROUTE`
//! socket and nothing a netlink library's own socket set-up would add.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, MsgFlags};

const NETLINK_ROUTE: i32 = 0;
const NLMSG_HDRLEN: usize = 16;
/// `struct tcmsg`: family, three pad bytes, ifindex, handle, parent, info.
const TCMSG_LEN: usize = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTCLASS: u16 = 40;
const RTM_GETTCLASS: u16 = 42;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const RTM_DELACTION: u16 = 49;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ROOT: u16 = 0x100;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
/// `TCA_KIND`, `TCA_CHAIN` of a qdisc, class or filter message.
const TCA_KIND: u16 = 1;
const TCA_CHAIN: u16 = 11;
/// `TCA_ACT_TAB` of an action message, and `TCA_ACT_KIND` inside one action.
const TCA_ACT_TAB: u16 = 1;
const TCA_ACT_KIND: u16 = 1;
/// The clsact qdisc's two filter blocks (`TC_H_MIN_INGRESS`, `TC_H_MIN_EGRESS`).
const TC_H_MIN_INGRESS: u32 = 0xFFF2;
const TC_H_MIN_EGRESS: u32 = 0xFFF3;
/// Bounds: filter blocks looked at, filters removed, messages of one dump.
const MAX_PARENTS: usize = 1024;
const MAX_REMOVED: usize = 4096;
const MAX_DUMP_MESSAGES: usize = 65_536;
/// One receive: the kernel's dump replies fit in 32 KiB.
const RECEIVE_BYTES: usize = 64 * 1024;

/// A filter block to dump: an interface and a parent (qdisc or class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    ifindex: i32,
    parent: u32,
}

/// A filter to delete, as its dump named it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    ifindex: i32,
    parent: u32,
    handle: u32,
    /// Priority and protocol (`tcm_info`).
    info: u32,
    kind: Vec<u8>,
    chain: Option<u32>,
}

/// Removes every filter with a `mirred` action and flushes the standalone
/// `mirred` actions of the calling thread's network namespace; returns how
/// many filters were removed.
pub(super) fn remove_mirroring() -> Result<u32, Errno> {
    let socket = Rtnetlink::open()?;
    let mut parents = Vec::new();
    let mut interfaces = Vec::new();
    socket.dump(RTM_GETQDISC, &tcmsg(0, 0, 0, 0), |msg_type, body| {
        if msg_type != RTM_NEWQDISC {
            return;
        }
        let Some(qdisc) = TcHeader::parse(body) else {
            return;
        };
        if !interfaces.contains(&qdisc.ifindex) {
            interfaces.push(qdisc.ifindex);
        }
        let major = qdisc.handle & 0xFFFF_0000;
        let blocks: &[u32] = if attribute(body, TCA_KIND) == Some(b"clsact\0") {
            &[major | TC_H_MIN_INGRESS, major | TC_H_MIN_EGRESS]
        } else {
            &[qdisc.handle]
        };
        for &parent in blocks {
            push_bounded(
                &mut parents,
                Parent {
                    ifindex: qdisc.ifindex,
                    parent,
                },
            );
        }
    })?;
    for &ifindex in &interfaces {
        socket.dump(RTM_GETTCLASS, &tcmsg(ifindex, 0, 0, 0), |msg_type, body| {
            if let (RTM_NEWTCLASS, Some(class)) = (msg_type, TcHeader::parse(body)) {
                push_bounded(
                    &mut parents,
                    Parent {
                        ifindex,
                        parent: class.handle,
                    },
                );
            }
        })?;
    }
    let mut mirrors = Vec::new();
    for block in &parents {
        let request = tcmsg(block.ifindex, 0, block.parent, 0);
        socket.dump(RTM_GETTFILTER, &request, |msg_type, body| {
            if msg_type != RTM_NEWTFILTER || !carries_mirred(body) {
                return;
            }
            if let Some(filter) = TcHeader::parse(body) {
                let chain = attribute(body, TCA_CHAIN)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_ne_bytes);
                let kind = attribute(body, TCA_KIND).unwrap_or_default().to_vec();
                if mirrors.len() < MAX_REMOVED {
                    mirrors.push(Filter {
                        ifindex: filter.ifindex,
                        parent: block.parent,
                        handle: filter.handle,
                        info: filter.info,
                        kind,
                        chain,
                    });
                }
            }
        })?;
    }
    let mut removed = 0u32;
    for filter in &mirrors {
        let mut request = tcmsg(filter.ifindex, filter.handle, filter.parent, filter.info);
        put_attribute(&mut request, TCA_KIND, &filter.kind);
        if let Some(chain) = filter.chain {
            put_attribute(&mut request, TCA_CHAIN, &chain.to_ne_bytes());
        }
        match socket.request(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, &request) {
            Ok(()) => removed += 1,
            // Gone with an earlier one (the same classifier instance).
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(errno),
        }
    }
    flush_mirred_actions(&socket)?;
    Ok(removed)
}

/// Flushes the namespace's `mirred` actions not bound to a filter (the
/// kernel stops the flush at the first bound one).
fn flush_mirred_actions(socket: &Rtnetlink) -> Result<(), Errno> {
    // struct tcamsg: family and three pad bytes.
    let mut request = vec![0u8; 4];
    let mut kind = Vec::new();
    put_attribute(&mut kind, TCA_ACT_KIND, b"mirred\0");
    let mut first = Vec::new();
    put_attribute(&mut first, 1 | NLA_F_NESTED, &kind);
    put_attribute(&mut request, TCA_ACT_TAB | NLA_F_NESTED, &first);
    match socket.request(
        RTM_DELACTION,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_ROOT,
        &request,
    ) {
        // None there, or the action kind was never loaded; or one still
        // bound to a filter (the kernel releases a deleted filter's actions
        // after an RCU grace period): it goes with its filter, and a
        // standalone action mirrors nothing until a filter binds it, which
        // the probe sees as one more mirred request.
        Ok(()) | Err(Errno::ENOENT | Errno::EINVAL | Errno::EPERM) => Ok(()),
        Err(errno) => Err(errno),
    }
}

fn push_bounded(parents: &mut Vec<Parent>, parent: Parent) {
    if parents.len() < MAX_PARENTS && !parents.contains(&parent) {
        parents.push(parent);
    }
}

/// The `struct tcmsg` fields a dump answers with.
struct TcHeader {
    ifindex: i32,
    handle: u32,
    info: u32,
}

impl TcHeader {
    fn parse(body: &[u8]) -> Option<TcHeader> {
        let word = |at: usize| -> Option<[u8; 4]> { body.get(at..at + 4)?.try_into().ok() };
        Some(TcHeader {
            ifindex: i32::from_ne_bytes(word(4)?),
            handle: u32::from_ne_bytes(word(8)?),
            info: u32::from_ne_bytes(word(16)?),
        })
    }
}

fn tcmsg(ifindex: i32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut msg = vec![0u8; TCMSG_LEN];
    msg[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    msg[8..12].copy_from_slice(&handle.to_ne_bytes());
    msg[12..16].copy_from_slice(&parent.to_ne_bytes());
    msg[16..20].copy_from_slice(&info.to_ne_bytes());
    msg
}

/// Appends a netlink attribute, padded to 4 bytes.
fn put_attribute(msg: &mut Vec<u8>, nla_type: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&nla_type.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(msg.len().next_multiple_of(4), 0);
}

/// The value of the top-level attribute `nla_type` after a `tcmsg`.
fn attribute(body: &[u8], nla_type: u16) -> Option<&[u8]> {
    let mut at = TCMSG_LEN;
    while let Some(header) = body.get(at..at + 4) {
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let this = u16::from_ne_bytes([header[2], header[3]]) & !NLA_F_NESTED;
        if len < 4 {
            return None;
        }
        if this == nla_type {
            return body.get(at + 4..at + len);
        }
        at += len.next_multiple_of(4);
    }
    None
}

/// Whether a filter message carries a `mirred` action: an attribute of type
/// `TCA_ACT_KIND` whose value is `mirred`, wherever it is nested (each
/// classifier nests its actions in its own options).
fn carries_mirred(body: &[u8]) -> bool {
    const MIRRED: &[u8] = b"mirred\0";
    (TCMSG_LEN..body.len().saturating_sub(4 + MIRRED.len() - 1))
        .step_by(4)
        .any(|at| {
            let header = &body[at..at + 4];
            let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
            let nla_type = u16::from_ne_bytes([header[2], header[3]]) & !NLA_F_NESTED;
            nla_type == TCA_ACT_KIND
                && len == 4 + MIRRED.len()
                && body.get(at + 4..at + len) == Some(MIRRED)
        })
}

/// A `NETLINK_ROUTE` socket of the calling thread's network namespace.
struct Rtnetlink {
    fd: OwnedFd,
}

impl Rtnetlink {
    fn open() -> Result<Rtnetlink, Errno> {
        // SAFETY: socket(2) takes three integers and returns a new fd or -1.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: socket(2) just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Rtnetlink { fd })
    }

    fn send(&self, msg_type: u16, flags: u16, body: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(NLMSG_HDRLEN + body.len()).map_err(|_| Errno::EMSGSIZE)?;
        // One request at a time, each answer read to its end before the next
        // request: no sequence number is needed to tell them apart.
        let seq = 1u32;
        let mut header = [0u8; NLMSG_HDRLEN];
        header[0..4].copy_from_slice(&len.to_ne_bytes());
        header[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        header[6..8].copy_from_slice(&flags.to_ne_bytes());
        header[8..12].copy_from_slice(&seq.to_ne_bytes());
        // Unaddressed: an unconnected netlink socket sends to the kernel.
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&header), IoSlice::new(body)],
            &[],
            MsgFlags::empty(),
            None,
        )?;
        Ok(())
    }

    /// Reads answers until `NLMSG_DONE` (a dump) or the acknowledgement (a
    /// request), handing each other message to `each`.
    fn receive(&self, mut each: impl FnMut(u16, &[u8])) -> Result<(), Errno> {
        let mut buffer = vec![0u8; RECEIVE_BYTES];
        let mut messages = 0usize;
        loop {
            let (len, truncated) = {
                let mut iov = [IoSliceMut::new(&mut buffer)];
                let got = recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, None, MsgFlags::empty())?;
                (got.bytes, got.flags.contains(MsgFlags::MSG_TRUNC))
            };
            if truncated || len == 0 {
                return Err(Errno::EMSGSIZE);
            }
            let mut at = 0;
            while let Some(header) = buffer[..len].get(at..at + NLMSG_HDRLEN) {
                let msg_len =
                    u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let msg_type = u16::from_ne_bytes([header[4], header[5]]);
                if msg_len < NLMSG_HDRLEN || at + msg_len > len {
                    return Err(Errno::EBADMSG);
                }
                let body = &buffer[at + NLMSG_HDRLEN..at + msg_len];
                match msg_type {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(i32::from_ne_bytes)
                            .ok_or(Errno::EBADMSG)?;
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(Errno::from_raw(code.saturating_neg()))
                        };
                    }
                    _ => each(msg_type, body),
                }
                messages += 1;
                if messages > MAX_DUMP_MESSAGES {
                    return Err(Errno::E2BIG);
                }
                at += msg_len.next_multiple_of(4);
            }
        }
    }

    fn dump(&self, msg_type: u16, body: &[u8], each: impl FnMut(u16, &[u8])) -> Result<(), Errno> {
        self.send(msg_type, NLM_F_REQUEST | NLM_F_DUMP, body)?;
        self.receive(each)
    }

    fn request(&self, msg_type: u16, flags: u16, body: &[u8]) -> Result<(), Errno> {
        self.send(msg_type, flags, body)?;
        self.receive(|_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_with_action(kind: &[u8]) -> Vec<u8> {
        let mut body = tcmsg(1, 0x800_0800, 0xFFFF_FFF3, 0xC000_0003);
        put_attribute(&mut body, TCA_KIND, b"u32\0");
        let mut action = Vec::new();
        put_attribute(&mut action, TCA_ACT_KIND, kind);
        let mut options = Vec::new();
        put_attribute(&mut options, 1 | NLA_F_NESTED, &action);
        put_attribute(&mut body, 2 | NLA_F_NESTED, &options);
        put_attribute(&mut body, TCA_CHAIN, &7u32.to_ne_bytes());
        body
    }

    #[test]
    fn a_mirred_action_is_found_wherever_it_is_nested() {
        assert!(carries_mirred(&filter_with_action(b"mirred\0")));
        assert!(!carries_mirred(&filter_with_action(b"gact\0")));
        assert!(!carries_mirred(&filter_with_action(b"mirredx\0")));
        // The name as another attribute's value is not an action kind.
        let mut body = tcmsg(1, 0, 0, 0);
        put_attribute(&mut body, TCA_KIND, b"mirred\0");
        put_attribute(&mut body, 5, b"mirred\0");
        assert!(carries_mirred(&body), "type 1 at the top is TCA_KIND");
        let mut other = tcmsg(1, 0, 0, 0);
        put_attribute(&mut other, 5, b"mirred\0");
        assert!(!carries_mirred(&other));
    }

    #[test]
    fn top_level_attributes_are_read_and_bounded() {
        let body = filter_with_action(b"mirred\0");
        assert_eq!(attribute(&body, TCA_KIND), Some(&b"u32\0"[..]));
        assert_eq!(attribute(&body, TCA_CHAIN), Some(&7u32.to_ne_bytes()[..]));
        assert_eq!(attribute(&body, 9), None);
        let header = TcHeader::parse(&body).unwrap();
        assert_eq!(
            (header.ifindex, header.handle, header.info),
            (1, 0x800_0800, 0xC000_0003)
        );
        // Truncated and zero-length attributes end the walk without a panic.
        assert_eq!(attribute(&body[..TCMSG_LEN + 6], TCA_CHAIN), None);
        let mut zero = tcmsg(0, 0, 0, 0);
        zero.extend_from_slice(&[0, 0, 1, 0]);
        assert_eq!(attribute(&zero, TCA_KIND), None);
        assert!(TcHeader::parse(&body[..12]).is_none());
        assert!(!carries_mirred(&body[..3]));
    }
}
