//! Helpers shared by the sections: the monotonic clock `sgbench` reads, CPU time,
//! context switches and memory of a process.

use std::fs;
use std::thread;
use std::time::Duration;

/// `CLOCK_MONOTONIC` in ns: the clock `sgbench chain` reads inside containers.
pub(crate) fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `ns`.
pub(crate) fn sleep_until_ns(ns: i64) {
    let left = ns - monotonic_ns();
    if left > 0 {
        thread::sleep(Duration::from_nanos(left as u64));
    }
}

/// A supervisor's CPU time (`utime + stime` of `/proc/PID/stat`) in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime + stime) / ticks
}

/// Context switches on the whole host since boot (`ctxt` of `/proc/stat`).
pub(crate) fn context_switches() -> u64 {
    fs::read_to_string("/proc/stat")
        .expect("read /proc/stat")
        .lines()
        .find_map(|line| line.strip_prefix("ctxt "))
        .and_then(|n| n.trim().parse().ok())
        .expect("/proc/stat has a ctxt line")
}

/// `VmRSS`, `RssAnon` and `VmHWM` of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) anon: u64,
    pub(crate) hwm: u64,
}

pub(crate) fn memory(pid: u32) -> Memory {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        hwm: field("VmHWM:"),
    }
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
