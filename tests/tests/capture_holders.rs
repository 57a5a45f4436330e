//! A capture socket that exists must not outlive its decision (issue 17, part 4).
//!
//! - The enforce backstop (a staging container whose bundle has the hook but no
//!   seccomp filter, so that the socket probe is all that stands in the way)
//!   kills the process that made a packet socket; a sibling sharing its file
//!   table and a child forked after the socket was made held it too, and are
//!   ended as well.
//! - A capture a break-glass grant let start (`exec --cap CAP_NET_RAW` while the
//!   grant is active) ends when the grant is revoked, with an alert.
//! - `pidfd_getfd`, which lifts an fd out of another process, is refused in an
//!   enforced container and works in an audited one.
//!
//! Each test waits (bounded) until the container's network namespace has no
//! packet socket left, reading `/proc/INIT/net/packet` from the host.
//!
//! Needs root, the built workspace, runc, busybox-static and gcc (the helper
//! `tests/helpers/holder.c` is compiled statically once per test process).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sniffguard_tests::{
    evidence_kinds, helpers_dir, is_alert_for, poll_until, require_root, rootfs, run_command,
    str_at, Bundle, Container, Runtime, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};

/// The helper's source.
const HOLDER_C: &str = include_str!("../helpers/holder.c");

/// How long the holders may outlive the decision before the test fails.
const REACTION: Duration = Duration::from_secs(10);

/// The compiled helper's directory (bind-mounted read-only at `/helpers`),
/// built once per test process and removed when it exits.
fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| helpers_dir("sniffguard-holder-", &[("holder", HOLDER_C)]))
}

/// The packet sockets open in the network namespace of `pid`.
fn packet_sockets(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/net/packet"))
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .unwrap_or(0)
}

/// The container's init pid on the host.
fn init_pid(container: &Container) -> u32 {
    container
        .state()
        .and_then(|s| s["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .expect("the container has an init pid")
}

/// What the holder said so far (its output goes to `/tmp/holder` in the
/// container).
fn holder_output(container: &Container) -> String {
    container.exec_plain(&["cat", "/tmp/holder"]).stdout
}

/// Starts the holder in the background inside `container`.
fn start_holder(mut exec: Command, container: &Container, mode: &str) {
    exec.arg(container.id()).args([
        "sh",
        "-c",
        &format!("/helpers/holder {mode} >/tmp/holder 2>&1 &"),
    ]);
    let out = run_command(&mut exec, COMMAND_TIMEOUT);
    assert!(out.success(), "starting the holder: {out}");
}

/// Waits until no packet socket is left in the namespace of `init`; panics
/// with what is known when one is still there after [`REACTION`].
fn assert_no_capture_left(sup: &Supervisor, container: &Container, init: u32, what: &str) {
    let closed = poll_until(REACTION, || packet_sockets(init) == 0);
    assert!(
        closed,
        "{what}: a packet socket is still open {REACTION:?} later ({} left); holder said: {}\n{}",
        packet_sockets(init),
        holder_output(container),
        sup.report()
    );
}

#[test]
fn backstop_ends_every_holder_of_a_capture_socket() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    // A hooks.d wiring: no seccomp filter, no capability floor.
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"))
        .bind_ro(helpers(), "/helpers")
        .hook_only(&sup);
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_plain(&bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    let init = init_pid(&container);

    let mut exec = container.plain_command();
    exec.arg("exec");
    start_holder(exec, &container, "sibling");
    let alert = sup
        .wait_alert(
            |a| is_alert_for(a, container.id()) && str_at(a, "/action") == Some("killed"),
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("no killed alert\n{}", sup.report()));
    assert!(
        evidence_kinds(&alert).contains(&"packet_socket".to_string()),
        "{alert}"
    );
    assert_no_capture_left(&sup, &container, init, "backstop");
    eprintln!(
        "HOLDERS| backstop: holder said {:?}; alert responses {}",
        holder_output(&container).trim(),
        alert["responses"]
    );
}

#[test]
fn revoking_a_grant_ends_the_captures_it_let_start() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle =
        Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")).bind_ro(helpers(), "/helpers");
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    let init = init_pid(&container);
    let granted = sup.api_request(&format!(
        r#"{{"type":"grant","container":"{}","seconds":600,"by":"test","reason":"capture under a grant"}}"#,
        container.id()
    ));
    assert!(granted.contains(r#""type":"ok""#), "{granted}");

    // The operator's capture: the grant lets the exec keep CAP_NET_RAW.
    let mut exec = container.shim_command(&sup);
    exec.args(["exec", "--cap", "CAP_NET_RAW"]);
    start_holder(exec, &container, "parent");
    let holding = poll_until(REACTION, || holder_output(&container).contains("holding"));
    assert!(
        holding,
        "the granted capture did not start: {}\n{}",
        holder_output(&container),
        sup.report()
    );
    assert!(packet_sockets(init) >= 1, "no packet socket while granted");

    let revoked = sup.api_request(&format!(
        r#"{{"type":"revoke","container":"{}"}}"#,
        container.id()
    ));
    assert!(revoked.contains(r#""type":"ok""#), "{revoked}");
    assert_no_capture_left(&sup, &container, init, "grant revoked");
    let alert = sup
        .wait_alert(
            |a| is_alert_for(a, container.id()) && str_at(a, "/mechanism") == Some("grant_end"),
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("no grant_end alert\n{}", sup.report()));
    assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
}

#[test]
fn pidfd_getfd_is_refused_where_the_environment_enforces() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for (environment, expected) in [
        ("staging", "getfd: failed: Operation not permitted"),
        ("ci", "getfd: ok"),
    ] {
        let bundle = Bundle::new(rootfs(), &["/helpers/holder", "getfd"], Some(environment))
            .bind_ro(helpers(), "/helpers");
        let container = Container::new(Runtime::Runc);
        let out = container.run_via_shim(&sup, &bundle);
        assert!(
            out.stdout.contains(expected),
            "{environment}: {out}\n{}",
            sup.report()
        );
    }
}
