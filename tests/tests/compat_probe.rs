//! The compat socket program (on the raw `sys_enter` tracepoint, which runs it
//! for every system call of the node) is attached only while an audit
//! container is registered: an enforce-only node does not pay for it, and an
//! audit container is covered from its first instruction (issue 18: "the
//! enforce exec cost does not grow by more than 2 %").
//!
//! Read from the supervisor's own fds: a BPF link whose `/proc/PID/fdinfo`
//! says `link_type: raw_tracepoint` is the attachment. That it catches an
//! i386 capture socket in audit is shown by `bypass.rs`
//! (`t6_i386_socket::audit_runc`).
//!
//! Needs root, the built workspace and runc.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use sniffguard_tests::{
    poll_until, require_root, rootfs, temp_dir, Bundle, Container, Runtime, Supervisor,
    COMMAND_TIMEOUT,
};

/// How long attaching or detaching may take once the container is there or
/// gone (both happen as the hook registers or deregisters it).
const SETTLE: Duration = Duration::from_secs(10);

/// How many raw tracepoint links the supervisor holds.
fn raw_tracepoint_links(sup: &Supervisor) -> usize {
    let dir = format!("/proc/{}/fdinfo", sup.pid());
    std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{dir}: {err}"))
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter(|info| {
            info.lines()
                .any(|l| l.split_whitespace().eq(["link_type:", "raw_tracepoint"]))
        })
        .count()
}

/// Runs a container of `environment` until `during` returns, and gives back
/// what it returned.
fn while_running<T>(
    sup: &Supervisor,
    environment: &str,
    during: impl FnOnce(&Container) -> T,
) -> T {
    let shared = temp_dir("sniffguard-compat-");
    let bundle = Bundle::new(
        rootfs(),
        &[
            "sh",
            "-c",
            "i=0; while [ ! -e /x/stop ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ],
        Some(environment),
    )
    .bind_rw(shared.path(), "/x");
    let container = Container::new(Runtime::Runc);
    std::thread::scope(|scope| {
        let running = scope.spawn(|| container.run_via_shim(sup, &bundle));
        let started = poll_until(COMMAND_TIMEOUT, || {
            container
                .state()
                .is_some_and(|s| s["pid"].as_u64().is_some())
                || running.is_finished()
        });
        assert!(started, "the {environment} container did not start");
        let result = during(&container);
        std::fs::write(shared.path().join("stop"), "").unwrap();
        let out = running.join().unwrap();
        assert!(out.success(), "{out}\n{}", sup.report());
        result
    })
}

#[test]
fn the_compat_socket_probe_is_attached_only_while_an_audit_container_runs() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    assert_eq!(
        raw_tracepoint_links(&sup),
        0,
        "attached with no container\n{}",
        sup.report()
    );
    let in_enforce = while_running(&sup, "staging", |_| raw_tracepoint_links(&sup));
    assert_eq!(
        in_enforce,
        0,
        "attached while only an enforce container runs\n{}",
        sup.report()
    );
    let in_audit = while_running(&sup, "ci", |_| {
        poll_until(SETTLE, || raw_tracepoint_links(&sup) == 1)
    });
    assert!(
        in_audit,
        "not attached while an audit container runs\n{}",
        sup.report()
    );
    assert!(
        poll_until(SETTLE, || raw_tracepoint_links(&sup) == 0),
        "still attached after the audit container went\n{}",
        sup.report()
    );
}
