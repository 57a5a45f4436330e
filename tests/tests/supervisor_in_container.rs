//! The supervisor restarts in its pod (issue 20): the node agent run the way the
//! Kubernetes manifests run it, restarted and replaced while enforced containers exec
//! in a loop.
//!
//! Every container of every DaemonSet in `examples/kubernetes/*.yaml` (the Helm chart's
//! rendering, `sniffguard.yaml`, has two: the supervisor's and the fd keeper's; the test
//! fails unless it finds both) is started with `ctr run` in a
//! private containerd (`wiring/containerd.rs`) as its pod spec says: the host's pid
//! namespace (`hostPID`), exactly the capabilities it adds (everything else dropped),
//! no seccomp profile (`Unconfined`), a read-only root, its command and arguments, and
//! its hostPath volumes bound where it mounts them — `/run/sniffguard` is the test's
//! runtime directory, `/etc/sniffguard` holds the shipped policy. containerd's runc v2
//! shim is what kills every process of a host-pid container when its init exits, as on
//! a node. What is not modelled: the image (the workspace's binary and the host's
//! libraries are bound into an empty root), the install init container (the shim and
//! hook run from `target/debug`), and the node's default handler (the agent's own
//! containers run under plain runc: their environment, ci, would only audit them).
//!
//! Staging containers through the shim (runc twice, crun once) exec `/bin/true` in a
//! loop and record every failure with the shell's message, which names the errno.
//! The supervisor's container is then killed (`SIGKILL` of its init: a crash, an OOM
//! kill, a failed liveness probe) and started again as a new container, then stopped
//! (`SIGTERM`) and replaced by another (a rollout). Before and after each: no exec
//! failed, with ENOSYS or anything else; the loops move on; tcpdump is refused after;
//! the keeper still holds every container's notify fd.
//!
//! Needs root, containerd (with ctr), runc, crun, and the built workspace.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_yaml::Value as Yaml;
use sniffguard_tests::{
    keeper_pid, poll_until, repo_root, require_root, rootfs, run_command, sniffguard_bin, temp_dir,
    Bundle, Container, DirTarget, Runtime,
};
use tempfile::TempDir;
use wiring::containerd::{Containerd, CTR_TIMEOUT};

/// The capabilities `ctr run` gives a container unless told otherwise (containerd's
/// default set): each is dropped, so that the agent's containers hold only what their
/// pod spec adds.
const CTR_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Bound for the agent's sockets to answer after its container started.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for a container's task to stop after its init was signalled.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for the loops to move on after a restart.
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);

/// Each enforced container execs /bin/true in a loop, publishes its count, and appends
/// the shell's message of every failed exec (which names the errno) to `/ticks/err`.
const LOOP: &str = "i=0; while true; do /bin/true 2>>/ticks/err || echo \"exit $?\" >>/ticks/err; \
    i=$((i+1)); echo $i >/ticks/count; sleep 0.05 2>>/ticks/err; done";

/// One container of a DaemonSet, as its pod spec runs it.
#[derive(Debug, Clone)]
struct AgentContainer {
    /// `DAEMONSET/CONTAINER`, for messages.
    name: String,
    /// `command` then `args`.
    argv: Vec<String>,
    /// `securityContext.capabilities.add`, as `CAP_*`.
    capabilities: Vec<String>,
    /// (hostPath, mountPath, readOnly) of each volume mount that is a hostPath.
    mounts: Vec<(String, String, bool)>,
    host_pid: bool,
    read_only_root: bool,
}

impl AgentContainer {
    /// Whether this is the supervisor (`sniffguard run`).
    fn is_supervisor(&self) -> bool {
        self.argv.get(1).is_some_and(|a| a == "run")
    }

    /// Whether this is a resident fd keeper (`sniffguard keeper --resident`).
    fn is_keeper(&self) -> bool {
        self.argv.get(1).is_some_and(|a| a == "keeper")
            && self.argv.iter().any(|a| a == "--resident")
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every container (not init container) of every DaemonSet in `examples/kubernetes/`.
fn agent_containers() -> Vec<AgentContainer> {
    let dir = repo_root().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let doc =
                Yaml::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if doc["kind"].as_str() != Some("DaemonSet") {
                continue;
            }
            let set = doc["metadata"]["name"].as_str().unwrap_or("?").to_owned();
            let pod = &doc["spec"]["template"]["spec"];
            let host_paths: Vec<(String, String)> = pod["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    Some((
                        v["name"].as_str()?.to_owned(),
                        v["hostPath"]["path"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            for container in pod["containers"].as_sequence().into_iter().flatten() {
                let security = &container["securityContext"];
                let mounts = container["volumeMounts"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        let name = m["name"].as_str()?;
                        let host = host_paths.iter().find(|(n, _)| n == name)?.1.clone();
                        Some((
                            host,
                            m["mountPath"].as_str()?.to_owned(),
                            m["readOnly"].as_bool().unwrap_or(false),
                        ))
                    })
                    .collect();
                assert_eq!(
                    strings(&security["capabilities"]["drop"]),
                    ["ALL"],
                    "{set}: the test models containers that drop every capability"
                );
                out.push(AgentContainer {
                    name: format!("{set}/{}", container["name"].as_str().unwrap_or("?")),
                    argv: strings(&container["command"])
                        .into_iter()
                        .chain(strings(&container["args"]))
                        .collect(),
                    capabilities: strings(&security["capabilities"]["add"])
                        .into_iter()
                        .map(|c| format!("CAP_{c}"))
                        .collect(),
                    mounts,
                    host_pid: pod["hostPID"].as_bool().unwrap_or(false),
                    read_only_root: security["readOnlyRootFilesystem"].as_bool() == Some(true),
                });
            }
        }
    }
    out
}

/// The node the agent runs on: a private containerd, the node's directories standing
/// for the manifests' hostPaths, and an empty root with the workspace's `sniffguard`
/// at the image's path and the host's libraries it links.
struct Node {
    containerd: Containerd,
    root: TempDir,
    runtime_dir: TempDir,
    etc: TempDir,
    forensics: TempDir,
    logs: TempDir,
}

impl Node {
    fn new() -> Node {
        let containerd = Containerd::start();
        let root = temp_dir("sniffguard-agent-root-");
        for dir in [
            "proc",
            "sys",
            "dev",
            "tmp",
            "run",
            "etc",
            "usr/local/bin",
            "var/lib",
        ] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        fs::write(root.path().join("usr/local/bin/sniffguard"), b"").unwrap();
        // Merged /usr: /lib and /lib64 are links into /usr, as on the host.
        for link in ["lib", "lib64", "bin", "sbin"] {
            if let Ok(target) = fs::read_link(Path::new("/").join(link)) {
                std::os::unix::fs::symlink(target, root.path().join(link)).unwrap();
            }
        }
        let runtime_dir = temp_dir("sniffguard-agent-run-");
        fs::set_permissions(runtime_dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let etc = temp_dir("sniffguard-agent-etc-");
        fs::copy(
            repo_root().join("config/sniffguard.toml"),
            etc.path().join("sniffguard.toml"),
        )
        .unwrap();
        Node {
            containerd,
            root,
            runtime_dir,
            etc,
            forensics: temp_dir("sniffguard-agent-forensics-"),
            logs: temp_dir("sniffguard-agent-logs-"),
        }
    }

    /// Where the shim and hook on the node send containers: the runtime directory
    /// the agent's containers mount at `/run/sniffguard`, and the same policy.
    fn target(&self) -> DirTarget {
        DirTarget::new(
            self.runtime_dir.path().to_path_buf(),
            Some(self.etc.path().join("sniffguard.toml")),
        )
    }

    /// The node's directory standing for a manifest's hostPath.
    fn host_path(&self, path: &str) -> PathBuf {
        match path {
            "/run/sniffguard" => self.runtime_dir.path().to_path_buf(),
            "/etc/sniffguard" => self.etc.path().to_path_buf(),
            "/var/lib/sniffguard/forensics" => self.forensics.path().to_path_buf(),
            other => PathBuf::from(other),
        }
    }

    /// The host directories holding the libraries `sniffguard` links, bound read-only
    /// at the same paths (with `/usr/lib64`, where the dynamic loader's link is).
    fn library_dirs() -> Vec<PathBuf> {
        let out = run_command(Command::new("ldd").arg(sniffguard_bin()), CTR_TIMEOUT);
        assert!(out.success(), "ldd: {out}");
        let mut dirs: Vec<PathBuf> = out
            .stdout
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
            .filter_map(|w| fs::canonicalize(w).ok())
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        if Path::new("/usr/lib64").is_dir() {
            dirs.push(PathBuf::from("/usr/lib64"));
        }
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// `ctr run -d` of `agent` as container `id`; returns the pid of its init.
    fn start(&self, agent: &AgentContainer, id: &str) -> u32 {
        assert!(agent.host_pid, "{}: not hostPID", agent.name);
        let pid_file = self.logs.path().join(format!("{id}.pid"));
        let log = self.logs.path().join(format!("{id}.log"));
        let mut cmd = self.containerd.ctr();
        cmd.args(["run", "-d", "--rootfs", "--runc-root"])
            .arg(self.containerd.dir().join("runc"))
            .arg("--fifo-dir")
            .arg(self.containerd.dir().join("fifo"))
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--log-uri")
            .arg(format!("file://{}", log.display()))
            // The host's pid namespace, named through this test's own process: pid 1's
            // namespace links may be out of reach (a protected init), and the test runs
            // in the host's namespace like the kubelet.
            .arg("--with-ns")
            .arg(format!("pid:/proc/{}/ns/pid", std::process::id()));
        if agent.read_only_root {
            cmd.arg("--read-only");
        }
        // ctr drops after it adds: a default the pod spec adds too stays.
        for cap in CTR_DEFAULT_CAPABILITIES
            .into_iter()
            .filter(|c| !agent.capabilities.iter().any(|a| a == c))
        {
            cmd.args(["--cap-drop", cap]);
        }
        for cap in &agent.capabilities {
            cmd.args(["--cap-add", cap]);
        }
        let bind = |cmd: &mut Command, src: &Path, dst: &str, ro: bool| {
            let mode = if ro { "ro" } else { "rw" };
            cmd.arg("--mount").arg(format!(
                "type=bind,src={},dst={dst},options=rbind:{mode}",
                src.display()
            ));
        };
        bind(
            &mut cmd,
            &sniffguard_bin(),
            "/usr/local/bin/sniffguard",
            true,
        );
        for dir in Node::library_dirs() {
            bind(&mut cmd, &dir, &dir.display().to_string(), true);
        }
        for (host, inside, ro) in &agent.mounts {
            bind(&mut cmd, &self.host_path(host), inside, *ro);
        }
        cmd.arg(self.root.path()).arg(id).args(&agent.argv);
        let out = run_command(&mut cmd, CTR_TIMEOUT);
        assert!(
            out.success(),
            "ctr run {}: {out}\n{}",
            agent.name,
            self.containerd.log()
        );
        let mut pid = None;
        assert!(
            poll_until(Duration::from_secs(10), || {
                pid = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                pid.is_some()
            }),
            "no pid file for {id}"
        );
        pid.unwrap()
    }

    /// Stops container `id` by `signal` to its init (from the host, by the pid
    /// containerd reported), waits (bounded) until its task stopped, and removes it
    /// as the kubelet removes a container it replaces.
    fn stop(&self, id: &str, pid: u32, signal: Signal) {
        // The pid is the init of a task that has not been deleted: containerd's
        // shim has not reaped it, so it cannot have been reused.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            signal,
        );
        let stopped = poll_until(STOP_TIMEOUT, || {
            let out = run_command(self.containerd.ctr().args(["task", "ls"]), CTR_TIMEOUT);
            out.stdout
                .lines()
                .any(|l| l.starts_with(id) && l.contains("STOPPED"))
        });
        assert!(stopped, "{id} did not stop after {signal:?}");
        let out = run_command(
            self.containerd.ctr().args(["task", "delete", id]),
            CTR_TIMEOUT,
        );
        assert!(out.success(), "ctr task delete {id}: {out}");
        let out = run_command(
            self.containerd.ctr().args(["container", "delete", id]),
            CTR_TIMEOUT,
        );
        assert!(out.success(), "ctr container delete {id}: {out}");
    }

    /// Stops the supervisor container `(id, pid)` by `signal` and starts its
    /// replacement, `sg-agent-SUFFIX` (bounded waits); returns the new `(id, pid)`.
    fn replace(
        &self,
        supervisor: &AgentContainer,
        (id, pid): (String, u32),
        signal: Signal,
        suffix: &str,
    ) -> (String, u32) {
        self.stop(&id, pid, signal);
        let id = format!("sg-agent-{suffix}");
        let pid = self.start(supervisor, &id);
        self.wait_supervisor(&id);
        (id, pid)
    }

    /// Waits (bounded) until the supervisor's sockets answer.
    fn wait_supervisor(&self, id: &str) {
        let dir = self.runtime_dir.path();
        let up = poll_until(AGENT_START_TIMEOUT, || {
            std::os::unix::net::UnixStream::connect(dir.join("api.sock")).is_ok()
                && std::os::unix::net::UnixStream::connect(dir.join("seccomp.sock")).is_ok()
        });
        assert!(up, "supervisor {id} did not answer\n{}", self.report());
    }

    /// Every agent container's output so far, and the keeper log of a spawned keeper.
    fn report(&self) -> String {
        let mut out = String::new();
        let mut logs: Vec<PathBuf> = fs::read_dir(self.logs.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.push(self.runtime_dir.path().join("keeper.log"));
        logs.sort();
        for log in logs
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                log.display(),
                fs::read_to_string(log).unwrap_or_default()
            ));
        }
        out
    }
}

/// An enforced container exec'ing in a loop.
struct Looping {
    container: Container,
    ticks: TempDir,
    _bundle: Bundle,
}

impl Looping {
    fn start(node: &Node, runtime: Runtime) -> Looping {
        let ticks = temp_dir("sniffguard-ticks-");
        fs::set_permissions(ticks.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let bundle = Bundle::new(rootfs(), &["sh", "-c", LOOP], Some("staging"))
            .bind_rw(ticks.path(), "/ticks");
        let container = Container::new(runtime);
        let out = container.create_detached_via_shim(&node.target(), &bundle);
        assert!(out.success(), "{runtime}: {out}\n{}", node.report());
        Looping {
            container,
            ticks,
            _bundle: bundle,
        }
    }

    /// The loop's count; the shell rewrites the file in place, so an empty read is
    /// read again (bounded) rather than taken for 0.
    fn count(&self) -> u64 {
        let path = self.ticks.path().join("count");
        for _ in 0..100 {
            if let Some(n) = fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        0
    }

    fn errors(&self) -> String {
        fs::read_to_string(self.ticks.path().join("err")).unwrap_or_default()
    }
}

/// The loops' failed execs, counted by the errno the shell named.
fn failures_by_errno(loops: &[Looping]) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in loops {
        for line in l.errors().lines() {
            let errno = if line.contains("Function not implemented") {
                "ENOSYS"
            } else if line.contains("Operation not permitted") {
                "EPERM"
            } else if line.starts_with("exit ") {
                continue;
            } else {
                "other"
            };
            *counts.entry(errno.to_owned()).or_default() += 1;
        }
    }
    counts.into_iter().collect()
}

/// Waits (bounded) until every loop has moved on by 3 from where it was.
fn loops_move_on(loops: &[Looping], timeout: Duration) -> bool {
    let from: Vec<u64> = loops.iter().map(Looping::count).collect();
    poll_until(timeout, || {
        loops.iter().zip(&from).all(|(l, f)| l.count() >= f + 3)
    })
}

/// The fds of `pid` that are seccomp notify fds.
fn notify_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().contains("seccomp notify"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// The checks after each step: no failed exec, the loops move on, the keeper holds
/// every container's notify fd, tcpdump is refused.
fn check(node: &Node, loops: &[Looping], when: &str) {
    let failures = failures_by_errno(loops);
    assert!(
        failures.is_empty(),
        "{when}: execs failed in enforced containers, by errno: {failures:?}\n{}\n{}",
        loops
            .iter()
            .map(|l| {
                let errors = l.errors();
                let first: Vec<&str> = errors.lines().take(4).collect();
                format!(
                    "{} ({}), first of {} lines: {}",
                    l.container.id(),
                    l.container.runtime(),
                    errors.lines().count(),
                    first.join(" | ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        node.report()
    );
    assert!(
        loops_move_on(loops, RESUME_TIMEOUT),
        "{when}: the loops stand still\n{}",
        node.report()
    );
    let keeper = keeper_pid(node.runtime_dir.path())
        .unwrap_or_else(|| panic!("{when}: no fd keeper answers\n{}", node.report()));
    let held = notify_fds(keeper);
    assert!(
        held >= loops.len(),
        "{when}: the keeper (pid {keeper}) holds {held} notify fds for {} containers\n{}",
        loops.len(),
        node.report()
    );
    for l in loops {
        let refused = l
            .container
            .exec_via_shim(&node.target(), &["tcpdump", "-D"]);
        assert!(
            !refused.success() && refused.mentions("operation not permitted"),
            "{when}: tcpdump in {} ({}) was not refused: {refused}\n{}",
            l.container.id(),
            l.container.runtime(),
            node.report()
        );
    }
    eprintln!(
        "{when}: no failed exec; loops at {:?}; keeper pid {keeper} holds {held} notify fds",
        loops.iter().map(Looping::count).collect::<Vec<_>>()
    );
}

#[test]
fn enforcement_survives_restart_and_rollout_of_the_supervisor_container() {
    if !require_root() {
        return;
    }
    let agents = agent_containers();
    let supervisor = agents
        .iter()
        .find(|a| a.is_supervisor())
        .expect("a DaemonSet container runs `sniffguard run`")
        .clone();
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        agents.len(),
        2,
        "the manifests' DaemonSets run one supervisor and one keeper: {names:?}"
    );
    assert!(
        agents.iter().any(AgentContainer::is_keeper),
        "no DaemonSet container runs `sniffguard keeper --resident`: {names:?}"
    );
    let node = Node::new();
    let tag = std::process::id();
    let supervisor_id = format!("sg-agent-{tag}-supervisor-1");
    let mut supervisor_pid = 0;
    let mut keeper = None;
    // As the DaemonSets come up on a node: in the manifests' order, which in the
    // chart's rendering is the supervisor first. It then spawns a keeper of its own
    // (in its container, where a restart would kill it), and the keeper's pod takes
    // over from it without dropping an fd.
    for (i, agent) in agents.iter().enumerate() {
        if agent.is_supervisor() {
            supervisor_pid = node.start(agent, &supervisor_id);
            node.wait_supervisor(&supervisor_id);
        } else {
            let id = format!("sg-agent-{tag}-{i}");
            let pid = node.start(agent, &id);
            assert!(
                poll_until(AGENT_START_TIMEOUT, || keeper_pid(node.runtime_dir.path())
                    == Some(pid)),
                "{} (pid {pid}) does not answer on keeper.sock\n{}",
                agent.name,
                node.report()
            );
            keeper = Some((agent.clone(), id, pid));
        }
    }
    // The supervisor holds what its pod spec grants, nothing more.
    let status = fs::read_to_string(format!("/proc/{supervisor_pid}/status")).unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        bounding.count_ones() as usize,
        supervisor.capabilities.len(),
        "bounding set {bounding:#x} of the supervisor container"
    );

    let loops = [Runtime::Runc, Runtime::Runc, Runtime::Crun]
        .into_iter()
        .map(|runtime| Looping::start(&node, runtime))
        .collect::<Vec<_>>();
    check(&node, &loops, "before any restart");

    // A crash, an OOM kill or a failed liveness probe: the init dies at once, and the
    // kubelet starts a new container in the pod.
    let mut current = (supervisor_id, supervisor_pid);
    let started = Instant::now();
    current = node.replace(&supervisor, current, Signal::SIGKILL, &format!("{tag}-2"));
    eprintln!(
        "restart: new supervisor answering {:?} after the kill",
        started.elapsed()
    );
    check(
        &node,
        &loops,
        "after the supervisor container was killed and restarted",
    );

    // A rollout: the old pod is stopped (SIGTERM) and a new one created.
    current = node.replace(&supervisor, current, Signal::SIGTERM, &format!("{tag}-3"));
    check(&node, &loops, "after the supervisor container was replaced");

    // The keeper's own rollout (maxSurge 1): the new pod starts beside the old one and
    // takes every fd over before the old pod is stopped. A supervisor restart after
    // that finds everything with the new keeper.
    let (keeper, old_id, old_pid) = keeper.expect("the keeper's DaemonSet was started");
    let new_pid = node.start(&keeper, &format!("sg-agent-{tag}-keeper-2"));
    assert!(
        poll_until(AGENT_START_TIMEOUT, || keeper_pid(node.runtime_dir.path())
            == Some(new_pid)),
        "the new keeper (pid {new_pid}) does not answer\n{}",
        node.report()
    );
    assert!(
        poll_until(Duration::from_secs(10), || notify_fds(new_pid)
            >= loops.len()
            && notify_fds(old_pid) == 0),
        "no handover: the new keeper holds {} notify fds, the old one {}\n{}",
        notify_fds(new_pid),
        notify_fds(old_pid),
        node.report()
    );
    node.stop(&old_id, old_pid, Signal::SIGTERM);
    current = node.replace(&supervisor, current, Signal::SIGKILL, &format!("{tag}-4"));
    check(
        &node,
        &loops,
        "after the keeper's rollout and another supervisor restart",
    );

    // The keeper's pod restarted (a crash, an OOM kill): the new keeper starts empty,
    // and the supervisor, which still serves every fd, gives it each listener again.
    // Only then may the supervisor restart too.
    node.stop(
        &format!("sg-agent-{tag}-keeper-2"),
        new_pid,
        Signal::SIGKILL,
    );
    let restarted = node.start(&keeper, &format!("sg-agent-{tag}-keeper-3"));
    assert!(
        poll_until(AGENT_START_TIMEOUT, || keeper_pid(node.runtime_dir.path())
            == Some(restarted)
            && notify_fds(restarted) >= loops.len()),
        "the restarted keeper (pid {restarted}) was not given the listeners again: it holds {}\n{}",
        notify_fds(restarted),
        node.report()
    );
    node.replace(&supervisor, current, Signal::SIGKILL, &format!("{tag}-5"));
    check(
        &node,
        &loops,
        "after the keeper's pod restarted empty and the supervisor restarted",
    );
}
