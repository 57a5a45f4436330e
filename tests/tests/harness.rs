//! Checks of the harness itself, with the plain runtimes (no sniffguard involved): the
//! rootfs, the bundle and the container guard work with runc and with crun (through
//! `scripts/crun-hybrid`), and what the enforcement tests expect to be blocked really runs
//! when nothing blocks it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use sniffguard_tests::{
    require_root, rootfs, run_command, Bundle, Container, Runtime, CAPTURE_SCRIPT,
};

/// Runs one plain container, asserting it exits 0, and returns its stdout.
fn run_ok(runtime: Runtime, args: &[&str]) -> String {
    let bundle = Bundle::new(rootfs(), args, None);
    let container = Container::new(runtime);
    let out = container.run_plain(&bundle);
    assert!(out.success(), "{runtime}: {out}");
    out.stdout
}

fn tcpdump_and_busybox_work(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let stdout = run_ok(
        runtime,
        &[
            "sh",
            "-c",
            "ls / >/dev/null && echo ls_ok; echo hi; busybox true && echo true_ok; \
             tcpdump -D; echo tcpdump_rc=$?; \
             cp /usr/bin/tcpdump /tmp/netcheck && /tmp/netcheck -D >/dev/null; echo copy_rc=$?; \
             ln -s /usr/bin/tcpdump /tmp/x && /tmp/x -D >/dev/null; echo symlink_rc=$?; \
             cd /usr/bin && ./tcpdump -D >/dev/null; echo relative_rc=$?",
        ],
    );
    for needle in [
        "ls_ok",
        "hi",
        "true_ok",
        "lo [Up, Running, Loopback]",
        "tcpdump_rc=0",
        "copy_rc=0",
        "symlink_rc=0",
        "relative_rc=0",
    ] {
        assert!(
            stdout.contains(needle),
            "{runtime}: no {needle:?} in:\n{stdout}"
        );
    }
}

fn tcpdump_captures_on_lo(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let stdout = run_ok(runtime, &["sh", "-c", CAPTURE_SCRIPT]);
    assert!(stdout.contains("tcpdump_rc=0"), "{runtime}:\n{stdout}");
    assert!(stdout.contains("1 packet captured"), "{runtime}:\n{stdout}");
}

fn detached_exec_and_state(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(runtime);
    let out = container.create_detached_plain(&bundle);
    assert!(out.success(), "{runtime}: {out}");
    let state = container.state().expect("state of a running container");
    assert_eq!(state["status"], "running", "{runtime}: {state}");
    assert_eq!(
        state["annotations"]["sniffguard.io/environment"], "staging",
        "{runtime}: {state}"
    );

    let out = container.exec_plain(&["sh", "-c", "echo from-exec; exit 7"]);
    assert_eq!(out.code(), Some(7), "{runtime}: {out}");
    assert_eq!(out.stdout, "from-exec\n", "{runtime}: {out}");

    let out = container.exec_plain(&["tcpdump", "-D"]);
    assert!(out.success(), "{runtime}: {out}");
    assert!(out.stdout.contains("lo"), "{runtime}: {out}");

    // /tmp is a private tmpfs, writable although the shared rootfs is read-only.
    let out = container.exec_plain(&["sh", "-c", "touch /tmp/f && ! touch /f 2>/dev/null"]);
    assert!(out.success(), "{runtime}: {out}");
}

fn delete_on_drop(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], None);
    let container = Container::new(runtime);
    let out = container.create_detached_plain(&bundle);
    assert!(out.success(), "{runtime}: {out}");
    let pid = container.state().expect("state")["pid"]
        .as_i64()
        .expect("pid in state");
    let state_dir = container.state_dir();
    drop(container);
    assert!(!state_dir.exists(), "{runtime}: state dir left behind");
    // `delete -f` killed the container's init (the runtime waits for it before returning).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "{runtime}: container init {pid} survived the drop:\n{status}"
    );
}

/// create / state / start / exec (with a caller's fd through `--preserve-fds`) / kill /
/// delete, one step at a time: for crun this goes through `scripts/crun-hybrid`, each step
/// in its own private mount namespace.
fn lifecycle_step_by_step(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let bundle = Bundle::new(
        rootfs(),
        &["sh", "-c", "echo started; exec sleep 3600"],
        None,
    );
    let container = Container::new(runtime);
    let out = container.create_plain(&bundle);
    assert!(out.success(), "{runtime}: {out}");
    assert!(
        container.wait_status("created", Duration::from_secs(10)),
        "{runtime}: not created: {:?}",
        container.state()
    );
    let out = container.start_plain();
    assert!(out.success(), "{runtime}: {out}");
    assert!(
        container.wait_status("running", Duration::from_secs(10)),
        "{runtime}: not running: {:?}",
        container.state()
    );

    // fd 3 of the runtime becomes fd 3 of the exec'd process.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fd3.txt");
    std::fs::write(&file, "through-fd-3\n").expect("write fd3.txt");
    let out = run_command(
        Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" --root "$1" exec --preserve-fds 1 "$2" sh -c 'cat <&3' 3<"$3""#)
            .arg(runtime.path())
            .arg(container.state_dir())
            .arg(container.id())
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(out.success(), "{runtime}: {out}");
    assert_eq!(out.stdout, "through-fd-3\n", "{runtime}: {out}");

    let out = container.kill_plain("KILL");
    assert!(out.success(), "{runtime}: {out}");
    assert!(
        container.wait_status("stopped", Duration::from_secs(10)),
        "{runtime}: not stopped: {:?}",
        container.state()
    );
    assert_eq!(container.detached_output().0, "started\n", "{runtime}");

    let mut delete = container.plain_command();
    delete.arg("delete").arg(container.id());
    let out = run_command(&mut delete, Duration::from_secs(30));
    assert!(out.success(), "{runtime}: {out}");
    assert!(
        container.state().is_none(),
        "{runtime}: still there after delete"
    );
}

/// Exit codes and stdio pass through `run` unchanged.
fn exit_code_and_stdio(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let bundle = Bundle::new(
        rootfs(),
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
        None,
    );
    let container = Container::new(runtime);
    let out = container.run_plain(&bundle);
    assert_eq!(out.code(), Some(3), "{runtime}: {out}");
    assert_eq!(out.stdout, "to-stdout\n", "{runtime}: {out}");
    assert!(out.stderr.contains("to-stderr\n"), "{runtime}: {out}");
}

sniffguard_tests::per_runtime!(
    tcpdump_and_busybox_work,
    tcpdump_captures_on_lo,
    detached_exec_and_state,
    delete_on_drop,
    lifecycle_step_by_step,
    exit_code_and_stdio,
);
