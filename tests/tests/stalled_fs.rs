//! A file system that never answers must not blind the supervisor (issue 18).
//!
//! A `ci` container runs a program from a FUSE mount whose server
//! (`tests/helpers/fusestall.c`, the raw `/dev/fuse` protocol) answers the
//! exec's own open and reads, then never answers another open: the
//! supervisor's open of the file, to judge it, hangs in the kernel and cannot
//! be interrupted. The exec must still be alerted, within a bound, as a file
//! that could not be read in time (`unresolved` evidence naming the bound),
//! and a renamed tcpdump in another container, started while the read still
//! hangs, must be alerted as usual before the server is released.
//!
//! Before the classification moved off the ring reader, the reader itself hung
//! in that open and neither alert came.
//!
//! Needs root, the built workspace, runc, gcc and `/dev/fuse`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sniffguard_tests::{
    evidence_kinds, helpers_dir, is_alert_for, require_root, rootfs, run_command, str_at, temp_dir,
    Bundle, Container, Runtime, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};

/// Sleeps `argv[1]` seconds (the program served from the FUSE mount).
const SLEEPER_C: &str = r#"
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) { sleep(argc > 1 ? atoi(argv[1]) : 20); return 0; }
"#;

fn helpers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        helpers_dir(
            "sniffguard-fuse-helpers-",
            &[
                ("fusestall", include_str!("../helpers/fusestall.c")),
                ("sleeper", SLEEPER_C),
            ],
        )
    })
}

/// The stalling FUSE server and its mount; released (server killed, which
/// aborts every request it holds, then unmounted lazily) when dropped, so that
/// nothing stays blocked after a failure.
struct StalledMount {
    server: Child,
    dir: tempfile::TempDir,
    lines: mpsc::Receiver<String>,
}

impl StalledMount {
    /// Mounts a file system whose `/prog` is `content`, answering the first
    /// `answered_opens` opens of it.
    fn start(content: &Path, answered_opens: u32) -> StalledMount {
        let dir = temp_dir("sniffguard-fuse-mnt-");
        let mut server = Command::new(helpers().join("fusestall"))
            .arg(dir.path())
            .arg(content)
            .arg(answered_opens.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the FUSE server");
        let stdout = server.stdout.take().expect("server stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mount = StalledMount { server, dir, lines };
        mount
            .wait_line("ready", COMMAND_TIMEOUT)
            .expect("the FUSE server never mounted");
        mount
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The first line of the server's that starts with `prefix`.
    fn wait_line(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether the server still runs (and so still holds what it stalls).
    fn holding(&mut self) -> bool {
        self.server.try_wait().ok().flatten().is_none()
    }
}

impl Drop for StalledMount {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = run_command(
            Command::new("umount").arg("-l").arg(self.dir.path()),
            COMMAND_TIMEOUT,
        );
    }
}

/// The thread ids of process `pid`.
fn threads_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_stalled_fuse_file_is_alerted_in_time_and_other_containers_go_on() {
    if !require_root() {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: no /dev/fuse");
        return;
    }
    let sup = Supervisor::start(None);
    // Declared after the supervisor: released before it is stopped, so the
    // supervisor is never left in a read that cannot end.
    let mut mount = StalledMount::start(&helpers().join("sleeper"), 1);

    let stalled =
        Bundle::new(rootfs(), &["/fuse/prog", "20"], Some("ci")).bind_ro(mount.path(), "/fuse");
    let stalled_container = Container::new(Runtime::Runc);
    let sniffer_script = "cp /usr/bin/tcpdump /tmp/netcheck && /tmp/netcheck -D";
    let sniffer = Bundle::new(rootfs(), &["sh", "-c", sniffer_script], Some("ci"));
    let sniffer_container = Container::new(Runtime::Runc);

    let out = stalled_container.create_detached_via_shim(&sup, &stalled);
    assert!(out.success(), "the stalled container did not start: {out}");
    // The exec was answered (open 1); the supervisor's own open hangs.
    let line = mount
        .wait_line("stalled open", COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("nothing opened the served file again\n{}", sup.report()));
    let opener: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .expect("the opener's pid");
    assert!(
        threads_of(sup.pid()).contains(&opener),
        "the stalled open ({line}) is not the supervisor's"
    );

    // (a) The exec is alerted as unreadable in time.
    let alert = sup
        .wait_alert(
            |a| {
                is_alert_for(a, stalled_container.id())
                    && evidence_kinds(a).iter().any(|k| k == "unresolved")
            },
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| {
            panic!(
                "no unreadable-in-time alert for the stalled file\n{}",
                sup.report()
            )
        });
    let reason = str_at(&alert, "/evidence/0/reason").unwrap_or_default();
    assert!(
        reason.contains("/fuse/prog") && reason.contains("could not be read within"),
        "{alert}"
    );
    assert_eq!(
        str_at(&alert, "/process/exe"),
        Some("/fuse/prog"),
        "{alert}"
    );
    assert!(alert.pointer("/process/pid").is_some(), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");

    // (b) Another container's renamed tcpdump, while the read still hangs.
    assert!(mount.holding(), "the FUSE server ended early");
    let out = sniffer_container.run_via_shim(&sup, &sniffer);
    assert!(out.success(), "the sniffer container failed: {out}");
    let alert = sup
        .wait_alert(
            |a| {
                is_alert_for(a, sniffer_container.id())
                    && evidence_kinds(a).iter().any(|k| k == "links_libpcap")
            },
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| {
            panic!(
                "the other container's tcpdump was not alerted while a read hung\n{}",
                sup.report()
            )
        });
    assert_eq!(
        str_at(&alert, "/process/exe"),
        Some("/tmp/netcheck"),
        "{alert}"
    );
    // Still before the release: the open is still held by the same thread.
    assert!(mount.holding(), "the FUSE server ended before the alert");
    assert!(
        threads_of(sup.pid()).contains(&opener),
        "the stuck thread is gone: the read was not held throughout"
    );
    // Released: the stuck thread's open fails and it leaves.
    drop(mount);
    assert!(
        sniffguard_tests::poll_until(COMMAND_TIMEOUT, || !threads_of(sup.pid()).contains(&opener)),
        "the stuck thread did not leave once its read was released"
    );
}

/// Enforce: the seccomp listener's own open of the file hangs (the server
/// answers no open at all). After the bound the exec is refused with
/// `unresolved` evidence, and the container's next exec is decided by a
/// listener that took the stuck one's place.
#[test]
fn enforce_refuses_a_stalled_fuse_file_in_time_and_goes_on() {
    if !require_root() {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: no /dev/fuse");
        return;
    }
    let sup = Supervisor::start(None);
    let mount = StalledMount::start(&helpers().join("sleeper"), 0);
    let script = "/fuse/prog 0; echo rc=$?; /bin/true && echo next-exec-ran";
    let bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some("staging"))
        .bind_ro(mount.path(), "/fuse");
    let container = Container::new(Runtime::Runc);
    let out = container.run_via_shim(&sup, &bundle);
    assert!(
        out.stdout.contains("rc=126") && out.stdout.contains("next-exec-ran"),
        "the stalled exec was not refused, or the container's next exec was not decided: {out}\n{}",
        sup.report()
    );
    let alert = sup
        .wait_alert(
            |a| {
                is_alert_for(a, container.id())
                    && str_at(a, "/action") == Some("denied")
                    && evidence_kinds(a).iter().any(|k| k == "unresolved")
            },
            ALERT_TIMEOUT,
        )
        .unwrap_or_else(|| panic!("no refusal alert for the stalled file\n{}", sup.report()));
    let reason = str_at(&alert, "/evidence/0/reason").unwrap_or_default();
    assert!(
        reason.contains("/fuse/prog") && reason.contains("could not be read within"),
        "{alert}"
    );
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    drop(mount);
}
