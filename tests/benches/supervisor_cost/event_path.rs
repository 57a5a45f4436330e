//! Section 3, event path: audit containers exec as fast as they can or at a paced rate;
//! events, drops and the supervisor's CPU in a window, then loss with the reader stopped.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use sniffguard_tests::{Bundle, Container, Runtime, Supervisor};

use crate::helpers::{cpu_seconds, memory, mib, monotonic_ns, sleep_until_ns};
use crate::report::{load_average, verdict, Knobs, Report};
use crate::shared::HELPER;
use crate::stall::{alert_latency, Stall};
use crate::{CPU_AT_5K_TARGET_PCT, LOSSLESS_RATE_TARGET, RUN_TIMEOUT};

/// Counters and CPU at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    events: u64,
    drops: u64,
    cpu: f64,
}

fn sample(supervisor: &Supervisor) -> Sample {
    let status = supervisor.status();
    let counter = |name: &str| {
        status
            .pointer(&format!("/counters/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Sample {
        at: Instant::now(),
        events: counter("probe_events"),
        drops: counter("ringbuf_drops"),
        cpu: cpu_seconds(supervisor.pid()),
    }
}

/// What happened between two samples.
struct Step {
    label: String,
    seconds: f64,
    events: u64,
    drops: u64,
    cpu: f64,
    load: String,
}

impl Step {
    fn between(label: String, a: Sample, b: Sample) -> Step {
        Step {
            label,
            seconds: (b.at - a.at).as_secs_f64(),
            events: b.events - a.events,
            drops: b.drops - a.drops,
            cpu: b.cpu - a.cpu,
            load: load_average(),
        }
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn cpu_pct(&self) -> f64 {
        self.cpu / self.seconds * 100.0
    }

    fn cpu_ms_per_1000(&self) -> f64 {
        if self.events == 0 {
            f64::NAN
        } else {
            self.cpu * 1000.0 / (self.events as f64 / 1000.0)
        }
    }
}

/// What each audit container of section 3 runs.
#[derive(Clone, Copy)]
enum Load {
    /// `sgbench chain`: a process that execs itself at `rate` execs/s in all (0: as
    /// fast as it can), one exec event per step and no fork.
    Chain { rate: f64 },
    /// `sgbench forks`: fork + exec of `/bin/true` as fast as it can, one
    /// short-lived process per exec.
    Forks,
}

/// Runs `containers` audit containers, each running `load` (a chain at
/// `rate / containers` execs/s) for `lead + window + tail`, and calls `during` once
/// they have started (`lead` after launch); returns what `during` returned and the
/// number of execs the containers reported.
fn run_loads<T>(
    supervisor: &Supervisor,
    rootfs: &Path,
    containers: usize,
    load: Load,
    run_for: Duration,
    during: impl FnOnce(i64) -> T,
) -> (T, u64) {
    // Containers start well within this; one that starts late only lowers the rate.
    let lead_ns: i64 = 1_500_000_000;
    let start = monotonic_ns() + lead_ns;
    let end = start + run_for.as_nanos() as i64;
    let (start_text, end_text) = (start.to_string(), end.to_string());
    let (mode, last) = match load {
        Load::Chain { rate } if rate > 0.0 => ("chain", format!("{:.3}", rate / containers as f64)),
        Load::Chain { .. } => ("chain", "0".to_owned()),
        Load::Forks => ("forks", "/bin/true".to_owned()),
    };
    // The helper's last line: `chain execs=N …` or `forks execs=N`.
    let summary = format!("{mode} execs=");
    let args = [
        HELPER,
        mode,
        start_text.as_str(),
        end_text.as_str(),
        last.as_str(),
    ];
    let bundles: Vec<Bundle> = (0..containers)
        .map(|_| Bundle::new(rootfs, &args, Some("ci")))
        .collect();
    thread::scope(|scope| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|bundle| {
                scope.spawn(move || {
                    let container = Container::new(Runtime::Runc).with_timeout(RUN_TIMEOUT);
                    container.run_via_shim(supervisor, bundle)
                })
            })
            .collect();
        let result = during(start);
        let mut execs = 0;
        for handle in handles {
            let out = handle.join().expect("a load thread panicked");
            assert!(out.success(), "an exec load failed:\n{out}");
            execs += out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix(summary.as_str()))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {summary} summary:\n{out}"));
        }
        (result, execs)
    })
}

/// Sends SIGCONT to the supervisor when dropped, so that a panic never leaves it stopped.
struct Resume(Pid);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

pub(crate) fn event_path(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
    let section_load = load_average();
    let supervisor = Supervisor::start(None);
    let containers = knobs.storm;
    let settle = Duration::from_millis(500);
    let window = knobs.window;
    // The supervisor's own cost with nothing to follow (its reader polls the ring).
    thread::sleep(Duration::from_secs(1));
    let a = sample(&supervisor);
    thread::sleep(window);
    let idle = Step::between("no containers (idle)".to_owned(), a, sample(&supervisor));
    println!(
        "  event path: idle: supervisor {:.2} % of a core",
        idle.cpu_pct()
    );
    // One row: `load` in every container, measured over `window` once it has settled.
    let measure = |label: String, load: Load| {
        let run_for = settle + window + Duration::from_millis(500);
        let (step, execs) = run_loads(&supervisor, rootfs, containers, load, run_for, |start| {
            sleep_until_ns(start + settle.as_nanos() as i64);
            let a = sample(&supervisor);
            thread::sleep(window);
            let b = sample(&supervisor);
            Step::between(label, a, b)
        });
        println!(
            "  event path: {}: {:.0} events/s, {} dropped, supervisor {:.1} % of a core ({execs} execs in all; load {})",
            step.label,
            step.rate(),
            step.drops,
            step.cpu_pct(),
            step.load
        );
        step
    };
    let mut steps = Vec::new();
    for rate in [1000.0, 2500.0, 5000.0, 0.0] {
        let label = if rate > 0.0 {
            format!("paced {rate:.0}/s")
        } else {
            "as fast as possible".to_owned()
        };
        steps.push(measure(label, Load::Chain { rate }));
    }
    // Short-lived processes, as builds and scripts make them: most have exited by
    // the time their event is read, so the reader resolves their path instead of
    // reading /proc/PID/exe.
    let forks = measure(
        "fork + exec of `/bin/true`, as fast as possible".to_owned(),
        Load::Forks,
    );
    let after_storm = memory(supervisor.pid());

    // Issue 18: the full-rate row again with one more container whose exec's file
    // never answers the supervisor's open (one classification thread blocked for the
    // whole row), and a renamed tcpdump's alert latency with and without it.
    let plain_latency = alert_latency(&supervisor, rootfs);
    let stall = Stall::start(&supervisor, rootfs, 600);
    let stalled_latency = alert_latency(&supervisor, rootfs);
    let stalled_row = measure(
        "as fast as possible, + 1 container stalled on a FUSE file".to_owned(),
        Load::Chain { rate: 0.0 },
    );
    drop(stall);
    let ms = |latency: Option<Duration>| {
        latency.map_or("no alert within the bound".to_owned(), |l| {
            format!("{:.0} ms", l.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "  event path: tcpdump alert latency (container start to alert): {} without a stall, {} with one",
        ms(plain_latency),
        ms(stalled_latency)
    );

    // The reader stopped under the same load: the ring fills and the kernel counts drops.
    let stall = Duration::from_secs(3);
    let pid = Pid::from_raw(i32::try_from(supervisor.pid()).expect("pid fits i32"));
    let (stalled, _) = run_loads(
        &supervisor,
        rootfs,
        containers,
        Load::Chain { rate: 0.0 },
        settle + stall + Duration::from_secs(2),
        |start| {
            sleep_until_ns(start + settle.as_nanos() as i64);
            let a = sample(&supervisor);
            let resume = Resume(pid);
            kill(pid, Signal::SIGSTOP).expect("SIGSTOP the supervisor");
            thread::sleep(stall);
            drop(resume);
            // Whatever the reader finds now it drains at once; the kernel kept counting.
            thread::sleep(Duration::from_millis(500));
            let b = sample(&supervisor);
            Step::between("reader stopped 3 s, as fast as possible".to_owned(), a, b)
        },
    );
    drop(supervisor);

    report.line("## 3. Event path: exec events through the ring buffer (audit)\n");
    report.line(&format!(
        "{containers} audit (`ci`) containers, each a process that execs itself \
         (`sgbench chain`, one exec event per step, no fork) paced to a share of the \
         target rate, or as fast as it can; then the same containers fork and exec a \
         short-lived `/bin/true` as fast as they can (`sgbench forks`: most processes \
         have exited before their event is read). Each row is a {}-s window while they run: \
         exec events the probes submitted (`probe_events`), events lost \
         (`ringbuf_drops`), and the supervisor's CPU time (`utime + stime`, \
         `/proc/PID/stat`, 10-ms ticks). Load average before: {section_load}.\n",
        window.as_secs()
    ));
    report.line("| load | exec events/s | lost | supervisor CPU, % of a core | CPU ms per 1,000 events | load average after |");
    report.line("|---|---:|---:|---:|---:|---|");
    report.line(&format!(
        "| {} | {:.0} | {} | {:.2} | — | {} |",
        idle.label,
        idle.rate(),
        idle.drops,
        idle.cpu_pct(),
        idle.load
    ));
    for s in steps.iter().chain([&forks]) {
        report.line(&format!(
            "| {} | {:.0} | {} | {:.1} | {:.1} | {} |",
            s.label,
            s.rate(),
            s.drops,
            s.cpu_pct(),
            s.cpu_ms_per_1000(),
            s.load
        ));
    }
    report.line(&format!(
        "| {} | {:.0} | {} | {:.1} | {:.1} | {} |",
        stalled_row.label,
        stalled_row.rate(),
        stalled_row.drops,
        stalled_row.cpu_pct(),
        stalled_row.cpu_ms_per_1000(),
        stalled_row.load
    ));
    report.line(&format!(
        "| {} | {:.0} (submitted) | {} | {:.1} | — | {} |",
        stalled.label,
        stalled.rate(),
        stalled.drops,
        stalled.cpu_pct(),
        stalled.load
    ));
    report.line("");
    let fastest = &steps[steps.len() - 1];
    report.line(&format!(
        "A file system that never answers (issue 18): with one more container whose \
         exec's file the supervisor cannot open (a FUSE server that stopped; one \
         classification thread blocked for the whole row, given up after the 2-s bound), \
         the full-rate row followed **{:.0} events/s with {} lost** against {:.0}/s with {} \
         lost without it (ratio {:.2}). A renamed tcpdump's alert, timed from its \
         container's start (the start itself is most of it): **{}** without the stall, \
         **{}** with it.\n",
        stalled_row.rate(),
        stalled_row.drops,
        fastest.rate(),
        fastest.drops,
        stalled_row.rate() / fastest.rate(),
        ms(plain_latency),
        ms(stalled_latency)
    ));
    let lossless: Vec<&Step> = steps.iter().filter(|s| s.drops == 0).collect();
    let max_lossless = lossless.iter().map(|s| s.rate()).fold(0.0, f64::max);
    let max_rate = steps.iter().map(Step::rate).fold(0.0, f64::max);
    let first_loss = steps.iter().find(|s| s.drops > 0);
    let total_events: u64 = steps.iter().map(|s| s.events).sum();
    let total_cpu: f64 = steps.iter().map(|s| s.cpu).sum();
    let ms_per_1000 = total_cpu * 1000.0 / (total_events as f64 / 1000.0);
    // What the events themselves cost: CPU above idle, per event.
    let total_seconds: f64 = steps.iter().map(|s| s.seconds).sum();
    let marginal = (total_cpu - idle.cpu / idle.seconds * total_seconds).max(0.0) * 1000.0
        / (total_events as f64 / 1000.0);
    let capacity = 1000.0 / marginal * 1000.0;
    report.line(&format!(
        "Highest exec rate followed with zero loss: **{max_lossless:.0}/s**; the highest \
         rate {containers} containers could make on this machine was {max_rate:.0}/s (an \
         exec costs a few hundred µs here). Supervisor CPU over all rows: \
         **{ms_per_1000:.1} ms per 1,000 events**, of which {marginal:.1} ms above its idle \
         cost ({:.2} % of a core): a free core would follow ~{capacity:.0} events/s before \
         the ring (4 MiB) starts to fill.",
        idle.cpu_pct()
    ));
    match first_loss {
        Some(s) => report.line(&format!(
            "First loss with the reader running: at {} ({:.0}/s, {} lost).\n",
            s.label,
            s.rate(),
            s.drops
        )),
        None => report.line(&format!(
            "No loss with the reader running at any reachable rate. With the reader \
             stopped for 3 s under full load the kernel counted {} lost events after the \
             ring filled: loss is reachable, and counted, only when the reader cannot run.\n",
            stalled.drops
        )),
    }
    report.line(&format!(
        "Supervisor memory after these storms: VmRSS {:.1} MiB (peak {:.1} MiB).\n",
        mib(after_storm.rss),
        mib(after_storm.hwm)
    ));
    let lossless_verdict = if max_lossless >= LOSSLESS_RATE_TARGET {
        "met"
    } else if first_loss.is_none() {
        "not reachable here (no loss at the highest rate)"
    } else {
        "**missed**"
    };
    report.target(
        "exec events followed with zero loss",
        &format!("≥ {LOSSLESS_RATE_TARGET:.0}/s"),
        format!("{max_lossless:.0}/s with 0 lost (highest reachable {max_rate:.0}/s)"),
        lossless_verdict,
    );
    report.line(&format!(
        "Short-lived processes, fork + exec of `/bin/true`: {:.1} ms per 1,000 events; at \
         5,000 such execs/s the supervisor would take ~{:.0} % of a core. The totals above \
         and the target line below are for exec chains.\n",
        forks.cpu_ms_per_1000(),
        forks.cpu_ms_per_1000() * 5.0 / 10.0
    ));
    let at_5k = ms_per_1000 * 5.0 / 10.0;
    let measured_5k = steps
        .iter()
        .find(|s| s.label == "paced 5000/s" && s.rate() >= 4500.0)
        .map(Step::cpu_pct);
    let cpu_text = match measured_5k {
        Some(pct) => format!("{pct:.1} % measured at 5,000/s"),
        None => {
            format!("{at_5k:.1} % ({ms_per_1000:.1} ms per 1,000 events × 5; 5,000/s not reached)")
        }
    };
    report.target(
        "supervisor CPU at 5,000 execs/s",
        &format!("< {CPU_AT_5K_TARGET_PCT:.0} % of a core"),
        cpu_text,
        verdict(measured_5k.unwrap_or(at_5k) < CPU_AT_5K_TARGET_PCT),
    );
    report.flush_console();
}
