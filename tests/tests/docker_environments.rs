//! Docker chooses an environment through its runtime entry (issue 20): Docker 20.10
//! passes a runtime no annotations and no container name, so the shipped
//! `config/docker/daemon.json` has one runtime entry per environment, each running the
//! shim with `runtimeArgs: ["--environment", NAME]` (an operator's choice, like a
//! policy rule). A private dockerd (Debian's `docker.io` 20.10, started the way
//! `base_profiles.rs` starts it, with the shipped `runtimes`) shows:
//!
//! - `docker run --runtime sniffguard-ci`: tcpdump captures a packet, and the alert
//!   says `ci`, chosen by the runtime's argument;
//! - `docker run --runtime sniffguard-staging`: tcpdump is refused before it runs,
//!   alerted as `staging`, chosen by the runtime's argument;
//! - `docker exec` into a `sniffguard-staging` container: tcpdump is refused too
//!   (Docker calls the same runtime entry, `--environment` included, for `exec`).
//!
//! Failed before the change: the shim took `--environment` for the subcommand and runc
//! refused every call ("flag provided but not defined").
//!
//! A second test pins down why the seccomp-profile wiring (`--security-opt seccomp=`
//! with `listenerPath`) cannot work with Docker 20.10: dockerd drops the field.
//!
//! Needs root, the built workspace, docker.io, runc, busybox-static and tcpdump. The
//! Docker guard removes containers and stops dockerd even when the test fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use serde_json::Value;
use sniffguard_tests::{
    is_alert_for, require_root, run_command, str_at, ShimTarget, Supervisor, ALERT_TIMEOUT,
    CAPTURE_SCRIPT,
};
use wiring::docker::{Docker, DOCKER_TIMEOUT};
use wiring::ShimWrapper;

/// tcpdump once, printing its exit status: 126 when the exec is refused.
const TCPDUMP_ONCE: &str = "tcpdump -i lo -c1 -n; echo tcpdump_rc=$?";

/// The words the shim gives for an environment its runtime entry named.
const CHOSEN_BY_RUNTIME_ARGUMENT: &str = "the runtime's argument --environment";

/// The sniffer alert for container `id`, waited for (bounded); panics with the
/// supervisor's report when none comes.
fn alert_for(sup: &Supervisor, id: &str, action: &str, what: &str) -> Value {
    sup.wait_alert(
        |a| is_alert_for(a, id) && str_at(a, "/action") == Some(action),
        ALERT_TIMEOUT,
    )
    .unwrap_or_else(|| panic!("{what}: no {action} alert for {id}\n{}", sup.report()))
}

/// The alert names the environment and says the runtime entry chose it.
fn check_environment(alert: &Value, environment: &str, what: &str) {
    assert_eq!(
        str_at(alert, "/environment"),
        Some(environment),
        "{what}: {alert}"
    );
    let chosen_by = str_at(alert, "/container/environment_chosen_by").unwrap_or_default();
    assert!(
        chosen_by.contains(&format!("{CHOSEN_BY_RUNTIME_ARGUMENT} {environment}")),
        "{what}: the alert does not say how the environment was chosen: {alert}"
    );
}

#[test]
fn docker_runtime_entries_choose_the_environment() {
    if !require_root() {
        return;
    }
    // The built-in policy: ci audits, staging enforces.
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let docker = Docker::start(&wrapper);

    // ci: an audited tcpdump really captures. NET_ADMIN for `ip link set lo up`.
    let (ci, out) = docker.run_with(
        "sniffguard-ci",
        &["--rm"],
        &["--cap-add", "NET_ADMIN"],
        &["sh", "-c", CAPTURE_SCRIPT],
    );
    assert!(
        out.success() && out.stdout.contains("1 packet captured"),
        "ci: tcpdump did not capture:\n{out}\n{}",
        docker.log()
    );
    check_environment(&alert_for(&sup, &ci, "allowed", "ci"), "ci", "ci");

    // staging: refused before it runs.
    let (staging, out) = docker.run_with(
        "sniffguard-staging",
        &["--rm"],
        &[],
        &["sh", "-c", TCPDUMP_ONCE],
    );
    assert!(
        out.stdout.contains("tcpdump_rc=126") && out.mentions("not permitted"),
        "staging: tcpdump was not refused:\n{out}\n{}",
        docker.log()
    );
    check_environment(
        &alert_for(&sup, &staging, "denied", "staging"),
        "staging",
        "staging",
    );

    // docker exec into a staging container: the same runtime entry, refused too.
    let (exec_into, out) = docker.run_with("sniffguard-staging", &["-d"], &[], &["sleep", "3600"]);
    assert!(out.success(), "staging, detached: {out}\n{}", docker.log());
    let out = run_command(
        docker
            .docker()
            .args(["exec", &exec_into, "sh", "-c", TCPDUMP_ONCE]),
        DOCKER_TIMEOUT,
    );
    assert!(
        out.stdout.contains("tcpdump_rc=126") && out.mentions("not permitted"),
        "docker exec into staging: tcpdump was not refused:\n{out}\n{}",
        docker.log()
    );
    check_environment(
        &alert_for(&sup, &exec_into, "denied", "docker exec"),
        "staging",
        "docker exec",
    );
    let (record, status) = sup.container_status(&exec_into);
    assert_eq!(record["environment"], "staging", "{status}");
    assert!(
        record["environment_chosen_by"]
            .as_str()
            .is_some_and(|c| c.contains(CHOSEN_BY_RUNTIME_ARGUMENT)),
        "status does not say how the environment was chosen: {status}"
    );
}

/// Why the seccomp-profile wiring (`--security-opt seccomp=PROFILE` with a
/// `listenerPath`, enforcement without the shim) cannot work with Docker 20.10:
/// dockerd decodes a profile into its own type, which has no `listenerPath`,
/// `listenerMetadata` or `flags` (moby `profiles/seccomp/seccomp.go` before
/// 23.0), so the runtime gets `SCMP_ACT_NOTIFY` rules and no listener and refuses
/// the container. If this starts passing, a newer Docker keeps the fields and the
/// README's Docker section should say so.
#[test]
fn docker_20_10_drops_a_profiles_listener_path() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let docker = Docker::start(&wrapper);
    let profile = sniffguard_tests::temp_dir("sniffguard-profile-");
    let path = profile.path().join("profile.json");
    let listener = sup.runtime_dir().join("seccomp.sock");
    let document = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": "staging",
        "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    std::fs::write(&path, document.to_string()).expect("write the profile");
    let option = format!("seccomp={}", path.display());
    let out = run_command(
        docker.docker().args([
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--security-opt",
            &option,
            wiring::docker::IMAGE,
            "true",
        ]),
        DOCKER_TIMEOUT,
    );
    eprintln!("DOCKER| profile with listenerPath: {}", out.stderr.trim());
    assert!(
        !out.success() && out.mentions("listenerPath is not set"),
        "Docker ran a container with a listenerPath profile (does it keep the field now?):\n{out}"
    );
}
