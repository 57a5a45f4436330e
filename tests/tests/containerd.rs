//! containerd 1.6 (Debian 12) with sniffguard: `ctr run --runc-binary` with the shipped
//! `config/sniffguard-runc` wrapper, so that containerd's runc v2 shim calls the
//! sniffguard runtime shim exactly as the CRI runtime handler of
//! `config/containerd/config.toml` (`BinaryName`) makes it do for Kubernetes.
//!
//! Each test starts its own containerd (`wiring/containerd.rs`): config, root, state and
//! sockets under a temporary directory, the CRI plugin disabled, the test rootfs imported
//! as an image, and a guard that removes the test's containers, stops containerd by its
//! PID and unmounts what is left.
//!
//! Needs root, containerd (with ctr), runc, and the built workspace.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use sniffguard_tests::{
    find_in_path, require_root, run_command, str_at, temp_dir, CmdOutput, Supervisor,
    CAPTURE_SCRIPT, ENVIRONMENT_ANNOTATION,
};
use wiring::containerd::{Containerd, CTR_TIMEOUT};
use wiring::{shipped, wait_alert, ShimWrapper};

/// containerd.rs's containers: the environment annotation and NET_ADMIN.
impl Containerd {
    /// `ctr run --rm` of `sh -c SCRIPT` as container `id` in an `environment` container,
    /// with `runc_binary` as containerd's runc (the shim's wrapper), in the foreground.
    fn run(&self, runc_binary: &Path, id: &str, environment: &str, script: &str) -> CmdOutput {
        let annotation = format!("{ENVIRONMENT_ANNOTATION}={environment}");
        self.run_container(
            runc_binary,
            id,
            &["--annotation", &annotation, "--cap-add", "CAP_NET_ADMIN"],
            &["sh", "-c", script],
        )
    }
}

/// A container id unique to this test process.
fn container_id(name: &str) -> String {
    format!("sg-ctr-{}-{name}", std::process::id())
}

#[test]
fn ctr_staging_tcpdump_is_denied() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let containerd = Containerd::start();
    let id = container_id("staging");
    let out = containerd.run(
        &wrapper.path(),
        &id,
        "staging",
        "echo started; tcpdump -D; echo tcpdump_rc=$?; ls / >/dev/null; echo ls_rc=$?",
    );
    assert!(out.success(), "{out}\n{}", sup.report());
    for needle in ["started", "tcpdump_rc=126", "ls_rc=0"] {
        assert!(out.stdout.contains(needle), "no {needle:?}: {out}");
    }
    assert!(out.mentions("Operation not permitted"), "{out}");
    let alert = wait_alert(&sup, &id, "denied", |a| {
        str_at(a, "/action") == Some("denied")
            && str_at(a, "/process/exe") == Some("/usr/bin/tcpdump")
    });
    assert_eq!(str_at(&alert, "/environment"), Some("staging"), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("enforce"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    assert_eq!(
        str_at(&alert, "/container/runtime"),
        Some("runc"),
        "{alert}"
    );
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(true)),
        "{alert}"
    );
    // The bundle is the one containerd's runc shim handed to our shim.
    let bundle = str_at(&alert, "/container/bundle").unwrap_or_default();
    assert!(
        bundle.starts_with(&containerd.dir().display().to_string()) && bundle.ends_with(&id),
        "{alert}"
    );
}

#[test]
fn ctr_ci_tcpdump_is_alerted() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let containerd = Containerd::start();
    let id = container_id("ci");
    let out = containerd.run(&wrapper.path(), &id, "ci", CAPTURE_SCRIPT);
    assert!(out.success(), "{out}\n{}", sup.report());
    assert!(
        out.stdout.contains("tcpdump_rc=0") && out.stdout.contains("1 packet captured"),
        "tcpdump did not capture in the ci container: {out}"
    );
    let alert = wait_alert(&sup, &id, "allowed tcpdump", |a| {
        str_at(a, "/process/exe") == Some("/usr/bin/tcpdump")
    });
    assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("exec_probe"), "{alert}");
    assert_eq!(str_at(&alert, "/environment"), Some("ci"), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(true)),
        "{alert}"
    );
}

/// containerd itself reads `config/containerd/config.toml` and reports the runtime
/// handler with the runc v2 shim and the wrapper as its runc binary (`config dump`
/// parses and merges the file without starting anything).
#[test]
fn runtime_handler_snippet_is_read_by_containerd() {
    if find_in_path("containerd").is_none() {
        eprintln!("\n**** SKIPPED: containerd not installed (apt-get install containerd) ****\n");
        return;
    }
    let dir = temp_dir("sniffguard-containerd-config-");
    let config = dir.path().join("config.toml");
    fs::write(&config, shipped("config/containerd/config.toml")).unwrap();
    let out = run_command(
        Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .args(["config", "dump"]),
        CTR_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    let dump = &out.stdout;
    let section = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.sniffguard]";
    let at = dump
        .find(section)
        .unwrap_or_else(|| panic!("no {section} in the dump:\n{dump}"));
    // The handler's table and its options table follow each other in the dump.
    let handler: Vec<&str> = dump[at..].lines().take(40).collect();
    let handler = handler.join("\n");
    for line in [
        "runtime_type = \"io.containerd.runc.v2\"",
        "pod_annotations = [\"sniffguard.io/*\"]",
        "BinaryName = \"/usr/local/bin/sniffguard-runc\"",
        "SystemdCgroup = true",
    ] {
        assert!(handler.contains(line), "no `{line}` in:\n{handler}");
    }
}
