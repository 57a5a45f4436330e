//! Section 5, footprint: the supervisor's memory idle, with synthetic registrations, and
//! after they are gone.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sniffguard_tests::{run_command, sniffguard_bin, ShimTarget, Supervisor};

use crate::helpers::{memory, mib, Memory};
use crate::report::{verdict, Knobs, Report};
use crate::{RSS_BACK_TOLERANCE, RSS_TARGET_MIB};

/// `sniffguard status --json`, or why it failed (the harness's `status` panics).
pub(crate) fn try_status(supervisor: &Supervisor) -> Result<Value, String> {
    let out = run_command(
        Command::new(sniffguard_bin())
            .args(["status", "--json", "--runtime-dir"])
            .arg(supervisor.runtime_dir()),
        Duration::from_secs(30),
    );
    if !out.success() {
        return Err(out.stderr);
    }
    serde_json::from_str(&out.stdout).map_err(|e| format!("not JSON ({e}): {}", out.stdout))
}

/// Memory after letting the supervisor settle.
fn settled_memory(pid: u32) -> Memory {
    thread::sleep(Duration::from_secs(1));
    memory(pid)
}

pub(crate) fn footprint(knobs: &Knobs, report: &mut Report) {
    let supervisor = Supervisor::start(None);
    let pid = supervisor.pid();
    let idle = settled_memory(pid);
    let ids: Vec<String> = (0..knobs.registrations)
        .map(|i| format!("sgbench-synthetic-{}-{i}", std::process::id()))
        .collect();
    let started = Instant::now();
    // `sniffguard status` is asked after every 100 registrations: how far it keeps working.
    let mut status_ok_up_to = None;
    let mut status_failure = None;
    for (n, id) in ids.iter().enumerate() {
        let line = json!({
            "type": "register", "id": id, "bundle": "/x", "pid": null, "cgroup_id": null,
            "namespaces": {}, "annotations": {}, "environment": "ci", "runtime": null,
            "pipeline": {},
        })
        .to_string();
        let answer = supervisor.api_request(&line);
        assert!(answer.contains("\"ok\""), "register {id}: {answer}");
        if (n + 1) % 100 == 0 && status_failure.is_none() {
            match try_status(&supervisor) {
                Ok(status) => {
                    let listed = status
                        .get("containers")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    assert_eq!(
                        listed,
                        n + 1,
                        "status lists {listed} of {} registered",
                        n + 1
                    );
                    status_ok_up_to = Some(n + 1);
                }
                Err(why) => status_failure = Some((n + 1, why)),
            }
        }
    }
    let register_seconds = started.elapsed().as_secs_f64();
    let loaded = settled_memory(pid);
    for id in &ids {
        let answer = supervisor.api_request(&json!({"type": "deregister", "id": id}).to_string());
        assert!(answer.contains("\"ok\""), "deregister {id}: {answer}");
    }
    let left = try_status(&supervisor).map(|status| {
        status
            .get("containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    });
    let after = settled_memory(pid);
    drop(supervisor);

    report.line("## 5. Supervisor footprint\n");
    report.line(&format!(
        "A fresh supervisor; {} synthetic registrations sent over the API socket as the hook \
         sends them (one connection each, {:.2} s in all), then deregistered ({} left). \
         Each figure 1 s after the change, from `/proc/PID/status`.\n",
        knobs.registrations,
        register_seconds,
        match &left {
            Ok(n) => n.to_string(),
            Err(_) => "status unavailable".to_owned(),
        }
    ));
    match (&status_failure, status_ok_up_to) {
        (Some((n, why)), ok) => report.line(&format!(
            "**`sniffguard status` failed with {n} containers registered** (it worked up to \
             {}): `{}`.\n",
            ok.map_or("none tried".to_owned(), |k| k.to_string()),
            why.trim()
        )),
        (None, Some(n)) => report.line(&format!(
            "`sniffguard status` listed every container at each 100 up to {n}.\n"
        )),
        (None, None) => {}
    }
    report.line("| state | VmRSS MiB | RssAnon MiB | VmHWM MiB |");
    report.line("|---|---:|---:|---:|");
    for (name, m) in [
        ("idle".to_owned(), idle),
        (format!("{} registered", knobs.registrations), loaded),
        ("after deregistration".to_owned(), after),
    ] {
        report.line(&format!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            mib(m.rss),
            mib(m.anon),
            mib(m.hwm)
        ));
    }
    report.line("");
    let back = (after.rss as f64 - idle.rss as f64) / idle.rss as f64;
    report.target(
        &format!("RSS with {} containers", knobs.registrations),
        &format!("≤ {RSS_TARGET_MIB:.0} MiB"),
        format!("{:.1} MiB (idle {:.1})", mib(loaded.rss), mib(idle.rss)),
        verdict(mib(loaded.rss) <= RSS_TARGET_MIB),
    );
    report.target(
        "RSS after they are gone",
        "idle ± 10 %",
        format!("{:.1} MiB ({:+.1} % of idle)", mib(after.rss), back * 100.0),
        verdict(back.abs() <= RSS_BACK_TOLERANCE),
    );
    report.flush_console();
}
