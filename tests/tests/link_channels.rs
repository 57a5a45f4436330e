//! Capture widened over rtnetlink (issue 18): with `CAP_NET_ADMIN` (which VPN
//! and mesh sidecars keep) a process can put an interface into promiscuous
//! mode with an `RTM_NEWLINK` message, or have tc mirror an interface's
//! traffic to another device with a `mirred` action (`RTM_NEWTFILTER`), on a
//! `NETLINK_ROUTE` socket: no capture socket, no ioctl. The static helper
//! `tests/helpers/rtlink.c` sends both messages by hand (any name, no
//! iproute2) and reads back their effect: `IFF_PROMISC` by `SIOCGIFFLAGS`,
//! and the packets a veth peer received while `udpgen` sends on `lo`. The
//! veth pair and the clsact qdisc the filter hangs on are made from the host
//! in the container's network namespace, so that the helper sends nothing but
//! the technique itself.
//!
//! - ci: the technique works (the positive control) and an `allowed` alert
//!   names it (`promiscuous` with `RTM_NEWLINK`, `mirroring` with
//!   `tc mirred (RTM_NEWTFILTER)`) and the program that sent it;
//! - staging (runc and crun): the sender is killed by the probe as its
//!   request enters the kernel, and alerted `killed`;
//! - staging, once the sender is dead: promiscuous mode is back off, and the
//!   tc filter is gone (traffic sent after the alert reaches the mirror's
//!   target no more), both undone by the supervisor's network broker;
//! - staging, the stronger guarantee: the flag is never set and nothing is
//!   mirrored. The kill lands as the call returns, after the kernel applied
//!   the request, so this waits for a kernel that can refuse one netlink
//!   message (`#[ignore]`d until then);
//! - iproute2's own `ip` and `tc` (copied in with their libraries): the alert
//!   names them, and an ordinary `ip link set lo up` raises nothing.
//!
//! Needs root, the built workspace, runc, crun, iproute2 (ip, tc), nsenter
//! and gcc.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sniffguard_tests::{
    helpers_dir, is_alert_for, remove_at_exit, require_root, rootfs, run_command, str_at, temp_dir,
    Bundle, Container, Runtime, Supervisor, COMMAND_TIMEOUT,
};

/// Packets the veth peer must receive while traffic flows on `lo` for the
/// mirror to count as working (`udpgen` sends 20 datagrams in 400 ms, each
/// seen on lo's egress, and so are the port-unreachable answers).
const MIRRORED_AT_LEAST: u64 = 10;

fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-link-helpers-",
            &[
                ("rtlink", include_str!("../helpers/rtlink.c")),
                ("udpgen", include_str!("../helpers/udpgen.c")),
            ],
        )
    })
}

/// The host's `ip` and `tc` with every library `ldd` lists, for
/// `LD_LIBRARY_PATH=/iproute2/lib /iproute2/ip …` in the test rootfs (which
/// has the same loader and libc: the host's).
fn iproute2() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("sniffguard-iproute2-").keep();
        remove_at_exit(dir.clone());
        let lib = dir.join("lib");
        std::fs::create_dir(&lib).unwrap();
        for tool in ["ip", "tc"] {
            let path = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} not found (apt-get install iproute2)"));
            std::fs::copy(&path, dir.join(tool)).unwrap();
            let ldd = run_command(Command::new("ldd").arg(&path), COMMAND_TIMEOUT);
            assert!(ldd.success(), "{ldd}");
            for library in ldd
                .stdout
                .lines()
                .filter_map(|l| l.split("=>").nth(1))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|l| l.starts_with('/'))
            {
                let name = Path::new(library).file_name().unwrap();
                std::fs::copy(library, lib.join(name)).unwrap();
            }
        }
        let chmod = run_command(
            Command::new("chmod").args(["-R", "a+rX"]).arg(&dir),
            COMMAND_TIMEOUT,
        );
        assert!(chmod.success(), "{chmod}");
        dir
    })
}

/// What a case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Technique {
    /// `rtlink promisc lo`.
    Promisc,
    /// `rtlink promisc lo`, then a bounded watch (5 s) for the flag to go
    /// off again.
    PromiscThenWatch,
    /// `rtlink mirror lo sgm0`, traffic on lo, packets counted on sgm1.
    Mirror,
    /// iproute2's `ip link set lo promisc on`.
    IpPromisc,
    /// iproute2's `tc filter add … action mirred egress mirror dev sgm0`.
    TcMirror,
    /// iproute2's `ip link set lo up`: ordinary link management.
    IpUp,
}

impl Technique {
    /// The container's script once the host has prepared its namespace;
    /// `then` runs between the request and the traffic that shows a mirror.
    fn script(self, then: &str) -> String {
        let script = match self {
            Technique::Promisc => {
                "/helpers/rtlink flags lo; /helpers/rtlink promisc lo; echo rc=$?; \
                 /helpers/rtlink flags lo"
            }
            Technique::PromiscThenWatch => {
                "/helpers/rtlink promisc lo; echo rc=$?; i=0; while [ $i -lt 100 ]; do \
                 if /helpers/rtlink flags lo | grep -q 'promisc: off'; then \
                 echo promisc went off; break; fi; sleep 0.05; i=$((i+1)); done; \
                 /helpers/rtlink flags lo"
            }
            Technique::IpPromisc => {
                "LD_LIBRARY_PATH=/iproute2/lib /iproute2/ip link set lo promisc on; echo rc=$?; \
                 /helpers/rtlink flags lo"
            }
            Technique::Mirror => {
                "echo before: $(/helpers/rtlink rx sgm1); /helpers/rtlink mirror lo sgm0; \
                 echo rc=$?; THEN /helpers/udpgen $$ 400 >/dev/null 2>&1; \
                 echo after: $(/helpers/rtlink rx sgm1)"
            }
            Technique::TcMirror => {
                "echo before: $(/helpers/rtlink rx sgm1); \
                 LD_LIBRARY_PATH=/iproute2/lib /iproute2/tc filter add dev lo egress protocol all \
                 u32 match u32 0 0 action mirred egress mirror dev sgm0; echo rc=$?; \
                 THEN /helpers/udpgen $$ 400 >/dev/null 2>&1; echo after: $(/helpers/rtlink rx sgm1)"
            }
            Technique::IpUp => {
                "LD_LIBRARY_PATH=/iproute2/lib /iproute2/ip link set lo up; echo rc=$?"
            }
        };
        script.replace("THEN ", then)
    }

    /// The evidence kind and method an alert must carry.
    fn evidence(self) -> (&'static str, &'static str) {
        match self {
            Technique::Promisc | Technique::PromiscThenWatch | Technique::IpPromisc => {
                ("promiscuous", "RTM_NEWLINK")
            }
            Technique::Mirror | Technique::TcMirror => ("mirroring", "tc mirred (RTM_NEWTFILTER)"),
            Technique::IpUp => ("none", "none"),
        }
    }

    /// How the program sends: the helper with `sendto`, iproute2 with
    /// `sendmsg`.
    fn syscall(self) -> &'static str {
        match self {
            Technique::Promisc | Technique::PromiscThenWatch | Technique::Mirror => "sendto",
            _ => "sendmsg",
        }
    }

    /// The program that sends the request (its `comm`).
    fn program(self) -> &'static str {
        match self {
            Technique::Promisc | Technique::PromiscThenWatch | Technique::Mirror => "rtlink",
            Technique::IpPromisc | Technique::IpUp => "ip",
            Technique::TcMirror => "tc",
        }
    }
}

/// What the container printed.
struct Outcome {
    container: Container,
    output: String,
}

impl Outcome {
    fn number_after(&self, prefix: &str) -> Option<u64> {
        self.output
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().last())
            .and_then(|n| n.parse().ok())
    }

    /// Packets sgm1 received after the filter request, while traffic flowed.
    fn mirrored(&self) -> u64 {
        let before = self.number_after("before: rx sgm1");
        let after = self.number_after("after: rx sgm1");
        match (before, after) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => panic!("no packet counts: {}", self.output),
        }
    }

    /// Whether lo was promiscuous when the script last looked.
    fn promisc_at_end(&self) -> bool {
        let last = self
            .output
            .lines()
            .rfind(|l| l.starts_with("promisc: "))
            .unwrap_or_else(|| panic!("no flags read: {}", self.output));
        last == "promisc: on"
    }

    fn killed(&self) -> bool {
        self.output.contains("rc=137")
    }
}

/// Runs `technique` in a container of `environment`, once the host has given
/// its network namespace a veth pair (sgm0, sgm1, IPv6 off so that nothing
/// else crosses it) and a clsact qdisc on lo.
fn run(sup: &Supervisor, runtime: Runtime, environment: &str, technique: Technique) -> Outcome {
    run_checked(sup, runtime, environment, technique, None)
}

/// Called with the container and its init's pid between a mirroring request
/// and the traffic that would show it.
type Check<'a> = &'a dyn Fn(&Container, u64);

/// [`run`], with `check` called between the request and the traffic: the
/// script waits (bounded, 10 s) for it to return.
fn run_checked(
    sup: &Supervisor,
    runtime: Runtime,
    environment: &str,
    technique: Technique,
    check: Option<Check<'_>>,
) -> Outcome {
    let shared = temp_dir("sniffguard-link-");
    let then = if check.is_some() {
        "i=0; while [ ! -e /x/checked ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
    } else {
        ""
    };
    let script = format!(
        "ip link set lo up || exit 90; while [ ! -e /x/go ]; do sleep 0.05; done; {}",
        technique.script(then)
    );
    let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some(environment))
        .bind_ro(helpers(), "/helpers")
        .bind_ro(iproute2(), "/iproute2")
        .bind_rw(shared.path(), "/x");
    let container = Container::new(runtime);
    let out = std::thread::scope(|scope| {
        let running = scope.spawn(|| container.run_via_shim(sup, &bundle));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let pid = loop {
            if let Some(pid) = container.state().and_then(|s| s["pid"].as_u64()) {
                break Some(pid);
            }
            if running.is_finished() || Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(pid) = pid {
            let prepare = run_command(
                Command::new("nsenter")
                    .arg("-t")
                    .arg(pid.to_string())
                    .args(["-n", "sh", "-ec"])
                    .arg(
                        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
                         net.ipv6.conf.default.disable_ipv6=1; \
                         ip link add sgm0 type veth peer name sgm1; \
                         ip link set sgm0 up; ip link set sgm1 up; \
                         tc qdisc add dev lo clsact",
                    ),
                COMMAND_TIMEOUT,
            );
            assert!(prepare.success(), "{prepare}");
        }
        std::fs::write(shared.path().join("go"), "").unwrap();
        if let (Some(check), Some(pid)) = (check, pid) {
            check(&container, pid);
            std::fs::write(shared.path().join("checked"), "").unwrap();
        }
        running.join().unwrap()
    });
    Outcome {
        container,
        output: format!("{}{}", out.stdout, out.stderr),
    }
}

/// The first alert about the container whose evidence includes `kind`.
fn alert_with(sup: &Supervisor, id: &str, kind: &str) -> Value {
    sup.wait_alert_with_evidence(id, kind)
}

/// The alert says what was done, how and by which program.
fn check_alert(alert: &Value, technique: Technique, action: &str) {
    let (kind, method) = technique.evidence();
    assert_eq!(str_at(alert, "/action"), Some(action), "{alert}");
    assert_eq!(str_at(alert, "/mechanism"), Some("socket_probe"), "{alert}");
    assert_eq!(
        str_at(alert, "/syscall"),
        Some(technique.syscall()),
        "{alert}"
    );
    let evidence = alert["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|e| str_at(e, "/kind") == Some(kind)))
        .unwrap_or_else(|| panic!("no {kind}: {alert}"));
    assert_eq!(str_at(evidence, "/method"), Some(method), "{alert}");
    assert_eq!(
        str_at(alert, "/process/comm"),
        Some(technique.program()),
        "{alert}"
    );
}

#[test]
fn rtnetlink_promiscuous_mode_and_mirroring_are_alerted_in_audit() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let promisc = run(&sup, Runtime::Runc, "ci", Technique::Promisc);
    assert!(
        promisc.output.contains("request: ok") && promisc.promisc_at_end(),
        "the positive control did not set IFF_PROMISC: {}",
        promisc.output
    );
    check_alert(
        &alert_with(&sup, promisc.container.id(), "promiscuous"),
        Technique::Promisc,
        "allowed",
    );
    let mirror = run(&sup, Runtime::Runc, "ci", Technique::Mirror);
    assert!(
        mirror.output.contains("filter: installed") && mirror.mirrored() >= MIRRORED_AT_LEAST,
        "the positive control mirrored nothing: {}",
        mirror.output
    );
    check_alert(
        &alert_with(&sup, mirror.container.id(), "mirroring"),
        Technique::Mirror,
        "allowed",
    );
}

#[test]
fn iproute2_is_named_for_these_channels_and_ordinary_link_management_is_quiet() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let up = run(&sup, Runtime::Runc, "ci", Technique::IpUp);
    assert!(up.output.contains("rc=0"), "{}", up.output);
    for technique in [Technique::IpPromisc, Technique::TcMirror] {
        let run = run(&sup, Runtime::Runc, "ci", technique);
        assert!(run.output.contains("rc=0"), "{technique:?}: {}", run.output);
        let (kind, _) = technique.evidence();
        check_alert(
            &alert_with(&sup, run.container.id(), kind),
            technique,
            "allowed",
        );
    }
    // Both later alerts have been read: `ip link set lo up` raised nothing.
    assert!(
        !sup.alerts_so_far()
            .iter()
            .any(|a| is_alert_for(a, up.container.id())),
        "ip link set lo up was alerted\n{}",
        sup.report()
    );
}

#[test]
fn rtnetlink_senders_are_killed_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        for technique in [Technique::Promisc, Technique::Mirror, Technique::TcMirror] {
            let run = run(&sup, runtime, "staging", technique);
            assert!(
                run.killed(),
                "{runtime:?} {technique:?}: the sender was not killed: {}",
                run.output
            );
            let (kind, _) = technique.evidence();
            check_alert(
                &alert_with(&sup, run.container.id(), kind),
                technique,
                "killed",
            );
        }
    }
}

#[test]
#[ignore = "blocked by the kernel: nothing here refuses one netlink message (no BPF-LSM, no \
            kprobe override; the opener check of a NETLINK_ROUTE socket is skipped for sends with \
            a destination address), so the kill lands after the kernel applied the request: the \
            flag is on, and a tc filter mirrors, until the broker undoes them \
            (promiscuous_mode_set_over_rtnetlink_is_turned_back_off_in_enforce, \
            tc_mirroring_installed_over_rtnetlink_is_removed_in_enforce)"]
fn rtnetlink_requests_take_no_effect_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let promisc = run(&sup, runtime, "staging", Technique::Promisc);
        assert!(
            !promisc.promisc_at_end(),
            "{runtime:?}: IFF_PROMISC was set: {}",
            promisc.output
        );
        alert_with(&sup, promisc.container.id(), "promiscuous");
        for technique in [Technique::Mirror, Technique::TcMirror] {
            let mirror = run(&sup, runtime, "staging", technique);
            assert!(
                mirror.mirrored() < MIRRORED_AT_LEAST,
                "{runtime:?} {technique:?}: traffic was mirrored: {}",
                mirror.output
            );
            alert_with(&sup, mirror.container.id(), "mirroring");
        }
    }
}

#[test]
fn tc_mirroring_installed_over_rtnetlink_is_removed_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        for technique in [Technique::Mirror, Technique::TcMirror] {
            // Once the alert is out the broker has answered: the filter the
            // killed sender installed must be gone from lo's egress.
            let check =
                |container: &Container, pid: u64| {
                    let alert = alert_with(&sup, container.id(), "mirroring");
                    assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
                    assert!(
                    alert.to_string().contains("tc mirroring removed (1 filter(s)"),
                    "{runtime:?} {technique:?}: the alert does not say the filter was removed: \
                     {alert}"
                );
                    let shown = run_command(
                        Command::new("nsenter")
                            .arg("-t")
                            .arg(pid.to_string())
                            .args(["-n", "tc", "filter", "show", "dev", "lo", "egress"]),
                        COMMAND_TIMEOUT,
                    );
                    assert!(shown.success(), "{shown}");
                    assert!(
                        !shown.stdout.contains("mirred"),
                        "{runtime:?} {technique:?}: a mirred filter is still on lo: {shown}"
                    );
                };
            let mirror = run_checked(&sup, runtime, "staging", technique, Some(&check));
            assert!(
                mirror.killed(),
                "{runtime:?} {technique:?}: {}",
                mirror.output
            );
            // Traffic after the removal: nothing reaches the mirror's target.
            assert!(
                mirror.mirrored() < MIRRORED_AT_LEAST,
                "{runtime:?} {technique:?}: traffic was mirrored: {}",
                mirror.output
            );
        }
    }
}

#[test]
fn promiscuous_mode_set_over_rtnetlink_is_turned_back_off_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let promisc = run(&sup, runtime, "staging", Technique::PromiscThenWatch);
        assert!(promisc.killed(), "{runtime:?}: {}", promisc.output);
        let alert = alert_with(&sup, promisc.container.id(), "promiscuous");
        assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
        assert!(
            alert
                .to_string()
                .contains("promiscuous mode turned back off (1 interface(s) had it)"),
            "{runtime:?}: the alert does not say the flag was cleared: {alert}"
        );
        // A second process of the container watched the flag (bounded) after
        // the sender died: it goes off again.
        assert!(
            promisc.output.contains("promisc went off"),
            "{runtime:?}: the flag stayed on: {}",
            promisc.output
        );
    }
}
