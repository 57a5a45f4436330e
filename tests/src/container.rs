//! Container guards: unique ids, their own runtime state, every way of running a
//! container (through the shim or the plain runtime), and a forced delete on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::bundle::Bundle;
use crate::command::{describe, run_command, wait_bounded, CmdOutput};
use crate::locations::runtime_shim_bin;
use crate::runtime::Runtime;
use crate::supervisor::ShimTarget;
use crate::temp::temp_dir;
use crate::{COMMAND_TIMEOUT, DELETE_TIMEOUT, POLL};

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
        let command = describe(cmd);
        let mut child = self.spawn_to_files(cmd);
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
    /// (e.g. `SNIFFGUARD_HOOK` pointing at a [`HookInterposer`](crate::HookInterposer)).
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
        self.spawn_to_files(&mut cmd)
    }

    /// Spawns `cmd` with stdin empty and stdout and stderr in the guard's
    /// `detached.*` files (see [`Container::detached_output`]); not waited for.
    fn spawn_to_files(&self, cmd: &mut Command) -> Child {
        let (out_path, err_path) = self.detached_paths();
        let out = fs::File::create(&out_path).expect("create detached.stdout");
        let err = fs::File::create(&err_path).expect("create detached.stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let command = describe(cmd);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"))
    }
}
