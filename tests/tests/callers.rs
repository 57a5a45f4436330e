//! Who may talk to the supervisor (issue 19, part 1).
//!
//! A root process inside a `staging` container that can reach the runtime
//! directory (a bind mount of it, as `hostPath: /run` or `-v /run:/run` give)
//! sends every request the sockets know; each is refused with the reason and
//! an alert naming the attempt, the fd keeper hands it nothing, and tcpdump
//! stays refused. The same requests
//! from the host's root succeed. A registration that does not come from the
//! runtime creating the container, and a deregistration of a container that
//! still runs, are refused too.
//!
//! Needs root, the built workspace, runc, busybox-static and gcc (the helper
//! `tests/helpers/apiclient.c` is compiled statically once per test process).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use sniffguard_tests::{
    evidence_kinds, helpers_dir, is_alert_for, require_root, rootfs, str_at, Bundle, Container,
    Runtime, ShimTarget, Supervisor, ALERT_TIMEOUT,
};

/// The helper's source.
const APICLIENT_C: &str = include_str!("../helpers/apiclient.c");

/// Alerts written per container and program before flood control counts
/// instead (the built-in policy's `[alerts.flood] burst`).
const FLOOD_BURST: usize = 5;

/// Where the container sees the supervisor's runtime directory.
const MOUNTED_AT: &str = "/run/sg";

/// The compiled helper's directory, built once and removed at exit.
fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| helpers_dir("sniffguard-apiclient-", &[("apiclient", APICLIENT_C)]))
}

/// Every request a hook or an operator can make, naming `id`.
fn requests(id: &str) -> Vec<(&'static str, String)> {
    let registration = json!({
        "type": "register", "id": id, "bundle": "/x", "pid": 1, "cgroup_id": null,
        "namespaces": {}, "annotations": {}, "environment": "ci", "runtime": null,
        "pipeline": {},
    });
    vec![
        (
            "grant",
            json!({"type": "grant", "container": id, "seconds": 600, "by": "me", "reason": "x"})
                .to_string(),
        ),
        (
            "revoke",
            json!({"type": "revoke", "container": id}).to_string(),
        ),
        ("register", registration.to_string()),
        (
            "deregister",
            json!({"type": "deregister", "id": id}).to_string(),
        ),
        ("subscribe", json!({"type": "subscribe"}).to_string()),
        ("status", json!({"type": "status"}).to_string()),
    ]
}

#[test]
fn a_container_reaching_the_runtime_directory_is_refused_everything() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"))
        .bind_ro(helpers(), "/helpers")
        .bind_rw(sup.runtime_dir(), MOUNTED_AT);
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    let id = container.id();

    for (index, (name, line)) in requests(id).into_iter().enumerate() {
        let api = format!("{MOUNTED_AT}/api.sock");
        let out = container.exec_via_shim(&sup, &["/helpers/apiclient", &api, &line]);
        assert!(
            out.stdout.contains("permission denied")
                && out.stdout.contains(&format!("{name} refused")),
            "{name} from inside the container was not refused: {out}\n{}",
            sup.report()
        );
        // Flood control writes the first five alerts of a program per window
        // (the built-in policy's burst); the rest are counted.
        if index >= FLOOD_BURST {
            continue;
        }
        let alert = sup
            .wait_alert(
                |a| {
                    str_at(a, "/mechanism") == Some("api")
                        && a.pointer("/evidence/0/request") == Some(&Value::from(name))
                },
                ALERT_TIMEOUT,
            )
            .unwrap_or_else(|| panic!("no alert for the {name} attempt\n{}", sup.report()));
        assert!(is_alert_for(&alert, id), "{alert}");
        assert!(
            evidence_kinds(&alert).contains(&"supervisor_request".to_string()),
            "{alert}"
        );
    }
    // The seccomp socket takes no notify fd from the container either.
    let seccomp = format!("{MOUNTED_AT}/seccomp.sock");
    let out = container.exec_via_shim(&sup, &["/helpers/apiclient", &seccomp, "{}"]);
    assert!(
        out.stdout.contains("answer: ") || out.stdout.contains("write failed"),
        "{out}"
    );
    assert!(
        sniffguard_tests::poll_until(ALERT_TIMEOUT, || sup
            .stderr_log()
            .contains("seccomp socket: refused a client")),
        "the seccomp socket took a client from inside the container\n{}",
        sup.report()
    );

    // Nor does the fd keeper hand the container anyone's notify fd.
    let keeper = format!("{MOUNTED_AT}/keeper.sock");
    let out = container.exec_via_shim(
        &sup,
        &["/helpers/apiclient", &keeper, r#"{"op":"restore"}"#],
    );
    assert!(
        !out.stdout.contains("held"),
        "the keeper answered the container: {out}"
    );
    let keeper_log = sup.runtime_dir().join("keeper.log");
    assert!(
        sniffguard_tests::poll_until(ALERT_TIMEOUT, || std::fs::read_to_string(&keeper_log)
            .is_ok_and(|log| log.contains("sniffguard keeper: refused a client"))),
        "the keeper took a client from inside the container: {:?}",
        std::fs::read_to_string(&keeper_log)
    );

    // Nothing was granted: tcpdump is still refused.
    let tcpdump = container.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(
        !tcpdump.success() && tcpdump.stderr_mentions("Operation not permitted"),
        "{tcpdump}"
    );
    let status = sup.status();
    assert!(
        status["grants"].as_array().is_none_or(Vec::is_empty),
        "{status}"
    );

    // The host's root may.
    for line in [
        json!({"type": "grant", "container": id, "seconds": 60, "by": "test", "reason": "host"}),
        json!({"type": "revoke", "container": id}),
        json!({"type": "status"}),
    ] {
        let answer = sup.api_request(&line.to_string());
        assert!(!answer.contains("\"error\""), "{line}: {answer}");
    }
}

#[test]
fn registrations_must_come_from_the_runtime_and_live_containers_stay_registered() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    let init = container
        .state()
        .and_then(|s| s["pid"].as_u64())
        .expect("an init pid");

    // The test process is no hook of the runtime that made this container.
    let hijack = json!({
        "type": "register", "id": container.id(), "bundle": "/x", "pid": init,
        "cgroup_id": null, "namespaces": {}, "annotations": {}, "environment": "ci",
        "runtime": null, "pipeline": {},
    });
    let answer = sup.api_request(&hijack.to_string());
    assert!(answer.contains("register refused"), "{answer}");
    assert!(answer.contains("cannot move it"), "{answer}");
    let deregister = json!({"type": "deregister", "id": container.id()});
    let answer = sup.api_request(&deregister.to_string());
    assert!(answer.contains("still running"), "{answer}");
    let (record, status) = sup.container_status(container.id());
    assert_eq!(record["environment"], "staging", "{status}");
}
