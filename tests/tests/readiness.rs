//! Ready means ready (issue 19, part 3): the supervisor says `READY=1` to
//! systemd, and `sniffguard status --ready` (the DaemonSet's readiness probe)
//! succeeds, only when it is whole. With its eBPF probes made to fail — the
//! supervisor run in a private mount namespace whose `/sys/kernel/tracing` is
//! an empty directory with an `events` folder, so tracefs looks mounted but
//! has no tracepoints — it says `STATUS=degraded: …` instead of `READY=1`, the
//! readiness check fails with the reason, `status` lists it, and `/metrics`
//! reports `sniffguard_degraded 1`.
//!
//! Needs root and the built workspace (`unshare`, `nsenter` and `mount` from
//! util-linux).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use sniffguard_tests::{
    require_root, run_command, sniffguard_bin, temp_dir, ShimTarget, Supervisor, COMMAND_TIMEOUT,
};

/// How long the supervisor may take to tell systemd how it is.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `NOTIFY_SOCKET` of the test's own: the first datagram the supervisor sends.
struct NotifySocket {
    dir: tempfile::TempDir,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = temp_dir("sniffguard-notify-");
        let socket = UnixDatagram::bind(dir.path().join("notify")).expect("bind NOTIFY_SOCKET");
        socket
            .set_read_timeout(Some(NOTIFY_TIMEOUT))
            .expect("set timeout");
        NotifySocket { dir, socket }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("notify")
    }

    fn first(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("the supervisor told systemd nothing in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .expect("set timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

fn policy_with_metrics(port: u16) -> String {
    let builtin =
        std::fs::read_to_string(sniffguard_tests::repo_root().join("config/sniffguard.toml"))
            .unwrap();
    builtin.replace(
        "# listen = \"127.0.0.1:9464\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    )
}

/// `sniffguard status ARGS… --runtime-dir DIR`, run in the supervisor's own
/// mount namespace (an operator's request must come from the host's or the
/// supervisor's; the degraded one below has one of its own).
fn status_command(sup: &Supervisor, args: &[&str]) -> sniffguard_tests::CmdOutput {
    run_command(
        Command::new("nsenter")
            .arg("-t")
            .arg(sup.pid().to_string())
            .arg("-m")
            .arg(sniffguard_bin())
            .arg("status")
            .args(args)
            .arg("--runtime-dir")
            .arg(sup.runtime_dir()),
        COMMAND_TIMEOUT,
    )
}

fn ready_check(sup: &Supervisor) -> sniffguard_tests::CmdOutput {
    status_command(sup, &["--ready"])
}

#[test]
fn a_whole_supervisor_says_ready() {
    if !require_root() {
        return;
    }
    let notify = NotifySocket::new();
    let port = free_port();
    let path = notify.path();
    let sup = Supervisor::start_via(
        Some(&policy_with_metrics(port)),
        &[],
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    assert_eq!(notify.first(), "READY=1", "{}", sup.report());
    let ready = ready_check(&sup);
    assert!(ready.success(), "{ready}");
    assert!(
        scrape(port).contains("sniffguard_degraded 0"),
        "{}",
        scrape(port)
    );
}

#[test]
fn a_supervisor_without_its_probes_is_not_ready_and_says_why() {
    if !require_root() {
        return;
    }
    let fake = temp_dir("sniffguard-fake-tracefs-");
    std::fs::create_dir(fake.path().join("events")).unwrap();
    let notify = NotifySocket::new();
    let port = free_port();
    // A private mount namespace in which tracefs looks mounted but has no
    // tracepoint: the probes cannot attach.
    let script = format!(
        "mount --bind {} /sys/kernel/tracing && exec \"$0\" \"$@\"",
        fake.path().display()
    );
    let prefix: Vec<&OsStr> = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let path = notify.path();
    let sup = Supervisor::start_via(
        Some(&policy_with_metrics(port)),
        &prefix,
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    let said = notify.first();
    assert!(
        said.starts_with("STATUS=degraded: ebpf_probes:") && !said.contains("READY=1"),
        "{said}\n{}",
        sup.report()
    );
    let ready = ready_check(&sup);
    assert!(!ready.success(), "the readiness check passed: {ready}");
    assert!(ready.stderr.contains("not ready: ebpf_probes:"), "{ready}");
    let status = status_command(&sup, &["--json"]);
    assert!(status.success(), "{status}");
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        status["degraded"].as_array().is_some_and(|d| d
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("ebpf_probes:")))),
        "{status}"
    );
    let metrics = scrape(port);
    assert!(metrics.contains("sniffguard_degraded 1"), "{metrics}");
}
