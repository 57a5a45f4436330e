//! Dropping every capability `sniffguard run` no longer needs once it has started.
//!
//! Start-up needs a lot: loading and attaching the eBPF programs (`CAP_BPF`,
//! `CAP_PERFMON`), mounting tracefs (`CAP_SYS_ADMIN`), maybe binding a metrics port
//! below 1024. What runs afterwards — deciding notifications, classifying files,
//! updating eBPF maps through fds it already holds, kill and freeze responses —
//! needs only [`SUPERVISOR_KEEPS`]. The same set is what `config/systemd/sniffguard.service`
//! and the Helm chart's DaemonSet (`deploy/helm/sniffguard/templates/daemonset.yaml`)
//! grant, minus what only start-up uses.
//!
//! Capabilities belong to threads, not processes: capset(2) and
//! `PR_CAPBSET_DROP` change the calling thread only, and the async runtime's
//! threads already exist when start-up ends. So every other thread is made to
//! drop its own through a real-time signal whose handler makes the same raw
//! system calls (what libcap's "psx" does for C programs), and the result is
//! read back from `/proc/self/task/*/status` until every thread holds no more
//! than the kept set. Threads created afterwards inherit their creator's sets.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A capability kept after start-up, with the reason it is still needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Its number (`linux/capability.h`).
    pub number: u32,
    /// Its name, as `/proc` tools and systemd spell it.
    pub name: &'static str,
    /// What the supervisor does with it.
    pub why: &'static str,
}

/// What `sniffguard run` keeps once its probes are loaded and its sockets bound.
///
/// Not kept, and why that is enough: `CAP_BPF`/`CAP_PERFMON`/`CAP_SYS_ADMIN`
/// (map updates and ring-buffer reads go through fds opened at load time, and
/// since Linux 6.5 only map creation and program loading check them);
/// `CAP_DAC_OVERRIDE` (everything it writes — its runtime directory, forensic
/// records, the alert file, `cgroup.freeze`/`freezer.state`, the cgroup leaf it
/// gives a crun container — is root's and writable by its owner); the seccomp
/// notify ioctls need no capability on a received fd.
pub const SUPERVISOR_KEEPS: [Capability; 3] = [
    Capability {
        number: 19,
        name: "CAP_SYS_PTRACE",
        why: "process_vm_readv of an exec's path and argv, /proc/PID/{root,cwd,exe,fd,mem,environ} of container processes (ptrace access mode)",
    },
    Capability {
        number: 5,
        name: "CAP_KILL",
        why: "the kill response and the exec backstop (pidfd_send_signal) on processes of any uid, e.g. tcpdump after it switched to its own user",
    },
    Capability {
        number: 2,
        name: "CAP_DAC_READ_SEARCH",
        why: "open and classify the file an exec names whatever its mode and owner (a container's 0700 directory, a userns-mapped owner)",
    },
];

/// The fd keeper holds fds and polls them: it needs no capability at all.
pub const KEEPER_KEEPS: [Capability; 0] = [];

/// Errors while dropping capabilities.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// capget(2) failed on the calling thread.
    #[error("capget: {0}")]
    Capget(#[source] std::io::Error),
    /// The first drop, on the calling thread, failed.
    #[error("cannot drop capabilities on the calling thread: {0}")]
    Drop(#[source] std::io::Error),
    /// The handler for the per-thread drop could not be installed.
    #[error("cannot install the capability-drop signal handler: {0}")]
    Handler(#[source] std::io::Error),
    /// `/proc/self/task` could not be read.
    #[error("cannot list this process's threads: {0}")]
    Threads(#[source] std::io::Error),
    /// Some threads still hold more than the kept set after every retry.
    #[error("threads {0:?} still hold capabilities that should have been dropped")]
    Stubborn(Vec<i32>),
}

/// What [`drop_to`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The capabilities kept (the requested ones the process had).
    pub kept: Vec<&'static str>,
    /// Requested capabilities the process did not have to begin with.
    pub missing: Vec<&'static str>,
    /// Whether the bounding set was reduced too (needs `CAP_SETPCAP`).
    pub bounding: bool,
    /// How many threads now hold only the kept set.
    pub threads: usize,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `CAP_SETPCAP`: needed to shrink the bounding set.
const CAP_SETPCAP: u32 = 8;

/// How long every thread has to confirm the drop.
const THREAD_DEADLINE: Duration = Duration::from_secs(2);

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (low, high).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

// What the signal handler applies: set before any thread is signalled.
static KEEP_MASK: AtomicU64 = AtomicU64::new(0);
static LAST_CAP: AtomicU32 = AtomicU32::new(0);
static DROP_BOUNDING: AtomicBool = AtomicBool::new(false);

/// The mask of `caps`.
fn mask_of(caps: &[Capability]) -> u64 {
    caps.iter()
        .filter(|c| c.number < 64)
        .fold(0, |mask, c| mask | (1 << c.number))
}

/// Every capability number this kernel knows, as a mask.
fn all_known(last_cap: u32) -> u64 {
    if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    }
}

fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40)
        .min(63)
}

/// The calling thread's (effective, permitted) sets.
fn capget() -> std::io::Result<(u64, u64)> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are live, correctly laid out (`repr(C)` copies of
    // the kernel's structs) and data has the two elements version 3 writes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// Drops, on the calling thread, every capability outside `KEEP_MASK` from the
/// ambient, bounding (when `DROP_BOUNDING`), inheritable, permitted and
/// effective sets. Returns 0 or an errno.
///
/// Async-signal-safe: atomics loads and raw system calls only, no allocation.
fn apply_to_this_thread() -> libc::c_int {
    let keep = KEEP_MASK.load(Ordering::SeqCst);
    let last = LAST_CAP.load(Ordering::SeqCst);
    let errno = || {
        // SAFETY: __errno_location returns this thread's errno slot, always valid.
        unsafe { *libc::__errno_location() }
    };
    // SAFETY: prctl with integer arguments only; PR_CAP_AMBIENT_CLEAR_ALL takes no pointer.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    // EINVAL: a kernel without ambient capabilities (< 4.3) has none to clear.
    if rc != 0 && errno() != libc::EINVAL {
        return errno();
    }
    if DROP_BOUNDING.load(Ordering::SeqCst) {
        for cap in 0..=last {
            if keep & (1u64 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAPBSET_DROP,
                    libc::c_ulong::from(cap),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if rc != 0 {
                return errno();
            }
        }
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // Truncations are the point: the low and the high half of the 64-bit mask.
    #[allow(clippy::cast_possible_truncation)]
    let (lo, hi) = (keep as u32, (keep >> 32) as u32);
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: header and data live on this stack frame for the call and match the
    // kernel's layout; version 3 reads exactly two data elements.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return errno();
    }
    0
}

extern "C" fn on_drop_signal(_signal: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot; it is restored
    // so that the interrupted code sees its own errno.
    let saved = unsafe { *libc::__errno_location() };
    let _ = apply_to_this_thread();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The signal that asks a thread to drop its capabilities.
fn drop_signal() -> libc::c_int {
    // glibc keeps SIGRTMIN-2..SIGRTMIN-1 for itself; SIGRTMIN() is the first free one.
    libc::SIGRTMIN() + 2
}

/// The capability sets of one thread, from `/proc/self/task/TID/status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCaps {
    /// `CapInh`.
    pub inheritable: u64,
    /// `CapPrm`.
    pub permitted: u64,
    /// `CapEff`.
    pub effective: u64,
    /// `CapBnd`.
    pub bounding: u64,
    /// `CapAmb`.
    pub ambient: u64,
}

/// Parses the `Cap*` lines of a `/proc/.../status` file.
pub fn parse_status(status: &str) -> ThreadCaps {
    let mut caps = ThreadCaps::default();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = u64::from_str_radix(value.trim(), 16) else {
            continue;
        };
        match key {
            "CapInh" => caps.inheritable = value,
            "CapPrm" => caps.permitted = value,
            "CapEff" => caps.effective = value,
            "CapBnd" => caps.bounding = value,
            "CapAmb" => caps.ambient = value,
            _ => {}
        }
    }
    caps
}

fn thread_ids() -> std::io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// True when a thread's sets hold no more than `keep`.
fn is_dropped(caps: &ThreadCaps, keep: u64, bounding: bool) -> bool {
    caps.effective & !keep == 0
        && caps.permitted & !keep == 0
        && caps.inheritable == 0
        && caps.ambient == 0
        && (!bounding || caps.bounding & !keep == 0)
}

/// Drops every capability but `keep` from every thread of this process: ambient
/// and inheritable emptied; effective and permitted reduced to `keep` (those of
/// it the process has); the bounding set too when the process may
/// (`CAP_SETPCAP`), so that nothing it execs later (the fd keeper) gets more back.
pub fn drop_to(keep: &[Capability]) -> Result<Dropped, PrivilegeError> {
    let last = last_cap();
    let (effective, permitted) = capget().map_err(PrivilegeError::Capget)?;
    let wanted = mask_of(keep);
    let keep_mask = wanted & permitted & all_known(last);
    let bounding = effective & (1 << CAP_SETPCAP) != 0;
    KEEP_MASK.store(keep_mask, Ordering::SeqCst);
    LAST_CAP.store(last, Ordering::SeqCst);
    DROP_BOUNDING.store(bounding, Ordering::SeqCst);

    // SAFETY: sigaction with a zeroed struct, a plain extern "C" handler that only
    // makes async-signal-safe calls, and SA_RESTART so interrupted system calls
    // in other threads resume instead of failing with EINTR.
    let installed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_drop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(drop_signal(), &action, std::ptr::null_mut())
    };
    if installed != 0 {
        return Err(PrivilegeError::Handler(std::io::Error::last_os_error()));
    }
    let rc = apply_to_this_thread();
    if rc != 0 {
        return Err(PrivilegeError::Drop(std::io::Error::from_raw_os_error(rc)));
    }

    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    let deadline = Instant::now() + THREAD_DEADLINE;
    loop {
        let tids = thread_ids().map_err(PrivilegeError::Threads)?;
        let mut pending = Vec::new();
        for &tid in &tids {
            if tid == me {
                continue;
            }
            let Ok(status) = fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
                continue; // the thread has exited
            };
            if !is_dropped(&parse_status(&status), keep_mask, bounding) {
                pending.push(tid);
            }
        }
        if pending.is_empty() {
            let name = |c: &Capability| c.name;
            return Ok(Dropped {
                kept: keep
                    .iter()
                    .filter(|c| keep_mask & (1 << c.number) != 0)
                    .map(name)
                    .collect(),
                missing: keep
                    .iter()
                    .filter(|c| keep_mask & (1 << c.number) == 0)
                    .map(name)
                    .collect(),
                bounding,
                threads: tids.len(),
            });
        }
        if Instant::now() >= deadline {
            return Err(PrivilegeError::Stubborn(pending));
        }
        for &tid in &pending {
            // SAFETY: tgkill with this process's pid, a tid read from
            // /proc/self/task and a signal whose handler is installed above. A tid
            // that exited in between gets ESRCH, which is fine.
            unsafe {
                libc::syscall(libc::SYS_tgkill, pid, tid, drop_signal());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Drops to `keep` and logs the outcome; a failure is logged, never fatal:
/// a supervisor that enforces with too many privileges is better than none.
pub fn drop_and_log(keep: &[Capability], who: &str) {
    match drop_to(keep) {
        Ok(dropped) => {
            if !dropped.missing.is_empty() {
                tracing::warn!(
                    who,
                    missing = dropped.missing.join(", "),
                    "started without capabilities it uses; some responses may fail"
                );
            }
            tracing::info!(
                who,
                kept = dropped.kept.join(", "),
                bounding_set = dropped.bounding,
                threads = dropped.threads,
                "capabilities dropped to what is still needed"
            );
        }
        Err(err) => tracing::error!(who, %err, "capabilities NOT dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_masks_match() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000080024\n\
                      CapEff:\t0000000000080024\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        let caps = parse_status(status);
        assert_eq!(caps.effective, mask_of(&SUPERVISOR_KEEPS));
        assert_eq!(caps.permitted, 0x80024);
        assert_eq!(caps.bounding, all_known(40));
        assert!(is_dropped(&caps, mask_of(&SUPERVISOR_KEEPS), false));
        assert!(!is_dropped(&caps, mask_of(&SUPERVISOR_KEEPS), true));
        assert_eq!(all_known(63), u64::MAX);
    }
}
