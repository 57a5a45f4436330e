//! A real `sniffguard run` in its own runtime directory, its alert stream, and the
//! ways tests talk to it, stop it and start it again.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::command::{join_bounded, run_command, wait_bounded};
use crate::locations::sniffguard_bin;
use crate::temp::temp_dir;
use crate::{
    COMMAND_TIMEOUT, POLL, READER_GRACE, SUPERVISOR_START_TIMEOUT, SUPERVISOR_STOP_TIMEOUT,
};

/// Where the shim sends a container: a runtime directory (sockets) and maybe a policy file.
pub trait ShimTarget {
    /// The runtime directory given to the shim as `SNIFFGUARD_RUNTIME_DIR`.
    fn runtime_dir(&self) -> &Path;
    /// The policy file given to the shim as `SNIFFGUARD_CONFIG`, if not the built-in one.
    fn policy_path(&self) -> Option<&Path>;
}

/// A runtime directory and policy file as a [`ShimTarget`] that any thread can
/// own (a [`Supervisor`] stays with the test's main thread).
#[derive(Debug, Clone)]
pub struct DirTarget {
    runtime_dir: PathBuf,
    policy: Option<PathBuf>,
}

impl DirTarget {
    /// The runtime directory and policy of `target`.
    pub fn of(target: &dyn ShimTarget) -> DirTarget {
        DirTarget {
            runtime_dir: target.runtime_dir().to_path_buf(),
            policy: target.policy_path().map(Path::to_path_buf),
        }
    }

    /// A runtime directory with the built-in policy, or with `policy`.
    pub fn new(runtime_dir: PathBuf, policy: Option<PathBuf>) -> DirTarget {
        DirTarget {
            runtime_dir,
            policy,
        }
    }
}

impl ShimTarget for DirTarget {
    fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    fn policy_path(&self) -> Option<&Path> {
        self.policy.as_deref()
    }
}

/// Writes `policy` (TOML text) to `dir/policy.toml`.
fn write_policy(dir: &Path, policy: Option<&str>) -> Option<PathBuf> {
    policy.map(|text| {
        let path = dir.join("policy.toml");
        fs::write(&path, text).expect("write policy.toml");
        path
    })
}

/// Collects a supervisor's stdout: each line is kept raw, and each line that parses as
/// JSON is forwarded on a channel. [`AlertStream::wait`] scans from the first alert on.
pub struct AlertStream {
    rx: Mutex<AlertState>,
    raw: Arc<Mutex<Vec<String>>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

struct AlertState {
    rx: Receiver<Value>,
    seen: Vec<Value>,
}

impl AlertStream {
    /// Starts a thread that reads `source` line by line until EOF.
    pub fn spawn(source: impl Read + Send + 'static) -> AlertStream {
        let (tx, rx) = mpsc::channel();
        let raw = Arc::new(Mutex::new(Vec::new()));
        let raw_lines = Arc::clone(&raw);
        let reader = thread::spawn(move || {
            let mut source = std::io::BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match std::io::BufRead::read_until(&mut source, b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    // The receiver may be gone during drop; nothing to do then.
                    let _ = tx.send(value);
                }
                raw_lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(text);
            }
        });
        AlertStream {
            rx: Mutex::new(AlertState {
                rx,
                seen: Vec::new(),
            }),
            raw,
            reader: Mutex::new(Some(reader)),
        }
    }

    /// The first value (from the start of the stream) matching `pred`, waiting at most
    /// `timeout` for it. `None` when none arrived in time.
    pub fn wait(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut state = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut scanned = 0;
        loop {
            if let Some(found) = state.seen[scanned..].iter().find(|v| pred(v)) {
                return Some(found.clone());
            }
            scanned = state.seen.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match state.rx.recv_timeout(left) {
                Ok(value) => state.seen.push(value),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    // Disconnected: stdout closed; drain nothing more. Timeout: give up.
                    return None;
                }
            }
        }
    }

    /// Every value received so far (does not wait).
    pub fn so_far(&self) -> Vec<Value> {
        let mut state = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        while let Ok(value) = state.rx.try_recv() {
            state.seen.push(value);
        }
        state.seen.clone()
    }

    /// Every value received once the stream has been quiet for `quiet` (bounded by `max`).
    /// Use it to check that something did *not* happen after what did (e.g. "exactly one
    /// alert"): it is a bounded observation window, not a guess that work has finished.
    pub fn settled(&self, quiet: Duration, max: Duration) -> Vec<Value> {
        let deadline = Instant::now() + max;
        let mut state = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match state.rx.recv_timeout(quiet.min(left)) {
                Ok(value) => state.seen.push(value),
                Err(_) => break,
            }
        }
        state.seen.clone()
    }

    /// Every stdout line so far, JSON or not.
    pub fn raw_lines(&self) -> Vec<String> {
        self.raw.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits at most `grace` for the reader thread to see EOF.
    fn finish(&self, grace: Duration) {
        let handle = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            join_bounded(vec![handle], grace);
        }
    }
}

/// A running `sniffguard run` in its own runtime directory (`/tmp/sniffguard-test-XXXXXX`,
/// mode 0700). Stopped with SIGTERM (then SIGKILL) by PID on drop; the directory is removed.
pub struct Supervisor {
    child: Child,
    alerts: AlertStream,
    stderr_path: PathBuf,
    policy: Option<PathBuf>,
    dir: TempDir,
}

impl Supervisor {
    /// Starts the supervisor with the built-in policy (`None`) or with `policy` (TOML text,
    /// written to `DIR/policy.toml` and passed as `--config`), and waits (bounded) until
    /// both `DIR/api.sock` and `DIR/seccomp.sock` accept connections.
    ///
    /// # Panics
    /// When the binary is missing, exits early, or does not open its sockets in time (its
    /// stderr is printed).
    pub fn start(policy: Option<&str>) -> Supervisor {
        Supervisor::start_via(policy, &[], &[])
    }

    /// [`Supervisor::start`], run through `prefix` (a program and its arguments
    /// that end by exec'ing the supervisor's command line, which follows them)
    /// and with `env` added to its environment: for a supervisor in a private
    /// mount namespace, or with systemd's `NOTIFY_SOCKET`.
    ///
    /// # Panics
    /// As [`Supervisor::start`].
    pub fn start_via(
        policy: Option<&str>,
        prefix: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Supervisor {
        let bin = sniffguard_bin();
        let dir = temp_dir("sniffguard-test-");
        let policy = write_policy(dir.path(), policy);
        let stderr_path = dir.path().join("supervisor.stderr");
        let stderr = fs::File::create(&stderr_path).expect("create supervisor.stderr");

        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        cmd.envs(env.iter().copied());
        cmd.arg("run").arg("--runtime-dir").arg(dir.path());
        if let Some(path) = &policy {
            cmd.arg("--config").arg(path);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let alerts = AlertStream::spawn(child.stdout.take().expect("piped stdout"));
        let mut supervisor = Supervisor {
            child,
            alerts,
            stderr_path,
            policy,
            dir,
        };
        supervisor.wait_ready(SUPERVISOR_START_TIMEOUT);
        supervisor
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let api = self.dir.path().join("api.sock");
        let seccomp = self.dir.path().join("seccomp.sock");
        let deadline = Instant::now() + timeout;
        let why = loop {
            if UnixStream::connect(&api).is_ok() && UnixStream::connect(&seccomp).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("waitpid on the supervisor") {
                break format!("exited ({status})");
            }
            if Instant::now() >= deadline {
                break "timed out".to_owned();
            }
            thread::sleep(POLL);
        };
        panic!(
            "supervisor (pid {}) {why} before {} and {} accepted connections (bound {timeout:?})\n{}",
            self.child.id(),
            api.display(),
            seccomp.display(),
            self.report(),
        );
    }

    /// The supervisor's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first JSON line (alert) matching `pred`, waiting at most `timeout`.
    pub fn wait_alert(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.alerts.wait(pred, timeout)
    }

    /// The first alert about container `id` whose process ran `exe` (its path
    /// inside the container), waiting at most [`ALERT_TIMEOUT`](crate::ALERT_TIMEOUT);
    /// panics with `what` and the supervisor's report when none comes.
    pub fn wait_alert_for_exe(&self, id: &str, exe: &str, what: &str) -> Value {
        self.wait_alert(
            |a| crate::is_alert_for(a, id) && crate::str_at(a, "/process/exe") == Some(exe),
            crate::ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("{what}: no alert for {exe} in {id}\n{}", self.report()))
    }

    /// The first alert about container `id` whose evidence includes `kind`,
    /// waiting at most [`ALERT_TIMEOUT`](crate::ALERT_TIMEOUT); panics with the
    /// supervisor's report when none comes.
    pub fn wait_alert_with_evidence(&self, id: &str, kind: &str) -> Value {
        self.wait_alert(
            |a| crate::is_alert_for(a, id) && crate::evidence_kinds(a).iter().any(|k| k == kind),
            crate::ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("no alert with {kind} evidence for {id}\n{}", self.report()))
    }

    /// Every JSON line received so far.
    pub fn alerts_so_far(&self) -> Vec<Value> {
        self.alerts.so_far()
    }

    /// Every JSON line, once stdout has been quiet for `quiet` (bounded by `max`).
    pub fn alerts_settled(&self, quiet: Duration, max: Duration) -> Vec<Value> {
        self.alerts.settled(quiet, max)
    }

    /// Every stdout line so far, JSON or not.
    pub fn raw_lines(&self) -> Vec<String> {
        self.alerts.raw_lines()
    }

    /// Everything the supervisor wrote to stderr so far.
    pub fn stderr_log(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.stderr_path.display()))
    }

    /// A report of the supervisor's output, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "--- supervisor stdout ---\n{}\n--- supervisor stderr ---\n{}\n-------------------------",
            self.raw_lines().join("\n"),
            self.stderr_log()
        )
    }
}

impl ShimTarget for Supervisor {
    fn runtime_dir(&self) -> &Path {
        self.dir.path()
    }

    fn policy_path(&self) -> Option<&Path> {
        self.policy.as_deref()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        // Signal only a child that is not reaped yet: until we wait for it, its PID cannot
        // be reused, so the signal reaches exactly our supervisor.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            if wait_bounded(&mut self.child, SUPERVISOR_STOP_TIMEOUT).is_none() {
                eprintln!(
                    "sniffguard-tests: supervisor pid {pid} ignored SIGTERM for \
                     {SUPERVISOR_STOP_TIMEOUT:?}; SIGKILL"
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        self.alerts.finish(READER_GRACE);
        if thread::panicking() {
            eprintln!(
                "sniffguard-tests: supervisor (pid {pid}, dir {}) output:\n{}",
                self.dir.path().display(),
                self.report()
            );
        }
        // `dir` (TempDir) removes the runtime directory after this.
    }
}

/// A runtime directory with no supervisor behind it (no sockets): for fail-open and
/// fail-closed tests.
pub struct NoSupervisor {
    policy: Option<PathBuf>,
    dir: TempDir,
}

impl NoSupervisor {
    /// An empty runtime directory, with `policy` (TOML text) as `DIR/policy.toml` if given.
    pub fn new(policy: Option<&str>) -> NoSupervisor {
        let dir = temp_dir("sniffguard-test-");
        let policy = write_policy(dir.path(), policy);
        NoSupervisor { policy, dir }
    }
}

impl ShimTarget for NoSupervisor {
    fn runtime_dir(&self) -> &Path {
        self.dir.path()
    }

    fn policy_path(&self) -> Option<&Path> {
        self.policy.as_deref()
    }
}

/// Talking to a running supervisor the way operators and hooks do.
impl Supervisor {
    /// `sniffguard status --json` against this supervisor, parsed.
    ///
    /// # Panics
    /// When the command fails or prints something that is not JSON.
    pub fn status(&self) -> Value {
        let out = run_command(
            Command::new(sniffguard_bin())
                .arg("status")
                .arg("--json")
                .arg("--runtime-dir")
                .arg(self.runtime_dir()),
            COMMAND_TIMEOUT,
        );
        assert!(out.success(), "sniffguard status failed: {out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {out}"))
    }

    /// Container `id`'s entry in [`Supervisor::status`] (`Null` when it is not
    /// listed), and the whole report, for messages.
    pub fn container_status(&self, id: &str) -> (Value, Value) {
        let status = self.status();
        let record = status["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_default();
        (record, status)
    }

    /// A counter from [`Supervisor::status`] (0 when absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.status()
            .pointer(&format!("/counters/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Sends one raw request line to the API socket and returns the answer line.
    ///
    /// # Panics
    /// When the socket cannot be reached.
    pub fn api_request(&self, line: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut stream =
            UnixStream::connect(self.runtime_dir().join("api.sock")).expect("connect api.sock");
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("set timeout");
        stream.write_all(line.as_bytes()).expect("write request");
        stream.write_all(b"\n").expect("write newline");
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .expect("read answer");
        answer
    }
}

/// Stopping and starting the supervisor in place, for restart tests.
impl Supervisor {
    /// Sends `signal` to the supervisor and waits (bounded) until it exits.
    ///
    /// # Panics
    /// When it does not exit within [`SUPERVISOR_STOP_TIMEOUT`].
    pub fn stop_with(&mut self, signal: Signal) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
            let _ = kill(pid, signal);
            assert!(
                wait_bounded(&mut self.child, SUPERVISOR_STOP_TIMEOUT).is_some(),
                "supervisor ignored {signal:?}"
            );
        }
        self.alerts.finish(READER_GRACE);
    }

    /// Starts a new supervisor on the same runtime directory and policy, and
    /// waits (bounded) until its sockets accept connections. Alerts seen from
    /// now on are the new supervisor's.
    pub fn restart(&mut self) {
        let stderr = fs::OpenOptions::new()
            .append(true)
            .open(&self.stderr_path)
            .expect("open supervisor.stderr");
        let mut cmd = Command::new(sniffguard_bin());
        cmd.arg("run").arg("--runtime-dir").arg(self.dir.path());
        if let Some(path) = &self.policy {
            cmd.arg("--config").arg(path);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn the supervisor again");
        self.alerts = AlertStream::spawn(child.stdout.take().expect("piped stdout"));
        self.child = child;
        self.wait_ready(SUPERVISOR_START_TIMEOUT);
    }
}

/// Stopping and resuming the supervisor without ending it, for fault tests.
impl Supervisor {
    /// Sends `signal` to the supervisor (if it still runs) and returns at once.
    pub fn signal(&mut self, signal: Signal) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
            let _ = kill(pid, signal);
        }
    }

    /// True while the supervisor process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The built-in policy (`config/sniffguard.toml`) with flood control effectively
/// off, for tests that count one alert per decision: by default only the first
/// five alerts per container and program in a minute are written.
pub fn policy_without_flood_control() -> String {
    let text = std::fs::read_to_string(crate::repo_root().join("config/sniffguard.toml"))
        .expect("read config/sniffguard.toml");
    let at = text
        .find("[alerts.flood]")
        .expect("config/sniffguard.toml has an [alerts.flood] table");
    let (head, tail) = text.split_at(at);
    let mut replaced = false;
    let tail: Vec<String> = tail
        .lines()
        .map(|line| {
            if !replaced && line.trim_start().starts_with("burst") {
                replaced = true;
                "burst = 1000000".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(replaced, "no burst = ... under [alerts.flood]");
    format!("{head}{}\n", tail.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_stream_keeps_raw_lines_and_parses_json() {
        let input = b"not json\n{\"rule\":\"r\",\"n\":1}\n{\"rule\":\"r\",\"n\":2}\n".to_vec();
        let stream = AlertStream::spawn(std::io::Cursor::new(input));
        let second = stream.wait(|v| v["n"] == 2, Duration::from_secs(5));
        assert_eq!(second.expect("second alert")["n"], 2);
        // Scans from the start: an earlier value is still found after a later one.
        let first = stream.wait(|v| v["n"] == 1, Duration::from_secs(5));
        assert_eq!(first.expect("first alert")["n"], 1);
        assert!(stream
            .wait(|v| v["n"] == 3, Duration::from_millis(50))
            .is_none());
        stream.finish(Duration::from_secs(5));
        assert_eq!(stream.so_far().len(), 2);
        assert_eq!(stream.raw_lines().len(), 3);
    }
}
