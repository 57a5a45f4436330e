//! An exec storm against the eBPF exec probe: thousands of execs per second
//! from several audit containers, and not one event lost.
//!
//! Its own test binary, so that the load it makes does not overlap other
//! tests (cargo runs test binaries one after another). Needs root.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use sniffguard_tests::{
    require_root, rootfs, Bundle, Container, DirTarget, Runtime, ShimTarget, Supervisor,
};

#[test]
fn exec_storm_loses_no_events() {
    if !require_root() {
        return;
    }
    const CONTAINERS: usize = 3;
    const EXECS: usize = 3000;
    let sup = Supervisor::start(None);
    let script =
        format!("i=0; while [ $i -lt {EXECS} ]; do /bin/true; i=$((i+1)); done; echo done");
    let before = sup.counter("probe_events");
    let started = Instant::now();
    let handles: Vec<_> = (0..CONTAINERS)
        .map(|_| {
            let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some("ci"));
            let sup_dir = sup.runtime_dir().to_path_buf();
            std::thread::spawn(move || {
                let container = Container::new(Runtime::Runc);
                let target = DirTarget::new(sup_dir, None);
                let out = container.run_via_shim(&target, &bundle);
                (
                    out.success() && out.stdout.contains("done"),
                    out.to_string(),
                )
            })
        })
        .collect();
    for handle in handles {
        let (ok, out) = handle.join().unwrap();
        assert!(ok, "{out}");
    }
    let elapsed = started.elapsed();
    let events = sup.counter("probe_events") - before;
    let drops = sup.counter("ringbuf_drops");
    eprintln!(
        "exec storm: {events} exec events from {CONTAINERS} containers in {elapsed:?} ({:.0} execs/s), {drops} dropped",
        events as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(drops, 0, "ring buffer dropped events");
    assert!(
        events >= (CONTAINERS * EXECS) as u64,
        "only {events} events"
    );
}
