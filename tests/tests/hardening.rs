//! Least privilege of the supervisor's sockets: only root may talk to it.
//!
//! Needs root (to run the client as another user).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use sniffguard_tests::{
    require_root, run_command, sniffguard_bin, ShimTarget, Supervisor, COMMAND_TIMEOUT,
};

/// `nobody` on Debian.
const NOBODY: u32 = 65534;

fn status_as_nobody(sup: &Supervisor) -> sniffguard_tests::CmdOutput {
    let mut cmd = Command::new(sniffguard_bin());
    cmd.args(["status", "--runtime-dir"])
        .arg(sup.runtime_dir())
        .uid(NOBODY)
        .gid(NOBODY);
    run_command(&mut cmd, COMMAND_TIMEOUT)
}

#[test]
fn a_non_root_client_is_refused() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let mode = std::fs::metadata(sup.runtime_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "runtime dir mode {mode:o}");
    let socket_mode = std::fs::metadata(sup.runtime_dir().join("api.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(socket_mode, 0o600, "api.sock mode {socket_mode:o}");

    // The directory keeps other users out.
    let out = status_as_nobody(&sup);
    assert!(!out.success(), "{out}");
    assert!(out.stderr_mentions("permission denied"), "{out}");

    // Even with the permissions loosened by mistake, SO_PEERCRED refuses them.
    // (The binary must be reachable for nobody: it is under target/.)
    std::fs::set_permissions(sup.runtime_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        sup.runtime_dir().join("api.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let out = status_as_nobody(&sup);
    assert!(!out.success(), "{out}");
    assert!(out.stderr_mentions("not root"), "{out}");
    // Root still gets an answer.
    assert!(sup.status()["version"].is_string());
}
