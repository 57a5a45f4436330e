//! What sniffguard costs a node, side by side with a bare runtime, in one run (issue 7).
//!
//! Run it with `scripts/bench.sh` (root): it builds the release binaries and runs this bench
//! with `SNIFFGUARD_BIN_DIR=target/release`. Five measurements, each against a baseline
//! taken in the same run on the same machine:
//!
//! 1. **Exec cost.** A container fork+execs the static busybox `/bin/true` N times
//!    (`sgbench loop`, N ≥ 5,000, timed inside the container): plain runc, audit (`ci`:
//!    eBPF only) and enforce (`staging`: seccomp notify + eBPF) through the shim,
//!    interleaved round by round. Median and p99 per exec, ratios to plain runc.
//! 2. **Decision latency.** Several enforce containers run the same loop at once; the
//!    supervisor (`SNIFFGUARD_LOG=sniffguard::notify=debug`) logs every decision's
//!    `latency_us` (notification received → answered). p50/p99/max from those lines,
//!    cross-checked against the Prometheus histogram's count.
//! 3. **Event path.** Several audit containers exec as fast as they can, or at a paced
//!    rate (`sgbench chain`: a process that execs itself, one exec event per step and no
//!    fork, the highest exec rate a container can make). In a window while they run:
//!    `probe_events` and `ringbuf_drops` from `sniffguard status --json`, and the
//!    supervisor's CPU time (`utime + stime` from `/proc/PID/stat`). Then the reader is
//!    stopped (SIGSTOP) for a few seconds under the same load, to show that loss is
//!    reachable and counted when the reader cannot keep up.
//! 4. **Container start.** create + start + delete of M containers (`sleep`), each
//!    command timed: plain runc, the shim + hook in `ci`, and in `staging`.
//! 5. **Footprint.** The supervisor's `VmRSS` idle, with 500 synthetic registrations
//!    (sent over the API socket as the hook does), and after they are deregistered.
//!
//! The results, with the machine's cores, kernel and load, go to `bench/results.md`.
//! Knobs (environment): `SNIFFGUARD_BENCH_EXECS` (5000), `SNIFFGUARD_BENCH_ROUNDS` (5),
//! `SNIFFGUARD_BENCH_STORM` (containers in sections 2 and 3, 4), `SNIFFGUARD_BENCH_STARTS`
//! (50), `SNIFFGUARD_BENCH_REGISTRATIONS` (500), `SNIFFGUARD_BENCH_WINDOW` (seconds per
//! event-path step, 5), `SNIFFGUARD_BENCH_ONLY` (e.g. `1,3`: run only those sections; then
//! results are written only where `SNIFFGUARD_BENCH_RESULTS` says),
//! `SNIFFGUARD_BENCH_RESULTS` (the results file).
//!
//! Every container and supervisor is bounded in time, removed by the harness's guards
//! (containers by id, supervisors by PID) and the bench never touches `/run/sniffguard`.
//! Without root, gcc or runc it prints a loud skip and exits 0. It is not part of the test
//! suite's pass/fail: a missed target is reported, not asserted.

// A measurement program: failing loudly with a message is the right way to report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sniffguard_tests::{
    compile_static, find_in_path, repo_root, rootfs, run_command, runtime_shim_bin, sniffguard_bin,
    strip_ansi, temp_dir, Bundle, CmdOutput, Container, Runtime, ShimTarget, Supervisor,
};

/// Where the load generator lives inside the rootfs.
const HELPER: &str = "/bin/sgbench";

/// Its source.
const HELPER_C: &str = include_str!("sgbench.c");

/// Untimed execs before the timed ones in each loop.
const WARMUP: usize = 50;

/// Bound for one foreground container run.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// Bound for one create, start or delete.
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Targets of issue 7 (this 2-core machine).
const AUDIT_RATIO_TARGET: f64 = 1.03;
const ENFORCE_RATIO_TARGET: f64 = 1.15;
const P50_TARGET_US: u64 = 15;
const P99_TARGET_US: u64 = 150;
const LOSSLESS_RATE_TARGET: f64 = 20_000.0;
const CPU_AT_5K_TARGET_PCT: f64 = 10.0;
const START_ADDED_TARGET_MS: f64 = 10.0;
const RSS_TARGET_MIB: f64 = 32.0;
const RSS_BACK_TOLERANCE: f64 = 0.10;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        skip("needs root (it runs containers and loads eBPF programs)");
    }
    for tool in ["gcc", "runc"] {
        if find_in_path(tool).is_none() {
            skip(&format!(
                "{tool} is not installed (scripts/setup.sh installs it)"
            ));
        }
    }
    // The supervisors inherit this process's environment: only section 2 logs decisions.
    std::env::remove_var("SNIFFGUARD_LOG");

    let knobs = Knobs::from_env();
    let started = Instant::now();
    let host = Host::probe();
    let supervisor_bin = sniffguard_bin();
    let profile = supervisor_bin
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut report = Report::default();
    report.line("# sniffguard: what it costs a node (issue 7)\n");
    report.line(&format!(
        "Written by `scripts/bench.sh` (`cargo bench -p sniffguard-tests --bench supervisor_cost`) \
         on {}.\n",
        host.date
    ));
    report.line("| machine | |\n|---|---|");
    report.line(&format!("| cores | {} ({}) |", host.cores, host.cpu_model));
    report.line(&format!("| kernel | {} |", host.kernel));
    report.line(&format!("| memory | {} MiB |", host.mem_mib));
    report.line(&format!("| load average at start | {} |", host.load));
    report.line(&format!(
        "| other `sniffguard run` on the host at start | {} (their probes see every exec too) |",
        host.other_supervisors
    ));
    report.line(&format!("| source | {} |", host.source));
    report.line(&format!(
        "| binaries | `{}`, `{}` ({profile}); runc {} |",
        supervisor_bin.display(),
        runtime_shim_bin().display(),
        host.runc
    ));
    report.line("");
    if profile != "release" {
        report.line(&format!(
            "**WARNING: `{profile}` binaries: build with `cargo build --release --workspace` \
             (scripts/bench.sh does) to measure what ships.**\n"
        ));
    }
    report.flush_console();

    let rootfs = rootfs();
    install_helper(rootfs);

    if knobs.runs(1) {
        exec_cost(&knobs, rootfs, &mut report);
    }
    if knobs.runs(2) {
        decision_latency(&knobs, rootfs, &mut report);
    }
    if knobs.runs(3) {
        event_path(&knobs, rootfs, &mut report);
    }
    if knobs.runs(4) {
        container_start(&knobs, rootfs, &mut report);
    }
    if knobs.runs(5) {
        footprint(&knobs, &mut report);
    }

    report.line(&format!(
        "Load average at the end: {}. Whole run: {:.0} s.\n",
        load_average(),
        started.elapsed().as_secs_f64()
    ));
    let targets = report.targets_table();
    report.line(&targets);
    report.flush_console();

    match knobs.results_path() {
        Some(path) => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).expect("create the results directory");
            }
            fs::write(&path, &report.markdown).expect("write the results");
            println!("results written to {}", path.display());
        }
        None => println!(
            "(a partial run: results not written; set SNIFFGUARD_BENCH_RESULTS to keep them)"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Knobs, host facts, report
// ---------------------------------------------------------------------------------------

struct Knobs {
    execs: usize,
    rounds: usize,
    storm: usize,
    starts: usize,
    registrations: usize,
    window: Duration,
    only: Option<Vec<u32>>,
    results: Option<PathBuf>,
}

impl Knobs {
    fn from_env() -> Knobs {
        let only = std::env::var("SNIFFGUARD_BENCH_ONLY").ok().map(|text| {
            text.split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("SNIFFGUARD_BENCH_ONLY={text:?}: numbers 1-5"))
                })
                .collect()
        });
        Knobs {
            execs: env_usize("SNIFFGUARD_BENCH_EXECS", 5000).max(1),
            rounds: env_usize("SNIFFGUARD_BENCH_ROUNDS", 5).max(1),
            storm: env_usize("SNIFFGUARD_BENCH_STORM", 4).max(1),
            starts: env_usize("SNIFFGUARD_BENCH_STARTS", 50).max(1),
            registrations: env_usize("SNIFFGUARD_BENCH_REGISTRATIONS", 500),
            window: Duration::from_secs(env_usize("SNIFFGUARD_BENCH_WINDOW", 5).max(1) as u64),
            only,
            results: std::env::var_os("SNIFFGUARD_BENCH_RESULTS").map(PathBuf::from),
        }
    }

    fn runs(&self, section: u32) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&section))
    }

    /// `bench/results.md` for a full run, or where `SNIFFGUARD_BENCH_RESULTS` says.
    fn results_path(&self) -> Option<PathBuf> {
        match (&self.results, &self.only) {
            (Some(path), _) if path.is_absolute() => Some(path.clone()),
            (Some(path), _) => Some(repo_root().join(path)),
            (None, None) => Some(repo_root().join("bench").join("results.md")),
            (None, Some(_)) => None,
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

fn skip(why: &str) -> ! {
    eprintln!("\n**************** SKIPPED supervisor_cost bench: {why} ****************\n");
    std::process::exit(0);
}

struct Host {
    cores: usize,
    cpu_model: String,
    kernel: String,
    mem_mib: u64,
    load: String,
    date: String,
    runc: String,
    other_supervisors: usize,
    source: String,
}

impl Host {
    fn probe() -> Host {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_mib = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let runc = Command::new("runc")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("runc version ")
                    .to_owned()
            })
            .unwrap_or_default();
        Host {
            cores: thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            mem_mib,
            load: load_average(),
            date,
            runc,
            other_supervisors: running_supervisors(),
            source: source_revision(),
        }
    }
}

/// The commit measured, and whether the product's sources differ from it.
fn source_revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "? (not a git checkout)".to_owned();
    };
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "common",
        "hook",
        "supervisor",
        "supervisor-ebpf",
    ])
    .map_or(0, |text| text.lines().count());
    if changed == 0 {
        format!("commit {commit}")
    } else {
        format!("commit {commit} with {changed} uncommitted change(s) in the product's sources")
    }
}

/// `/proc/loadavg`'s three averages.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// How many `sniffguard run` processes are alive (none of them ours when called at start).
fn running_supervisors() -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let mut args = cmdline.split(|&b| b == 0);
            let exe = args.next().unwrap_or_default();
            exe.ends_with(b"sniffguard") && args.next() == Some(b"run".as_slice())
        })
        .count()
}

/// One target of the issue and what this run measured.
struct Target {
    what: String,
    target: String,
    measured: String,
    verdict: &'static str,
}

#[derive(Default)]
struct Report {
    markdown: String,
    printed: usize,
    targets: Vec<Target>,
}

impl Report {
    fn line(&mut self, text: &str) {
        self.markdown.push_str(text);
        self.markdown.push('\n');
    }

    /// Prints what was added since the last flush.
    fn flush_console(&mut self) {
        print!("{}", &self.markdown[self.printed..]);
        let _ = std::io::stdout().flush();
        self.printed = self.markdown.len();
    }

    fn target(&mut self, what: &str, target: &str, measured: String, verdict: &'static str) {
        self.targets.push(Target {
            what: what.to_owned(),
            target: target.to_owned(),
            measured,
            verdict,
        });
    }

    fn targets_table(&self) -> String {
        let mut out = String::from(
            "## Targets of issue 7\n\n| what | target | measured | |\n|---|---|---|---|\n",
        );
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.what, t.target, t.measured, t.verdict
            );
        }
        out
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted values.
fn pick<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    (
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Median and p99 in µs of nanosecond samples.
fn median_p99_us(samples: &[u64]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    (
        pick(&sorted, 0.5) as f64 / 1000.0,
        pick(&sorted, 0.99) as f64 / 1000.0,
    )
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the sections
// ---------------------------------------------------------------------------------------

/// Compiles the load generator statically and installs it in the test rootfs.
fn install_helper(rootfs: &Path) {
    let work = temp_dir("sniffguard-bench-");
    let binary = compile_static(work.path(), "sgbench", HELPER_C);
    let dest = rootfs.join(HELPER.trim_start_matches('/'));
    fs::copy(&binary, &dest).expect("copy sgbench into the rootfs");
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod sgbench");
}

/// `CLOCK_MONOTONIC` in ns: the clock `sgbench chain` reads inside containers.
fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `ns`.
fn sleep_until_ns(ns: i64) {
    let left = ns - monotonic_ns();
    if left > 0 {
        thread::sleep(Duration::from_nanos(left as u64));
    }
}

/// A supervisor's CPU time (`utime + stime` of `/proc/PID/stat`) in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    // SAFETY: sysconf reads a configuration value; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime + stime) / ticks
}

/// Context switches on the whole host since boot (`ctxt` of `/proc/stat`).
fn context_switches() -> u64 {
    fs::read_to_string("/proc/stat")
        .expect("read /proc/stat")
        .lines()
        .find_map(|line| line.strip_prefix("ctxt "))
        .and_then(|n| n.trim().parse().ok())
        .expect("/proc/stat has a ctxt line")
}

/// `VmRSS`, `RssAnon` and `VmHWM` of a process, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    hwm: u64,
}

fn memory(pid: u32) -> Memory {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        hwm: field("VmHWM:"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `s <ns>` samples of an `sgbench loop` run.
fn loop_samples(out: &CmdOutput, expected: usize, what: &str) -> Vec<u64> {
    let samples: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("s "))
        .map(|n| n.trim().parse().expect("a sample in ns"))
        .collect();
    assert_eq!(
        samples.len(),
        expected,
        "{what}: expected {expected} samples:\n{out}"
    );
    samples
}

// ---------------------------------------------------------------------------------------
// 1. Exec cost
// ---------------------------------------------------------------------------------------

fn exec_cost(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
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

// ---------------------------------------------------------------------------------------
// 2. Decision latency
// ---------------------------------------------------------------------------------------

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
    let log = strip_ansi(log);
    let latencies = log
        .lines()
        .filter(|line| line.contains("decided"))
        .filter_map(|line| line.split("latency_us=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse().ok())
        .collect();
    let undelivered = log
        .lines()
        .filter(|l| l.contains("answer not delivered"))
        .count();
    (latencies, undelivered)
}

fn decision_latency(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
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

// ---------------------------------------------------------------------------------------
// 3. Event path
// ---------------------------------------------------------------------------------------

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

fn event_path(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
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
        "| {} | {:.0} (submitted) | {} | {:.1} | — | {} |",
        stalled.label,
        stalled.rate(),
        stalled.drops,
        stalled.cpu_pct(),
        stalled.load
    ));
    report.line("");
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

// ---------------------------------------------------------------------------------------
// 4. Container start
// ---------------------------------------------------------------------------------------

/// Runs `cmd` with stdio in `log` and times it from spawn to exit. It waits
/// in `poll(2)` on a pidfd of the child, so nothing spins: a `try_wait` every
/// 100 µs (the first way this was timed) kept one of this machine's two CPUs
/// waking up while the runtime, shim and hook needed both.
fn timed(cmd: &mut Command, log: &Path) -> (Duration, ExitStatus) {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let file = fs::File::create(log).expect("create a command log");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log"))
        .stderr(file);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn a runtime command");
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; the
    // child is ours and not yet reaped, so its pid names it.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the fd was just returned to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let deadline = started + LIFECYCLE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = nix::poll::PollTimeout::try_from(left.as_millis().min(60_000) as i32)
            .unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) if left.is_zero() => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => panic!("poll on a pidfd: {errno}"),
        }
        if let Some(status) = child.try_wait().expect("waitpid") {
            return (started.elapsed(), status);
        }
    }
    // Our own unreaped child: the signal reaches exactly it.
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "a runtime command outlived {LIFECYCLE_TIMEOUT:?}:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// How a section-4 container is attached to sniffguard.
#[derive(Clone, Copy)]
enum Attach {
    /// Plain runc, no hook.
    None,
    /// Plain runc running `/bin/true` at `createRuntime` and `poststop`.
    NoopHook,
    /// Through the shim, in this environment.
    Shim(&'static str),
    /// Plain runc on a bundle `sniffguard-hook inject` prepared once.
    Injected(&'static str),
}

impl Attach {
    /// A `sleep 3600` bundle prepared for this attachment.
    fn bundle(self, rootfs: &Path, supervisor: &Supervisor) -> Bundle {
        let args = ["sleep", "3600"];
        match self {
            Attach::None => Bundle::new(rootfs, &args, None),
            Attach::Shim(env) => Bundle::new(rootfs, &args, Some(env)),
            Attach::NoopHook => Bundle::new(rootfs, &args, None).edit(|spec| {
                let noop = json!([{ "path": "/bin/true", "args": ["true"] }]);
                spec["hooks"] = json!({ "createRuntime": noop, "poststop": noop });
            }),
            Attach::Injected(env) => {
                let bundle = Bundle::new(rootfs, &args, Some(env));
                let out = run_command(
                    Command::new(sniffguard_tests::hook_bin())
                        .arg("inject")
                        .arg(bundle.path())
                        .env("SNIFFGUARD_RUNTIME_DIR", supervisor.runtime_dir())
                        .env("SNIFFGUARD_REAL_RUNTIME", Runtime::Runc.path())
                        .env_remove("SNIFFGUARD_CONFIG"),
                    LIFECYCLE_TIMEOUT,
                );
                assert!(out.success(), "sniffguard-hook inject failed: {out}");
                bundle.reload()
            }
        }
    }
}

fn container_start(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
    let section_load = load_average();
    let supervisor = Supervisor::start(None);
    let configs = [
        ("plain runc", Attach::None),
        ("plain runc + a no-op hook (`/bin/true`)", Attach::NoopHook),
        ("shim + hook, `ci` (audit)", Attach::Shim("ci")),
        ("shim + hook, `staging` (enforce)", Attach::Shim("staging")),
        (
            "bundle injected once, hook, `ci` (audit)",
            Attach::Injected("ci"),
        ),
        (
            "bundle injected once, hook, `staging` (enforce)",
            Attach::Injected("staging"),
        ),
    ];
    let bundles: Vec<Bundle> = configs
        .iter()
        .map(|(_, attach)| attach.bundle(rootfs, &supervisor))
        .collect();
    let logs = temp_dir("sniffguard-bench-logs-");
    // times[config] = (create, start, delete, total) in ms
    let mut times: Vec<Vec<[f64; 4]>> = vec![Vec::new(); configs.len()];
    for n in 0..knobs.starts {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(n % configs.len());
        for &i in &order {
            let container = Container::new(Runtime::Runc).with_timeout(LIFECYCLE_TIMEOUT);
            let command = |verb: &[&str]| {
                let mut cmd = match configs[i].1 {
                    Attach::Shim(_) => container.shim_command(&supervisor),
                    _ => container.plain_command(),
                };
                cmd.args(verb);
                cmd
            };
            let bundle = bundles[i].path().to_str().expect("a UTF-8 bundle path");
            let id = container.id().to_owned();
            let mut ms = [0.0; 4];
            for (k, verb) in [
                vec!["create", "--bundle", bundle, id.as_str()],
                vec!["start", id.as_str()],
                vec!["delete", "-f", id.as_str()],
            ]
            .iter()
            .enumerate()
            {
                let log = logs.path().join(format!("{}-{}.log", id, verb[0]));
                let (took, status) = timed(&mut command(verb), &log);
                assert!(
                    status.success(),
                    "{}: `{}` failed ({status}):\n{}\n{}",
                    configs[i].0,
                    verb[0],
                    fs::read_to_string(&log).unwrap_or_default(),
                    supervisor.report()
                );
                ms[k] = took.as_secs_f64() * 1000.0;
            }
            ms[3] = ms[0] + ms[1] + ms[2];
            times[i].push(ms);
            // The guard's own `delete -f` finds nothing left (untimed).
            drop(container);
        }
    }
    let leftover = try_status(&supervisor).map_or(0, |status| {
        status
            .get("containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    });
    drop(bundles);
    drop(supervisor);

    report.line("## 4. Container start and stop\n");
    report.line(&format!(
        "{} containers per configuration (`sleep 3600`), interleaved: `create`, `start`, \
         `delete -f`, each timed from spawn to exit. Through the shim, `create` rewrites \
         `config.json`, and the `createRuntime` hook registers the container (and in \
         `staging` runc hands the seccomp listener to the supervisor); `delete` runs the \
         `poststop` hook that deregisters it. The no-op hook row is plain runc running \
         `/bin/true` where the shim puts sniffguard's hooks: what any OCI hook costs. The \
         injected rows run plain runc on a bundle that `sniffguard-hook inject` rewrote \
         once, as the shim would (the wiring for a bundle made ahead; a `hooks.d` entry \
         in audit does the same and also reads the policy): the hook without the \
         shim's process on every runtime command. Medians in ms. Load average \
         before: {section_load}.\n",
        knobs.starts
    ));
    report.line("| configuration | create | start | delete | total | added to create+start | added in all |");
    report.line("|---|---:|---:|---:|---:|---:|---:|");
    let med = |i: usize, k: usize| median_f64(&times[i].iter().map(|t| t[k]).collect::<Vec<_>>());
    let mut added_start = Vec::new();
    for (i, (name, _)) in configs.iter().enumerate() {
        let create_start = median_f64(&times[i].iter().map(|t| t[0] + t[1]).collect::<Vec<_>>());
        let plain_create_start =
            median_f64(&times[0].iter().map(|t| t[0] + t[1]).collect::<Vec<_>>());
        let added = create_start - plain_create_start;
        report.line(&format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {added:+.1} | {:+.1} |",
            med(i, 0),
            med(i, 1),
            med(i, 2),
            med(i, 3),
            med(i, 3) - med(0, 3),
        ));
        added_start.push(added);
    }
    report.line("");
    if leftover > 0 {
        report.line(&format!(
            "**{leftover} container(s) still registered after all were deleted.**\n"
        ));
    }
    report.line(&format!(
        "Of the time added, runc running a hook at all (a no-op one) takes {:+.1} ms; \
         the shim and sniffguard's hook add {:+.1} ms (audit) and {:+.1} ms (enforce) \
         beyond that, sniffguard's hook alone (bundle injected once) {:+.1} and {:+.1} ms.\n",
        added_start[1],
        added_start[2] - added_start[1],
        added_start[3] - added_start[1],
        added_start[4] - added_start[1],
        added_start[5] - added_start[1],
    ));
    let worst = added_start[2].max(added_start[3]);
    report.target(
        "shim + hook, added to a container start (median)",
        &format!("≤ {START_ADDED_TARGET_MS:.0} ms"),
        format!(
            "+{:.1} ms audit, +{:.1} ms enforce (create+start)",
            added_start[2], added_start[3]
        ),
        verdict(worst <= START_ADDED_TARGET_MS),
    );
    report.flush_console();
}

// ---------------------------------------------------------------------------------------
// 5. Footprint
// ---------------------------------------------------------------------------------------

/// `sniffguard status --json`, or why it failed (the harness's `status` panics).
fn try_status(supervisor: &Supervisor) -> Result<Value, String> {
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

fn footprint(knobs: &Knobs, report: &mut Report) {
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
