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
    EVENTS_BYTES, EVENT_BPF, EVENT_EXEC, EVENT_IOCTL, EVENT_LINK, EVENT_MIRROR, EVENT_NETFILTER,
    EVENT_SETSOCKOPT, EVENT_SOCKET, FLAG_ARGV_TRUNCATED, FLAG_FILE_IDENTITY, FLAG_KILLED,
    FLAG_NETFILTER_SOCKET, FLAG_NO_ARGV, FLAG_ROUTE_SOCKET, MAX_KILL_NAMES, MAX_MONITORED,
    MAX_NETLINK_SOCKETS, MAX_PENDING_ARGV, MAX_PENDING_NETLINK, MIRROR_NFT_DUP, MIRROR_XT_TEE,
    MONITOR_ENFORCE, NETLINK_SCAN_BYTES,
};
use sniffguard_common::capture::{self, LinkChannel};

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
static SG_NETLINK_SCRATCH: PerCpuArray<[u8; NETLINK_SCAN_BYTES]> =
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
const SIGKILL: u32 = 9;

type Res = Result<(), i64>;

fn count(index: u32) {
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
fn monitored() -> Option<(u32, u64)> {
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

fn syscall_arg(ctx: &TracePointContext, index: usize) -> Result<u64, i64> {
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

fn emit_net(kind: u32, cgroup: u64, fill: impl FnOnce(&mut NetEvent)) -> Res {
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
fn is_netlink_socket(fd: u64, protocol: u64) -> bool {
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
