//! Least privilege of the processes: once started, `sniffguard run` holds only the
//! capabilities it still uses (CAP_SYS_PTRACE, CAP_KILL, CAP_DAC_READ_SEARCH), in
//! every thread and in its bounding set, the fd keeper holds none, and the network
//! broker CAP_NET_ADMIN and CAP_SYS_ADMIN alone, under its own seccomp filter — and enforcement and
//! detection work as before.
//!
//! Needs root; real runc containers through the shim.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use sniffguard_tests::{
    is_alert_for, keeper_pid, poll_until, require_root, rootfs, str_at, Bundle, Container, Runtime,
    ShimTarget, Supervisor, ALERT_TIMEOUT,
};

/// CAP_DAC_READ_SEARCH (2) | CAP_KILL (5) | CAP_SYS_PTRACE (19).
const SUPERVISOR_KEEPS: u64 = (1 << 2) | (1 << 5) | (1 << 19);

/// The `Cap*` fields of a `/proc/.../status` file.
fn caps(status: &str) -> [(String, u64); 5] {
    let field = |name: &str| {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in:\n{status}"));
        (
            name.to_owned(),
            u64::from_str_radix(value.trim(), 16).unwrap(),
        )
    };
    [
        field("CapInh"),
        field("CapPrm"),
        field("CapEff"),
        field("CapBnd"),
        field("CapAmb"),
    ]
}

/// Asserts that every thread of `pid` holds exactly `keep` in its permitted,
/// effective and bounding sets and nothing inheritable or ambient.
fn assert_threads_hold(pid: u32, keep: u64, what: &str) {
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!tasks.is_empty());
    for task in tasks {
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue; // a thread that ended meanwhile
        };
        for (name, value) in caps(&status) {
            let expected = match name.as_str() {
                "CapInh" | "CapAmb" => 0,
                _ => keep,
            };
            assert_eq!(
                value,
                expected,
                "{what} thread {}: {name} is {value:016x}, expected {expected:016x}",
                task.display()
            );
        }
    }
}

#[test]
fn the_supervisor_keeps_only_what_it_uses_and_still_enforces() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    // Its sockets accept connections as soon as they are bound, a moment
    // before the drop and the "ready" line: wait for the line (bounded).
    assert!(
        poll_until(Duration::from_secs(10), || sup
            .stderr_log()
            .contains("sniffguard supervisor ready")),
        "never ready\n{}",
        sup.report()
    );
    assert_threads_hold(sup.pid(), SUPERVISOR_KEEPS, "supervisor");
    assert!(
        sup.stderr_log()
            .contains("CAP_SYS_PTRACE, CAP_KILL, CAP_DAC_READ_SEARCH"),
        "the kept set is not logged\n{}",
        sup.report()
    );
    let keeper = keeper_pid(sup.runtime_dir()).expect("a keeper listens");
    assert_threads_hold(keeper, 0, "keeper");

    // Enforce: a staging container is attached (registered and its notify fd
    // served) and its tcpdump refused.
    let staging = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let enforced = Container::new(Runtime::Runc);
    let out = enforced.create_detached_via_shim(&sup, &staging);
    assert!(out.success(), "{out}\n{}", sup.report());
    let refused = enforced.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(!refused.success(), "tcpdump ran: {refused}");
    assert!(refused.mentions("operation not permitted"), "{refused}");
    let status = sup.status();
    let listed = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == enforced.id() && c["registered"] == true && c["seccomp"] == true);
    assert!(listed, "{} not attached: {status}", enforced.id());
    assert!(
        sup.wait_alert(
            |a| is_alert_for(a, enforced.id()) && str_at(a, "/action") == Some("denied"),
            ALERT_TIMEOUT
        )
        .is_some(),
        "no denied alert\n{}",
        sup.report()
    );

    // Audit: the eBPF map is filled on registration (a map update after the
    // drop) and the exec probe reports the ci container's tcpdump.
    let ci = Bundle::new(
        rootfs(),
        &["sh", "-c", "tcpdump -D >/dev/null 2>&1; echo done"],
        Some("ci"),
    );
    let audited = Container::new(Runtime::Runc);
    let out = audited.run_via_shim(&sup, &ci);
    assert!(out.success(), "{out}");
    let alert = sup.wait_alert(
        |a| is_alert_for(a, audited.id()) && str_at(a, "/action") == Some("allowed"),
        ALERT_TIMEOUT,
    );
    assert!(
        alert.is_some(),
        "no audit alert after the drop\n{}",
        sup.report()
    );
    assert!(
        !sup.stderr_log().contains("capabilities NOT dropped"),
        "{}",
        sup.report()
    );
    // Threads started since (blocking pool, per-connection work) inherit the
    // reduced sets.
    assert_threads_hold(sup.pid(), SUPERVISOR_KEEPS, "supervisor (later)");
}

#[test]
fn the_network_broker_keeps_two_capabilities_and_is_confined() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let pid = poll_until(Duration::from_secs(10), || {
        sup.stderr_log().contains("network broker started")
    })
    .then(|| {
        let log = sup.stderr_log();
        let line = log
            .lines()
            .find(|l| l.contains("network broker started"))
            .unwrap()
            .to_owned();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("pid="))
            .and_then(|p| p.parse::<u32>().ok())
    })
    .flatten()
    .unwrap_or_else(|| panic!("no broker pid in the log\n{}", sup.report()));
    // It drops the rest, then installs its filter: wait for the filter
    // (bounded), then look at what it kept: CAP_NET_ADMIN (12) and
    // CAP_SYS_ADMIN (21) only.
    let confined = poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| s.lines().any(|l| l == "Seccomp:\t2"))
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(confined, "the broker runs without its filter:\n{status}");
    assert_threads_hold(pid, (1 << 12) | (1 << 21), "network broker");
    assert!(
        status.lines().any(|l| l == "NoNewPrivs:\t1"),
        "the broker could gain privileges by exec:\n{status}"
    );
}
