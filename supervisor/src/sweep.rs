//! Ending every holder of a capture socket in a container.
//!
//! A capture socket here is one that reads others' traffic: packet, raw IP,
//! and netfilter netlink (NFLOG groups, NFQUEUE queues).
//!
//! Killing the process that created a packet or raw socket does not close the
//! socket: a process sharing its file table (`clone(CLONE_FILES)`), a child
//! forked after the socket was made, or a process it was passed to
//! (`SCM_RIGHTS`) holds it and keeps reading. So where a capture must end —
//! the enforce backstop, the end of a break-glass grant — every process of the
//! container that holds one is ended.
//!
//! The sockets are found the way `ss` finds them: the kernel lists the packet
//! and raw sockets of a network namespace in `/proc/PID/net/{packet,raw,raw6}`
//! with their inodes, and a process's `/proc/PID/fd` links name the inodes it
//! holds (`socket:[N]`). The container's processes are those of its cgroup v2
//! (and the cgroups below it, which a process may have moved into).

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::respond::kill_process;

/// Bytes read from one `/proc/PID/net/*` table: a line per socket of the
/// namespace, ~150 bytes each.
const MAX_TABLE_BYTES: u64 = 4 * 1024 * 1024;

/// Processes looked at in one sweep (a fork bomb must not hold the sweep).
const MAX_PROCESSES: usize = 65_536;

/// Cgroup directories walked below the container's own.
const MAX_CGROUPS: usize = 4096;

/// The inodes of the capture sockets (packet, raw IPv4, raw IPv6, netfilter
/// netlink) of the network namespace `pid` lives in.
pub fn capture_socket_inodes(pid: u32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    // /proc/net/packet: "sk RefCnt Type Proto Iface R Rmem User Inode".
    // /proc/net/raw{,6}: the tenth column of the socket table is the inode.
    // /proc/net/netlink: "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode",
    // netfilter's family (Eth 12) only: NFLOG groups and NFQUEUE queues are
    // read through it.
    for (table, column, family) in [
        ("packet", 8, None),
        ("raw", 9, None),
        ("raw6", 9, None),
        ("netlink", 9, Some("12")),
    ] {
        let path = format!("/proc/{pid}/net/{table}");
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        let mut text = String::new();
        if file
            .take(MAX_TABLE_BYTES)
            .read_to_string(&mut text)
            .is_err()
        {
            continue;
        }
        inodes.extend(text.lines().skip(1).filter_map(|line| {
            let mut fields = line.split_whitespace();
            if let Some(family) = family {
                if fields.clone().nth(1) != Some(family) {
                    return None;
                }
            }
            fields
                .nth(column)
                .and_then(|inode| inode.parse::<u64>().ok())
                .filter(|inode| *inode != 0)
        }));
    }
    inodes
}

/// The processes of the cgroup v2 of `init` and of every cgroup below it.
fn container_processes(init: u32) -> Vec<u32> {
    let (Some(root), Some(path)) = (
        sniffguard_common::cgroups::cgroup2_root(),
        sniffguard_common::cgroups::cgroup2_path(init),
    ) else {
        return vec![init];
    };
    let top = root.join(path.trim_start_matches('/'));
    // The host's own cgroup is never swept.
    if top == root {
        return vec![init];
    }
    let mut pids = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![top];
    let mut seen = 0;
    while let Some(dir) = dirs.pop() {
        seen += 1;
        if seen > MAX_CGROUPS {
            break;
        }
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            dirs.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        if pids.len() > MAX_PROCESSES {
            break;
        }
    }
    pids.truncate(MAX_PROCESSES);
    pids
}

/// Whether process `pid` holds one of `inodes`.
fn holds(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(entries) = fs::read_dir(Path::new(&format!("/proc/{pid}/fd"))) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        fs::read_link(entry.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

/// The processes of the container of `init` that hold a capture socket.
pub fn capture_holders(init: u32) -> Vec<u32> {
    let inodes = capture_socket_inodes(init);
    if inodes.is_empty() {
        return Vec::new();
    }
    container_processes(init)
        .into_iter()
        .filter(|pid| holds(*pid, &inodes))
        .collect()
}

/// Kills every process of the container of `init` that holds a capture
/// socket; returns those it killed.
pub fn end_capture_holders(init: u32) -> Vec<u32> {
    capture_holders(init)
        .into_iter()
        .filter(|pid| match kill_process(*pid) {
            Ok(()) => true,
            Err(errno) => {
                tracing::debug!(pid, %errno, "capture holder already gone");
                false
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd, OwnedFd};

    use super::*;

    #[test]
    fn a_packet_socket_is_found_and_its_holder_named() {
        let me = std::process::id();
        // SAFETY: socket(2) takes three integers and returns a new fd or -1.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            eprintln!("SKIPPED: no packet socket here (not root?)");
            return;
        }
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let inodes = capture_socket_inodes(me);
        assert!(holds(me, &inodes), "{inodes:?}");
        drop(socket);
        assert!(!holds(me, &capture_socket_inodes(me)));
        assert!(!container_processes(me).is_empty());
    }
}
