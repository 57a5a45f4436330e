//! A private containerd 1.6 for one test (`containerd.rs`, `base_profiles.rs`, `cri.rs`):
//! config, root, state and gRPC/ttrpc sockets under a temporary directory. The engine
//! tests run it with the CRI plugin disabled ([`Containerd::start`]); `cri.rs` runs it
//! with the CRI plugin and a config of its own ([`Containerd::start_with`]). Images are
//! built in the test: the test rootfs (busybox + tcpdump) as one layer of a hand-made OCI
//! image layout, one manifest per image name (each with its own command), loaded with
//! `ctr image import` and unpacked with the `native` snapshotter (plain copies, no overlay
//! mounts). runc's state goes to `--runc-root` in the same directory. On drop the guard
//! kills and deletes the test's tasks and containers, stops containerd by its PID, SIGKILLs
//! any runc shim still serving this test's private socket (found by that socket's path in
//! its arguments), and unmounts what is left under the directory. containerd 1.6 keeps its
//! shims' sockets in the fixed `/run/containerd/s/` (removed as each shim exits).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sniffguard_tests::{find_in_path, rootfs, run_command, temp_dir, CmdOutput};
use tempfile::TempDir;

use super::{processes_with_argument, remove_empty_cgroups, unmount_under, Daemon};

/// The containerd namespace the tests use.
pub const NAMESPACE: &str = "sniffguard-test";

/// The image the tests build and import.
pub const IMAGE: &str = "localhost/sniffguard-test:latest";

/// Bound for containerd to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound for one `ctr` command.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound for each clean-up command.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The command of [`IMAGE`]'s config.
const IMAGE_COMMAND: &[&str] = &["sh"];

/// A private containerd with the test images imported.
pub struct Containerd {
    daemon: Option<Daemon>,
    namespace: &'static str,
    dir: TempDir,
}

/// The settings that keep a containerd private to its directory `root`: its own root and
/// state, sockets, and no debug or metrics listener. Top-level keys first, then tables,
/// so that a caller can put its own top-level keys between [`private_keys`] and
/// [`private_tables`].
pub fn private_keys(root: &Path) -> String {
    format!(
        "root = \"{r}/root\"\nstate = \"{r}/state\"\n",
        r = root.display()
    )
}

/// The tables of [`private_keys`]: sockets, no debug or metrics listener, and the `opt`
/// plugin's directory (by default under `/opt/containerd`).
pub fn private_tables(root: &Path) -> String {
    format!(
        "[grpc]\n  address = \"{r}/containerd.sock\"\n\
         [ttrpc]\n  address = \"{r}/containerd.sock.ttrpc\"\n\
         [debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{r}/opt\"\n",
        r = root.display()
    )
}

impl Containerd {
    /// Starts containerd without the CRI plugin and imports [`IMAGE`] into [`NAMESPACE`];
    /// panics with its log when it fails.
    pub fn start() -> Containerd {
        Containerd::start_with(
            NAMESPACE,
            |root| {
                format!(
                    "# private containerd of a sniffguard test\nversion = 2\n{}\
                     disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n{}",
                    private_keys(root),
                    private_tables(root)
                )
            },
            &[(IMAGE, IMAGE_COMMAND)],
        )
    }

    /// Starts containerd with the config `config` writes for the directory it is given
    /// (use [`private_keys`] and [`private_tables`] in it), then imports each
    /// `(name, command)` of `images` into `namespace` (the test rootfs, with `command` as
    /// its image config's `Cmd`); panics with containerd's log when it fails.
    pub fn start_with(
        namespace: &'static str,
        config: impl FnOnce(&Path) -> String,
        images: &[(&str, &[&str])],
    ) -> Containerd {
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            assert!(
                find_in_path(tool).is_some(),
                "{tool} not in PATH (apt-get install containerd)"
            );
        }
        let dir = temp_dir("sniffguard-containerd-");
        let root = dir.path();
        fs::write(root.join("config.toml"), config(root)).expect("write config.toml");
        let mut daemon = Daemon::spawn(
            "containerd",
            Command::new("containerd")
                .arg("--config")
                .arg(root.join("config.toml")),
            &root.join("containerd.log"),
        );
        let mut containerd = Containerd {
            daemon: None,
            namespace,
            dir,
        };
        let socket = containerd.socket();
        daemon.wait_until(START_TIMEOUT, || {
            socket.exists()
                && Command::new("ctr")
                    .arg("--address")
                    .arg(&socket)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        containerd.daemon = Some(daemon);
        containerd.import_images(images);
        containerd
    }

    /// containerd's gRPC socket (the CRI services listen on it too).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// `ctr --address SOCK --namespace NAMESPACE`, in the namespace this containerd was
    /// started for.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(self.namespace);
        cmd
    }

    /// Builds an OCI image layout from the test rootfs, one manifest per entry of
    /// `images` (all sharing the one layer), and imports it.
    fn import_images(&self, images: &[(&str, &[&str])]) {
        let layout = self.dir.path().join("image");
        let blobs = layout.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).expect("create the image layout");

        let layer = self.dir.path().join("layer.tar");
        let tar = run_command(
            Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(rootfs())
                .arg("-cf")
                .arg(&layer)
                .arg("."),
            CTR_TIMEOUT,
        );
        assert!(tar.success(), "tar the rootfs: {tar}");
        let layer = add_blob(&blobs, &fs::read(&layer).expect("read layer.tar"));
        let mut index_entries = Vec::new();
        for (name, command) in images {
            let config = add_blob(
                &blobs,
                json!({
                    "architecture": oci_architecture(),
                    "os": "linux",
                    "config": {
                        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                        "Cmd": command,
                    },
                    "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
                })
                .to_string()
                .as_bytes(),
            );
            let manifest = add_blob(
                &blobs,
                json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config.descriptor("application/vnd.oci.image.config.v1+json"),
                    "layers": [layer.descriptor("application/vnd.oci.image.layer.v1.tar")],
                })
                .to_string()
                .as_bytes(),
            );
            let mut entry = manifest.descriptor("application/vnd.oci.image.manifest.v1+json");
            let tag = name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
            entry["annotations"] = json!({
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            });
            index_entries.push(entry);
        }
        fs::write(
            layout.join("index.json"),
            json!({"schemaVersion": 2, "manifests": index_entries}).to_string(),
        )
        .unwrap();
        fs::write(
            layout.join("oci-layout"),
            json!({"imageLayoutVersion": "1.0.0"}).to_string(),
        )
        .unwrap();
        let archive = self.dir.path().join("image.tar");
        let tar = run_command(
            Command::new("tar")
                .arg("-C")
                .arg(&layout)
                .arg("-cf")
                .arg(&archive)
                .arg("."),
            CTR_TIMEOUT,
        );
        assert!(tar.success(), "tar the image layout: {tar}");
        let out = run_command(
            self.ctr()
                .args(["image", "import", "--snapshotter", "native"])
                .arg(&archive),
            CTR_TIMEOUT,
        );
        assert!(out.success(), "ctr image import: {out}\n{}", self.log());
        let list = run_command(self.ctr().args(["image", "ls", "-q"]), CTR_TIMEOUT);
        for (name, _) in images {
            assert!(list.stdout.lines().any(|l| l == *name), "{name}: {list}");
        }
    }

    /// `ctr run --rm --snapshotter native --runc-binary RUNC --runc-root R --fifo-dir F
    /// OPTIONS... IMAGE ID ARGS...` in the foreground, bounded. Nothing else is added: no
    /// seccomp profile unless `options` has `--seccomp`, ctr's default capabilities.
    pub fn run_container(
        &self,
        runc_binary: &Path,
        id: &str,
        options: &[&str],
        args: &[&str],
    ) -> CmdOutput {
        let mut cmd = self.ctr();
        cmd.args(["run", "--rm", "--snapshotter", "native", "--runc-binary"])
            .arg(runc_binary)
            .arg("--runc-root")
            .arg(self.dir.path().join("runc"))
            .arg("--fifo-dir")
            .arg(self.dir.path().join("fifo"))
            .args(options)
            .arg(IMAGE)
            .arg(id)
            .args(args);
        run_command(&mut cmd, CTR_TIMEOUT)
    }

    /// The directory everything of this containerd lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// Kills and deletes every task and container in its namespace (bounded; errors
    /// ignored: this is clean-up).
    fn remove_containers(&self) {
        let quiet = |cmd: &mut Command| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_command(cmd, CLEANUP_TIMEOUT)
            }))
            .ok()
        };
        let Some(list) = quiet(self.ctr().args(["container", "ls", "-q"])) else {
            return;
        };
        for id in list.stdout.split_whitespace() {
            quiet(
                self.ctr()
                    .args(["task", "kill", "--all", "--signal", "SIGKILL", id]),
            );
            quiet(self.ctr().args(["task", "delete", "--force", id]));
            quiet(self.ctr().args(["container", "delete", id]));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sniffguard-tests: containerd log:\n{}", self.log());
        }
        self.remove_containers();
        // Stops containerd by its PID (Daemon's drop).
        self.daemon = None;
        let socket = self.socket().display().to_string();
        for pid in processes_with_argument(&socket) {
            eprintln!("sniffguard-tests: SIGKILL to leftover shim {pid} of {socket}");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        unmount_under(self.dir.path());
        // containerd makes a cgroup for its namespace in every hierarchy (`ctr run`'s
        // default cgroups path) and leaves it behind: remove it once empty. One still in
        // use (another run of this test) refuses, and stays.
        remove_empty_cgroups(self.namespace);
    }
}

/// A content-addressed blob of an image layout.
struct Blob {
    digest: String,
    size: usize,
}

impl Blob {
    fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.size})
    }
}

/// Writes `bytes` to `blobs/<sha256>` (digest by `sha256sum`).
fn add_blob(blobs: &Path, bytes: &[u8]) -> Blob {
    let staging = blobs.join("incoming");
    fs::write(&staging, bytes).expect("write a blob");
    let out = run_command(Command::new("sha256sum").arg(&staging), CTR_TIMEOUT);
    assert!(out.success(), "sha256sum: {out}");
    let hex = out
        .stdout
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_owned();
    fs::rename(&staging, blobs.join(&hex)).expect("name the blob by its digest");
    Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    }
}

/// The OCI name of this machine's architecture.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
