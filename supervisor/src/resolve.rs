//! Finding the file an exec names, the way the target process would, from the
//! host.
//!
//! The path is resolved inside the process's own root (`/proc/TID/root`) with
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks stay inside the
//! container as they do for the kernel. Relative paths are taken relative to the
//! calling thread's working directory (or to `execveat`'s directory fd), turned
//! into a path inside the root. `AT_EMPTY_PATH` executes the fd itself.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat2, readlink, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode};

/// `AT_FDCWD` as `execveat` receives it.
pub const AT_FDCWD: i32 = libc::AT_FDCWD;

/// Errors resolving an exec's file.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The process or one of its fds is gone.
    #[error("cannot open {what} of thread {tid}: {errno}")]
    Proc {
        /// Which `/proc` entry.
        what: &'static str,
        /// The thread.
        tid: u32,
        /// Why.
        errno: Errno,
    },
    /// The path does not resolve to a file the supervisor can open.
    #[error("cannot open {path:?} inside the container: {errno}")]
    Open {
        /// The path as passed.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// The path resolves to something other than a regular file, which the
    /// kernel does not execute either (`EACCES`).
    #[error("{path:?} is not a regular file")]
    NotRegular {
        /// The path as passed.
        path: String,
    },
}

impl ResolveError {
    /// The errno the kernel's own exec answers for the same failure, where it
    /// fails the same way (a path too long to resolve): a refusal then changes
    /// nothing a program can see.
    pub fn kernel_errno(&self) -> Option<i32> {
        match self {
            ResolveError::Open {
                errno: errno @ Errno::ENAMETOOLONG,
                ..
            } => Some(*errno as i32),
            _ => None,
        }
    }

    /// Whether the kernel's exec of the same path fails too, so that nothing
    /// can run: no such file, a component that is not a directory, or not a
    /// regular file. Every other failure leaves the answer unknown.
    pub fn nothing_runs(&self) -> bool {
        matches!(
            self,
            ResolveError::Open {
                errno: Errno::ENOENT | Errno::ENOTDIR,
                ..
            } | ResolveError::NotRegular { .. }
        )
    }
}

/// How the exec named its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Relative to the working directory (`execve`, or `execveat(AT_FDCWD, …)`).
    Cwd,
    /// Relative to a directory fd of the target (`execveat(fd, …)`).
    DirFd(i32),
    /// The fd itself (`execveat(fd, "", AT_EMPTY_PATH)`, `fexecve`).
    EmptyPath(i32),
}

/// A resolved executable: located, not necessarily opened for reading.
///
/// Deciding an exec usually needs only the file's identity (device, inode,
/// size, times: the classifier's cache key) and its name; its content is read
/// only when the classifier has not seen that identity before. Opening it for
/// reading costs a `/proc` lookup, so it is put off until then.
#[derive(Debug)]
pub struct Resolved {
    /// How to reach the file again.
    handle: Handle,
    /// Its status, taken from the fd (the classifier's cache key).
    pub stat: FileStat,
    /// The file's own name: the last component of the path after every
    /// symlink was followed.
    name: Vec<u8>,
}

/// How a [`Resolved`] file is reached again.
#[derive(Debug)]
enum Handle {
    /// An fd of the located file: `O_PATH`, or open for reading (a running
    /// image held by [`Resolved::pinned`]).
    Located(OwnedFd),
    /// The running image of a live process, not opened (`/proc/PID/exe`),
    /// and the path the kernel gives for it.
    Running { tgid: u32, path: PathBuf },
}

impl Resolved {
    /// The file process `tgid` runs now, through `/proc/PID/exe` (which also
    /// reaches deleted and memfd files).
    ///
    /// Located by `stat` and named by `readlink`, not opened: an open costs a
    /// file of the kernel's own and its release, for every exec event, while
    /// the classifier reads the content only of an identity it has not seen.
    /// [`Resolved::open`] opens it then, and checks it is still the same file.
    pub fn running(tgid: u32) -> Result<Resolved, Errno> {
        let mut buf = [0u8; 32];
        let link = proc_entry(&mut buf, tgid, "exe")?;
        let proc = proc_dir();
        let path = PathBuf::from(readlinkat(proc, link)?);
        let stat = nix::sys::stat::fstatat(proc, link, nix::fcntl::AtFlags::empty())?;
        if !is_regular(&stat) {
            return Err(Errno::EACCES);
        }
        Ok(Resolved {
            name: basename_of(&path),
            handle: Handle::Running { tgid, path },
            stat,
        })
    }

    /// The file's name after symlinks were followed.
    pub fn basename(&self) -> &[u8] {
        &self.name
    }

    /// The file, open for reading: the very inode that was located, reopened
    /// through the supervisor's own `/proc/self/fd` link, so nothing swapped
    /// in at the path meanwhile (a device node) is ever opened.
    ///
    /// The running image of a process is opened through its `/proc/PID/exe`
    /// link, and refused (`ESTALE`) unless it is still the file that was
    /// located: the process may have executed another one since.
    pub fn open(&self) -> Result<File, Errno> {
        match &self.handle {
            Handle::Located(fd) => {
                let link = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                open(&link, read_flags(), Mode::empty()).map(File::from)
            }
            Handle::Running { tgid, .. } => {
                let link = proc_path(*tgid, "exe");
                let file = File::from(open(&link, read_flags(), Mode::empty())?);
                let now = fstat(&file)?;
                if (now.st_dev, now.st_ino) != (self.stat.st_dev, self.stat.st_ino) {
                    return Err(Errno::ESTALE);
                }
                Ok(file)
            }
        }
    }

    /// The same file, held open from now on: a running image is opened while
    /// its process still runs it, so that the process's exit before the file
    /// is read cannot leave it unreadable (a file run through a descriptor
    /// has no path to reach it by). Fails as [`Resolved::open`] does: the
    /// process gone, or running another file by now.
    pub fn pinned(self) -> Result<Resolved, Errno> {
        if matches!(self.handle, Handle::Located(_)) {
            return Ok(self);
        }
        let file = self.open()?;
        Ok(Resolved {
            handle: Handle::Located(OwnedFd::from(file)),
            stat: self.stat,
            name: self.name,
        })
    }

    /// Its path as the supervisor sees it (the `/proc/self/fd` link), for
    /// alerts and forensic records. Not needed to decide, so not read to decide.
    pub fn host_path(&self) -> PathBuf {
        match &self.handle {
            Handle::Located(fd) => fd_link(fd),
            Handle::Running { path, .. } => path.clone(),
        }
    }
}

/// `/proc`, opened once: the per-event lookups of `PID/exe` then start there
/// instead of walking `/` and `proc` each time. `AT_FDCWD` (relative to the
/// supervisor's working directory, `/` for the daemon) if it cannot be opened,
/// with [`proc_entry`] then naming the absolute path.
fn proc_dir() -> std::os::fd::BorrowedFd<'static> {
    static PROC: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    match PROC.get_or_init(|| {
        open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }) {
        Some(fd) => fd.as_fd(),
        None => AT_FDCWD_FD,
    }
}

/// `AT_FDCWD` as a borrowed fd, for the `*at` calls of [`proc_dir`].
// SAFETY: AT_FDCWD is not an fd that can be closed; the `*at` system calls
// take it to mean the working directory.
const AT_FDCWD_FD: std::os::fd::BorrowedFd<'static> =
    unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) };

/// `PID/ENTRY` relative to [`proc_dir`] (absolute when `/proc` could not be
/// kept open), written into `buf`: no allocation per event.
fn proc_entry<'b>(buf: &'b mut [u8; 32], pid: u32, entry: &str) -> Result<&'b [u8], Errno> {
    use std::io::Write;
    let prefix = if proc_dir().as_raw_fd() == libc::AT_FDCWD {
        "/proc/"
    } else {
        ""
    };
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{prefix}{pid}/{entry}").map_err(|_| Errno::ENAMETOOLONG)?;
    let len = usize::try_from(cursor.position()).map_err(|_| Errno::ENAMETOOLONG)?;
    Ok(&buf[..len])
}

/// Where `/proc/self/fd/N` of an open file points.
fn fd_link(file: &impl AsFd) -> PathBuf {
    readlink(&PathBuf::from(format!(
        "/proc/self/fd/{}",
        file.as_fd().as_raw_fd()
    )))
    .map(PathBuf::from)
    .unwrap_or_default()
}

fn basename_of(path: &Path) -> Vec<u8> {
    path.file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default()
}

/// How every executable is first located: `O_PATH` (no open side effects).
/// Only a regular file is then opened for reading: opening a device node as
/// root on the host's side of the device cgroup (a watchdog, a tape that
/// rewinds) is something the container itself could not do. The kernel only
/// executes regular files, so nothing else needs to be read.
fn locate_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_CLOEXEC
}

/// How a located regular file is opened for reading: never block on a FIFO
/// swapped in meanwhile, never become a controlling terminal.
fn read_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY
}

/// A located (`O_PATH`) file as a [`Resolved`] if it is a regular file: the
/// kernel executes nothing else, so nothing else is classified. `name` is the
/// file's own name when the caller knows it; otherwise it is read back from
/// the supervisor's `/proc/self/fd` link.
fn regular(
    located: OwnedFd,
    stat: FileStat,
    name: Option<Vec<u8>>,
    path: &[u8],
) -> Result<Resolved, ResolveError> {
    if !is_regular(&stat) {
        return Err(ResolveError::NotRegular {
            path: String::from_utf8_lossy(path).into_owned(),
        });
    }
    let name = name.unwrap_or_else(|| basename_of(&fd_link(&located)));
    Ok(Resolved {
        handle: Handle::Located(located),
        stat,
        name,
    })
}

/// [`regular`] for a file reached through a `/proc` link, whose name only the
/// link knows.
fn located_by_link(located: OwnedFd, path: &[u8]) -> Result<Resolved, ResolveError> {
    let stat = fstat(&located).map_err(|errno| open_error(path, errno))?;
    regular(located, stat, None, path)
}

fn is_regular(stat: &FileStat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn open_error(path: &[u8], errno: Errno) -> ResolveError {
    ResolveError::Open {
        path: String::from_utf8_lossy(path).into_owned(),
        errno,
    }
}

fn proc_path(tid: u32, entry: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{tid}/{entry}"))
}

/// The thread's root directory, to resolve inside.
pub fn open_root(tid: u32) -> Result<OwnedFd, ResolveError> {
    open(
        &proc_path(tid, "root"),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| ResolveError::Proc {
        what: "root",
        tid,
        errno,
    })
}

/// Opens `path` inside `root` the way the kernel would for the thread.
pub fn resolve(
    root: &OwnedFd,
    tid: u32,
    base: Base,
    path: &[u8],
) -> Result<Resolved, ResolveError> {
    // The target's own fd through /proc (`/proc/self/fd/N`, `/dev/fd/N`):
    // magic links that RESOLVE_NO_MAGICLINKS refuses inside the root, resolved
    // here through the target's /proc entry instead.
    if let Some(entry) = own_proc_link(path) {
        let link = proc_path(tid, &entry);
        let located =
            open(&link, locate_flags(), Mode::empty()).map_err(|errno| open_error(path, errno))?;
        return located_by_link(located, path);
    }
    match base {
        Base::EmptyPath(fd) if path.is_empty() => {
            let link = proc_path(tid, &format!("fd/{fd}"));
            let located =
                open(&link, locate_flags(), Mode::empty()).map_err(|errno| ResolveError::Proc {
                    what: "exec fd",
                    tid,
                    errno,
                })?;
            located_by_link(located, path)
        }
        _ if path.first() == Some(&b'/') => open_in_root_as(root, Some(tid), path),
        // AT_EMPTY_PATH only matters for an empty path; otherwise the path is
        // relative to the dirfd like any execveat.
        Base::Cwd | Base::EmptyPath(AT_FDCWD) | Base::DirFd(AT_FDCWD) => {
            open_relative(root, tid, "cwd", path)
        }
        Base::DirFd(fd) | Base::EmptyPath(fd) => {
            open_relative(root, tid, &format!("fd/{fd}"), path)
        }
    }
}

/// Opens the regular file at absolute `path` inside the directory `root` (as
/// the container's `/`).
///
/// The last component is located without following it first: when it is not
/// a symlink (the usual case) the name to judge is the path's own last
/// component, and no readlink is needed to learn it.
pub fn open_in_root(root: &OwnedFd, path: &[u8]) -> Result<Resolved, ResolveError> {
    open_in_root_as(root, None, path)
}

/// [`open_in_root`] for thread `tid` (when known): a path, or a symlink the
/// path ends in, that names a magic link of `/proc` — the thread's own
/// `/proc/self/fd/N`, or `/proc/PID/fd/N` of any process the container's
/// `/proc` shows — is followed as the kernel follows it for the thread,
/// instead of being refused by `RESOLVE_NO_MAGICLINKS`.
fn open_in_root_as(
    root: &OwnedFd,
    tid: Option<u32>,
    path: &[u8],
) -> Result<Resolved, ResolveError> {
    let err = |errno| open_error(path, errno);
    let locate = |at: &[u8], flags: OFlag| {
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(
            root.as_fd(),
            Path::new(std::ffi::OsStr::from_bytes(at)),
            how,
        )
    };
    // Symlinks the path ends in (a busybox applet, an alternatives link) are
    // read and followed here, so that the final name is known without asking
    // /proc for it. A target joined to its link's directory as written
    // resolves as the kernel resolves it: both walk `..` physically.
    let mut current = path.to_vec();
    for _ in 0..MAX_LINKS_BY_HAND {
        if let Some(resolved) = follow_proc_link(root, tid, &current, path)? {
            return Ok(resolved);
        }
        let located = locate(&current, locate_flags() | OFlag::O_NOFOLLOW).map_err(err)?;
        let stat = fstat(&located).map_err(err)?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let name = current
                .rsplit(|&b| b == b'/')
                .next()
                .unwrap_or(&current)
                .to_vec();
            return regular(located, stat, Some(name), path);
        }
        let Ok(target) = readlinkat(&located, "") else {
            break;
        };
        let target = target.into_vec();
        current = match (target.first(), current.iter().rposition(|&b| b == b'/')) {
            (Some(b'/'), _) | (_, None) => target,
            (_, Some(slash)) => [&current[..=slash], &target[..]].concat(),
        };
        if current.is_empty() || current.len() >= crate::target::PATH_MAX {
            break;
        }
    }
    // A longer chain: the kernel follows it, and /proc tells the name.
    let located = locate(path, locate_flags()).map_err(err)?;
    let stat = fstat(&located).map_err(err)?;
    regular(located, stat, None, path)
}

/// Follows `current` when it names a magic link of `/proc` the way the kernel
/// would for thread `tid`: its own entries (`/proc/self/fd/N`, `/dev/fd/N`,
/// `/proc/self/exe`) through the host's `/proc/TID/`, and a process's entry
/// (`/proc/PID/fd/N`, `/proc/PID/exe`, with `task/TID/` too) through the
/// `/proc` inside the root — only if it is a real procfs (a directory of
/// symlinks mounted there would be followed from the host's `/` otherwise),
/// and only where the magic link is the path's last component (what follows a
/// magic link would be walked outside the root). `Ok(None)`: not such a path.
fn follow_proc_link(
    root: &OwnedFd,
    tid: Option<u32>,
    current: &[u8],
    path: &[u8],
) -> Result<Option<Resolved>, ResolveError> {
    let err = |errno| open_error(path, errno);
    if let (Some(tid), Some(entry)) = (tid, own_proc_link(current)) {
        let located = open(&proc_path(tid, &entry), locate_flags(), Mode::empty()).map_err(err)?;
        return located_by_link(located, path).map(Some);
    }
    let Some(entry) = process_proc_link(current) else {
        return Ok(None);
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let proc = openat2(root.as_fd(), "/proc", how).map_err(err)?;
    let fs = nix::sys::statfs::fstatfs(&proc).map_err(err)?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(err(Errno::ELOOP));
    }
    let located = nix::fcntl::openat(&proc, entry, locate_flags(), Mode::empty()).map_err(err)?;
    located_by_link(located, path).map(Some)
}

/// The part after `/proc/` of a path naming a process's magic link to a file:
/// `PID/fd/N`, `PID/exe`, `PID/task/TID/fd/N`, `PID/task/TID/exe`, with
/// numeric ids.
fn process_proc_link(path: &[u8]) -> Option<&str> {
    let rest = std::str::from_utf8(path.strip_prefix(b"/proc/")?).ok()?;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = rest.split('/').collect();
    let valid = match parts.as_slice() {
        [pid, "exe"] => number(pid),
        [pid, "fd", fd] => number(pid) && number(fd),
        [pid, "task", tid, "exe"] => number(pid) && number(tid),
        [pid, "task", tid, "fd", fd] => number(pid) && number(tid) && number(fd),
        _ => false,
    };
    valid.then_some(rest)
}

/// Symlinks at the end of a path followed by hand before the kernel is left
/// to follow the rest (the kernel itself allows 40).
const MAX_LINKS_BY_HAND: usize = 8;

/// The caller's own `/proc` entry a path names through a magic link: `fd/N`
/// for `/proc/self/fd/N`, `/proc/thread-self/fd/N`, `/dev/fd/N`; `exe` for
/// `/proc/self/exe` and `/proc/thread-self/exe` (busybox re-executes itself
/// that way for every applet it runs in a new process).
fn own_proc_link(path: &[u8]) -> Option<String> {
    if path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" {
        return Some("exe".to_owned());
    }
    own_fd_path(path).map(|fd| format!("fd/{fd}"))
}

/// The fd number of a path naming the caller's own fd: `/proc/self/fd/N`,
/// `/proc/thread-self/fd/N`, `/dev/fd/N`.
fn own_fd_path(path: &[u8]) -> Option<u32> {
    let rest = [
        &b"/proc/self/fd/"[..],
        b"/proc/thread-self/fd/",
        b"/dev/fd/",
    ]
    .iter()
    .find_map(|prefix| path.strip_prefix(*prefix))?;
    let digits = std::str::from_utf8(rest).ok()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Resolves a relative path against a directory of the thread (`cwd` or a
/// directory fd). The directory's path inside the container is its `/proc` link
/// with the root's own link stripped; both are rendered relative to the same
/// mount namespace, so the prefix matches whenever the directory is inside the
/// root.
fn open_relative(
    root: &OwnedFd,
    tid: u32,
    entry: &str,
    path: &[u8],
) -> Result<Resolved, ResolveError> {
    let proc_err = |errno| ResolveError::Proc {
        what: "working directory",
        tid,
        errno,
    };
    // readlink fails for a directory deeper than PATH_MAX: then resolve from
    // the directory itself, below.
    let dir = readlink(&proc_path(tid, entry)).ok();
    let root_link = readlink(&proc_path(tid, "root")).map_err(proc_err)?;
    if let Some(inside) = dir.as_ref().and_then(|dir| strip_root(dir, &root_link)) {
        let mut joined = inside.into_vec();
        if joined.last() != Some(&b'/') {
            joined.push(b'/');
        }
        joined.extend_from_slice(path);
        return open_in_root_as(root, Some(tid), &joined);
    }
    // The directory is not under the root (moved out, or deleted): resolve from
    // the directory itself, confined to it.
    let dir_fd = open(
        &proc_path(tid, entry),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(proc_err)?;
    open_in_root_as(&dir_fd, Some(tid), path)
}

/// The part of `dir` below `root`, both as `/proc` renders them.
pub(crate) fn strip_root(dir: &OsString, root: &OsString) -> Option<OsString> {
    let dir = dir.as_bytes();
    let root = root.as_bytes();
    if dir.ends_with(b" (deleted)") {
        return None;
    }
    if root == b"/" {
        return dir
            .starts_with(b"/")
            .then(|| OsString::from_vec(dir.to_vec()));
    }
    let rest = dir.strip_prefix(root)?;
    match rest.first() {
        None => Some(OsString::from("/")),
        Some(b'/') => Some(OsString::from_vec(rest.to_vec())),
        Some(_) => None,
    }
}

/// Opens a directory to resolve in (a container's root filesystem on the host).
pub fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn a_running_image_is_named_and_opened_as_the_same_file() {
        let me = Resolved::running(std::process::id()).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(me.basename(), exe.file_name().unwrap().as_bytes());
        assert_eq!(me.host_path(), exe);
        let opened = fstat(me.open().unwrap()).unwrap();
        assert_eq!(
            (opened.st_dev, opened.st_ino),
            (me.stat.st_dev, me.stat.st_ino)
        );
        let mut buf = [0u8; 32];
        assert_eq!(
            proc_entry(&mut buf, 4_294_967_295, "exe").unwrap(),
            b"4294967295/exe"
        );
    }

    #[test]
    fn own_fd_paths_are_recognised() {
        assert_eq!(own_fd_path(b"/proc/self/fd/3"), Some(3));
        assert_eq!(own_fd_path(b"/dev/fd/10"), Some(10));
        assert_eq!(own_fd_path(b"/proc/thread-self/fd/7"), Some(7));
        assert_eq!(own_fd_path(b"/proc/self/fd/3/x"), None);
        assert_eq!(own_fd_path(b"/proc/self/fd/"), None);
        assert_eq!(own_fd_path(b"/usr/bin/tcpdump"), None);
        assert_eq!(own_proc_link(b"/proc/self/exe").as_deref(), Some("exe"));
        assert_eq!(
            own_proc_link(b"/proc/thread-self/exe").as_deref(),
            Some("exe")
        );
        assert_eq!(own_proc_link(b"/dev/fd/4").as_deref(), Some("fd/4"));
        assert_eq!(own_proc_link(b"/proc/self/exe/x"), None);
    }

    #[test]
    fn process_magic_links_are_recognised() {
        assert_eq!(process_proc_link(b"/proc/12/fd/3"), Some("12/fd/3"));
        assert_eq!(process_proc_link(b"/proc/1/exe"), Some("1/exe"));
        assert_eq!(
            process_proc_link(b"/proc/7/task/9/fd/4"),
            Some("7/task/9/fd/4")
        );
        assert_eq!(process_proc_link(b"/proc/1/root/usr/bin/x"), None);
        assert_eq!(process_proc_link(b"/proc/self/fd/3"), None);
        assert_eq!(process_proc_link(b"/proc/1/fd/x"), None);
        assert_eq!(process_proc_link(b"/proc/1/fd/3/.."), None);
    }

    #[test]
    fn a_symlink_to_a_magic_link_is_followed_like_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tcpdump");
        std::fs::write(&target, b"\x7fELF").unwrap();
        let file = File::open(&target).unwrap();
        let tid = std::process::id();
        let link = dir.path().join("via-self");
        std::os::unix::fs::symlink(format!("/proc/self/fd/{}", file.as_raw_fd()), &link).unwrap();
        let root = open_root(tid).unwrap();
        let resolved = resolve(&root, tid, Base::Cwd, link.as_os_str().as_bytes()).unwrap();
        assert_eq!(resolved.basename(), b"tcpdump");
        // Another process's fd, named by its pid in the /proc of the root.
        let by_pid = format!("/proc/{tid}/fd/{}", file.as_raw_fd());
        let resolved = resolve(&root, tid, Base::Cwd, by_pid.as_bytes()).unwrap();
        assert_eq!(resolved.basename(), b"tcpdump");
        // Unknown answers are told apart from "nothing runs".
        let dir_exec = resolve(&root, tid, Base::Cwd, dir.path().as_os_str().as_bytes());
        assert!(dir_exec.unwrap_err().nothing_runs());
        let missing = resolve(&root, tid, Base::Cwd, b"/definitely/not/here").unwrap_err();
        assert!(missing.nothing_runs());
    }

    #[test]
    fn root_prefix_is_stripped_on_component_boundaries() {
        assert_eq!(strip_root(&os("/tmp"), &os("/")), Some(os("/tmp")));
        assert_eq!(
            strip_root(&os("/c/rootfs/tmp"), &os("/c/rootfs")),
            Some(os("/tmp"))
        );
        assert_eq!(
            strip_root(&os("/c/rootfs"), &os("/c/rootfs")),
            Some(os("/"))
        );
        assert_eq!(strip_root(&os("/c/rootfs2/tmp"), &os("/c/rootfs")), None);
        assert_eq!(strip_root(&os("/x (deleted)"), &os("/")), None);
    }

    #[test]
    fn resolves_like_the_kernel_for_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tcpdump");
        std::fs::write(&target, b"\x7fELF").unwrap();
        let link = dir.path().join("innocent");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let tid = std::process::id();
        let root = open_root(tid).unwrap();
        let resolved = resolve(&root, tid, Base::Cwd, link.as_os_str().as_bytes()).unwrap();
        assert_eq!(resolved.basename(), b"tcpdump");
        // A chain of relative and absolute links, through `..`, ends at the
        // file's own name, as /proc reports it.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("../innocent", dir.path().join("sub/hop")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("sub/hop"), dir.path().join("start")).unwrap();
        let chained = dir.path().join("start");
        let resolved = resolve(&root, tid, Base::Cwd, chained.as_os_str().as_bytes()).unwrap();
        assert_eq!(resolved.basename(), b"tcpdump");
        assert_eq!(resolved.host_path(), target);
        // A loop longer than the hand-followed chain is left to the kernel,
        // which refuses it.
        std::os::unix::fs::symlink(dir.path().join("loop"), dir.path().join("loop")).unwrap();
        let looped = dir.path().join("loop");
        assert!(resolve(&root, tid, Base::Cwd, looped.as_os_str().as_bytes()).is_err());
        let missing = resolve(&root, tid, Base::Cwd, b"/definitely/not/here");
        assert!(matches!(missing, Err(ResolveError::Open { .. })));
    }
}
