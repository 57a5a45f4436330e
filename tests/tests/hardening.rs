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

/// The first connection `child` makes to `listener`, within [`COMMAND_TIMEOUT`]
/// (and read with that timeout); `None` when `child` exits or the time passes
/// without one, so that a child that never connects fails the test instead of
/// hanging it. A child still running when the time is up is killed and reaped
/// here, so the caller's `wait` returns and nothing outlives the test.
fn accept_from(
    listener: &std::os::unix::net::UnixListener,
    child: &mut std::process::Child,
) -> Option<std::os::unix::net::UnixStream> {
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
            return Some(stream);
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Our own unreaped child: the signal reaches exactly it.
    let _ = child.kill();
    let _ = child.wait();
    None
}

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

#[test]
fn the_hook_is_confined_once_its_inputs_are_read() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;
    use std::process::Stdio;

    let dir = sniffguard_tests::temp_dir("sniffguard-hook-sandbox-");
    let listener = UnixListener::bind(dir.path().join("api.sock")).unwrap();
    let mut hook = Command::new(sniffguard_tests::hook_bin())
        .args([
            "hook",
            "--stage",
            "poststop",
            "--environment",
            "ci",
            "--runtime-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    hook.stdin
        .take()
        .unwrap()
        .write_all(br#"{"ociVersion":"1.0.2","id":"sandbox-probe","status":"stopped","bundle":"/nonexistent"}"#)
        .unwrap();
    // The hook now waits for our answer: look at it from /proc meanwhile.
    let stream = accept_from(&listener, &mut hook).expect("the hook never connected");
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", cred.pid())).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request).unwrap();
    (&stream).write_all(b"{\"type\":\"ok\"}\n").unwrap();
    let out = hook.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(request.contains("deregister"), "{request}");
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    assert_eq!(
        mode,
        Some("2"),
        "the hook runs without its filter:\n{status}"
    );
}

/// Runs the hook at createRuntime without `--environment` against a fake
/// supervisor socket and returns (exit success, stderr, the request line).
fn hook_without_environment(state: &str) -> (bool, String, String) {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::process::Stdio;

    let dir = sniffguard_tests::temp_dir("sniffguard-hook-resolve-");
    let listener = UnixListener::bind(dir.path().join("api.sock")).unwrap();
    let mut hook = Command::new(sniffguard_tests::hook_bin())
        .args(["hook", "--stage", "create-runtime", "--runtime-dir"])
        .arg(dir.path())
        .env_remove("SNIFFGUARD_CONFIG")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    hook.stdin
        .take()
        .unwrap()
        .write_all(state.as_bytes())
        .unwrap();
    let mut request = String::new();
    // A hook that refuses the state exits without connecting.
    if let Some(stream) = accept_from(&listener, &mut hook) {
        BufReader::new(&stream).read_line(&mut request).unwrap();
        (&stream).write_all(b"{\"type\":\"ok\"}\n").unwrap();
    }
    let out = hook.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        request,
    )
}

#[test]
fn a_hooks_d_entry_resolves_the_environment_itself() {
    if std::path::Path::new("/etc/sniffguard/sniffguard.toml").exists() {
        eprintln!(
            "\n**** SKIPPED: an installed policy would decide instead of the built-in one ****\n"
        );
        return;
    }
    let annotated = r#"{"ociVersion":"1.0.2","id":"resolve-probe","status":"creating","bundle":"/nonexistent","annotations":{"sniffguard.io/environment":"production"}}"#;
    let (ok, stderr, request) = hook_without_environment(annotated);
    assert!(ok, "{stderr}");
    assert!(
        request.contains(r#""environment":"production""#),
        "{request}"
    );

    let plain = r#"{"ociVersion":"1.0.2","id":"resolve-probe2","status":"creating","bundle":"/nonexistent"}"#;
    let (ok, stderr, request) = hook_without_environment(plain);
    assert!(ok, "{stderr}");
    assert!(
        request.contains(r#""environment":"ci""#),
        "default environment: {request}"
    );

    let typo = r#"{"ociVersion":"1.0.2","id":"resolve-probe3","status":"creating","bundle":"/nonexistent","annotations":{"sniffguard.io/environment":"prod"}}"#;
    let (ok, stderr, request) = hook_without_environment(typo);
    assert!(!ok, "an undefined environment was accepted: {request}");
    assert!(stderr.contains("\"prod\""), "{stderr}");
}

/// The shim prepares the bundle in a child that confines itself before it
/// reads `config.json`; the shim, which must exec the real runtime, does not.
/// Seen from a fake supervisor socket while the child waits for its ping.
#[test]
fn the_shim_parses_the_bundle_in_a_confined_child() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    if !require_root() {
        return;
    }
    let dir = sniffguard_tests::temp_dir("sniffguard-shim-sandbox-");
    let listener = UnixListener::bind(dir.path().join("api.sock")).unwrap();
    let bundle =
        sniffguard_tests::Bundle::new(sniffguard_tests::rootfs(), &["true"], Some("staging"));
    let mut shim = Command::new(sniffguard_tests::runtime_shim_bin())
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg("sandbox-probe")
        .env("SNIFFGUARD_RUNTIME_DIR", dir.path())
        .env("SNIFFGUARD_REAL_RUNTIME", "/bin/true")
        .env("SNIFFGUARD_HOOK", sniffguard_tests::hook_bin())
        .env_remove("SNIFFGUARD_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let shim_pid = shim.id();
    let stream = accept_from(&listener, &mut shim).expect("the shim's child never pinged");
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .unwrap();
    let child_status = std::fs::read_to_string(format!("/proc/{}/status", cred.pid())).unwrap();
    let shim_status = std::fs::read_to_string(format!("/proc/{shim_pid}/status")).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request).unwrap();
    (&stream)
        .write_all(b"{\"type\":\"pong\",\"version\":\"test\"}\n")
        .unwrap();
    drop(reader);
    drop(stream);
    let out = shim.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(request.contains("ping"), "{request}");
    let field = |status: &str, name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    assert_ne!(cred.pid() as u32, shim_pid, "the shim pinged by itself");
    assert_eq!(
        field(&child_status, "PPid:"),
        Some(shim_pid.to_string()),
        "the ping came from elsewhere:\n{child_status}"
    );
    assert_eq!(
        field(&child_status, "Seccomp:").as_deref(),
        Some("2"),
        "the child parses the bundle without its filter:\n{child_status}"
    );
    assert_eq!(
        field(&shim_status, "Seccomp:").as_deref(),
        Some("0"),
        "the shim itself is confined, and so would be the runtime:\n{shim_status}"
    );
    // And the child did its work: the rewrite points runc at the supervisor.
    let config = std::fs::read_to_string(bundle.config_path()).unwrap();
    assert!(config.contains("seccomp.sock"), "{config}");
}
