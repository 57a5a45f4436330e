//! What `/proc` says about a process of a container: who it is, where it runs,
//! what it runs, as the alerts show it. The decision paths read it while the
//! caller still waits (a refused process may exit the moment it is answered);
//! the alerts only render what was read here.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use serde::Serialize;

use crate::resolve::strip_root;

/// Ancestors listed in an alert.
const MAX_ANCESTRY: usize = 12;

/// Arguments kept of a command line read from `/proc`.
pub const MAX_ARGS: usize = 64;

/// A process as seen from `/proc`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessInfo {
    /// Process id (thread group) on the host.
    pub pid: Option<u32>,
    /// The thread that made the call.
    pub tid: u32,
    /// Parent process id.
    pub ppid: Option<u32>,
    /// Real user id.
    pub uid: Option<u32>,
    /// The file it tried to run (path inside the container), or its own
    /// executable for a socket call.
    pub exe: Option<String>,
    /// Its arguments.
    pub argv: Vec<String>,
    /// Its `comm` as the kernel saw it at the call (the probes record it), so
    /// that an alert names the program even when it is gone before `/proc`
    /// is read (`ip`, `tc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Working directory inside the container.
    pub cwd: Option<String>,
    /// SHA-256 of `exe`.
    pub sha256: Option<String>,
    /// Parent, grandparent, … as (pid, command).
    pub ancestry: Vec<Ancestor>,
}

/// One ancestor process.
#[derive(Debug, Clone, Serialize)]
pub struct Ancestor {
    /// Host pid.
    pub pid: u32,
    /// Command name (`comm`).
    pub comm: String,
}

/// Fills in what `/proc` says about thread `tid`: pid, parent, uid, working
/// directory, ancestry. Best effort: a process that is already gone leaves
/// these empty.
pub fn describe_process(tid: u32, info: &mut ProcessInfo) {
    info.tid = tid;
    if let Some(status) = read_status(tid) {
        info.pid = status.get("Tgid").and_then(|v| v.parse().ok());
        info.ppid = status.get("PPid").and_then(|v| v.parse().ok());
        info.uid = status
            .get("Uid")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
    }
    let root = std::fs::read_link(format!("/proc/{tid}/root")).ok();
    if let (Ok(cwd), Some(root)) = (std::fs::read_link(format!("/proc/{tid}/cwd")), &root) {
        let cwd = OsString::from(cwd);
        info.cwd =
            strip_root(&cwd, &OsString::from(root)).map(|p| p.to_string_lossy().into_owned());
    }
    let mut next = info.ppid;
    while let Some(pid) = next.filter(|p| *p > 0) {
        if info.ancestry.len() >= MAX_ANCESTRY {
            break;
        }
        let Some(status) = read_status(pid) else {
            break;
        };
        info.ancestry.push(Ancestor {
            pid,
            comm: status.get("Name").cloned().unwrap_or_default(),
        });
        next = status.get("PPid").and_then(|v| v.parse().ok());
    }
}

/// The path of a resolved file inside the process's root.
pub fn path_in_container(tid: u32, host_path: &Path) -> String {
    let root = std::fs::read_link(format!("/proc/{tid}/root")).unwrap_or_else(|_| "/".into());
    strip_root(&host_path.as_os_str().to_owned(), &root.into_os_string())
        .unwrap_or_else(|| host_path.as_os_str().to_owned())
        .to_string_lossy()
        .into_owned()
}

/// The fields of `/proc/PID/status`, or `None` when the process is gone.
pub(crate) fn read_status(pid: u32) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// The executable `pid` runs now, as a path inside its container.
pub fn running_exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|exe| path_in_container(pid, &exe))
}

/// The command line of `pid`, at most [`MAX_ARGS`] arguments; empty when it
/// cannot be read (a kernel thread, a process already gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .take(MAX_ARGS)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}
