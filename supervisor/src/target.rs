//! Reading a notified process's memory: the path and argument strings of an
//! `execve` it is blocked in.
//!
//! `process_vm_readv` is used rather than `/proc/PID/mem`: each exec comes from a
//! new pid, and opening `/proc/PID/mem` costs a cold `/proc` lookup and an access
//! check every time (PLATFORM.md measured it as the most expensive step of a
//! decision). Memory is read one page at a time so that a string ending just
//! before an unmapped page is still read, and a fault means "the kernel would
//! fault too".

use std::io::IoSliceMut;

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

/// Longest path the kernel accepts for `execve` (`PATH_MAX`, NUL included).
pub const PATH_MAX: usize = 4096;

/// Longest argument string kept for alerts and loader checks.
pub const MAX_ARG_BYTES: usize = 4096;

const PAGE: usize = 4096;

/// Errors reading target memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The address is not mapped readable in the target (the kernel would
    /// answer the syscall with `EFAULT`).
    #[error("address {0:#x} is not readable in the target")]
    Fault(usize),
    /// No NUL within the limit (the kernel would answer `ENAMETOOLONG` or
    /// `E2BIG`).
    #[error("string at {0:#x} is longer than the limit")]
    TooLong(usize),
    /// The process is gone, or another error.
    #[error("cannot read target memory: {0}")]
    Os(Errno),
}

/// Reads a NUL-terminated string of at most `max` bytes (NUL excluded) at `addr`
/// in `pid`.
pub fn read_cstring(pid: Pid, addr: u64, max: usize) -> Result<Vec<u8>, TargetError> {
    let mut addr = usize::try_from(addr).map_err(|_| TargetError::Fault(usize::MAX))?;
    let start = addr;
    if addr == 0 {
        return Err(TargetError::Fault(0));
    }
    let mut out = Vec::with_capacity(256);
    let mut page = [0u8; PAGE];
    while out.len() <= max {
        let chunk = PAGE - (addr % PAGE);
        let n = read_into(pid, addr, &mut page[..chunk])?;
        if let Some(nul) = page[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&page[..nul]);
            if out.len() > max {
                break;
            }
            return Ok(out);
        }
        out.extend_from_slice(&page[..n]);
        addr = addr.checked_add(n).ok_or(TargetError::Fault(addr))?;
    }
    Err(TargetError::TooLong(start))
}

/// Reads the NUL-terminated string at `addr` (at most `max` bytes) and the
/// pointer of `width` bytes at `pointer_addr`, the first page of the one and
/// the other in a single `process_vm_readv`: an exec's path and its `argv`
/// array cost one call, not two. The pointer is `None` when it cannot be read.
pub fn read_cstring_and_pointer(
    pid: Pid,
    addr: u64,
    max: usize,
    pointer_addr: u64,
    width: usize,
) -> (Result<Vec<u8>, TargetError>, Option<u64>) {
    let separately = || {
        let pointer = read_pointers(pid, pointer_addr, 1, width)
            .ok()
            .and_then(|p| p.first().copied());
        (read_cstring(pid, addr, max), pointer)
    };
    let (Ok(start), Ok(at)) = (usize::try_from(addr), usize::try_from(pointer_addr)) else {
        return separately();
    };
    if start == 0 || at == 0 || !(width == 4 || width == 8) {
        return separately();
    }
    let chunk = PAGE - (start % PAGE);
    let mut page = [0u8; PAGE];
    let mut raw = [0u8; 8];
    let (text, pointer) = (&mut page[..chunk], &mut raw[..width]);
    let mut local = [IoSliceMut::new(text), IoSliceMut::new(pointer)];
    let remote = [
        RemoteIoVec {
            base: start,
            len: chunk,
        },
        RemoteIoVec {
            base: at,
            len: width,
        },
    ];
    // A remote range inside one page is read whole or not at all; anything
    // short of both ranges is read again the ordinary way.
    match process_vm_readv(pid, &mut local, &remote) {
        Ok(n) if n == chunk + width => {}
        _ => return separately(),
    }
    let value = if width == 4 {
        u64::from(u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
    } else {
        u64::from_ne_bytes(raw)
    };
    let pointer = (value != 0).then_some(value);
    let text = match page[..chunk].iter().position(|&b| b == 0) {
        Some(nul) if nul <= max => Ok(page[..nul].to_vec()),
        Some(_) => Err(TargetError::TooLong(start)),
        // Longer than the first page: the rest the ordinary way.
        None => read_cstring(pid, addr, max),
    };
    (text, pointer)
}

/// Reads up to `count` pointers of `width` bytes (4 or 8) from the array at
/// `addr`, stopping at the first NULL.
pub fn read_pointers(
    pid: Pid,
    addr: u64,
    count: usize,
    width: usize,
) -> Result<Vec<u64>, TargetError> {
    let addr = usize::try_from(addr).map_err(|_| TargetError::Fault(usize::MAX))?;
    if addr == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = addr
            .checked_add(i * width)
            .ok_or(TargetError::Fault(addr))?;
        let mut raw = [0u8; 8];
        let n = read_into(pid, at, &mut raw[..width])?;
        if n < width {
            return Err(TargetError::Fault(at + n));
        }
        let value = if width == 4 {
            u64::from(u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
        } else {
            u64::from_ne_bytes(raw)
        };
        if value == 0 {
            break;
        }
        out.push(value);
    }
    Ok(out)
}

/// Reads the first `count` argument strings of the `argv` array at `addr`.
/// Unreadable entries end the list early: arguments are evidence for alerts and
/// loader checks, not a reason to fail a decision.
pub fn read_argv(pid: Pid, addr: u64, count: usize, width: usize) -> Vec<Vec<u8>> {
    read_pointers(pid, addr, count, width)
        .unwrap_or_default()
        .into_iter()
        .map_while(|ptr| read_cstring(pid, ptr, MAX_ARG_BYTES).ok())
        .collect()
}

/// Reads exactly `buf.len()` bytes at `addr` in `pid` (a fixed-size request
/// structure): a short read means part of it is unmapped, which the kernel
/// answers with `EFAULT`.
pub fn read_exact(pid: Pid, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
    let at = usize::try_from(addr).map_err(|_| TargetError::Fault(usize::MAX))?;
    if at == 0 {
        return Err(TargetError::Fault(0));
    }
    match read_into(pid, at, buf)? {
        n if n == buf.len() => Ok(()),
        n => Err(TargetError::Fault(at + n)),
    }
}

fn read_into(pid: Pid, addr: usize, buf: &mut [u8]) -> Result<usize, TargetError> {
    let len = buf.len();
    let mut local = [IoSliceMut::new(buf)];
    let remote = [RemoteIoVec { base: addr, len }];
    match process_vm_readv(pid, &mut local, &remote) {
        Ok(0) | Err(Errno::EFAULT) => Err(TargetError::Fault(addr)),
        Ok(n) => Ok(n),
        Err(errno) => Err(TargetError::Os(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Pid {
        Pid::this()
    }

    #[test]
    fn reads_own_strings_and_argv() {
        let text = b"/usr/bin/tcpdump\0";
        let got = read_cstring(me(), text.as_ptr() as u64, PATH_MAX).unwrap();
        assert_eq!(got, b"/usr/bin/tcpdump");

        let a = b"tcpdump\0";
        let b = b"-D\0";
        let argv: [u64; 3] = [a.as_ptr() as u64, b.as_ptr() as u64, 0];
        let args = read_argv(me(), argv.as_ptr() as u64, 8, 8);
        assert_eq!(args, vec![b"tcpdump".to_vec(), b"-D".to_vec()]);
    }

    #[test]
    fn path_and_argv_pointer_are_read_together() {
        let text = b"/usr/bin/tcpdump\0";
        let a = b"tcpdump\0";
        let argv: [u64; 2] = [a.as_ptr() as u64, 0];
        let (path, pointer) = read_cstring_and_pointer(
            me(),
            text.as_ptr() as u64,
            PATH_MAX,
            argv.as_ptr() as u64,
            8,
        );
        assert_eq!(path.unwrap(), b"/usr/bin/tcpdump");
        assert_eq!(pointer, Some(a.as_ptr() as u64));
        // An unreadable argv leaves the path readable.
        let (path, pointer) = read_cstring_and_pointer(me(), text.as_ptr() as u64, PATH_MAX, 8, 8);
        assert_eq!(path.unwrap(), b"/usr/bin/tcpdump");
        assert_eq!(pointer, None);
        // A NULL argv[0] and a path longer than the limit.
        let empty: [u64; 1] = [0];
        let long = [vec![b'x'; 100], vec![0]].concat();
        let (path, pointer) =
            read_cstring_and_pointer(me(), long.as_ptr() as u64, 50, empty.as_ptr() as u64, 8);
        assert!(matches!(path, Err(TargetError::TooLong(_))));
        assert_eq!(pointer, None);
        // A path crossing into the next page is read whole.
        let mut buf = vec![b'a'; 3 * PAGE];
        let start = PAGE - (buf.as_ptr() as usize % PAGE) + PAGE - 5;
        buf[start + 100] = 0;
        let (path, _) = read_cstring_and_pointer(
            me(),
            buf[start..].as_ptr() as u64,
            PATH_MAX,
            argv.as_ptr() as u64,
            8,
        );
        assert_eq!(path.unwrap().len(), 100);
    }

    #[test]
    fn strings_crossing_pages_are_read() {
        let mut buf = vec![b'a'; 3 * PAGE];
        let start = PAGE - (buf.as_ptr() as usize % PAGE) + PAGE - 5;
        buf[start + 100] = 0;
        let got = read_cstring(me(), buf[start..].as_ptr() as u64, PATH_MAX).unwrap();
        assert_eq!(got.len(), 100);
    }

    #[test]
    fn bad_addresses_fault_and_long_strings_stop() {
        assert_eq!(read_cstring(me(), 0, PATH_MAX), Err(TargetError::Fault(0)));
        assert!(matches!(
            read_cstring(me(), 8, PATH_MAX),
            Err(TargetError::Fault(_))
        ));
        let long = vec![b'x'; PATH_MAX + 10];
        let mut long = long;
        long.push(0);
        assert!(matches!(
            read_cstring(me(), long.as_ptr() as u64, PATH_MAX),
            Err(TargetError::TooLong(_))
        ));
        let exact = [vec![b'y'; PATH_MAX], vec![0]].concat();
        assert_eq!(
            read_cstring(me(), exact.as_ptr() as u64, PATH_MAX)
                .unwrap()
                .len(),
            PATH_MAX
        );
    }
}
