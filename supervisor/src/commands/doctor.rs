//! `sniffguard doctor`: what this host supports, one line per capability.

use std::fmt;
use std::path::Path;
use std::process::Command;

use sniffguard_common::policy::{Mode, Policy};

use crate::probe::{self, Probes};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Present.
    Ok,
    /// Missing but not needed by the policy, or informational.
    Note,
    /// Missing and needed by the policy.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// The verdict.
    pub level: Level,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok     ",
            Level::Note => "note   ",
            Level::Missing => "MISSING",
        };
        write!(f, "{tag} {:<24} {}", self.name, self.detail)
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn version_of(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().next().map(str::to_string)
}

/// Runs every check. `load_probes` really loads and attaches the eBPF programs
/// (and detaches them again), the only trustworthy test of the verifier.
pub fn run(policy: &Policy, load_probes: bool) -> Vec<Check> {
    let needs_ebpf = policy.environments.values().any(|e| e.mode == Mode::Audit);
    let needs_notify = policy
        .environments
        .values()
        .any(|e| e.mode == Mode::Enforce);
    let need = |needed: bool| if needed { Level::Missing } else { Level::Note };
    let mut checks = Vec::new();

    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    checks.push(Check {
        name: "kernel",
        level: Level::Ok,
        detail: kernel,
    });

    let actions = read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    let notify = actions.split_whitespace().any(|a| a == "user_notif");
    checks.push(Check {
        name: "seccomp user notify",
        level: if notify {
            Level::Ok
        } else {
            need(needs_notify)
        },
        detail: if notify {
            "SECCOMP_RET_USER_NOTIF available (enforce mode)".into()
        } else {
            format!("not in actions_avail ({actions})")
        },
    });

    let tracefs = Path::new(probe::TRACEFS).join("events").exists();
    checks.push(Check {
        name: "tracefs",
        level: if tracefs { Level::Ok } else { Level::Note },
        detail: if tracefs {
            format!("mounted at {}", probe::TRACEFS)
        } else {
            format!(
                "not mounted at {}; `sniffguard run` mounts it",
                probe::TRACEFS
            )
        },
    });

    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    checks.push(Check {
        name: "kernel BTF",
        level: if btf { Level::Ok } else { Level::Note },
        detail: if btf {
            "/sys/kernel/btf/vmlinux present".into()
        } else {
            "absent (not required: the probes use stable tracepoint formats)".into()
        },
    });

    if load_probes {
        let (level, detail) = match Probes::load() {
            Ok(_) => (
                Level::Ok,
                "exec, socket, setsockopt and ioctl tracepoints load, attach, ring buffer works"
                    .to_string(),
            ),
            Err(err) => (need(needs_ebpf), err.to_string()),
        };
        checks.push(Check {
            name: "eBPF probes",
            level,
            detail,
        });
    }

    let lsm = read("/sys/kernel/security/lsm").unwrap_or_default();
    checks.push(Check {
        name: "BPF LSM / trampolines",
        level: Level::Note,
        detail: format!(
            "not used (active LSMs: {}); sniffguard relies on tracepoints and seccomp",
            if lsm.is_empty() { "unknown" } else { &lsm }
        ),
    });

    let hybrid = Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists();
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    checks.push(Check {
        name: "cgroups",
        level: if hybrid || pure_v2 {
            Level::Ok
        } else {
            need(needs_ebpf)
        },
        detail: if pure_v2 {
            "cgroup v2".into()
        } else if hybrid {
            "hybrid (v1 controllers, v2 at /sys/fs/cgroup/unified); crun needs scripts/crun-hybrid"
                .into()
        } else {
            "no cgroup v2 hierarchy: the eBPF container filter cannot work".into()
        },
    });

    for runtime in ["runc", "crun", "podman", "containerd"] {
        let found = version_of(runtime);
        checks.push(Check {
            name: match runtime {
                "runc" => "runtime runc",
                "crun" => "runtime crun",
                "podman" => "runtime podman",
                _ => "runtime containerd",
            },
            level: if found.is_some() {
                Level::Ok
            } else {
                Level::Note
            },
            detail: found.unwrap_or_else(|| "not found on PATH".into()),
        });
    }
    checks
}
