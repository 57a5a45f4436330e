//! What a notified call is: the exec's target resolved and classified, the
//! socket's family, type and protocol read against the capture table. Each
//! function reads the caller while it waits and returns an `Outcome`; the
//! answer, the verdict and the alert are the parent module's.

use std::os::fd::{OwnedFd, RawFd};

use libseccomp::notify_id_valid;
use nix::unistd::Pid;
use sniffguard_common::abi::linux::SOCK_TYPE_MASK;
use sniffguard_common::capture::{self, SocketKind};
use sniffguard_common::listener::SocketRules;
use sniffguard_common::policy::{Mode, Policy};

use crate::classify::{Evidence, ExecSite};
use crate::finding::{self, Finding};
use crate::inflight::Notification;
use crate::procfs::{self, ProcessInfo, MAX_ARGS};
use crate::resolve::{self, Base};
use crate::target::{self, PATH_MAX};
use crate::Shared;

/// Which container a notify fd belongs to.
#[derive(Debug, Clone)]
pub struct ListenerContext {
    /// The container id.
    pub container_id: String,
    /// Its environment.
    pub environment: String,
    /// Its annotations, as the runtime reported them.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Whether the filter notifies the syscalls that change a process's root
    /// or mounts ([`sniffguard_common::listener::ROOT_CHANGES_NOTIFIED`]), so
    /// that the container's root may be kept open across decisions.
    pub root_changes_notified: bool,
    /// The base profile's own rules for `socket`, when the shim moved them
    /// here: every `socket` call is then notified, and what sniffguard lets
    /// through still gets the base profile's answer.
    pub socket_rules: Option<SocketRules>,
}

/// The container root kept across the decisions of one listener.
pub(super) enum KeptRoot {
    /// Not kept: opened per exec from the caller's `/proc/TID/root`.
    Never,
    /// Kept once the first exec's caller is confirmed to be the container's.
    NotYet,
    /// Every process of this filter has this root.
    Kept(OwnedFd),
}

impl KeptRoot {
    pub(super) fn new(root_changes_notified: bool) -> KeptRoot {
        if root_changes_notified {
            KeptRoot::NotYet
        } else {
            KeptRoot::Never
        }
    }

    fn get(&self) -> Option<&OwnedFd> {
        match self {
            KeptRoot::Kept(fd) => Some(fd),
            _ => None,
        }
    }
}

/// What a decision found.
pub(super) enum Outcome {
    /// Let it run.
    Continue,
    /// A sniffer.
    Sniffer(Box<Finding>),
    /// Performed here in the caller's place (an `ioctl(SIOCSIFFLAGS)` that
    /// does not turn promiscuous mode on): its result, or its errno.
    Performed(Result<(), nix::errno::Errno>),
}

/// An exec whose target could not be judged (`reason` says why). Where the
/// environment enforces, not knowing is no reason to let it run: it is
/// refused as a sniffer would be, with the reason as its evidence. In audit it
/// runs, and the log says why it was not judged.
pub(super) fn unjudged(
    request: &Notification,
    (width, argv_ptr): (usize, u64),
    policy: &Policy,
    context: &ListenerContext,
    reason: String,
    kernel_errno: Option<i32>,
) -> Outcome {
    let enforce = policy
        .environment(&context.environment)
        .map_or(true, |(_, env)| env.mode == Mode::Enforce);
    if !enforce {
        tracing::info!(
            container = context.container_id,
            pid = request.pid,
            reason,
            "exec let through unjudged (audit)"
        );
        return Outcome::Continue;
    }
    let pid = Pid::from_raw(request.pid as i32);
    let argv = target::read_argv(pid, argv_ptr, MAX_ARGS, width)
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Outcome::Sniffer(Box::new(Finding {
        evidence: vec![Evidence::Unresolved { reason }],
        process: ProcessInfo {
            argv,
            ..ProcessInfo::default()
        },
        file: None,
        refusal: kernel_errno,
    }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decide_exec(
    fd: RawFd,
    request: &Notification,
    width: usize,
    at: bool,
    shared: &Shared,
    policy: &Policy,
    context: &ListenerContext,
    kept_root: &mut KeptRoot,
) -> Outcome {
    let args = request.args;
    let tid = request.pid;
    let pid = Pid::from_raw(tid as i32);
    let (base, path_ptr, argv_ptr) = if at {
        // execveat(dirfd, pathname, argv, envp, flags)
        let dirfd = args[0] as u32 as i32;
        let empty_path = args[4] as u32 as i32 & libc::AT_EMPTY_PATH != 0;
        let base = if empty_path {
            Base::EmptyPath(dirfd)
        } else if dirfd == resolve::AT_FDCWD {
            Base::Cwd
        } else {
            Base::DirFd(dirfd)
        };
        (base, args[1], args[2])
    } else {
        (Base::Cwd, args[0], args[1])
    };
    // An unreadable or over-long path would fail in the kernel too (EFAULT,
    // ENAMETOOLONG) — unless another thread maps it in the meantime: refused
    // where the environment enforces.
    let (path, argv0_ptr) =
        target::read_cstring_and_pointer(pid, path_ptr, PATH_MAX, argv_ptr, width);
    let path = match path {
        Ok(path) => path,
        Err(err) => {
            // What the kernel answers when the memory stays as it is now.
            let errno = match err {
                target::TargetError::Fault(_) => Some(libc::EFAULT),
                target::TargetError::TooLong(_) => Some(libc::ENAMETOOLONG),
                target::TargetError::Os(_) => None,
            };
            let reason = format!("the path could not be read from the caller's memory: {err}");
            return unjudged(request, (width, argv_ptr), policy, context, reason, errno);
        }
    };
    let argv0 = match argv0_ptr {
        // `execv(path, argv)` with argv[0] the very same string: read once.
        Some(p) if p == path_ptr => Some(path.clone()),
        Some(p) => target::read_cstring(pid, p, target::MAX_ARG_BYTES).ok(),
        None => None,
    };
    // The caller's own root, unless the container's is kept.
    let fresh_root = match kept_root.get() {
        Some(_) => None,
        None => match resolve::open_root(tid) {
            Ok(root) => Some(root),
            Err(err) => {
                let reason = format!("the caller's root could not be opened: {err}");
                return unjudged(request, (width, argv_ptr), policy, context, reason, None);
            }
        },
    };
    let Some(root) = kept_root.get().or(fresh_root.as_ref()) else {
        return Outcome::Continue;
    };
    // A path that does not resolve fails in the kernel too (ENOENT, ENOTDIR,
    // not a regular file): nothing runs, so there is nothing to refuse or
    // report (answering EPERM would also change how shells search PATH). Any
    // other failure leaves the answer unknown.
    let resolved = resolve::resolve(root, tid, base, &path);
    let evidence = match &resolved {
        Ok(resolved) => {
            let read_all_args = || target::read_argv(pid, argv_ptr, MAX_ARGS, width);
            let site = ExecSite {
                root: root.into(),
                tid,
                argv: &read_all_args,
            };
            shared
                .classifier
                .classify_exec(policy, &site, &path, argv0.as_deref(), Some(resolved))
        }
        Err(_) => Vec::new(),
    };
    if let (KeptRoot::NotYet, Some(root)) = (&*kept_root, fresh_root) {
        // The root opened above is the container's if its caller was still the
        // process that made this notification after it was opened; no root
        // change has been notified on this filter yet.
        if notify_id_valid(fd, request.id).is_ok() {
            tracing::debug!(pid = tid, "the container root is kept for later decisions");
            *kept_root = KeptRoot::Kept(root);
        }
    }
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(err) if err.nothing_runs() => return Outcome::Continue,
        Err(err) => {
            let errno = err.kernel_errno();
            let reason = format!("the file to execute could not be resolved: {err}");
            return unjudged(request, (width, argv_ptr), policy, context, reason, errno);
        }
    };
    if evidence.is_empty() {
        shared.vetted.record(tid, &path);
        return Outcome::Continue;
    }
    // Arguments are read while the caller still waits, so the alert shows the
    // command line that was refused.
    let argv = target::read_argv(pid, argv_ptr, MAX_ARGS, width)
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let exe = procfs::path_in_container(tid, &resolved.host_path());
    Outcome::Sniffer(Box::new(Finding {
        evidence,
        process: ProcessInfo {
            exe: Some(exe),
            argv,
            ..ProcessInfo::default()
        },
        file: resolved.open().ok(),
        refusal: None,
    }))
}

/// `SYS_SOCKET` of i386 `socketcall`.
const SYS_SOCKET: u64 = 1;

/// i386 `socketcall(SYS_SOCKET, args)`. Its arguments live in the caller's
/// memory, which a second thread can rewrite between our read and the
/// kernel's: no answer but a refusal is safe. Creating sockets through
/// socketcall is refused outright (32-bit programs built in the last decade use
/// socket(2), decided from registers); the other socketcall operations continue.
pub(super) fn decide_socketcall(request: &Notification) -> Outcome {
    if request.args[0] & 0xffff_ffff != SYS_SOCKET {
        return Outcome::Continue;
    }
    Outcome::Sniffer(Box::new(Finding::new(
        vec![Evidence::RawSocket {
            family: "socketcall(SYS_SOCKET), arguments in memory".into(),
            socket_type: 0,
        }],
        procfs::running_exe(request.pid),
        Vec::new(),
    )))
}

/// Classifies a `socket(family, type, protocol)` call. Only register arguments
/// are involved, so this decision cannot be raced.
pub(super) fn decide_socket(request: &Notification, policy: &Policy, environment: &str) -> Outcome {
    let Some(capture) = capture::capture_socket(request.args[0], request.args[1], request.args[2])
    else {
        return Outcome::Continue;
    };
    if !policy.catalogue.raw_icmp_is_capture && capture::is_raw_icmp(capture, request.args[2]) {
        return Outcome::Continue;
    }
    // Netfilter management is the environment's to allow; the NFLOG or
    // NFQUEUE binding that would capture through it is then the probes' to
    // stop. An environment gone from a reloaded policy allows nothing.
    if capture.kind == SocketKind::Netfilter
        && policy
            .environment(environment)
            .is_ok_and(|(_, env)| env.netfilter_management)
    {
        return Outcome::Continue;
    }
    let evidence =
        finding::capture_socket_evidence(capture, (request.args[1] & SOCK_TYPE_MASK) as u32);
    Outcome::Sniffer(Box::new(Finding::new(
        vec![evidence],
        procfs::running_exe(request.pid),
        procfs::cmdline(request.pid),
    )))
}

/// Decides a notified `bpf(BPF_PROG_LOAD, attr, size)`: the filter sends only
/// that command (compared in the register), and an environment that does not
/// allow program loads (`bpf_programs`) refuses every one of them. The
/// program's type lives in the caller's memory, where a second thread could
/// change it after any check; it is read for the alert only.
pub(super) fn decide_bpf(request: &Notification, policy: &Policy, environment: &str) -> Outcome {
    if request.args[0] & 0xffff_ffff != sniffguard_common::abi::linux::BPF_PROG_LOAD {
        return Outcome::Continue;
    }
    // An environment gone from a reloaded policy allows nothing.
    if policy
        .environment(environment)
        .is_ok_and(|(_, env)| env.bpf_programs)
    {
        return Outcome::Continue;
    }
    let pid = Pid::from_raw(request.pid as i32);
    let program_type = match target::read_pointers(pid, request.args[1], 1, 4) {
        Ok(read) => {
            let prog_type = read.first().copied().unwrap_or(0) as u32;
            match sniffguard_common::abi::capture_program_type(prog_type) {
                Some(name) => name.to_string(),
                None => format!("prog_type {prog_type} (every program load is refused here)"),
            }
        }
        Err(err) => format!("unknown ({err})"),
    };
    Outcome::Sniffer(Box::new(Finding::new(
        vec![Evidence::BpfProgram { program_type }],
        procfs::running_exe(request.pid),
        procfs::cmdline(request.pid),
    )))
}
