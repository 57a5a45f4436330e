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

/// A private Podman: configuration, storage and a rootfs copy in one temporary directory.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    /// Sets Podman up with the shipped `containers.conf` runtime entry (its wrapper path
    /// replaced by `wrapper`'s) and `hooks` as its only hooks directory (an empty one when
    /// `None`, so that hooks installed on the host stay out of the test).
    pub fn new(wrapper: Option<&ShimWrapper>, hooks: Option<&Path>) -> Podman {
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
        let hooks = hooks.unwrap_or(&empty_hooks);

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
             hooks_dir = [\"{h}\"]\n",
            r = root.display(),
            h = hooks.display(),
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
        Podman { dir }
    }

    /// `podman` with this instance's configuration.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            );
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
        unmount_under(self.dir.path());
    }
}
