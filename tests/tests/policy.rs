//! The policy in action: environment rules, `check-config`, freeze and
//! forensics, the webhook and metrics, break-glass grants and flood control.
//!
//! Needs root and the built workspace; real runc containers through the shim.
//! Set `UPDATE_GOLDEN=1` to rewrite the `check-config` golden files.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sniffguard_tests::{
    is_alert_for, repo_root, require_root, rootfs, run_command, sniffguard_bin, str_at, temp_dir,
    Bundle, Container, DirTarget, Runtime, ShimTarget, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};

/// Polls `check` every 20 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_action(sup: &Supervisor, id: &str, action: &str) -> Value {
    sup.wait_alert(
        |a| is_alert_for(a, id) && str_at(a, "/action") == Some(action),
        ALERT_TIMEOUT,
    )
    .unwrap_or_else(|| panic!("no {action} alert for {id}\n{}", sup.report()))
}

const THREE_ENVIRONMENTS: &str = r#"
default_environment = "ci"

[[rules]]
environment = "production"
namespace = "prod-*"

[[rules]]
environment = "staging"
namespace = "stage"

[environments.ci]
mode = "audit"

[environments.staging]
mode = "enforce"

[environments.production]
mode = "enforce"
fail = "closed"
"#;

#[test]
fn namespace_rules_drive_containers_to_their_environment() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(THREE_ENVIRONMENTS));
    // (namespace, the workload's own environment annotation, the environment
    // it must get, how the alert says it was chosen, what tcpdump gets)
    for (namespace, annotation, environment, chosen_by, expected_rc, action) in [
        ("prod-eu", None, "production", "rule 1", "rc=126", "denied"),
        ("stage", None, "staging", "rule 2", "rc=126", "denied"),
        ("dev", None, "ci", "default_environment", "rc=0", "allowed"),
        // A workload cannot annotate itself out of the operator's rule...
        (
            "prod-eu",
            Some("ci"),
            "production",
            "rule 1; the annotation's \"ci\" was ignored",
            "rc=126",
            "denied",
        ),
        // ...but may make itself stricter.
        (
            "stage",
            Some("production"),
            "production",
            "annotation, stricter than \"staging\" from rule 2",
            "rc=126",
            "denied",
        ),
    ] {
        let mut bundle = Bundle::new(
            rootfs(),
            &["sh", "-c", "tcpdump -D >/dev/null 2>&1; echo rc=$?"],
            None,
        )
        .annotation("io.kubernetes.pod.namespace", namespace);
        if let Some(wanted) = annotation {
            bundle = bundle.annotation("sniffguard.io/environment", wanted);
        }
        let container = Container::new(Runtime::Runc);
        let out = container.run_via_shim(&sup, &bundle);
        assert!(
            out.stdout.contains(expected_rc),
            "{namespace} {annotation:?}: {out}\n{}",
            sup.report()
        );
        let alert = wait_action(&sup, container.id(), action);
        assert_eq!(str_at(&alert, "/environment"), Some(environment), "{alert}");
        let said = str_at(&alert, "/container/environment_chosen_by").unwrap_or_default();
        assert!(
            said.starts_with(chosen_by),
            "{namespace} {annotation:?}: {alert}"
        );
    }
}

#[test]
fn check_config_reports_every_error_with_line_and_column() {
    let dir = repo_root().join("tests/golden/check-config");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5);
    for input in inputs {
        let name = input.file_name().unwrap().to_str().unwrap().to_owned();
        let out = run_command(
            Command::new(sniffguard_bin())
                .arg("check-config")
                .arg(&name)
                .current_dir(&dir),
            COMMAND_TIMEOUT,
        );
        assert!(!out.success(), "{name} was accepted: {out}");
        let expected_path = input.with_extension("expected");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &out.stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1)",
                expected_path.display()
            )
        });
        assert_eq!(out.stderr, expected, "{name}");
        assert!(
            out.stderr.contains("line "),
            "{name}: no line in {}",
            out.stderr
        );
    }
    // The shipped policy passes.
    let ok = run_command(
        Command::new(sniffguard_bin())
            .arg("check-config")
            .arg(repo_root().join("config/sniffguard.toml")),
        COMMAND_TIMEOUT,
    );
    assert!(ok.success(), "{ok}");
}

/// Whether the container's cgroup is frozen: its v1 freezer state, or on a
/// v2 host its `cgroup.events`.
fn freezer_state(id: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/{id}/freezer.state"))
        .ok()
        .map(|s| s.trim().to_owned())
        .or_else(|| {
            let events =
                std::fs::read_to_string(format!("/sys/fs/cgroup/{id}/cgroup.events")).ok()?;
            Some(
                if events.contains("frozen 1") {
                    "FROZEN"
                } else {
                    "THAWED"
                }
                .to_owned(),
            )
        })
}

/// Thaws a container when dropped (declared after the container guard, so it
/// runs first).
struct ThawOnDrop(String);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        thaw(&self.0);
    }
}

fn thaw(id: &str) {
    let _ = std::fs::write(
        format!("/sys/fs/cgroup/freezer/{id}/freezer.state"),
        "THAWED",
    );
    let _ = std::fs::write(format!("/sys/fs/cgroup/{id}/cgroup.freeze"), "0");
}

/// Issue 19, part 4: a tcpdump retried in a loop in an environment that writes
/// forensic records gets at most the budget's records; the rest are counted
/// and said in their alerts.
#[test]
fn forensic_records_stay_within_their_budget() {
    if !require_root() {
        return;
    }
    const TRIES: u64 = 12;
    const BUDGET: u64 = 3;
    let evidence_dir = temp_dir("sniffguard-forensics-");
    let policy = format!(
        r#"
default_environment = "production"
[environments.production]
mode = "enforce"
responses = ["alert", "deny", "forensics"]
[forensics]
dir = "{}"
per_container = {BUDGET}
window_seconds = 3600
"#,
        evidence_dir.path().display()
    );
    let sup = Supervisor::start(Some(&policy));
    let script =
        format!("i=0; while [ $i -lt {TRIES} ]; do tcpdump -D; i=$((i+1)); done; echo done");
    let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some("production"));
    let container = Container::new(Runtime::Runc);
    let out = container.run_via_shim(&sup, &bundle);
    assert!(out.stdout.contains("done"), "{out}");
    let counter = |name: &str| sup.status()["counters"][name].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(20), || counter("forensics_written")
            + counter("forensics_skipped")
            >= TRIES),
        "not every refusal reached the forensics step\n{}",
        sup.report()
    );
    let records = std::fs::read_dir(evidence_dir.path()).unwrap().count() as u64;
    assert_eq!(records, BUDGET, "{}", sup.report());
    assert_eq!(counter("forensics_written"), BUDGET);
    assert_eq!(counter("forensics_skipped"), TRIES - BUDGET);
    let skipped = sup.wait_alert(
        |a| {
            is_alert_for(a, container.id())
                && a["responses"].as_array().is_some_and(|r| {
                    r.iter().any(|r| {
                        r.as_str()
                            .is_some_and(|r| r.starts_with("forensics skipped"))
                    })
                })
        },
        ALERT_TIMEOUT,
    );
    assert!(
        skipped.is_some(),
        "no alert says a record was skipped\n{}",
        sup.report()
    );
}

#[test]
fn production_freeze_and_forensics() {
    if !require_root() {
        return;
    }
    let evidence_dir = temp_dir("sniffguard-forensics-");
    let policy = format!(
        r#"
default_environment = "production"
[environments.production]
mode = "enforce"
fail = "closed"
responses = ["alert", "deny", "freeze", "forensics"]
[forensics]
dir = "{}"
"#,
        evidence_dir.path().display()
    );
    let sup = Supervisor::start(Some(&policy));
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("production"))
        .env("DB_PASSWORD=hunter2")
        .env("API_TOKEN=abc123")
        .env("GREETING=hello");
    let container = Arc::new(Container::new(Runtime::Runc));
    let created = container.create_detached_via_shim(&sup, &bundle);
    assert!(created.success(), "{created}");
    // The exec is refused and the container frozen at once, so `runc exec`
    // only returns once the test thaws it: run it aside. The guard thaws the
    // container even if an assertion fails, so that it can be deleted.
    let _thaw = ThawOnDrop(container.id().to_owned());
    let target = DirTarget::of(&sup);
    let execer = {
        let container = container.clone();
        std::thread::spawn(move || container.exec_via_shim(&target, &["tcpdump", "-D"]))
    };
    let alert = wait_action(&sup, container.id(), "denied");
    let responses: Vec<&str> = alert["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        responses.contains(&"freeze") && responses.contains(&"forensics"),
        "{alert}"
    );
    let mut state = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            state = freezer_state(container.id());
            state.as_deref() == Some("FROZEN")
        }),
        "freezer state {state:?}: {alert}"
    );
    let record_path = str_at(&alert, "/forensics")
        .expect("forensics path")
        .to_owned();
    assert!(
        Path::new(&record_path).starts_with(evidence_dir.path()),
        "{record_path}"
    );
    let record: Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let env = &record["environment_variables"];
    assert_eq!(env["DB_PASSWORD"], "[REDACTED]", "{record}");
    assert_eq!(env["API_TOKEN"], "[REDACTED]", "{record}");
    assert_eq!(env["GREETING"], "hello", "{record}");
    assert!(
        record["mounts"].as_str().unwrap().contains(" / "),
        "{record}"
    );
    assert!(record["sockets"].get("tcp").is_some(), "{record}");
    assert!(
        record["timeline"].as_array().unwrap().len() >= 2,
        "{record}"
    );
    assert_eq!(record["binary"]["path"], "/usr/bin/tcpdump", "{record}");
    // Thaw so that the exec and the container can finish.
    thaw(container.id());
    let out = execer.join().unwrap();
    assert!(!out.success(), "{out}");
}

/// A loopback HTTP receiver that records each request body.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        let mut reader = BufReader::new(stream);
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_ok() {
                            b.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                        }
                        let mut stream = reader.into_inner();
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            port,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn webhook_and_metrics() {
    if !require_root() {
        return;
    }
    let mut receiver = Receiver::start();
    let metrics_port = free_port();
    let policy = format!(
        r#"
default_environment = "staging"
[environments.staging]
mode = "enforce"
[alerts.webhook]
url = "http://127.0.0.1:{}/alerts"
timeout_ms = 300
attempts = 2
[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        receiver.port
    );
    let sup = Supervisor::start(Some(&policy));
    let before = scrape(metrics_port);
    assert!(
        before.contains("sniffguard_decision_latency_seconds"),
        "{before}"
    );

    let first = Container::new(Runtime::Runc);
    let out = first.run_via_shim(
        &sup,
        &Bundle::new(
            rootfs(),
            &["sh", "-c", "tcpdump -D; echo rc=$?"],
            Some("staging"),
        ),
    );
    assert!(out.stdout.contains("rc=126"), "{out}");
    assert!(
        eventually(ALERT_TIMEOUT, || receiver
            .bodies
            .lock()
            .unwrap()
            .iter()
            .any(
                |b| b.contains(first.id()) && b.contains("net_sniff_tool_exec")
            )),
        "the receiver got no alert\n{}",
        sup.report()
    );
    let after = scrape(metrics_port);
    assert!(
        metric(&after, "sniffguard_decisions_total{") >= 1.0,
        "{after}"
    );
    assert!(
        metric(&after, "sniffguard_decision_latency_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(after.contains("sniffguard_attached_containers"), "{after}");

    // The receiver goes away: decisions go on, the failure is counted.
    receiver.stop();
    let second = Container::new(Runtime::Runc);
    let out = second.run_via_shim(
        &sup,
        &Bundle::new(
            rootfs(),
            &["sh", "-c", "tcpdump -D; echo rc=$?"],
            Some("staging"),
        ),
    );
    assert!(out.stdout.contains("rc=126"), "{out}");
    wait_action(&sup, second.id(), "denied");
    assert!(
        eventually(Duration::from_secs(15), || sup.counter("webhook_failures")
            >= 1),
        "no webhook failure counted\n{}",
        sup.report()
    );
    assert!(metric(&scrape(metrics_port), "sniffguard_webhook_failures_total") >= 1.0);
}

/// `sniffguard allow` takes a full id, a unique prefix or the runtime's name
/// of an attached container, and refuses anything else instead of printing
/// "allowed" for a grant that allows nothing.
#[test]
fn a_grant_names_one_attached_container() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"))
        .annotation("io.kubernetes.container.name", "web-1");
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{out}");
    let allow = |name: &str| {
        run_command(
            Command::new(sniffguard_bin())
                .args([
                    "allow",
                    "--container",
                    name,
                    "--for",
                    "1m",
                    "--reason",
                    "test",
                    "--runtime-dir",
                ])
                .arg(sup.runtime_dir()),
            COMMAND_TIMEOUT,
        )
    };
    let missing = allow("no-such-container");
    assert!(!missing.success(), "{missing}");
    assert!(
        missing.stderr.contains("no attached container"),
        "{missing}"
    );
    for name in [
        "web-1",
        &container.id()[..container.id().len() - 2],
        container.id(),
    ] {
        let granted = allow(name);
        assert!(granted.success(), "{name}: {granted}");
        let status = sup.status();
        assert_eq!(
            status["grants"][0]["container"],
            container.id(),
            "{name}: {status}"
        );
    }
}

#[test]
fn a_grant_lets_one_container_sniff_for_a_while() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let granted = Container::new(Runtime::Runc);
    let neighbour = Container::new(Runtime::Runc);
    // The bundles must outlive the containers: `runc exec` works in them.
    let bundles: Vec<Bundle> = (0..2)
        .map(|_| Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")))
        .collect();
    for (c, bundle) in [&granted, &neighbour].into_iter().zip(&bundles) {
        let out = c.create_detached_via_shim(&sup, bundle);
        assert!(out.success(), "{out}");
    }
    let allow = run_command(
        Command::new(sniffguard_bin())
            .args([
                "allow",
                "--container",
                granted.id(),
                "--for",
                "4s",
                "--reason",
                "debugging a DNS issue",
                "--by",
                "alice",
                "--runtime-dir",
            ])
            .arg(sup.runtime_dir()),
        COMMAND_TIMEOUT,
    );
    assert!(allow.success(), "{allow}");
    let status = sup.status();
    assert_eq!(status["grants"][0]["container"], granted.id(), "{status}");

    let ran = granted.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(ran.success(), "granted container: {ran}");
    let alert = wait_action(&sup, granted.id(), "allowed_by_grant");
    // Who asked, as the kernel saw the caller; `--by` is kept as a note.
    let by = str_at(&alert, "/exception/by").unwrap_or_default();
    assert!(
        by.starts_with("uid 0 pid ")
            && by.contains("sniffguard allow")
            && by.ends_with("note: alice"),
        "{alert}"
    );
    let refused = neighbour.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(!refused.success(), "neighbour: {refused}");
    wait_action(&sup, neighbour.id(), "denied");

    assert!(
        eventually(Duration::from_secs(15), || sup.status()["grants"]
            .as_array()
            .is_some_and(Vec::is_empty)),
        "the grant did not expire"
    );
    let after = granted.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(!after.success(), "after expiry: {after}");
    wait_action(&sup, granted.id(), "denied");
}

#[test]
fn a_retry_loop_is_decided_every_time_but_alerted_a_bounded_number_of_times() {
    if !require_root() {
        return;
    }
    const TRIES: u64 = 10_000;
    let policy = r#"
default_environment = "staging"
[environments.staging]
mode = "enforce"
[alerts.flood]
burst = 5
interval_seconds = 5
"#;
    let sup = Supervisor::start(Some(policy));
    let container = Container::new(Runtime::Runc).with_timeout(Duration::from_secs(600));
    let script = format!(
        "i=0; n=0; while [ $i -lt {TRIES} ]; do tcpdump -D 2>/dev/null || n=$((n+1)); i=$((i+1)); done; echo refused=$n"
    );
    let started = Instant::now();
    let out = container.run_via_shim(
        &sup,
        &Bundle::new(rootfs(), &["sh", "-c", &script], Some("staging")),
    );
    assert!(out.stdout.contains(&format!("refused={TRIES}")), "{out}");
    // Every attempt was refused; the alerts are the burst plus one summary per
    // window, whose counts add up to every attempt.
    let mut total = 0;
    assert!(
        eventually(Duration::from_secs(20), || {
            let alerts: Vec<Value> = sup
                .alerts_so_far()
                .into_iter()
                .filter(|a| is_alert_for(a, container.id()))
                .collect();
            total = alerts
                .iter()
                .map(|a| a.get("count").and_then(Value::as_u64).unwrap_or(1))
                .sum::<u64>();
            total == TRIES
        }),
        "alerts account for {total} of {TRIES} attempts\n{}",
        sup.report()
    );
    let lines = sup
        .alerts_so_far()
        .into_iter()
        .filter(|a| is_alert_for(a, container.id()))
        .count();
    // Per 5 s window: the burst of 5 and one summary.
    let windows = started.elapsed().as_secs() / 5 + 2;
    assert!(
        (lines as u64) <= windows * 6,
        "{lines} alert lines for one retry loop over {windows} windows"
    );
    assert!(
        lines < TRIES as usize / 10,
        "{lines} alert lines for {TRIES} attempts"
    );
}

#[test]
fn alert_file_follows_logrotate_and_events_stream_live() {
    if !require_root() {
        return;
    }
    let logs = temp_dir("sniffguard-alert-logs-");
    let file = logs.path().join("alerts.jsonl");
    let policy = format!(
        r#"
default_environment = "staging"
[environments.staging]
mode = "enforce"
[alerts]
file = "{}"
format = "falco"
"#,
        file.display()
    );
    let sup = Supervisor::start(Some(&policy));
    // A live subscriber, as `sniffguard events --follow` runs for an operator.
    let mut follower = Command::new(sniffguard_bin())
        .args(["events", "--follow", "--runtime-dir"])
        .arg(sup.runtime_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert!(
        eventually(ALERT_TIMEOUT, || sup.counter("subscribers") >= 1),
        "the follower never subscribed"
    );

    let run = |tag: &str| {
        let c = Container::new(Runtime::Runc);
        let out = c.run_via_shim(
            &sup,
            &Bundle::new(
                rootfs(),
                &["sh", "-c", "tcpdump -D; echo rc=$?"],
                Some("staging"),
            ),
        );
        assert!(out.stdout.contains("rc=126"), "{tag}: {out}");
        c
    };
    let first = run("first");
    let followed = rx
        .recv_timeout(ALERT_TIMEOUT)
        .expect("events --follow printed nothing");
    let followed: Value = serde_json::from_str(&followed).unwrap();
    assert_eq!(followed["rule"], "net_sniff_tool_exec", "{followed}");
    assert_eq!(
        followed["output_fields"]["container.id"],
        first.id(),
        "{followed}"
    );
    assert_eq!(followed["priority"], "Critical", "{followed}");
    // Without --follow: the alerts kept in memory, then the command ends.
    let recent = run_command(
        Command::new(sniffguard_bin())
            .arg("events")
            .arg("--runtime-dir")
            .arg(sup.runtime_dir()),
        COMMAND_TIMEOUT,
    );
    assert!(recent.success(), "{recent}");
    assert!(
        recent.stdout.lines().any(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|alert| alert["output_fields"]["container.id"] == first.id())
        }),
        "events printed no alert of {}: {recent}",
        first.id()
    );
    assert!(
        eventually(ALERT_TIMEOUT, || std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains(first.id()))),
        "no alert in {}",
        file.display()
    );
    // logrotate: move the file away, then SIGHUP.
    let rotated = logs.path().join("alerts.jsonl.1");
    std::fs::rename(&file, &rotated).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        eventually(ALERT_TIMEOUT, || file.exists()),
        "the alert file was not reopened"
    );
    let second = run("second");
    assert!(
        eventually(ALERT_TIMEOUT, || std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains(second.id()))),
        "no alert in the reopened file"
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains(second.id()),
        "the rotated file kept receiving alerts"
    );
    let _ = follower.kill();
    let _ = follower.wait();
}
