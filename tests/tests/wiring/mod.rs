//! Shared by the container-engine tests (`podman.rs`, `containerd.rs`,
//! `base_profiles.rs`): the shipped `config/sniffguard-runc` wrapper pointed at a test
//! supervisor, a daemon guard that stops what it started by PID, the clean-up of mounts
//! an engine leaves under a test directory, and a private instance of each engine
//! ([`podman`], [`containerd`], [`docker`]).
//!
//! Engines call a runtime with an environment of their own (Podman drops the caller's
//! entirely), so these tests reach the shim the way an installation does: through the
//! wrapper and its `runtime.env` file. The only change made to the shipped wrapper is the
//! default location of that file.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use sniffguard_tests::{
    hook_bin, is_alert_for, repo_root, run_command, runtime_shim_bin, temp_dir, CmdOutput, Runtime,
    ShimTarget, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};
use tempfile::TempDir;

pub mod containerd;
pub mod docker;
pub mod podman;

/// The line of `config/sniffguard-runc` that names its settings file.
const WRAPPER_ENV_FILE_LINE: &str = "env_file=${SNIFFGUARD_ENV_FILE:-/etc/sniffguard/runtime.env}";

/// Bound for a daemon to exit after SIGTERM before it gets SIGKILL.
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling interval of the bounded waits here.
const POLL: Duration = Duration::from_millis(20);

/// A shipped file, by its path in the repository.
pub fn shipped(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces `from` with `to` in `text`, which must contain `from` exactly once.
pub fn replace_once(text: &str, from: &str, to: &str, what: &str) -> String {
    let count = text.matches(from).count();
    assert_eq!(
        count, 1,
        "{what}: expected {from:?} once, found it {count} times"
    );
    text.replacen(from, to, 1)
}

/// `config/sniffguard-runc` installed in a temporary directory, with its settings file
/// beside it sending the shim to `target`'s supervisor and a real runtime.
pub struct ShimWrapper {
    dir: TempDir,
}

impl ShimWrapper {
    /// Installs the wrapper and writes its `runtime.env` for `target`, handing over to
    /// runc.
    pub fn new(target: &dyn ShimTarget) -> ShimWrapper {
        ShimWrapper::with_runtime(target, Runtime::Runc)
    }

    /// [`ShimWrapper::new`], handing over to `runtime` (`SNIFFGUARD_REAL_RUNTIME`).
    pub fn with_runtime(target: &dyn ShimTarget, runtime: Runtime) -> ShimWrapper {
        let dir = temp_dir("sniffguard-wrapper-");
        let env_file = dir.path().join("runtime.env");
        let script = replace_once(
            &shipped("config/sniffguard-runc"),
            WRAPPER_ENV_FILE_LINE,
            &format!("env_file=${{SNIFFGUARD_ENV_FILE:-{}}}", env_file.display()),
            "config/sniffguard-runc",
        );
        let wrapper = dir.path().join("sniffguard-runc");
        fs::write(&wrapper, script).expect("write the wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");

        let mut settings = format!(
            "# written by the sniffguard tests\nSNIFFGUARD_SHIM={}\nSNIFFGUARD_REAL_RUNTIME={}\n\
             SNIFFGUARD_RUNTIME_DIR={}\nSNIFFGUARD_HOOK={}\n",
            runtime_shim_bin().display(),
            runtime.path().display(),
            target.runtime_dir().display(),
            hook_bin().display(),
        );
        if let Some(policy) = target.policy_path() {
            settings.push_str(&format!("SNIFFGUARD_CONFIG={}\n", policy.display()));
        }
        fs::write(&env_file, settings).expect("write runtime.env");
        ShimWrapper { dir }
    }

    /// The wrapper's path: what an engine is given as its runtime binary.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("sniffguard-runc")
    }
}

/// A daemon this test started. On drop: SIGTERM to exactly its PID (it is our unreaped
/// child, so the PID cannot have been reused), a bounded wait, then SIGKILL.
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log`.
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Daemon {
        let out = fs::File::create(log).expect("create the daemon log");
        let err = out.try_clone().expect("clone the log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Daemon {
            name,
            child,
            log: log.to_path_buf(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls `ready` (bounded by `timeout`); panics with the log when it never holds or
    /// the daemon exits first.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + DAEMON_STOP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                eprintln!(
                    "sniffguard-tests: {} (pid {pid}) ignored SIGTERM for {DAEMON_STOP_TIMEOUT:?}; SIGKILL",
                    self.name
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            thread::sleep(POLL);
        }
        if thread::panicking() {
            eprintln!("sniffguard-tests: {} log:\n{}", self.name, self.log());
        }
    }
}

/// Lazily unmounts every mount point under `dir` (deepest first), so that the directory
/// can be removed after an engine left mounts behind (a failed test, a killed daemon).
pub fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        if let Some(code) = code {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first alert about container `id` that matches `pred`, waiting at most
/// [`ALERT_TIMEOUT`]; panics with the supervisor's output, naming `what` was awaited.
pub fn wait_alert(sup: &Supervisor, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    sup.wait_alert(|a| is_alert_for(a, id) && pred(a), ALERT_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "no {what} alert for container {id} within {ALERT_TIMEOUT:?}\n{}",
                sup.report()
            )
        })
}

/// Runs `cmd` bounded by [`COMMAND_TIMEOUT`] (see [`run_command`]).
pub fn run(cmd: &mut Command) -> CmdOutput {
    run_command(cmd, COMMAND_TIMEOUT)
}

/// The processes whose command line contains `needle` as one argument, other than this
/// process: used to find engine helpers (containerd shims) that outlive their daemon and
/// were started for this test's private socket, which no other process names.
pub fn processes_with_argument(needle: &str) -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| u32::try_from(*pid).ok() != Some(me))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| raw.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes the cgroup `name` (a top-level cgroup, relative to each hierarchy's root) and
/// everything below it, deepest first, in every hierarchy under `/sys/fs/cgroup` (and in
/// `/sys/fs/cgroup` itself on a pure v2 host). Only empty cgroups can be removed: one
/// still in use refuses, and stays. Engines (containerd's namespaces, dockerd's
/// `--cgroup-parent`) create such parents and leave them behind.
pub fn remove_empty_cgroups(name: &str) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(
        hierarchies
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir()),
    );
    for root in roots {
        let top = root.join(name);
        if !top.is_dir() {
            continue;
        }
        let mut dirs = vec![top.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = fs::read_dir(&dirs[i]) {
                dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            i += 1;
        }
        for dir in dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}
