//! The network broker: a small process `sniffguard run` starts before it drops
//! its capabilities, which keeps two of them for two requests about enforced
//! containers that keep `CAP_NET_ADMIN` themselves:
//!
//! - set an interface's flags through the container's own socket (the
//!   `ioctl(SIOCSIFFLAGS)` the supervisor performs for the caller, with the
//!   copy of the request it judged, so that no second thread can turn
//!   promiscuous mode on after the check): `CAP_NET_ADMIN`;
//! - turn promiscuous mode back off on every interface of a container's
//!   network namespace, after an `RTM_NEWLINK` that set it, and remove the tc
//!   filters and actions that mirror traffic, after an `RTM_NEWTFILTER` or
//!   `RTM_NEWACTION` that installed one (module `tc`): the kernel here offers no
//!   way to refuse one netlink message, so its sender is killed as the call
//!   returns, and what it set must not outlive it. Entering the namespace
//!   takes `CAP_SYS_ADMIN` as well.
//!
//! - attach the compat socket program to the raw `sys_enter` tracepoint while
//!   an audit container runs (`CAP_SYS_ADMIN`: the supervisor loads it at
//!   start and gives up what attaching takes; see
//!   [`crate::probe::CompatProbe`]). The link comes back to the supervisor,
//!   which detaches it by closing it.
//!
//! Kept apart from the supervisor so that the supervisor itself never holds
//! them: the broker reads fixed-size requests from one `SOCK_SEQPACKET`
//! socket, confines itself to the system calls those requests need, and exits
//! when the supervisor's end closes. Requests carry what to act through (a
//! socket, a namespace: `SCM_RIGHTS`), never a name or a pid, so the broker
//! reaches nothing the supervisor does not already hold.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use crate::privileges::{self, Capability};

mod tc;

/// The fd the broker finds its end of the socket pair on.
const BROKER_FD: RawFd = 3;
/// `struct ifreq`'s size on 64-bit Linux (the name, then a 24-byte union).
pub const IFREQ_LEN: usize = 40;
/// Request: the operation, four reserved bytes, an `ifreq`.
const REQUEST_LEN: usize = 8 + IFREQ_LEN;
/// Operation: `ioctl(fd, SIOCSIFFLAGS, ifreq)`.
const OP_SET_FLAGS: u32 = 1;
/// Operation: clear `IFF_PROMISC` on every interface of the network namespace
/// `fd`; the answer is how many had it.
const OP_CLEAR_PROMISCUOUS: u32 = 2;
/// Operation: remove every tc filter with a `mirred` action and every
/// standalone `mirred` action of the network namespace `fd`; the answer is
/// how many filters were removed.
const OP_REMOVE_MIRRORING: u32 = 3;
/// Operation: attach the program `fd` to the raw `sys_enter` tracepoint; the
/// answer carries the link's fd.
const OP_ATTACH_SYS_ENTER: u32 = 4;
/// `BPF_RAW_TRACEPOINT_OPEN`, the one `bpf(2)` command the broker makes.
const BPF_RAW_TRACEPOINT_OPEN: u64 = 17;
/// Interface indexes looked at by [`OP_CLEAR_PROMISCUOUS`]: a container has a
/// handful; an index beyond this is not looked at.
const MAX_INTERFACE_INDEX: i32 = 4096;
/// How long the supervisor waits for an answer. The broker's calls do not
/// block; a broker that does not answer in this time is stuck or gone.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the broker keeps, with the reason.
pub const BROKER_KEEPS: [Capability; 2] = [
    Capability {
        number: 12,
        name: "CAP_NET_ADMIN",
        why: "SIOCSIFFLAGS performed for an enforced container, through its own socket; promiscuous mode turned back off and tc mirroring removed",
    },
    Capability {
        number: 21,
        name: "CAP_SYS_ADMIN",
        why: "setns(2) into an enforced container's network namespace to turn promiscuous mode back off and remove tc mirroring; attaching the compat socket probe while an audit container runs",
    },
];

/// Errors of the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker could not be started.
    #[error("cannot start the network broker: {0}")]
    Start(String),
    /// The broker's socket is not there (not started by `sniffguard run`).
    #[error("the network broker finds no socket on fd 3: {0}")]
    NoSocket(Errno),
    /// The broker's own seccomp filter could not be built or installed.
    #[error("cannot confine the network broker: {0}")]
    Confine(String),
    /// A receive or send on the broker's socket failed.
    #[error("network broker socket: {0}")]
    Socket(Errno),
}

/// The supervisor's end of the broker.
pub struct Broker {
    /// The socket, and how many answers are still due for requests whose
    /// wait timed out: the broker answers in order, so those come first and
    /// are skipped, never taken for a later request's.
    socket: Mutex<(OwnedFd, usize)>,
    pid: u32,
}

impl Broker {
    /// Starts the broker (`sniffguard net-broker`) with the capabilities the
    /// caller still holds; it keeps [`BROKER_KEEPS`] of them.
    pub fn spawn() -> Result<Broker, BrokerError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| BrokerError::Start(e.to_string()))?;
        setsockopt(
            &ours,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as i64, 0),
        )
        .map_err(|e| BrokerError::Start(e.to_string()))?;
        let exe = std::env::current_exe().map_err(|e| BrokerError::Start(e.to_string()))?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("net-broker")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        let theirs_raw = theirs.as_raw_fd();
        // SAFETY: dup2 is async-signal-safe and touches no memory; it puts the
        // broker's end of the pair on fd 3 without close-on-exec (dup2 clears
        // the flag on the new fd), where `serve` looks for it.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if libc::dup2(theirs_raw, BROKER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        drop(theirs);
        let pid = child.id();
        // Reaped aside: the broker lives as long as the supervisor.
        let _ = std::thread::Builder::new()
            .name("sniffguard-broker-wait".into())
            .spawn(move || {
                let mut child = child;
                match child.wait() {
                    Ok(status) => tracing::error!(%status, "the network broker exited; enforced containers that keep CAP_NET_ADMIN get EPERM for SIOCSIFFLAGS"),
                    Err(err) => tracing::debug!(%err, "cannot wait for the network broker"),
                }
            });
        Ok(Broker {
            socket: Mutex::new((ours, 0)),
            pid,
        })
    }

    /// The broker's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `ioctl(socket, SIOCSIFFLAGS, ifreq)`, as root in the socket's
    /// namespace. The errno the kernel answered, or `EIO` when the broker did
    /// not.
    pub fn set_interface_flags(
        &self,
        socket: BorrowedFd<'_>,
        ifreq: &[u8; IFREQ_LEN],
    ) -> Result<(), Errno> {
        self.call(OP_SET_FLAGS, ifreq, socket).map(drop)
    }

    /// Turns `IFF_PROMISC` off on every interface of the network namespace
    /// `netns` that has it (as a user asked for it: a packet socket's own
    /// promiscuity is counted apart and stays); returns how many had it.
    pub fn clear_promiscuous(&self, netns: BorrowedFd<'_>) -> Result<u32, Errno> {
        self.call(OP_CLEAR_PROMISCUOUS, &[0; IFREQ_LEN], netns)
    }

    /// Removes every tc filter that carries a `mirred` action (on every
    /// qdisc and class of every interface) and every standalone `mirred`
    /// action of the network namespace `netns`; returns how many filters
    /// were removed.
    pub fn remove_mirroring(&self, netns: BorrowedFd<'_>) -> Result<u32, Errno> {
        self.call(OP_REMOVE_MIRRORING, &[0; IFREQ_LEN], netns)
    }

    /// Attaches the loaded program `program` to the raw `sys_enter`
    /// tracepoint; returns the link, which detaches when closed.
    pub fn attach_sys_enter(&self, program: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        match self.exchange(OP_ATTACH_SYS_ENTER, &[0; IFREQ_LEN], program)? {
            (_, Some(link)) => Ok(link),
            (_, None) => Err(Errno::EIO),
        }
    }

    fn call(&self, op: u32, ifreq: &[u8; IFREQ_LEN], fd: BorrowedFd<'_>) -> Result<u32, Errno> {
        match self.exchange(op, ifreq, fd)? {
            (count, None) => Ok(count),
            (_, Some(_)) => Err(Errno::EIO),
        }
    }

    /// Sends one request; returns the answer's count and the fd it carries.
    fn exchange(
        &self,
        op: u32,
        ifreq: &[u8; IFREQ_LEN],
        fd: BorrowedFd<'_>,
    ) -> Result<(u32, Option<OwnedFd>), Errno> {
        let mut guard = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (socket, overdue) = &mut *guard;
        let mut request = [0u8; REQUEST_LEN];
        request[..4].copy_from_slice(&op.to_ne_bytes());
        request[8..].copy_from_slice(ifreq);
        let fds = [fd.as_raw_fd()];
        let sent = sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(&request)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        );
        if let Err(err) = sent {
            tracing::error!(%err, "the network broker does not take requests");
            return Err(Errno::EIO);
        }
        // Each receive waits ANSWER_TIMEOUT at most.
        while *overdue > 0 {
            match receive(socket.as_fd()) {
                Ok(Some(_)) => *overdue -= 1,
                _ => break,
            }
        }
        if *overdue > 0 {
            *overdue += 1;
            tracing::error!(
                overdue = *overdue,
                "the network broker still owes answers to earlier requests"
            );
            return Err(Errno::EIO);
        }
        let (answer, carried) = match receive(socket.as_fd()) {
            Ok(Some(Message { bytes, len: 4, fd })) => (
                i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                fd,
            ),
            other => {
                if matches!(other, Err(Errno::EAGAIN)) {
                    *overdue += 1;
                }
                tracing::error!(answer = ?other.map(|o| o.map(|m| m.len)), "the network broker did not answer");
                return Err(Errno::EIO);
            }
        };
        // A count, or a negated errno.
        let count = u32::try_from(answer).map_err(|_| Errno::from_raw(answer.saturating_neg()))?;
        Ok((count, carried))
    }
}

/// A message on the broker's socket.
struct Message {
    bytes: [u8; REQUEST_LEN],
    len: usize,
    fd: Option<OwnedFd>,
}

/// One message of at most [`REQUEST_LEN`] bytes and at most one fd; `None`
/// at end of file.
fn receive(socket: BorrowedFd<'_>) -> Result<Option<Message>, Errno> {
    let mut bytes = [0u8; REQUEST_LEN];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (len, fd, truncated) = {
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let message = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: SCM_RIGHTS installed `raw` in this process just
                    // now; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        let truncated = message
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (message.bytes, fd, truncated)
    };
    if len == 0 && fd.is_none() {
        return Ok(None);
    }
    if truncated {
        return Err(Errno::EMSGSIZE);
    }
    Ok(Some(Message { bytes, len, fd }))
}

/// `sniffguard net-broker`: serves the supervisor that started it until it
/// goes away.
pub fn serve() -> Result<(), BrokerError> {
    // SAFETY: fd 3 is checked to be a socket before it is used; if it is not
    // ours (a user ran the hidden command by hand), the first receive fails.
    let socket = unsafe { BorrowedFd::borrow_raw(BROKER_FD) };
    nix::sys::socket::getsockopt(&socket, sockopt::SockType).map_err(BrokerError::NoSocket)?;
    if let Err(err) = privileges::drop_to(&BROKER_KEEPS) {
        return Err(BrokerError::Start(err.to_string()));
    }
    confine()?;
    loop {
        let Message {
            bytes: request,
            len,
            fd,
        } = match receive(socket) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EMSGSIZE) => {
                reply(socket, Err(Errno::EINVAL))?;
                continue;
            }
            Err(err) => return Err(BrokerError::Socket(err)),
        };
        let (Some(fd), REQUEST_LEN) = (fd, len) else {
            reply(socket, Err(Errno::EINVAL))?;
            continue;
        };
        let op = u32::from_ne_bytes([request[0], request[1], request[2], request[3]]);
        match op {
            OP_SET_FLAGS => {
                let mut ifreq = [0u8; IFREQ_LEN];
                ifreq.copy_from_slice(&request[8..]);
                // The kernel reads the name only up to IFNAMSIZ with a NUL
                // forced at the end; nothing to check here.
                // SAFETY: `ifreq` is a live 40-byte buffer, the size of struct
                // ifreq; SIOCSIFFLAGS reads it and writes nothing back.
                let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, ifreq.as_ptr()) };
                reply(socket, if rc == 0 { Ok(0) } else { Err(Errno::last()) })?;
            }
            OP_CLEAR_PROMISCUOUS => reply(socket, clear_promiscuous(fd.as_fd()))?,
            OP_ATTACH_SYS_ENTER => match attach_sys_enter(fd.as_fd()) {
                Ok(link) => reply_with_fd(socket, link.as_fd())?,
                Err(errno) => reply(socket, Err(errno))?,
            },
            OP_REMOVE_MIRRORING => reply(
                socket,
                nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .and_then(|()| tc::remove_mirroring()),
            )?,
            _ => reply(socket, Err(Errno::EINVAL))?,
        }
    }
}

/// Enters `netns` and clears `IFF_PROMISC` where it is set.
fn clear_promiscuous(netns: BorrowedFd<'_>) -> Result<u32, Errno> {
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    // SAFETY: socket(2) takes three integers and returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: socket(2) just returned this fd; nothing else owns it.
    let probe = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut cleared = 0;
    for index in 1..=MAX_INTERFACE_INDEX {
        let mut ifreq = [0u8; IFREQ_LEN];
        ifreq[16..20].copy_from_slice(&index.to_ne_bytes());
        // SAFETY: `ifreq` is a live struct ifreq; SIOCGIFNAME reads the index
        // and writes the name.
        if unsafe { libc::ioctl(probe.as_raw_fd(), libc::SIOCGIFNAME, ifreq.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: as above; SIOCGIFFLAGS reads the name and writes the flags.
        if unsafe { libc::ioctl(probe.as_raw_fd(), libc::SIOCGIFFLAGS, ifreq.as_mut_ptr()) } != 0 {
            continue;
        }
        let flags = u16::from_ne_bytes([ifreq[16], ifreq[17]]);
        let promiscuous = libc::IFF_PROMISC as u16;
        if flags & promiscuous == 0 {
            continue;
        }
        ifreq[16..18].copy_from_slice(&(flags & !promiscuous).to_ne_bytes());
        // SAFETY: as above; SIOCSIFFLAGS reads the name and the flags.
        if unsafe { libc::ioctl(probe.as_raw_fd(), libc::SIOCSIFFLAGS, ifreq.as_ptr()) } == 0 {
            cleared += 1;
        }
    }
    Ok(cleared)
}

/// `bpf(BPF_RAW_TRACEPOINT_OPEN)` of `program` on `sys_enter`: the link fd.
fn attach_sys_enter(program: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    /// The `raw_tracepoint` member of `union bpf_attr` (the kernel reads the
    /// size given and wants the rest zero).
    #[repr(C)]
    struct RawTracepointOpen {
        name: u64,
        prog_fd: u32,
        pad: u32,
    }
    let name = c"sys_enter";
    let attr = RawTracepointOpen {
        name: name.as_ptr() as u64,
        prog_fd: u32::try_from(program.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        pad: 0,
    };
    // SAFETY: `attr` is a live, initialised bpf_attr prefix of the size given
    // and `name` a NUL-terminated string that outlives the call; the kernel
    // only reads them and returns a new fd or -1.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<RawTracepointOpen>(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    let raw = RawFd::try_from(rc).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Answers 0 and hands `fd` over.
fn reply_with_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), BrokerError> {
    let bytes = 0i32.to_ne_bytes();
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(BrokerError::Socket)
}

fn reply(socket: BorrowedFd<'_>, result: Result<u32, Errno>) -> Result<(), BrokerError> {
    let answer = match result {
        Ok(count) => i32::try_from(count).unwrap_or(i32::MAX),
        Err(errno) => -(errno as i32),
    };
    let bytes = answer.to_ne_bytes();
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(BrokerError::Socket)
}

/// The system calls the broker makes once it serves, each with why.
const BROKER_SYSCALLS: &[(libc::c_long, &str)] = &[
    (libc::SYS_recvmsg, "requests"),
    (libc::SYS_sendmsg, "answers"),
    (libc::SYS_close, "the socket of a request"),
    (libc::SYS_write, "an error message on stderr"),
    (libc::SYS_exit_group, "the end"),
    (libc::SYS_exit, "the end"),
    (libc::SYS_rt_sigreturn, "returning from a signal"),
    (libc::SYS_brk, "memory, for an error message"),
    (libc::SYS_mmap, "memory, for an error message"),
    (libc::SYS_munmap, "memory, for an error message"),
    (libc::SYS_futex, "std's locks around stderr"),
    (
        libc::SYS_sigaltstack,
        "std's stack-overflow handler at exit",
    ),
    (libc::SYS_setns, "a container's network namespace"),
    (
        libc::SYS_fcntl,
        "std's check of an fd it closes (debug builds)",
    ),
];

/// Confines the broker with its own seccomp filter (seccompiler, as the hook
/// does): it holds `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`, so it may make the
/// system calls above, three interface ioctls (`SIOCSIFFLAGS`, `SIOCGIFFLAGS`,
/// `SIOCGIFNAME`), `AF_INET` sockets and `NETLINK_ROUTE` sockets (for tc),
/// `bpf(BPF_RAW_TRACEPOINT_OPEN)`, and nothing else — no exec, no mount, no
/// other ioctl, no other bpf command.
fn confine() -> Result<(), BrokerError> {
    use std::collections::BTreeMap;

    use seccompiler::{
        apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
        SeccompFilter, SeccompRule, TargetArch,
    };

    let fail = |e: &dyn std::fmt::Display| BrokerError::Confine(e.to_string());
    let arch = match std::env::consts::ARCH {
        "x86_64" => TargetArch::x86_64,
        "aarch64" => TargetArch::aarch64,
        other => return Err(BrokerError::Confine(format!("no filter for {other}"))),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BROKER_SYSCALLS
        .iter()
        .map(|(nr, _)| (*nr, Vec::new()))
        .collect();
    let siocsifflags = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::SIOCSIFFLAGS,
    )
    .map_err(|e| fail(&e))?;
    let mut ioctls = vec![SeccompRule::new(vec![siocsifflags]).map_err(|e| fail(&e))?];
    for command in [libc::SIOCGIFNAME, libc::SIOCGIFFLAGS] {
        let condition =
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, command)
                .map_err(|e| fail(&e))?;
        ioctls.push(SeccompRule::new(vec![condition]).map_err(|e| fail(&e))?);
    }
    rules.insert(libc::SYS_ioctl, ioctls);
    // One bpf(2) command: attaching the supervisor's loaded program.
    let raw_tracepoint_open = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        BPF_RAW_TRACEPOINT_OPEN,
    )
    .map_err(|e| fail(&e))?;
    rules.insert(
        libc::SYS_bpf,
        vec![SeccompRule::new(vec![raw_tracepoint_open]).map_err(|e| fail(&e))?],
    );
    // A socket of the namespace, to name and set flags through.
    let inet = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_INET as u64,
    )
    .map_err(|e| fail(&e))?;
    // And a NETLINK_ROUTE socket, to dump and delete tc filters and actions.
    let netlink = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_NETLINK as u64,
    )
    .map_err(|e| fail(&e))?;
    let route = SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 0)
        .map_err(|e| fail(&e))?;
    rules.insert(
        libc::SYS_socket,
        vec![
            SeccompRule::new(vec![inet]).map_err(|e| fail(&e))?,
            SeccompRule::new(vec![netlink, route]).map_err(|e| fail(&e))?,
        ],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| fail(&e))?;
    let program: BpfProgram = filter.try_into().map_err(|e| fail(&e))?;
    apply_filter(&program).map_err(|e| fail(&e))
}
