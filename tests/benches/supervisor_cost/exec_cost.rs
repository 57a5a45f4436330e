//! Section 1, exec cost: plain runc, audit and enforce, interleaved round by round.

use std::path::Path;

use sniffguard_tests::{Bundle, Container, Runtime, Supervisor};

use crate::helpers::{context_switches, cpu_seconds};
use crate::report::{load_average, verdict, Knobs, Report};
use crate::shared::stats::{median_f64, median_p99_us, range};
use crate::shared::{loop_samples, HELPER, WARMUP};
use crate::{AUDIT_RATIO_TARGET, ENFORCE_RATIO_TARGET, RUN_TIMEOUT};

pub(crate) fn exec_cost(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
    let section_load = load_average();
    let supervisor = Supervisor::start(None);
    let execs = knobs.execs.to_string();
    let warmup = WARMUP.to_string();
    let args = [HELPER, "loop", execs.as_str(), warmup.as_str(), "/bin/true"];
    let configs: [(&str, Option<&str>); 3] = [
        ("plain runc", None),
        ("audit (`ci`: eBPF only)", Some("ci")),
        ("enforce (`staging`: seccomp + eBPF)", Some("staging")),
    ];
    let bundles: Vec<Bundle> = configs
        .iter()
        .map(|(_, env)| Bundle::new(rootfs, &args, *env))
        .collect();
    // samples[config][round]
    let mut samples: Vec<Vec<Vec<u64>>> = vec![Vec::new(); configs.len()];
    // Where the added time goes, summed over each configuration's runs: the
    // supervisor's CPU seconds and the host's context switches.
    let mut supervisor_cpu = vec![0.0f64; configs.len()];
    let mut switches = vec![0u64; configs.len()];
    for round in 0..knobs.rounds {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(round % configs.len());
        for &i in &order {
            let container = Container::new(Runtime::Runc).with_timeout(RUN_TIMEOUT);
            let (cpu_before, switches_before) = (cpu_seconds(supervisor.pid()), context_switches());
            let out = match configs[i].1 {
                None => container.run_plain(&bundles[i]),
                Some(_) => container.run_via_shim(&supervisor, &bundles[i]),
            };
            supervisor_cpu[i] += cpu_seconds(supervisor.pid()) - cpu_before;
            switches[i] += context_switches().saturating_sub(switches_before);
            assert!(
                out.success(),
                "{}: the exec loop failed:\n{out}\n{}",
                configs[i].0,
                supervisor.report()
            );
            samples[i].push(loop_samples(&out, knobs.execs, configs[i].0));
        }
        println!(
            "  exec cost: round {}/{} done (load {})",
            round + 1,
            knobs.rounds,
            load_average()
        );
    }
    drop(bundles);
    drop(supervisor);

    report.line("## 1. Exec cost inside a container\n");
    report.line(&format!(
        "fork + execve(static busybox `/bin/true`) + waitpid, timed inside the container; \
         {} rounds × {} execs per configuration (after {WARMUP} untimed), interleaved, the \
         order rotating each round. Ratios are per round against that round's plain runc \
         (median of the rounds, [min–max]). The last two columns say where the added time \
         goes, per exec of each configuration's runs (container start and stop included): \
         the supervisor's CPU time (`/proc/PID/stat`), and the host's context switches \
         (`ctxt` of `/proc/stat`). Load average before: {section_load}.\n",
        knobs.rounds, knobs.execs
    ));
    report.line(
        "| configuration | execs | median µs | p99 µs | +µs (median) | ratio of medians | ratio of p99s | supervisor CPU µs per exec | context switches per exec |",
    );
    report.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per_round = |i: usize, r: usize| median_p99_us(&samples[i][r]);
    let mut ratios = Vec::new();
    for (i, (name, _)) in configs.iter().enumerate() {
        let pooled: Vec<u64> = samples[i].iter().flatten().copied().collect();
        let (median, p99) = median_p99_us(&pooled);
        let med_ratio: Vec<f64> = (0..knobs.rounds)
            .map(|r| per_round(i, r).0 / per_round(0, r).0)
            .collect();
        let p99_ratio: Vec<f64> = (0..knobs.rounds)
            .map(|r| per_round(i, r).1 / per_round(0, r).1)
            .collect();
        let added: Vec<f64> = (0..knobs.rounds)
            .map(|r| per_round(i, r).0 - per_round(0, r).0)
            .collect();
        let (lo, hi) = range(&med_ratio);
        let (plo, phi) = range(&p99_ratio);
        // Warm-up execs ran too: they count in the per-exec figures.
        let execs_run = (knobs.rounds * (knobs.execs + WARMUP)) as f64;
        report.line(&format!(
            "| {name} | {} | {median:.1} | {p99:.1} | {:+.1} | {:.3} [{lo:.2}–{hi:.2}] | {:.3} [{plo:.2}–{phi:.2}] | {:.1} | {:.1} |",
            pooled.len(),
            median_f64(&added),
            median_f64(&med_ratio),
            median_f64(&p99_ratio),
            supervisor_cpu[i] * 1e6 / execs_run,
            switches[i] as f64 / execs_run,
        ));
        ratios.push(median_f64(&med_ratio));
    }
    report.line("");
    report.target(
        "audit exec, ratio to plain runc",
        &format!("≤ {AUDIT_RATIO_TARGET:.2}×"),
        format!("{:.3}×", ratios[1]),
        verdict(ratios[1] <= AUDIT_RATIO_TARGET),
    );
    report.target(
        "enforce exec, ratio to plain runc",
        &format!("≤ {ENFORCE_RATIO_TARGET:.2}×"),
        format!("{:.3}×", ratios[2]),
        verdict(ratios[2] <= ENFORCE_RATIO_TARGET),
    );
    report.flush_console();
}
