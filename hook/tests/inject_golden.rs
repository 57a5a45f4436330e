//! Golden tests of the `config.json` rewrite. Set `UPDATE_GOLDEN=1` to rewrite
//! the expected files after a deliberate change, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use sniffguard_common::policy::{Mode, Policy};
use sniffguard_hook::inject::{self, Attachment, InjectError, SeccompError};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Rewrites a fixture the way the shim would with the built-in policy and a
/// reachable supervisor.
fn rewrite(bytes: &[u8]) -> Result<Value, InjectError> {
    let policy = Policy::builtin().unwrap();
    let mut config = inject::parse_config(bytes)?;
    let resolved = policy
        .resolve_environment(&inject::annotations(&config))
        .unwrap();
    let (environment, settings) = (resolved.name, resolved.environment);
    let attachment = Attachment {
        hook_path: PathBuf::from("/usr/local/bin/sniffguard-hook"),
        runtime_dir: PathBuf::from("/run/sniffguard"),
        environment: environment.to_string(),
        fail: settings.fail,
        runtime_name: Some("runc".into()),
        environment_chosen_by: None,
        seccomp_listener: settings.mode == Mode::Enforce,
        drop_capabilities: settings.dropped_capabilities(),
        refuse_capability_requests: false,
    };
    inject::attach(&mut config, &attachment)?;
    Ok(Value::Object(config))
}

fn check_golden(name: &str) -> Value {
    let input = std::fs::read(golden_dir().join(format!("{name}.json"))).unwrap();
    let out = rewrite(&input).unwrap();
    let expected_path = golden_dir().join(format!("{name}.expected.json"));
    let rendered = serde_json::to_string_pretty(&out).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1)",
            expected_path.display()
        )
    });
    assert_eq!(
        rendered, expected,
        "{name}: rewrite differs from the golden file"
    );
    // Injecting twice gives the same document (a retried create, or `inject`
    // followed by the shim).
    let again = rewrite(rendered.as_bytes()).unwrap();
    assert_eq!(again, out, "{name}: second injection changed the document");
    out
}

fn rule_names(seccomp: &Value, action: &str) -> Vec<String> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn runc_default_spec_in_ci_gets_hooks_only() {
    let out = check_golden("runc-default");
    assert!(out["linux"].get("seccomp").is_none());
    let create = &out["hooks"]["createRuntime"][0];
    assert_eq!(create["path"], "/usr/local/bin/sniffguard-hook");
    assert!(create["args"].as_array().unwrap().contains(&"ci".into()));
    assert_eq!(
        out["hooks"]["poststop"][0]["path"],
        "/usr/local/bin/sniffguard-hook"
    );
}

#[test]
fn docker_like_profile_keeps_its_rules_and_gains_notify() {
    let out = check_golden("docker-like");
    // The capability floor: CAP_NET_RAW leaves every set, and the container
    // says so for `exec` and the supervisor.
    let capabilities = out["process"]["capabilities"].as_object().unwrap();
    assert_eq!(capabilities.len(), 4);
    for (set, names) in capabilities {
        let names = names.as_array().unwrap();
        assert!(names.contains(&"CAP_KILL".into()), "{set}");
        assert!(!names.contains(&"CAP_NET_RAW".into()), "{set}");
    }
    assert_eq!(
        out["annotations"]["sniffguard.io/capabilities-dropped"],
        "CAP_NET_RAW"
    );
    let seccomp = &out["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(seccomp["listenerPath"], "/run/sniffguard/seccomp.sock");
    // The profile refuses chroot, mount and the rest by default: nothing in
    // the container can change its root, which the metadata promises.
    assert_eq!(seccomp["listenerMetadata"], "staging;roots");
    let allowed = rule_names(seccomp, "SCMP_ACT_ALLOW");
    for kept in ["accept", "read", "write", "personality"] {
        assert!(allowed.contains(&kept.to_string()), "{kept} lost");
    }
    for moved in ["execve", "execveat", "socket"] {
        assert!(
            !allowed.contains(&moved.to_string()),
            "{moved} still allowed outright"
        );
    }
    let notified = rule_names(seccomp, "SCMP_ACT_NOTIFY");
    assert_eq!(notified, ["execve", "execveat", "socket"]);
    assert_eq!(
        rule_names(seccomp, "SCMP_ACT_ERRNO"),
        ["kexec_load", "open_by_handle_at"]
    );
}

#[test]
fn foreign_listener_is_refused() {
    let input = std::fs::read(golden_dir().join("foreign-listener.json")).unwrap();
    let err = rewrite(&input).unwrap_err();
    assert!(
        matches!(err, InjectError::Seccomp(SeccompError::ForeignListener(_))),
        "{err}"
    );
    assert!(err.to_string().contains("/run/other-agent.sock"), "{err}");
}

#[test]
fn bad_config_json_is_a_clear_error() {
    // (document, the field the error must name)
    let staging = r#""annotations":{"sniffguard.io/environment":"staging"}"#;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "JSON"),
        (
            r#"{"process":{"capabilities":{"bounding":["CAP_NET_RAW"]}},"process":{"args":["sh"]}}"#
                .into(),
            "the key \"process\" appears twice",
        ),
        ("{not json".into(), "JSON"),
        ("[1,2]".into(), "not a JSON object"),
        (r#"{"ociVersion":"1.0.2","hooks":"yes"}"#.into(), "hooks"),
        (
            r#"{"ociVersion":"1.0.2","hooks":{"poststop":{}}}"#.into(),
            "hooks.poststop",
        ),
        (
            r#"{"process":{"capabilities":{"bounding":"CAP_NET_RAW"}}}"#.into(),
            "process.capabilities.bounding",
        ),
        // runc (Go) reads keys regardless of case: a key it would take for one
        // sniffguard edits is refused, not left for the runtime to read alone.
        (
            r#"{"Process":{"capabilities":{"bounding":["CAP_NET_RAW"]}}}"#.into(),
            "\"Process\" would be read by the runtime as \"process\"",
        ),
        (
            "{\"process\":{\"capabilitie\u{17f}\":{}}}".into(),
            "process.\"capabilitie\u{17f}\"",
        ),
        (r#"{"hooks":{"PostStop":[]}}"#.into(), "hooks.\"PostStop\""),
        (
            format!(r#"{{"linux":{{"SECCOMP":{{}}}},{staging}}}"#),
            "linux.\"SECCOMP\"",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_FROBNICATE"}}}},{staging}}}"#
            ),
            "linux.seccomp.defaultAction",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["read"],"action":"SCMP_ACT_ALLOW"}},{{"names":["execve"],"action":"SCMP_ACT_FUTURE"}}]}}}},{staging}}}"#
            ),
            "linux.seccomp.syscalls[1].action",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{{"index":0,"value":17,"op":"SCMP_CMP_FUTURE"}}]}}]}}}},{staging}}}"#
            ),
            "linux.seccomp.syscalls[0].args[0]",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["execve"],"action":"SCMP_ACT_ALLOW","includes":{{}}}}]}}}},{staging}}}"#
            ),
            "linux.seccomp.syscalls[0].includes",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_ALLOW","defaultActionFuture":"x"}}}},{staging}}}"#
            ),
            "linux.seccomp.defaultActionFuture",
        ),
        (
            format!(
                r#"{{"linux":{{"seccomp":{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":"read","action":"SCMP_ACT_ALLOW"}}]}}}},{staging}}}"#
            ),
            "linux.seccomp.syscalls[0].names",
        ),
    ];
    for (case, field) in cases {
        let err = rewrite(case.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{case}: {err}");
        assert!(err.contains(field), "{case}: {err} does not name {field}");
    }
}

/// A document with what a newer runtime may know and oci-spec does not: a
/// capability name in every set, a top-level field, a `linux` field, a seccomp
/// flag and architecture, a rule with an unknown action for a syscall
/// sniffguard does not touch, and a `process.args` of the wrong type (the
/// runtime's to refuse).
fn future_config(environment: &str) -> Value {
    let caps = serde_json::json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_TEST"]);
    serde_json::json!({
        "ociVersion": "1.3.0",
        "futureTopLevel": {"keep": [1, 2.5, null, "x"]},
        "annotations": {"sniffguard.io/environment": environment, "other": "kept"},
        "process": {
            "args": "sh",
            "futureProcessField": true,
            "capabilities": {
                "bounding": caps, "effective": caps, "inheritable": caps,
                "permitted": caps, "ambient": caps
            }
        },
        "hooks": {"prestart": [{"path": "/bin/true", "futureHookField": 1}]},
        "linux": {
            "futureLinuxField": {"a": 1},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_FUTURE"],
                "architectures": ["SCMP_ARCH_FUTURE"],
                "syscalls": [
                    {"names": ["futex"], "action": "SCMP_ACT_FUTURE", "futureRuleField": 3},
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
                ]
            }
        }
    })
}

#[test]
fn audit_passes_every_part_it_does_not_change_through() {
    let input = future_config("ci");
    let out = rewrite(&serde_json::to_vec(&input).unwrap()).unwrap();
    // Only the hooks changed: ci drops no capability and reads no profile.
    let mut without_hooks = out.clone();
    without_hooks["hooks"] = input["hooks"].clone();
    assert_eq!(without_hooks, input);
    assert_eq!(out["hooks"]["prestart"], input["hooks"]["prestart"]);
    assert_eq!(out["hooks"]["createRuntime"].as_array().unwrap().len(), 1);
    assert_eq!(out["hooks"]["poststop"].as_array().unwrap().len(), 1);
}

#[test]
fn enforce_changes_only_its_own_parts() {
    let input = future_config("staging");
    let out = rewrite(&serde_json::to_vec(&input).unwrap()).unwrap();
    for key in ["ociVersion", "futureTopLevel"] {
        assert_eq!(out[key], input[key], "{key}");
    }
    assert_eq!(out["annotations"]["other"], "kept");
    assert_eq!(out["process"]["args"], "sh");
    assert_eq!(out["process"]["futureProcessField"], true);
    for (set, names) in out["process"]["capabilities"].as_object().unwrap() {
        // The floor takes CAP_NET_RAW; a name oci-spec does not know stays.
        assert_eq!(
            names,
            &serde_json::json!(["CAP_CHOWN", "CAP_TEST"]),
            "{set}"
        );
    }
    assert_eq!(
        out["linux"]["futureLinuxField"],
        input["linux"]["futureLinuxField"]
    );
    let (before, after) = (&input["linux"]["seccomp"], &out["linux"]["seccomp"]);
    assert_eq!(after["flags"], before["flags"]);
    assert_eq!(after["architectures"], before["architectures"]);
    let rules = after["syscalls"].as_array().unwrap();
    assert_eq!(rules[0], before["syscalls"][0], "a foreign rule changed");
    assert_eq!(rules[1], before["syscalls"][1]);
    assert!(rule_names(after, "SCMP_ACT_NOTIFY").contains(&"execve".to_string()));
    assert_eq!(after["listenerPath"], "/run/sniffguard/seccomp.sock");
    // A second injection changes nothing.
    let again = rewrite(&serde_json::to_vec(&out).unwrap()).unwrap();
    assert_eq!(again, out);
}

#[test]
fn staging_spec_without_profile_gets_allow_all_with_capture_rules() {
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(golden_dir().join("runc-default.json")).unwrap())
            .unwrap();
    spec["annotations"] = serde_json::json!({"sniffguard.io/environment": "staging"});
    let out = rewrite(&serde_json::to_vec(&spec).unwrap()).unwrap();
    let seccomp = &out["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
    let socket_rules: Vec<&Value> = seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"][0] == "socket")
        .collect();
    // One per row of the capture table (AF_PACKET; SOCK_RAW on AF_INET and
    // AF_INET6; (AF_INET, SOCK_PACKET); AF_XDP; the netlink ULOG and netfilter
    // families).
    assert_eq!(
        socket_rules.len(),
        sniffguard_common::capture::CAPTURE_SOCKETS.len(),
        "{socket_rules:#?}"
    );
    // ioctl: SIOCSIFFLAGS only (the container keeps CAP_NET_ADMIN).
    let ioctl: Vec<&Value> = seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"][0] == "ioctl")
        .collect();
    assert_eq!(ioctl.len(), 1, "{ioctl:#?}");
    assert_eq!(ioctl[0]["action"], "SCMP_ACT_NOTIFY");
    assert_eq!(
        ioctl[0]["args"],
        serde_json::json!([{"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 0xffff_ffffu64, "valueTwo": 0x8914}])
    );
    assert!(socket_rules
        .iter()
        .all(|r| !r["args"].as_array().unwrap().is_empty()));
    assert_eq!(seccomp["architectures"].as_array().unwrap().len(), 3);
    // io_uring could open sockets behind the filter's back, and pidfd_getfd
    // take one from another process.
    assert_eq!(
        rule_names(seccomp, "SCMP_ACT_ERRNO"),
        [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "pidfd_getfd"
        ]
    );
}

#[test]
fn oversized_bundle_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b' '; (inject::MAX_CONFIG_BYTES + 1) as usize];
    std::fs::write(dir.path().join("config.json"), big).unwrap();
    assert!(matches!(
        inject::read_config(dir.path()),
        Err(InjectError::TooLarge(_))
    ));
}

fn merged(profile: Value) -> Value {
    inject::merge_seccomp(
        Some(profile),
        Path::new("/run/sg/seccomp.sock"),
        "staging",
        false,
    )
    .unwrap()
}

#[test]
fn root_changing_syscalls_are_notified_unless_a_profile_conditions_them() {
    // A permissive profile that allows chroot outright: chroot and the other
    // root-changing calls move to the notify rule, and the metadata says so.
    let open = merged(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["chroot", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(open["listenerMetadata"], "staging;roots");
    let notified = rule_names(&open, "SCMP_ACT_NOTIFY");
    for name in sniffguard_common::listener::ROOT_CHANGING_SYSCALLS {
        assert!(notified.contains(&name.to_string()), "{name} not notified");
    }
    assert!(!rule_names(&open, "SCMP_ACT_ALLOW").contains(&"chroot".to_string()));
    // Rewriting the rewrite changes nothing.
    assert_eq!(merged(open.clone()), open);

    // A rule that allows mount only with some flags stays as it is: the
    // supervisor cannot see every mount, so no root is promised stable.
    let conditional = merged(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["execve", "execveat", "socket"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 3, "value": 4096, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 4096}]}
        ]
    }));
    assert_eq!(conditional["listenerMetadata"], "staging");
    assert!(!rule_names(&conditional, "SCMP_ACT_NOTIFY").contains(&"mount".to_string()));
    assert!(rule_names(&conditional, "SCMP_ACT_ALLOW").contains(&"mount".to_string()));
}

/// Every rule naming `socket` in a merged profile, with its action.
fn socket_rules(seccomp: &Value) -> Vec<Value> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == "socket"))
        .cloned()
        .collect()
}

#[test]
fn conditional_socket_rules_move_to_the_supervisor() {
    // containers-common's shape for a container without CAP_AUDIT_WRITE: the
    // conditional allows would win over a conditional capture rule in
    // libseccomp's tree, so none may stay beside sniffguard's rule.
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["execve", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket", "bind"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]}
        ]
    });
    let out = merged(profile);
    let socket = socket_rules(&out);
    assert_eq!(socket.len(), 1, "{socket:?}");
    assert_eq!(socket[0]["action"], "SCMP_ACT_NOTIFY");
    assert!(
        socket[0].get("args").is_none_or(Value::is_null),
        "{socket:?}"
    );
    // `bind` keeps its condition; only `socket` left that rule.
    assert!(rule_names(&out, "SCMP_ACT_ALLOW").contains(&"bind".to_string()));
    let metadata = sniffguard_common::listener::ListenerMetadata::parse(
        out["listenerMetadata"].as_str().unwrap(),
    );
    let carried = metadata.socket_rules.expect("the socket rules travel");
    use sniffguard_common::listener::BaseAction;
    assert_eq!(carried.rules.len(), 3);
    assert_eq!(carried.default, BaseAction::Errno(38));
    assert_eq!(carried.verdict(&[16, 3, 9, 0, 0, 0]), BaseAction::Errno(22));
    assert_eq!(carried.verdict(&[17, 3, 768, 0, 0, 0]), BaseAction::Allow);
    // Rewriting the rewrite puts the rules back and takes them out again.
    assert_eq!(merged(out.clone()), out);
}

#[test]
fn trace_and_log_never_stand_in_for_a_refusal() {
    // A TRACE default: a tracer in the container could continue every stop,
    // so exec, capture sockets and io_uring get sniffguard's rules as under
    // an ALLOW default.
    let traced = merged(serde_json::json!({"defaultAction": "SCMP_ACT_TRACE"}));
    let notified = rule_names(&traced, "SCMP_ACT_NOTIFY");
    assert!(notified.contains(&"execve".to_string()), "{notified:?}");
    assert!(notified.contains(&"socket".to_string()), "{notified:?}");
    assert!(rule_names(&traced, "SCMP_ACT_ERRNO").contains(&"io_uring_setup".to_string()));

    // An unconditional TRACE (or LOG) rule for socket and io_uring: not a
    // refusal either.
    for action in ["SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"] {
        let out = merged(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket", "io_uring_setup", "execve"], "action": action}]
        }));
        let socket = socket_rules(&out);
        assert_eq!(socket.len(), 1, "{action}: {socket:?}");
        assert_eq!(socket[0]["action"], "SCMP_ACT_NOTIFY", "{action}");
        assert!(rule_names(&out, "SCMP_ACT_NOTIFY").contains(&"execve".to_string()));
        assert!(
            rule_names(&out, "SCMP_ACT_ERRNO").contains(&"io_uring_setup".to_string()),
            "{action}"
        );
        assert_eq!(merged(out.clone()), out, "{action}: not idempotent");
    }
}

/// Every rule naming `bpf` in a merged profile.
fn bpf_rules(seccomp: &Value) -> Vec<Value> {
    seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == "bpf"))
        .cloned()
        .collect()
}

/// The NOTIFY rule for `bpf(BPF_PROG_LOAD)` (cmd 5 in args[0]'s low 32 bits).
fn prog_load_notify() -> Value {
    serde_json::json!({
        "names": ["bpf"],
        "action": "SCMP_ACT_NOTIFY",
        "args": [{"index": 0, "value": 0xffff_ffffu64, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]
    })
}

#[test]
fn bpf_program_loads_go_to_the_supervisor_whatever_the_base_profile_allows() {
    // Allow-all default: one conditional NOTIFY rule, nothing else for bpf.
    let open = merged(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(bpf_rules(&open), [prog_load_notify()]);

    // Docker's shape for a container with CAP_SYS_ADMIN / CAP_BPF: bpf allowed
    // outright beside other calls under a refusing default. The name leaves
    // that rule; the allow comes back for every other command, split so that
    // no call matches both it and the NOTIFY rule.
    let docker = merged(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["execve", "execveat", "socket", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["bpf", "perf_event_open"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let bpf = bpf_rules(&docker);
    assert_eq!(bpf.len(), 33, "{bpf:#?}");
    assert_eq!(bpf.last(), Some(&prog_load_notify()));
    for (bit, rule) in bpf[..32].iter().enumerate() {
        assert_eq!(rule["action"], "SCMP_ACT_ALLOW");
        assert_eq!(rule["names"], serde_json::json!(["bpf"]));
        let mask = 1u64 << bit;
        assert_eq!(rule["args"][0]["value"], mask);
        assert_eq!(
            rule["args"][0]["valueTwo"],
            !5u64 & mask,
            "bit {bit} differs from 5's"
        );
    }
    assert!(rule_names(&docker, "SCMP_ACT_ALLOW").contains(&"perf_event_open".to_string()));
    // Rewriting the rewrite changes nothing.
    assert_eq!(merged(docker.clone()), docker);

    // An allow that is also the default's action needs no copy.
    let same = merged(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(bpf_rules(&same), [prog_load_notify()]);
    assert_eq!(merged(same.clone()), same);

    // Refused outright, or by a refusing default: nothing to add.
    for refused in [
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ERRNO"}]}),
    ] {
        let out = merged(refused);
        assert!(
            bpf_rules(&out)
                .iter()
                .all(|r| r["action"] == "SCMP_ACT_ERRNO"),
            "{out:#}"
        );
    }
}

#[test]
fn conditional_bpf_rules_are_refused_with_a_reason() {
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let err = inject::merge_seccomp(
        Some(profile),
        Path::new("/run/sg/seccomp.sock"),
        "staging",
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("argument conditions for bpf"), "{err}");
}

#[test]
fn an_outright_ioctl_allow_is_split_around_siocsifflags_and_joined_again() {
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["ioctl", "read"], "action": "SCMP_ACT_ALLOW"}],
    });
    let merge = |profile: Value| {
        inject::merge_seccomp(
            Some(profile),
            Path::new("/run/sg/seccomp.sock"),
            "staging",
            true,
        )
        .unwrap()
    };
    let once = merge(profile);
    let seccomp = once.as_object().unwrap();
    let ioctl: Vec<&Value> = seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"] == serde_json::json!(["ioctl"]))
        .collect();
    // 32 one-bit ALLOW rules (every other command) and the NOTIFY rule.
    assert_eq!(ioctl.len(), 33, "{ioctl:#?}");
    assert_eq!(
        ioctl
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .count(),
        32
    );
    assert!(rule_names(&once, "SCMP_ACT_ALLOW").contains(&"read".to_string()));
    // A second injection (a retried create) gives the same document.
    assert_eq!(merge(once.clone()), once);
    // Without CAP_NET_ADMIN kept, ioctl stays as the profile wrote it.
    let plain = merged(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["ioctl", "read"], "action": "SCMP_ACT_ALLOW"}],
    }));
    assert!(rule_names(&plain, "SCMP_ACT_ALLOW").contains(&"ioctl".to_string()));
}
