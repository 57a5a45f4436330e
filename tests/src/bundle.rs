//! OCI bundles: `runc spec` edited with serde_json, bind mounts and the hooks.d-only
//! wiring.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::command::run_command;
use crate::locations::hook_bin;
use crate::runtime::Runtime;
use crate::supervisor::ShimTarget;
use crate::temp::temp_dir;
use crate::{COMMAND_TIMEOUT, ENVIRONMENT_ANNOTATION};

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
