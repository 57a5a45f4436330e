//! The shim is a drop-in runc (issue 20): for a `config.json` with what a newer
//! runtime may know and `oci-spec` does not, the answer through the shim is the
//! real runtime's own, and the shim's deregistration cannot be skipped by the
//! bundle's own poststop hooks.
//!
//! - **Pass-through.** Each document is run with plain runc, then through the
//!   shim in `ci` with a supervisor, in `ci` without one (fail-open) and in
//!   `staging` with a supervisor; runc's exit status, its output and its own
//!   error lines (time stamps and container ids taken out, the shim's warning
//!   lines left out) must be the same, and every field of `config.json` the shim
//!   does not change must come out identical. Before the change the shim refused
//!   `CAP_TEST` itself (`no variant for CAP_TEST`) and answered the unknown
//!   seccomp flag with oci-spec's error instead of runc's.
//! - **poststop order.** A bundle whose own poststop hook fails: the container
//!   is no longer listed by `status` once `run` returns, and the supervisor's
//!   reaper never logs "no poststop hook came" for it.
//!
//! Needs root, the built workspace and runc. Guards remove containers, bundles
//! and supervisors even when a test fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sniffguard_tests::{
    poll_until, require_root, rootfs, Bundle, CmdOutput, Container, NoSupervisor, Runtime,
    ShimTarget, Supervisor,
};

/// The capability sets of an OCI process.
const CAPABILITY_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// runc's answer, comparable between runs: exit code, stdout, and runc's own
/// stderr lines without their time stamps, with the container id replaced.
fn runtime_answer(out: &CmdOutput, id: &str) -> (Option<i32>, String, Vec<String>) {
    let stderr = out
        .stderr
        .lines()
        // The shim's own lines (a fail-open warning) are not runc's answer.
        .filter(|line| !line.starts_with("sniffguard"))
        .map(|line| {
            let line = match line.strip_prefix("time=\"") {
                Some(rest) => rest.split_once("\" ").map_or(rest, |(_, tail)| tail),
                None => line,
            };
            line.replace(id, "ID")
        })
        .collect();
    (out.code(), out.stdout.clone(), stderr)
}

/// A document with what runc 1.1 accepts and oci-spec 0.8 does not know: a
/// capability name in every set, an unknown top-level field, an unknown
/// `linux` field and an unknown `process` field.
fn future_fields(spec: &mut Value) {
    for set in CAPABILITY_SETS {
        let caps = &mut spec["process"]["capabilities"][set];
        if !caps.is_array() {
            *caps = json!([]);
        }
        caps.as_array_mut().unwrap().push(json!("CAP_TEST"));
    }
    spec["futureTopLevel"] = json!({"kept": [1, "two", null]});
    spec["linux"]["futureLinuxField"] = json!({"kept": true});
    spec["process"]["futureProcessField"] = json!(7);
}

/// Those, plus a seccomp profile with a filter flag nobody knows (runc 1.1.5
/// refuses every flag: its answer is the one that must come back).
fn future_seccomp_flag(spec: &mut Value) {
    future_fields(spec);
    spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_FUTURE"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    });
}

/// `config.json` without the parts the shim may change in `environment`.
fn unchanged_parts(spec: &Value, environment: &str) -> Value {
    let mut spec = spec.clone();
    let object = spec.as_object_mut().unwrap();
    object.remove("hooks");
    if environment != "ci" {
        object.remove("annotations");
        spec["process"]
            .as_object_mut()
            .unwrap()
            .remove("capabilities");
        spec["linux"].as_object_mut().unwrap().remove("seccomp");
    }
    spec
}

fn same_answer_as_runc(case: &str, edit: fn(&mut Value)) {
    if !require_root() {
        return;
    }
    let args = ["sh", "-c", "echo container-ran"];
    let plain_bundle = Bundle::new(rootfs(), &args, Some("ci")).edit(edit);
    let plain = Container::new(Runtime::Runc);
    let plain_out = plain.run_plain(&plain_bundle);
    let expected = runtime_answer(&plain_out, plain.id());

    let sup = Supervisor::start(None);
    let none = NoSupervisor::new(None);
    let targets: [(&str, &str, &dyn ShimTarget); 3] = [
        ("ci, supervisor", "ci", &sup),
        ("ci, no supervisor", "ci", &none),
        ("staging, supervisor", "staging", &sup),
    ];
    for (label, environment, target) in targets {
        let bundle = Bundle::new(rootfs(), &args, Some(environment)).edit(edit);
        let before = bundle.spec().clone();
        let container = Container::new(Runtime::Runc);
        let out = container.run_via_shim(target, &bundle);
        assert!(
            !out.stderr_mentions("no variant"),
            "{case}, {label}: the shim judged what runc decides:\n{out}"
        );
        assert_eq!(
            runtime_answer(&out, container.id()),
            expected,
            "{case}, {label}: the answer through the shim differs from runc's own\n\
             plain runc:\n{plain_out}\nthrough the shim:\n{out}"
        );
        let text = std::fs::read_to_string(bundle.config_path()).expect("read config.json");
        let after: Value = serde_json::from_str(&text).expect("the shim wrote JSON");
        assert!(
            after["hooks"]["createRuntime"].is_array(),
            "{case}, {label}: the shim did not prepare the bundle: {after}"
        );
        assert_eq!(
            unchanged_parts(&after, environment),
            unchanged_parts(&before, environment),
            "{case}, {label}: a field the shim does not change came out different"
        );
        let caps = &after["process"]["capabilities"];
        for set in CAPABILITY_SETS {
            assert!(
                caps[set].as_array().unwrap().contains(&json!("CAP_TEST")),
                "{case}, {label}: CAP_TEST left {set}"
            );
        }
    }
}

#[test]
fn unknown_capability_and_fields_get_runcs_answer() {
    same_answer_as_runc("CAP_TEST and unknown fields", future_fields);
}

#[test]
fn unknown_seccomp_flag_gets_runcs_answer() {
    same_answer_as_runc("unknown seccomp flag", future_seccomp_flag);
}

/// How long the supervisor's reaper needs to find a registration whose init
/// is gone: two checks five seconds apart (`REAP_INTERVAL` in
/// supervisor/src/daemon.rs), plus a margin.
const REAPER_WINDOW: Duration = Duration::from_secs(12);

/// The reaper's log line for a registration no poststop hook removed.
const REAPER_LINE: &str = "no poststop hook came";

#[test]
fn a_failing_poststop_hook_of_the_bundle_does_not_skip_deregistration() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle =
        Bundle::new(rootfs(), &["sh", "-c", "echo container-ran"], Some("ci")).edit(|spec| {
            spec["hooks"] = json!({"poststop": [{"path": "/bin/false", "args": ["false"]}]});
        });
    let container = Container::new(Runtime::Runc);
    let out = container.run_via_shim(&sup, &bundle);
    assert!(
        out.mentions("container-ran"),
        "the container did not run:\n{out}"
    );
    // `run` returned after the poststop hooks ran: deregistered by then.
    let (record, status) = sup.container_status(container.id());
    assert!(
        record.is_null(),
        "still registered after poststop (the failing hook skipped ours): {status}\n{}",
        sup.report()
    );
    // Nothing left for the reaper: its line never comes in its whole window.
    let reaped = poll_until(REAPER_WINDOW, || {
        sup.stderr_log().contains(REAPER_LINE) && sup.stderr_log().contains(container.id())
    });
    assert!(
        !reaped,
        "the reaper logged a misleading line:\n{}",
        sup.stderr_log()
    );
    // Ours runs first; the bundle's own hook is still there, after it.
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.config_path()).unwrap()).unwrap();
    let poststop = written["hooks"]["poststop"].as_array().unwrap();
    assert_eq!(poststop.len(), 2, "{written}");
    assert_eq!(poststop[1]["path"], "/bin/false", "the bundle's hook moved");
}
