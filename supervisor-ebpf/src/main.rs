//! sniffguard's eBPF programs.
//!
//! Every program first asks whether the current task belongs to a monitored
//! container (the cgroup v2 id in `SG_MONITORED`, filled by the supervisor on
//! registration); nothing is reported for the host or unregistered containers.
//!
//! - `sys_enter_execve` / `sys_enter_execveat`: copy a bounded command line into
//!   `SG_PENDING_ARGV`, keyed by thread id, so that even a process that exits at
//!   once has its arguments in the exec event;
//! - `sched_process_exec`: report what the kernel really executed; in an enforce
//!   container, kill at once a process whose name the catalogue lists;
//! - `sys_enter_socket`, `sys_enter_setsockopt`, `sys_enter_ioctl`: report capture
//!   sockets, promiscuous mode and filters attached to sockets.
//!
//! Tracepoints are used because this kernel refuses trampoline programs and
//! offers no CO-RE from Rust: their formats are stable ABI (PLATFORM.md).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod netlink;
#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("sniffguard-ebpf holds eBPF programs; it is built for bpfel-unknown-none by the supervisor's build script");
}
