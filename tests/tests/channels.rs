//! Capture through netfilter (issue 18): an NFLOG group or an NFQUEUE queue
//! bound on a `NETLINK_NETFILTER` socket reads the packets a rule sends it —
//! what `tcpdump -i nflog:N` does — with no packet socket at all. The sniffer
//! here is a static program (`tests/helpers/nflog.c`) with no catalogued name
//! and no libpcap; the container keeps `CAP_NET_ADMIN`, as VPN and mesh
//! sidecars do, and the rule that feeds the group is set from the host in the
//! container's network namespace (the rootfs has no iptables).
//!
//! - ci: the capture works (the positive control) and is alerted with the
//!   channel's evidence (`netfilter_log`, `netfilter_queue`);
//! - staging: the netfilter socket itself is refused (`netfilter_socket`), so
//!   nothing is captured;
//! - staging with `netfilter_management = true`: rule management still works,
//!   and the process that binds a group or queue is killed as its request
//!   returns, before it reads a packet (`killed`).
//!
//! Needs root, the built workspace, runc, crun, iptables, nsenter and gcc.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sniffguard_tests::{
    helpers_dir, is_alert_for, require_root, rootfs, run_command, str_at, temp_dir, Bundle,
    Container, Runtime, Supervisor, COMMAND_TIMEOUT,
};

/// The NFLOG group / NFQUEUE queue number the rule feeds.
const GROUP: &str = "7";

/// A staging environment that lets its containers manage netfilter.
const MANAGED_POLICY: &str = "default_environment = \"staging\"\n\
     [environments.staging]\nmode = \"enforce\"\nnetfilter_management = true\n";

/// `sockets xdp` opens an `AF_XDP` socket, `sockets ulog` one of the legacy
/// ULOG netlink family, and says how it went.
const SOCKETS_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int xdp = argc > 1 && strcmp(argv[1], "xdp") == 0;
    int fd = xdp ? socket(44 /* AF_XDP */, SOCK_RAW, 0)
                 : socket(AF_NETLINK, SOCK_RAW, 5 /* NETLINK_NFLOG */);
    printf("%s: %s\n", xdp ? "xdp" : "ulog", fd < 0 ? strerror(errno) : "open");
    return 0;
}
"#;

fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-channel-helpers-",
            &[
                ("nflog", include_str!("../helpers/nflog.c")),
                ("udpgen", include_str!("../helpers/udpgen.c")),
                ("sockets", SOCKETS_C),
            ],
        )
    })
}

/// The channel a case reads through.
#[derive(Clone, Copy, Debug)]
enum Channel {
    Log,
    Queue,
    /// Rule management only (what `nft` does), no capture.
    Manage,
}

impl Channel {
    fn mode(self) -> &'static str {
        match self {
            Channel::Log => "log",
            Channel::Queue => "queue",
            Channel::Manage => "manage",
        }
    }

    /// The iptables target that sends lo's UDP traffic to the channel.
    fn target(self) -> Option<Vec<&'static str>> {
        match self {
            Channel::Log => Some(vec!["NFLOG", "--nflog-group", GROUP]),
            Channel::Queue => Some(vec!["NFQUEUE", "--queue-num", GROUP, "--queue-bypass"]),
            Channel::Manage => None,
        }
    }

    fn evidence(self) -> &'static str {
        match self {
            Channel::Log => "netfilter_log",
            Channel::Queue => "netfilter_queue",
            Channel::Manage => "none",
        }
    }
}

/// What the helper printed and how it ended.
struct Outcome {
    container: Container,
    output: String,
}

impl Outcome {
    fn captured(&self) -> bool {
        self.output
            .lines()
            .any(|l| l.starts_with("captured ") && !l.starts_with("captured 0 "))
    }
}

/// Runs the helper in `channel` mode in a container of `environment`, once
/// the container's network namespace has the rule that feeds the channel.
fn run(sup: &Supervisor, runtime: Runtime, environment: &str, channel: Channel) -> Outcome {
    let shared = temp_dir("sniffguard-channel-");
    let script = format!(
        "ip link set lo up || exit 90; \
         while [ ! -e /x/go ]; do sleep 0.05; done; \
         /helpers/udpgen $$ 4000 >/dev/null 2>&1 & \
         /helpers/nflog {} {GROUP}; echo rc=$?",
        channel.mode()
    );
    let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some(environment))
        .bind_ro(helpers(), "/helpers")
        .bind_rw(shared.path(), "/x");
    let container = Container::new(runtime);
    let out = std::thread::scope(|scope| {
        let running = scope.spawn(|| container.run_via_shim(sup, &bundle));
        // The container waits for /x/go: give its namespace the rule first.
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
        if let (Some(pid), Some(target)) = (pid, channel.target()) {
            let rule = run_command(
                Command::new("nsenter")
                    .arg("-t")
                    .arg(pid.to_string())
                    .args([
                        "-n", "iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "-j",
                    ])
                    .args(target),
                COMMAND_TIMEOUT,
            );
            assert!(rule.success(), "{rule}");
        }
        std::fs::write(shared.path().join("go"), "").unwrap();
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

#[test]
fn netfilter_capture_is_alerted_in_audit() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for channel in [Channel::Log, Channel::Queue] {
        let run = run(&sup, Runtime::Runc, "ci", channel);
        assert!(
            run.captured(),
            "{channel:?}: the positive control captured nothing: {}",
            run.output
        );
        let alert = alert_with(&sup, run.container.id(), channel.evidence());
        assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
        assert_eq!(
            str_at(&alert, "/mechanism"),
            Some("socket_probe"),
            "{alert}"
        );
        assert_eq!(str_at(&alert, "/syscall"), Some("sendto"), "{alert}");
    }
    // Rule management on the same socket family is no capture: it works and
    // raises nothing (the stream is read up to a later capture's alert).
    let managed = run(&sup, Runtime::Runc, "ci", Channel::Manage);
    assert!(
        managed.output.contains("netfilter management works"),
        "{}",
        managed.output
    );
    let marker = run(&sup, Runtime::Runc, "ci", Channel::Log);
    alert_with(&sup, marker.container.id(), "netfilter_log");
    assert!(
        !sup.alerts_so_far()
            .iter()
            .any(|a| is_alert_for(a, managed.container.id())),
        "rule management was alerted\n{}",
        sup.report()
    );
}

#[test]
fn netfilter_sockets_are_refused_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    for runtime in [Runtime::Runc, Runtime::Crun] {
        for channel in [Channel::Log, Channel::Queue] {
            let run = run(&sup, runtime, "staging", channel);
            assert!(!run.captured(), "{runtime:?} {channel:?}: {}", run.output);
            assert!(
                run.output.contains("socket: Operation not permitted"),
                "{runtime:?} {channel:?}: {}",
                run.output
            );
            let alert = alert_with(&sup, run.container.id(), "netfilter_socket");
            assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
            assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
        }
    }
}

#[test]
fn binding_a_group_is_stopped_where_netfilter_management_is_allowed() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(MANAGED_POLICY));
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let managed = run(&sup, runtime, "staging", Channel::Manage);
        assert!(
            managed.output.contains("netfilter management works"),
            "{runtime:?}: {}",
            managed.output
        );
        for channel in [Channel::Log, Channel::Queue] {
            let run = run(&sup, runtime, "staging", channel);
            assert!(!run.captured(), "{runtime:?} {channel:?}: {}", run.output);
            assert!(
                run.output.contains("rc=137"),
                "{runtime:?} {channel:?}: the binder was not killed: {}",
                run.output
            );
            let alert = alert_with(&sup, run.container.id(), channel.evidence());
            assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
            assert_eq!(
                str_at(&alert, "/mechanism"),
                Some("socket_probe"),
                "{alert}"
            );
        }
    }
}

#[test]
fn xdp_and_legacy_ulog_sockets_are_capture_sockets() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let sockets = |runtime: Runtime, environment: &str, which: &str| {
        let container = Container::new(runtime);
        let out = container.run_via_shim(
            &sup,
            &Bundle::new(rootfs(), &["/helpers/sockets", which], Some(environment))
                .bind_ro(helpers(), "/helpers"),
        );
        (container, out)
    };
    // (argument, evidence, what ci sees: the kernel has no ULOG any more, so
    // that socket fails on its own).
    let cases = [
        ("xdp", "xdp_socket", "xdp: open"),
        ("ulog", "netfilter_log", "ulog: "),
    ];
    for (which, kind, ci_sees) in cases {
        let (container, out) = sockets(Runtime::Runc, "ci", which);
        assert!(out.stdout.contains(ci_sees), "{which}: {out}");
        let alert = alert_with(&sup, container.id(), kind);
        assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
        for runtime in [Runtime::Runc, Runtime::Crun] {
            let (container, out) = sockets(runtime, "staging", which);
            assert!(
                out.stdout
                    .contains(&format!("{which}: Operation not permitted")),
                "{runtime:?}: {out}"
            );
            let alert = alert_with(&sup, container.id(), kind);
            assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
        }
    }
}
