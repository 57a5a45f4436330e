//! Loading sniffguard's eBPF programs and keeping their maps in step with the
//! registry.
//!
//! The programs are built from `supervisor-ebpf/` by `build.rs` and embedded in
//! this binary. Maps are named by the constants of `sniffguard_common::abi`.

use std::os::fd::AsFd;
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};

use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use sniffguard_common::abi::{
    KernelOffsets, COMM_LEN, COUNTERS_MAP, COUNTER_EVENTS, COUNTER_KILLS, COUNTER_RINGBUF_DROPS,
    EVENTS_MAP, KERNEL_OFFSETS_GLOBAL, KILL_NAMES_MAP, MONITORED_MAP, MONITOR_ENFORCE,
    SUPERVISOR_TGID_GLOBAL,
};

/// The object built by `build.rs`.
static PROGRAMS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sniffguard-probes"));

/// Where tracefs is expected.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// The tracepoints attached, as (category, name, program): most programs
/// carry their tracepoint's name; the `NETLINK_ROUTE` walk has programs of
/// its own on the send tracepoints (verified apart from the netfilter scan).
const TRACEPOINTS: [(&str, &str, &str); 12] = [
    ("syscalls", "sys_enter_execve", "sys_enter_execve"),
    ("syscalls", "sys_enter_execveat", "sys_enter_execveat"),
    ("sched", "sched_process_exec", "sched_process_exec"),
    ("syscalls", "sys_enter_socket", "sys_enter_socket"),
    ("syscalls", "sys_exit_socket", "sys_exit_socket"),
    ("syscalls", "sys_enter_setsockopt", "sys_enter_setsockopt"),
    ("syscalls", "sys_enter_ioctl", "sys_enter_ioctl"),
    ("syscalls", "sys_enter_sendto", "sys_enter_sendto"),
    ("syscalls", "sys_enter_sendmsg", "sys_enter_sendmsg"),
    ("syscalls", "sys_enter_sendto", "link_sendto"),
    ("syscalls", "sys_enter_sendmsg", "link_sendmsg"),
    ("syscalls", "sys_enter_bpf", "sys_enter_bpf"),
];

/// The raw tracepoint of the compat socket program, and the program: raw
/// `sys_enter` sees the compat (i386, x32) syscalls the `syscalls`
/// tracepoints skip. Attached on demand ([`CompatProbe`]).
const COMPAT_TRACEPOINT: &str = "sys_enter";
const COMPAT_PROGRAM: &str = "raw_sys_enter";

/// Errors loading or driving the probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// tracefs is neither mounted nor mountable.
    #[error("tracefs is not available at {TRACEFS}: {0}")]
    Tracefs(#[source] std::io::Error),
    /// The kernel refused the object.
    #[error("cannot load the eBPF programs: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program failed to load or attach.
    #[error("cannot attach {category}/{name}: {source}")]
    Attach {
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
        /// Why.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object.
    #[error("eBPF object has no map {0}")]
    MissingMap(&'static str),
    /// A map operation failed.
    #[error("eBPF map {map}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Why.
        #[source]
        source: aya::maps::MapError,
    },
}

/// Counters kept by the programs, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProbeCounters {
    /// Events lost because the ring buffer was full.
    pub ringbuf_drops: u64,
    /// Events submitted.
    pub events: u64,
    /// Processes killed in the exec probe.
    pub kernel_kills: u64,
}

/// The maps user space writes, and the counters it reads.
pub struct ProbeMaps {
    monitored: BpfHashMap<MapData, u64, u32>,
    kill_names: BpfHashMap<MapData, [u8; COMM_LEN], u32>,
    counters: PerCpuArray<MapData, u64>,
    /// The compat socket program on the raw `sys_enter` tracepoint.
    pub compat: CompatProbe,
}

/// The program that sees compat (i386, x32) `socket` calls, which the
/// syscall tracepoints skip. It must sit on the raw `sys_enter` tracepoint,
/// which runs it for every system call of the node (measured here: the
/// enforce exec ratio of bench section 1 went from 1.12–1.16 without it to
/// 1.22–1.38 with it), and only audit containers need it: in enforce
/// environments seccomp refuses compat capture sockets from the registers.
/// So it is loaded at start and attached only while an audit container is
/// registered; the supervisor holds the link, and dropping it detaches.
#[derive(Default)]
pub struct CompatProbe {
    /// The loaded program, kept to be attached later (by the network broker,
    /// which keeps the capability to: the supervisor gives it up).
    pub program: Option<std::os::fd::OwnedFd>,
    /// The attachment, while there is one.
    pub link: Option<std::os::fd::OwnedFd>,
    /// Attached at start for good (no broker to attach it later).
    pub always: bool,
}

/// Loaded and attached programs.
pub struct Probes {
    /// Keeps the programs attached for as long as it lives.
    pub programs: Ebpf,
    /// The maps.
    pub maps: ProbeMaps,
    /// The event stream, until a reader takes it.
    pub events: Option<RingBuf<MapData>>,
}

/// Mounts tracefs if it is not mounted: tracepoints cannot be attached without
/// it (PLATFORM.md: it is not always mounted on this kind of host).
pub fn ensure_tracefs() -> Result<(), ProbeError> {
    if Path::new(TRACEFS).join("events").exists() {
        return Ok(());
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|errno| ProbeError::Tracefs(errno.into()))
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { map: name, source })
}

impl Probes {
    /// Loads the programs and attaches every tracepoint.
    pub fn load() -> Result<Probes, ProbeError> {
        ensure_tracefs()?;
        let tgid = std::process::id();
        let offsets = crate::btf::kernel_offsets().unwrap_or_else(|err| {
            tracing::warn!(%err, "the kernel's struct offsets are unknown: exec events carry no file identity, and a short-lived program run through a file descriptor may go unjudged in audit containers");
            KernelOffsets::default()
        });
        let mut ebpf = EbpfLoader::new()
            .override_global(SUPERVISOR_TGID_GLOBAL, &tgid, true)
            .override_global(KERNEL_OFFSETS_GLOBAL, &offsets, true)
            .load(PROGRAMS)?;
        // Maps are taken before the programs attach, so the ring buffer has a
        // reader before the first event can be written.
        let events: RingBuf<MapData> = take(&mut ebpf, EVENTS_MAP)?;
        let mut maps = ProbeMaps {
            monitored: take(&mut ebpf, MONITORED_MAP)?,
            kill_names: take(&mut ebpf, KILL_NAMES_MAP)?,
            counters: take(&mut ebpf, COUNTERS_MAP)?,
            compat: CompatProbe::default(),
        };
        for (category, name, program_name) in TRACEPOINTS {
            let attach_err = |source| ProbeError::Attach {
                category,
                name,
                source,
            };
            let program: &mut TracePoint = ebpf
                .program_mut(program_name)
                .ok_or(ProbeError::Attach {
                    category,
                    name,
                    source: aya::programs::ProgramError::UnexpectedProgramType,
                })?
                .try_into()
                .map_err(attach_err)?;
            program.load().map_err(attach_err)?;
            program.attach(category, name).map_err(attach_err)?;
        }
        attach_uring_probe(&mut ebpf);
        let compat = compat_program(&mut ebpf)?;
        compat.load().map_err(compat_error)?;
        // Attached on demand (see CompatProbe): its fd is kept for that.
        let fd = compat
            .fd()
            .map_err(compat_error)?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|err| compat_error(aya::programs::ProgramError::IOError(err)))?;
        maps.compat.program = Some(fd);
        Ok(Probes {
            programs: ebpf,
            maps,
            events: Some(events),
        })
    }
}

impl Probes {
    /// Attaches the compat socket program now and for good: for a supervisor
    /// with no network broker to attach it on demand.
    pub fn attach_compat_for_good(&mut self) -> Result<(), ProbeError> {
        compat_program(&mut self.programs)?
            .attach(COMPAT_TRACEPOINT)
            .map_err(compat_error)?;
        self.maps.compat.always = true;
        Ok(())
    }
}

/// The compat socket program of the loaded object.
fn compat_program(ebpf: &mut Ebpf) -> Result<&mut RawTracePoint, ProbeError> {
    ebpf.program_mut(COMPAT_PROGRAM)
        .ok_or(compat_error(
            aya::programs::ProgramError::UnexpectedProgramType,
        ))?
        .try_into()
        .map_err(compat_error)
}

fn compat_error(source: aya::programs::ProgramError) -> ProbeError {
    ProbeError::Attach {
        category: "raw_syscalls",
        name: COMPAT_TRACEPOINT,
        source,
    }
}

/// Attaches the io_uring request probe where the kernel has io_uring and its
/// `io_uring_submit_req` record is laid out as the program reads it (`req` at
/// 16, `opcode` at 32). It is optional: without it only io_uring's sockets
/// go unseen in audit containers, which is said in the log.
fn attach_uring_probe(ebpf: &mut Ebpf) {
    let format_path = Path::new(TRACEFS).join("events/io_uring/io_uring_submit_req/format");
    let format = std::fs::read_to_string(&format_path).unwrap_or_default();
    let expected = ["void * req;\toffset:16;", "u8 opcode;\toffset:32;"];
    if !expected.iter().all(|field| format.contains(field)) {
        tracing::warn!(
            format = %format_path.display(),
            "io_uring's request tracepoint is missing or laid out differently: capture sockets opened through io_uring are not seen in audit containers"
        );
        return;
    }
    let attached = ebpf
        .program_mut("io_uring_submit_req")
        .ok_or(aya::programs::ProgramError::UnexpectedProgramType)
        .and_then(|program| {
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            program.attach("io_uring", "io_uring_submit_req").map(drop)
        });
    if let Err(err) = attached {
        tracing::warn!(%err, "io_uring request probe not attached: capture sockets opened through io_uring are not seen in audit containers");
    }
}

/// The key the kernel compares `comm` with: the name truncated to 15 bytes and
/// NUL padded, as `__set_task_comm` stores it.
pub fn comm_key(name: &str) -> [u8; COMM_LEN] {
    let mut key = [0u8; COMM_LEN];
    let bytes = name.as_bytes();
    let n = bytes.len().min(COMM_LEN - 1);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

impl ProbeMaps {
    /// Reports events for the container in `cgroup_id`; `enforce` lets the exec
    /// probe kill catalogued names there.
    pub fn monitor(&mut self, cgroup_id: u64, enforce: bool) -> Result<(), ProbeError> {
        let flags = if enforce { MONITOR_ENFORCE } else { 0 };
        self.monitored
            .insert(cgroup_id, flags, 0)
            .map_err(|source| ProbeError::Map {
                map: MONITORED_MAP,
                source,
            })
    }

    /// Stops reporting events for `cgroup_id`.
    pub fn unmonitor(&mut self, cgroup_id: u64) {
        let _ = self.monitored.remove(&cgroup_id);
    }

    /// Replaces the names the exec probe kills with `names`.
    pub fn set_kill_names<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ProbeError> {
        let old: Vec<[u8; COMM_LEN]> = self.kill_names.keys().filter_map(Result::ok).collect();
        for key in old {
            let _ = self.kill_names.remove(&key);
        }
        for name in names {
            self.kill_names
                .insert(comm_key(name), 1, 0)
                .map_err(|source| ProbeError::Map {
                    map: KILL_NAMES_MAP,
                    source,
                })?;
        }
        Ok(())
    }

    /// The programs' counters, summed over CPUs.
    pub fn counters(&self) -> ProbeCounters {
        let sum = |index: u32| {
            self.counters
                .get(&index, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        ProbeCounters {
            ringbuf_drops: sum(COUNTER_RINGBUF_DROPS),
            events: sum(COUNTER_EVENTS),
            kernel_kills: sum(COUNTER_KILLS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_keys_truncate_like_the_kernel() {
        assert_eq!(&comm_key("tcpdump")[..8], b"tcpdump\0");
        let long = comm_key("a-very-long-sniffer-name");
        assert_eq!(&long[..15], b"a-very-long-sni");
        assert_eq!(long[15], 0);
    }
}
