//! The hook's own seccomp filter, installed once its inputs are read.
//!
//! The hook runs as root in every container's start path and reads input a
//! container's author controls (the bundle, the state). After it has gathered
//! what it needs from the host, all it does is talk to the supervisor over a
//! Unix socket and exit; from then on every other syscall fails with `EPERM`.
//!
//! The runtime shim cannot confine itself: a filter survives `execve`, and
//! the shim's last act is to exec the real runtime, which needs nearly
//! everything. It prepares the bundle in a child process instead, which
//! confines itself ([`confine_shim_child`]) before it parses `config.json`
//! and exits once the rewrite is written; the shim execs the runtime only
//! after the child succeeded.

use std::collections::BTreeMap;

use seccompiler::{
    apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// Errors installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// This architecture has no filter.
    #[error("no seccomp filter for this architecture")]
    Arch,
    /// The filter could not be built or installed.
    #[error("cannot install the hook's seccomp filter: {0}")]
    Filter(#[from] seccompiler::Error),
    /// The filter could not be compiled.
    #[error("cannot compile the hook's seccomp filter: {0}")]
    Backend(#[from] seccompiler::BackendError),
}

/// The syscalls the hook needs after [`crate::hook::prepare`], each with why.
const ALLOWED: &[(libc::c_long, &str)] = &[
    (libc::SYS_read, "the supervisor's answer"),
    (libc::SYS_write, "the request, and messages on stderr"),
    (libc::SYS_writev, "stderr"),
    (libc::SYS_close, "closing the socket"),
    (libc::SYS_connect, "the supervisor's API socket"),
    (libc::SYS_sendto, "the request"),
    (libc::SYS_recvfrom, "the answer"),
    (libc::SYS_setsockopt, "read and write timeouts"),
    (libc::SYS_fcntl, "std's socket set-up"),
    (libc::SYS_poll, "bounded waits"),
    (libc::SYS_ppoll, "bounded waits"),
    (libc::SYS_brk, "memory"),
    (libc::SYS_mmap, "memory"),
    (libc::SYS_munmap, "memory"),
    (libc::SYS_mremap, "memory"),
    (libc::SYS_madvise, "memory"),
    (libc::SYS_futex, "std's locks"),
    (libc::SYS_rt_sigaction, "std's signal set-up"),
    (libc::SYS_rt_sigprocmask, "std's signal set-up"),
    (libc::SYS_rt_sigreturn, "returning from a signal"),
    (libc::SYS_sigaltstack, "std's stack-overflow handler"),
    (
        libc::SYS_clock_gettime,
        "timeouts (when the vDSO falls back)",
    ),
    (libc::SYS_clock_nanosleep, "none expected; harmless"),
    (libc::SYS_getrandom, "hash maps' seeds"),
    (libc::SYS_gettid, "panics"),
    (libc::SYS_getpid, "panics"),
    (libc::SYS_tgkill, "abort"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_exit_group, "exit"),
    (libc::SYS_restart_syscall, "interrupted waits"),
];

/// What the shim's child needs beyond [`ALLOWED`]: it reads the policy and the
/// bundle's `config.json`, pings the supervisor, and writes the rewrite next to
/// the original before renaming it into place (or notes a fail-open start).
const SHIM_CHILD_EXTRA: &[(libc::c_long, &str)] = &[
    (
        libc::SYS_openat,
        "the policy, config.json, the rewrite, the fail-open note",
    ),
    (libc::SYS_newfstatat, "file sizes and modes"),
    (libc::SYS_fstat, "file sizes"),
    (libc::SYS_statx, "std's metadata"),
    (libc::SYS_lseek, "std's file reads"),
    (libc::SYS_rename, "the atomic rewrite"),
    (libc::SYS_renameat, "the atomic rewrite"),
    (libc::SYS_renameat2, "the atomic rewrite"),
    (libc::SYS_unlink, "removing a failed rewrite"),
    (libc::SYS_unlinkat, "removing a failed rewrite"),
    (libc::SYS_mkdir, "the fail-open note's directory"),
    (libc::SYS_mkdirat, "the fail-open note's directory"),
    (libc::SYS_fchmod, "the rewrite keeps config.json's mode"),
    (libc::SYS_getcwd, "a relative bundle path"),
    (libc::SYS_readlink, "std's path handling"),
    (libc::SYS_ioctl, "std's terminal checks on stderr"),
    // musl (the static build, scripts/build-static.sh) calls the older x86_64
    // syscalls where glibc uses the *at forms (open(2) for openat(2), stat(2) and
    // lstat(2) for absolute paths); aarch64 has only the *at forms.
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_open,
        "the same files, as the static (musl) build opens them",
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_stat,
        "file metadata, as the static (musl) build reads it",
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_lstat,
        "file metadata, as the static (musl) build reads it",
    ),
];

fn build() -> Result<BpfProgram, SandboxError> {
    build_with(&[])
}

fn build_with(extra: &[(libc::c_long, &str)]) -> Result<BpfProgram, SandboxError> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => TargetArch::x86_64,
        "aarch64" => TargetArch::aarch64,
        _ => return Err(SandboxError::Arch),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(extra)
        .map(|(nr, _)| (*nr, Vec::new()))
        .collect();
    // Only Unix sockets: the hook never talks to the network.
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::AF_UNIX as u64,
        )?])?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )?;
    Ok(filter.try_into()?)
}

/// Installs the filter on this process (one thread: the hook is single-threaded).
pub fn confine() -> Result<(), SandboxError> {
    let program = build()?;
    apply_filter(&program)?;
    Ok(())
}

/// Installs the shim child's filter on this process (the forked child of the
/// single-threaded shim): no exec, no network, no ptrace, no mounts.
pub fn confine_shim_child() -> Result<(), SandboxError> {
    let program = build_with(SHIM_CHILD_EXTRA)?;
    apply_filter(&program)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filters_compile() {
        // Installing them would confine the test process: only build them
        // here. The integration tests run every hook and shim confined.
        assert!(!super::build().unwrap().is_empty());
        assert!(!super::build_with(super::SHIM_CHILD_EXTRA)
            .unwrap()
            .is_empty());
    }
}
