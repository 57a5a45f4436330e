//! Channels that copy traffic rather than read it from a socket (issue 18):
//! eBPF programs that see every frame of an interface or socket, loaded with
//! `bpf(BPF_PROG_LOAD)` (`tests/helpers/bpfload.c`), and nf_tables rules that
//! duplicate packets to another address — nft's `dup` and x_tables' `TEE`
//! through iptables-nft's compat expression (`tests/helpers/mirror.c` sends
//! the batch those tools send, by hand). The helpers are static programs with
//! no catalogued name; the containers keep `CAP_NET_ADMIN` (and get
//! `CAP_BPF`), as sidecars that manage the network do.
//!
//! - ci: the load and the mirroring work (the positive controls: the program
//!   loads; a datagram on lo arrives twice) and are alerted (`bpf_program`,
//!   `mirroring`); plain rule management and a program type that cannot
//!   capture raise nothing;
//! - staging: the program load is refused by the seccomp filter (`EPERM`,
//!   `bpf_program`); the netfilter socket itself is refused
//!   (`netfilter_socket`);
//! - an enforce environment with `netfilter_management = true`: rule
//!   management works, and the process that sends a mirroring rule to the
//!   kernel's netlink address is killed by the probe as the send enters
//!   (`killed`); the kernel then drops the whole batch, which a second process
//!   sees (one copy, not two). Sent without an address (send(2) on a connected
//!   socket) the same holds, as the probe saw the fd opened as a netfilter
//!   socket. With `bpf_programs = true` a load runs unreported.
//!
//! Needs root, the built workspace, runc, crun and gcc.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use sniffguard_tests::{
    helpers_dir, is_alert_for, require_root, rootfs, str_at, Bundle, CmdOutput, Container, Runtime,
    Supervisor,
};

/// Two enforce environments: `managed` lets its containers manage netfilter,
/// `staging` does not (`fail = "closed"` makes it the stricter one, so a
/// container's annotation may choose it over the default).
const MANAGED_POLICY: &str = "default_environment = \"managed\"\n\
     [environments.managed]\nmode = \"enforce\"\nnetfilter_management = true\n\
     [environments.staging]\nmode = \"enforce\"\nfail = \"closed\"\n";

/// A staging environment that lets its containers load eBPF programs.
const BPF_POLICY: &str = "default_environment = \"staging\"\n\
     [environments.staging]\nmode = \"enforce\"\nbpf_programs = true\n";

fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-mirror-helpers-",
            &[
                ("mirror", include_str!("../helpers/mirror.c")),
                ("bpfload", include_str!("../helpers/bpfload.c")),
            ],
        )
    })
}

/// Runs `script` (sh) in a container of `environment` that may load eBPF
/// programs (`CAP_BPF` besides the harness's `CAP_NET_ADMIN`).
fn run(
    sup: &Supervisor,
    runtime: Runtime,
    environment: &str,
    script: &str,
) -> (Container, CmdOutput) {
    let bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some(environment))
        .bind_ro(helpers(), "/helpers")
        .edit(|spec| {
            for set in ["bounding", "effective", "permitted"] {
                if let Some(list) = spec["process"]["capabilities"][set].as_array_mut() {
                    list.push(Value::from("CAP_BPF"));
                }
            }
        });
    let container = Container::new(runtime);
    let out = container.run_via_shim(sup, &bundle);
    (container, out)
}

/// The first alert about the container whose evidence includes `kind`.
fn alert_with(sup: &Supervisor, id: &str, kind: &str) -> Value {
    sup.wait_alert_with_evidence(id, kind)
}

/// The evidence item of `kind` in `alert`.
fn evidence<'a>(alert: &'a Value, kind: &str) -> &'a Value {
    alert["evidence"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} evidence in {alert}"))
}

/// Asserts no alert names `id`, once the alert for the later container
/// `marker` (whose evidence includes `kind`) has arrived: alerts are written
/// in order, so anything about `id` would be there by then.
fn assert_quiet(sup: &Supervisor, id: &str, marker: &str, kind: &str) {
    alert_with(sup, marker, kind);
    let about: Vec<Value> = sup
        .alerts_so_far()
        .into_iter()
        .filter(|a| is_alert_for(a, id))
        .collect();
    assert!(about.is_empty(), "{id} was alerted: {about:?}");
}

const LO_UP: &str = "ip link set lo up || exit 90; ";

#[test]
fn bpf_program_loads_are_alerted_in_audit_and_refused_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (xdp, out) = run(&sup, Runtime::Runc, "ci", "/helpers/bpfload xdp");
    assert!(out.stdout.contains("xdp: loaded"), "{out}");
    let alert = alert_with(&sup, xdp.id(), "bpf_program");
    assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
    assert_eq!(
        str_at(&alert, "/mechanism"),
        Some("socket_probe"),
        "{alert}"
    );
    assert_eq!(str_at(&alert, "/syscall"), Some("bpf"), "{alert}");
    assert_eq!(
        evidence(&alert, "bpf_program")["program_type"],
        "BPF_PROG_TYPE_XDP"
    );
    // A program that cannot see other traffic is no evidence in audit.
    let (cgroup, out) = run(&sup, Runtime::Runc, "ci", "/helpers/bpfload cgroup");
    assert!(out.stdout.contains("cgroup: loaded"), "{out}");
    let (marker, _) = run(&sup, Runtime::Runc, "ci", "/helpers/bpfload socket");
    assert_quiet(&sup, cgroup.id(), marker.id(), "bpf_program");

    for runtime in [Runtime::Runc, Runtime::Crun] {
        let (container, out) = run(&sup, runtime, "staging", "/helpers/bpfload socket");
        assert!(
            out.stdout.contains("socket: Operation not permitted"),
            "{runtime:?}: {out}"
        );
        let alert = alert_with(&sup, container.id(), "bpf_program");
        assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
        assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
        assert_eq!(
            evidence(&alert, "bpf_program")["program_type"],
            "BPF_PROG_TYPE_SOCKET_FILTER"
        );
    }
}

#[test]
fn an_environment_may_allow_bpf_programs() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(BPF_POLICY));
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let (loader, out) = run(&sup, runtime, "staging", "/helpers/bpfload xdp");
        assert!(out.stdout.contains("xdp: loaded"), "{runtime:?}: {out}");
        // The marker: a capture socket in the same environment is refused.
        let (marker, _) = run(&sup, runtime, "staging", "/usr/bin/tcpdump -D");
        assert_quiet(&sup, loader.id(), marker.id(), "catalogue_name");
    }
}

#[test]
fn nft_dup_and_iptables_tee_are_alerted_in_audit() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    // The `-odd` modes write the name attributes the other ways the kernel
    // accepts (no NUL, a flag bit in the type, bytes after the NUL).
    for (mode, method) in [
        ("dup", "nft dup"),
        ("tee", "iptables TEE"),
        ("dup-odd", "nft dup"),
        ("tee-odd", "iptables TEE"),
    ] {
        let (container, out) = run(
            &sup,
            Runtime::Runc,
            "ci",
            &format!("{LO_UP}/helpers/mirror {mode}"),
        );
        assert!(out.stdout.contains("batch: ok"), "{mode}: {out}");
        assert!(
            out.stdout.contains("copies 2"),
            "{mode}: the positive control saw no copy: {out}"
        );
        let alert = alert_with(&sup, container.id(), "mirroring");
        assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
        assert_eq!(str_at(&alert, "/syscall"), Some("sendto"), "{alert}");
        assert_eq!(evidence(&alert, "mirroring")["method"], method);
    }
    // Tables, chains and a plain rule: management, no mirroring, no alert;
    // also in a table named like the expressions looked for.
    let (managed, out) = run(
        &sup,
        Runtime::Runc,
        "ci",
        &format!(
            "{LO_UP}/helpers/mirror manage; /helpers/mirror manage TEE; /helpers/mirror manage dup"
        ),
    );
    assert_eq!(out.stdout.matches("batch: ok").count(), 3, "{out}");
    assert!(!out.stdout.contains("copies 2"), "{out}");
    let (marker, _) = run(
        &sup,
        Runtime::Runc,
        "ci",
        &format!("{LO_UP}/helpers/mirror dup"),
    );
    assert_quiet(&sup, managed.id(), marker.id(), "mirroring");
}

#[test]
fn mirroring_is_stopped_in_enforce() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(MANAGED_POLICY));
    for runtime in [Runtime::Runc, Runtime::Crun] {
        // Without netfilter_management the socket itself is refused.
        let (container, out) = run(
            &sup,
            runtime,
            "staging",
            &format!("{LO_UP}/helpers/mirror dup"),
        );
        assert!(
            out.stdout.contains("socket: Operation not permitted"),
            "{runtime:?}: {out}"
        );
        let alert = alert_with(&sup, container.id(), "netfilter_socket");
        assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
        // With it, rule management works and mirroring is not.
        let (_, out) = run(
            &sup,
            runtime,
            "managed",
            &format!("{LO_UP}/helpers/mirror manage"),
        );
        assert!(out.stdout.contains("batch: ok"), "{runtime:?}: {out}");
        for (mode, method) in [("dup", "nft dup"), ("tee", "iptables TEE")] {
            // After the sender is gone, another process looks at what the
            // kernel kept. The SIGKILL is sent as the send enters;
            // nfnetlink checks for a fatal signal before each message of a
            // batch and aborts the whole batch (net/netfilter/nfnetlink.c,
            // nfnetlink_rcv_batch): nothing is committed, so no copy.
            let (container, out) = run(
                &sup,
                runtime,
                "managed",
                &format!("{LO_UP}/helpers/mirror {mode}; echo rc=$?; /helpers/mirror count"),
            );
            assert!(
                out.stdout.contains("rc=137"),
                "{runtime:?} {mode}: the sender was not killed: {out}"
            );
            assert!(
                !out.stdout.contains("batch: ok"),
                "{runtime:?} {mode}: {out}"
            );
            let alert = alert_with(&sup, container.id(), "mirroring");
            assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
            assert_eq!(evidence(&alert, "mirroring")["method"], method);
            assert!(
                out.stdout.contains("copies 1"),
                "{runtime:?} {mode}: the rule was installed: {out}"
            );
        }
        // The batch sent with send(2) on a connected socket, no address: the
        // probe saw the process open that fd as a netfilter socket, so it
        // kills on the bytes all the same (a socket it cannot tell, a proxy's
        // TCP stream, it leaves to the supervisor), and the batch is dropped.
        let (container, out) = run(
            &sup,
            runtime,
            "managed",
            &format!("{LO_UP}/helpers/mirror dup connected; echo rc=$?; /helpers/mirror count"),
        );
        assert!(out.stdout.contains("rc=137"), "{runtime:?}: {out}");
        let alert = alert_with(&sup, container.id(), "mirroring");
        assert_eq!(str_at(&alert, "/action"), Some("killed"), "{alert}");
        assert!(
            out.stdout.contains("copies 1"),
            "{runtime:?} dup connected: the rule was installed: {out}"
        );
        eprintln!(
            "{runtime:?} dup connected: {}",
            out.stdout.replace('\n', " | ")
        );
    }
}
