//! What the file that runs says of the capture library it uses, when its name
//! says nothing: a tcpdump whose libpcap is renamed (`DT_NEEDED
//! libnotpcap.so.1`, found by the library's own `DT_SONAME`) and a program
//! carrying a static copy of libpcap (found by libpcap's strings in it).
//!
//! Needs root, the built workspace (`cargo build --workspace`), runc,
//! busybox-static, tcpdump, patchelf and libpcap-dev (`scripts/setup.sh`
//! installs them). The containers run on a private copy of the test rootfs
//! (built by `scripts/build-rootfs.sh`, removed at exit) in which the renamed
//! library replaces Debian's: nothing named `libpcap*` is left in it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use sniffguard_tests::{
    evidence_kinds, is_alert_for, remove_at_exit, repo_root, require_root, run_command, script,
    str_at, temp_dir, Bundle, CmdOutput, Container, Runtime, Supervisor, ALERT_TIMEOUT,
    CAPTURE_SCRIPT, COMMAND_TIMEOUT,
};

/// Where Debian's tcpdump and libpcap are, on the host and in the rootfs
/// (`build-rootfs.sh` copies them to the paths `ldd` prints).
const TCPDUMP: &str = "/usr/bin/tcpdump";
const LIBPCAP: &str = "/lib/x86_64-linux-gnu/libpcap.so.0.8";

/// The renamed library, in a directory the loader searches by default.
const RENAMED_LIBRARY: &str = "/lib/libnotpcap.so.1";

/// The tcpdump copy that needs the renamed library.
const INNOCENT: &str = "/usr/bin/innocent";

/// The static libpcap program.
const QUIET: &str = "/usr/bin/quietpcap";

/// The private rootfs, built once per test process.
fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = temp_dir("sniffguard-elfev-").keep();
        remove_at_exit(dir.clone());
        let rootfs = dir.join("rootfs");
        let built = run_command(
            Command::new("bash")
                .arg(script("build-rootfs.sh"))
                .arg(&rootfs),
            Duration::from_secs(120),
        );
        assert!(built.success(), "build-rootfs.sh failed:\n{built}");
        let inside = |path: &str| rootfs.join(path.trim_start_matches('/'));

        // The renamed library: Debian's libpcap, its own soname untouched,
        // under a name that says nothing; the original removed.
        fs::rename(inside(LIBPCAP), inside(RENAMED_LIBRARY)).expect("rename libpcap");

        // tcpdump made to need the renamed library.
        let innocent = inside(INNOCENT);
        fs::copy(TCPDUMP, &innocent).expect("copy tcpdump");
        run(Command::new("patchelf")
            .args([
                "--replace-needed",
                "libpcap.so.0.8",
                RENAMED_LIBRARY.trim_start_matches("/lib/"),
            ])
            .arg(&innocent));
        let needed = run(Command::new("patchelf")
            .arg("--print-needed")
            .arg(&innocent));
        assert!(
            needed.stdout.contains("libnotpcap.so.1") && !needed.stdout.contains("libpcap"),
            "patchelf left: {needed}"
        );

        // The static libpcap program.
        let source = repo_root().join("tests/helpers/quietpcap.c");
        run(Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(inside(QUIET))
            .arg(&source)
            .arg("-lpcap"));
        assert!(
            run(Command::new("readelf").arg("-d").arg(inside(QUIET)))
                .stdout
                .contains("no dynamic section"),
            "{QUIET} is not static"
        );

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the rootfs");
        rootfs
    })
}

/// Runs a host command that must succeed.
fn run(cmd: &mut Command) -> CmdOutput {
    let out = run_command(cmd, COMMAND_TIMEOUT);
    assert!(out.success(), "{cmd:?} failed: {out}");
    out
}

/// Runs `script` with `sh -c` under runc in a fresh container of `environment`.
fn run_script(sup: &Supervisor, environment: &str, script: &str) -> (Container, CmdOutput) {
    let bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some(environment));
    let container = Container::new(Runtime::Runc);
    let out = container.run_via_shim(sup, &bundle);
    (container, out)
}

/// The first alert about `container` whose evidence has `kind`, else a panic
/// with everything the supervisor said.
fn wait_evidence(sup: &Supervisor, container: &Container, kind: &str) -> Value {
    let id = container.id();
    sup.wait_alert(
        |a| is_alert_for(a, id) && evidence_kinds(a).iter().any(|k| k == kind),
        ALERT_TIMEOUT,
    )
    .unwrap_or_else(|| {
        panic!(
            "no alert with {kind} evidence for {id} within {ALERT_TIMEOUT:?}\n{}",
            sup.report()
        )
    })
}

/// The evidence entry of `kind` in `alert`.
fn evidence_of<'a>(alert: &'a Value, kind: &str) -> &'a Value {
    alert
        .pointer("/evidence")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|e| str_at(e, "/kind") == Some(kind)))
        .unwrap_or_else(|| panic!("no {kind} evidence: {alert}"))
}

/// The capture script, run by the renamed tcpdump.
fn innocent_capture() -> String {
    let script = CAPTURE_SCRIPT.replace("tcpdump --immediate-mode", "innocent --immediate-mode");
    assert_ne!(
        script, CAPTURE_SCRIPT,
        "CAPTURE_SCRIPT no longer starts tcpdump that way"
    );
    script
}

#[test]
fn ci_renamed_libpcap_is_alerted_with_links_libpcap() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(&sup, "ci", &innocent_capture());
    // Audit: the renamed library really works, and the capture happens.
    assert!(out.mentions("1 packet captured"), "{out}");
    let alert = wait_evidence(&sup, &container, "links_libpcap");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
    let evidence = evidence_of(&alert, "links_libpcap");
    assert_eq!(
        str_at(evidence, "/library"),
        Some("libnotpcap.so.1"),
        "{alert}"
    );
    assert_eq!(
        str_at(evidence, "/found_as"),
        Some("/lib/libnotpcap.so.1: DT_SONAME libpcap.so.0.8"),
        "{alert}"
    );
}

#[test]
fn staging_renamed_libpcap_is_refused() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let (container, out) = run_script(&sup, "staging", &innocent_capture());
    // The exec itself is refused (126), not only the capture socket later
    // (which would end tcpdump with 1).
    assert!(!out.mentions("packet captured"), "{out}");
    assert!(out.mentions("Operation not permitted"), "{out}");
    assert!(out.mentions("tcpdump_rc=126"), "{out}");
    let alert = wait_evidence(&sup, &container, "links_libpcap");
    assert_eq!(str_at(&alert, "/action"), Some("denied"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
}

#[test]
fn ci_static_libpcap_is_alerted_with_static_libpcap() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    // Bounded like CAPTURE_SCRIPT: at most 50 pings while the program waits.
    let script = format!(
        "ip link set lo up || exit 90; {QUIET} & p=$!; i=0; \
         while kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do \
         ping -c1 -W1 127.0.0.1 >/dev/null 2>&1; sleep 0.1; i=$((i+1)); done; \
         wait $p; echo rc=$?"
    );
    let (container, out) = run_script(&sup, "ci", &script);
    // Audit: the capture opens and sees a packet.
    assert!(out.mentions("captured 1") && out.mentions("rc=0"), "{out}");
    let alert = wait_evidence(&sup, &container, "static_libpcap");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
    // Whichever of libpcap's strings comes first in the file.
    let marker = str_at(evidence_of(&alert, "static_libpcap"), "/marker");
    assert!(
        matches!(
            marker,
            Some("libpcap version " | "The pcap_t has not been activated")
        ),
        "{alert}"
    );
    assert!(
        !evidence_kinds(&alert).iter().any(|k| k == "catalogue_name"),
        "{alert}"
    );
}
