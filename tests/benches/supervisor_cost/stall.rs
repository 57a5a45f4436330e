//! Section 3's stalled variant (issue 18): one more audit container runs a program
//! from a FUSE mount whose server (`tests/helpers/fusestall.c`) never answers the
//! supervisor's open of it, so one classification thread stays blocked for the whole
//! window; and the time from a renamed tcpdump's container start to its alert.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sniffguard_tests::{
    compile_static, evidence_kinds, is_alert_for, run_command, temp_dir, Bundle, Container,
    Runtime, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};

/// Sleeps `argv[1]` seconds: the program the FUSE mount serves.
const SLEEPER_C: &str = r#"
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) { sleep(argc > 1 ? atoi(argv[1]) : 20); return 0; }
"#;

/// The stalling server, its mount and the container running from it; all released
/// when dropped (container deleted, server killed, which aborts the held open, then a
/// lazy unmount).
pub(crate) struct Stall {
    container: Option<Container>,
    server: Child,
    dir: tempfile::TempDir,
    _helpers: tempfile::TempDir,
}

impl Stall {
    /// Starts the server, then a `ci` container that runs `/fuse/prog` for `seconds`,
    /// and waits until the supervisor's open of it is held.
    pub(crate) fn start(supervisor: &Supervisor, rootfs: &Path, seconds: u64) -> Stall {
        let helpers = temp_dir("sniffguard-bench-fuse-");
        let server_bin = compile_static(
            helpers.path(),
            "fusestall",
            include_str!("../../helpers/fusestall.c"),
        );
        let sleeper = compile_static(helpers.path(), "sleeper", SLEEPER_C);
        let dir = temp_dir("sniffguard-bench-fuse-mnt-");
        let mut server = Command::new(server_bin)
            .arg(dir.path())
            .arg(&sleeper)
            .arg("1")
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
        let mut stall = Stall {
            container: None,
            server,
            dir,
            _helpers: helpers,
        };
        wait_line(&lines, "ready").expect("the FUSE server never mounted");
        let seconds = seconds.to_string();
        let bundle = Bundle::new(rootfs, &["/fuse/prog", &seconds], Some("ci"))
            .bind_ro(stall.dir.path(), "/fuse");
        let container = Container::new(Runtime::Runc);
        let out = container.create_detached_via_shim(supervisor, &bundle);
        assert!(out.success(), "the stalled container did not start: {out}");
        stall.container = Some(container);
        wait_line(&lines, "stalled open").expect("the supervisor never opened the FUSE file");
        stall
    }
}

fn wait_line(lines: &mpsc::Receiver<String>, prefix: &str) -> Option<String> {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        drop(self.container.take());
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = run_command(
            Command::new("umount").arg("-l").arg(self.dir.path()),
            COMMAND_TIMEOUT,
        );
    }
}

/// Runs a renamed tcpdump in a fresh `ci` container and returns the time from the
/// container's start to its `links_libpcap` alert (container start included), or
/// `None` when no alert came within the harness's alert bound.
pub(crate) fn alert_latency(supervisor: &Supervisor, rootfs: &Path) -> Option<Duration> {
    let bundle = Bundle::new(
        rootfs,
        &[
            "sh",
            "-c",
            "cp /usr/bin/tcpdump /tmp/netcheck && /tmp/netcheck -D",
        ],
        Some("ci"),
    );
    let container = Container::new(Runtime::Runc);
    let started = Instant::now();
    let out = container.run_via_shim(supervisor, &bundle);
    assert!(out.success(), "the tcpdump probe failed: {out}");
    supervisor
        .wait_alert(
            |a| {
                is_alert_for(a, container.id())
                    && evidence_kinds(a).iter().any(|k| k == "links_libpcap")
            },
            ALERT_TIMEOUT,
        )
        .map(|_| started.elapsed())
}
