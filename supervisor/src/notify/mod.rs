//! Answering seccomp user notifications: the enforce decision.
//!
//! Each notify fd is served by a thread of its own that waits on the fd
//! ([`NotifyThreads`] says why a thread, not an async task). A notification is
//! decided on that thread: read the path (and argv\[0\]) from the target with
//! `process_vm_readv`, resolve the file inside the container, classify, answer.
//! The answer must come within microseconds: runc's init retries an entrypoint
//! `execve` that waits too long, forever (PLATFORM.md), so nothing here waits on
//! I/O that can stall; the SHA-256 for the alert is computed later by the alert
//! task.
//!
//! What was read may belong to another process if the caller died and its pid
//! was reused meanwhile. Answering is safe regardless: the kernel only delivers
//! an answer to the notification id it belongs to, and refuses a stale one. So
//! the id is re-checked (`SECCOMP_IOCTL_NOTIF_ID_VALID`) only before acting on
//! the pid beyond the answer: before keeping the caller's root for later
//! decisions, and before the alert and responses of a refusal (which follow a
//! delivered answer only).
//!
//! The container's root is opened from `/proc/TID/root` once per listener and
//! kept, when the shim's filter also notifies every syscall that could change
//! what `/` means to the container's processes (the `roots` promise of the
//! listener metadata): the first such notification drops the kept root for
//! good, and each later exec opens its caller's own root again. A cold `/proc`
//! lookup is the most expensive step of a decision (~25 µs here).
//!
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE` is not a security boundary
//! (seccomp_unotify(2)): a second thread can change the path after the check.
//! What this path guarantees is that the *name it checked* is refused; the eBPF
//! exec probe and the packet-socket rule stand behind it.
//!
//! This module serves the fds and answers; what a notified call *is* (the
//! exec's target, the socket's channel) is [`decide`]'s, and the verdict and
//! the alert are [`crate::finding`]'s.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use libseccomp::{notify_id_valid, ScmpArch, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sniffguard_common::listener::{BaseAction, ROOT_CHANGING_SYSCALLS};

use crate::alert::Mechanism;
use crate::finding::{self, Acted, Subject};
use crate::inflight::{Ledger, Notification};
use crate::lanes::CLASSIFY_BOUND;
use crate::procfs;
use crate::{respond, Shared};

pub mod decide;
mod interfaces;
mod watchdog;

pub use decide::ListenerContext;
use decide::{decide_bpf, decide_exec, decide_socket, decide_socketcall, KeptRoot, Outcome};

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (`_IOW('!', 4, __u64)`), not wrapped by
/// libseccomp 2.5.
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): wake the listener on the
/// caller's CPU. PLATFORM.md measured it removing most of a round trip.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// The syscalls the filter sends here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    Execve,
    Execveat,
    Socket,
    /// i386 `socketcall(call, args)`: the socket arguments are in memory.
    Socketcall,
    /// `ioctl(fd, SIOCSIFFLAGS, ifreq)` (the filter sends no other command).
    Ioctl,
    /// `bpf(BPF_PROG_LOAD, …)`: the only command the filter sends.
    Bpf,
    /// A syscall that can change what paths mean to the caller (`chroot`,
    /// `mount`, ...): it continues, and the kept root is dropped.
    RootChange,
}

/// Syscall numbers of the watched calls for every ABI the filter covers.
struct SyscallTable {
    entries: Vec<(ScmpArch, i32, Watched)>,
}

impl SyscallTable {
    fn new() -> SyscallTable {
        let native = ScmpArch::native();
        let mut arches = vec![native];
        if native == ScmpArch::X8664 {
            arches.extend([ScmpArch::X86, ScmpArch::X32]);
        } else if native == ScmpArch::Aarch64 {
            arches.push(ScmpArch::Arm);
        }
        let mut entries = Vec::new();
        for &arch in &arches {
            let root_changes = ROOT_CHANGING_SYSCALLS.map(|name| (name, Watched::RootChange));
            for (name, watched) in [
                ("execve", Watched::Execve),
                ("execveat", Watched::Execveat),
                ("socket", Watched::Socket),
                ("ioctl", Watched::Ioctl),
                ("bpf", Watched::Bpf),
            ]
            .into_iter()
            .chain(root_changes)
            {
                // libseccomp answers multiplexed calls (i386 `socket`) with a
                // negative pseudo number that never appears in a notification:
                // only real numbers go in the table.
                if let Ok(nr) = ScmpSyscall::from_name_by_arch(name, arch) {
                    if nr.as_raw_syscall() >= 0 {
                        entries.push((arch, nr.as_raw_syscall(), watched));
                    }
                }
            }
        }
        if arches.contains(&ScmpArch::X86) {
            // i386: socket(2) is 359 (Linux 4.3+) and socketcall(2) is 102
            // (asm/unistd_32.h); libseccomp's rules for "socket" notify both.
            entries.push((ScmpArch::X86, 359, Watched::Socket));
            entries.push((ScmpArch::X86, 102, Watched::Socketcall));
        }
        SyscallTable { entries }
    }

    fn lookup(&self, arch: ScmpArch, syscall: ScmpSyscall) -> Option<Watched> {
        let nr = syscall.as_raw_syscall();
        self.entries
            .iter()
            .find(|(a, n, _)| *a == arch && *n == nr)
            .map(|(_, _, w)| *w)
    }
}

fn pointer_width(arch: ScmpArch) -> usize {
    match arch {
        ScmpArch::X86 | ScmpArch::X32 | ScmpArch::Arm => 4,
        _ => 8,
    }
}

/// Where seccomp notifications are answered: one thread per notify fd.
///
/// The thread waits for its fd in `poll(2)`, receives and answers. The
/// caller's `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` hint makes the kernel wake
/// the waiting thread on the caller's CPU, where it answers while the caller
/// sleeps: PLATFORM.md measured the round trip at ~20 µs this way against
/// ~85 µs when the scheduler places the listener. The hint only reaches a
/// thread that waits on the fd itself; through an epoll set (an async
/// runtime's reactor) it is lost, and each exec paid a cross-CPU wake-up
/// (~150 µs an exec here). A thread costs little (a small stack, asleep
/// until its container execs) and ends when its container does.
pub struct NotifyThreads {
    /// The async runtime the threads hand follow-ups to (alerts, responses).
    runtime: tokio::runtime::Handle,
}

/// Stack of a listener thread: a decision keeps page-sized buffers on it.
const LISTENER_STACK_BYTES: usize = 512 * 1024;

impl NotifyThreads {
    /// Listener threads that hand follow-ups to `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> NotifyThreads {
        NotifyThreads { runtime }
    }

    /// Serves `fd` on a thread of its own until every process using its filter
    /// has exited.
    pub fn serve(
        &self,
        fd: OwnedFd,
        ledger: Ledger,
        context: ListenerContext,
        shared: Arc<Shared>,
    ) {
        let runtime = self.runtime.clone();
        let id = context.container_id.clone();
        let spawned = std::thread::Builder::new()
            .name("sg-notify".into())
            .stack_size(LISTENER_STACK_BYTES)
            .spawn(move || {
                let _entered = runtime.enter();
                serve(fd, ledger, context, shared);
            });
        if let Err(err) = spawned {
            // The fd is dropped with the closure: the container's watched
            // syscalls fail (ENOSYS) rather than run unchecked.
            tracing::error!(container = id, %err, "cannot start a listener thread; the container's watched syscalls will fail");
        }
    }
}

/// Serves one notify fd until every process using its filter has exited.
fn serve(fd: OwnedFd, mut ledger: Ledger, context: ListenerContext, shared: Arc<Shared>) {
    set_sync_wake_up(&fd);
    if let Err(err) = request_short_slice() {
        // Said once as a warning (every listener would fail the same way),
        // then per listener at debug level.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::debug!(container = context.container_id, %err, "no short scheduler slice for the listener thread");
        } else {
            tracing::warn!(%err, "listener threads get no short scheduler slice; under an exec storm decisions may wait behind the execs they decide");
        }
    }
    let table = SyscallTable::new();
    let id = context.container_id.clone();
    let raw = fd.as_raw_fd();
    let mut failures: u64 = 0;
    let mut kept_root = KeptRoot::new(context.root_changes_notified);
    let watch = watchdog::Watch::register(raw, &context, &shared);
    if let Some(request) = ledger.unanswered() {
        // A previous supervisor received this and died before answering: its
        // caller still waits, and nothing but this answer releases it. The
        // ledger came back through the keeper: it is acted on only if the
        // kernel still waits on that id from this very filter, and its pid is
        // a process of the container the listener serves.
        match restored_request_holds(raw, &request, &context, &shared) {
            Ok(()) => {
                tracing::warn!(
                    container = id,
                    notification = request.id,
                    pid = request.pid,
                    "deciding a notification the previous supervisor received but never answered"
                );
                handle(raw, request, &context, &shared, &table, &mut kept_root);
            }
            Err(why) => tracing::warn!(
                container = id,
                notification = request.id,
                pid = request.pid,
                why,
                "an in-flight notification from the keeper was not acted on"
            ),
        }
        ledger.settle();
    }
    loop {
        match wait_for(&fd) {
            Waited::Pending => {}
            Waited::HungUp => break,
            Waited::Failed(errno) => {
                tracing::error!(container = id, %errno, "notify fd failed");
                break;
            }
        }
        match ledger.receive(raw) {
            Ok(request) => {
                watch.begin(&request);
                handle(raw, request, &context, &shared, &table, &mut kept_root);
                let still_mine = watch.end();
                ledger.settle();
                if !still_mine {
                    // Given up by the watchdog after the bound: it answered,
                    // and another listener serves the fd now.
                    tracing::info!(container = id, "a listener whose decision stalled leaves");
                    return;
                }
            }
            // The usual cause is a caller killed or interrupted between poll
            // and receive (ENOENT). The listener stays in service: dropping it
            // would fail every later watched syscall of the container with
            // ENOSYS. Only POLLHUP (no process left using the filter) ends it,
            // above.
            Err(err) => {
                failures += 1;
                tracing::debug!(container = id, %err, failures, "a notification vanished before it was received");
                if failures.is_multiple_of(1000) {
                    tracing::warn!(container = id, %err, failures, "notifications keep failing to arrive");
                    // Yield so that a persistent failure cannot spin a CPU.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
    tracing::info!(container = id, "seccomp listener closed");
    shared.registry.listener_detached(&id);
}

/// Whether a notification restored from the keeper's ledger may be acted on:
/// the kernel still waits on its id on this filter, and its caller runs in the
/// pid namespace of the container the listener serves (when the registration
/// says which).
fn restored_request_holds(
    fd: RawFd,
    request: &Notification,
    context: &ListenerContext,
    shared: &Shared,
) -> Result<(), String> {
    notify_id_valid(fd, request.id).map_err(|_| {
        "the kernel no longer waits on that notification on this filter".to_string()
    })?;
    let expected = shared
        .registry
        .get(&context.container_id)
        .and_then(|record| record.namespaces.get("pid").copied());
    if let Some(expected) = expected {
        use std::os::unix::fs::MetadataExt;
        let actual = std::fs::metadata(format!("/proc/{}/ns/pid", request.pid))
            .map(|m| m.ino())
            .map_err(|e| format!("cannot read the caller's pid namespace: {e}"))?;
        if actual != expected {
            return Err(format!(
                "the caller (pid {}) is not in the container's pid namespace",
                request.pid
            ));
        }
    }
    Ok(())
}

/// What waiting on a notify fd found.
enum Waited {
    /// A notification is waiting.
    Pending,
    /// No process uses the filter any more.
    HungUp,
    /// The fd is unusable.
    Failed(nix::errno::Errno),
}

/// Blocks until a notification waits on `fd`, or its filter has no users left.
fn wait_for(fd: &OwnedFd) -> Waited {
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                if revents.contains(PollFlags::POLLIN) {
                    return Waited::Pending;
                }
                if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                {
                    return Waited::HungUp;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Waited::Failed(errno),
        }
    }
}

/// The scheduler slice a listener thread asks for, in ns: the shortest the
/// kernel grants (0.1 ms).
const LISTENER_SLICE_NS: u64 = 100_000;

/// Asks the scheduler for a short slice for the calling thread.
///
/// An exec storm keeps every CPU busy with the very processes whose execs wait
/// for a listener. Woken on the caller's CPU, the listener still queued behind
/// the other runnable task there for up to a default slice (0.75 ms scaled by
/// the CPU count: 1.4 ms on a 2-CPU node), and a decision of ~10 µs of work
/// took 30 µs and more. Since Linux 6.12 a fair-class task may ask for a
/// shorter slice (`sched_runtime` of `sched_setattr(2)`); the earlier deadline
/// that buys lets it preempt on wake-up. Its share of the CPU is still set by
/// its nice value, so nothing is starved, and the policy is kept (an operator
/// who chose another class for the supervisor keeps it). Older kernels ignore
/// the value.
fn request_short_slice() -> std::io::Result<()> {
    // SAFETY: getpriority takes plain integers and reads no memory of ours;
    // who = 0 is the calling thread (Linux keeps nice values per thread).
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // SAFETY: `sched_attr` is plain integers, for which all zeroes is a valid
    // value; the fields the call reads are set below.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
    attr.sched_flags = libc::SCHED_FLAG_KEEP_POLICY as u64;
    attr.sched_nice = nice;
    attr.sched_runtime = LISTENER_SLICE_NS;
    // SAFETY: pid 0 is the calling thread; `attr` is an initialised
    // `sched_attr` of the size it declares, which the kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_sync_wake_up(fd: &OwnedFd) {
    // SAFETY: `fd` is a valid seccomp notify fd owned by the caller; the ioctl
    // takes its flags by value and writes no memory.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if rc != 0 {
        tracing::debug!(err = %std::io::Error::last_os_error(), "SYNC_WAKE_UP not available");
    }
}

fn handle(
    fd: RawFd,
    request: Notification,
    context: &ListenerContext,
    shared: &Arc<Shared>,
    table: &SyscallTable,
    kept_root: &mut KeptRoot,
) {
    let started = Instant::now();
    let Some(arch) = request.arch else {
        // An architecture no filter of ours covers: what the call is cannot be
        // told, so it does not run.
        tracing::warn!(
            container = context.container_id,
            pid = request.pid,
            "refused a notification of an unknown architecture"
        );
        let refusal =
            ScmpNotifResp::new_error(request.id, -libc::EPERM, ScmpNotifRespFlags::empty());
        if let Err(err) = answer(fd, &refusal) {
            tracing::debug!(container = context.container_id, %err, "refusal not delivered");
        }
        return;
    };
    let policy = shared.policy.load();
    let watched = table.lookup(arch, request.syscall);
    let outcome = match watched {
        Some(Watched::Execve) | Some(Watched::Execveat) => decide_exec(
            fd,
            &request,
            pointer_width(arch),
            watched == Some(Watched::Execveat),
            shared,
            &policy,
            context,
            kept_root,
        ),
        Some(Watched::Socket) if policy.catalogue.behaviour => {
            decide_socket(&request, &policy, &context.environment)
        }
        Some(Watched::Ioctl) => {
            interfaces::decide_interface_flags(fd, &request, pointer_width(arch), shared)
        }
        Some(Watched::Socketcall) => decide_socketcall(&request),
        Some(Watched::Socket) => Outcome::Continue,
        Some(Watched::Bpf) if policy.catalogue.behaviour => {
            decide_bpf(&request, &policy, &context.environment)
        }
        Some(Watched::Bpf) => Outcome::Continue,
        // Anything else the filter sends may change what `/` means to the
        // caller: from now on every exec's root is looked up afresh.
        Some(Watched::RootChange) | None => {
            if !matches!(kept_root, KeptRoot::Never) {
                tracing::debug!(
                    container = context.container_id,
                    syscall = ?request.syscall,
                    "root or mounts may change; the container root is no longer kept"
                );
            }
            *kept_root = KeptRoot::Never;
            Outcome::Continue
        }
    };
    conclude(
        fd, &request, context, shared, watched, started, &policy, outcome,
    );
}

/// Answers a decided notification and, for a sniffer, judges, acts and
/// alerts.
#[allow(clippy::too_many_arguments)]
fn conclude(
    fd: RawFd,
    request: &Notification,
    context: &ListenerContext,
    shared: &Arc<Shared>,
    watched: Option<Watched>,
    started: Instant,
    policy: &sniffguard_common::policy::Policy,
    outcome: Outcome,
) {
    // What sniffguard lets through still gets the base profile's answer where
    // the shim moved the profile's socket rules here.
    let base = match (&context.socket_rules, watched) {
        (Some(rules), Some(Watched::Socket)) => rules.verdict(&request.args),
        _ => BaseAction::Allow,
    };
    let answering = Answering {
        fd,
        request,
        container_id: &context.container_id,
        watched,
        base,
        started,
        shared,
    };
    let finding = match outcome {
        Outcome::Performed(result) => {
            answering.perform(result);
            return;
        }
        Outcome::Continue => {
            answering.answer(None);
            return;
        }
        Outcome::Sniffer(finding) => *finding,
    };
    let subject = Subject {
        container_id: &context.container_id,
        environment: &context.environment,
        annotations: &context.annotations,
        record: None,
        mechanism: Mechanism::Seccomp,
        tid: request.pid,
    };
    // The process is described from /proc while it still waits: a refused
    // entrypoint exits the moment it gets its answer.
    finding::judge_and_report(shared, policy, subject, finding, |finding, verdict| {
        let refusal = verdict
            .deny()
            .then(|| finding.refusal.unwrap_or(libc::EPERM));
        let decision_latency = answering.answer(refusal)?;
        Some(Acted {
            syscall: match watched {
                Some(Watched::Execveat) => "execveat",
                Some(Watched::RootChange) | None => "other",
                Some(Watched::Socket) => "socket",
                Some(Watched::Socketcall) => "socketcall",
                Some(Watched::Ioctl) => "ioctl",
                Some(Watched::Bpf) => "bpf",
                _ => "execve",
            },
            decision_latency,
            responses: Vec::new(),
            pid: request.pid,
        })
    });
}

/// Answers for a decision the watchdog gave up ([`watchdog`]): an exec
/// whose file could not be read within [`CLASSIFY_BOUND`] is judged
/// unreadable in time (refused where the environment enforces, with
/// `unresolved` evidence); any other call continues (only an exec's decision
/// reads files).
fn give_up(
    fd: RawFd,
    request: Notification,
    started: Instant,
    context: &ListenerContext,
    shared: &Arc<Shared>,
) {
    let policy = shared.policy.load();
    let Some(arch) = request.arch else {
        // Refused at once when received: never stalls.
        return;
    };
    let watched = SyscallTable::new().lookup(arch, request.syscall);
    let (path_ptr, argv_ptr) = match watched {
        Some(Watched::Execveat) => (request.args[1], request.args[2]),
        Some(Watched::Execve) => (request.args[0], request.args[1]),
        _ => {
            // An interface-flags request is never continued (its flags are in
            // the caller's memory): one not performed in time is refused.
            let outcome = match watched {
                Some(Watched::Ioctl) => Outcome::Performed(Err(nix::errno::Errno::EPERM)),
                _ => Outcome::Continue,
            };
            conclude(
                fd, &request, context, shared, watched, started, &policy, outcome,
            );
            return;
        }
    };
    let pid = nix::unistd::Pid::from_raw(request.pid as i32);
    let path = crate::target::read_cstring(pid, path_ptr, crate::target::PATH_MAX)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_else(|_| "(path unreadable)".into());
    let reason = format!(
        "{path}: the file could not be read within {} ms (its file system does not answer: \
         a FUSE server that stopped?)",
        CLASSIFY_BOUND.as_millis()
    );
    let mut outcome = decide::unjudged(
        &request,
        (pointer_width(arch), argv_ptr),
        &policy,
        context,
        reason,
        None,
    );
    if let Outcome::Sniffer(finding) = &mut outcome {
        finding.process.exe = Some(path);
    }
    conclude(
        fd, &request, context, shared, watched, started, &policy, outcome,
    );
}

/// One notification waiting for its answer.
struct Answering<'a> {
    fd: RawFd,
    request: &'a Notification,
    container_id: &'a str,
    watched: Option<Watched>,
    /// The base profile's own answer to the call, for what sniffguard lets
    /// through.
    base: BaseAction,
    started: Instant,
    shared: &'a Arc<Shared>,
}

impl Answering<'_> {
    /// Answers the call: refused with `refusal` when it is given, else as the
    /// base profile would. Returns the decision time, or `None` when the
    /// answer did not reach the caller.
    fn answer(&self, refusal: Option<i32>) -> Option<std::time::Duration> {
        let id = self.request.id;
        let response = match (refusal, self.base) {
            (Some(errno), _) => ScmpNotifResp::new_error(id, -errno, ScmpNotifRespFlags::empty()),
            (None, BaseAction::Allow) => {
                ScmpNotifResp::new_continue(id, ScmpNotifRespFlags::empty())
            }
            (None, BaseAction::Errno(errno)) => ScmpNotifResp::new_error(
                id,
                -i32::try_from(errno).unwrap_or(libc::EPERM),
                ScmpNotifRespFlags::empty(),
            ),
            (None, BaseAction::Kill) => {
                // The base profile kills; a notification can only refuse, so
                // the caller is refused and then killed, as the kernel would
                // have.
                if let Some(tgid) = thread_group(self.request.pid) {
                    if let Err(err) = respond::kill_process(tgid) {
                        tracing::warn!(container = self.container_id, pid = self.request.pid, %err, "the base profile's kill failed");
                    }
                }
                ScmpNotifResp::new_error(id, -libc::EPERM, ScmpNotifRespFlags::empty())
            }
        };
        // Decision time, taken before the answer: with SYNC_WAKE_UP the woken
        // caller may run on this CPU first.
        let latency = self.started.elapsed();
        let answered = answer(self.fd, &response);
        self.shared
            .metrics
            .decision_latency
            .observe(latency.as_secs_f64());
        tracing::debug!(
            container = self.container_id,
            pid = self.request.pid,
            syscall = ?self.watched,
            deny = refusal.is_some(),
            latency_us = latency.as_micros() as u64,
            "decided"
        );
        match answered {
            Ok(()) => Some(latency),
            Err(err) => {
                // The call was interrupted (runc's init retries its entrypoint
                // execve with a new id) or the process died: the retry brings
                // a new decision and its own alert.
                tracing::debug!(container = self.container_id, %err, "answer not delivered");
                None
            }
        }
    }
}

impl Answering<'_> {
    /// Answers with the result of a call performed here in the caller's
    /// place.
    fn perform(&self, result: Result<(), nix::errno::Errno>) {
        let id = self.request.id;
        let latency = self.started.elapsed();
        let delivered = match result {
            Ok(()) => answer(
                self.fd,
                &ScmpNotifResp::new_val(id, 0, ScmpNotifRespFlags::empty()),
            )
            .map_err(|e| e.to_string()),
            Err(errno) => answer(
                self.fd,
                &ScmpNotifResp::new_error(id, -(errno as i32), ScmpNotifRespFlags::empty()),
            )
            .map_err(|e| e.to_string()),
        };
        self.shared
            .metrics
            .decision_latency
            .observe(latency.as_secs_f64());
        if let Err(err) = delivered {
            tracing::debug!(container = self.container_id, pid = self.request.pid, %err, "answer not delivered");
        }
    }
}

/// Sends the answer. The send takes the filter's notify lock interruptibly,
/// so a signal arriving at this worker thread (SIGHUP for a reload, say) can
/// fail it with EINTR before anything was sent: try again then, or the caller
/// would wait for an answer forever. libseccomp 2.5 reports every error but
/// ENOENT (the caller is gone or was interrupted) as ECANCELED.
fn answer(fd: RawFd, response: &ScmpNotifResp) -> Result<(), libseccomp::error::SeccompError> {
    const ATTEMPTS: usize = 4;
    let mut result = response.respond(fd);
    for _ in 1..ATTEMPTS {
        match &result {
            Err(err) if err.errno() == Some(libseccomp::error::SeccompErrno::ECANCELED) => {
                result = response.respond(fd);
            }
            _ => break,
        }
    }
    result
}

/// The thread group (process) of thread `tid`, from `/proc`.
fn thread_group(tid: u32) -> Option<u32> {
    procfs::read_status(tid)?.get("Tgid")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel release as (major, minor).
    fn kernel_release() -> Option<(u32, u32)> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut parts = release.trim().split(['.', '-']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }

    /// `se.slice` of the calling thread, in ns, as the scheduler reports it.
    fn own_slice() -> Option<u64> {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        sched
            .lines()
            .find(|line| line.starts_with("se.slice"))?
            .split(':')
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }

    #[test]
    fn a_listener_thread_gets_the_short_slice() {
        if kernel_release().is_none_or(|release| release < (6, 12)) {
            eprintln!("SKIPPED: custom scheduler slices need Linux 6.12 or later");
            return;
        }
        let (before, result, after) = std::thread::spawn(|| {
            let before = own_slice();
            let result = request_short_slice();
            (before, result, own_slice())
        })
        .join()
        .unwrap();
        result.unwrap();
        assert_ne!(
            before,
            Some(LISTENER_SLICE_NS),
            "the default slice is longer"
        );
        assert_eq!(after, Some(LISTENER_SLICE_NS));
    }
}
