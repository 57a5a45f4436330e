//! A private Docker engine for one test (`base_profiles.rs`): Debian 12's `docker.io`
//! (20.10, API 1.41) started by the test, with everything of its own under a temporary
//! directory — `--data-root`, `--exec-root` (its managed containerd and runc state go
//! there), the API socket (`-H unix://…`), `--pidfile`, the `daemon.json` given as
//! `--config-file` and the trust key it would otherwise write to `/etc/docker`. No
//! network set-up (`--iptables=false --bridge=none`, containers run with `--network
//! none`), the `vfs` storage driver (plain copies, no overlay mounts), containers in a
//! cgroup parent of their own. The image is the test rootfs, `docker import`ed from a
//! tarball (no registry).
//!
//! `daemon.json` is the shipped `config/docker/daemon.json` with every runtime's
//! path (`sniffguard`, and `sniffguard-ENV` per environment) pointed at a
//! [`super::ShimWrapper`]. Docker 20.10 passes no
//! annotations to a runtime (`--annotation` needs API 1.43), so a container's environment
//! comes from the policy (`default_environment`).
//!
//! On drop the guard force-removes the test's containers, stops dockerd by its PID (which
//! stops its containerd), SIGKILLs any containerd or shim still serving this instance
//! (found by its private socket or config path among its arguments), unmounts what is left
//! under the directory and removes the cgroup parent. dockerd also creates
//! `/run/docker/plugins` (a fixed path in 20.10): removed again when it was not there
//! before and is still empty.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sniffguard_tests::{find_in_path, rootfs, run_command, temp_dir, CmdOutput};
use tempfile::TempDir;

use super::{
    processes_with_argument, remove_empty_cgroups, shipped, unmount_under, Daemon, ShimWrapper,
};

/// The image the tests import.
pub const IMAGE: &str = "sniffguard-test:latest";

/// The runtime name of the shipped `config/docker/daemon.json`.
pub const RUNTIME_NAME: &str = "sniffguard";

/// The API version of Debian 12's dockerd (20.10): a newer client must be told.
const API_VERSION: &str = "1.41";

/// The client of the `docker.io` package, which speaks the daemon's API version.
const PACKAGE_CLIENT: &str = "/usr/bin/docker";

/// Bound for dockerd to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound for one readiness probe (`docker version`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound for one `docker` command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound for each clean-up command.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// dockerd 20.10's fixed plugin socket directory, and its parent.
const PLUGINS_DIR: &str = "/run/docker/plugins";
const PLUGINS_PARENT: &str = "/run/docker";

/// A private dockerd with the test image imported.
pub struct Docker {
    daemon: Option<Daemon>,
    cgroup_parent: String,
    /// Whether `/run/docker` existed before this daemon started.
    had_run_docker: bool,
    dir: TempDir,
}

impl Docker {
    /// Starts dockerd with `wrapper` as its `sniffguard` runtime and imports [`IMAGE`];
    /// panics with its log when it fails.
    pub fn start(wrapper: &ShimWrapper) -> Docker {
        let dockerd = find_in_path("dockerd")
            .or_else(|| Some(PathBuf::from("/usr/sbin/dockerd")).filter(|p| p.is_file()))
            .expect("dockerd not found (apt-get install docker.io)");
        assert!(
            Path::new(PACKAGE_CLIENT).is_file() || find_in_path("docker").is_some(),
            "no docker client (apt-get install docker.io)"
        );
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = temp_dir("sniffguard-docker-");
        let root = dir.path();
        let cgroup_parent = format!(
            "sniffguard-docker-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );

        let mut config: Value = serde_json::from_str(&shipped("config/docker/daemon.json"))
            .expect("config/docker/daemon.json is JSON");
        // Every entry (`sniffguard`, and one per environment with its
        // runtimeArgs) runs the wrapper.
        let runtimes = config["runtimes"]
            .as_object_mut()
            .expect("config/docker/daemon.json has runtimes");
        assert!(
            runtimes.contains_key(RUNTIME_NAME),
            "no {RUNTIME_NAME} runtime"
        );
        for (name, entry) in runtimes.iter_mut() {
            assert_eq!(
                entry["path"], "/usr/local/bin/sniffguard-runc",
                "config/docker/daemon.json: runtime {name} names another path"
            );
            entry["path"] = json!(wrapper.path());
        }
        // dockerd 20.10 writes a trust key to /etc/docker/key.json unless told otherwise.
        config["deprecated-key-path"] = json!(root.join("key.json"));
        fs::write(root.join("daemon.json"), config.to_string()).expect("write daemon.json");
        fs::create_dir(root.join("client")).expect("create the client config dir");

        let had_run_docker = Path::new(PLUGINS_PARENT).exists();
        let daemon = Daemon::spawn(
            "dockerd",
            Command::new(dockerd)
                .arg("--config-file")
                .arg(root.join("daemon.json"))
                .arg("--data-root")
                .arg(root.join("data"))
                .arg("--exec-root")
                .arg(root.join("exec"))
                .arg("--pidfile")
                .arg(root.join("docker.pid"))
                .arg("-H")
                .arg(format!("unix://{}", root.join("docker.sock").display()))
                .args([
                    "--iptables=false",
                    "--bridge=none",
                    "--storage-driver=vfs",
                    "--cgroup-parent",
                ])
                .arg(format!("/{cgroup_parent}")),
            &root.join("dockerd.log"),
        );
        // The guard owns the daemon from here on: if it never gets ready, dropping the
        // guard stops it before its directory is cleaned up.
        let mut docker = Docker {
            daemon: Some(daemon),
            cgroup_parent,
            had_run_docker,
            dir,
        };
        let socket = docker.socket();
        let mut probe = docker.docker();
        probe.args(["version", "--format", "{{.Server.Version}}"]);
        docker
            .daemon
            .as_mut()
            .expect("the daemon was just stored")
            .wait_until(START_TIMEOUT, || {
                socket.exists() && run_command(&mut probe, PROBE_TIMEOUT).success()
            });
        docker.import_image();
        docker
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `docker` talking to this daemon only (its socket, API 1.41, a private client
    /// configuration directory).
    pub fn docker(&self) -> Command {
        let client = if Path::new(PACKAGE_CLIENT).is_file() {
            PathBuf::from(PACKAGE_CLIENT)
        } else {
            PathBuf::from("docker")
        };
        let mut cmd = Command::new(client);
        cmd.env("DOCKER_API_VERSION", API_VERSION)
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()));
        cmd
    }

    /// Imports the test rootfs as [`IMAGE`].
    fn import_image(&self) {
        let tarball = self.dir.path().join("rootfs.tar");
        let tar = run_command(
            Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(rootfs())
                .arg("-cf")
                .arg(&tarball)
                .arg("."),
            DOCKER_TIMEOUT,
        );
        assert!(tar.success(), "tar the rootfs: {tar}");
        let out = run_command(
            self.docker().arg("import").arg(&tarball).arg(IMAGE),
            DOCKER_TIMEOUT,
        );
        assert!(out.success(), "docker import: {out}\n{}", self.log());
    }

    /// `docker run --rm --cidfile F --runtime sniffguard --network none OPTIONS... IMAGE
    /// ARGS...` in the foreground, bounded. Returns the container id (from `--cidfile`:
    /// the id the runtime sees) and the output.
    pub fn run_container(&self, options: &[&str], args: &[&str]) -> (String, CmdOutput) {
        self.run_with(RUNTIME_NAME, &["--rm"], options, args)
    }

    /// `docker run --cidfile F --runtime RUNTIME --network none RUN-FLAGS... OPTIONS...
    /// IMAGE ARGS...`, bounded (`RUN-FLAGS` such as `--rm` or `-d`). Returns the
    /// container id and the output.
    pub fn run_with(
        &self,
        runtime: &str,
        run_flags: &[&str],
        options: &[&str],
        args: &[&str],
    ) -> (String, CmdOutput) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let cidfile = self
            .dir
            .path()
            .join(format!("cid-{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = self.docker();
        cmd.arg("run")
            .args(run_flags)
            .arg("--cidfile")
            .arg(&cidfile)
            .args(["--runtime", runtime, "--network", "none"])
            .args(options)
            .arg(IMAGE)
            .args(args);
        let out = run_command(&mut cmd, DOCKER_TIMEOUT);
        let id = fs::read_to_string(&cidfile)
            .unwrap_or_else(|e| panic!("docker wrote no container id ({e}):\n{out}"))
            .trim()
            .to_owned();
        assert_eq!(id.len(), 64, "unexpected container id {id:?}:\n{out}");
        (id, out)
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// Force-removes every container of this daemon (bounded; errors ignored: this is
    /// clean-up).
    fn remove_containers(&self) {
        let quiet = |cmd: &mut Command| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_command(cmd, CLEANUP_TIMEOUT)
            }))
            .ok()
        };
        let Some(list) = quiet(self.docker().args(["ps", "--all", "--quiet", "--no-trunc"])) else {
            return;
        };
        for id in list.stdout.split_whitespace() {
            quiet(self.docker().args(["rm", "--force", id]));
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sniffguard-tests: dockerd log:\n{}", self.log());
        }
        if self.daemon.is_some() {
            self.remove_containers();
        }
        // Stops dockerd by its PID (Daemon's drop); dockerd stops its own containerd.
        self.daemon = None;
        // What survives a dockerd that had to be SIGKILLed: its containerd (named by its
        // private config file) and the shims serving it (named by its private socket).
        let exec = self.dir.path().join("exec").join("containerd");
        for needle in [exec.join("containerd.toml"), exec.join("containerd.sock")] {
            let needle = needle.display().to_string();
            for pid in processes_with_argument(&needle) {
                eprintln!("sniffguard-tests: SIGKILL to leftover {pid} of {needle}");
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        unmount_under(self.dir.path());
        remove_empty_cgroups(&self.cgroup_parent);
        if !self.had_run_docker {
            // Only empty directories go: another daemon's sockets keep them.
            let _ = fs::remove_dir(PLUGINS_DIR);
            let _ = fs::remove_dir(PLUGINS_PARENT);
        }
    }
}
