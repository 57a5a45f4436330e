//! The programs. Each exported program is a thin wrapper over a `try_` function
//! returning `Result`, so that every early exit is explicit.

use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_comm,
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user,
    bpf_probe_read_user_str_bytes, bpf_send_signal,
};
use aya_ebpf::macros::{map, raw_tracepoint, tracepoint};
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::{RawTracePointContext, TracePointContext};
use aya_ebpf::EbpfContext;
use sniffguard_common::abi::{
    linux, EventHeader, ExecEvent, FileIdentity, KernelOffsets, NetEvent, PendingArgv, ARGV_SLOTS,
    ARG_LEN, COMM_LEN, COUNTERS, COUNTER_EVENTS, COUNTER_KILLS, COUNTER_RINGBUF_DROPS,
    EVENTS_BYTES, EVENT_BPF, EVENT_EXEC, EVENT_IOCTL, EVENT_SETSOCKOPT, EVENT_SOCKET,
    FLAG_ARGV_TRUNCATED, FLAG_FILE_IDENTITY, FLAG_KILLED, FLAG_NO_ARGV, MAX_KILL_NAMES,
    MAX_MONITORED, MAX_NETLINK_SOCKETS, MAX_PENDING_ARGV, MAX_PENDING_NETLINK, MONITOR_ENFORCE,
    NETLINK_SCAN_BYTES,
};
use sniffguard_common::capture;

#[map]
static SG_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map]
static SG_MONITORED: HashMap<u64, u32> = HashMap::with_max_entries(MAX_MONITORED, 0);

#[map]
static SG_KILL_NAMES: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(MAX_KILL_NAMES, 0);

#[map]
static SG_PENDING_ARGV: LruHashMap<u32, PendingArgv> =
    LruHashMap::with_max_entries(MAX_PENDING_ARGV, 0);

#[map]
static SG_SCRATCH: PerCpuArray<PendingArgv> = PerCpuArray::with_max_entries(1, 0);

#[map]
static SG_PENDING_NETLINK: LruHashMap<u32, u32> =
    LruHashMap::with_max_entries(MAX_PENDING_NETLINK, 0);

#[map]
static SG_NETLINK_SOCKETS: LruHashMap<u64, u32> =
    LruHashMap::with_max_entries(MAX_NETLINK_SOCKETS, 0);

#[map]
pub(crate) static SG_NETLINK_SCRATCH: PerCpuArray<[u8; NETLINK_SCAN_BYTES]> =
    PerCpuArray::with_max_entries(1, 0);

#[map]
static SG_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

/// When an exec event last woke the reader (`bpf_ktime_get_ns`), one slot
/// shared by every CPU.
#[map]
static SG_LAST_WAKE: Array<u64> = Array::with_max_entries(1, 0);

/// At most one exec event in this long wakes the reader. The others are read
/// by its fast poll (every 2 ms, for 100 ms after the last event); a steady
/// stream of execs wakes it 20 times a second, not once per exec: a woken
/// reader is pulled to the exec'ing CPU and classifies there, in the way of
/// the execs it reports.
const WAKE_INTERVAL_NS: u64 = 50_000_000;

/// Set by the loader: the supervisor's own tgid.
#[unsafe(no_mangle)]
static SG_SUPERVISOR_TGID: u32 = 0;

/// Set by the loader from the running kernel's BTF: where the fields that name
/// the executed file are. All zero (not `valid`) until then.
#[unsafe(no_mangle)]
static SG_KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    valid: 0,
    task_mm: 0,
    mm_exe_file: 0,
    file_inode: 0,
    inode_sb: 0,
    inode_ino: 0,
    inode_nlink: 0,
    inode_ctime_sec: 0,
    inode_ctime_nsec: 0,
    sb_dev: 0,
};

/// Offset of the first syscall argument in a `syscalls/sys_enter_*` record.
const SYSCALL_ARGS: usize = 16;
/// `sched/sched_process_exec`: `__data_loc char[] filename` at 8, `pid` at 12,
/// `old_pid` at 16.
const EXEC_FILENAME_LOC: usize = 8;
const EXEC_OLD_PID: usize = 16;
pub(crate) const SIGKILL: u32 = 9;

pub(crate) type Res = Result<(), i64>;

pub(crate) fn count(index: u32) {
    if let Some(counter) = SG_COUNTERS.get_ptr_mut(index) {
        // SAFETY: the per-CPU slot is only touched by programs on this CPU,
        // which do not preempt each other.
        unsafe { *counter += 1 };
    }
}

/// Deepest cgroup v2 level searched for a monitored ancestor. Kubernetes puts
/// containers at level 4 or 5 (`kubepods.slice/…/pod…/cri-containerd-…`), and
/// a container's own children go below that.
const MAX_CGROUP_DEPTH: i32 = 32;

/// The container the current task belongs to: the monitoring flags and the
/// cgroup id it was registered with, if it is monitored and not the supervisor
/// itself. A process that moved into a child cgroup of its container (a
/// writable cgroupfs, `clone3(CLONE_INTO_CGROUP)`) is still the container's:
/// its ancestors are searched, from the root down, until one is monitored.
pub(crate) fn monitored() -> Option<(u32, u64)> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a read of a global the loader may have rewritten; volatile so
    // the compiler does not fold the initial 0.
    let supervisor = unsafe { core::ptr::read_volatile(&SG_SUPERVISOR_TGID) };
    if tgid == supervisor {
        return None;
    }
    // SAFETY: plain helper call without pointers.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the map value is a u32 read once; the entry may be deleted
    // concurrently, but hash map values stay valid until the program ends (RCU).
    if let Some(flags) = unsafe { SG_MONITORED.get(&cgroup) } {
        return Some((*flags, cgroup));
    }
    // Level 0 is the root, never a container's; the walk ends at the task's
    // own level, where the helper answers 0.
    let mut level = 1;
    while level < MAX_CGROUP_DEPTH {
        // SAFETY: plain helper call without pointers.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if ancestor == 0 || ancestor == cgroup {
            return None;
        }
        // SAFETY: as above.
        if let Some(flags) = unsafe { SG_MONITORED.get(&ancestor) } {
            return Some((*flags, ancestor));
        }
        level += 1;
    }
    None
}

/// An event header for the current task, in the container `cgroup` (the id
/// it was registered with, which user space knows it by).
fn header(kind: u32, cgroup: u64) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind,
        flags: 0,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        _pad: 0,
        cgroup_id: cgroup,
        // SAFETY: plain helper call without pointers.
        time_ns: unsafe { bpf_ktime_get_ns() },
    }
}

pub(crate) fn syscall_arg(ctx: &TracePointContext, index: usize) -> Result<u64, i64> {
    // SAFETY: syscall enter records hold six u64 arguments after the header.
    unsafe { ctx.read_at::<u64>(SYSCALL_ARGS + index * 8) }.map_err(i64::from)
}

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let _ = capture_argv(&ctx, 1);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    let _ = capture_argv(&ctx, 2);
    0
}

/// Copies up to `ARGV_SLOTS` arguments of the exec being entered.
fn capture_argv(ctx: &TracePointContext, argv_index: usize) -> Res {
    monitored().ok_or(0)?;
    let argv = syscall_arg(ctx, argv_index)? as *const u64;
    let scratch = SG_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    // SAFETY: the per-CPU scratch slot is exclusively ours while this program
    // runs on this CPU.
    let pending = unsafe { &mut *scratch };
    pending.argc = 0;
    pending.flags = 0;
    for i in 0..ARGV_SLOTS {
        // SAFETY: reading a user pointer with the fault-tolerant helper.
        let arg = unsafe { bpf_probe_read_user(argv.wrapping_add(i)) }.unwrap_or(0);
        if arg == 0 {
            break;
        }
        let slot = &mut pending.argv[i * ARG_LEN..(i + 1) * ARG_LEN];
        // SAFETY: the helper bounds the copy by the slot length and tolerates
        // faults.
        if unsafe { bpf_probe_read_user_str_bytes(arg as *const u8, slot) }.is_err() {
            slot[0] = 0;
        }
        pending.argc = (i + 1) as u32;
    }
    if pending.argc as usize == ARGV_SLOTS {
        // SAFETY: as above.
        let more = unsafe { bpf_probe_read_user(argv.wrapping_add(ARGV_SLOTS)) }.unwrap_or(0);
        if more != 0 {
            pending.flags |= FLAG_ARGV_TRUNCATED;
        }
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    SG_PENDING_ARGV.insert(&tid, pending, 0).map_err(i64::from)
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let _ = report_exec(&ctx);
    0
}

fn report_exec(ctx: &TracePointContext) -> Res {
    let (flags, cgroup) = monitored().ok_or(0)?;
    let Some(mut entry) = SG_EVENTS.reserve::<ExecEvent>(0) else {
        count(COUNTER_RINGBUF_DROPS);
        return Err(0);
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, exclusively owned ring-buffer record
    // of size_of::<ExecEvent>() bytes; every field is written before submit.
    let event = unsafe { &mut *event };
    event.header = header(EVENT_EXEC, cgroup);
    event.comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    event.filename[0] = 0;
    // SAFETY: the data_loc word is part of the fixed tracepoint record.
    if let Ok(loc) = unsafe { ctx.read_at::<u32>(EXEC_FILENAME_LOC) } {
        let offset = (loc & 0xffff) as usize;
        let src = (ctx.as_ptr() as *const u8).wrapping_add(offset);
        // SAFETY: the filename lives inside the tracepoint record; the helper
        // bounds the copy and tolerates faults.
        if unsafe { bpf_probe_read_kernel_str_bytes(src, &mut event.filename) }.is_err() {
            event.filename[0] = 0;
        }
    }
    // SAFETY: fixed field of the record.
    let old_pid = unsafe { ctx.read_at::<u32>(EXEC_OLD_PID) }.unwrap_or(0);
    // SAFETY: the value is copied out before the entry is removed.
    match unsafe { SG_PENDING_ARGV.get(&old_pid) } {
        Some(pending) => {
            event.argc = pending.argc;
            event.header.flags |= pending.flags;
            event.argv = pending.argv;
            let _ = SG_PENDING_ARGV.remove(&old_pid);
        }
        None => {
            event.argc = 0;
            event.header.flags |= FLAG_NO_ARGV;
        }
    }
    event._pad = 0;
    match exe_identity() {
        Some(file) => {
            event.file = file;
            event.header.flags |= FLAG_FILE_IDENTITY;
        }
        None => event.file = FileIdentity::default(),
    }
    // SAFETY: the key is a stack array of the map's key size.
    if flags & MONITOR_ENFORCE != 0 && unsafe { SG_KILL_NAMES.get(&event.comm) }.is_some() {
        // SAFETY: signals the current task's process; no pointers involved.
        if unsafe { bpf_send_signal(SIGKILL) } == 0 {
            event.header.flags |= FLAG_KILLED;
            count(COUNTER_KILLS);
        }
    }
    count(COUNTER_EVENTS);
    let wake = exec_wakeup_flags();
    entry.submit(wake);
    Ok(())
}

/// A kernel value of type `T` at `offset` bytes past `base`, read with the
/// fault-tolerant helper.
fn kernel_at<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    let at = (base as *const u8).wrapping_add(offset as usize) as *const T;
    // SAFETY: a fault-tolerant read of kernel memory; a wrong address gives an
    // error, never a fault.
    unsafe { bpf_probe_read_kernel(at) }.ok()
}

/// The file the current task executes, as the kernel knows it now that the
/// exec succeeded (`current->mm->exe_file`, the same file as `bprm->file`):
/// user space recognises it by this identity later, whether the process is
/// still alive, gone, or already running another file.
fn exe_identity() -> Option<FileIdentity> {
    // SAFETY: a read of a global the loader may have rewritten; volatile so
    // the compiler does not fold the initial zeros.
    let at = unsafe { core::ptr::read_volatile(&SG_KERNEL_OFFSETS) };
    if at.valid == 0 {
        return None;
    }
    // SAFETY: plain helper call; the pointer is only read through the helper.
    let task = unsafe { bpf_get_current_task() };
    let mm: u64 = kernel_at(task, at.task_mm)?;
    let file: u64 = kernel_at(mm, at.mm_exe_file)?;
    let inode: u64 = kernel_at(file, at.file_inode)?;
    let sb: u64 = kernel_at(inode, at.inode_sb)?;
    Some(FileIdentity {
        ino: kernel_at(inode, at.inode_ino)?,
        ctime_sec: kernel_at(inode, at.inode_ctime_sec)?,
        ctime_nsec: kernel_at(inode, at.inode_ctime_nsec)?,
        dev: kernel_at(sb, at.sb_dev)?,
        nlink: kernel_at(inode, at.inode_nlink)?,
        _pad: 0,
    })
}

/// How an exec event is submitted. A wake-up per exec costs the exec ~20 µs
/// (PLATFORM.md); none at all leaves the first exec after a quiet spell waiting
/// for the reader's slow idle poll, long enough for a short-lived process (and
/// its /proc entries) to be gone. So an exec wakes the reader only if no exec
/// event has woken it for `WAKE_INTERVAL_NS`: the first one after a quiet
/// spell (the reader slows down only after 100 ms without events) is read at
/// once, the rest by the reader's fast poll while events flow. (In enforce
/// containers the seccomp listener decided the exec before it ran; nothing
/// there waits on this event either.)
fn exec_wakeup_flags() -> u64 {
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(last) = SG_LAST_WAKE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `last` points at the map's one aligned u64 slot, valid for the
    // program's run. Another CPU may write it at the same moment: the worst
    // outcome is one extra wake-up, never a lost event.
    unsafe {
        if now.wrapping_sub(*last) < WAKE_INTERVAL_NS {
            return BPF_RB_NO_WAKEUP as u64;
        }
        *last = now;
    }
    BPF_RB_FORCE_WAKEUP as u64
}

pub(crate) fn emit_net(kind: u32, cgroup: u64, fill: impl FnOnce(&mut NetEvent)) -> Res {
    let Some(mut entry) = SG_EVENTS.reserve::<NetEvent>(0) else {
        count(COUNTER_RINGBUF_DROPS);
        return Err(0);
    };
    // SAFETY: exclusively owned reserved record; every field is written below.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    *event = NetEvent {
        header: header(kind, cgroup),
        family: 0,
        sock_type: 0,
        protocol: 0,
        level: 0,
        optname: 0,
        value: 0,
        fd: 0,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    };
    fill(event);
    count(COUNTER_EVENTS);
    entry.submit(0);
    Ok(())
}

#[tracepoint(category = "syscalls", name = "sys_enter_socket")]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    let _ = report_socket(&ctx);
    0
}

fn report_socket(ctx: &TracePointContext) -> Res {
    // The kernel reads these as int: compare the low 32 bits only.
    let family = syscall_arg(ctx, 0)? & 0xffff_ffff;
    let sock_type = syscall_arg(ctx, 1)? & linux::SOCK_TYPE_MASK;
    let protocol = syscall_arg(ctx, 2)? & 0xffff_ffff;
    if family == linux::AF_NETLINK {
        // Which netlink family an fd is, for the kill of a link or tc
        // request (`report_netlink_send`): noted here, kept when the call
        // returns the fd.
        monitored().ok_or(0)?;
        let tid = bpf_get_current_pid_tgid() as u32;
        let _ = SG_PENDING_NETLINK.insert(&tid, &(protocol as u32), 0);
    }
    // A netfilter socket captures only once a group or queue is bound on it:
    // the configuration message is reported (`report_netlink_send`).
    match capture::capture_socket(family, sock_type, protocol) {
        Some(rule) if rule.kind.captures_by_itself() => {}
        _ => return Ok(()),
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    emit_net(EVENT_SOCKET, cgroup, |e| {
        e.family = family as u32;
        e.sock_type = sock_type as u32;
        e.protocol = protocol as u32;
    })
}

/// `syscalls/sys_exit_*`: the return value at 16.
const SYSCALL_RET: usize = 16;

#[tracepoint(category = "syscalls", name = "sys_exit_socket")]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    let _ = note_netlink_socket(&ctx);
    0
}

/// Remembers the fd of a `NETLINK_ROUTE` or `NETLINK_NETFILTER` socket a
/// monitored process just opened (the value: its protocol, plus one), and
/// forgets an fd number that now holds another netlink family.
/// (An fd closed, or replaced by `dup2` or another kind of socket, is not
/// followed: the entry only arms the kill of a message that must also look
/// like a link or tc request addressed to the kernel.)
fn note_netlink_socket(ctx: &TracePointContext) -> Res {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let protocol = unsafe { SG_PENDING_NETLINK.get(&tid) }.copied().ok_or(0)?;
    let _ = SG_PENDING_NETLINK.remove(&tid);
    // SAFETY: a field of the fixed tracepoint record.
    let fd = unsafe { ctx.read_at::<i64>(SYSCALL_RET) }.map_err(i64::from)?;
    if fd < 0 {
        return Ok(());
    }
    let key = netlink_socket_key(fd as u64);
    let protocol = u64::from(protocol);
    if protocol == linux::NETLINK_ROUTE || protocol == linux::NETLINK_NETFILTER {
        SG_NETLINK_SOCKETS
            .insert(&key, &(protocol as u32 + 1), 0)
            .map_err(i64::from)
    } else {
        SG_NETLINK_SOCKETS.remove(&key).map_err(i64::from)
    }
}

/// Whether the probe saw the current process open `fd` as a netlink socket
/// of `protocol` (`NETLINK_ROUTE` or `NETLINK_NETFILTER`). A plain integer
/// comparison: the verifier rejected what `Option` equality compiled to.
pub(crate) fn is_netlink_socket(fd: u64, protocol: u64) -> bool {
    // SAFETY: plain map lookup with a stack key; the value is copied out.
    let value = unsafe { SG_NETLINK_SOCKETS.get(&netlink_socket_key(fd)) }.map_or(0, |v| *v);
    u64::from(value) == protocol + 1
}

/// The [`SG_NETLINK_SOCKETS`] key of `fd` in the current process.
fn netlink_socket_key(fd: u64) -> u64 {
    (bpf_get_current_pid_tgid() & 0xffff_ffff_0000_0000) | (fd & 0xffff_ffff)
}

#[tracepoint(category = "syscalls", name = "sys_enter_setsockopt")]
pub fn sys_enter_setsockopt(ctx: TracePointContext) -> u32 {
    let _ = report_setsockopt(&ctx);
    0
}

fn report_setsockopt(ctx: &TracePointContext) -> Res {
    let level = syscall_arg(ctx, 1)? & 0xffff_ffff;
    let optname = syscall_arg(ctx, 2)? & 0xffff_ffff;
    let promisc = level == linux::SOL_PACKET && optname == linux::PACKET_ADD_MEMBERSHIP;
    let filter = level == linux::SOL_SOCKET
        && (optname == linux::SO_ATTACH_FILTER || optname == linux::SO_ATTACH_BPF);
    if !promisc && !filter {
        return Ok(());
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    let fd = syscall_arg(ctx, 0)?;
    let mut value = 0u32;
    if promisc {
        let optval = syscall_arg(ctx, 3)?;
        let at = (optval + linux::PACKET_MREQ_TYPE_OFFSET) as *const u16;
        // SAFETY: fault-tolerant read of the caller's packet_mreq.
        let mr_type = unsafe { bpf_probe_read_user(at) }.unwrap_or(0);
        if mr_type != linux::PACKET_MR_PROMISC {
            return Ok(());
        }
        value = u32::from(mr_type);
    }
    emit_net(EVENT_SETSOCKOPT, cgroup, |e| {
        e.level = level as u32;
        e.optname = optname as u32;
        e.value = value;
        e.fd = fd as u32;
    })
}

#[tracepoint(category = "syscalls", name = "sys_enter_ioctl")]
pub fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    let _ = report_ioctl(&ctx);
    0
}

fn report_ioctl(ctx: &TracePointContext) -> Res {
    let cmd = syscall_arg(ctx, 1)? & 0xffff_ffff;
    if cmd != linux::SIOCSIFFLAGS {
        return Ok(());
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    let arg = syscall_arg(ctx, 2)?;
    let at = (arg + linux::IFREQ_FLAGS_OFFSET) as *const u16;
    // SAFETY: fault-tolerant read of the caller's struct ifreq.
    let flags = unsafe { bpf_probe_read_user(at) }.unwrap_or(0);
    if flags & linux::IFF_PROMISC == 0 {
        return Ok(());
    }
    let fd = syscall_arg(ctx, 0)?;
    emit_net(EVENT_IOCTL, cgroup, |e| {
        e.optname = cmd as u32;
        e.value = u32::from(flags);
        e.fd = fd as u32;
    })
}

#[tracepoint(category = "syscalls", name = "sys_enter_bpf")]
pub fn sys_enter_bpf(ctx: TracePointContext) -> u32 {
    let _ = report_bpf(&ctx);
    0
}

/// Reports `bpf(BPF_PROG_LOAD)` of a program type that sees every frame of
/// an interface or socket and can copy or redirect it (socket filter, tc
/// classifier or action, XDP). The type is read from the caller's
/// `union bpf_attr` (`prog_type`, its first field) as the call enters: this
/// is the audit report; enforce environments refuse every program load from
/// the command register in the seccomp filter, which no memory race reaches.
fn report_bpf(ctx: &TracePointContext) -> Res {
    // `cmd` is an int: the low 32 bits.
    if syscall_arg(ctx, 0)? & 0xffff_ffff != linux::BPF_PROG_LOAD {
        return Ok(());
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    let attr = syscall_arg(ctx, 1)?;
    // SAFETY: fault-tolerant read of the caller's bpf_attr.
    let prog_type = unsafe { bpf_probe_read_user(attr as *const u32) }.map_err(|_| 0)?;
    if sniffguard_common::abi::capture_program_type(prog_type).is_none() {
        return Ok(());
    }
    emit_net(EVENT_BPF, cgroup, |e| {
        e.value = prog_type;
    })
}

/// i386 `socket(2)` (`int $0x80`, or a 32-bit program): no 64-bit syscall has
/// this number.
const I386_SOCKET: i64 = 359;
/// i386 `socketcall(2)`; for 64-bit code, 102 is `getuid`.
const I386_SOCKETCALL: i64 = 102;
/// `socketcall`'s `SYS_SOCKET`.
const SYS_SOCKET: u64 = 1;
/// x32 syscalls carry this bit in their number; x32 `socket` is 41 with it.
const X32_SOCKET: i64 = 0x4000_0000 | 41;
/// Offsets in x86-64's `struct pt_regs` (its layout is user ABI: `ptrace`).
const REGS_BX: usize = 40;
const REGS_CX: usize = 88;
const REGS_DX: usize = 96;
const REGS_SI: usize = 104;
const REGS_DI: usize = 112;
/// `NetEvent::value` of a socket event from the i386 ABI, and from x32.
const ABI_I386: u32 = 1;
const ABI_X32: u32 = 2;

/// Every syscall enters here, compat ones too: the `syscalls/sys_enter_*`
/// tracepoints skip i386 (`int $0x80`) and x32 calls, so a capture socket
/// opened through them would not be seen in audit containers otherwise.
/// Three numbers are looked at, the rest leave at the first comparison.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = report_compat_socket(&ctx);
    0
}

fn report_compat_socket(ctx: &RawTracePointContext) -> Res {
    let id: i64 = ctx.arg(1);
    if id != I386_SOCKET && id != I386_SOCKETCALL && id != X32_SOCKET {
        return Ok(());
    }
    let regs: *const u8 = ctx.arg(0);
    let reg = |offset: usize| {
        // SAFETY: fault-tolerant read of the syscall's saved registers.
        unsafe { bpf_probe_read_kernel(regs.wrapping_add(offset) as *const u64) }.map_err(|_| 0)
    };
    let (family, sock_type, protocol, abi) = if id == X32_SOCKET {
        (reg(REGS_DI)?, reg(REGS_SI)?, reg(REGS_DX)?, ABI_X32)
    } else if id == I386_SOCKET {
        (reg(REGS_BX)?, reg(REGS_CX)?, reg(REGS_DX)?, ABI_I386)
    } else {
        // socketcall(SYS_SOCKET, args): three 32-bit ints in the caller's
        // memory.
        if reg(REGS_BX)? & 0xffff_ffff != SYS_SOCKET {
            return Ok(());
        }
        let args = reg(REGS_CX)? & 0xffff_ffff;
        let arg = |i: u64| {
            // SAFETY: fault-tolerant read of the caller's argument array.
            unsafe { bpf_probe_read_user((args + i * 4) as *const u32) }
                .map(u64::from)
                .map_err(|_| 0)
        };
        (arg(0)?, arg(1)?, arg(2)?, ABI_I386)
    };
    match capture::capture_socket(family, sock_type, protocol) {
        Some(rule) if rule.kind.captures_by_itself() => {}
        _ => return Ok(()),
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    emit_net(EVENT_SOCKET, cgroup, |e| {
        e.family = (family & 0xffff_ffff) as u32;
        e.sock_type = (sock_type & linux::SOCK_TYPE_MASK) as u32;
        e.protocol = (protocol & 0xffff_ffff) as u32;
        e.value = abi;
    })
}

/// `io_uring/io_uring_submit_req`: `void *req` at 16, `u8 opcode` at 32 (the
/// loader checks the tracepoint's format before attaching).
const SUBMIT_REQ_REQ: usize = 16;
const SUBMIT_REQ_OPCODE: usize = 32;
/// `IORING_OP_SOCKET` (io_uring's ABI).
const IORING_OP_SOCKET: u8 = 45;
/// Where `struct io_socket` keeps `domain`, `type` and `protocol` inside the
/// request (`struct io_kiocb` starts with the command's data: a file pointer,
/// then the three ints). Kernel-internal, stable since Linux 5.19; a kernel
/// that moved them reports nothing here, which the tests would show.
const IO_SOCKET_DOMAIN: usize = 8;
/// `NetEvent::value` of a socket requested through io_uring.
const ABI_IO_URING: u32 = 3;

/// io_uring requests make no syscall of their own: an `IORING_OP_SOCKET`
/// opening a capture socket is reported from io_uring's own tracepoint, after
/// the request was prepared.
#[tracepoint(category = "io_uring", name = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: TracePointContext) -> u32 {
    let _ = report_uring_socket(&ctx);
    0
}

fn report_uring_socket(ctx: &TracePointContext) -> Res {
    // SAFETY: a field of the fixed tracepoint record.
    let opcode = unsafe { ctx.read_at::<u8>(SUBMIT_REQ_OPCODE) }.map_err(i64::from)?;
    if opcode != IORING_OP_SOCKET {
        return Ok(());
    }
    let (_, cgroup) = monitored().ok_or(0)?;
    // SAFETY: as above.
    let req = unsafe { ctx.read_at::<u64>(SUBMIT_REQ_REQ) }.map_err(i64::from)?;
    let field = |index: usize| {
        let at = (req as *const u8).wrapping_add(IO_SOCKET_DOMAIN + index * 4) as *const u32;
        // SAFETY: fault-tolerant read of the prepared request.
        unsafe { bpf_probe_read_kernel(at) }
            .map(u64::from)
            .map_err(|_| 0)
    };
    let (family, sock_type, protocol) = (field(0)?, field(1)?, field(2)?);
    match capture::capture_socket(family, sock_type, protocol) {
        Some(rule) if rule.kind.captures_by_itself() => {}
        _ => return Ok(()),
    }
    emit_net(EVENT_SOCKET, cgroup, |e| {
        e.family = family as u32;
        e.sock_type = (sock_type & linux::SOCK_TYPE_MASK) as u32;
        e.protocol = protocol as u32;
        e.value = ABI_IO_URING;
    })
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path,
    // so this is never executed.
    unsafe { core::hint::unreachable_unchecked() }
}
