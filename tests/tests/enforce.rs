//! Enforcement through the runtime shim and the supervisor, with runc and with crun.
//!
//! Needs root, the built workspace (`cargo build --workspace`), runc, crun,
//! busybox-static and tcpdump. Each scenario is a function taking the [`Runtime`]; the
//! `per_runtime!` macro at the bottom makes one `#[test]` per runtime
//! (`staging_denies_tcpdump::runc`, `staging_denies_tcpdump::crun`, ...).
//!
//! The built-in policy's environments: `ci` (audit, fail open), `staging` (enforce, fail
//! open), `production` (enforce, fail closed).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use sniffguard_tests::{
    evidence_kinds, is_alert_for, require_root, rootfs, str_at, Bundle, CmdOutput, Container,
    NoSupervisor, Runtime, Supervisor, ALERT_TIMEOUT, CAPTURE_SCRIPT, COMMAND_TIMEOUT, RULE_NAME,
};

/// How long the alert stream must stay quiet before "no more alerts" is concluded.
const QUIET: Duration = Duration::from_millis(500);

/// What the shell says when execve fails with EPERM (runc's Go error text is lowercase;
/// [`CmdOutput::mentions`] ignores case).
const EPERM_TEXT: &str = "Operation not permitted";

/// Waits for a denied sniffer alert about `container`, checks the fields every denial
/// carries, and returns it.
fn wait_denied(sup: &Supervisor, container: &Container, environment: &str) -> Value {
    let id = container.id();
    let alert = sup
        .wait_alert(
            |a| is_alert_for(a, id) && str_at(a, "/action") == Some("denied"),
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| {
            panic!(
                "{}: no denied alert for {id} within {ALERT_TIMEOUT:?}\n{}",
                container.runtime(),
                sup.report()
            )
        });
    assert_eq!(str_at(&alert, "/rule"), Some(RULE_NAME), "{alert}");
    assert_eq!(str_at(&alert, "/environment"), Some(environment), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("enforce"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    assert_eq!(str_at(&alert, "/container/id"), Some(id), "{alert}");
    assert!(
        alert.pointer("/process/pid").is_some_and(Value::is_u64),
        "no process.pid: {alert}"
    );
    assert!(
        alert.pointer("/process/argv").is_some_and(Value::is_array),
        "no process.argv: {alert}"
    );
    alert
}

/// Every sniffer alert about `container`, once the supervisor's output has been quiet for
/// [`QUIET`] (a bounded window to see that no further alert follows).
fn all_alerts_for(sup: &Supervisor, container: &Container) -> Vec<Value> {
    sup.alerts_settled(QUIET, ALERT_TIMEOUT)
        .into_iter()
        .filter(|a| is_alert_for(a, container.id()))
        .collect()
}

/// Runs `script` with `sh -c` in a fresh container of `environment` under `sup`.
fn run_script(
    sup: &Supervisor,
    runtime: Runtime,
    environment: &str,
    script: &str,
) -> (Container, CmdOutput) {
    let bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some(environment));
    let container = Container::new(runtime);
    let out = container.run_via_shim(sup, &bundle);
    (container, out)
}

fn assert_stdout_has(out: &CmdOutput, needles: &[&str], sup: &Supervisor) {
    for needle in needles {
        assert!(
            out.stdout.contains(needle),
            "no {needle:?} in stdout:\n{out}\n{}",
            sup.report()
        );
    }
}

fn staging_denies_tcpdump(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(
        &sup,
        runtime,
        "staging",
        "tcpdump -D; echo tcpdump_rc=$?; \
         ls / >/dev/null; echo ls_rc=$?; \
         sh -c 'echo hi'; \
         busybox true; echo true_rc=$?",
    );
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(
        &out,
        &["tcpdump_rc=126", "ls_rc=0", "hi\n", "true_rc=0"],
        &sup,
    );
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");

    let alert = wait_denied(&sup, &container, "staging");
    assert_eq!(
        str_at(&alert, "/process/exe"),
        Some("/usr/bin/tcpdump"),
        "{alert}"
    );
    let alerts = all_alerts_for(&sup, &container);
    assert_eq!(
        alerts.len(),
        1,
        "{runtime}: expected exactly one alert for {}, got {alerts:#?}",
        container.id()
    );
}

fn staging_denies_tcpdump_via_symlink(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(
        &sup,
        runtime,
        "staging",
        "ln -s /usr/bin/tcpdump /tmp/x || exit 90; /tmp/x -D; echo rc=$?",
    );
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(&out, &["rc=126"], &sup);
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");
    wait_denied(&sup, &container, "staging");
}

fn staging_denies_tcpdump_via_relative_path(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(
        &sup,
        runtime,
        "staging",
        "cd /usr/bin || exit 90; ./tcpdump -D; echo rc=$?",
    );
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(&out, &["rc=126"], &sup);
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");
    wait_denied(&sup, &container, "staging");
}

fn staging_denies_renamed_copy_linking_libpcap(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(
        &sup,
        runtime,
        "staging",
        "cp /usr/bin/tcpdump /tmp/netcheck || exit 90; /tmp/netcheck -D; echo rc=$?",
    );
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(&out, &["rc=126"], &sup);
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");
    let alert = wait_denied(&sup, &container, "staging");
    let kinds = evidence_kinds(&alert);
    assert!(
        kinds.iter().any(|k| k == "links_libpcap"),
        "{runtime}: no links_libpcap evidence: {alert}"
    );
}

/// The supervisor keeps a container's root open between execs; a `chroot`
/// inside the container must make it look the root up again, or the jailed
/// path would be resolved in the wrong tree (here: to nothing, and let run).
fn staging_denies_tcpdump_after_chroot(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(
        rootfs(),
        &[
            "sh",
            "-c",
            "mkdir -p /tmp/jail/bin && cp /usr/bin/tcpdump /tmp/jail/bin/x || exit 90; \
             ls / >/dev/null || exit 91; \
             chroot /tmp/jail /bin/x -D; echo rc=$?",
        ],
        Some("staging"),
    )
    .edit(|spec| {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = spec["process"]["capabilities"][set].as_array_mut() {
                caps.push(serde_json::json!("CAP_SYS_CHROOT"));
            }
        }
    });
    let container = Container::new(runtime);
    let out = container.run_via_shim(&sup, &bundle);
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(&out, &["rc=126"], &sup);
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");
    let alert = wait_denied(&sup, &container, "staging");
    assert!(
        evidence_kinds(&alert).iter().any(|k| k == "links_libpcap"),
        "{runtime}: the jailed copy was not judged by its file: {alert}"
    );
}

fn staging_denies_exec_into_running_container(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(runtime);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());

    // An ordinary exec still works.
    let out = container.exec_via_shim(&sup, &["sh", "-c", "echo ok"]);
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_eq!(out.stdout, "ok\n", "{runtime}: {out}");

    let out = container.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(
        !out.success(),
        "{runtime}: tcpdump exec was not refused: {out}"
    );
    assert!(out.stderr_mentions(EPERM_TEXT), "{runtime}: {out}");
    assert!(
        !out.stdout.contains("Loopback"),
        "{runtime}: tcpdump ran: {out}"
    );
    wait_denied(&sup, &container, "staging");
}

fn staging_refuses_sniffer_entrypoint(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(rootfs(), &["tcpdump", "-D"], Some("staging"));
    let container = Container::new(runtime);
    let out = container.run_via_shim(&sup, &bundle);
    assert!(
        !out.success(),
        "{runtime}: sniffer entrypoint started: {out}"
    );
    assert!(
        !out.stdout.contains("Loopback"),
        "{runtime}: tcpdump ran: {out}"
    );
    wait_denied(&sup, &container, "staging");
}

fn ci_allows_tcpdump_capture(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (_container, out) = run_script(&sup, runtime, "ci", CAPTURE_SCRIPT);
    assert!(out.success(), "{runtime}: {out}\n{}", sup.report());
    assert_stdout_has(&out, &["tcpdump_rc=0", "1 packet captured"], &sup);
}

fn production_fails_closed_without_supervisor(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let nosup = NoSupervisor::new(None);
    let bundle = Bundle::new(rootfs(), &["sh", "-c", "echo started"], Some("production"));
    let container = Container::new(runtime);
    let out = container.run_via_shim(&nosup, &bundle);
    assert!(
        !out.success(),
        "{runtime}: production container started: {out}"
    );
    assert!(!out.stdout.contains("started"), "{runtime}: {out}");
    assert!(out.stderr_mentions("sniffguard"), "{runtime}: {out}");
}

fn ci_fails_open_without_supervisor(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let nosup = NoSupervisor::new(None);
    let bundle = Bundle::new(rootfs(), &["sh", "-c", "echo started"], Some("ci"));
    let container = Container::new(runtime);
    let out = container.run_via_shim(&nosup, &bundle);
    assert!(out.success(), "{runtime}: ci container refused: {out}");
    assert_eq!(out.stdout, "started\n", "{runtime}: {out}");
    assert!(
        out.stderr_mentions("sniffguard"),
        "{runtime}: no warning mentioning sniffguard: {out}"
    );
}

/// `CAP_NET_RAW`'s bit in `/proc/PID/status` capability masks.
const CAP_NET_RAW_BIT: u64 = 1 << 13;

/// The `CapEff`, `CapPrm` and `CapBnd` masks a process printed with
/// `grep ^Cap /proc/self/status`.
fn capability_masks(out: &CmdOutput) -> Vec<(String, u64)> {
    out.stdout
        .lines()
        .filter_map(|line| {
            let (name, hex) = line.split_once(':')?;
            let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
            ["CapEff", "CapPrm", "CapBnd"]
                .contains(&name)
                .then(|| (name.to_string(), mask))
        })
        .collect()
}

/// The capability floor: a staging container's processes hold no
/// `CAP_NET_RAW` (its spec asks for it in every set), and neither does a
/// process exec'd with `--cap CAP_NET_RAW` or with a `--process` document that
/// lists it, as Podman and containerd exec. A ci container keeps it (the
/// control).
fn enforce_keeps_cap_net_raw_out(runtime: Runtime) {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let show = ["grep", "^Cap", "/proc/self/status"];
    for (environment, expect_raw) in [("staging", false), ("ci", true)] {
        let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some(environment));
        let container = Container::new(runtime);
        let out = container.create_detached_via_shim(&sup, &bundle);
        assert!(out.success(), "{runtime}: {out}\n{}", sup.report());

        let plain = container.exec_via_shim(&sup, &show);
        let mut with_cap = container.shim_command(&sup);
        with_cap
            .arg("exec")
            .arg("--cap")
            .arg("CAP_NET_RAW")
            .arg(container.id())
            .args(show);
        let with_cap = sniffguard_tests::run_command(&mut with_cap, COMMAND_TIMEOUT);
        let process = bundle.path().join("process.json");
        let mut document = bundle.spec()["process"].clone();
        document["args"] = serde_json::json!(show);
        std::fs::write(&process, document.to_string()).unwrap();
        let mut with_process = container.shim_command(&sup);
        with_process
            .arg("exec")
            .arg("--process")
            .arg(&process)
            .arg(container.id());
        let with_process = sniffguard_tests::run_command(&mut with_process, COMMAND_TIMEOUT);

        for (how, out) in [
            ("exec", &plain),
            ("exec --cap", &with_cap),
            ("exec --process", &with_process),
        ] {
            assert!(out.success(), "{runtime} {environment} {how}: {out}");
            let masks = capability_masks(out);
            assert_eq!(masks.len(), 3, "{runtime} {environment} {how}: {out}");
            for (set, mask) in masks {
                assert_eq!(
                    mask & CAP_NET_RAW_BIT != 0,
                    expect_raw,
                    "{runtime} {environment} {how}: {set}={mask:x}\n{out}"
                );
            }
        }
        if !expect_raw {
            assert!(
                with_cap.stderr_mentions("CAP_NET_RAW kept out"),
                "{runtime}: the shim did not say it kept CAP_NET_RAW out: {with_cap}"
            );
            let (record, status) = sup.container_status(container.id());
            assert_eq!(
                record["capabilities_dropped"],
                serde_json::json!(["CAP_NET_RAW"]),
                "{runtime}: status does not say so: {status}"
            );
        }
    }
}

/// `restore` through the shim (issue 19, part 4): refused with the reason where
/// the environment enforces (a restored process would not be attached to the
/// seccomp listener), prepared like `create` where it audits.
#[test]
fn restore_is_refused_in_enforce_and_prepared_in_audit() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for (environment, refused) in [("staging", true), ("ci", false)] {
        let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some(environment));
        let container = Container::new(Runtime::Runc);
        let images = sniffguard_tests::temp_dir("sniffguard-checkpoint-");
        let mut restore = container.shim_command(&sup);
        restore
            .arg("restore")
            .arg("--image-path")
            .arg(images.path())
            .arg("--bundle")
            .arg(bundle.path())
            .arg(container.id());
        let out = sniffguard_tests::run_command(&mut restore, COMMAND_TIMEOUT);
        // No checkpoint exists: the restore fails either way; what matters is who
        // refused it.
        assert!(!out.success(), "{environment}: {out}");
        assert_eq!(
            out.stderr_mentions("restore refused"),
            refused,
            "{environment}: {out}"
        );
        let config = std::fs::read_to_string(bundle.config_path()).unwrap();
        assert_eq!(
            config.contains("sniffguard-hook"),
            !refused,
            "{environment}: the bundle was {}prepared: {config}",
            if refused { "" } else { "not " }
        );
    }
}

sniffguard_tests::per_runtime!(
    staging_denies_tcpdump,
    staging_denies_tcpdump_via_symlink,
    staging_denies_tcpdump_via_relative_path,
    staging_denies_renamed_copy_linking_libpcap,
    staging_denies_tcpdump_after_chroot,
    staging_denies_exec_into_running_container,
    staging_refuses_sniffer_entrypoint,
    ci_allows_tcpdump_capture,
    production_fails_closed_without_supervisor,
    ci_fails_open_without_supervisor,
    enforce_keeps_cap_net_raw_out,
);
