//! The base seccomp profile never shadows the capture rule (issue 17 part 2).
//!
//! A static packet-socket reader (`tests/helpers/sniff.c`, mode `packet`:
//! `socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)`, no sniffer's name, no libpcap) runs with
//! CAP_NET_RAW under the seccomp profile a real engine gives the container, into which the
//! runtime shim merges sniffguard's rules:
//!
//! - **Podman 4.3** with its own default profile (containers-common's
//!   `/usr/share/containers/seccomp.json`; no `--security-opt seccomp=`) and Podman's
//!   default capabilities as packaged (containers-common's `containers.conf`, passed as
//!   `--cap-drop all --cap-add …` because the test's private `CONTAINERS_CONF` hides that
//!   file) plus NET_RAW: no CAP_AUDIT_WRITE, so the profile's socket rules are the
//!   *conditional* `ALLOW socket if args[2] != 9` / `if args[0] != 16`, which libseccomp
//!   let win over a capture rule merged beside them. Then with AUDIT_WRITE (one
//!   unconditional rule), then with SYS_ADMIN;
//! - **containerd 1.6**'s RuntimeDefault (`ctr run --seccomp`), NET_RAW with and without
//!   AUDIT_WRITE, and with SYS_ADMIN;
//! - **Docker 20.10**'s default profile (dockerd started by the test, `docker run
//!   --runtime sniffguard`), the same three capability sets. Docker 20.10 passes no
//!   annotations to a runtime, so there the environment is the policy's
//!   `default_environment`;
//! - **hand-written profiles** in plain bundles through the shim, CAP_NET_RAW in every
//!   set: containers-common's profile (as Podman resolves it for its capabilities plus
//!   NET_RAW) with its `defaultAction`, or the actions of its socket rules, changed to
//!   `SCMP_ACT_TRACE` / `SCMP_ACT_LOG`; the profile as it is under crun and with the floor
//!   on; a permissive default with the conditional rules `ALLOW socket if args[0] != 16`
//!   and `ALLOW socket if args[2] != 9` (runc and crun leave out rules whose action is the
//!   default action, so no socket rule of the base reaches the kernel there: it passes
//!   on today's code too); a permissive default with unconditional `SCMP_ACT_TRACE` for
//!   `socket` and io_uring, also with the reader run under a tracer
//!   (`tests/helpers/seccomp_tracer.c`) that continues every TRACE stop.
//!
//! What each test demands:
//! - **staging (enforce)**: the reader prints `sniff: socket(AF_PACKET) failed: Operation
//!   not permitted` and exits 2 (no capture socket), and the supervisor raises an alert
//!   `denied` / `seccomp` / `socket` with `packet_socket` evidence and no `allowed` one:
//!   the merged capture rule decided, not the profile's own rules (and not the socket
//!   probe's after-the-fact kill). Each engine case runs twice: with the capability floor
//!   off (`drop_capabilities = []` in `[environments.staging]`; the container's
//!   `/proc/self/status` must show CAP_NET_RAW effective and bounding, so the merge is
//!   shown to hold on its own) and with the floor on (the built-in default; CAP_NET_RAW
//!   must be gone from every set, and seccomp still decides before the kernel's
//!   capability check, so the alert is the same). CAP_AUDIT_WRITE is checked to be what
//!   the case names. `SCMP_ACT_TRACE` and `SCMP_ACT_LOG` rules and defaults are held to
//!   the same outcome: TRACE answers ENOSYS only while no tracer asks for seccomp events,
//!   and any process in a container can trace its own child and let the call run, so a
//!   TRACE rule does not stand in for the capture rule (the traced test shows why);
//! - **ci (audit)**: the reader captures a packet (`captured N bytes`, N > 0, while
//!   `udpgen` sends UDP on lo) and an `allowed` alert names `packet_socket`.
//!
//! Podman's, containerd's and the bundles' containers get their environment from the
//! `sniffguard.io/environment` annotation over a policy whose default is `ci` (a stricter
//! annotation is taken). Every test prints one `BASE|` line to stderr (see it with
//! `--nocapture`): the case, the container's capabilities and seccomp mode, what the
//! reader printed, and every alert about the container.
//!
//! Needs root, the built workspace, runc, crun, podman, containerd (with ctr), docker.io
//! (dockerd 20.10), busybox-static, tcpdump and gcc (`scripts/setup.sh` installs them).
//! Each test starts its own supervisor and engine (`wiring/`) and removes them, by PID,
//! when it ends.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sniffguard_tests::{
    containers_common_profile, describe_alert, evidence_kinds, helpers_dir, is_alert_for,
    require_root, rootfs, str_at, Bundle, CmdOutput, Container, Runtime, Supervisor, ALERT_TIMEOUT,
    ENVIRONMENT_ANNOTATION,
};
use wiring::containerd::Containerd;
use wiring::docker::Docker;
use wiring::podman::Podman;
use wiring::{replace_once, shipped, ShimWrapper};

/// The packet-socket reader.
const SNIFF_C: &str = include_str!("../helpers/sniff.c");
/// Traffic on lo while the reader waits.
const UDPGEN_C: &str = include_str!("../helpers/udpgen.c");
/// A tracer that continues every SCMP_ACT_TRACE stop.
const TRACER_C: &str = include_str!("../helpers/seccomp_tracer.c");

/// containers-common's default profile, as Podman applies it.
/// containers-common's engine configuration, with Podman's packaged
/// `default_capabilities`.
const CONTAINERS_COMMON_CONF: &str = "/usr/share/containers/containers.conf";

/// How long the alert stream must stay quiet before a test's alerts are taken as
/// complete for its report (a bounded observation window).
const QUIET: Duration = Duration::from_millis(300);

/// `CAP_NET_RAW`'s bit in `/proc/PID/status` capability masks.
const CAP_NET_RAW_BIT: u32 = 13;

/// `CAP_AUDIT_WRITE`'s bit: whether profiles give `socket` conditional rules.
const CAP_AUDIT_WRITE_BIT: u32 = 29;

/// What the reader prints when sniffguard (or the kernel) refuses its socket with EPERM.
const SOCKET_EPERM: &str = "sniff: socket(AF_PACKET) failed: Operation not permitted";

// ---------------------------------------------------------------------------------------
// What a test expects
// ---------------------------------------------------------------------------------------

/// The capability floor of enforce environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// The default: CAP_NET_RAW is removed from every set in enforce environments.
    On,
    /// `drop_capabilities = []` in `[environments.staging]`: the container keeps it.
    Off,
}

/// The outcome a test demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// staging: sniffguard's merged rule refuses the socket (EPERM) and a `denied` /
    /// `seccomp` / `socket` alert with `packet_socket` evidence is raised.
    Denied(Floor),
    /// ci: the reader captures and an `allowed` alert names `packet_socket`.
    Captured,
}

impl Want {
    fn environment(self) -> &'static str {
        match self {
            Want::Captured => "ci",
            Want::Denied(_) => "staging",
        }
    }

    fn floor(self) -> Floor {
        match self {
            Want::Denied(floor) => floor,
            // The floor applies to enforce environments only; ci runs the default.
            Want::Captured => Floor::On,
        }
    }
}

/// The policy for a test: the built-in one (`None`) when it is what the test needs;
/// otherwise the shipped `config/sniffguard.toml` with `default_environment` replaced
/// and, for [`Floor::Off`], `drop_capabilities = []` in `[environments.staging]`.
fn policy(default_environment: &str, floor: Floor) -> Option<String> {
    if default_environment == "ci" && floor == Floor::On {
        return None;
    }
    let text = replace_once(
        &shipped("config/sniffguard.toml"),
        "\ndefault_environment = \"ci\"\n",
        &format!("\ndefault_environment = \"{default_environment}\"\n"),
        "config/sniffguard.toml",
    );
    Some(match floor {
        Floor::On => text,
        Floor::Off => set_in_table(
            &text,
            "[environments.staging]",
            "drop_capabilities",
            "drop_capabilities = []",
        ),
    })
}

/// `text` (TOML) with every assignment of `key` in `table` removed (one-line or
/// multi-line arrays) and `line` inserted right under the table's header.
fn set_in_table(text: &str, table: &str, key: &str, line: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim() == table)
        .unwrap_or_else(|| panic!("no {table} in the policy:\n{text}"));
    let mut out: Vec<&str> = lines[..=header].to_vec();
    out.push(line);
    let mut in_table = true;
    let mut skipping_array = false;
    for l in &lines[header + 1..] {
        let trimmed = l.trim_start();
        if trimmed.starts_with('[') && !skipping_array {
            in_table = false;
        }
        if skipping_array {
            skipping_array = !l.contains(']');
            continue;
        }
        let assigns_key = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if in_table && assigns_key {
            skipping_array = l.contains('[') && !l.contains(']');
            continue;
        }
        out.push(l);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

// ---------------------------------------------------------------------------------------
// The reader and what it printed
// ---------------------------------------------------------------------------------------

/// The helpers (`sniff`, `udpgen`, `seccomp_tracer`), compiled once per test process
/// into a directory that containers bind-mount read-only at `/helpers`; removed at exit.
fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-base-profiles-",
            &[
                ("sniff", SNIFF_C),
                ("udpgen", UDPGEN_C),
                ("seccomp_tracer", TRACER_C),
            ],
        )
    })
}

/// How the reader is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// `exec /helpers/sniff MODE`.
    Plain,
    /// Under `/helpers/seccomp_tracer`, which continues every SCMP_ACT_TRACE stop.
    Traced,
}

/// The container's script: its capability sets and seccomp mode, then for each mode the
/// reader in the background with traffic on lo while it lives (bounded by `udpgen`), its
/// exit status, and its output.
fn script(modes: &[&str], launch: Launch) -> String {
    let launcher = match launch {
        Launch::Plain => "",
        Launch::Traced => "/helpers/seccomp_tracer ",
    };
    let mut text =
        String::from("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|Seccomp):' /proc/self/status\n");
    for mode in modes {
        text.push_str(&format!(
            "( exec {launcher}/helpers/sniff {mode} ) >/tmp/sniff.{mode} 2>&1 & p=$!\n\
             /helpers/udpgen $p >/tmp/udpgen.{mode} 2>&1\n\
             wait $p; echo \"sniff_rc.{mode}=$?\"\n"
        ));
    }
    for mode in modes {
        text.push_str(&format!(
            "echo '--- sniff {mode} ---'; cat /tmp/sniff.{mode} /tmp/udpgen.{mode}\n"
        ));
    }
    text.push_str("echo '--- end ---'\n");
    text
}

/// What one mode of the reader did.
#[derive(Debug)]
struct Sniffed {
    mode: String,
    rc: Option<i64>,
    /// The reader's own output (and udpgen's last line).
    output: String,
    /// Datagrams udpgen sent while the reader lived.
    sent: i64,
}

impl Sniffed {
    /// "captured N bytes" with N > 0.
    fn captured_bytes(&self) -> Option<u64> {
        self.output.lines().find_map(|l| {
            l.strip_prefix("captured ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    fn got_socket(&self) -> bool {
        self.output.contains("capture socket open") || self.output.contains("made packet socket")
    }

    /// The reader's first line (udpgen's is not the reader's).
    fn first_line(&self) -> &str {
        self.output
            .lines()
            .find(|l| !l.starts_with("udpgen "))
            .unwrap_or("<no output>")
    }
}

/// Everything the container printed, parsed.
#[derive(Debug)]
struct Observed {
    out: CmdOutput,
    /// `CapEff` → mask, …, and `Seccomp` → mode.
    status: Vec<(String, u64)>,
    sniffed: Vec<Sniffed>,
}

impl Observed {
    fn parse(out: CmdOutput, modes: &[&str]) -> Observed {
        let stdout = out.stdout.clone();
        let status = stdout
            .lines()
            .take_while(|l| !l.starts_with("--- "))
            .filter_map(|l| {
                let (key, value) = l.split_once(':')?;
                let value = value.trim();
                let parsed = if key == "Seccomp" {
                    value.parse().ok()?
                } else {
                    u64::from_str_radix(value, 16).ok()?
                };
                Some((key.to_owned(), parsed))
            })
            .collect();
        let sniffed = modes
            .iter()
            .map(|mode| {
                let rc = number_after(&stdout, &format!("sniff_rc.{mode}="));
                let output = stdout
                    .split(&format!("--- sniff {mode} ---\n"))
                    .nth(1)
                    .and_then(|rest| rest.split("\n--- ").next())
                    .unwrap_or_default()
                    .to_owned();
                let sent = number_after(&output, "udpgen sent ").unwrap_or(0);
                Sniffed {
                    mode: (*mode).to_owned(),
                    rc,
                    output,
                    sent,
                }
            })
            .collect();
        Observed {
            out,
            status,
            sniffed,
        }
    }

    fn status_value(&self, key: &str) -> Option<u64> {
        self.status.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The capability sets that hold capability number `bit`.
    fn sets_with(&self, bit: u32) -> Vec<String> {
        self.status
            .iter()
            .filter(|(k, v)| k.starts_with("Cap") && v & (1 << bit) != 0)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn mode(&self, mode: &str) -> &Sniffed {
        self.sniffed
            .iter()
            .find(|s| s.mode == mode)
            .unwrap_or_else(|| panic!("no output of mode {mode}: {}", self.out))
    }
}

/// `KEY` followed by a (possibly negative) number anywhere in `text`.
fn number_after(text: &str, key: &str) -> Option<i64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Checking the outcome
// ---------------------------------------------------------------------------------------

fn is_socket_denial(alert: &Value) -> bool {
    str_at(alert, "/action") == Some("denied") && str_at(alert, "/syscall") == Some("socket")
}

fn is_packet_socket_allowed(alert: &Value) -> bool {
    str_at(alert, "/action") == Some("allowed")
        && evidence_kinds(alert).iter().any(|k| k == "packet_socket")
}

/// Checks what a container of case `case` did against `want` (see the file's header);
/// `audit_write` says whether the case gives the container CAP_AUDIT_WRITE.
fn check(
    case: &str,
    (sup, id): (&Supervisor, &str),
    observed: &Observed,
    want: Want,
    audit_write: bool,
) {
    // The alert a passing run has; waiting for it bounds the wait. Otherwise the stream
    // is observed for a quiet window so that the report shows what did come.
    let expected = match want {
        Want::Denied(_) => sup.wait_alert(
            |a| is_alert_for(a, id) && is_socket_denial(a),
            ALERT_TIMEOUT,
        ),
        Want::Captured => sup.wait_alert(
            |a| is_alert_for(a, id) && is_packet_socket_allowed(a),
            ALERT_TIMEOUT,
        ),
    };
    let alerts: Vec<Value> = sup
        .alerts_settled(QUIET, ALERT_TIMEOUT)
        .into_iter()
        .filter(|a| is_alert_for(a, id))
        .collect();
    let described: Vec<String> = alerts
        .iter()
        .map(|a| describe_alert(a, "/environment"))
        .collect();
    let readers: Vec<String> = observed
        .sniffed
        .iter()
        .map(|s| {
            format!(
                "{}: rc={:?} sent={} {:?}",
                s.mode,
                s.rc,
                s.sent,
                s.first_line()
            )
        })
        .collect();
    eprintln!(
        "BASE| {case} | want {want:?} | NET_RAW in {:?} AUDIT_WRITE in {:?} seccomp={:?} | {} | {}",
        observed.sets_with(CAP_NET_RAW_BIT),
        observed.sets_with(CAP_AUDIT_WRITE_BIT),
        observed.status_value("Seccomp"),
        readers.join(" ; "),
        if described.is_empty() {
            "NO ALERT".to_owned()
        } else {
            described.join(" ; ")
        }
    );

    let out = &observed.out;
    let context = || format!("{case}:\n{out}\n{}", sup.report());
    assert!(
        out.success() && out.stdout.contains("--- end ---"),
        "the container did not run its script to the end: {}",
        context()
    );
    assert_eq!(
        observed.status_value("Seccomp"),
        Some(2),
        "the container runs without a seccomp filter: {}",
        context()
    );
    match want {
        Want::Denied(_) => {
            let packet = observed.mode("packet");
            assert!(
                !packet.got_socket() && packet.captured_bytes().unwrap_or(0) == 0,
                "{case}: the packet-socket reader got its socket in staging \
                 (the base profile shadowed the capture rule): {:?}\n{}",
                packet.output,
                context()
            );
            assert!(
                packet.output.contains(SOCKET_EPERM) && packet.rc == Some(2),
                "{case}: expected {SOCKET_EPERM:?} and exit 2, got rc={:?} {:?}: {}",
                packet.rc,
                packet.output,
                context()
            );
            let alert = expected.unwrap_or_else(|| {
                panic!(
                    "{case}: no denied/socket alert for {id} within {ALERT_TIMEOUT:?}; \
                     alerts about it: [{}]: {}",
                    described.join(" ; "),
                    context()
                )
            });
            assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
            assert_eq!(str_at(&alert, "/environment"), Some("staging"), "{alert}");
            assert_eq!(str_at(&alert, "/mode"), Some("enforce"), "{alert}");
            assert!(
                evidence_kinds(&alert).iter().any(|k| k == "packet_socket"),
                "{case}: the denial names no packet_socket evidence: {alert}"
            );
            assert!(
                !alerts
                    .iter()
                    .any(|a| str_at(a, "/action") == Some("allowed")),
                "{case}: an enforce container's sniffing was allowed: [{}]",
                described.join(" ; ")
            );
            // Other ways in (io_uring) are refused too, whoever refuses them.
            for other in observed.sniffed.iter().filter(|s| s.mode != "packet") {
                assert!(
                    !other.got_socket()
                        && other.output.starts_with("sniff: ")
                        && other.output.contains(" failed: ")
                        && other.rc == Some(2),
                    "{case}: mode {} was not refused (rc={:?}): {:?}\n{}",
                    other.mode,
                    other.rc,
                    other.output,
                    context()
                );
            }
        }
        Want::Captured => {
            let packet = observed.mode("packet");
            assert!(
                packet.sent >= 10,
                "{case}: no traffic was generated on lo: {}",
                context()
            );
            assert!(
                packet.got_socket()
                    && packet.captured_bytes().unwrap_or(0) > 0
                    && packet.rc == Some(0),
                "{case}: the reader did not capture in ci (rc={:?}): {:?}\n{}",
                packet.rc,
                packet.output,
                context()
            );
            let alert = expected.unwrap_or_else(|| {
                panic!(
                    "{case}: no allowed alert with packet_socket evidence for {id} within \
                     {ALERT_TIMEOUT:?}; alerts about it: [{}]: {}",
                    described.join(" ; "),
                    context()
                )
            });
            assert_eq!(str_at(&alert, "/environment"), Some("ci"), "{alert}");
            assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
        }
    }

    // The capabilities the case names (checked last: the outcome above is the point).
    assert_eq!(
        observed
            .sets_with(CAP_AUDIT_WRITE_BIT)
            .iter()
            .any(|s| s == "CapBnd"),
        audit_write,
        "{case}: CAP_AUDIT_WRITE in the bounding set is not what the case names: {}",
        context()
    );
    let net_raw = observed.sets_with(CAP_NET_RAW_BIT);
    match want.floor() {
        Floor::Off => assert!(
            net_raw.iter().any(|s| s == "CapEff") && net_raw.iter().any(|s| s == "CapBnd"),
            "{case}: the container must hold CAP_NET_RAW (effective and bounding) for this \
             test to show the seccomp merge on its own; it has it in {net_raw:?}: {}",
            context()
        ),
        Floor::On if want != Want::Captured => assert!(
            net_raw.is_empty(),
            "{case}: the capability floor is on in staging, yet CAP_NET_RAW is still in \
             {net_raw:?}: {}",
            context()
        ),
        Floor::On => {}
    }
}

// ---------------------------------------------------------------------------------------
// Podman with its default profile
// ---------------------------------------------------------------------------------------

/// Podman's default capabilities as packaged: `default_capabilities` of
/// containers-common's `containers.conf` (no AUDIT_WRITE, no MKNOD, no NET_RAW).
///
/// The private Podman of a test runs with its own `CONTAINERS_CONF`, which makes Podman
/// skip that file and fall back to its compiled-in list (Docker's set, with AUDIT_WRITE
/// and NET_RAW): an installed Podman starts containers with the packaged list.
fn podman_packaged_capabilities() -> Vec<String> {
    let text = fs::read_to_string(CONTAINERS_COMMON_CONF)
        .unwrap_or_else(|e| panic!("read {CONTAINERS_COMMON_CONF}: {e}"));
    let start = text
        .lines()
        .position(|l| l.trim_start().starts_with("default_capabilities"))
        .unwrap_or_else(|| panic!("no default_capabilities in {CONTAINERS_COMMON_CONF}"));
    let mut caps = Vec::new();
    for line in text.lines().skip(start) {
        let line = line.split('#').next().unwrap_or_default();
        caps.extend(
            line.split('"')
                .skip(1)
                .step_by(2)
                .map(|cap| cap.trim_start_matches("CAP_").to_owned()),
        );
        if line.contains(']') {
            break;
        }
    }
    assert!(
        caps.iter().any(|c| c == "SETUID") && !caps.iter().any(|c| c == "AUDIT_WRITE"),
        "unexpected packaged default_capabilities in {CONTAINERS_COMMON_CONF}: {caps:?}"
    );
    caps
}

/// `podman --runtime WRAPPER run --annotation …=ENV --cap-drop all --cap-add …` with
/// Podman's default seccomp profile, its packaged default capabilities plus `caps`; the
/// environment comes from the annotation.
fn podman(case: &str, caps: &[&str], want: Want) {
    if !require_root() {
        return;
    }
    let helpers = helpers();
    let sup = Supervisor::start(policy("ci", want.floor()).as_deref());
    let wrapper = ShimWrapper::new(&sup);
    let podman = Podman::new(Some(&wrapper), None);
    let annotation = format!("{ENVIRONMENT_ANNOTATION}={}", want.environment());
    let volume = format!("{}:/helpers:ro", helpers.display());
    let mut cap_set = podman_packaged_capabilities();
    cap_set.extend(caps.iter().map(|c| (*c).to_owned()));
    let cap_set = cap_set.join(",");
    let options = [
        "--annotation",
        &annotation,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--volume",
        &volume,
        "--cap-drop",
        "all",
        "--cap-add",
        &cap_set,
    ];
    let runtime = wrapper.path().display().to_string();
    let (id, out) = podman.run_container(
        &["--runtime", &runtime],
        &options,
        &script(&["packet"], Launch::Plain),
    );
    let observed = Observed::parse(out, &["packet"]);
    let audit_write = caps.contains(&"AUDIT_WRITE");
    check(case, (&sup, &id), &observed, want, audit_write);
}

// ---------------------------------------------------------------------------------------
// containerd's RuntimeDefault
// ---------------------------------------------------------------------------------------

/// `ctr run --seccomp --annotation …=ENV CAP-OPTIONS…` with the wrapper as containerd's
/// runc: containerd's RuntimeDefault profile, ctr's default capabilities (which hold
/// NET_RAW and AUDIT_WRITE) changed by `cap_options`.
fn containerd(case: &str, cap_options: &[&str], want: Want) {
    if !require_root() {
        return;
    }
    let helpers = helpers();
    let sup = Supervisor::start(policy("ci", want.floor()).as_deref());
    let wrapper = ShimWrapper::new(&sup);
    let containerd = Containerd::start();
    // containerd ids are at most 76 characters: the case name without its prefix.
    let short = case.trim_start_matches("containerd_runtime_default_");
    let id = format!("sg-bp-{}-{short}", std::process::id());
    let annotation = format!("{ENVIRONMENT_ANNOTATION}={}", want.environment());
    let mount = format!(
        "type=bind,src={},dst=/helpers,options=rbind:ro",
        helpers.display()
    );
    let mut options = vec!["--seccomp", "--annotation", &annotation, "--mount", &mount];
    options.extend_from_slice(cap_options);
    let script = script(&["packet"], Launch::Plain);
    let out = containerd.run_container(&wrapper.path(), &id, &options, &["sh", "-c", &script]);
    let observed = Observed::parse(out, &["packet"]);
    check(
        case,
        (&sup, &id),
        &observed,
        want,
        keeps_audit_write(cap_options),
    );
}

/// Whether an engine whose default capabilities hold AUDIT_WRITE keeps it with
/// `cap_options`.
fn keeps_audit_write(cap_options: &[&str]) -> bool {
    !cap_options
        .windows(2)
        .any(|w| w[0] == "--cap-drop" && w[1].trim_start_matches("CAP_") == "AUDIT_WRITE")
}

// ---------------------------------------------------------------------------------------
// Docker's default profile
// ---------------------------------------------------------------------------------------

/// `docker run --runtime sniffguard --network none CAP-OPTIONS…` on a private dockerd:
/// Docker's default profile, Docker's default capabilities (which hold NET_RAW and
/// AUDIT_WRITE) changed by `cap_options`. The environment is the policy's default.
fn docker(case: &str, cap_options: &[&str], want: Want) {
    if !require_root() {
        return;
    }
    let helpers = helpers();
    let sup = Supervisor::start(policy(want.environment(), want.floor()).as_deref());
    let wrapper = ShimWrapper::new(&sup);
    let docker = Docker::start(&wrapper);
    let volume = format!("{}:/helpers:ro", helpers.display());
    let mut options = vec!["--volume", &volume];
    options.extend_from_slice(cap_options);
    let script = script(&["packet"], Launch::Plain);
    let (id, out) = docker.run_container(&options, &["sh", "-c", &script]);
    let observed = Observed::parse(out, &["packet"]);
    check(
        case,
        (&sup, &id),
        &observed,
        want,
        keeps_audit_write(cap_options),
    );
}

// ---------------------------------------------------------------------------------------
// Hand-written profiles in runc bundles
// ---------------------------------------------------------------------------------------

/// Podman's default capabilities plus NET_RAW: the set containers-common's profile is
/// resolved for (no CAP_AUDIT_WRITE, so its socket rules are the conditional ones).
const PODMAN_CAPS_WITH_NET_RAW: [&str; 12] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
    "CAP_NET_RAW",
];

/// containers-common's profile (for Podman's capabilities plus NET_RAW), with its
/// default action replaced by `action`.
fn containers_common_with_default(action: &str) -> Value {
    let mut profile = containers_common_profile(&PODMAN_CAPS_WITH_NET_RAW);
    profile["defaultAction"] = json!(action);
    // The errno only goes with an ERRNO default (for TRACE it would be the tracer's data).
    profile.as_object_mut().unwrap().remove("defaultErrnoRet");
    profile
}

/// containers-common's profile (for Podman's capabilities plus NET_RAW), with the action
/// of every rule that names `socket` replaced by `action`.
fn containers_common_with_socket_rules(action: &str) -> Value {
    let mut profile = containers_common_profile(&PODMAN_CAPS_WITH_NET_RAW);
    let mut changed = 0;
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if rule["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "socket"))
        {
            rule["action"] = json!(action);
            rule.as_object_mut().unwrap().remove("errnoRet");
            changed += 1;
        }
    }
    assert!(
        changed >= 2,
        "containers-common's profile has no conditional socket rules for these \
         capabilities: {profile:#}"
    );
    profile
}

/// The architectures a hand-written profile lists: the native one and its compat ABIs.
fn host_architectures() -> Value {
    match std::env::consts::ARCH {
        "x86_64" => json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        "aarch64" => json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
        other => panic!("no seccomp architectures known for {other}"),
    }
}

/// A permissive default with containers-common's shape of socket rules:
/// `ALLOW socket if args[0] != 16` and `ALLOW socket if args[2] != 9`.
fn allow_default_conditional_socket() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": host_architectures(),
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
        ],
    })
}

/// A permissive default with unconditional `SCMP_ACT_TRACE` for `socket` and io_uring.
fn allow_default_socket_trace() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": host_architectures(),
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_TRACE"},
            {"names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
             "action": "SCMP_ACT_TRACE"},
        ],
    })
}

/// A runc (or crun) bundle with `profile` as its `linux.seccomp` and CAP_NET_RAW in every
/// capability set (CAP_AUDIT_WRITE in none, as for a Podman container), run through the
/// shim; `modes` are the reader's modes. The environment comes from the annotation.
fn bundle(
    case: &str,
    profile: Value,
    runtime: Runtime,
    (modes, launch): (&[&str], Launch),
    want: Want,
) {
    if !require_root() {
        return;
    }
    let helpers = helpers();
    let sup = Supervisor::start(policy("ci", want.floor()).as_deref());
    let script = script(modes, launch);
    let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some(want.environment()))
        .bind_ro(helpers, "/helpers")
        .edit(|spec| {
            let caps = &mut spec["process"]["capabilities"];
            for set in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                let mut list: Vec<Value> = caps[set]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c != "CAP_AUDIT_WRITE")
                    .collect();
                if !list.iter().any(|c| c == "CAP_NET_RAW") {
                    list.push(json!("CAP_NET_RAW"));
                }
                caps[set] = json!(list);
            }
            spec["linux"]["seccomp"] = profile;
        });
    let container = Container::new(runtime);
    let out = container.run_via_shim(&sup, &bundle);
    let observed = Observed::parse(out, modes);
    check(case, (&sup, container.id()), &observed, want, false);
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// `name => runner(args…);` makes `#[test] fn name()` that calls `runner("name", args…)`.
macro_rules! cases {
    ($($name:ident => $runner:ident($($arg:expr),* $(,)?);)+) => {
        $(
            #[test]
            fn $name() {
                $runner(stringify!($name), $($arg),*);
            }
        )+
    };
}

use Floor::{Off, On};
use Want::{Captured, Denied};

/// The reader's packet mode, started directly.
const PACKET: (&[&str], Launch) = (&["packet"], Launch::Plain);

cases! {
    // Podman 4.3, containers-common's default profile. Podman's default capabilities
    // have no AUDIT_WRITE: the profile's socket rules are conditional ALLOWs.
    podman_default_profile_staging_net_raw_floor_on => podman(&["NET_RAW"], Denied(On));
    podman_default_profile_staging_net_raw_floor_off => podman(&["NET_RAW"], Denied(Off));
    podman_default_profile_staging_net_raw_audit_write_floor_on =>
        podman(&["NET_RAW", "AUDIT_WRITE"], Denied(On));
    podman_default_profile_staging_net_raw_audit_write_floor_off =>
        podman(&["NET_RAW", "AUDIT_WRITE"], Denied(Off));
    podman_default_profile_staging_net_raw_sys_admin_floor_on =>
        podman(&["NET_RAW", "SYS_ADMIN"], Denied(On));
    podman_default_profile_staging_net_raw_sys_admin_floor_off =>
        podman(&["NET_RAW", "SYS_ADMIN"], Denied(Off));
    podman_default_profile_ci_net_raw_captures => podman(&["NET_RAW"], Captured);

    // containerd 1.6, RuntimeDefault. ctr's default capabilities hold NET_RAW and
    // AUDIT_WRITE.
    containerd_runtime_default_staging_net_raw_floor_on =>
        containerd(&["--cap-drop", "CAP_AUDIT_WRITE"], Denied(On));
    containerd_runtime_default_staging_net_raw_floor_off =>
        containerd(&["--cap-drop", "CAP_AUDIT_WRITE"], Denied(Off));
    containerd_runtime_default_staging_net_raw_audit_write_floor_on =>
        containerd(&["--cap-add", "CAP_NET_RAW"], Denied(On));
    containerd_runtime_default_staging_net_raw_audit_write_floor_off =>
        containerd(&["--cap-add", "CAP_NET_RAW"], Denied(Off));
    containerd_runtime_default_staging_net_raw_sys_admin_floor_on =>
        containerd(&["--cap-add", "CAP_SYS_ADMIN"], Denied(On));
    containerd_runtime_default_staging_net_raw_sys_admin_floor_off =>
        containerd(&["--cap-add", "CAP_SYS_ADMIN"], Denied(Off));
    containerd_runtime_default_ci_net_raw_captures =>
        containerd(&["--cap-drop", "CAP_AUDIT_WRITE"], Captured);

    // Docker 20.10, its default profile. Docker's default capabilities hold NET_RAW and
    // AUDIT_WRITE.
    docker_default_profile_staging_net_raw_floor_on =>
        docker(&["--cap-add", "NET_RAW", "--cap-drop", "AUDIT_WRITE"], Denied(On));
    docker_default_profile_staging_net_raw_floor_off =>
        docker(&["--cap-add", "NET_RAW", "--cap-drop", "AUDIT_WRITE"], Denied(Off));
    docker_default_profile_staging_net_raw_audit_write_floor_on =>
        docker(&["--cap-add", "NET_RAW"], Denied(On));
    docker_default_profile_staging_net_raw_audit_write_floor_off =>
        docker(&["--cap-add", "NET_RAW"], Denied(Off));
    docker_default_profile_staging_net_raw_sys_admin_floor_on =>
        docker(&["--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN"], Denied(On));
    docker_default_profile_staging_net_raw_sys_admin_floor_off =>
        docker(&["--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN"], Denied(Off));
    docker_default_profile_ci_net_raw_captures =>
        docker(&["--cap-add", "NET_RAW", "--cap-drop", "AUDIT_WRITE"], Captured);

    // Hand-written profiles, plain bundles through the shim, CAP_NET_RAW in every set.
    // containers-common's profile for Podman's capabilities plus NET_RAW (conditional
    // socket rules), its default action or its socket rules' actions changed.
    bundle_containers_common_default_trace_staging_floor_off => bundle(
        containers_common_with_default("SCMP_ACT_TRACE"), Runtime::Runc, PACKET, Denied(Off));
    bundle_containers_common_default_log_staging_floor_off => bundle(
        containers_common_with_default("SCMP_ACT_LOG"), Runtime::Runc, PACKET, Denied(Off));
    bundle_containers_common_socket_rules_trace_staging_floor_off => bundle(
        containers_common_with_socket_rules("SCMP_ACT_TRACE"), Runtime::Runc, PACKET,
        Denied(Off));
    bundle_containers_common_socket_rules_log_staging_floor_off => bundle(
        containers_common_with_socket_rules("SCMP_ACT_LOG"), Runtime::Runc, PACKET,
        Denied(Off));
    // containers-common's profile as it is (Podman's, without AUDIT_WRITE), under crun,
    // and with the floor on.
    bundle_containers_common_staging_crun_floor_off => bundle(
        containers_common_profile(&PODMAN_CAPS_WITH_NET_RAW), Runtime::Crun, PACKET,
        Denied(Off));
    bundle_containers_common_staging_floor_on => bundle(
        containers_common_profile(&PODMAN_CAPS_WITH_NET_RAW), Runtime::Runc, PACKET,
        Denied(On));
    // A permissive default with containers-common's conditional socket rules (runc and
    // crun leave out rules whose action is the default's, so the runtime itself installs
    // no socket rule here; the shim must still not take them for refusals).
    bundle_allow_default_conditional_socket_staging_floor_off => bundle(
        allow_default_conditional_socket(), Runtime::Runc, PACKET, Denied(Off));
    bundle_allow_default_conditional_socket_ci_captures => bundle(
        allow_default_conditional_socket(), Runtime::Runc, PACKET, Captured);
    // A permissive default with unconditional TRACE for socket and io_uring: without a
    // tracer, and under one that continues every TRACE stop.
    bundle_allow_default_socket_trace_staging_floor_off => bundle(
        allow_default_socket_trace(), Runtime::Runc, (&["packet", "uring"], Launch::Plain),
        Denied(Off));
    bundle_allow_default_socket_trace_staging_traced_floor_off => bundle(
        allow_default_socket_trace(), Runtime::Runc, (&["packet"], Launch::Traced),
        Denied(Off));
}

/// The floor-off edit of a policy: an existing `drop_capabilities` of the staging table
/// (one-line or multi-line) gives way, other tables keep theirs. No root needed.
#[test]
fn floor_off_policy_edit_replaces_an_existing_setting() {
    let text = concat!(
        "a = 1\n",
        "[environments.staging]\n",
        "mode = \"enforce\"\n",
        "drop_capabilities = [\n",
        "  \"CAP_NET_RAW\",\n",
        "]\n",
        "fail = \"open\"\n",
        "[environments.production]\n",
        "drop_capabilities = [\"CAP_NET_RAW\"]\n",
    );
    let edited = set_in_table(
        text,
        "[environments.staging]",
        "drop_capabilities",
        "drop_capabilities = []",
    );
    assert_eq!(
        edited,
        concat!(
            "a = 1\n",
            "[environments.staging]\n",
            "drop_capabilities = []\n",
            "mode = \"enforce\"\n",
            "fail = \"open\"\n",
            "[environments.production]\n",
            "drop_capabilities = [\"CAP_NET_RAW\"]\n",
        )
    );
    let shipped_edit = policy("staging", Floor::Off).unwrap();
    assert!(shipped_edit.contains("\ndefault_environment = \"staging\"\n"));
    assert!(shipped_edit.contains("[environments.staging]\ndrop_capabilities = []\n"));
}

/// containers-common's profile for a container with CAP_SYS_ADMIN allows `bpf`
/// outright (one unconditional ALLOW beside other calls, under an ERRNO default). The
/// shim splits that rule around `bpf(BPF_PROG_LOAD)`: 32 ALLOW rules for every other
/// command and a NOTIFY rule for that one, disjoint, so libseccomp's tree cannot let
/// the allow win. Under runc and crun in staging, a map is still created (the base
/// profile's answer for other commands) and an XDP program load is refused with an
/// alert (`tests/helpers/bpfload.c`). Fails without the split: the load runs.
#[test]
fn containers_common_bpf_allow_is_split_around_program_loads() {
    if !require_root() {
        return;
    }
    let helpers = helpers_dir(
        "sniffguard-base-profiles-bpf-",
        &[("bpfload", include_str!("../helpers/bpfload.c"))],
    );
    let mut caps: Vec<&str> = PODMAN_CAPS_WITH_NET_RAW.to_vec();
    caps.extend(["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF"]);
    let profile = containers_common_profile(&caps);
    let allows_bpf = profile["syscalls"].as_array().unwrap().iter().any(|r| {
        r["action"] == "SCMP_ACT_ALLOW"
            && r.get("args").is_none()
            && r["names"].as_array().unwrap().iter().any(|n| n == "bpf")
    });
    assert!(
        allows_bpf,
        "containers-common no longer allows bpf with CAP_SYS_ADMIN"
    );
    let sup = Supervisor::start(policy("ci", Floor::On).as_deref());
    for runtime in [Runtime::Runc, Runtime::Crun] {
        let bundle = Bundle::new(
            rootfs(),
            &["sh", "-c", "/helpers/bpfload map; /helpers/bpfload xdp"],
            Some("staging"),
        )
        .bind_ro(&helpers, "/helpers")
        .edit(|spec| {
            for set in ["bounding", "effective", "permitted"] {
                spec["process"]["capabilities"][set] = json!(caps);
            }
            spec["linux"]["seccomp"] = profile.clone();
        });
        let container = Container::new(runtime);
        let out = container.run_via_shim(&sup, &bundle);
        assert!(out.stdout.contains("map: created"), "{runtime:?}: {out}");
        assert!(
            out.stdout.contains("xdp: Operation not permitted"),
            "{runtime:?}: {out}"
        );
        let alert = sup
            .wait_alert(
                |a| {
                    is_alert_for(a, container.id())
                        && evidence_kinds(a).iter().any(|k| k == "bpf_program")
                },
                ALERT_TIMEOUT,
            )
            .unwrap_or_else(|| panic!("{runtime:?}: no bpf_program alert\n{}", sup.report()));
        assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
    }
}
