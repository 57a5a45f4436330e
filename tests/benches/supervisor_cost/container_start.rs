//! Section 4, container start: create, start and delete timed for plain runc and the
//! shim in `ci` and `staging`.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sniffguard_tests::{run_command, temp_dir, Bundle, Container, Runtime, ShimTarget, Supervisor};

use crate::footprint::try_status;
use crate::report::{load_average, verdict, Knobs, Report};
use crate::shared::stats::median_f64;
use crate::{LIFECYCLE_TIMEOUT, START_ADDED_TARGET_MS};

/// Runs `cmd` with stdio in `log` and times it from spawn to exit. It waits
/// in `poll(2)` on a pidfd of the child, so nothing spins: a `try_wait` every
/// 100 µs (the first way this was timed) kept one of this machine's two CPUs
/// waking up while the runtime, shim and hook needed both.
fn timed(cmd: &mut Command, log: &Path) -> (Duration, ExitStatus) {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let file = fs::File::create(log).expect("create a command log");
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log"))
        .stderr(file);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn a runtime command");
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; the
    // child is ours and not yet reaped, so its pid names it.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the fd was just returned to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let deadline = started + LIFECYCLE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = nix::poll::PollTimeout::try_from(left.as_millis().min(60_000) as i32)
            .unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) if left.is_zero() => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => panic!("poll on a pidfd: {errno}"),
        }
        if let Some(status) = child.try_wait().expect("waitpid") {
            return (started.elapsed(), status);
        }
    }
    // Our own unreaped child: the signal reaches exactly it.
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "a runtime command outlived {LIFECYCLE_TIMEOUT:?}:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// How a section-4 container is attached to sniffguard.
#[derive(Clone, Copy)]
enum Attach {
    /// Plain runc, no hook.
    None,
    /// Plain runc running `/bin/true` at `createRuntime` and `poststop`.
    NoopHook,
    /// Through the shim, in this environment.
    Shim(&'static str),
    /// Plain runc on a bundle `sniffguard-hook inject` prepared once.
    Injected(&'static str),
}

impl Attach {
    /// A `sleep 3600` bundle prepared for this attachment.
    fn bundle(self, rootfs: &Path, supervisor: &Supervisor) -> Bundle {
        let args = ["sleep", "3600"];
        match self {
            Attach::None => Bundle::new(rootfs, &args, None),
            Attach::Shim(env) => Bundle::new(rootfs, &args, Some(env)),
            Attach::NoopHook => Bundle::new(rootfs, &args, None).edit(|spec| {
                let noop = json!([{ "path": "/bin/true", "args": ["true"] }]);
                spec["hooks"] = json!({ "createRuntime": noop, "poststop": noop });
            }),
            Attach::Injected(env) => {
                let bundle = Bundle::new(rootfs, &args, Some(env));
                let out = run_command(
                    Command::new(sniffguard_tests::hook_bin())
                        .arg("inject")
                        .arg(bundle.path())
                        .env("SNIFFGUARD_RUNTIME_DIR", supervisor.runtime_dir())
                        .env("SNIFFGUARD_REAL_RUNTIME", Runtime::Runc.path())
                        .env_remove("SNIFFGUARD_CONFIG"),
                    LIFECYCLE_TIMEOUT,
                );
                assert!(out.success(), "sniffguard-hook inject failed: {out}");
                bundle.reload()
            }
        }
    }
}

pub(crate) fn container_start(knobs: &Knobs, rootfs: &Path, report: &mut Report) {
    let section_load = load_average();
    let supervisor = Supervisor::start(None);
    let configs = [
        ("plain runc", Attach::None),
        ("plain runc + a no-op hook (`/bin/true`)", Attach::NoopHook),
        ("shim + hook, `ci` (audit)", Attach::Shim("ci")),
        ("shim + hook, `staging` (enforce)", Attach::Shim("staging")),
        (
            "bundle injected once, hook, `ci` (audit)",
            Attach::Injected("ci"),
        ),
        (
            "bundle injected once, hook, `staging` (enforce)",
            Attach::Injected("staging"),
        ),
    ];
    let bundles: Vec<Bundle> = configs
        .iter()
        .map(|(_, attach)| attach.bundle(rootfs, &supervisor))
        .collect();
    let logs = temp_dir("sniffguard-bench-logs-");
    // times[config] = (create, start, delete, total) in ms
    let mut times: Vec<Vec<[f64; 4]>> = vec![Vec::new(); configs.len()];
    for n in 0..knobs.starts {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(n % configs.len());
        for &i in &order {
            let container = Container::new(Runtime::Runc).with_timeout(LIFECYCLE_TIMEOUT);
            let command = |verb: &[&str]| {
                let mut cmd = match configs[i].1 {
                    Attach::Shim(_) => container.shim_command(&supervisor),
                    _ => container.plain_command(),
                };
                cmd.args(verb);
                cmd
            };
            let bundle = bundles[i].path().to_str().expect("a UTF-8 bundle path");
            let id = container.id().to_owned();
            let mut ms = [0.0; 4];
            for (k, verb) in [
                vec!["create", "--bundle", bundle, id.as_str()],
                vec!["start", id.as_str()],
                vec!["delete", "-f", id.as_str()],
            ]
            .iter()
            .enumerate()
            {
                let log = logs.path().join(format!("{}-{}.log", id, verb[0]));
                let (took, status) = timed(&mut command(verb), &log);
                assert!(
                    status.success(),
                    "{}: `{}` failed ({status}):\n{}\n{}",
                    configs[i].0,
                    verb[0],
                    fs::read_to_string(&log).unwrap_or_default(),
                    supervisor.report()
                );
                ms[k] = took.as_secs_f64() * 1000.0;
            }
            ms[3] = ms[0] + ms[1] + ms[2];
            times[i].push(ms);
            // The guard's own `delete -f` finds nothing left (untimed).
            drop(container);
        }
    }
    let leftover = try_status(&supervisor).map_or(0, |status| {
        status
            .get("containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    });
    drop(bundles);
    drop(supervisor);

    report.line("## 4. Container start and stop\n");
    report.line(&format!(
        "{} containers per configuration (`sleep 3600`), interleaved: `create`, `start`, \
         `delete -f`, each timed from spawn to exit. Through the shim, `create` rewrites \
         `config.json`, and the `createRuntime` hook registers the container (and in \
         `staging` runc hands the seccomp listener to the supervisor); `delete` runs the \
         `poststop` hook that deregisters it. The no-op hook row is plain runc running \
         `/bin/true` where the shim puts sniffguard's hooks: what any OCI hook costs. The \
         injected rows run plain runc on a bundle that `sniffguard-hook inject` rewrote \
         once, as the shim would (the wiring for a bundle made ahead; a `hooks.d` entry \
         in audit does the same and also reads the policy): the hook without the \
         shim's process on every runtime command. Medians in ms. Load average \
         before: {section_load}.\n",
        knobs.starts
    ));
    report.line("| configuration | create | start | delete | total | added to create+start | added in all |");
    report.line("|---|---:|---:|---:|---:|---:|---:|");
    let med = |i: usize, k: usize| median_f64(&times[i].iter().map(|t| t[k]).collect::<Vec<_>>());
    let mut added_start = Vec::new();
    for (i, (name, _)) in configs.iter().enumerate() {
        let create_start = median_f64(&times[i].iter().map(|t| t[0] + t[1]).collect::<Vec<_>>());
        let plain_create_start =
            median_f64(&times[0].iter().map(|t| t[0] + t[1]).collect::<Vec<_>>());
        let added = create_start - plain_create_start;
        report.line(&format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {added:+.1} | {:+.1} |",
            med(i, 0),
            med(i, 1),
            med(i, 2),
            med(i, 3),
            med(i, 3) - med(0, 3),
        ));
        added_start.push(added);
    }
    report.line("");
    if leftover > 0 {
        report.line(&format!(
            "**{leftover} container(s) still registered after all were deleted.**\n"
        ));
    }
    report.line(&format!(
        "Of the time added, runc running a hook at all (a no-op one) takes {:+.1} ms; \
         the shim and sniffguard's hook add {:+.1} ms (audit) and {:+.1} ms (enforce) \
         beyond that, sniffguard's hook alone (bundle injected once) {:+.1} and {:+.1} ms.\n",
        added_start[1],
        added_start[2] - added_start[1],
        added_start[3] - added_start[1],
        added_start[4] - added_start[1],
        added_start[5] - added_start[1],
    ));
    let worst = added_start[2].max(added_start[3]);
    report.target(
        "shim + hook, added to a container start (median)",
        &format!("≤ {START_ADDED_TARGET_MS:.0} ms"),
        format!(
            "+{:.1} ms audit, +{:.1} ms enforce (create+start)",
            added_start[2], added_start[3]
        ),
        verdict(worst <= START_ADDED_TARGET_MS),
    );
    report.flush_console();
}
