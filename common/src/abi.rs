//! The kernel ↔ user-space ABI of sniffguard's eBPF programs.
//!
//! Every record in the ring buffer starts with an [`EventHeader`] whose `kind`
//! says which struct follows; user space checks the length against that struct
//! before reading it. All structs are `#[repr(C)]` with explicit padding and only
//! fixed-width integers, so the layout is the same for `bpfel-unknown-none` and
//! the host.

/// Ring buffer carrying every event to user space.
pub const EVENTS_MAP: &str = "SG_EVENTS";
/// Hash map: cgroup v2 id → [`MONITOR_ENFORCE`] bits, filled on registration.
pub const MONITORED_MAP: &str = "SG_MONITORED";
/// Hash map: `comm` (16 bytes, NUL padded) → 1, names the exec probe kills in
/// enforce containers.
pub const KILL_NAMES_MAP: &str = "SG_KILL_NAMES";
/// LRU hash map: thread id at `execve` entry → [`PendingArgv`].
pub const PENDING_ARGV_MAP: &str = "SG_PENDING_ARGV";
/// Per-CPU array with one [`PendingArgv`] used as scratch space.
pub const SCRATCH_MAP: &str = "SG_SCRATCH";
/// Per-CPU array of `u64` counters, indexed by the `COUNTER_*` constants.
pub const COUNTERS_MAP: &str = "SG_COUNTERS";
/// LRU hash map: thread id at `socket(AF_NETLINK, …)` entry → the protocol
/// asked for, until the call returns.
pub const PENDING_NETLINK_MAP: &str = "SG_PENDING_NETLINK";
/// LRU hash map: `tgid << 32 | fd` → protocol + 1 for the `NETLINK_ROUTE`
/// and `NETLINK_NETFILTER` sockets a monitored process opened with
/// `socket(2)`.
pub const NETLINK_SOCKETS_MAP: &str = "SG_NETLINK_SOCKETS";
/// Per-CPU array with one [`NETLINK_SCAN_BYTES`]-byte buffer: the start of a
/// traffic-control message, searched for a `mirred` action.
pub const NETLINK_SCRATCH_MAP: &str = "SG_NETLINK_SCRATCH";
/// Global `u32`: the supervisor's own tgid, whose events are skipped.
pub const SUPERVISOR_TGID_GLOBAL: &str = "SG_SUPERVISOR_TGID";
/// Global [`KernelOffsets`]: where the running kernel keeps the fields the
/// exec probe reads to name the executed file, from its BTF.
pub const KERNEL_OFFSETS_GLOBAL: &str = "SG_KERNEL_OFFSETS";

/// Ring buffer size in bytes (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 4 * 1024 * 1024;
/// Containers that can be monitored at once.
pub const MAX_MONITORED: u32 = 16 * 1024;
/// Catalogue names the kernel can kill by.
pub const MAX_KILL_NAMES: u32 = 1024;
/// Execs in flight between `sys_enter_execve` and `sched_process_exec`.
pub const MAX_PENDING_ARGV: u32 = 16 * 1024;
/// Netlink sockets in flight between `socket(2)`'s entry and its return.
pub const MAX_PENDING_NETLINK: u32 = 1024;
/// Netlink sockets remembered (least recently used forgotten first).
pub const MAX_NETLINK_SOCKETS: u32 = 16 * 1024;
/// Bytes of a traffic-control message searched for a `mirred` action.
pub const NETLINK_SCAN_BYTES: usize = 512;

/// Counter: ring-buffer reservations that failed (events lost).
pub const COUNTER_RINGBUF_DROPS: u32 = 0;
/// Counter: events submitted.
pub const COUNTER_EVENTS: u32 = 1;
/// Counter: processes killed by the exec probe.
pub const COUNTER_KILLS: u32 = 2;
/// Number of counters.
pub const COUNTERS: u32 = 3;

/// The container's environment enforces: the exec probe may kill.
pub const MONITOR_ENFORCE: u32 = 1;

/// Event kind: a process in a monitored container executed a file.
pub const EVENT_EXEC: u32 = 1;
/// Event kind: a capture socket was requested.
pub const EVENT_SOCKET: u32 = 2;
/// Event kind: promiscuous membership or a filter attached with `setsockopt`.
pub const EVENT_SETSOCKOPT: u32 = 3;
/// Event kind: `ioctl(SIOCSIFFLAGS)` setting `IFF_PROMISC`.
pub const EVENT_IOCTL: u32 = 4;
/// Event kind: a netlink message configuring an NFLOG group or an NFQUEUE
/// queue (`optname`: its `nlmsg_type`; `level`: 1 if sent by `sendmsg`, 0 by
/// `sendto`).
pub const EVENT_NETFILTER: u32 = 5;
/// Event kind: a `NETLINK_ROUTE` message that puts an interface into
/// promiscuous mode (`RTM_NEWLINK`/`RTM_SETLINK` with `IFF_PROMISC`) or
/// installs a tc `mirred` action (`RTM_NEWTFILTER`/`RTM_NEWACTION`):
/// `optname` is its `nlmsg_type`, `value` the `ifi_flags` of a link message,
/// `level` 1 if sent by `sendmsg`, 0 by `sendto`, `fd` the socket.
pub const EVENT_LINK: u32 = 6;
/// Event kind: `bpf(BPF_PROG_LOAD)` of a program type that can capture or
/// mirror traffic (`value`: the `prog_type`; `fd`: 0).
pub const EVENT_BPF: u32 = 7;
/// Event kind: an nf_tables rule that copies traffic (`NFT_MSG_NEWRULE` with
/// a `dup` expression, or a compat `TEE` target) sent on netlink (`optname`:
/// the `nlmsg_type`; `value`: one of the `MIRROR_*` methods; `level`: 1 if
/// sent by `sendmsg`, 0 by `sendto`).
pub const EVENT_MIRROR: u32 = 8;
/// `EVENT_MIRROR` value: an nft `dup` expression.
pub const MIRROR_NFT_DUP: u32 = 1;
/// `EVENT_MIRROR` value: an x_tables `TEE` target (iptables-nft's compat
/// `target` expression).
pub const MIRROR_XT_TEE: u32 = 2;

/// Header flag: the exec probe sent `SIGKILL`.
pub const FLAG_KILLED: u32 = 1;
/// Header flag: the command line was not captured at `execve` entry.
pub const FLAG_NO_ARGV: u32 = 2;
/// Header flag: there were more arguments than [`ARGV_SLOTS`].
pub const FLAG_ARGV_TRUNCATED: u32 = 4;
/// Header flag of an [`EVENT_LINK`]: the probe saw the sending process open
/// this fd as a `NETLINK_ROUTE` socket (unless the fd was closed and reused
/// since, which the probe does not follow).
pub const FLAG_ROUTE_SOCKET: u32 = 8;
/// Header flag of an [`EVENT_NETFILTER`] or [`EVENT_MIRROR`]: the probe saw
/// the sending process open this fd as a `NETLINK_NETFILTER` socket (unless
/// the fd was closed and reused since, which the probe does not follow).
pub const FLAG_NETFILTER_SOCKET: u32 = 16;
/// Header flag: [`ExecEvent::file`] holds the executed file's identity, read
/// in the kernel at exec time.
pub const FLAG_FILE_IDENTITY: u32 = 32;

/// Bytes of the executed file name kept.
pub const FILENAME_LEN: usize = 256;
/// Arguments kept.
pub const ARGV_SLOTS: usize = 8;
/// Bytes kept per argument (NUL included).
pub const ARG_LEN: usize = 64;
/// Length of a task's `comm`.
pub const COMM_LEN: usize = 16;

/// Linux constants the probes match on.
pub mod linux {
    /// `AF_INET`.
    pub const AF_INET: u64 = 2;
    /// `AF_INET6`.
    pub const AF_INET6: u64 = 10;
    /// `AF_PACKET`.
    pub const AF_PACKET: u64 = 17;
    /// `AF_NETLINK`.
    pub const AF_NETLINK: u64 = 16;
    /// `AF_XDP`.
    pub const AF_XDP: u64 = 44;
    /// `NETLINK_NFLOG`: the legacy ULOG netlink family (removed from Linux
    /// 3.17, refused anyway).
    pub const NETLINK_NFLOG: u64 = 5;
    /// `NETLINK_ROUTE`: links, addresses, routes, traffic control.
    pub const NETLINK_ROUTE: u64 = 0;
    /// `NETLINK_NETFILTER`: netfilter management, and NFLOG/NFQUEUE capture.
    pub const NETLINK_NETFILTER: u64 = 12;
    /// `nlmsg_type` of an NFLOG configuration message (`NFNL_SUBSYS_ULOG << 8 |
    /// NFULNL_MSG_CONFIG`): binding a log group, setting its copy mode.
    pub const NFULNL_CONFIG_TYPE: u16 = 0x0401;
    /// `nlmsg_type` of an NFQUEUE configuration message (`NFNL_SUBSYS_QUEUE << 8
    /// | NFQNL_MSG_CONFIG`): binding a queue, setting its copy mode.
    pub const NFQNL_CONFIG_TYPE: u16 = 0x0302;
    /// `RTM_NEWLINK`: create or change a link.
    pub const RTM_NEWLINK: u16 = 16;
    /// `RTM_SETLINK`: change a link.
    pub const RTM_SETLINK: u16 = 19;
    /// `RTM_NEWTFILTER`: add or change a traffic-control filter (and the
    /// actions it carries).
    pub const RTM_NEWTFILTER: u16 = 44;
    /// `RTM_NEWACTION`: add a standalone traffic-control action.
    pub const RTM_NEWACTION: u16 = 48;
    /// Size of `struct ifinfomsg`.
    pub const IFINFOMSG_LEN: u32 = 16;
    /// Offset of `ifi_flags` in `struct ifinfomsg`.
    pub const IFINFOMSG_FLAGS_OFFSET: u64 = 8;
    /// Offset of `ifi_change` in `struct ifinfomsg`.
    pub const IFINFOMSG_CHANGE_OFFSET: u64 = 12;
    /// Offset of `nlmsg_type` in `struct nlmsghdr`.
    pub const NLMSG_TYPE_OFFSET: u64 = 4;
    /// Size of `struct nlmsghdr`.
    pub const NLMSG_HDRLEN: u32 = 16;
    /// `SOCK_RAW`.
    pub const SOCK_RAW: u64 = 3;
    /// `SOCK_PACKET` (obsolete; `AF_INET` + `SOCK_PACKET` is a packet socket).
    pub const SOCK_PACKET: u64 = 10;
    /// Mask of the socket type without `SOCK_NONBLOCK` / `SOCK_CLOEXEC`.
    pub const SOCK_TYPE_MASK: u64 = 0xf;
    /// `SOL_SOCKET`.
    pub const SOL_SOCKET: u64 = 1;
    /// `SOL_PACKET`.
    pub const SOL_PACKET: u64 = 263;
    /// `PACKET_ADD_MEMBERSHIP`.
    pub const PACKET_ADD_MEMBERSHIP: u64 = 1;
    /// `PACKET_MR_PROMISC`.
    pub const PACKET_MR_PROMISC: u16 = 1;
    /// `SO_ATTACH_FILTER`.
    pub const SO_ATTACH_FILTER: u64 = 26;
    /// `SO_ATTACH_BPF`.
    pub const SO_ATTACH_BPF: u64 = 50;
    /// `SIOCSIFFLAGS`.
    pub const SIOCSIFFLAGS: u64 = 0x8914;
    /// `IFF_PROMISC`.
    pub const IFF_PROMISC: u16 = 0x100;
    /// Offset of `mr_type` in `struct packet_mreq`.
    pub const PACKET_MREQ_TYPE_OFFSET: u64 = 4;
    /// Offset of `ifr_flags` in `struct ifreq`.
    pub const IFREQ_FLAGS_OFFSET: u64 = 16;
    /// `BPF_PROG_LOAD`, the `bpf(2)` command that loads a program.
    pub const BPF_PROG_LOAD: u64 = 5;
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: a filter on a socket (on a packet socket
    /// it selects what is captured).
    pub const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
    /// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier, which sees (and can clone
    /// or redirect) every frame of an interface.
    pub const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
    /// `BPF_PROG_TYPE_SCHED_ACT`: a tc action, the same reach.
    pub const BPF_PROG_TYPE_SCHED_ACT: u32 = 4;
    /// `BPF_PROG_TYPE_XDP`: runs on every received frame of an interface and
    /// can redirect it (to an `AF_XDP` socket among others).
    pub const BPF_PROG_TYPE_XDP: u32 = 6;
    /// `nlmsg_type` of an nf_tables new rule (`NFNL_SUBSYS_NFTABLES << 8 |
    /// NFT_MSG_NEWRULE`).
    pub const NFT_NEWRULE_TYPE: u16 = 0x0a06;
    /// The name attribute's type in an nft expression (`NFTA_EXPR_NAME`) and
    /// in a compat target (`NFTA_TARGET_NAME`), without the flag bits
    /// (`NLA_TYPE_MASK`).
    pub const NLA_NAME_TYPE: u64 = 1;
    /// `NLA_TYPE_MASK`: the kernel ignores an attribute type's two top bits.
    pub const NLA_TYPE_MASK: u64 = 0x3fff;
    /// `"dup\0"` as the four bytes after an attribute header, little-endian.
    /// The kernel compares an expression's name like `nla_strcmp`: "dup"
    /// with one NUL (`nla_len` 8) or without (`nla_len` 7, any padding byte).
    pub const NAME_DUP: u64 = u32::from_le_bytes(*b"dup\0") as u64;
    /// `"TEE\0"` likewise: a compat target's name is read up to its first NUL,
    /// whatever follows it in the attribute (`nla_len` 8 or more).
    pub const NAME_TEE: u64 = u32::from_le_bytes(*b"TEE\0") as u64;
}

/// Whether a `bpf(BPF_PROG_LOAD)` of `prog_type` loads a program that can
/// capture or mirror traffic, and its name for alerts.
pub const fn capture_program_type(prog_type: u32) -> Option<&'static str> {
    match prog_type {
        linux::BPF_PROG_TYPE_SOCKET_FILTER => Some("BPF_PROG_TYPE_SOCKET_FILTER"),
        linux::BPF_PROG_TYPE_SCHED_CLS => Some("BPF_PROG_TYPE_SCHED_CLS"),
        linux::BPF_PROG_TYPE_SCHED_ACT => Some("BPF_PROG_TYPE_SCHED_ACT"),
        linux::BPF_PROG_TYPE_XDP => Some("BPF_PROG_TYPE_XDP"),
        _ => None,
    }
}

/// Start of every ring-buffer record.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of the `EVENT_*` kinds.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Process id (thread group id) on the host.
    pub tgid: u32,
    /// Thread id on the host.
    pub tid: u32,
    /// Real user id.
    pub uid: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// `bpf_ktime_get_ns()` at the event.
    pub time_ns: u64,
}

/// A command line captured at `execve` entry.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PendingArgv {
    /// Arguments stored in `argv`.
    pub argc: u32,
    /// `FLAG_ARGV_TRUNCATED` when more arguments existed.
    pub flags: u32,
    /// Slot `i` holds argument `i`, NUL terminated, at `i * ARG_LEN`.
    pub argv: [u8; ARGV_SLOTS * ARG_LEN],
}

/// Byte offsets of kernel struct fields, found in the running kernel's BTF by
/// the loader (there is no CO-RE from Rust: the program cannot relocate them
/// itself). `valid` is 0 when they could not be found; the exec probe then
/// reports no file identity.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// 1 when every offset below was found.
    pub valid: u32,
    /// `task_struct.mm`.
    pub task_mm: u32,
    /// `mm_struct.exe_file`.
    pub mm_exe_file: u32,
    /// `file.f_inode`.
    pub file_inode: u32,
    /// `inode.i_sb`.
    pub inode_sb: u32,
    /// `inode.i_ino`.
    pub inode_ino: u32,
    /// `inode.i_nlink`.
    pub inode_nlink: u32,
    /// `inode.i_ctime_sec` (or `tv_sec` of an older kernel's `i_ctime`).
    pub inode_ctime_sec: u32,
    /// `inode.i_ctime_nsec` (or `tv_nsec` of an older kernel's `i_ctime`).
    pub inode_ctime_nsec: u32,
    /// `super_block.s_dev`.
    pub sb_dev: u32,
}

/// The executed file as the kernel knows it at exec time
/// (`current->mm->exe_file`): enough to recognise it later, when the process
/// that ran it may be gone or may run another file.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `i_ino`.
    pub ino: u64,
    /// `i_ctime` seconds: a change of content or metadata changes it.
    pub ctime_sec: i64,
    /// `i_ctime` nanoseconds, as stored (newer kernels keep a flag in bit 31).
    pub ctime_nsec: u32,
    /// The superblock's device, in the kernel's encoding (major << 20 | minor).
    pub dev: u32,
    /// `i_nlink`: 0 for a deleted file or a memfd.
    pub nlink: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// `EVENT_EXEC`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExecEvent {
    /// Common header.
    pub header: EventHeader,
    /// Arguments in `argv`.
    pub argc: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// The executed file, when `header.flags` has [`FLAG_FILE_IDENTITY`].
    pub file: FileIdentity,
    /// `comm` after the exec (the kernel sets it from the file name).
    pub comm: [u8; COMM_LEN],
    /// The file name as the kernel executed it (NUL terminated).
    pub filename: [u8; FILENAME_LEN],
    /// The command line, as in [`PendingArgv::argv`].
    pub argv: [u8; ARGV_SLOTS * ARG_LEN],
}

/// `EVENT_SOCKET`, `EVENT_SETSOCKOPT`, `EVENT_IOCTL`, `EVENT_NETFILTER`,
/// `EVENT_LINK`, `EVENT_BPF`, `EVENT_MIRROR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetEvent {
    /// Common header.
    pub header: EventHeader,
    /// `socket`: address family.
    pub family: u32,
    /// `socket`: type (flags masked off).
    pub sock_type: u32,
    /// `socket`: protocol.
    pub protocol: u32,
    /// `setsockopt`: level.
    pub level: u32,
    /// `setsockopt`: option name; `ioctl`: request.
    pub optname: u32,
    /// `setsockopt`: `mr_type`; `ioctl`: `ifr_flags`; `socket`: the ABI of a
    /// compat call (1 i386, 2 x32; 0 for the native one), 3 for an io_uring
    /// `IORING_OP_SOCKET`.
    pub value: u32,
    /// `setsockopt`/`ioctl`: the fd.
    pub fd: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// The task's `comm`.
    pub comm: [u8; COMM_LEN],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), only integers, explicit padding field: every bit pattern
    // is a valid value and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: repr(C), integers and a byte array, no implicit padding.
    unsafe impl aya::Pod for super::PendingArgv {}
    // SAFETY: repr(C), a Pod header, integers and byte arrays, explicit padding.
    unsafe impl aya::Pod for super::ExecEvent {}
    // SAFETY: repr(C), ten u32: no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::KernelOffsets {}
    // SAFETY: repr(C), a Pod header, integers, a byte array, explicit padding.
    unsafe impl aya::Pod for super::NetEvent {}
}

#[cfg(any(feature = "std", test))]
/// A decoded ring-buffer record.
#[derive(Debug, Clone)]
pub enum Event {
    /// An exec (boxed: it is ten times the size of the others).
    Exec(Box<ExecEvent>),
    /// A socket, setsockopt or ioctl event.
    Net(NetEvent),
}

#[cfg(any(feature = "std", test))]
/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or its kind's struct.
    Short {
        /// The record's length.
        len: usize,
        /// What the kind needs.
        need: usize,
    },
    /// A kind this build does not know.
    UnknownKind(u32),
}

#[cfg(any(feature = "std", test))]
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = core::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: the slice holds at least size_of::<T>() bytes (checked above),
    // read_unaligned copes with any alignment, and every T used here is a
    // repr(C) struct of integers for which every bit pattern is valid.
    Ok(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(any(feature = "std", test))]
impl Event {
    /// Decodes one ring-buffer record, checking its length against its kind.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let header: EventHeader = read(bytes)?;
        match header.kind {
            EVENT_EXEC => read(bytes).map(|e| Event::Exec(Box::new(e))),
            EVENT_SOCKET | EVENT_SETSOCKOPT | EVENT_IOCTL | EVENT_NETFILTER | EVENT_LINK
            | EVENT_BPF | EVENT_MIRROR => read(bytes).map(Event::Net),
            other => Err(DecodeError::UnknownKind(other)),
        }
    }

    /// The header of either kind.
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::Exec(e) => &e.header,
            Event::Net(e) => &e.header,
        }
    }
}

/// The NUL-terminated prefix of a fixed buffer.
pub fn c_str(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// The arguments stored in an argv buffer.
pub fn argv_slots(argv: &[u8; ARGV_SLOTS * ARG_LEN], argc: u32) -> impl Iterator<Item = &[u8]> {
    argv.chunks(ARG_LEN)
        .take((argc as usize).min(ARGV_SLOTS))
        .map(c_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T>(value: &T) -> &[u8] {
        // SAFETY: reading the bytes of a live, initialised repr(C) value.
        unsafe {
            core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
        }
    }

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(core::mem::size_of::<EventHeader>(), 40);
        assert_eq!(core::mem::size_of::<NetEvent>(), 40 + 32 + 16);
        assert_eq!(
            core::mem::size_of::<ExecEvent>(),
            40 + 8 + 32 + COMM_LEN + FILENAME_LEN + ARGV_SLOTS * ARG_LEN
        );
        assert_eq!(core::mem::size_of::<FileIdentity>(), 32);
        assert_eq!(core::mem::size_of::<KernelOffsets>(), 40);
        assert_eq!(
            core::mem::size_of::<PendingArgv>(),
            8 + ARGV_SLOTS * ARG_LEN
        );
        assert_eq!(core::mem::align_of::<ExecEvent>(), 8);
    }

    #[test]
    fn name_attributes_read_as_the_kernel_lays_them_out() {
        // struct nlattr { u16 nla_len; u16 nla_type; } then the string.
        let mut dup = [0u8; 8];
        dup[..2].copy_from_slice(&8u16.to_ne_bytes());
        dup[2..4].copy_from_slice(&1u16.to_ne_bytes());
        dup[4..].copy_from_slice(b"dup\0");
        let word = u64::from_ne_bytes(dup);
        assert_eq!(word & 0xffff, 8);
        assert_eq!((word >> 16) & linux::NLA_TYPE_MASK, linux::NLA_NAME_TYPE);
        assert_eq!(word >> 32, linux::NAME_DUP);
        dup[4..].copy_from_slice(b"TEE\0");
        assert_eq!(u64::from_ne_bytes(dup) >> 32, linux::NAME_TEE);
        assert_eq!(capture_program_type(6), Some("BPF_PROG_TYPE_XDP"));
        assert_eq!(capture_program_type(8), None, "cgroup skb");
    }

    #[test]
    fn events_round_trip() {
        let mut exec = ExecEvent {
            header: EventHeader {
                kind: EVENT_EXEC,
                flags: FLAG_KILLED,
                tgid: 10,
                tid: 11,
                uid: 0,
                _pad: 0,
                cgroup_id: 77,
                time_ns: 5,
            },
            argc: 2,
            _pad: 0,
            file: FileIdentity {
                ino: 12,
                ctime_sec: 1_700_000_000,
                ctime_nsec: 5,
                dev: 0x0080_0001,
                nlink: 1,
                _pad: 0,
            },
            comm: [0; COMM_LEN],
            filename: [0; FILENAME_LEN],
            argv: [0; ARGV_SLOTS * ARG_LEN],
        };
        exec.filename[..12].copy_from_slice(b"/usr/bin/tcp");
        exec.argv[..7].copy_from_slice(b"tcpdump");
        exec.argv[ARG_LEN..ARG_LEN + 2].copy_from_slice(b"-D");
        let Event::Exec(back) = Event::decode(as_bytes(&exec)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(back.header, exec.header);
        assert_eq!(back.file, exec.file);
        assert_eq!(c_str(&back.filename), b"/usr/bin/tcp");
        let args: [&[u8]; 2] = [b"tcpdump", b"-D"];
        assert!(argv_slots(&back.argv, back.argc).eq(args));

        let net = NetEvent {
            header: EventHeader {
                kind: EVENT_SOCKET,
                ..EventHeader::default()
            },
            family: 17,
            ..NetEvent::default()
        };
        let Event::Net(back) = Event::decode(as_bytes(&net)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(back, net);

        let link = NetEvent {
            header: EventHeader {
                kind: EVENT_LINK,
                flags: FLAG_ROUTE_SOCKET,
                ..EventHeader::default()
            },
            optname: u32::from(linux::RTM_NEWLINK),
            value: 0x100,
            ..NetEvent::default()
        };
        let Event::Net(back) = Event::decode(as_bytes(&link)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(back, link);
    }

    #[test]
    fn short_and_unknown_records_are_refused() {
        let header = EventHeader {
            kind: EVENT_EXEC,
            ..EventHeader::default()
        };
        assert!(matches!(
            Event::decode(as_bytes(&header)),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            Event::decode(&[1, 2, 3]),
            Err(DecodeError::Short { .. })
        ));
        let odd = EventHeader {
            kind: 99,
            ..EventHeader::default()
        };
        assert_eq!(
            Event::decode(as_bytes(&odd)).unwrap_err(),
            DecodeError::UnknownKind(99)
        );
    }
}
