//! Integration-test harness for sniffguard.
//!
//! The tests in `tests/tests/*.rs` drive the *built* binaries (`sniffguard`,
//! `sniffguard-runtime`, `sniffguard-hook` in `target/debug`) against real OCI runtimes
//! (runc, and crun through `scripts/crun-hybrid`), with a small root filesystem made by
//! `scripts/build-rootfs.sh` (static busybox plus the host's real tcpdump and its libraries).
//!
//! Pieces:
//! - [`require_root`]: every container test starts with `if !require_root() { return; }`.
//! - [`rootfs`]: the shared rootfs, built once per test process.
//! - [`Supervisor`]: a `sniffguard run` process in its own runtime directory, with its
//!   stdout JSON lines (alerts) collected; [`NoSupervisor`] is a runtime directory without
//!   sockets, for fail-open / fail-closed tests. Both implement [`ShimTarget`].
//! - [`Runtime`]: which real runtime the shim execs.
//! - [`Bundle`]: an OCI bundle (config.json from `runc spec`, edited with serde_json).
//! - [`Container`]: a guard with a unique id and its own runtime state dir; runs, creates
//!   and execs through the shim or the plain runtime, and force-deletes on drop.
//!
//! Every wait is bounded; a command that outlives its bound is killed and fails the test.
//! Declare guards in the order supervisor, bundle, container so that they drop in reverse:
//! the container is deleted before its supervisor stops.

// A test-support crate: failing loudly with a message is the right way to report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The annotation that names a container's environment (`ci`, `staging`, `production`).
pub const ENVIRONMENT_ANNOTATION: &str = "sniffguard.io/environment";

/// The rule name every sniffer alert carries.
pub const RULE_NAME: &str = "net_sniff_tool_exec";

/// Bound for one container command (run, create, exec) unless a test sets another.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound for the supervisor to open both of its sockets.
pub const SUPERVISOR_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound for the supervisor to exit after SIGTERM before it gets SIGKILL.
pub const SUPERVISOR_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound for an alert to arrive after the action that causes it.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling interval of every bounded wait.
const POLL: Duration = Duration::from_millis(10);

/// Bound for `delete -f` when a [`Container`] drops.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long output readers may lag behind a command's exit (a grandchild may hold a pipe).
const READER_GRACE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Root check
// ---------------------------------------------------------------------------------------

/// True when running as root. Otherwise prints a loud skip line naming the current test
/// (libtest names each test's thread after the test) and returns false: the test should
/// return at once, e.g. `if !require_root() { return; }`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let current = thread::current();
    let name = current.name().unwrap_or("<unnamed test>");
    eprintln!("\n**************** SKIPPED (needs root): {name} ****************\n");
    false
}

// ---------------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------------

/// The repository (workspace) root: the parent of this package's manifest directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// A script in the repository's `scripts/` directory.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

/// Environment variable naming the one directory to take the workspace's binaries from
/// (e.g. `target/release`, to drive an optimised build from a debug test, or a debug build
/// from a bench). Relative paths are taken from the repository root. When it is set, no
/// other directory is searched: a benchmark must not silently measure another build.
pub const BIN_DIR_ENV: &str = "SNIFFGUARD_BIN_DIR";

/// Directories where the workspace's binaries may be, most likely first: only
/// `$SNIFFGUARD_BIN_DIR` when it is set ([`BIN_DIR_ENV`]); otherwise the profile directory
/// holding this test executable's `deps/` (`target/debug` for tests, `target/release` for
/// benches), `$CARGO_TARGET_DIR/debug`, and `<repo>/target/debug`.
fn binary_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return vec![if dir.is_absolute() {
            dir
        } else {
            repo_root().join(dir)
        }];
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/<test>-<hash>: binaries live in target/debug.
        if let Some(deps) = exe.parent() {
            if deps.file_name().is_some_and(|n| n == "deps") {
                if let Some(profile) = deps.parent() {
                    dirs.push(profile.to_path_buf());
                }
            } else {
                dirs.push(deps.to_path_buf());
            }
        }
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        let target = PathBuf::from(target);
        let target = if target.is_absolute() {
            target
        } else {
            repo_root().join(target)
        };
        dirs.push(target.join("debug"));
    }
    dirs.push(repo_root().join("target").join("debug"));
    dirs.dedup();
    dirs
}

/// `text` without ANSI escape sequences (`ESC [ … letter`): logs written by a
/// supervisor of before colours were kept to terminals, or a terminal copy.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `per_runtime!(scenario, …)` makes one `#[test]` per runtime for each
/// scenario function taking a [`Runtime`]: `scenario::runc` and
/// `scenario::crun`.
#[macro_export]
macro_rules! per_runtime {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn runc() {
                super::$name($crate::Runtime::Runc);
            }

            #[test]
            fn crun() {
                super::$name($crate::Runtime::Crun);
            }
        }
    )*};
}

/// Path of a workspace binary (`sniffguard`, `sniffguard-runtime`, `sniffguard-hook`).
///
/// # Panics
/// When it is not built, with a hint to run `cargo build --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let dirs = binary_dirs();
    for dir in &dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "binary `{name}` not found in any of {dirs:?}: run `cargo build --workspace` first \
         (the integration tests drive the built binaries), or point {BIN_DIR_ENV} at a \
         directory that has it"
    );
}

/// The supervisor binary, `sniffguard`.
pub fn sniffguard_bin() -> PathBuf {
    binary("sniffguard")
}

/// The OCI runtime shim, `sniffguard-runtime`.
pub fn runtime_shim_bin() -> PathBuf {
    binary("sniffguard-runtime")
}

/// The OCI hook, `sniffguard-hook`.
pub fn hook_bin() -> PathBuf {
    binary("sniffguard-hook")
}

/// Finds an executable by name in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

// ---------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------

/// A fresh directory `/tmp/<prefix>XXXXXX`, mode 0700, removed when the guard drops.
///
/// Under `/tmp` rather than `$TMPDIR` on purpose: the supervisor's sockets live in such a
/// directory and a Unix socket path must stay under 108 bytes.
pub fn temp_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a temporary directory under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .expect("chmod 0700 the temporary directory");
    dir
}

/// Directories to remove when the test process exits (statics are never dropped).
static REMOVE_AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_dirs_at_exit() {
    // No panics here: unwinding out of an `extern "C"` function aborts the process.
    let dirs = match REMOVE_AT_EXIT.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    for dir in dirs.iter() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Removes `dir` when the process exits normally (libtest returns from `main` or calls
/// `std::process::exit`; both run `atexit` handlers).
pub fn remove_at_exit(dir: PathBuf) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `remove_dirs_at_exit` is a plain `extern "C" fn()` that captures nothing and
        // never unwinds; atexit only stores the pointer, and it is registered exactly once.
        let rc = unsafe { libc::atexit(remove_dirs_at_exit) };
        assert_eq!(rc, 0, "atexit failed");
    });
    let mut dirs = match REMOVE_AT_EXIT.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    dirs.push(dir);
}

// ---------------------------------------------------------------------------------------
// Bounded commands
// ---------------------------------------------------------------------------------------

/// What a bounded command produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// What was run (for messages).
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// True when stdout or stderr contains `needle`, ignoring ASCII case (runc reports Go's
    /// "operation not permitted", shells and crun print "Operation not permitted").
    pub fn mentions(&self, needle: &str) -> bool {
        contains_ignore_case(&self.stdout, needle) || contains_ignore_case(&self.stderr, needle)
    }

    /// True when stderr contains `needle`, ignoring ASCII case.
    pub fn stderr_mentions(&self, needle: &str) -> bool {
        contains_ignore_case(&self.stderr, needle)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "unknown status".to_owned(),
        };
        write!(
            f,
            "`{}` -> {status}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command, self.stdout, self.stderr
        )
    }
}

/// `haystack` contains `needle`, ignoring ASCII case.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Copies a pipe into a shared buffer until EOF, so partial output survives a timeout.
fn spawn_collector(
    mut pipe: impl Read + Send + 'static,
    buffer: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0_u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Waits for `child` at most `timeout` (polling every 10 ms). `None` on timeout.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => return None,
            // Never panic while unwinding (drop paths use this): that would abort.
            Err(_) if thread::panicking() => return None,
            Err(e) => panic!("waitpid on child {}: {e}", child.id()),
        }
    }
}

/// Joins collector threads, giving them at most `grace` after the command exited.
fn join_bounded(handles: Vec<JoinHandle<()>>, grace: Duration) {
    let deadline = Instant::now() + grace;
    for handle in handles {
        while !handle.is_finished() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
        // Otherwise a grandchild still holds the pipe: leave the thread; it ends with it.
    }
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, for at most `timeout`.
///
/// # Panics
/// When it cannot be spawned, or outlives `timeout` (it is then killed by its PID, and the
/// message shows what it had printed).
pub fn run_command(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let command = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        spawn_collector(child.stdout.take().expect("piped stdout"), Arc::clone(&out)),
        spawn_collector(child.stderr.take().expect("piped stderr"), Arc::clone(&err)),
    ];
    let status = wait_bounded(&mut child, timeout);
    let timed_out = status.is_none();
    let status = match status {
        Some(status) => status,
        None => {
            // Our own child: Child::kill sends SIGKILL to exactly its PID.
            let _ = child.kill();
            child.wait().expect("wait for a killed child")
        }
    };
    join_bounded(readers, READER_GRACE);
    let output = CmdOutput {
        command,
        status,
        stdout: String::from_utf8_lossy(&out.lock().unwrap_or_else(|p| p.into_inner())).into(),
        stderr: String::from_utf8_lossy(&err.lock().unwrap_or_else(|p| p.into_inner())).into(),
    };
    assert!(
        !timed_out,
        "command timed out after {timeout:?} and was killed:\n{output}"
    );
    output
}

// ---------------------------------------------------------------------------------------
// Root filesystem
// ---------------------------------------------------------------------------------------

/// The shared test rootfs (busybox + tcpdump), built once per test process by
/// `scripts/build-rootfs.sh` under `/tmp/sniffguard-rootfs-XXXXXX` and removed at exit.
/// Bundles mount it read-only, so tests cannot change it for each other.
///
/// # Panics
/// When the script fails (busybox-static or tcpdump missing on the host).
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = temp_dir("sniffguard-rootfs-").keep();
        remove_at_exit(dir.clone());
        let rootfs = dir.join("rootfs");
        let output = run_command(
            Command::new("bash")
                .arg(script("build-rootfs.sh"))
                .arg(&rootfs),
            Duration::from_secs(120),
        );
        assert!(output.success(), "build-rootfs.sh failed:\n{output}");
        // Containers run as root but tools drop privileges: the tree must be traversable.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .expect("chmod the rootfs parent");
        rootfs
    })
}

// ---------------------------------------------------------------------------------------
// Supervisor
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Alert helpers
// ---------------------------------------------------------------------------------------

/// A string field of an alert by JSON pointer (`"/container/id"`).
pub fn str_at<'a>(alert: &'a Value, pointer: &str) -> Option<&'a str> {
    alert.pointer(pointer).and_then(Value::as_str)
}

/// True when `alert` is a sniffer alert (rule [`RULE_NAME`]) about container `id`.
pub fn is_alert_for(alert: &Value, id: &str) -> bool {
    str_at(alert, "/rule") == Some(RULE_NAME) && str_at(alert, "/container/id") == Some(id)
}

/// The `kind`s of an alert's `evidence` array.
pub fn evidence_kinds(alert: &Value) -> Vec<String> {
    alert
        .get("evidence")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("kind").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `action/mechanism/syscall[evidence,...] KEY=VALUE` of an alert, for a test's
/// report line; `detail` names one more field (a JSON pointer such as
/// `/process/exe`), shown by its last segment.
pub fn describe_alert(alert: &Value, detail: &str) -> String {
    format!(
        "{}/{}/{}[{}] {}={}",
        str_at(alert, "/action").unwrap_or("?"),
        str_at(alert, "/mechanism").unwrap_or("?"),
        str_at(alert, "/syscall").unwrap_or("?"),
        evidence_kinds(alert).join(","),
        detail.rsplit('/').next().unwrap_or(detail),
        str_at(alert, detail).unwrap_or("?"),
    )
}

// ---------------------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------------------

/// A real OCI runtime the shim execs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc from `PATH`.
    Runc,
    /// crun through `scripts/crun-hybrid` (hides the hybrid cgroup v2 mount when needed).
    Crun,
}

impl Runtime {
    /// Both runtimes.
    pub const ALL: [Runtime; 2] = [Runtime::Runc, Runtime::Crun];

    /// `runc` or `crun`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// The executable to run: runc from `PATH`, or the absolute path of `scripts/crun-hybrid`.
    ///
    /// # Panics
    /// When runc / crun is not installed.
    pub fn path(self) -> PathBuf {
        match self {
            Runtime::Runc => find_in_path("runc").expect("runc not in PATH (apt-get install runc)"),
            Runtime::Crun => {
                assert!(
                    find_in_path("crun").is_some(),
                    "crun not in PATH (apt-get install crun)"
                );
                script("crun-hybrid")
            }
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------------------

/// Capabilities added to `runc spec`'s defaults: NET_RAW to open packet sockets (an allowed
/// tcpdump must really capture; busybox ping needs it too), NET_ADMIN for `ip link set lo
/// up`, SETUID/SETGID because Debian's tcpdump switches to user `tcpdump` after opening the
/// device and exits ("Couldn't change to 'tcpdump' uid=102") without them. Docker's default
/// set has all but NET_ADMIN too.
pub const EXTRA_CAPABILITIES: [&str; 4] =
    ["CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SETUID", "CAP_SETGID"];

/// A shell script for `sh -c` that captures one packet on `lo` and prints `tcpdump_rc=N`
/// and tcpdump's output ("1 packet captured" when it worked): bounded (at most 50 pings,
/// 0.1 s apart, then tcpdump is killed), `--immediate-mode` because with TPACKET_V3 a packet
/// only reaches tcpdump when its ring block retires (after the 1 s buffer timeout).
pub const CAPTURE_SCRIPT: &str = "ip link set lo up || exit 90; \
     tcpdump --immediate-mode -c1 -i lo -n >/tmp/out 2>&1 & p=$!; i=0; \
     while kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do \
     ping -c1 -W1 127.0.0.1 >/dev/null 2>&1; sleep 0.1; i=$((i+1)); done; \
     kill $p 2>/dev/null; wait $p; echo tcpdump_rc=$?; cat /tmp/out";

/// An OCI bundle in a temporary directory. Each builder method rewrites `config.json`.
pub struct Bundle {
    spec: Value,
    dir: TempDir,
}

impl Bundle {
    /// A bundle from `runc spec`, edited: `terminal: false`, `root.path` = `rootfs`
    /// (absolute, read-only) with a tmpfs on `/tmp`, `process.args` = `args`, the
    /// environment annotation when `environment` is `Some`, and [`EXTRA_CAPABILITIES`].
    ///
    /// # Panics
    /// When `runc spec` fails or `rootfs` is not absolute.
    pub fn new(rootfs: &Path, args: &[&str], environment: Option<&str>) -> Bundle {
        assert!(rootfs.is_absolute(), "rootfs must be absolute: {rootfs:?}");
        let dir = temp_dir("sniffguard-bundle-");
        let runc = Runtime::Runc.path();
        let output = run_command(
            Command::new(runc)
                .arg("spec")
                .arg("--bundle")
                .arg(dir.path()),
            Duration::from_secs(30),
        );
        assert!(output.success(), "runc spec failed:\n{output}");
        let text = fs::read_to_string(dir.path().join("config.json")).expect("read config.json");
        let mut spec: Value = serde_json::from_str(&text).expect("runc spec wrote JSON");

        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["root"] = json!({ "path": rootfs, "readonly": true });
        spec["hostname"] = json!("sniffguard-test");
        let mounts = spec["mounts"]
            .as_array_mut()
            .expect("runc spec has a mounts array");
        mounts.push(json!({
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            // Executable on purpose: tests run a renamed copy of tcpdump from /tmp.
            "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
        }));
        for set in ["bounding", "effective", "permitted"] {
            let caps = spec["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap_or_else(|| panic!("runc spec has process.capabilities.{set}"));
            for cap in EXTRA_CAPABILITIES {
                if !caps.iter().any(|c| c == cap) {
                    caps.push(json!(cap));
                }
            }
        }
        let bundle = Bundle { spec, dir };
        match environment {
            Some(env) => bundle.annotation(ENVIRONMENT_ANNOTATION, env),
            None => {
                bundle.write();
                bundle
            }
        }
    }

    fn write(&self) {
        let text = serde_json::to_string_pretty(&self.spec).expect("serialise config.json");
        fs::write(self.config_path(), text).expect("write config.json");
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `config.json` in the bundle.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// The current config.json contents.
    pub fn spec(&self) -> &Value {
        &self.spec
    }

    /// Adds (or replaces) an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Bundle {
        if !self.spec["annotations"].is_object() {
            self.spec["annotations"] = json!({});
        }
        self.spec["annotations"][key] = json!(value);
        self.write();
        self
    }

    /// Appends `KEY=VALUE` to `process.env`.
    pub fn env(mut self, entry: &str) -> Bundle {
        if !self.spec["process"]["env"].is_array() {
            self.spec["process"]["env"] = json!([]);
        }
        if let Some(env) = self.spec["process"]["env"].as_array_mut() {
            env.push(json!(entry));
        }
        self.write();
        self
    }

    /// Sets `process.cwd`.
    pub fn cwd(mut self, cwd: &str) -> Bundle {
        self.spec["process"]["cwd"] = json!(cwd);
        self.write();
        self
    }

    /// Any other edit of the spec.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Bundle {
        f(&mut self.spec);
        self.write();
        self
    }
}

// ---------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------

/// A container guard: a unique id (`sg-test-<pid>-<n>`) and its own runtime state
/// directory (`--root`). On drop: `<runtime> --root R delete -f ID` (errors ignored), then
/// the state directory is removed.
pub struct Container {
    id: String,
    runtime: Runtime,
    timeout: Duration,
    dir: TempDir,
}

impl Container {
    /// A new guard for a container run by `runtime`. Nothing is created yet.
    pub fn new(runtime: Runtime) -> Container {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("sg-test-{}-{n}", std::process::id());
        let dir = temp_dir("sniffguard-state-");
        fs::create_dir(dir.path().join("root")).expect("create the runtime state dir");
        Container {
            id,
            runtime,
            timeout: COMMAND_TIMEOUT,
            dir,
        }
    }

    /// Sets the bound for each command (default [`COMMAND_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Container {
        self.timeout = timeout;
        self
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The runtime it is run by.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// The runtime's state directory (`--root`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `sniffguard-runtime --root R` with the shim's environment: `SNIFFGUARD_REAL_RUNTIME`,
    /// `SNIFFGUARD_RUNTIME_DIR`, and `SNIFFGUARD_CONFIG` when `target` has a policy file.
    pub fn shim_command(&self, target: &dyn ShimTarget) -> Command {
        let mut cmd = Command::new(runtime_shim_bin());
        cmd.env("SNIFFGUARD_REAL_RUNTIME", self.runtime.path())
            .env("SNIFFGUARD_RUNTIME_DIR", target.runtime_dir());
        match target.policy_path() {
            Some(policy) => cmd.env("SNIFFGUARD_CONFIG", policy),
            None => cmd.env_remove("SNIFFGUARD_CONFIG"),
        };
        cmd.arg("--root").arg(self.state_dir());
        cmd
    }

    /// `<real runtime> --root R`, no sniffguard involved.
    pub fn plain_command(&self) -> Command {
        let mut cmd = Command::new(self.runtime.path());
        cmd.arg("--root").arg(self.state_dir());
        cmd
    }

    /// `run --bundle B ID` in the foreground through the shim; returns when the container
    /// exits (bounded).
    pub fn run_via_shim(&self, target: &dyn ShimTarget, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.shim_command(target);
        cmd.arg("run");
        self.bundle_args(&mut cmd, bundle);
        run_command(&mut cmd, self.timeout)
    }

    /// `run --bundle B ID` in the foreground with the plain runtime.
    pub fn run_plain(&self, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.arg("run");
        self.bundle_args(&mut cmd, bundle);
        run_command(&mut cmd, self.timeout)
    }

    /// `run -d --bundle B ID` through the shim: creates and starts the container and returns
    /// once it runs. Give the bundle a long-running entrypoint (`sleep 3600`). The container
    /// inherits the runtime's stdio, so stdout/stderr go to files (see
    /// [`Container::detached_output`]), not pipes this harness would wait on.
    pub fn create_detached_via_shim(&self, target: &dyn ShimTarget, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.shim_command(target);
        cmd.args(["run", "-d"]);
        self.bundle_args(&mut cmd, bundle);
        self.run_to_files(&mut cmd)
    }

    /// `run -d --bundle B ID` with the plain runtime (see
    /// [`Container::create_detached_via_shim`]).
    pub fn create_detached_plain(&self, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.args(["run", "-d"]);
        self.bundle_args(&mut cmd, bundle);
        self.run_to_files(&mut cmd)
    }

    /// `create --bundle B ID` through the shim (the container waits in "created" until
    /// [`Container::start_via_shim`]). Its stdio goes to files, as for
    /// [`Container::create_detached_via_shim`].
    pub fn create_via_shim(&self, target: &dyn ShimTarget, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.shim_command(target);
        cmd.arg("create");
        self.bundle_args(&mut cmd, bundle);
        self.run_to_files(&mut cmd)
    }

    /// `create --bundle B ID` with the plain runtime.
    pub fn create_plain(&self, bundle: &Bundle) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.arg("create");
        self.bundle_args(&mut cmd, bundle);
        self.run_to_files(&mut cmd)
    }

    /// `start ID` through the shim (bounded).
    pub fn start_via_shim(&self, target: &dyn ShimTarget) -> CmdOutput {
        let mut cmd = self.shim_command(target);
        cmd.arg("start").arg(&self.id);
        run_command(&mut cmd, self.timeout)
    }

    /// `start ID` with the plain runtime (bounded).
    pub fn start_plain(&self) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.arg("start").arg(&self.id);
        run_command(&mut cmd, self.timeout)
    }

    /// `kill ID SIGNAL` with the plain runtime (bounded).
    pub fn kill_plain(&self, signal: &str) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.arg("kill").arg(&self.id).arg(signal);
        run_command(&mut cmd, self.timeout)
    }

    /// Polls `state ID` (every 10 ms, at most `timeout`) until its `status` is `status`
    /// (`"created"`, `"running"`, `"stopped"`). False when it never was.
    pub fn wait_status(&self, status: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.state().is_some_and(|state| state["status"] == status) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }

    fn bundle_args(&self, cmd: &mut Command, bundle: &Bundle) {
        cmd.arg("--bundle").arg(bundle.path()).arg(&self.id);
    }

    /// Runs a command whose stdio a container inherits (`create`, `run -d`): stdout and
    /// stderr go to files in the guard's directory, so nothing waits for the container to
    /// close a pipe. Bounded like [`run_command`].
    fn run_to_files(&self, cmd: &mut Command) -> CmdOutput {
        let (out_path, err_path) = self.detached_paths();
        let out = fs::File::create(&out_path).expect("create detached.stdout");
        let err = fs::File::create(&err_path).expect("create detached.stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let command = describe(cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
        let status = wait_bounded(&mut child, self.timeout);
        let timed_out = status.is_none();
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            child.wait().expect("wait for a killed child")
        });
        let (stdout, stderr) = self.detached_output();
        let output = CmdOutput {
            command,
            status,
            stdout,
            stderr,
        };
        assert!(
            !timed_out,
            "command timed out after {:?} and was killed:\n{output}",
            self.timeout
        );
        output
    }

    fn detached_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("detached.stdout"),
            self.dir.path().join("detached.stderr"),
        )
    }

    /// What a detached container (and its runtime) wrote to stdout and stderr so far.
    pub fn detached_output(&self) -> (String, String) {
        let (out, err) = self.detached_paths();
        let read = |p: &Path| {
            fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        (read(&out), read(&err))
    }

    /// `exec ID ARGS...` through the shim (bounded).
    pub fn exec_via_shim(&self, target: &dyn ShimTarget, args: &[&str]) -> CmdOutput {
        let mut cmd = self.shim_command(target);
        cmd.arg("exec").arg(&self.id).args(args);
        run_command(&mut cmd, self.timeout)
    }

    /// `exec ID ARGS...` with the plain runtime (bounded).
    pub fn exec_plain(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self.plain_command();
        cmd.arg("exec").arg(&self.id).args(args);
        run_command(&mut cmd, self.timeout)
    }

    /// The runtime's `state ID` as JSON, or `None` when the container does not exist.
    pub fn state(&self) -> Option<Value> {
        let mut cmd = self.plain_command();
        cmd.arg("state").arg(&self.id);
        let output = run_command(&mut cmd, self.timeout);
        if !output.success() {
            return None;
        }
        serde_json::from_str(&output.stdout).ok()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if thread::panicking() {
            let (out, err) = self.detached_output();
            if !out.is_empty() || !err.is_empty() {
                eprintln!(
                    "sniffguard-tests: container {} detached output:\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    self.id
                );
            }
        }
        let mut cmd = self.plain_command();
        cmd.arg("delete")
            .arg("-f")
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = cmd.spawn() {
            if wait_bounded(&mut child, DELETE_TIMEOUT).is_none() {
                eprintln!(
                    "sniffguard-tests: `{} delete -f {}` hung for {DELETE_TIMEOUT:?}; killed",
                    self.runtime, self.id
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `dir` (TempDir) removes the state directory after this.
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

/// Compiles a C program statically with `gcc -static -O2` into `dir/name` and
/// returns its path.
///
/// # Panics
/// When gcc fails (its output is shown).
pub fn compile_static(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, source).expect("write C source");
    let out_path = dir.join(name);
    let out = run_command(
        Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out_path)
            .arg(&src),
        COMMAND_TIMEOUT,
    );
    assert!(out.success(), "gcc failed: {out}");
    out_path
}

/// A directory, removed when the test process exits, holding the C `helpers`
/// (name, source) compiled with [`compile_static`]: containers bind-mount it
/// read-only at `/helpers`, so it is made traversable like the rootfs.
///
/// # Panics
/// When gcc fails.
pub fn helpers_dir(prefix: &str, helpers: &[(&str, &str)]) -> PathBuf {
    let dir = temp_dir(prefix).keep();
    remove_at_exit(dir.clone());
    for (name, source) in helpers {
        compile_static(&dir, name, source);
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the helpers");
    dir
}

impl Bundle {
    /// Bind-mounts host directory `source` read-write at `destination`.
    pub fn bind_rw(self, source: &Path, destination: &str) -> Bundle {
        self.bind(source, destination, "rw")
    }

    /// Bind-mounts host directory `source` read-only at `destination`.
    pub fn bind_ro(self, source: &Path, destination: &str) -> Bundle {
        self.bind(source, destination, "ro")
    }

    fn bind(self, source: &Path, destination: &str, mode: &str) -> Bundle {
        let mode = mode.to_owned();
        let source = source.display().to_string();
        let destination = destination.to_owned();
        self.edit(move |spec| {
            if let Some(mounts) = spec.pointer_mut("/mounts").and_then(Value::as_array_mut) {
                mounts.push(serde_json::json!({
                    "destination": destination,
                    "type": "bind",
                    "source": source,
                    "options": ["rbind", mode],
                }));
            }
        })
    }
}

impl Bundle {
    /// The bundle as a hooks.d wiring leaves it: `sniffguard-hook inject` for
    /// `target`'s supervisor, then without the seccomp filter and with
    /// [`EXTRA_CAPABILITIES`] back (no capability floor), so that only the hook's
    /// registration and the eBPF probes stand between the container and the wire.
    ///
    /// # Panics
    /// When `inject` fails.
    pub fn hook_only(self, target: &dyn ShimTarget) -> Bundle {
        let out = run_command(
            Command::new(hook_bin())
                .arg("inject")
                .arg(self.path())
                .env("SNIFFGUARD_RUNTIME_DIR", target.runtime_dir()),
            COMMAND_TIMEOUT,
        );
        assert!(out.success(), "inject failed: {out}");
        self.reload()
            .edit(|spec| {
                if let Some(linux) = spec["linux"].as_object_mut() {
                    linux.remove("seccomp");
                }
            })
            .with_extra_capabilities()
    }

    /// Gives the process [`EXTRA_CAPABILITIES`] again (bounding, effective,
    /// permitted) after a tool outside the harness took some away: a bundle
    /// that stands for a wiring without the shim's capability floor.
    pub fn with_extra_capabilities(self) -> Bundle {
        self.edit(|spec| {
            for set in ["bounding", "effective", "permitted"] {
                if let Some(list) = spec["process"]["capabilities"][set].as_array_mut() {
                    for cap in EXTRA_CAPABILITIES {
                        if !list.iter().any(|c| c == cap) {
                            list.push(Value::from(cap));
                        }
                    }
                }
            }
        })
    }

    /// Re-reads `config.json` from disk, after a tool outside the harness (such
    /// as `sniffguard-hook inject`) rewrote it, so later edits keep its changes.
    ///
    /// # Panics
    /// When the file is unreadable or not JSON.
    pub fn reload(mut self) -> Bundle {
        let text = fs::read_to_string(self.config_path()).expect("read config.json");
        self.spec = serde_json::from_str(&text).expect("config.json is JSON");
        self
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

// ---------------------------------------------------------------------------------------
// Process facts and interposition (fault, load and privilege tests)
// ---------------------------------------------------------------------------------------

/// Number of open fds of process `pid` (`/proc/PID/fd`); 0 when it is gone.
pub fn proc_fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid` in KiB (`VmRSS`); 0 when it is gone.
pub fn proc_rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Polls `check` every 10 ms until it is true or `timeout` has passed; returns its last
/// value.
pub fn poll_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(POLL);
    }
    check()
}

/// The PID of the fd keeper serving `runtime_dir` (the process listening on
/// `keeper.sock`, by `SO_PEERCRED`), or `None` when nobody listens there.
pub fn keeper_pid(runtime_dir: &Path) -> Option<u32> {
    use std::os::fd::AsFd;
    let stream = UnixStream::connect(runtime_dir.join("keeper.sock")).ok()?;
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .ok()?;
    u32::try_from(cred.pid()).ok()
}

/// An OCI hook stand-in that runs the real `sniffguard-hook` and then, at
/// `create-runtime`, records how long the real hook took (`DIR/timings`, one line of
/// nanoseconds per run) and, when armed, announces itself (`DIR/registered.ID`) and
/// waits for `DIR/go` (bounded: 60 s) before it returns to the runtime. Give its
/// [`HookInterposer::path`] to the shim as `SNIFFGUARD_HOOK`.
///
/// It lets a test act between two steps of `create`: after the container is
/// registered, before the runtime goes on to send the seccomp fd.
pub struct HookInterposer {
    dir: TempDir,
}

impl HookInterposer {
    /// A stand-in that only measures (`hold == false`) or also holds every
    /// `create-runtime` until [`HookInterposer::release`] (`hold == true`).
    pub fn new(hold: bool) -> HookInterposer {
        let dir = temp_dir("sniffguard-hookwrap-");
        // Traversable by the runtime's hook process (root, but keep it obvious).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod the interposer dir");
        let d = dir.path().display();
        let real = hook_bin();
        let hold_part = if hold {
            format!(
                "  id=$(sed -n 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/p' {d}/stdin.$$ | head -n1)\n\
                 \x20 touch \"{d}/registered.$id\"\n\
                 \x20 i=0; while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
            )
        } else {
            String::new()
        };
        let script = format!(
            "#!/bin/sh\n\
             # sniffguard test stand-in for the OCI hook (see HookInterposer).\n\
             cat > {d}/stdin.$$\n\
             start=$(date +%s%N)\n\
             {real} \"$@\" < {d}/stdin.$$\n\
             rc=$?\n\
             end=$(date +%s%N)\n\
             case \"$*\" in *create-runtime*)\n\
             \x20 echo $((end - start)) >> {d}/timings\n\
             {hold_part}\
             ;; esac\n\
             rm -f {d}/stdin.$$\n\
             exit $rc\n",
            real = real.display(),
        );
        let path = dir.path().join("hook");
        fs::write(&path, script).expect("write the hook stand-in");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .expect("chmod the hook stand-in");
        HookInterposer { dir }
    }

    /// The stand-in's path (for `SNIFFGUARD_HOOK`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("hook")
    }

    /// True once the real hook has registered container `id` (held runs only).
    pub fn registered(&self, id: &str) -> bool {
        self.dir.path().join(format!("registered.{id}")).exists()
    }

    /// Lets every held (and every later) `create-runtime` return.
    pub fn release(&self) {
        let _ = fs::write(self.dir.path().join("go"), b"");
    }

    /// How long each real `create-runtime` hook run took, in order of completion.
    pub fn timings(&self) -> Vec<Duration> {
        fs::read_to_string(self.dir.path().join("timings"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .map(Duration::from_nanos)
            .collect()
    }
}

impl Drop for HookInterposer {
    fn drop(&mut self) {
        // Never leave a runtime waiting on a hook that waits on us.
        self.release();
    }
}

impl Container {
    /// [`Container::shim_command`] with extra environment for the shim.
    fn shim_command_env(
        &self,
        target: &dyn ShimTarget,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Command {
        let mut cmd = self.shim_command(target);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    /// [`Container::create_detached_via_shim`] with extra environment for the shim
    /// (e.g. `SNIFFGUARD_HOOK` pointing at a [`HookInterposer`]).
    pub fn create_detached_via_shim_env(
        &self,
        target: &dyn ShimTarget,
        bundle: &Bundle,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> CmdOutput {
        let mut cmd = self.shim_command_env(target, env);
        cmd.args(["run", "-d"]);
        self.bundle_args(&mut cmd, bundle);
        self.run_to_files(&mut cmd)
    }

    /// `create --bundle B ID` through the shim, spawned and not waited for: its
    /// stdio goes to files (see [`Container::detached_output`]). The caller owns the
    /// child (and must wait for it or kill it).
    pub fn spawn_create_via_shim_env(
        &self,
        target: &dyn ShimTarget,
        bundle: &Bundle,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Child {
        let mut cmd = self.shim_command_env(target, env);
        cmd.arg("create");
        self.bundle_args(&mut cmd, bundle);
        let (out_path, err_path) = self.detached_paths();
        let out = fs::File::create(&out_path).expect("create detached.stdout");
        let err = fs::File::create(&err_path).expect("create detached.stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let command = describe(&cmd);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"))
    }
}

/// Waits for `child` at most `timeout`; `None` on timeout (the child is left running).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    wait_bounded(child, timeout)
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

    #[test]
    fn alert_helpers_read_fields() {
        let alert = json!({
            "rule": RULE_NAME,
            "container": {"id": "c1"},
            "evidence": [{"kind": "links_libpcap"}, {"kind": "sha256", "value": "x"}],
        });
        assert!(is_alert_for(&alert, "c1"));
        assert!(!is_alert_for(&alert, "c2"));
        assert_eq!(evidence_kinds(&alert), ["links_libpcap", "sha256"]);
    }

    #[test]
    fn run_command_captures_and_bounds() {
        let out = run_command(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let hung = std::panic::catch_unwind(|| {
            run_command(Command::new("sleep").arg("30"), Duration::from_millis(200))
        });
        assert!(hung.is_err(), "a hung command must fail the test");
    }
}
