//! Acting on a process from user space.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

/// Kills process `tgid` with `SIGKILL` through a pidfd. The pidfd pins the
/// process between lookup and signal, so the signal cannot reach a process that
/// reused the pid after the lookup.
pub fn kill_process(tgid: u32) -> Result<(), Errno> {
    let pid = libc::pid_t::try_from(tgid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no
    // memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let raw = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this new fd to us; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: pidfd is open for the duration of the call; a null siginfo is
    // allowed and means "as kill(2) would send it".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill_process(child.id()).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(kill_process(u32::MAX / 2).is_err());
    }
}
