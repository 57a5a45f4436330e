//! `ioctl(fd, SIOCSIFFLAGS, ifreq)` from an enforced container that keeps
//! `CAP_NET_ADMIN` (the hook sends it here only then): the flags are in the
//! caller's memory, which a second thread may rewrite between any check and
//! the kernel's own read. So the call is never continued: a request that
//! turns promiscuous mode on is refused as a sniffer's, and every other one is
//! performed here, through the caller's own socket and with the copy that was
//! judged (by the network broker, which holds `CAP_NET_ADMIN`), after the
//! capability check the kernel would have made of the caller.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use libseccomp::notify_id_valid;
use nix::errno::Errno;
use nix::unistd::Pid;
use sniffguard_common::capture::PROMISCUOUS_FLAG;

use super::decide::Outcome;
use crate::classify::Evidence;
use crate::finding::Finding;
use crate::inflight::Notification;
use crate::netbroker::IFREQ_LEN;
use crate::procfs;
use crate::target::{self, TargetError};
use crate::Shared;

/// `struct ifreq` of the 32-bit ABIs: the union is 16 bytes there.
const COMPAT_IFREQ_LEN: usize = 32;
/// Where `ifr_flags` sits in every ABI's `struct ifreq`.
const IFR_FLAGS: usize = 16;
/// `CAP_NET_ADMIN`'s bit.
const CAP_NET_ADMIN: u64 = 1 << 12;
/// `SIOCGSKNS` (linux/sockios.h): the network namespace of a socket. Not in
/// the libc crate.
const SIOCGSKNS: libc::c_ulong = 0x894C;
/// `NS_GET_USERNS` (linux/nsfs.h, `_IO(0xb7, 0x1)`): the user namespace that
/// owns a namespace. Not in the libc crate.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread, whose fd table may
/// not be its process's. Not in the libc crate.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Decides an `ioctl(fd, SIOCSIFFLAGS, ifreq)`; `width` is the caller's
/// pointer size.
pub(super) fn decide_interface_flags(
    fd: RawFd,
    request: &Notification,
    width: usize,
    shared: &Shared,
) -> Outcome {
    match interface_flags(fd, request, width, shared) {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

/// [`decide_interface_flags`]; `Err` for an answer found early.
fn interface_flags(
    fd: RawFd,
    request: &Notification,
    width: usize,
    shared: &Shared,
) -> Result<Outcome, Outcome> {
    let tid = request.pid;
    let len = if width == 4 {
        COMPAT_IFREQ_LEN
    } else {
        IFREQ_LEN
    };
    let mut ifreq = [0u8; IFREQ_LEN];
    let pointer = if width == 4 {
        request.args[2] & 0xffff_ffff
    } else {
        request.args[2]
    };
    match target::read_exact(Pid::from_raw(tid as i32), pointer, &mut ifreq[..len]) {
        Ok(()) => {}
        Err(TargetError::Fault(_)) => return Err(Outcome::Performed(Err(Errno::EFAULT))),
        Err(err) => {
            tracing::debug!(pid = tid, %err, "SIOCSIFFLAGS request unreadable");
            return Err(Outcome::Performed(Err(Errno::EPERM)));
        }
    }
    let socket = caller_fd(fd, request, request.args[0] as u32 as i32)
        .map_err(|errno| Outcome::Performed(Err(errno)))?;
    let is_socket = std::fs::File::from(
        socket
            .try_clone()
            .map_err(|_| Outcome::Performed(Err(Errno::EPERM)))?,
    )
    .metadata()
    .is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        // SIOCSIFFLAGS means nothing to other files; performing a device's
        // ioctl here, with root's rights, is not ours to do.
        return Err(Outcome::Performed(Err(Errno::ENOTTY)));
    }
    if !caller_may_configure(tid, &socket) {
        return Err(Outcome::Performed(Err(Errno::EPERM)));
    }
    let requested = u16::from_ne_bytes([ifreq[IFR_FLAGS], ifreq[IFR_FLAGS + 1]]);
    let current = match current_flags(&socket, &ifreq) {
        Ok(flags) => flags,
        Err(errno) => return Err(Outcome::Performed(Err(errno))),
    };
    if requested & PROMISCUOUS_FLAG != 0 && current & PROMISCUOUS_FLAG == 0 {
        let name_end = ifreq[..16].iter().position(|&b| b == 0).unwrap_or(16);
        let interface = String::from_utf8_lossy(&ifreq[..name_end]).into_owned();
        return Ok(Outcome::Sniffer(Box::new(Finding::new(
            vec![Evidence::Promiscuous {
                method: format!("SIOCSIFFLAGS on {interface}"),
            }],
            procfs::running_exe(tid),
            procfs::cmdline(tid),
        ))));
    }
    let Some(broker) = shared.netbroker.as_ref() else {
        tracing::warn!(pid = tid, "no network broker: SIOCSIFFLAGS refused");
        return Err(Outcome::Performed(Err(Errno::EPERM)));
    };
    Err(Outcome::Performed(
        broker.set_interface_flags(socket.as_fd(), &ifreq),
    ))
}

/// A copy of the caller's fd `target_fd`, taken from the calling thread's own
/// fd table while it waits.
fn caller_fd(fd: RawFd, request: &Notification, target_fd: i32) -> Result<OwnedFd, Errno> {
    let tid = request.pid as libc::c_int;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let mut pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if pidfd < 0 && Errno::last() == Errno::EINVAL {
        // Before Linux 6.9: the process's pidfd (its fd table, which threads
        // share unless made with a bare clone).
        let tgid = super::thread_group(request.pid).unwrap_or(request.pid);
        // SAFETY: as above.
        pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tgid as libc::c_int, 0) };
    }
    if pidfd < 0 {
        return Err(Errno::EPERM);
    }
    // SAFETY: pidfd_open just returned this fd; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd takes a pidfd, an fd number and flags (0), and
    // returns a new fd in this process or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    if got < 0 {
        return Err(match Errno::last() {
            Errno::EBADF => Errno::EBADF,
            _ => Errno::EPERM,
        });
    }
    // SAFETY: pidfd_getfd just returned this fd; nothing else owns it.
    let copy = unsafe { OwnedFd::from_raw_fd(got as RawFd) };
    // The pid named the waiting caller only if it still waits.
    notify_id_valid(fd, request.id).map_err(|_| Errno::EPERM)?;
    Ok(copy)
}

/// The check the kernel makes before changing flags: `CAP_NET_ADMIN` in the
/// user namespace that owns the socket's network namespace. Taken as held
/// when the calling thread has it in its effective set and lives in that user
/// namespace or in the host's. (A thread in a parent namespace of the owner
/// but not the host's is refused: rarer than it is worth reading.)
fn caller_may_configure(tid: u32, socket: &OwnedFd) -> bool {
    let effective = std::fs::read_to_string(format!("/proc/{tid}/status"))
        .map(|s| crate::privileges::parse_status(&s).effective)
        .unwrap_or(0);
    if effective & CAP_NET_ADMIN == 0 {
        return false;
    }
    let Ok(caller_ns) = std::fs::metadata(format!("/proc/{tid}/ns/user")) else {
        return false;
    };
    if std::fs::metadata("/proc/self/ns/user").is_ok_and(|own| own.ino() == caller_ns.ino()) {
        return true;
    }
    let Some(owner) = owning_user_namespace(socket) else {
        return false;
    };
    owner.metadata().is_ok_and(|m| m.ino() == caller_ns.ino())
}

/// The user namespace owning `socket`'s network namespace.
fn owning_user_namespace(socket: &OwnedFd) -> Option<std::fs::File> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd or -1.
    let netns = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSKNS as _) };
    if netns < 0 {
        return None;
    }
    // SAFETY: the ioctl just returned this fd; nothing else owns it.
    let netns = unsafe { OwnedFd::from_raw_fd(netns) };
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd or -1.
    let owner = unsafe { libc::ioctl(netns.as_raw_fd(), NS_GET_USERNS as _) };
    if owner < 0 {
        return None;
    }
    // SAFETY: as above.
    Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(owner) }))
}

/// The interface's flags now (`SIOCGIFFLAGS` needs no capability), as the
/// kernel reports them: `IFF_PROMISC` there is the one a user asked for.
fn current_flags(socket: &OwnedFd, ifreq: &[u8; IFREQ_LEN]) -> Result<u16, Errno> {
    let mut query = [0u8; IFREQ_LEN];
    query[..16].copy_from_slice(&ifreq[..16]);
    // SAFETY: `query` is a live 40-byte buffer, the size of struct ifreq;
    // SIOCGIFFLAGS reads the name and writes the flags into it.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, query.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(u16::from_ne_bytes([query[IFR_FLAGS], query[IFR_FLAGS + 1]]))
}
