//! The executed file as the exec probe recorded it, and what was concluded
//! about each such file.
//!
//! The exec probe reads the executed file's identity in the kernel at exec
//! time (device, inode, change time, link count: [`FileIdentity`]). User space
//! reads the event a few milliseconds later, when the process may be gone or
//! may already run another file. The identity lets it
//! - tell whether `/proc/PID/exe` is still the file this event is about, so an
//!   exec is never judged by a later image (a launcher that execs a sniffer
//!   through an fd would otherwise be reported as the sniffer, twice);
//! - judge an exec whose process is gone by what was concluded about the same
//!   file before ([`Judgements`]), which is what catches a short-lived program
//!   run through a file descriptor: its recorded path (`/dev/fd/N`) names
//!   nothing that can be opened afterwards.

use std::collections::HashMap;
use std::sync::Arc;

use nix::sys::stat::FileStat;
use sniffguard_common::abi::{ExecEvent, FileIdentity, FLAG_FILE_IDENTITY};
use sniffguard_common::policy::Policy;

use crate::classify::Evidence;

/// Judgements remembered before the table is emptied and refilled.
const CAPACITY: usize = 4096;

/// A file changed this recently may change again within one tick of a coarse
/// kernel clock without its change time moving (the same rule as the
/// classifier's file cache): what was read of it is not remembered.
const SETTLE_SECS: i64 = 2;

/// Newer kernels keep a "change time was queried" flag in bit 31 of
/// `i_ctime_nsec`; nanoseconds never reach it.
const CTIME_NSEC_MASK: u32 = 0x3fff_ffff;

/// An executed file's identity, in the encodings `stat(2)` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecIdentity {
    /// Device, as `st_dev`.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Change time, seconds.
    pub ctime_sec: i64,
    /// Change time, nanoseconds.
    pub ctime_nsec: u32,
    /// Whether the file had no name left when it was executed (deleted, or a
    /// memfd).
    pub unlinked: bool,
}

impl ExecIdentity {
    /// The identity the probe recorded in `exec`, if it recorded one.
    pub fn of(exec: &ExecEvent) -> Option<ExecIdentity> {
        if exec.header.flags & FLAG_FILE_IDENTITY == 0 {
            return None;
        }
        Some(ExecIdentity::from_kernel(&exec.file))
    }

    /// Converts the kernel's encodings: its `dev_t` is `major << 20 | minor`,
    /// `stat(2)`'s is glibc's `makedev`.
    pub fn from_kernel(file: &FileIdentity) -> ExecIdentity {
        ExecIdentity {
            dev: libc::makedev(file.dev >> 20, file.dev & 0xf_ffff),
            ino: file.ino,
            ctime_sec: file.ctime_sec,
            ctime_nsec: file.ctime_nsec & CTIME_NSEC_MASK,
            unlinked: file.nlink == 0,
        }
    }

    /// Whether `stat` is of this very file, unchanged since the exec (a file
    /// found again by its path).
    ///
    /// All of device, inode and change time must agree. A file system whose
    /// `stat` reports another device than its superblock's (btrfs
    /// subvolumes; overlayfs whose layers are on different file systems and
    /// that has no `xino`) never agrees: its execs are judged as if their
    /// process were gone (by an earlier judgement of the same file, else by
    /// the recorded path), never by a file that might be another.
    pub fn matches(&self, stat: &FileStat) -> bool {
        stat.st_dev == self.dev
            && stat.st_ino == self.ino
            && stat.st_ctime == self.ctime_sec
            && u32::try_from(stat.st_ctime_nsec).ok() == Some(self.ctime_nsec)
    }

    /// Whether `stat`, taken of a live process's running image
    /// (`/proc/PID/exe`), is of this file.
    ///
    /// Its content cannot have changed since the exec (the kernel denies
    /// write access to a file while a process runs it), but its metadata can:
    /// a chmod, a link added or removed (a binary deleted while it runs)
    /// moves its change time forward. So the device and inode must agree and
    /// the change time must not be earlier than the recorded one.
    pub fn is_running_image(&self, stat: &FileStat) -> bool {
        let nsec = u32::try_from(stat.st_ctime_nsec).unwrap_or(u32::MAX);
        stat.st_dev == self.dev
            && stat.st_ino == self.ino
            && (stat.st_ctime, nsec) >= (self.ctime_sec, self.ctime_nsec)
    }

    /// Whether the file last changed long enough ago for a judgement of its
    /// content to stand for this identity.
    fn settled(&self) -> bool {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| {
                i64::try_from(now.as_secs()).unwrap_or(i64::MAX) - self.ctime_sec >= SETTLE_SECS
            })
            .unwrap_or(false)
    }
}

/// What was concluded about one file in one container.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The evidence its content and name gave (empty: benign). Names given by
    /// an exec (its path, argv\[0\]) are not in it: they are each exec's own.
    pub evidence: Vec<Evidence>,
    /// Where it was seen, as a path inside the container, when it was found
    /// to be a sniffer.
    pub exe: Option<String>,
}

/// Judgements of executed files by identity, per container (what a file
/// links is looked up in its container), for the policy they were made
/// under. Bounded; emptied when the policy changes.
#[derive(Default)]
pub struct Judgements {
    policy: Option<Arc<Policy>>,
    entries: HashMap<(u64, ExecIdentity), Arc<Judgement>>,
}

impl Judgements {
    /// Drops every judgement made under another policy than `policy`.
    fn follow(&mut self, policy: &Arc<Policy>) {
        if !self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
            self.entries.clear();
            self.policy = Some(Arc::clone(policy));
        }
    }

    /// The judgement of `identity` in the container `cgroup`, if there is one.
    pub fn get(
        &mut self,
        policy: &Arc<Policy>,
        cgroup: u64,
        identity: &ExecIdentity,
    ) -> Option<Arc<Judgement>> {
        self.follow(policy);
        self.entries.get(&(cgroup, *identity)).cloned()
    }

    /// Remembers the judgement of `identity`, unless the file changed too
    /// recently for it to stand.
    pub fn insert(
        &mut self,
        policy: &Arc<Policy>,
        cgroup: u64,
        identity: ExecIdentity,
        judgement: Judgement,
    ) {
        if !identity.settled() {
            return;
        }
        self.follow(policy);
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        self.entries.insert((cgroup, identity), Arc::new(judgement));
    }
}

/// Whether an exec's recorded path names a file descriptor rather than a
/// file: `execveat(fd, "", AT_EMPTY_PATH)` and `fexecve` record `/dev/fd/N`,
/// an exec of `/proc/self/fd/N` records that. Such a path reaches nothing once
/// the process is gone.
pub fn names_a_descriptor(filename: &[u8]) -> bool {
    filename.starts_with(b"/dev/fd/")
        || (filename.starts_with(b"/proc/") && filename.windows(4).any(|w| w == b"/fd/"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn stat(path: &str) -> FileStat {
        nix::sys::stat::stat(path).unwrap()
    }

    /// The identity the kernel would record for `path`.
    fn kernel_identity(path: &str) -> FileIdentity {
        let meta = std::fs::metadata(path).unwrap();
        let dev = meta.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        FileIdentity {
            ino: meta.ino(),
            ctime_sec: meta.ctime(),
            // With the kernel's "queried" flag set.
            ctime_nsec: meta.ctime_nsec() as u32 | 0x8000_0000,
            dev: (major << 20) | minor,
            nlink: 1,
            _pad: 0,
        }
    }

    #[test]
    fn the_kernel_encoding_matches_stat() {
        let id = ExecIdentity::from_kernel(&kernel_identity("/bin/ls"));
        assert!(id.matches(&stat("/bin/ls")));
        assert!(!id.matches(&stat("/bin/sh")) || stat("/bin/sh").st_ino == stat("/bin/ls").st_ino);
        let mut other = id;
        other.ctime_nsec ^= 1;
        assert!(!other.matches(&stat("/bin/ls")));
        // A running image whose metadata changed since (later change time)
        // is still the file; one changed "before" the exec is not.
        let mut earlier = id;
        earlier.ctime_sec -= 1;
        assert!(earlier.is_running_image(&stat("/bin/ls")));
        let mut later = id;
        later.ctime_sec += 1;
        assert!(!later.is_running_image(&stat("/bin/ls")));
        let mut elsewhere = id;
        elsewhere.ino ^= 1;
        assert!(!elsewhere.is_running_image(&stat("/bin/ls")));
    }

    #[test]
    fn judgements_follow_the_policy_and_settle() {
        let policy = Arc::new(Policy::builtin().unwrap());
        let mut judgements = Judgements::default();
        let old = ExecIdentity::from_kernel(&kernel_identity("/bin/ls"));
        let judged = || Judgement {
            evidence: Vec::new(),
            exe: None,
        };
        judgements.insert(&policy, 1, old, judged());
        assert!(judgements.get(&policy, 1, &old).is_some());
        assert!(judgements.get(&policy, 2, &old).is_none());
        // A new policy forgets what the old one concluded.
        let reloaded = Arc::new(Policy::builtin().unwrap());
        assert!(judgements.get(&reloaded, 1, &old).is_none());
        // A file changed just now is not remembered.
        let mut fresh = old;
        fresh.ctime_sec = i64::MAX / 2;
        judgements.insert(&reloaded, 1, fresh, judged());
        assert!(judgements.get(&reloaded, 1, &fresh).is_none());
    }

    #[test]
    fn descriptor_paths() {
        for path in [&b"/dev/fd/3"[..], b"/proc/self/fd/7", b"/proc/42/fd/0"] {
            assert!(names_a_descriptor(path), "{path:?}");
        }
        for path in [
            &b"/usr/bin/tcpdump"[..],
            b"/proc/self/exe",
            b"fd/3",
            b"/dev/fdx",
        ] {
            assert!(!names_a_descriptor(path), "{path:?}");
        }
    }
}
