//! What a socket-probe event means: capture sockets, promiscuous mode,
//! netfilter bindings and mirroring rules, link and tc requests — each
//! checked against what the socket really is while the sender lives — and
//! what the enforce backstop does about them beyond the kill (other holders of
//! a capture socket, promiscuous mode turned back off).

use sniffguard_common::abi::{
    self, linux, NetEvent, FLAG_KILLED, FLAG_NETFILTER_SOCKET, FLAG_ROUTE_SOCKET,
};
use sniffguard_common::capture::{self, LinkChannel};
use sniffguard_common::policy::Policy;

use super::text;
use crate::classify::Evidence;
use crate::finding::{self, Finding};
use crate::{procfs, Shared};

/// A socket-probe event's finding, when the policy looks at behaviour; the
/// process is named by its `comm` as the kernel saw it too, for one gone
/// before `/proc` is read.
pub(super) fn judge_net(net: &NetEvent, policy: &Policy, environment: &str) -> Option<Finding> {
    if !policy.catalogue.behaviour {
        return None;
    }
    classify_net(net, policy, environment).map(|evidence| {
        let mut finding = Finding::new(
            vec![evidence],
            procfs::running_exe(net.header.tgid),
            procfs::cmdline(net.header.tgid),
        );
        finding.process.comm = Some(text(abi::c_str(&net.comm)));
        finding
    })
}

/// Whether the evidence is promiscuous mode set as an interface flag
/// (`SIOCSIFFLAGS`, `RTM_NEWLINK`/`RTM_SETLINK`): a flag that outlives the
/// process that set it, unlike a packet socket's membership.
pub(super) fn sets_interface_flag(evidence: &[Evidence]) -> bool {
    evidence.iter().any(|e| {
        matches!(e, Evidence::Promiscuous { method }
            if method.starts_with("RTM_") || method.starts_with("SIOCSIFFLAGS"))
    })
}

/// How long a killed sender may take to die before what its request set is
/// undone anyway (it dies as its system call returns; a call stuck in the
/// kernel could take longer).
const SENDER_EXIT_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the evidence is tc mirroring installed over rtnetlink: a filter or
/// action that outlives the process that installed it.
pub(super) fn installs_tc_mirroring(evidence: &[Evidence]) -> bool {
    evidence
        .iter()
        .any(|e| matches!(e, Evidence::Mirroring { method } if method.starts_with("tc mirred")))
}

/// Undoes, through the network broker, what a killed sender's rtnetlink
/// request set in its network namespace (or, once it is gone, in the
/// container's init's): the kernel applied the request before the kill
/// landed. `what` names it for the log; `done` words the broker's count.
/// Returns what to say in the alert.
fn undo_in_netns(
    shared: &Shared,
    sender: u32,
    init: Option<u32>,
    what: &str,
    undo: impl FnOnce(
        &crate::netbroker::Broker,
        std::os::fd::BorrowedFd<'_>,
    ) -> Result<u32, nix::errno::Errno>,
    done: impl FnOnce(u32) -> String,
) -> String {
    let netns = std::fs::File::open(format!("/proc/{sender}/ns/net")).or_else(|err| match init {
        Some(init) => std::fs::File::open(format!("/proc/{init}/ns/net")),
        None => Err(err),
    });
    // The event was sent as the request entered the kernel: the kernel applies
    // it, and the sender dies, as the call returns. Undone before that, it
    // would be done again right after.
    if !crate::respond::wait_for_exit(sender, SENDER_EXIT_BOUND) {
        tracing::warn!(
            pid = sender,
            "a killed sender is still there after {SENDER_EXIT_BOUND:?}; undoing {what} anyway"
        );
    }
    let outcome = match (netns, shared.netbroker.as_ref()) {
        (Ok(netns), Some(broker)) => {
            undo(broker, std::os::fd::AsFd::as_fd(&netns)).map_err(|errno| errno.to_string())
        }
        (Err(err), _) => Err(format!("the container's network namespace is gone ({err})")),
        (_, None) => Err("no network broker".to_string()),
    };
    match outcome {
        Ok(count) => done(count),
        Err(why) => {
            tracing::warn!(pid = sender, why, "{what} could not be undone");
            format!("{what} could NOT be undone: {why}")
        }
    }
}

/// Turns promiscuous mode back off in the killed sender's network namespace.
pub(super) fn clear_promiscuous(shared: &Shared, sender: u32, init: Option<u32>) -> String {
    undo_in_netns(
        shared,
        sender,
        init,
        "promiscuous mode",
        |broker, netns| broker.clear_promiscuous(netns),
        |cleared| format!("promiscuous mode turned back off ({cleared} interface(s) had it)"),
    )
}

/// Removes tc mirroring from the killed sender's network namespace: every
/// filter with a `mirred` action, and the standalone `mirred` actions.
pub(super) fn remove_tc_mirroring(shared: &Shared, sender: u32, init: Option<u32>) -> String {
    undo_in_netns(
        shared,
        sender,
        init,
        "tc mirroring",
        |broker, netns| broker.remove_mirroring(netns),
        |removed| {
            format!(
                "tc mirroring removed ({removed} filter(s) with a mirred action, and the \
                 standalone mirred actions)"
            )
        },
    )
}

/// Turns a socket-probe event into evidence. The kernel side already filtered
/// on the syscall arguments; filters are only sniffing on packet sockets.
fn classify_net(net: &NetEvent, policy: &Policy, environment: &str) -> Option<Evidence> {
    match net.header.kind {
        abi::EVENT_SOCKET => {
            capture::capture_socket(net.family.into(), net.sock_type.into(), net.protocol.into())
                .filter(|rule| {
                    policy.catalogue.raw_icmp_is_capture
                        || !capture::is_raw_icmp(rule, net.protocol.into())
                })
                .map(|rule| finding::capture_socket_evidence(rule, net.sock_type))
        }
        abi::EVENT_SETSOCKOPT if u64::from(net.level) == linux::SOL_PACKET => {
            Some(Evidence::Promiscuous {
                method: "PACKET_ADD_MEMBERSHIP".into(),
            })
        }
        abi::EVENT_SETSOCKOPT => {
            is_packet_socket(net.header.tgid, net.fd).then(|| Evidence::SocketFilter {
                option: if u64::from(net.optname) == linux::SO_ATTACH_BPF {
                    "SO_ATTACH_BPF".into()
                } else {
                    "SO_ATTACH_FILTER".into()
                },
            })
        }
        abi::EVENT_NETFILTER => netfilter_binding(net),
        abi::EVENT_MIRROR => mirroring_rule(net),
        // An environment that allows program loads (`bpf_programs`) lets
        // them run unreported; where it enforces, the seccomp filter saw the
        // load first and let it through for that reason.
        abi::EVENT_BPF
            if policy
                .environment(environment)
                .is_ok_and(|(_, env)| env.bpf_programs) =>
        {
            None
        }
        abi::EVENT_BPF => abi::capture_program_type(net.value).map(|name| Evidence::BpfProgram {
            program_type: name.to_string(),
        }),
        abi::EVENT_LINK => link_request(net),
        abi::EVENT_IOCTL => Some(Evidence::Promiscuous {
            method: "SIOCSIFFLAGS".into(),
        }),
        _ => None,
    }
}

/// An NFLOG or NFQUEUE configuration message the probe saw sent. Its bytes
/// were read from the sender's memory: what the socket is, is checked here
/// while the sender lives (a netfilter netlink socket, `/proc/PID/net/netlink`
/// protocol 12); one that is gone already, or that the probe killed, is taken
/// as the probe saw it.
fn netfilter_binding(net: &NetEvent) -> Option<Evidence> {
    // A sender the probe killed is reported whatever its socket was.
    if !is_netfilter_socket(net) {
        return None;
    }
    let method = format!("nlmsg_type {:#06x} on NETLINK_NETFILTER", net.optname);
    match u16::try_from(net.optname).ok()? {
        linux::NFULNL_CONFIG_TYPE => Some(Evidence::NetfilterLog { method }),
        linux::NFQNL_CONFIG_TYPE => Some(Evidence::NetfilterQueue { method }),
        _ => None,
    }
}

/// An nf_tables rule that copies traffic, seen sent by the probe: reported
/// when the socket is netfilter's (checked as for [`netfilter_binding`]).
fn mirroring_rule(net: &NetEvent) -> Option<Evidence> {
    if !is_netfilter_socket(net) {
        return None;
    }
    let method = match net.value {
        abi::MIRROR_NFT_DUP => "nft dup",
        abi::MIRROR_XT_TEE => "iptables TEE",
        _ => return None,
    };
    Some(Evidence::Mirroring {
        method: method.to_string(),
    })
}

/// Whether the fd of a netlink event is a netfilter netlink socket: the probe
/// saw the process open it as one, or killed the sender, or else
/// `/proc/PID/net/netlink` says protocol 12 (a socket inherited or passed
/// on); a sender gone already is taken as the probe saw it. The probe's word
/// comes first: by the time `/proc` is read the sender may have closed the
/// socket and reused its number for another.
fn is_netfilter_socket(net: &NetEvent) -> bool {
    if net.header.flags & (FLAG_KILLED | FLAG_NETFILTER_SOCKET) != 0 {
        return true;
    }
    socket_in_table(net.header.tgid, net.fd, "netlink", |fields| {
        fields.get(1) == Some(&"12")
    })
    .unwrap_or(true)
}

/// A `NETLINK_ROUTE` request the probe saw sent: promiscuous mode by
/// `RTM_NEWLINK`/`RTM_SETLINK`, or a tc `mirred` action. The message types
/// are shared with other netlink families (generic netlink's controller is
/// 16 too), so the socket must be `NETLINK_ROUTE`: the probe saw the process
/// open that fd as one (or killed it), or else `/proc/PID/net/netlink` says
/// so (protocol 0) while the sender lives — a socket inherited or passed on.
/// The probe's word comes first: by the time `/proc` is read the sender may
/// have closed the socket and reused its number for another (what `ip` and
/// `tc` do not, and what would otherwise hide the request).
pub(super) fn link_request(net: &NetEvent) -> Option<Evidence> {
    if net.header.flags & (FLAG_KILLED | FLAG_ROUTE_SOCKET) == 0 {
        let is_route = socket_in_table(net.header.tgid, net.fd, "netlink", |fields| {
            fields.get(1) == Some(&"0")
        });
        if is_route != Some(true) {
            tracing::debug!(
                pid = net.header.tgid,
                fd = net.fd,
                ?is_route,
                "a link or tc request on a socket not known to be NETLINK_ROUTE"
            );
            return None;
        }
    }
    let msg_type = u16::try_from(net.optname).ok()?;
    let name = match msg_type {
        linux::RTM_NEWLINK => "RTM_NEWLINK",
        linux::RTM_SETLINK => "RTM_SETLINK",
        linux::RTM_NEWTFILTER => "RTM_NEWTFILTER",
        linux::RTM_NEWACTION => "RTM_NEWACTION",
        _ => return None,
    };
    match capture::link_channel(msg_type)? {
        LinkChannel::Promiscuous => Some(Evidence::Promiscuous {
            method: name.into(),
        }),
        LinkChannel::Mirroring => Some(Evidence::Mirroring {
            method: format!("tc mirred ({name})"),
        }),
    }
}

/// Whether fd `fd` of `tgid` is a socket listed in `/proc/PID/net/TABLE` on a
/// line whose fields `select` accepts; `None` when the process or its fd is
/// gone.
fn socket_in_table(
    tgid: u32,
    fd: u32,
    table: &str,
    select: impl Fn(&[&str]) -> bool,
) -> Option<bool> {
    let link = std::fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    let link = link.to_string_lossy();
    let Some(inode) = link
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
    else {
        return Some(false);
    };
    let text = std::fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
    let listed = text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.last() == Some(&inode) && select(&fields)
    });
    // A socket closed between the two reads is in neither: unknown, not
    // "another socket" (`ip` and `tc` close theirs and exit at once).
    if !listed
        && std::fs::read_link(format!("/proc/{tgid}/fd/{fd}"))
            .ok()
            .is_none_or(|now| now.to_string_lossy() != link)
    {
        return None;
    }
    Some(listed)
}

/// Whether fd `fd` of `tgid` is a packet socket: its inode is listed in the
/// process's `/proc/PID/net/packet`.
fn is_packet_socket(tgid: u32, fd: u32) -> bool {
    socket_in_table(tgid, fd, "packet", |_| true).unwrap_or(false)
}

/// Ends every process of the container of `init` that holds a capture
/// socket, now and once more a moment later: the creator was killed at the
/// socket call's entry, and the call may complete (installing the fd in a
/// shared file table) just after the first look.
pub(super) fn sweep_capture_holders(container: &str, init: u32, responses: &mut Vec<String>) {
    let killed = crate::sweep::end_capture_holders(init);
    if !killed.is_empty() {
        tracing::warn!(container, pids = ?killed, "capture socket holders ended");
        responses.push(format!(
            "ended {} other holder(s) of the capture socket",
            killed.len()
        ));
    }
    let container = container.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let killed = crate::sweep::end_capture_holders(init);
        if !killed.is_empty() {
            tracing::warn!(container, pids = ?killed, "capture socket holders ended (second look)");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_event(msg_type: u16, flags: u32) -> NetEvent {
        NetEvent {
            header: abi::EventHeader {
                kind: abi::EVENT_LINK,
                flags,
                // No such process: /proc has nothing to say.
                tgid: u32::MAX,
                ..abi::EventHeader::default()
            },
            optname: u32::from(msg_type),
            fd: 3,
            ..NetEvent::default()
        }
    }

    #[test]
    fn link_requests_are_named_by_their_message_type() {
        let promisc = |method: &str| Evidence::Promiscuous {
            method: method.into(),
        };
        let mirror = |method: &str| Evidence::Mirroring {
            method: method.into(),
        };
        let cases = [
            (linux::RTM_NEWLINK, Some(promisc("RTM_NEWLINK"))),
            (linux::RTM_SETLINK, Some(promisc("RTM_SETLINK"))),
            (
                linux::RTM_NEWTFILTER,
                Some(mirror("tc mirred (RTM_NEWTFILTER)")),
            ),
            (
                linux::RTM_NEWACTION,
                Some(mirror("tc mirred (RTM_NEWACTION)")),
            ),
            (20, None),
        ];
        for (msg_type, expected) in cases {
            assert_eq!(
                link_request(&link_event(msg_type, FLAG_ROUTE_SOCKET)),
                expected,
                "{msg_type}"
            );
            assert_eq!(
                link_request(&link_event(msg_type, FLAG_KILLED)),
                expected,
                "{msg_type} killed"
            );
        }
    }

    #[test]
    fn a_link_request_on_an_unknown_socket_of_a_gone_process_is_not_believed() {
        assert_eq!(link_request(&link_event(linux::RTM_NEWLINK, 0)), None);
    }
}
