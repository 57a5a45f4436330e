//! What happens when things fail: each test breaks one thing at a chosen moment
//! and checks that everything ends in a defined state — a sniffer never runs
//! unchecked in an enforce environment, and the supervisor says what happened.
//!
//! - (a) the supervisor dies after the hook registered a container, before the
//!   runtime sends the seccomp fd;
//! - (b) the supervisor dies while an exec is held in a notification (with and
//!   without the fd keeper, and after it received the notification but before
//!   it answered);
//! - (c) the runtime dies in the middle of `create`;
//! - (d) the alert file's disk is full;
//! - (e) the policy file disappears (or turns bad) and the supervisor is asked to
//!   reload.
//!
//! Needs root. Each test has its own runtime directory and container ids, and
//! cleans up (containers, mounts, stopped daemons) through guards even when it
//! fails. A [`HookInterposer`] stands in for the hook to hold `create` between
//! registration and the seccomp fd.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use sniffguard_tests::{
    contains_ignore_case, is_alert_for, keeper_pid, poll_until, require_root, rootfs, run_command,
    str_at, temp_dir, wait_child, Bundle, CmdOutput, Container, DirTarget, HookInterposer, Runtime,
    ShimTarget, Supervisor, ALERT_TIMEOUT, COMMAND_TIMEOUT,
};
use tempfile::TempDir;

/// A deliberate observation window: long enough for an unanswered exec to have
/// finished if anything were going to answer it.
const HELD_WINDOW: Duration = Duration::from_secs(1);

/// Sends SIGCONT to a supervisor that a test stopped, even when the test fails,
/// so that its guard can stop it normally.
struct Stopped<'a>(&'a mut Supervisor);

impl<'a> Stopped<'a> {
    /// Stops the supervisor and waits (bounded) until every one of its threads
    /// is stopped: SIGSTOP arrives asynchronously, and a listener thread still
    /// running would take the next notification and die holding it.
    fn stop(sup: &'a mut Supervisor) -> Stopped<'a> {
        sup.signal(Signal::SIGSTOP);
        let pid = sup.pid();
        assert!(
            poll_until(Duration::from_secs(5), || all_threads_stopped(pid)),
            "the supervisor's threads did not all stop"
        );
        Stopped(sup)
    }
}

/// Whether every thread of `pid` is stopped (state `T` in its `stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            })
            .is_some_and(|state| state == "T" || state == "t")
    })
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal(Signal::SIGCONT);
    }
}

/// Whether the status lists container `id`, and its (registered, seccomp) flags.
fn attachment(sup: &Supervisor, id: &str) -> Option<(bool, bool)> {
    sup.status()["containers"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| (c["registered"] == true, c["seccomp"] == true))
}

/// tcpdump -D prints one line per interface ("1.lo [Loopback, ...]"): its mark.
fn tcpdump_ran(out: &CmdOutput) -> bool {
    out.stdout.contains(".lo") || out.stdout.contains("Loopback")
}

/// (a) The supervisor dies after the hook registered the container and before
/// the runtime connects to `listenerPath` with the notify fd: the runtime cannot
/// hand the fd to anyone and refuses to create the container, so nothing runs
/// without its listener. The next supervisor forgets the registration it finds
/// saved (its init process is gone).
#[test]
fn supervisor_killed_between_registration_and_seccomp_fd() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let hook = HookInterposer::new(true);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(Runtime::Runc);
    let id = container.id().to_owned();
    let hook_path = hook.path();
    let mut create = container.spawn_create_via_shim_env(
        &sup,
        &bundle,
        &[("SNIFFGUARD_HOOK", hook_path.as_os_str())],
    );
    assert!(
        poll_until(COMMAND_TIMEOUT, || hook.registered(&id)),
        "the hook never registered {id}: {:?}\n{}",
        container.detached_output(),
        sup.report()
    );
    assert_eq!(
        attachment(&sup, &id),
        Some((true, false)),
        "registered, no fd yet"
    );

    sup.stop_with(Signal::SIGKILL);
    hook.release();
    let status = wait_child(&mut create, COMMAND_TIMEOUT).unwrap_or_else(|| {
        let _ = create.kill();
        panic!("create hung after the supervisor died")
    });
    let (_, stderr) = container.detached_output();
    assert!(
        !status.success(),
        "create succeeded without a seccomp agent: {stderr}"
    );
    assert!(
        stderr.contains("seccomp"),
        "the runtime does not say why: {stderr}"
    );
    assert!(
        container
            .state()
            .is_none_or(|s| s["status"] != "running" && s["status"] != "created"),
        "the container exists: {:?}",
        container.state()
    );

    sup.restart();
    assert_eq!(
        attachment(&sup, &id),
        None,
        "the next supervisor kept a registration whose container never started\n{}",
        sup.report()
    );
}

/// Starts a staging container that sleeps, through the shim.
fn sleeping_staging(sup: &Supervisor) -> (Bundle, Arc<Container>) {
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Arc::new(Container::new(Runtime::Runc));
    let out = container.create_detached_via_shim(sup, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    assert!(
        poll_until(Duration::from_secs(10), || attachment(sup, container.id())
            == Some((true, true))),
        "not attached\n{}",
        sup.report()
    );
    (bundle, container)
}

/// Starts `tcpdump -D` in the container on a thread of its own (`runc exec`),
/// while the supervisor is stopped, and checks that the exec is held.
fn held_runc_exec(sup: &Supervisor, container: &Arc<Container>) -> thread::JoinHandle<CmdOutput> {
    let target = DirTarget::of(sup);
    let c = container.clone();
    let exec = thread::spawn(move || c.exec_via_shim(&target, &["tcpdump", "-D"]));
    thread::sleep(HELD_WINDOW);
    assert!(
        !exec.is_finished(),
        "the exec was answered while the supervisor was stopped: {:?}",
        exec.join()
    );
    exec
}

/// A staging container whose shell waits on a FIFO (a builtin `read`: no exec),
/// then runs tcpdump and records what happened in the shared directory.
struct Trigger {
    ctl: TempDir,
    container: Container,
    _bundle: Bundle,
}

impl Trigger {
    fn start(sup: &Supervisor) -> Trigger {
        let ctl = temp_dir("sniffguard-trigger-");
        let fifo = ctl.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let bundle = Bundle::new(
            rootfs(),
            &[
                "sh",
                "-c",
                "echo >/ctl/ready; read x < /ctl/fifo; tcpdump -D >/ctl/out 2>&1; echo rc=$? >/ctl/rc; \
                 sleep 3600",
            ],
            Some("staging"),
        )
        .bind_rw(ctl.path(), "/ctl");
        let container = Container::new(Runtime::Runc);
        let out = container.create_detached_via_shim(sup, &bundle);
        assert!(out.success(), "{out}\n{}", sup.report());
        // The shell runs (its own exec was answered, so its notify fd has been
        // handed to the keeper) and is about to wait on the FIFO.
        assert!(
            poll_until(Duration::from_secs(10), || ctl
                .path()
                .join("ready")
                .exists()),
            "the container's shell never started\n{}",
            sup.report()
        );
        Trigger {
            ctl,
            container,
            _bundle: bundle,
        }
    }

    /// Lets the shell go on to tcpdump (waits, bounded, for it to be reading).
    fn fire(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let fifo = self.ctl.path().join("fifo");
        let mut writer = None;
        assert!(
            poll_until(Duration::from_secs(10), || {
                writer = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                    .ok();
                writer.is_some()
            }),
            "the container's shell never opened its FIFO"
        );
        writer.unwrap().write_all(b"go\n").unwrap();
    }

    /// The shell's record: (tcpdump's exit code line, its output), once written.
    fn outcome(&self) -> Option<(String, String)> {
        // `echo >file` truncates before it writes: empty means not yet.
        let rc = std::fs::read_to_string(self.ctl.path().join("rc"))
            .ok()
            .filter(|rc| rc.ends_with('\n'))?;
        let out = std::fs::read_to_string(self.ctl.path().join("out")).unwrap_or_default();
        Some((rc.trim().to_owned(), out))
    }
}

/// Fires the trigger while the supervisor is stopped and checks that tcpdump's
/// exec is held, then kills the stopped supervisor (it never answers).
fn hold_then_kill(sup: &mut Supervisor, trigger: &Trigger) {
    let stopped = Stopped::stop(sup);
    trigger.fire();
    thread::sleep(HELD_WINDOW);
    assert!(
        trigger.outcome().is_none(),
        "tcpdump's exec was answered by a stopped supervisor: {:?}",
        trigger.outcome()
    );
    stopped.0.signal(Signal::SIGKILL);
    drop(stopped);
    sup.stop_with(Signal::SIGKILL);
}

/// [`hold_then_kill`], then: the exec still waits (`waiting` says what it means
/// if it does not), and the next supervisor refuses it (rc 126). Returns what
/// the exec printed.
fn hold_kill_and_restart(sup: &mut Supervisor, trigger: &Trigger, waiting: &str) -> String {
    hold_then_kill(sup, trigger);
    thread::sleep(HELD_WINDOW);
    assert!(
        trigger.outcome().is_none(),
        "{waiting}: {:?}",
        trigger.outcome()
    );
    restart_and_expect_refusal(sup, trigger, "the held exec")
}

/// Restarts the supervisor and waits until it refuses the exec that waits
/// (`what`): rc 126. Returns what the exec printed.
fn restart_and_expect_refusal(sup: &mut Supervisor, trigger: &Trigger, what: &str) -> String {
    sup.restart();
    assert!(
        poll_until(ALERT_TIMEOUT, || trigger.outcome().is_some()),
        "the restarted supervisor did not answer {what}\n{}",
        sup.report()
    );
    let (rc, out) = trigger.outcome().unwrap();
    assert_eq!(rc, "rc=126", "{out}");
    out
}

/// (b) The supervisor is killed while an exec of the container waits in a
/// notification. The fd keeper holds the listener, so the exec keeps waiting
/// (it neither runs nor fails), and the next supervisor answers it: refused.
#[test]
fn supervisor_killed_during_a_held_exec_then_restarted() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let trigger = Trigger::start(&sup);
    let out = hold_kill_and_restart(
        &mut sup,
        &trigger,
        "the held exec did not wait for the next supervisor",
    );
    assert!(
        contains_ignore_case(&out, "operation not permitted"),
        "{out}"
    );
    assert!(
        sup.wait_alert(
            |a| is_alert_for(a, trigger.container.id()) && str_at(a, "/action") == Some("denied"),
            ALERT_TIMEOUT
        )
        .is_some(),
        "the restarted supervisor did not alert\n{}",
        sup.report()
    );
}

/// A supervisor listener thread under ptrace, for killing the supervisor at
/// the worst moment of a decision.
struct TracedListener {
    tid: Pid,
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: the answer's ioctl request.
const NOTIF_SEND: u64 = 0xc018_2101;

impl TracedListener {
    /// Seizes the one listener thread (`sg-notify`) of supervisor `pid`.
    fn seize(pid: u32) -> TracedListener {
        let listeners: Vec<Pid> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == "sg-notify")
            })
            .filter_map(|task| task.file_name().to_str()?.parse().ok())
            .map(Pid::from_raw)
            .collect();
        assert_eq!(
            listeners.len(),
            1,
            "expected one listener thread: {listeners:?}"
        );
        let tid = listeners[0];
        ptrace::seize(tid, ptrace::Options::PTRACE_O_TRACESYSGOOD).unwrap();
        ptrace::interrupt(tid).unwrap();
        let traced = TracedListener { tid };
        assert!(
            matches!(traced.next_stop(), Some(WaitStatus::PtraceEvent(..))),
            "the listener thread did not stop"
        );
        traced
    }

    /// The next stop of the thread (bounded), or `None` when it did not stop.
    fn next_stop(&self) -> Option<WaitStatus> {
        let mut status = None;
        poll_until(Duration::from_secs(10), || {
            status = waitpid(self.tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG))
                .ok()
                .filter(|s| *s != WaitStatus::StillAlive);
            status.is_some()
        });
        status
    }

    /// Lets the thread run from syscall to syscall until it is about to send
    /// an answer, and leaves it stopped there: it has received a notification
    /// and decided it, and the kernel has not been told.
    fn stop_before_answering(&self) {
        ptrace::syscall(self.tid, None).unwrap();
        loop {
            match self.next_stop() {
                Some(WaitStatus::PtraceSyscall(_)) => {
                    // "NR ARG0 ARG1 ...": the ioctl request is the second.
                    let call = std::fs::read_to_string(format!("/proc/{}/syscall", self.tid))
                        .unwrap_or_default();
                    let request = call
                        .split_whitespace()
                        .nth(2)
                        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
                    if request == Some(NOTIF_SEND) {
                        return;
                    }
                    ptrace::syscall(self.tid, None).unwrap();
                }
                // A signal for the thread: deliver it and go on.
                Some(WaitStatus::Stopped(_, signal)) => ptrace::syscall(self.tid, signal).unwrap(),
                Some(WaitStatus::PtraceEvent(..)) => ptrace::syscall(self.tid, None).unwrap(),
                other => panic!("the listener thread never came to answer: {other:?}"),
            }
        }
    }

    /// Waits until the killed thread is gone (a traced thread stays until its
    /// tracer has seen it go, and holds up its process's exit until then).
    fn reap(self) {
        while let Some(status) = self.next_stop() {
            if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                return;
            }
        }
    }
}

/// (b, mid-decision) The supervisor is killed after it received tcpdump's
/// notification and decided it, just before it sends the answer. The kernel
/// never offers a received notification again: the exec waits, and only the
/// in-flight ledger the keeper holds with the listener lets the next supervisor
/// find it and answer it (refused).
#[test]
fn supervisor_killed_between_receiving_and_answering() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let trigger = Trigger::start(&sup);
    let traced = TracedListener::seize(sup.pid());
    trigger.fire();
    traced.stop_before_answering();
    sup.signal(Signal::SIGKILL);
    traced.reap();
    sup.stop_with(Signal::SIGKILL);
    thread::sleep(HELD_WINDOW);
    assert!(
        trigger.outcome().is_none(),
        "the exec being decided did not wait for the next supervisor: {:?}",
        trigger.outcome()
    );
    let out =
        restart_and_expect_refusal(&mut sup, &trigger, "the exec its predecessor had received");
    assert!(
        contains_ignore_case(&out, "operation not permitted"),
        "{out}"
    );
    assert!(
        sup.stderr_log().contains("never answered"),
        "the restarted supervisor did not say it found an unanswered notification\n{}",
        sup.report()
    );
}

/// (b, idle keeper) The fd keeper exits once it has held nothing for a while
/// (a supervisor with no enforced container for 10 s). The next enforced
/// container's fd must still be kept: the supervisor starts a keeper again, and
/// a held exec survives a supervisor kill as above.
#[test]
fn keeper_that_left_idle_is_started_again() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let socket = sup.runtime_dir().join("keeper.sock");
    // Only the socket is watched: connecting would count as activity.
    assert!(
        poll_until(Duration::from_secs(40), || !socket.exists()),
        "the idle keeper never left"
    );
    let trigger = Trigger::start(&sup);
    assert!(
        keeper_pid(sup.runtime_dir()).is_some(),
        "no keeper for the new container\n{}\n--- keeper.log ---\n{}",
        sup.report(),
        std::fs::read_to_string(sup.runtime_dir().join("keeper.log")).unwrap_or_default()
    );
    hold_kill_and_restart(&mut sup, &trigger, "the held exec failed with no keeper");
}

/// (b') The supervisor and its fd keeper are both killed while an exec waits in
/// a notification: no process holds the listener any more, the kernel fails the
/// held exec with ENOSYS, and tcpdump never runs. Later watched syscalls of the
/// container fail the same way (fail safe) until it is recreated.
#[test]
fn supervisor_and_keeper_killed_during_a_held_exec() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let keeper = keeper_pid(sup.runtime_dir()).expect("a keeper listens");
    let trigger = Trigger::start(&sup);
    hold_then_kill(&mut sup, &trigger);
    thread::sleep(HELD_WINDOW);
    assert!(
        trigger.outcome().is_none(),
        "the keeper did not keep the exec waiting: {:?}",
        trigger.outcome()
    );
    kill(
        Pid::from_raw(i32::try_from(keeper).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        poll_until(ALERT_TIMEOUT, || trigger.outcome().is_some()),
        "the held exec is still waiting with no listener left"
    );
    let (rc, out) = trigger.outcome().unwrap();
    assert_ne!(rc, "rc=0", "tcpdump ran: {out}");
    assert!(
        contains_ignore_case(&out, "function not implemented"),
        "{rc}: {out}"
    );
    // Fail safe afterwards: a watched exec into it fails too.
    let later = trigger.container.exec_plain(&["/bin/true"]);
    assert!(!later.success(), "an unwatched exec ran: {later}");
}

/// (b'') `runc exec` while the supervisor is stalled: the exec'd process gets a
/// filter of its own, whose notify fd waits in the stalled supervisor's socket
/// queue — the keeper never saw it. When the supervisor dies, that fd dies with
/// the queue: the held exec fails with ENOSYS (tcpdump never runs). The
/// container's own listener is kept, so the next supervisor goes on enforcing.
#[test]
fn runc_exec_held_by_a_stalled_supervisor_fails_when_it_dies() {
    if !require_root() {
        return;
    }
    let mut sup = Supervisor::start(None);
    let (_bundle, container) = sleeping_staging(&sup);
    let stopped = Stopped::stop(&mut sup);
    let exec = held_runc_exec(stopped.0, &container);
    stopped.0.signal(Signal::SIGKILL);
    drop(stopped);
    sup.stop_with(Signal::SIGKILL);
    let out = exec.join().unwrap();
    assert!(!out.success(), "{out}");
    assert!(!tcpdump_ran(&out), "tcpdump ran: {out}");
    assert!(out.mentions("function not implemented"), "{out}");
    sup.restart();
    let refused = container.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(!tcpdump_ran(&refused), "tcpdump ran: {refused}");
    assert!(
        refused.mentions("operation not permitted"),
        "{refused}\n{}",
        sup.report()
    );
}

/// Removes a container's cgroups that a killed runtime left behind (and kills
/// what is in them), so that the test leaves the host as it found it.
struct CgroupLeftovers(String);

impl Drop for CgroupLeftovers {
    fn drop(&mut self) {
        let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let mut dirs: Vec<PathBuf> = controllers
            .filter_map(Result::ok)
            .map(|c| c.path().join(&self.0))
            .collect();
        dirs.push(PathBuf::from("/sys/fs/cgroup").join(&self.0));
        for dir in dirs.into_iter().filter(|d| d.is_dir()) {
            for file in ["cgroup.procs", "tasks"] {
                if let Ok(pids) = std::fs::read_to_string(dir.join(file)) {
                    for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
            let _ = poll_until(Duration::from_secs(5), || {
                std::fs::remove_dir(&dir).is_ok() || !dir.exists()
            });
        }
    }
}

/// (c) The runtime is killed during `create`, after the hook registered the
/// container: no poststop hook will ever come. The container's init dies with
/// its runtime, and the supervisor deregisters the container on its own once it
/// sees the init gone (within two 5 s checks).
#[test]
fn runtime_killed_mid_create_leaves_no_registration() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let hook = HookInterposer::new(true);
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(Runtime::Runc);
    let _leftovers = CgroupLeftovers(container.id().to_owned());
    let id = container.id().to_owned();
    let hook_path = hook.path();
    let mut create = container.spawn_create_via_shim_env(
        &sup,
        &bundle,
        &[("SNIFFGUARD_HOOK", hook_path.as_os_str())],
    );
    assert!(
        poll_until(COMMAND_TIMEOUT, || hook.registered(&id)),
        "the hook never registered {id}\n{}",
        sup.report()
    );
    assert!(
        attachment(&sup, &id).is_some(),
        "not registered\n{}",
        sup.report()
    );
    // The shim exec'd the runtime: the child is runc itself.
    create.kill().unwrap();
    let _ = create.wait();
    hook.release();
    let gone = poll_until(Duration::from_secs(20), || attachment(&sup, &id).is_none());
    assert!(
        gone,
        "a registration whose runtime died mid-create stays\n{}",
        sup.report()
    );
    assert!(
        sup.stderr_log().contains("no poststop hook came"),
        "the supervisor does not say why it dropped the container\n{}",
        sup.report()
    );
    // Enforcement for others is unaffected.
    let (_b, other) = sleeping_staging(&sup);
    let refused = other.exec_via_shim(&sup, &["tcpdump", "-D"]);
    assert!(refused.mentions("operation not permitted"), "{refused}");
}

/// A small tmpfs mounted on a temporary directory, unmounted on drop (lazily,
/// so that a file the supervisor still holds open cannot keep it).
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = temp_dir("sniffguard-fulldisk-");
        let out = run_command(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},mode=0700"))
                .arg("tmpfs")
                .arg(dir.path()),
            COMMAND_TIMEOUT,
        );
        assert!(out.success(), "{out}");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk: writes until the kernel says ENOSPC.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = [0x55u8; 4096];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => {
                    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
                    break;
                }
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn full_disk_policy(alert_file: &Path) -> String {
    format!(
        r#"
default_environment = "staging"
[environments.staging]
mode = "enforce"
fail = "open"
responses = ["alert", "deny"]
[alerts]
stdout = true
file = "{}"
"#,
        alert_file.display()
    )
}

/// Runs tcpdump `n` times in a new staging container and returns its output.
fn try_tcpdump(sup: &Supervisor, target: &dyn ShimTarget, n: usize) -> (Container, CmdOutput) {
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do tcpdump -D >/dev/null 2>&1; echo rc=$?; i=$((i+1)); done"
    );
    let bundle = Bundle::new(rootfs(), &["sh", "-c", &script], Some("staging"));
    let container = Container::new(Runtime::Runc);
    let out = container.run_via_shim(target, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    (container, out)
}

/// (d) The alert file's disk is full: decisions go on, stdout still gets every
/// alert, the failures are logged, and the file gets alerts again once there is
/// room.
#[test]
fn alert_file_on_a_full_disk() {
    if !require_root() {
        return;
    }
    let disk = SmallDisk::mount("64k");
    let alert_file = disk.path().join("alerts.jsonl");
    let sup = Supervisor::start(Some(&full_disk_policy(&alert_file)));
    disk.fill();

    let (container, out) = try_tcpdump(&sup, &sup, 3);
    assert_eq!(out.stdout.matches("rc=126").count(), 3, "{out}");
    assert!(
        sup.wait_alert(|a| is_alert_for(a, container.id()), ALERT_TIMEOUT)
            .is_some(),
        "stdout got no alert\n{}",
        sup.report()
    );
    assert!(
        poll_until(ALERT_TIMEOUT, || sup
            .stderr_log()
            .contains("cannot append an alert to the alert file")),
        "the failed write is not reported\n{}",
        sup.report()
    );
    let written = std::fs::read_to_string(&alert_file).unwrap_or_default();
    assert!(
        !written.contains(container.id()),
        "the full disk took the alert? {written}"
    );

    // Room again: the same open file takes the next alerts.
    disk.free();
    let (later, out) = try_tcpdump(&sup, &sup, 1);
    assert!(out.stdout.contains("rc=126"), "{out}");
    assert!(
        poll_until(ALERT_TIMEOUT, || std::fs::read_to_string(&alert_file)
            .unwrap_or_default()
            .contains(later.id())),
        "the alert file did not recover\n{}",
        sup.report()
    );
}

/// (d, counter) The failed writes are counted where operators look:
/// `sniffguard status` (`alert_write_failures`).
#[test]
fn alert_file_failures_are_counted_in_status() {
    if !require_root() {
        return;
    }
    let disk = SmallDisk::mount("64k");
    let alert_file = disk.path().join("alerts.jsonl");
    let sup = Supervisor::start(Some(&full_disk_policy(&alert_file)));
    disk.fill();
    let (container, _) = try_tcpdump(&sup, &sup, 1);
    assert!(sup
        .wait_alert(|a| is_alert_for(a, container.id()), ALERT_TIMEOUT)
        .is_some());
    assert!(
        poll_until(ALERT_TIMEOUT, || sup.counter("alert_write_failures") >= 1),
        "{}",
        sup.status()
    );
}

/// (e) The policy file disappears, then turns into garbage, and the supervisor
/// is asked to reload each time: it keeps the last good policy (an environment
/// only that file defines still works), says so on stderr, and takes a good
/// file again.
#[test]
fn policy_file_disappears_and_reload_keeps_the_last_good_policy() {
    if !require_root() {
        return;
    }
    let policy = r#"
default_environment = "qa"
[environments.qa]
mode = "enforce"
fail = "open"
responses = ["alert", "deny"]
"#;
    let mut sup = Supervisor::start(Some(policy));
    let file = sup.policy_path().unwrap().to_path_buf();
    // The shim reads its own copy: this test is about the supervisor's file.
    let shim_side = temp_dir("sniffguard-shim-policy-");
    let shim_policy = shim_side.path().join("policy.toml");
    std::fs::write(&shim_policy, policy).unwrap();
    let target = DirTarget::new(sup.runtime_dir().to_path_buf(), Some(shim_policy));
    let qa_refuses = |sup: &Supervisor| {
        let bundle = Bundle::new(
            rootfs(),
            &["sh", "-c", "tcpdump -D >/dev/null 2>&1; echo rc=$?"],
            Some("qa"),
        );
        let container = Container::new(Runtime::Runc);
        let out = container.run_via_shim(&target, &bundle);
        assert!(out.success(), "{out}\n{}", sup.report());
        assert!(
            out.stdout.contains("rc=126"),
            "qa no longer enforced: {out}\n{}",
            sup.report()
        );
    };
    qa_refuses(&sup);

    let failures = |sup: &Supervisor| {
        sup.stderr_log()
            .matches("policy reload failed; keeping the policy in force")
            .count()
    };
    std::fs::remove_file(&file).unwrap();
    sup.signal(Signal::SIGHUP);
    assert!(
        poll_until(Duration::from_secs(10), || failures(&sup) >= 1),
        "no word about the missing file\n{}",
        sup.report()
    );
    assert!(sup.is_running());
    assert_eq!(sup.status()["policy"], file.display().to_string());
    qa_refuses(&sup);

    std::fs::write(&file, "default_environment = [\n").unwrap();
    sup.signal(Signal::SIGHUP);
    assert!(
        poll_until(Duration::from_secs(10), || failures(&sup) >= 2),
        "no word about the bad file\n{}",
        sup.report()
    );
    qa_refuses(&sup);

    std::fs::write(&file, policy).unwrap();
    sup.signal(Signal::SIGHUP);
    assert!(
        poll_until(Duration::from_secs(10), || sup
            .stderr_log()
            .contains("policy reloaded")),
        "a good file is not taken back\n{}",
        sup.report()
    );
    qa_refuses(&sup);
}
