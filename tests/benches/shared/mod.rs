//! What both benches share: the in-container load generator (`sgbench.c`, one C source
//! for both), the knobs read from the environment, the skip line, and the statistics.
//!
//! Each bench is a crate of its own, so this is included with `mod shared;` rather than
//! linked; a bench that leaves part of it unused says so where it includes it.

pub mod stats;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sniffguard_tests::{compile_static, strip_ansi, temp_dir, CmdOutput};

/// Where the load generator lives inside the rootfs.
pub const HELPER: &str = "/bin/sgbench";

/// Its source.
const HELPER_C: &str = include_str!("../sgbench.c");

/// Untimed execs before the timed ones in each loop (page cache, the classifier's
/// cache, branch predictors).
pub const WARMUP: usize = 50;

/// Compiles the load generator statically and installs it in the test rootfs.
pub fn install_helper(rootfs: &Path) {
    let work = temp_dir("sniffguard-bench-");
    let binary = compile_static(work.path(), "sgbench", HELPER_C);
    let dest = rootfs.join(HELPER.trim_start_matches('/'));
    fs::copy(&binary, &dest).expect("copy sgbench into the rootfs");
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod sgbench");
}

/// The `s <ns>` samples of an `sgbench loop` run.
pub fn loop_samples(out: &CmdOutput, expected: usize, what: &str) -> Vec<u64> {
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

/// A number from the environment variable `name`, or `default` when it is unset.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// Prints a loud skip line for `bench` and exits 0: a bench that cannot run here is
/// not a failure.
pub fn skip(bench: &str, why: &str) -> ! {
    eprintln!("\n**************** SKIPPED {bench} bench: {why} ****************\n");
    std::process::exit(0);
}

/// The `latency_us` of every "decided" line in a supervisor's log (written when it runs
/// with `SNIFFGUARD_LOG=sniffguard::notify=debug`): the time from receiving a
/// notification to answering it, in µs.
pub fn decision_latencies_us(log: &str) -> Vec<u64> {
    strip_ansi(log)
        .lines()
        .filter(|line| line.contains("decided"))
        .filter_map(|line| line.split("latency_us=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse().ok())
        .collect()
}
