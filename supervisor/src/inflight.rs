//! The notification a listener thread is deciding, kept where the next
//! supervisor finds it.
//!
//! Once a notification is received it is the receiver's alone: the kernel
//! marks it sent and never offers it again, and the caller waits until the
//! answer comes or it is killed. A supervisor that dies between the receive and
//! the answer (SIGKILL, an OOM kill, a crash) would leave that caller waiting
//! for ever, though the fd keeper holds the filter open and the next supervisor
//! serves every later notification.
//!
//! So every listener receives into a [`Ledger`]: one page of a memfd, mapped
//! shared, that the fd keeper holds next to the notify fd. The kernel copies the
//! notification into that page during the receive itself, so there is no moment
//! at which the supervisor holds a notification that the page does not show;
//! the slot is cleared once the answer is delivered. The next supervisor gets
//! the page back with the notify fd and decides what it finds there again. A
//! slot whose answer was delivered just before the kill is harmless: ids are
//! never reused, and the kernel refuses an answer to an id it no longer waits
//! on (`ENOENT`).

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use libseccomp::{ScmpArch, ScmpSyscall};
use libseccomp_sys::seccomp_notif;
use nix::errno::Errno;
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

/// `SECCOMP_IOCTL_NOTIF_RECV` (`_IOWR('!', 0, struct seccomp_notif)`). The
/// receive is issued here rather than through libseccomp, whose
/// `seccomp_notify_receive` always writes into a buffer of its own and reports
/// every failure as `ECANCELED`.
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;

/// The size of the mapping: one page, of which the first
/// `size_of::<seccomp_notif>()` bytes are the slot.
const LEDGER_BYTES: usize = 4096;
/// [`LEDGER_BYTES`] as `mmap` takes it.
const LEDGER_LENGTH: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(LEDGER_BYTES) {
    Some(n) => n,
    None => panic!("a ledger is not empty"),
};

/// Errors setting up a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The memfd could not be created, sized or mapped.
    #[error("in-flight ledger: {what}: {errno}")]
    System {
        /// The step that failed.
        what: &'static str,
        /// Why.
        errno: Errno,
    },
    /// An fd handed back by the keeper is not a ledger.
    #[error("in-flight ledger from the fd keeper is {size} bytes, expected {LEDGER_BYTES}")]
    WrongSize {
        /// Its size.
        size: i64,
    },
}

/// One listener's in-flight slot.
pub struct Ledger {
    /// The start of the mapping; the slot is at its beginning.
    slot: NonNull<seccomp_notif>,
    /// The memfd behind the mapping: what the keeper holds. `None` for a
    /// private ledger, which no later supervisor can read.
    memfd: Option<OwnedFd>,
}

// SAFETY: the mapping is owned by this value alone and only ever touched
// through `&mut self` or `&self` methods of the listener thread that owns it;
// moving it to that thread moves sole access with it.
unsafe impl Send for Ledger {}

impl Ledger {
    /// A new, empty ledger on a memfd that can be handed to the keeper.
    pub fn create() -> Result<Ledger, LedgerError> {
        let memfd = nix::sys::memfd::memfd_create(
            c"sniffguard-inflight",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(|errno| LedgerError::System {
            what: "memfd_create",
            errno,
        })?;
        nix::unistd::ftruncate(&memfd, LEDGER_BYTES as i64).map_err(|errno| {
            LedgerError::System {
                what: "ftruncate",
                errno,
            }
        })?;
        Ledger::map(memfd)
    }

    /// The ledger the keeper held for a restored listener.
    pub fn reopen(memfd: OwnedFd) -> Result<Ledger, LedgerError> {
        let stat = nix::sys::stat::fstat(&memfd).map_err(|errno| LedgerError::System {
            what: "fstat",
            errno,
        })?;
        if stat.st_size != LEDGER_BYTES as i64 {
            return Err(LedgerError::WrongSize { size: stat.st_size });
        }
        Ledger::map(memfd)
    }

    /// A ledger in this process's memory only: for a listener whose memfd
    /// could not be made. Receiving works the same; a restart cannot see it.
    pub fn private() -> Result<Ledger, LedgerError> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing; nothing else refers to it.
        let start = unsafe {
            mmap_anonymous(
                None,
                LEDGER_LENGTH,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        };
        Ledger::mapped(start, None)
    }

    fn map(memfd: OwnedFd) -> Result<Ledger, LedgerError> {
        // SAFETY: maps LEDGER_BYTES of a memfd this process holds and that is
        // exactly that long (created so, or checked by `reopen`), at an address
        // of the kernel's choosing; the mapping is released in `Drop`.
        let start = unsafe {
            mmap(
                None,
                LEDGER_LENGTH,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                memfd.as_fd(),
                0,
            )
        };
        Ledger::mapped(start, Some(memfd))
    }

    fn mapped(
        start: Result<NonNull<libc::c_void>, Errno>,
        memfd: Option<OwnedFd>,
    ) -> Result<Ledger, LedgerError> {
        let start = start.map_err(|errno| LedgerError::System {
            what: "mmap",
            errno,
        })?;
        Ok(Ledger {
            slot: start.cast(),
            memfd,
        })
    }

    /// `ledger`, or a private one when it could not be had (logged, naming
    /// `container`): the listener still serves, but what it is deciding when
    /// the supervisor dies stays unanswered. `None` (logged) when not even a
    /// private page can be mapped, and the listener cannot receive at all.
    pub fn or_private(ledger: Result<Ledger, LedgerError>, container: &str) -> Option<Ledger> {
        let err = match ledger {
            Ok(ledger) => return Some(ledger),
            Err(err) => err,
        };
        tracing::warn!(container, %err, "no shared in-flight ledger: a notification being decided when this supervisor dies would stay unanswered");
        match Ledger::private() {
            Ok(ledger) => Some(ledger),
            Err(err) => {
                tracing::error!(container, %err, "cannot map an in-flight ledger; the listener cannot receive notifications");
                None
            }
        }
    }

    /// The memfd to hand to the keeper, if this ledger has one.
    pub fn memfd(&self) -> Option<&OwnedFd> {
        self.memfd.as_ref()
    }

    /// The notification a previous supervisor received into this ledger and
    /// did not answer, if any.
    pub fn unanswered(&self) -> Option<Notification> {
        let raw = self.read();
        (raw.id != 0).then(|| request_of(&raw))
    }

    /// Receives the next notification of `notify` into the slot.
    ///
    /// `ENOENT`: the caller went away between `poll` and the receive;
    /// `EINTR`: a signal came first. Either way nothing was received.
    pub fn receive(&mut self, notify: RawFd) -> Result<Notification, Errno> {
        self.clear_all();
        // SAFETY: `slot` points at a writable mapping of at least
        // `size_of::<seccomp_notif>()` bytes that this value owns; the kernel
        // writes one `struct seccomp_notif` there (all zero, as it requires).
        let rc = unsafe {
            libc::ioctl(
                notify,
                SECCOMP_IOCTL_NOTIF_RECV as _,
                self.slot.as_ptr().cast::<libc::c_void>(),
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }
        Ok(request_of(&self.read()))
    }

    /// Marks the slot's notification as answered.
    pub fn settle(&mut self) {
        // SAFETY: `slot` is a valid, aligned, writable `seccomp_notif` in a
        // mapping this value owns. Volatile: the store must reach the page even
        // though this process never reads it back; a later supervisor does.
        unsafe { std::ptr::addr_of_mut!((*self.slot.as_ptr()).id).write_volatile(0) };
    }

    fn clear_all(&mut self) {
        // SAFETY: as in `settle`; an all-zero `seccomp_notif` is a valid value
        // (plain integers) and what `SECCOMP_IOCTL_NOTIF_RECV` expects.
        unsafe { self.slot.as_ptr().write_volatile(std::mem::zeroed()) };
    }

    fn read(&self) -> seccomp_notif {
        // SAFETY: `slot` is a valid, aligned `seccomp_notif` of plain integers in
        // a mapping this value owns; any bit pattern is a valid value.
        unsafe { self.slot.as_ptr().read_volatile() }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by this value with LEDGER_BYTES and is
        // referred to by nothing else once it is dropped.
        if let Err(errno) = unsafe { munmap(self.slot.cast(), LEDGER_BYTES) } {
            tracing::debug!(%errno, "in-flight ledger: munmap failed");
        }
    }
}

/// The architecture a notification names, among those a sniffguard filter can
/// cover; `None` for any other.
///
/// An x32 caller is reported with the x86-64 audit architecture and the x32
/// bit set in the syscall number; libseccomp's tables list x32 calls under
/// their own architecture, so it is named that here.
fn arch_of(audit_arch: u32, nr: i32) -> Option<ScmpArch> {
    const X32_SYSCALL_BIT: i32 = 0x4000_0000;
    match audit_arch {
        libseccomp_sys::SCMP_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => Some(ScmpArch::X32),
        libseccomp_sys::SCMP_ARCH_X86_64 => Some(ScmpArch::X8664),
        libseccomp_sys::SCMP_ARCH_X86 => Some(ScmpArch::X86),
        libseccomp_sys::SCMP_ARCH_AARCH64 => Some(ScmpArch::Aarch64),
        libseccomp_sys::SCMP_ARCH_ARM => Some(ScmpArch::Arm),
        _ => None,
    }
}

/// A received notification, as the deciding code reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// Its id, which the answer names.
    pub id: u64,
    /// The calling thread, in the supervisor's pid namespace.
    pub pid: u32,
    /// The caller's architecture; `None` for one no sniffguard filter covers,
    /// which the caller refuses since it cannot tell what the call is.
    pub arch: Option<ScmpArch>,
    /// The syscall number, in `arch`'s numbering.
    pub syscall: ScmpSyscall,
    /// The syscall's register arguments.
    pub args: [u64; 6],
}

fn request_of(raw: &seccomp_notif) -> Notification {
    Notification {
        id: raw.id,
        pid: raw.pid,
        arch: arch_of(raw.data.arch, raw.data.nr),
        syscall: ScmpSyscall::from(raw.data.nr),
        args: raw.data.args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_ledger_shows_what_was_left_in_it() {
        let mut first = Ledger::create().unwrap();
        assert!(first.unanswered().is_none());
        // What a receive leaves behind, written as the kernel would.
        // SAFETY: the slot is a valid seccomp_notif in `first`'s mapping.
        unsafe {
            first.slot.as_ptr().write(seccomp_notif {
                id: 42,
                pid: 7,
                flags: 0,
                data: libseccomp_sys::seccomp_data {
                    nr: 59,
                    arch: libseccomp_sys::SCMP_ARCH_X86_64,
                    instruction_pointer: 0,
                    args: [1, 2, 3, 4, 5, 6],
                },
            })
        };
        let copy = nix::unistd::dup(first.memfd().unwrap()).unwrap();
        let second = Ledger::reopen(copy).unwrap();
        let left = second.unanswered().unwrap();
        assert_eq!((left.id, left.pid), (42, 7));
        assert_eq!(left.arch, Some(ScmpArch::X8664));
        assert_eq!(left.args, [1, 2, 3, 4, 5, 6]);
        first.settle();
        assert!(second.unanswered().is_none());
    }

    #[test]
    fn something_else_than_a_ledger_is_refused() {
        let file = tempfile::tempfile().unwrap();
        assert!(matches!(
            Ledger::reopen(file.into()),
            Err(LedgerError::WrongSize { size: 0 })
        ));
    }

    #[test]
    fn x32_callers_are_named_as_x32_and_unknown_arches_as_none() {
        assert_eq!(
            arch_of(libseccomp_sys::SCMP_ARCH_X86_64, 0x4000_0208),
            Some(ScmpArch::X32)
        );
        assert_eq!(
            arch_of(libseccomp_sys::SCMP_ARCH_X86, 11),
            Some(ScmpArch::X86)
        );
        assert_eq!(arch_of(0xdead, 59), None);
    }

    #[test]
    fn a_private_ledger_has_no_memfd() {
        let ledger = Ledger::private().unwrap();
        assert!(ledger.memfd().is_none());
        assert!(ledger.unanswered().is_none());
    }
}
