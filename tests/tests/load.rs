//! Load: many containers at once against one supervisor, and a bounded churn of
//! container creates/deletes mixed with an exec storm, after which the
//! supervisor's fds and memory come back to where they were.
//!
//! Needs root; real runc containers through the shim. Speeds are printed, never
//! asserted. The churn lasts `SNIFFGUARD_CHURN_SECS` seconds (default 60); the
//! ten-minute run the issue asks for is `churn_for_ten_minutes`, ignored by
//! default:
//!
//! ```sh
//! cargo test -p sniffguard-tests --test load -- --ignored churn_for_ten_minutes --nocapture
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use sniffguard_tests::{
    poll_until, proc_fd_count, proc_rss_kib, require_root, rootfs, temp_dir, Bundle, CmdOutput,
    Container, DirTarget, HookInterposer, Runtime, ShimTarget, Supervisor,
};
use tempfile::TempDir;

/// Containers created at once.
const AT_ONCE: usize = 100;

/// Bound for one create while 100 run at once on a small machine.
const CREATE_TIMEOUT: Duration = Duration::from_secs(180);

/// Default churn length; `SNIFFGUARD_CHURN_SECS` overrides it.
const DEFAULT_CHURN: Duration = Duration::from_secs(60);

/// The `q`-quantile (0..=1) of `sorted`, by nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn describe(name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "{name}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        quantile(&samples, 0.5).as_secs_f64() * 1e3,
        quantile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    )
}

/// Drops containers on parallel threads (each `delete -f` takes ~0.1 s).
fn delete_all(containers: Vec<Container>) {
    thread::scope(|s| {
        let mut chunks: Vec<Vec<Container>> = (0..8).map(|_| Vec::new()).collect();
        for (i, c) in containers.into_iter().enumerate() {
            chunks[i % 8].push(c);
        }
        for chunk in chunks {
            s.spawn(move || drop(chunk));
        }
    });
}

/// Attached containers in the supervisor's status: (listed, registered, with a
/// seccomp listener).
fn attached(sup: &Supervisor) -> (usize, usize, usize) {
    let status = sup.status();
    let containers = status["containers"].as_array().cloned().unwrap_or_default();
    (
        containers.len(),
        containers
            .iter()
            .filter(|c| c["registered"] == true)
            .count(),
        containers.iter().filter(|c| c["seccomp"] == true).count(),
    )
}

#[test]
fn a_hundred_containers_at_once_are_all_attached() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let target = DirTarget::new(sup.runtime_dir().to_path_buf(), None);
    let hook = HookInterposer::new(false);
    let hook_path = hook.path();
    let bundles: Vec<Bundle> = (0..AT_ONCE)
        .map(|_| Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")))
        .collect();
    let containers: Vec<Container> = (0..AT_ONCE)
        .map(|_| Container::new(Runtime::Runc).with_timeout(CREATE_TIMEOUT))
        .collect();
    let barrier = Barrier::new(AT_ONCE);
    let results: Vec<(CmdOutput, Duration)> = thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .zip(&bundles)
            .map(|(container, bundle)| {
                let (barrier, target, hook_path) = (&barrier, &target, &hook_path);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let out = container.create_detached_via_shim_env(
                        target,
                        bundle,
                        &[("SNIFFGUARD_HOOK", hook_path.as_os_str())],
                    );
                    (out, start.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<&CmdOutput> = results
        .iter()
        .map(|(out, _)| out)
        .filter(|o| !o.success())
        .collect();
    let hook_times = hook.timings();
    eprintln!(
        "{AT_ONCE} containers at once (runc, staging):\n  {}\n  {}",
        describe("hook (registration round trip)", hook_times.clone()),
        describe(
            "create through the shim",
            results.iter().map(|(_, d)| *d).collect()
        ),
    );
    assert!(
        refused.is_empty(),
        "{} of {AT_ONCE} refused, first: {}\n{}",
        refused.len(),
        refused[0],
        sup.report()
    );
    assert_eq!(hook_times.len(), AT_ONCE, "every hook ran once");
    let (listed, registered, listening) = attached(&sup);
    assert_eq!(
        (listed, registered, listening),
        (AT_ONCE, AT_ONCE, AT_ONCE),
        "(listed, registered, with a notify listener)\n{}",
        sup.report()
    );
    for container in &containers {
        assert!(
            container.wait_status("running", Duration::from_secs(10)),
            "{} is not running",
            container.id()
        );
    }
    // Still enforced under this load.
    for container in containers.iter().step_by(25) {
        let refused = container.exec_via_shim(&sup, &["tcpdump", "-D"]);
        assert!(refused.mentions("operation not permitted"), "{refused}");
    }
    delete_all(containers);
    assert!(
        poll_until(Duration::from_secs(30), || attached(&sup).0 == 0),
        "containers still attached after deletion: {:?}",
        attached(&sup)
    );
}

/// A container running `/bin/true` (and `sleep`) in a loop, counting rounds.
struct Storm {
    container: Container,
    ticks: TempDir,
    _bundle: Bundle,
}

impl Storm {
    fn start(target: &DirTarget, environment: &str) -> Storm {
        let ticks = temp_dir("sniffguard-storm-");
        let bundle = Bundle::new(
            rootfs(),
            &[
                "sh",
                "-c",
                "i=0; while :; do /bin/true; i=$((i+1)); echo $i >/ticks/count; sleep 0.01; done",
            ],
            Some(environment),
        )
        .bind_rw(ticks.path(), "/ticks");
        let container = Container::new(Runtime::Runc);
        let out = container.create_detached_via_shim(target, &bundle);
        assert!(out.success(), "{out}");
        Storm {
            container,
            ticks,
            _bundle: bundle,
        }
    }

    /// The last count written. `echo` truncates before it writes: a read can
    /// land in between and see nothing, so retry (bounded) until a number shows.
    fn rounds(&self) -> u64 {
        let mut rounds = 0;
        poll_until(Duration::from_secs(2), || {
            rounds = std::fs::read_to_string(self.ticks.path().join("count"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            rounds > 0
        });
        rounds
    }
}

fn churn(length: Duration) {
    let sup = Supervisor::start(None);
    let target = DirTarget::new(sup.runtime_dir().to_path_buf(), None);
    let pid = sup.pid();
    let run_one = |i: u64| {
        let environment = if i.is_multiple_of(2) { "staging" } else { "ci" };
        let bundle = Bundle::new(
            rootfs(),
            &["sh", "-c", "/bin/true; tcpdump -D >/dev/null 2>&1; exit 0"],
            Some(environment),
        );
        let container = Container::new(Runtime::Runc);
        let out = container.run_via_shim(&target, &bundle);
        assert!(out.success(), "{out}");
    };
    // Warm up the allocator, the classifier cache and the alert writer.
    for i in 0..10 {
        run_one(i);
    }
    assert!(
        poll_until(Duration::from_secs(20), || attached(&sup).0 == 0),
        "containers still attached after warm-up"
    );
    let (fds_before, rss_before) = (proc_fd_count(pid), proc_rss_kib(pid));

    let storms = [
        Storm::start(&target, "staging"),
        Storm::start(&target, "ci"),
    ];
    let deadline = Instant::now() + length;
    let stop = AtomicBool::new(false);
    let (ran, cycled, refused) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    thread::scope(|s| {
        // Foreground containers, one after another.
        s.spawn(|| {
            let mut i = 0;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                run_one(i);
                i += 1;
                ran.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Detached containers: create, exec tcpdump into it (refused), delete.
        s.spawn(|| {
            let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let container = Container::new(Runtime::Runc);
                let out = container.create_detached_via_shim(&target, &bundle);
                assert!(out.success(), "{out}");
                let exec = container.exec_via_shim(&target, &["tcpdump", "-D"]);
                assert!(exec.mentions("operation not permitted"), "{exec}");
                refused.fetch_add(1, Ordering::Relaxed);
                drop(container);
                cycled.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Sniffers exec'd into the running storm container, now and then.
        s.spawn(|| {
            while Instant::now() < deadline {
                let exec = storms[0]
                    .container
                    .exec_via_shim(&target, &["tcpdump", "-D"]);
                if !exec.mentions("operation not permitted") {
                    stop.store(true, Ordering::Relaxed);
                    panic!("tcpdump not refused in the storm container: {exec}");
                }
                refused.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(500));
            }
        });
    });
    let storm_rounds: Vec<u64> = storms.iter().map(Storm::rounds).collect();
    let storm_output: Vec<(String, String)> = storms
        .iter()
        .map(|s| s.container.detached_output())
        .collect();
    let (fds_peak, rss_peak) = (proc_fd_count(pid), proc_rss_kib(pid));
    drop(storms);
    assert!(
        poll_until(Duration::from_secs(30), || attached(&sup).0 == 0),
        "containers still attached after the churn: {:?}",
        attached(&sup)
    );
    // Lingering records (kept 5 s for late eBPF events) and closed listener fds
    // are released within a few seconds.
    let returned = poll_until(Duration::from_secs(30), || {
        proc_fd_count(pid) <= fds_before + 2
    });
    let (fds_after, rss_after) = (proc_fd_count(pid), proc_rss_kib(pid));
    eprintln!(
        "churn for {length:?}: {} foreground containers, {} create/exec/delete cycles, \
         {} tcpdump execs refused, storm rounds (staging, ci) {storm_rounds:?}\n  \
         supervisor fds {fds_before} -> {fds_peak} (at the end of the churn) -> {fds_after}\n  \
         supervisor RSS {rss_before} KiB -> {rss_peak} KiB -> {rss_after} KiB",
        ran.load(Ordering::Relaxed),
        cycled.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert!(
        storm_rounds.iter().all(|r| *r > 0),
        "a storm never ran: {storm_rounds:?} {storm_output:?}"
    );
    assert!(returned, "fds grew from {fds_before} to {fds_after}");
    assert!(
        rss_after <= rss_before + rss_before / 4 + 4096,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// The churn length from `SNIFFGUARD_CHURN_SECS`, else [`DEFAULT_CHURN`].
fn churn_length() -> Duration {
    std::env::var("SNIFFGUARD_CHURN_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(DEFAULT_CHURN, Duration::from_secs)
}

#[test]
fn churn_keeps_fds_and_memory_bounded() {
    if !require_root() {
        return;
    }
    churn(churn_length());
}

/// The issue's ten-minute churn: run on purpose (see the module comment).
#[test]
#[ignore = "ten minutes of churn: run with --ignored when measuring"]
fn churn_for_ten_minutes() {
    if !require_root() {
        return;
    }
    churn(Duration::from_secs(600));
}
