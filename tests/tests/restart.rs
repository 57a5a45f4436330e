//! A supervisor restart costs no enforcement: the fd keeper holds every notify
//! fd while the supervisor is down, so watched execs in enforced containers
//! wait instead of failing with ENOSYS, and the next supervisor answers them.
//!
//! Needs root; ten real staging containers through the shim.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sniffguard_tests::{
    proc_fd_count, proc_rss_kib, require_root, rootfs, temp_dir, Bundle, Container, Runtime,
    ShimTarget, Supervisor,
};
use tempfile::TempDir;

const CONTAINERS: usize = 10;

/// Each container execs /bin/true in a loop and publishes its count.
const LOOP: &str = "i=0; while true; do /bin/true || echo \"true failed: $?\" >>/ticks/err; \
    i=$((i+1)); echo $i >/ticks/count; sleep 0.05 2>>/ticks/err; done";

struct Looping {
    container: Container,
    ticks: TempDir,
    _bundle: Bundle,
}

impl Looping {
    /// The loop's count. The shell rewrites the file in place (truncate, then
    /// write), so a read can fall between the two and find it empty: read
    /// again then (bounded), rather than take an empty file for 0.
    fn count(&self) -> u64 {
        let path = self.ticks.path().join("count");
        for _ in 0..100 {
            if let Some(n) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        0
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.ticks.path().join("err")).unwrap_or_default()
    }
}

fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

fn start(sup: &Supervisor) -> Vec<Looping> {
    (0..CONTAINERS)
        .map(|_| {
            let ticks = temp_dir("sniffguard-ticks-");
            let bundle = Bundle::new(rootfs(), &["sh", "-c", LOOP], Some("staging"))
                .bind_rw(ticks.path(), "/ticks");
            let container = Container::new(Runtime::Runc);
            let out = container.create_detached_via_shim(sup, &bundle);
            assert!(out.success(), "{out}");
            Looping {
                container,
                ticks,
                _bundle: bundle,
            }
        })
        .collect()
}

fn survive(sup: &mut Supervisor, loops: &[Looping], signal: Signal) {
    let floor: Vec<u64> = loops.iter().map(Looping::count).collect();
    assert!(
        wait_until(Duration::from_secs(15), || loops
            .iter()
            .zip(&floor)
            .all(|(l, f)| l.count() >= f + 3)),
        "the loops do not run before the restart"
    );
    sup.stop_with(signal);
    let at_stop: Vec<u64> = loops.iter().map(Looping::count).collect();
    // A deliberate observation window: while nobody answers, every watched exec
    // must wait (the loops stand still), not fail.
    std::thread::sleep(Duration::from_secs(1));
    let during: Vec<u64> = loops.iter().map(Looping::count).collect();
    for (i, (a, b)) in at_stop.iter().zip(&during).enumerate() {
        assert!(
            b <= &(a + 1),
            "container {i} kept exec'ing while the supervisor was down ({a} -> {b})"
        );
    }
    sup.restart();
    assert!(
        wait_until(Duration::from_secs(20), || loops
            .iter()
            .zip(&during)
            .all(|(l, d)| l.count() >= d + 3)),
        "held execs were not answered after the restart\n{}",
        sup.report()
    );
    for (i, l) in loops.iter().enumerate() {
        let errors = l.errors();
        assert!(errors.is_empty(), "container {i}: {errors}");
    }
    let status = sup.status();
    for l in loops {
        let listed = status["containers"].as_array().unwrap().iter().any(|c| {
            c["id"] == l.container.id() && c["seccomp"] == true && c["registered"] == true
        });
        assert!(listed, "{} missing from status: {status}", l.container.id());
        let refused = l.container.exec_via_shim(&*sup, &["tcpdump", "-D"]);
        assert!(
            !refused.success(),
            "tcpdump ran after the restart: {refused}"
        );
        assert!(refused.mentions("operation not permitted"), "{refused}");
    }
}

#[test]
fn enforcement_survives_kill_and_graceful_restart() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let loops = start(&sup);
    survive(&mut sup, &loops, Signal::SIGKILL);
    survive(&mut sup, &loops, Signal::SIGTERM);
}

#[test]
fn memory_and_fds_return_after_200_containers_come_and_go() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let churn = |n: usize| {
        for i in 0..n {
            // Alternate enforce and audit: listener fds and eBPF registrations.
            let environment = if i % 2 == 0 { "staging" } else { "ci" };
            let bundle = Bundle::new(
                rootfs(),
                &["sh", "-c", "/bin/true; tcpdump -D >/dev/null 2>&1; exit 0"],
                Some(environment),
            );
            let container = Container::new(Runtime::Runc);
            let out = container.run_via_shim(&sup, &bundle);
            assert!(out.success(), "{out}");
        }
    };
    // Warm up the allocator, the classifier cache and the alert writer.
    churn(20);
    let settle = || {
        wait_until(Duration::from_secs(10), || {
            sup.status()["containers"]
                .as_array()
                .is_some_and(Vec::is_empty)
        })
    };
    assert!(settle(), "containers still attached after warm-up");
    let (fds_before, rss_before) = (proc_fd_count(sup.pid()), proc_rss_kib(sup.pid()));
    churn(200);
    assert!(settle(), "containers still attached after the churn");
    // Lingering records (kept 5 s for late eBPF events) and closed listener
    // fds are released within a few seconds; wait for the fds to come back.
    let returned = wait_until(Duration::from_secs(15), || {
        proc_fd_count(sup.pid()) <= fds_before + 2
    });
    let (fds_after, rss_after) = (proc_fd_count(sup.pid()), proc_rss_kib(sup.pid()));
    eprintln!(
        "200 containers: fds {fds_before} -> {fds_after}, RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert!(returned, "fds grew from {fds_before} to {fds_after}");
    assert!(
        rss_after <= rss_before + rss_before / 4 + 2048,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// The built-in policy plus a standing exception: staging containers of the
/// network team may run tcpdump (audited).
fn policy_with_allow_rule() -> String {
    let builtin =
        std::fs::read_to_string(sniffguard_tests::repo_root().join("config/sniffguard.toml"))
            .expect("config/sniffguard.toml");
    format!(
        "{builtin}\n[[allow]]\nreason = \"network team debugging\"\nenvironment = \"staging\"\n\
         annotations = {{ \"team\" = \"netdebug\" }}\nnames = [\"tcpdump\"]\n"
    )
}

/// What `tcpdump -D` does in each container: the allowed and the granted one
/// run it (exit 0, not killed in the kernel), the plain staging one is refused.
fn check_exceptions(sup: &Supervisor, containers: &[(&str, &Container)], when: &str) {
    for (what, container) in containers {
        let out = container.exec_via_shim(sup, &["tcpdump", "-D"]);
        if *what == "plain" {
            assert!(
                !out.success() && out.mentions("operation not permitted"),
                "{when}: tcpdump ran in the plain staging container: {out}\n{}",
                sup.report()
            );
        } else {
            assert!(
                out.success(),
                "{when}: tcpdump did not run in the {what} container: {out}\n{}",
                sup.report()
            );
        }
    }
}

/// Issue 19, part 2: whether the in-kernel kill is armed is decided in one
/// place, from the policy, the grants and the container. A restart (which
/// restores registrations and grants) and a reload (`SIGHUP`) keep an
/// `[[allow]]`-ed and a granted container's tcpdump running, and a plain
/// staging container's refused.
#[test]
fn exceptions_hold_across_restart_and_reload() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(Some(&policy_with_allow_rule()));
    let bundles = [
        Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")).annotation("team", "netdebug"),
        Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")),
        Bundle::new(rootfs(), &["sleep", "3600"], Some("staging")),
    ];
    let containers: Vec<Container> = bundles
        .iter()
        .map(|_| Container::new(Runtime::Runc))
        .collect();
    for (container, bundle) in containers.iter().zip(&bundles) {
        let out = container.create_detached_via_shim(&sup, bundle);
        assert!(out.success(), "{out}\n{}", sup.report());
    }
    let named = [
        ("allowed", &containers[0]),
        ("granted", &containers[1]),
        ("plain", &containers[2]),
    ];
    let granted = sup.api_request(&format!(
        r#"{{"type":"grant","container":"{}","seconds":600,"by":"test","reason":"restart test"}}"#,
        containers[1].id()
    ));
    assert!(granted.contains(r#""type":"ok""#), "{granted}");
    check_exceptions(&sup, &named, "before the restart");

    sup.stop_with(Signal::SIGTERM);
    sup.restart();
    check_exceptions(&sup, &named, "after the restart");
    let status = sup.status();
    assert!(
        status["grants"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["container"] == containers[1].id())),
        "the grant did not survive the restart: {status}"
    );

    let reloads = sup.stderr_log().matches("policy reloaded").count();
    sup.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || sup
            .stderr_log()
            .matches("policy reloaded")
            .count()
            > reloads),
        "no reload\n{}",
        sup.report()
    );
    check_exceptions(&sup, &named, "after a reload");
}

/// Issue 19, part 4: a container that started while no supervisor answered
/// (a `ci` container fails open) is attached to the eBPF probes when the
/// supervisor comes back: listed as such by `status`, alerted once, and its
/// sniffers seen from then on.
#[test]
fn a_container_started_while_the_supervisor_was_away_is_attached_when_it_returns() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    sup.stop_with(Signal::SIGTERM);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("ci"));
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "a ci container fails open: {out}");
    assert!(
        out.stderr_mentions("without"),
        "no fail-open warning: {out}"
    );

    sup.restart();
    let alert = sup
        .wait_alert(
            |a| sniffguard_tests::is_alert_for(a, container.id()) && a["mechanism"] == "reattach",
            sniffguard_tests::ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("no alert about the unsupervised start\n{}", sup.report()));
    assert!(
        sniffguard_tests::evidence_kinds(&alert).contains(&"started_unsupervised".to_string()),
        "{alert}"
    );
    let status = sup.status();
    assert!(
        status["unsupervised"].as_array().is_some_and(|u| u
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.starts_with(container.id())))),
        "{status}"
    );
    // Seen from now on: tcpdump in it is alerted by the exec probe.
    let ran = container.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(ran.success(), "{ran}");
    let seen = sup.wait_alert(
        |a| {
            sniffguard_tests::is_alert_for(a, container.id())
                && a["action"] == "allowed"
                && a["mechanism"] == "exec_probe"
        },
        sniffguard_tests::ALERT_TIMEOUT,
    );
    assert!(seen.is_some(), "tcpdump went unseen\n{}", sup.report());
}

/// A reload says which changed sections apply only after a restart ([alerts]
/// and [metrics] are set up once) instead of logging "policy reloaded" alone.
#[test]
fn a_reload_says_which_changes_need_a_restart() {
    if !require_root() {
        return;
    }
    let builtin =
        std::fs::read_to_string(sniffguard_tests::repo_root().join("config/sniffguard.toml"))
            .expect("config/sniffguard.toml");
    let mut sup = Supervisor::start(Some(&builtin));
    let path = sup.runtime_dir().join("policy.toml");
    assert!(
        path.exists(),
        "the harness keeps the policy at {}",
        path.display()
    );
    std::fs::write(
        &path,
        builtin.replace("format = \"sniffguard\"", "format = \"falco\""),
    )
    .unwrap();
    sup.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || sup
            .stderr_log()
            .contains("apply only after a restart")),
        "no word about [alerts]\n{}",
        sup.report()
    );
    assert!(sup.stderr_log().contains("[alerts]"), "{}", sup.report());
}
