//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/`) through the same
//! harnesses the libFuzzer targets run (`fuzz/src/lib.rs`, included here), on
//! stable and without libFuzzer: every crash, hang or broken invariant the
//! fuzzers ever found stays fixed. No root needed.
//!
//! `scripts/fuzz.sh [SECONDS]` runs the fuzzers themselves (nightly).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Instant;

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

#[test]
fn fuzz_corpus_replays_without_a_panic() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let started = Instant::now();
    let replay = harness::replay_corpus(&fuzz_dir);
    eprintln!(
        "fuzz corpus: {} in {:?}",
        replay
            .counts
            .iter()
            .map(|(target, n)| format!("{target} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed()
    );
    for (target, n) in &replay.counts {
        assert!(*n > 0, "fuzz/corpus/{target} is empty");
    }
    assert!(
        replay.failures.is_empty(),
        "{} corpus input(s) panic:\n{}",
        replay.failures.len(),
        replay
            .failures
            .iter()
            .map(|(file, message)| format!("  {}: {message}", file.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
