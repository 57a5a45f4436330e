//! The shared test root filesystem (static busybox plus the host's tcpdump).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::command::run_command;
use crate::locations::script;
use crate::temp::{remove_at_exit, temp_dir};

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
