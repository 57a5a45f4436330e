//! Section 2, decision latency: several enforce containers at once, every decision's
//! `latency_us` from the supervisor's log, cross-checked against the Prometheus histogram.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use sniffguard_tests::{repo_root, strip_ansi, Bundle, CmdOutput, Container, Runtime, Supervisor};

use crate::helpers::cpu_seconds;
use crate::report::{load_average, verdict, Knobs, Report};
use crate::shared::stats::{median_p99_us, pick};
use crate::shared::{decision_latencies_us, loop_samples, HELPER, WARMUP};
use crate::{P50_TARGET_US, P99_TARGET_US, RUN_TIMEOUT};

/// A free TCP port on 127.0.0.1 (bound, then released for the supervisor).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The built-in policy with Prometheus metrics on `port`.
fn policy_with_metrics(port: u16) -> Option<String> {
    let text = fs::read_to_string(repo_root().join("config").join("sniffguard.toml")).ok()?;
    let commented = "# listen = \"127.0.0.1:9464\"";
    text.contains(commented)
        .then(|| text.replacen(commented, &format!("listen = \"127.0.0.1:{port}\""), 1))
}

/// `GET /metrics`, bounded.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// A sample of a Prometheus text exposition, by exact series name.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Each "decided" line's `latency_us`, and how many answers were not delivered.
fn parse_decisions(log: &str) -> (Vec<u64>, usize) {
    let latencies = decision_latencies_us(log);
    let undelivered = strip_ansi(log)
        .lines()
        .filter(|l| l.contains("answer not delivered"))
        .count();
    (latencies, undelivered)
}

pub(crate) fn decision_latency(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
    let section_load = load_average();
    let port = free_port();
    let policy = policy_with_metrics(port);
    // Only this supervisor logs each decision (the logging costs a little per decision,
    // after the answer).
    std::env::set_var("SNIFFGUARD_LOG", "sniffguard::notify=debug");
    let supervisor = Supervisor::start(policy.as_deref());
    std::env::remove_var("SNIFFGUARD_LOG");

    let per_container = knobs.execs.div_ceil(2).max(1000);
    let execs = per_container.to_string();
    let warmup = WARMUP.to_string();
    let args = [HELPER, "loop", execs.as_str(), warmup.as_str(), "/bin/true"];
    let bundles: Vec<Bundle> = (0..knobs.storm)
        .map(|_| Bundle::new(rootfs, &args, Some("staging")))
        .collect();
    let storm_started = Instant::now();
    let cpu_before = cpu_seconds(supervisor.pid());
    let outputs: Vec<CmdOutput> = thread::scope(|scope| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|bundle| {
                let supervisor = &supervisor;
                scope.spawn(move || {
                    let container = Container::new(Runtime::Runc).with_timeout(RUN_TIMEOUT);
                    container.run_via_shim(supervisor, bundle)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a storm thread panicked"))
            .collect()
    });
    let storm_seconds = storm_started.elapsed().as_secs_f64();
    let storm_cpu = cpu_seconds(supervisor.pid()) - cpu_before;
    let mut exec_samples = Vec::new();
    for out in &outputs {
        assert!(
            out.success(),
            "an enforce storm container failed:\n{out}\n{}",
            supervisor.report()
        );
        exec_samples.extend(loop_samples(out, per_container, "storm"));
    }
    let metrics = policy.as_ref().and_then(|_| scrape(port));
    let (mut latencies, undelivered) = parse_decisions(&supervisor.stderr_log());
    drop(bundles);
    drop(supervisor);
    assert!(
        !latencies.is_empty(),
        "no `decided` lines with latency_us in the supervisor's log"
    );
    latencies.sort_unstable();
    let (exec_median, exec_p99) = median_p99_us(&exec_samples);
    let total_execs = knobs.storm * (per_container + WARMUP);

    report.line("## 2. Seccomp decision latency under an exec storm\n");
    report.line(&format!(
        "{} enforce (`staging`) containers at once, each fork+exec'ing `/bin/true` {} times \
         ({} execs, {:.1} s, ~{:.0} decisions/s). Latency is the supervisor's own measure, \
         from receiving a notification to answering it, one `latency_us` per decision in its \
         debug log (`SNIFFGUARD_LOG=sniffguard::notify=debug`). Load average before: \
         {section_load}.\n",
        knobs.storm,
        per_container + WARMUP,
        total_execs,
        storm_seconds,
        total_execs as f64 / storm_seconds
    ));
    report.line(
        "| decisions | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | answers not delivered |",
    );
    report.line("|---:|---:|---:|---:|---:|---:|---:|");
    report.line(&format!(
        "| {} | {} | {} | {} | {} | {} | {undelivered} |",
        latencies.len(),
        pick(&latencies, 0.5),
        pick(&latencies, 0.9),
        pick(&latencies, 0.99),
        pick(&latencies, 0.999),
        latencies[latencies.len() - 1],
    ));
    report.line("");
    match metrics.as_deref().and_then(|m| {
        Some((
            metric(m, "sniffguard_decision_latency_seconds_count")?,
            metric(m, "sniffguard_decision_latency_seconds_sum")?,
        ))
    }) {
        Some((count, sum)) => report.line(&format!(
            "Cross-check, Prometheus `sniffguard_decision_latency_seconds`: {count:.0} \
             decisions, mean {:.1} µs.\n",
            sum / count.max(1.0) * 1e6
        )),
        None => report.line("(Prometheus histogram not scraped.)\n"),
    }
    report.line(&format!(
        "Supervisor CPU during the storm (container starts included, debug logging \
         included): {:.1} % of a core, {:.0} µs per decision.\n",
        storm_cpu / storm_seconds * 100.0,
        storm_cpu * 1e6 / latencies.len() as f64
    ));
    report.line(&format!(
        "The containers' own view of the same execs: median {exec_median:.1} µs, p99 \
         {exec_p99:.1} µs per fork+exec+wait ({} CPUs shared by {} loops and the supervisor).\n",
        thread::available_parallelism().map_or(0, |n| n.get()),
        knobs.storm
    ));
    let p50 = pick(&latencies, 0.5);
    let p99 = pick(&latencies, 0.99);
    report.target(
        "decision latency p50",
        &format!("≤ {P50_TARGET_US} µs"),
        format!("{p50} µs"),
        verdict(p50 <= P50_TARGET_US),
    );
    report.target(
        "decision latency p99",
        &format!("≤ {P99_TARGET_US} µs"),
        format!("{p99} µs (max {})", latencies[latencies.len() - 1]),
        verdict(p99 <= P99_TARGET_US),
    );
    report.flush_console();
}
