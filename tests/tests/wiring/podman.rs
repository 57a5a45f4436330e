//! A private Podman 4.3 for one test (`podman.rs`, `base_profiles.rs`): its own
//! containers.conf and storage.conf (cgroupfs, events to a file, lower ulimits, no
//! network), storage and run state under a temporary directory, containers from a copy of
//! the test rootfs (`--rootfs`, no image). Podman and conmon exit with each
//! `podman run --rm`; the guard force-removes whatever a failed test left and unmounts what
//! is still mounted under its directory. runc keeps its state for Podman in its default
//! root (`/run/runc`, one entry per container id, removed with the container): Podman 4.3
//! does not pass `--runtime-flag root=` to `delete`, which would leave the container's
//! poststop hook unrun.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sniffguard_tests::{find_in_path, rootfs, run_command, temp_dir, CmdOutput};
use tempfile::TempDir;

use super::{replace_once, shipped, unmount_under, ShimWrapper};

/// Bound for one `podman` command.
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound for cleaning up after a test.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime entry of the shipped containers.conf.
const RUNTIME_ENTRY: &str = "sniffguard = [\"/usr/local/bin/sniffguard-runc\"]";

/// Where a private Podman looks for OCI hooks (containers.conf `hooks_dir`).
pub enum HooksDirs<'a> {
    /// Only this directory (an empty one for `None`, so that hooks installed on the host
    /// stay out of the test).
    Only(Option<&'a Path>),
    /// `hooks_dir` left unset, as Debian ships containers.conf: Podman's compiled-in
    /// default, which is what Podman as installed reads.
    EngineDefault,
    /// The `hooks_dir` line of this containers.conf text (a shipped drop-in, which sets
    /// it on one line).
    FromConf(String),
}

/// A private Podman: configuration, storage and a rootfs copy in one temporary directory.
pub struct Podman {
    dir: TempDir,
    /// The unprivileged uid that runs this Podman (rootless), if any.
    uid: Option<u32>,
}

impl Podman {
    /// Sets Podman up with the shipped `containers.conf` runtime entry (its wrapper path
    /// replaced by `wrapper`'s) and `hooks` as its only hooks directory (an empty one when
    /// `None`, so that hooks installed on the host stay out of the test).
    pub fn new(wrapper: Option<&ShimWrapper>, hooks: Option<&Path>) -> Podman {
        Podman::with(wrapper, HooksDirs::Only(hooks), None)
    }

    /// As [`Podman::new`], with its hooks directories chosen by `hooks`, run as root, or
    /// as `uid` (rootless Podman: a user without an account or subordinate ids gets a
    /// single-uid user namespace; the instance's directory is given to that uid, and
    /// `wrapper`, if any, must be executable by it).
    pub fn with(wrapper: Option<&ShimWrapper>, hooks: HooksDirs, uid: Option<u32>) -> Podman {
        assert!(
            find_in_path("podman").is_some(),
            "podman not in PATH (apt-get install podman)"
        );
        let dir = temp_dir("sniffguard-podman-");
        let root = dir.path();
        let copy = run_command(
            Command::new("cp")
                .arg("-a")
                .arg(rootfs())
                .arg(root.join("rootfs")),
            PODMAN_TIMEOUT,
        );
        assert!(copy.success(), "copy the rootfs: {copy}");
        let empty_hooks = root.join("no-hooks");
        fs::create_dir(&empty_hooks).expect("create the empty hooks dir");
        let hooks_line = match hooks {
            HooksDirs::Only(dir) => format!(
                "hooks_dir = [\"{}\"]\n",
                dir.unwrap_or(&empty_hooks).display()
            ),
            HooksDirs::EngineDefault => String::new(),
            HooksDirs::FromConf(text) => {
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| l.trim_start().starts_with("hooks_dir"))
                    .collect();
                assert_eq!(lines.len(), 1, "one hooks_dir line expected in:\n{text}");
                format!("{}\n", lines[0])
            }
        };

        let wrapper_path = wrapper.map_or_else(
            || root.join("no-wrapper").display().to_string(),
            |w| w.path().display().to_string(),
        );
        let entry = replace_once(
            &shipped("config/podman/containers.conf"),
            RUNTIME_ENTRY,
            &format!("sniffguard = [\"{wrapper_path}\"]"),
            "config/podman/containers.conf",
        );
        let private_engine = format!(
            "[engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{r}/events.log\"\n\
             tmp_dir = \"{r}/libpod-tmp\"\n\
             static_dir = \"{r}/storage/libpod\"\n\
             volume_path = \"{r}/storage/volumes\"\n\
             {hooks_line}",
            r = root.display(),
        );
        let engine = replace_once(
            &entry,
            "\n[engine]\n",
            &format!("\n{private_engine}"),
            "config/podman/containers.conf",
        );
        let conf = format!(
            "# private Podman configuration of a sniffguard test\n\
             [containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             netns = \"none\"\n\
             [network]\n\
             network_config_dir = \"{r}/net\"\n\
             {engine}",
            r = root.display(),
        );
        fs::write(root.join("containers.conf"), conf).expect("write containers.conf");
        fs::write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{r}/storage\"\nrunroot = \"{r}/run\"\n",
                r = root.display()
            ),
        )
        .expect("write storage.conf");
        if let Some(uid) = uid {
            for sub in ["home", "xdg"] {
                fs::create_dir(root.join(sub)).expect("create a rootless user's directory");
            }
            let chown = run_command(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{uid}"))
                    .arg(root),
                PODMAN_TIMEOUT,
            );
            assert!(chown.success(), "give the instance to uid {uid}: {chown}");
        }
        Podman { dir, uid }
    }

    /// `podman` with this instance's configuration (as its uid when rootless, with only
    /// the environment a login would give it).
    pub fn command(&self) -> Command {
        let root = self.dir.path();
        let mut cmd = match self.uid {
            None => Command::new("podman"),
            Some(uid) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .args(["--clear-groups", "podman"])
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("HOME", root.join("home"))
                    .env("XDG_RUNTIME_DIR", root.join("xdg"))
                    .current_dir(root);
                cmd
            }
        };
        cmd.env("CONTAINERS_CONF", root.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", root.join("storage.conf"));
        cmd
    }

    /// `podman GLOBAL... run --rm --cidfile F OPTIONS... --rootfs ROOTFS sh -c SCRIPT`,
    /// bounded. Nothing else is added: capabilities, annotations and the seccomp profile
    /// are Podman's defaults unless `options` says otherwise. Returns the container id
    /// (from `--cidfile`) and the output.
    pub fn run_container(
        &self,
        global: &[&str],
        options: &[&str],
        script: &str,
    ) -> (String, CmdOutput) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let cidfile = self.path(&format!("cid-{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = self.command();
        cmd.args(global)
            .args(["run", "--rm", "--cidfile"])
            .arg(&cidfile)
            .args(options)
            .arg("--rootfs")
            .arg(self.path("rootfs"))
            .args(["sh", "-c", script]);
        let out = run_command(&mut cmd, PODMAN_TIMEOUT);
        let id = fs::read_to_string(&cidfile)
            .unwrap_or_else(|e| panic!("podman wrote no container id ({e}):\n{out}"))
            .trim()
            .to_owned();
        assert_eq!(id.len(), 64, "unexpected container id {id:?}:\n{out}");
        (id, out)
    }

    /// A file in this instance's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Anything a failed test left: containers (and their conmon), then mounts.
        let mut cmd = self.command();
        cmd.args(["rm", "--all", "--force", "--time", "0"]);
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_command(&mut cmd, CLEANUP_TIMEOUT)
        })) {
            eprintln!("sniffguard-tests: podman rm --all failed: {panic:?}");
        }
        if let Some(uid) = self.uid {
            self.stop_pause_process(uid);
        }
        unmount_under(self.dir.path());
    }
}

impl Podman {
    /// Rootless Podman leaves a pause process holding its user namespace: stops the one
    /// this instance started (named in its pid file, and checked to run as `uid`, so that
    /// a reused pid is left alone).
    fn stop_pause_process(&self, uid: u32) {
        for pid_file in ["libpod-tmp/pause.pid", "xdg/libpod/tmp/pause.pid"] {
            let Some(pid) = fs::read_to_string(self.dir.path().join(pid_file))
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let owner = fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok())
                });
            if owner == Some(uid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
