//! What sniffguard adds to an exec inside a container, against a baseline measured in the
//! same run (the method of `shared/PLATFORM.md`, "What an exec costs here").
//!
//! Inside each container the benches' load generator (`sgbench loop`, from
//! `tests/benches/sgbench.c`, compiled with `gcc -static -O2` and copied into the test
//! rootfs) does N × (fork, execve of the static busybox `/bin/true`, waitpid), times each
//! with `CLOCK_MONOTONIC` after a short warm-up, and prints every duration. Configurations, interleaved round by round (the order rotates
//! each round so that none always runs first or last):
//!
//! | configuration | what is added to an exec |
//! |---|---|
//! | `runc plain` | nothing: the baseline |
//! | `runc shim ci` | nothing expected: audit environment, hooks only, no seccomp filter |
//! | `runc shim staging` | the seccomp notify round trip, answered by the supervisor |
//! | `crun plain` / `crun shim staging` | the same pair under crun (`scripts/crun-hybrid`) |
//!
//! Ratios are of medians against the same round's `runc plain` (and, for crun, its own
//! plain run), so that drift of the machine between rounds cancels out.
//!
//! Run as root, with the binaries built in release mode (a bench finds them in
//! `target/release` beside itself; `SNIFFGUARD_BIN_DIR` overrides, see the harness):
//!
//! ```text
//! cargo build --release --workspace
//! cargo bench -p sniffguard-tests --bench exec_latency
//! ```
//!
//! `SNIFFGUARD_BENCH_ROUNDS` (default 5) and `SNIFFGUARD_BENCH_EXECS` (default 2000) change
//! the size; `SNIFFGUARD_BENCH_CRUN=0` leaves crun out. With
//! `SNIFFGUARD_LOG=sniffguard::notify=debug` the supervisor (which inherits the variable)
//! logs each decision's duration and the bench adds their distribution: how much of the
//! added latency is the supervisor's work and how much is waking it up (the logging itself
//! costs a little). Without root, gcc or runc the bench prints a loud skip and exits 0.

// A measurement program: failing loudly with a message is the right way to report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

// supervisor_cost uses all of it; this bench leaves `median_p99_us` alone.
#[allow(dead_code)]
mod shared;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sniffguard_tests::{
    find_in_path, rootfs, runtime_shim_bin, sniffguard_bin, Bundle, Container, Runtime, Supervisor,
};

use crate::shared::stats::{median_f64, pick, range};
use crate::shared::{
    decision_latencies_us, env_usize, install_helper, loop_samples, skip, HELPER, WARMUP,
};

/// Bound for one container run (its N execs plus start and delete).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// How a configuration reaches its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The runtime itself, no sniffguard anywhere.
    Plain,
    /// The shim, with the container annotated with this environment.
    Shim(&'static str),
}

struct Config {
    name: String,
    runtime: Runtime,
    via: Via,
    bundle: Bundle,
}

/// Median, p90, p99 (nearest rank) in µs of nanosecond samples.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p90: f64,
    p99: f64,
}

impl Stats {
    fn of(samples: &[u64]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let us = |p: f64| pick(&sorted, p) as f64 / 1000.0;
        Stats {
            median: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
        }
    }
}

/// Runs one configuration once; returns the timed samples (ns).
fn run_once(config: &Config, supervisor: &Supervisor, execs: usize) -> Vec<u64> {
    let container = Container::new(config.runtime).with_timeout(RUN_TIMEOUT);
    let out = match config.via {
        Via::Plain => container.run_plain(&config.bundle),
        Via::Shim(_) => container.run_via_shim(supervisor, &config.bundle),
    };
    assert!(
        out.success(),
        "{}: the exec loop failed:\n{out}\n{}",
        config.name,
        supervisor.report()
    );
    loop_samples(&out, execs, &config.name)
}

/// The profile a binary was built with: the name of its directory (`release`, `debug`).
fn profile_of(path: &Path) -> &str {
    path.parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("?")
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        skip("exec_latency", "needs root (it runs containers)");
    }
    for tool in ["gcc", "runc"] {
        if find_in_path(tool).is_none() {
            skip("exec_latency", &format!("{tool} is not installed"));
        }
    }
    let rounds = env_usize("SNIFFGUARD_BENCH_ROUNDS", 5).max(1);
    let execs = env_usize("SNIFFGUARD_BENCH_EXECS", 2000).max(1);
    let with_crun = std::env::var("SNIFFGUARD_BENCH_CRUN").map_or(true, |v| v != "0")
        && find_in_path("crun").is_some();

    let supervisor_bin = sniffguard_bin();
    let shim_bin = runtime_shim_bin();
    let profile = profile_of(&supervisor_bin);
    println!("exec_latency: {rounds} rounds x {execs} execs (after {WARMUP} warm-up) of `{HELPER} loop` -> /bin/true (static busybox) per configuration");
    println!("supervisor: {}", supervisor_bin.display());
    println!("shim:       {}", shim_bin.display());
    if profile != "release" {
        println!(
            "\n!!!!!!!! WARNING: these are `{profile}` binaries; build with `cargo build --release --workspace` (or set SNIFFGUARD_BIN_DIR) to measure what ships !!!!!!!!\n"
        );
    }

    let started = Instant::now();
    let rootfs = rootfs();
    install_helper(rootfs);
    let supervisor = Supervisor::start(None);

    let execs_arg = execs.to_string();
    let warmup_arg = WARMUP.to_string();
    let args = [
        HELPER,
        "loop",
        execs_arg.as_str(),
        warmup_arg.as_str(),
        "/bin/true",
    ];
    let mut setups = vec![
        (Runtime::Runc, Via::Plain),
        (Runtime::Runc, Via::Shim("ci")),
        (Runtime::Runc, Via::Shim("staging")),
    ];
    if with_crun {
        setups.extend([
            (Runtime::Crun, Via::Plain),
            (Runtime::Crun, Via::Shim("staging")),
        ]);
    }
    let configs: Vec<Config> = setups
        .into_iter()
        .map(|(runtime, via)| {
            let (name, environment) = match via {
                Via::Plain => (format!("{runtime} plain"), None),
                Via::Shim(env) => (format!("{runtime} shim {env}"), Some(env)),
            };
            Config {
                name,
                runtime,
                via,
                bundle: Bundle::new(rootfs, &args, environment),
            }
        })
        .collect();

    // samples[config][round]
    let mut samples: Vec<Vec<Vec<u64>>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(round % configs.len());
        for &i in &order {
            samples[i].push(run_once(&configs[i], &supervisor, execs));
        }
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(&s[round])).collect();
        println!("\nround {}/{rounds}", round + 1);
        print!("{}", round_table(&configs, &stats));
    }
    let elapsed = started.elapsed();
    print!("{}", summary(&configs, &samples, rounds, execs));
    println!("\n(total {:.1} s)", elapsed.as_secs_f64());

    if let Some(text) = decision_latencies(&supervisor.stderr_log()) {
        print!("{text}");
    }
    // Anything the supervisor said about these benign execs (there should be nothing).
    let alerts = supervisor.alerts_so_far();
    if !alerts.is_empty() {
        println!(
            "\nWARNING: the supervisor raised {} alert(s) during the bench; first: {}",
            alerts.len(),
            alerts[0]
        );
    }
    // Drop order: containers are gone already; bundles, then the supervisor.
    drop(configs);
    drop(supervisor);
}

/// The supervisor's own decision times, when it was started with
/// `SNIFFGUARD_LOG=sniffguard::notify=debug` (inherited from this process): each "decided"
/// line carries `latency_us`, the time from receiving a notification to answering it.
fn decision_latencies(log: &str) -> Option<String> {
    let mut micros = decision_latencies_us(log);
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    Some(format!(
        "
supervisor decision time (notification received -> answered), {} decisions: \
         median {} µs, p90 {} µs, p99 {} µs, max {} µs\n",
        micros.len(),
        pick(&micros, 0.5),
        pick(&micros, 0.9),
        pick(&micros, 0.99),
        micros[micros.len() - 1]
    ))
}

/// Index of the plain configuration of `runtime`.
fn plain_of(configs: &[Config], runtime: Runtime) -> Option<usize> {
    configs
        .iter()
        .position(|c| c.runtime == runtime && c.via == Via::Plain)
}

fn round_table(configs: &[Config], stats: &[Stats]) -> String {
    let runc = plain_of(configs, Runtime::Runc).expect("runc plain is always measured");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<20} {:>9} {:>9} {:>9} {:>14}",
        "configuration", "median µs", "p90 µs", "p99 µs", "vs runc plain"
    );
    for (config, s) in configs.iter().zip(stats) {
        let _ = writeln!(
            out,
            "  {:<20} {:>9.1} {:>9.1} {:>9.1} {:>14.3}",
            config.name,
            s.median,
            s.p90,
            s.p99,
            s.median / stats[runc].median
        );
    }
    out
}

fn summary(configs: &[Config], samples: &[Vec<Vec<u64>>], rounds: usize, execs: usize) -> String {
    let runc = plain_of(configs, Runtime::Runc).expect("runc plain is always measured");
    let per_round = |i: usize, r: usize| Stats::of(&samples[i][r]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsummary: {rounds} rounds x {execs} execs per configuration; latency from all samples \
         pooled; `+µs` and ratios are medians of the per-round values [min-max]"
    );
    let _ = writeln!(
        out,
        "  {:<20} {:>9} {:>9} {:>9} {:>9} {:>22} {:>22}",
        "configuration",
        "median µs",
        "p90 µs",
        "p99 µs",
        "+µs",
        "ratio vs runc plain",
        "vs same runtime plain"
    );
    for (i, config) in configs.iter().enumerate() {
        let pooled: Vec<u64> = samples[i].iter().flatten().copied().collect();
        let all = Stats::of(&pooled);
        let own = plain_of(configs, config.runtime).unwrap_or(runc);
        let added: Vec<f64> = (0..rounds)
            .map(|r| per_round(i, r).median - per_round(runc, r).median)
            .collect();
        let vs_runc: Vec<f64> = (0..rounds)
            .map(|r| per_round(i, r).median / per_round(runc, r).median)
            .collect();
        let vs_own: Vec<f64> = (0..rounds)
            .map(|r| per_round(i, r).median / per_round(own, r).median)
            .collect();
        let (runc_lo, runc_hi) = range(&vs_runc);
        let (own_lo, own_hi) = range(&vs_own);
        let _ = writeln!(
            out,
            "  {:<20} {:>9.1} {:>9.1} {:>9.1} {:>+9.1} {:>22} {:>22}",
            config.name,
            all.median,
            all.p90,
            all.p99,
            median_f64(&added),
            format!("{:.3} [{runc_lo:.2}-{runc_hi:.2}]", median_f64(&vs_runc)),
            format!("{:.3} [{own_lo:.2}-{own_hi:.2}]", median_f64(&vs_own)),
        );
    }
    out
}
