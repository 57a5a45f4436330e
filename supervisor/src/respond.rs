//! Acting on a sniffer: killing the process, freezing its container, writing
//! the forensic record, then raising the alert that says what was done.
//!
//! Everything here runs after the seccomp answer has been given (or after the
//! eBPF event arrived): none of it is on the decision's hot path.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use serde::Serialize;

use crate::alert::Incident;
use crate::procfs::Ancestor;
use crate::verdict::Verdict;
use crate::Shared;

/// Bytes read from any one `/proc` file for a forensic record.
const MAX_PROC_BYTES: u64 = 256 * 1024;

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

/// Waits, at most `bound`, for process `tgid` to be gone (exited, a zombie
/// or reaped); returns whether it is. A process killed while in a system call
/// dies when the call returns: once it is gone, whatever the call did is done.
pub fn wait_for_exit(tgid: u32, bound: std::time::Duration) -> bool {
    let Ok(pid) = libc::pid_t::try_from(tgid) else {
        return true;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no
    // memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(raw) = i32::try_from(fd) else {
        return true;
    };
    if raw < 0 {
        // No such process any more.
        return Errno::last() == Errno::ESRCH;
    }
    // SAFETY: the kernel just returned this new fd to us; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = nix::poll::PollTimeout::try_from(bound).unwrap_or(nix::poll::PollTimeout::MAX);
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&pidfd),
        nix::poll::PollFlags::POLLIN,
    )];
    loop {
        match nix::poll::poll(&mut fds, timeout) {
            // A pidfd is readable once its thread group has exited.
            Ok(ready) => return ready > 0,
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Which freezer a container was frozen with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frozen {
    /// cgroup v1 `freezer.state` in this directory.
    V1(PathBuf),
    /// cgroup v2 `cgroup.freeze` in this directory.
    V2(PathBuf),
}

/// Freezes the container that process `pid` belongs to: its cgroup v1 freezer
/// when it has one of its own, else its cgroup v2 `cgroup.freeze`. A process in
/// a root cgroup is not frozen: that would freeze the host.
pub fn freeze_container(pid: u32) -> Result<Frozen, String> {
    let table = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("cannot read /proc/{pid}/cgroup: {e}"))?;
    let v1 = table.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "freezer")
            .then(|| path.to_string())
    });
    if let Some(path) = v1.filter(|p| p != "/" && !p.contains("..")) {
        let dir = Path::new("/sys/fs/cgroup/freezer").join(path.trim_start_matches('/'));
        if dir.join("freezer.state").exists() {
            fs::write(dir.join("freezer.state"), "FROZEN")
                .map_err(|e| format!("cannot freeze {}: {e}", dir.display()))?;
            return Ok(Frozen::V1(dir));
        }
    }
    let v2 = table
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|p| *p != "/" && !p.contains(".."))
        .ok_or_else(|| format!("process {pid} has no freezer cgroup of its own"))?;
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|r| Path::new(r).join("cgroup.controllers").exists())
        .ok_or("no cgroup v2 hierarchy")?;
    let dir = Path::new(root).join(v2.trim_start_matches('/'));
    fs::write(dir.join("cgroup.freeze"), "1")
        .map_err(|e| format!("cannot freeze {}: {e}", dir.display()))?;
    Ok(Frozen::V2(dir))
}

/// Whether an environment variable's name suggests a secret.
fn secret_looking(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
        "PRIVATE",
        "CERT",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// `KEY=VALUE` entries with secret-looking values replaced.
pub fn redact_environment(raw: &[u8]) -> BTreeMap<String, String> {
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (key, value) = entry.split_once('=')?;
            let value = if secret_looking(key) {
                "[REDACTED]".to_string()
            } else {
                value.to_string()
            };
            Some((key.to_string(), value))
        })
        .collect()
}

fn read_bounded(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_PROC_BYTES)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// One step of an incident's time line.
#[derive(Debug, Clone, Serialize)]
struct Step {
    time: String,
    what: String,
}

fn step(what: impl Into<String>) -> Step {
    Step {
        time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        what: what.into(),
    }
}

/// The forensic record of one incident.
#[derive(Debug, Serialize)]
struct Record<'a> {
    rule: &'static str,
    container: &'a str,
    environment: &'a str,
    action: crate::verdict::Action,
    evidence: &'a [crate::classify::Evidence],
    process: &'a crate::procfs::ProcessInfo,
    binary: Binary<'a>,
    environment_variables: BTreeMap<String, String>,
    sockets: BTreeMap<&'static str, String>,
    mounts: String,
    ancestry: &'a [Ancestor],
    timeline: &'a [Step],
}

#[derive(Debug, Serialize)]
struct Binary<'a> {
    path: Option<&'a str>,
    sha256: Option<&'a str>,
}

/// Writes the forensic record of `incident` for process `pid` into `dir`
/// (created 0700), returning the file's path.
/// What `/proc` shows of an incident's process, read the moment the
/// container is frozen (before anything slow, such as hashing the binary).
struct Snapshot {
    environment: BTreeMap<String, String>,
    sockets: BTreeMap<&'static str, String>,
    mounts: String,
}

/// Reads the snapshot from the first of `pids` whose /proc entries can still be
/// read: the caller if it is still there, else the container's init.
fn snapshot(pids: &[u32]) -> Snapshot {
    let read_any = |file: &str| {
        // An exited (zombie) process reads as empty: go on to the next.
        pids.iter()
            .filter_map(|pid| read_bounded(&format!("/proc/{pid}/{file}")))
            .find(|bytes| !bytes.is_empty())
    };
    let mut sockets = BTreeMap::new();
    for table in [
        "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "packet", "unix",
    ] {
        if let Some(bytes) = read_any(&format!("net/{table}")) {
            sockets.insert(table, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    // The environment is the container's (its init's, as the bundle set it):
    // a refused exec's caller may still be a runtime helper (`runc init` of a
    // `runc exec`) whose own environment is the runtime's, not the workload's.
    let environment = pids
        .iter()
        .rev()
        .filter_map(|pid| read_bounded(&format!("/proc/{pid}/environ")))
        .find(|bytes| !bytes.is_empty());
    Snapshot {
        environment: environment
            .map(|raw| redact_environment(&raw))
            .unwrap_or_default(),
        sockets,
        mounts: read_any("mountinfo")
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    }
}

fn write_forensics(
    dir: &Path,
    incident: &Incident,
    pid: u32,
    snapshot: Snapshot,
    timeline: &[Step],
) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let record = Record {
        rule: sniffguard_common::RULE_NAME,
        container: &incident.container_id,
        environment: &incident.environment,
        action: incident.action,
        evidence: &incident.evidence,
        process: &incident.process,
        binary: Binary {
            path: incident.process.exe.as_deref(),
            sha256: incident.process.sha256.as_deref(),
        },
        environment_variables: snapshot.environment,
        sockets: snapshot.sockets,
        mounts: snapshot.mounts,
        ancestry: &incident.process.ancestry,
        timeline,
    };
    let stamp = humantime::format_rfc3339_micros(incident.time)
        .to_string()
        .replace([':', '.'], "-");
    let path = dir.join(format!("{stamp}-{}-{pid}.json", incident.container_id));
    let json = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Carries out the verdict's responses on process `pid` (kill, freeze,
/// forensics, in the order that keeps the most evidence), then raises the
/// alert. Blocking: run it off the decision path.
pub fn carry_out(shared: &Shared, verdict: &Verdict, pid: u32, mut incident: Incident) {
    let mut timeline = vec![step(format!(
        "{:?} decided by {:?}",
        incident.action, incident.mechanism
    ))];
    // The caller may be gone already (a refused entrypoint exits at once): the
    // container's init still stands for the container.
    let init = incident.container.as_ref().and_then(|c| c.pid);
    let alive = |p: u32| std::path::Path::new(&format!("/proc/{p}")).exists();
    let witnesses: Vec<u32> = std::iter::once(pid).chain(init).collect();
    if verdict.freeze {
        match freeze_container(init.filter(|p| alive(*p)).unwrap_or(pid)) {
            Ok(frozen) => {
                incident.responses.push("freeze".into());
                timeline.push(step(format!("container frozen ({frozen:?})")));
            }
            Err(err) => {
                tracing::error!(container = incident.container_id, err, "freeze failed");
                timeline.push(step(format!("freeze failed: {err}")));
            }
        }
    }
    let forensics_config = shared.policy.load().forensics.clone();
    let admitted = verdict.forensics.then(|| {
        shared
            .forensics_budget
            .admit(&incident.container_id, &forensics_config)
    });
    if let Some(Err(why)) = &admitted {
        incident.responses.push(format!("forensics skipped: {why}"));
    }
    if matches!(admitted, Some(Ok(()))) {
        let snapshot = snapshot(&witnesses);
        if let Some(file) = incident.file.as_ref() {
            incident.process.sha256 = crate::classify::sha256_hex(file);
        }
        let dir = forensics_config.dir.clone();
        match write_forensics(&dir, &incident, pid, snapshot, &timeline) {
            Ok(path) => {
                shared
                    .forensics_budget
                    .wrote(fs::metadata(&path).map_or(0, |m| m.len()));
                incident.responses.push("forensics".into());
                incident.forensics = Some(path.display().to_string());
            }
            Err(err) => tracing::error!(
                container = incident.container_id,
                err,
                "forensic record failed"
            ),
        }
    }
    if verdict.kill {
        match kill_process(pid) {
            Ok(()) => incident.responses.push("kill".into()),
            Err(errno) => {
                tracing::warn!(container = incident.container_id, pid, %errno, "kill failed")
            }
        }
    }
    shared.alerts.raise(incident);
}

/// Raises the alert for `incident`, carrying out the verdict's heavier
/// responses on a blocking thread when there are any.
pub fn follow_up(shared: &std::sync::Arc<Shared>, verdict: Verdict, pid: u32, incident: Incident) {
    if verdict.kill || verdict.freeze || verdict.forensics {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || carry_out(&shared, &verdict, pid, incident));
    } else {
        shared.alerts.raise(incident);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let env = redact_environment(
            b"PATH=/bin\0DB_PASSWORD=hunter2\0API_TOKEN=abc\0HOME=/root\0junk\0",
        );
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["DB_PASSWORD"], "[REDACTED]");
        assert_eq!(env["API_TOKEN"], "[REDACTED]");
        assert_eq!(env.len(), 4);
    }

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
