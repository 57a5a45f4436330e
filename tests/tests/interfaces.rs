//! Promiscuous mode and link changes from containers that keep `CAP_NET_ADMIN`
//! (issue 18), with runc and crun, through the shim. The helper
//! (`tests/helpers/ifflags.c`, static) sets `lo`'s flags in the container's
//! own network namespace and reads them back, so "never set" is what the
//! kernel reports, not what a call returned.
//!
//! - `SIOCSIFFLAGS` with `IFF_PROMISC` on an ordinary UDP socket: refused in
//!   staging before the flag changes (`denied`, evidence `promiscuous`); any
//!   other `SIOCSIFFLAGS` (`ip link set lo up`) still works, performed by the
//!   supervisor with the request it judged — a second thread flipping
//!   `IFF_PROMISC` in the request thousands of times never gets it through,
//!   while the same race in ci does (the positive control).
//!
//! Needs root, the built workspace, runc, crun and gcc.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use sniffguard_tests::{
    containers_common_profile, helpers_dir, is_alert_for, require_root, rootfs, str_at, Bundle,
    Container, Runtime, Supervisor,
};

/// Calls of the race: enough for ci to lose it many times over.
const RACE_CALLS: &str = "3000";

fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-interface-helpers-",
            &[("ifflags", include_str!("../helpers/ifflags.c"))],
        )
    })
}

/// Runs `script` (sh -c) in a container of `environment`; returns the
/// container and what it printed.
fn run(sup: &Supervisor, runtime: Runtime, environment: &str, script: &str) -> (Container, String) {
    run_with(sup, runtime, environment, script, None)
}

/// [`run`], with `profile` as the bundle's base seccomp profile.
fn run_with(
    sup: &Supervisor,
    runtime: Runtime,
    environment: &str,
    script: &str,
    profile: Option<Value>,
) -> (Container, String) {
    let mut bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some(environment))
        .bind_ro(helpers(), "/helpers");
    if let Some(profile) = profile {
        bundle = bundle.edit(|spec| spec["linux"]["seccomp"] = profile);
    }
    let container = Container::new(runtime);
    let out = container.run_via_shim(sup, &bundle);
    let output = format!("{}{}", out.stdout, out.stderr);
    (container, output)
}

/// The first alert about the container whose evidence includes `kind`.
fn alert_with(sup: &Supervisor, id: &str, kind: &str) -> Value {
    sup.wait_alert_with_evidence(id, kind)
}

/// The value of `key=` on the line starting with `prefix`.
fn field(output: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

#[test]
fn promiscuous_ioctl_is_refused_before_the_flag_changes() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let (container, out) = run(
            &sup,
            runtime,
            "staging",
            "/helpers/ifflags ioctl-promisc lo",
        );
        assert!(
            out.contains("ioctl-promisc: Operation not permitted"),
            "{runtime:?}: {out}"
        );
        assert!(
            out.contains("promisc=0"),
            "{runtime:?}: the flag was set: {out}"
        );
        let alert = alert_with(&sup, container.id(), "promiscuous");
        assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
        assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
        assert_eq!(str_at(&alert, "/syscall"), Some("ioctl"), "{alert}");
    }
}

#[test]
fn other_interface_flags_still_change_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        // busybox's `ip link set` is SIOCSIFFLAGS, performed by the supervisor.
        let (container, out) = run(
            &sup,
            runtime,
            "staging",
            "ip link set lo up && /helpers/ifflags show lo",
        );
        assert!(out.contains("promisc=0 up=1"), "{runtime:?}: {out}");
        assert!(
            !sup.alerts_so_far()
                .iter()
                .any(|a| is_alert_for(a, container.id())
                    && str_at(a, "/action") != Some("registered")),
            "{runtime:?}: an ordinary flag change was alerted\n{}",
            sup.report()
        );
    }
}

#[test]
fn a_racing_thread_never_gets_promiscuous_mode_through() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let script = format!("/helpers/ifflags race lo {RACE_CALLS}");
    // The positive control: without the supervisor performing the call, the
    // flipped request reaches the kernel.
    let (_, out) = run(&sup, Runtime::Runc, "ci", &script);
    assert!(
        field(&out, "race:", "promisc_seen").is_some_and(|n| n > 0),
        "ci: the race never set the flag, so it proves nothing: {out}"
    );
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let (container, out) = run(&sup, runtime, "staging", &script);
        assert_eq!(
            field(&out, "race:", "promisc_seen"),
            Some(0),
            "{runtime:?}: promiscuous mode got through: {out}"
        );
        assert!(
            field(&out, "race:", "ok").is_some_and(|n| n > 0),
            "{runtime:?}: no request was performed: {out}"
        );
        assert!(
            field(&out, "race:", "refused").is_some_and(|n| n > 0),
            "{runtime:?}: no flipped request was seen: {out}"
        );
        alert_with(&sup, container.id(), "promiscuous");
    }
}

#[test]
fn a_base_profile_that_allows_every_ioctl_keeps_them_all_but_siocsifflags() {
    if !require_root() {
        return;
    }
    // containers-common's profile (Podman, CRI-O) allows ioctl outright: the
    // shim splits that rule into "every other command" and SIOCSIFFLAGS. The
    // profile's default refuses, so an ordinary ioctl (SIOCGIFFLAGS in `show`,
    // the terminal's) that no split rule caught would fail.
    let profile = containers_common_profile(&[
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_CHOWN",
        "CAP_KILL",
    ]);
    assert!(
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |r| r["names"].as_array().unwrap().iter().any(|n| n == "ioctl")
                    && r["args"].is_null()
                    && r["action"] == "SCMP_ACT_ALLOW"
            ),
        "the profile no longer allows ioctl outright; this test proves nothing"
    );
    let sup = Supervisor::start(None);
    let script = format!(
        "/helpers/ifflags ioctl-up lo; /helpers/ifflags ioctl-promisc lo; \
         /helpers/ifflags race lo {RACE_CALLS}"
    );
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let (container, out) = run_with(&sup, runtime, "staging", &script, Some(profile.clone()));
        assert!(out.contains("ioctl-up: ok"), "{runtime:?}: {out}");
        assert!(
            out.contains("ioctl-promisc: Operation not permitted"),
            "{runtime:?}: {out}"
        );
        assert_eq!(
            field(&out, "race:", "promisc_seen"),
            Some(0),
            "{runtime:?}: {out}"
        );
        assert!(out.contains("promisc=0 up=1"), "{runtime:?}: {out}");
        alert_with(&sup, container.id(), "promiscuous");
    }
}
