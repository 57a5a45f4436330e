//! Alerts: one JSON object per line, telling the reader what happened, where,
//! and what to do next.
//!
//! The decision path hands an [`Incident`] to [`AlertSink::raise`], which never
//! blocks: the incident is queued for a writer task that completes it (the
//! binary's SHA-256 is computed there, off the hot path) and writes the line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sniffguard_common::policy::{Mode, Policy};
use sniffguard_common::RULE_NAME;
use tokio::sync::mpsc;

use crate::classify::{self, Evidence};
use crate::resolve::strip_root;

/// Incidents queued before new ones are dropped (and counted).
const QUEUE_DEPTH: usize = 4096;

/// Ancestors listed in an alert.
const MAX_ANCESTRY: usize = 12;

/// What was done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refused before it ran (`EPERM`).
    Denied,
    /// Let through (audit mode).
    Allowed,
    /// Killed after it started (the enforce backstop).
    Killed,
}

/// Which mechanism saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// A seccomp user notification.
    Seccomp,
    /// The eBPF exec tracepoint.
    ExecProbe,
    /// The eBPF socket / setsockopt / ioctl tracepoints.
    SocketProbe,
}

/// A process as seen from `/proc`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessInfo {
    /// Process id (thread group) on the host.
    pub pid: Option<u32>,
    /// The thread that made the call.
    pub tid: u32,
    /// Parent process id.
    pub ppid: Option<u32>,
    /// Real user id.
    pub uid: Option<u32>,
    /// The file it tried to run (path inside the container), or its own
    /// executable for a socket call.
    pub exe: Option<String>,
    /// Its arguments.
    pub argv: Vec<String>,
    /// Working directory inside the container.
    pub cwd: Option<String>,
    /// SHA-256 of `exe`.
    pub sha256: Option<String>,
    /// Parent, grandparent, … as (pid, command).
    pub ancestry: Vec<Ancestor>,
}

/// One ancestor process.
#[derive(Debug, Clone, Serialize)]
pub struct Ancestor {
    /// Host pid.
    pub pid: u32,
    /// Command name (`comm`).
    pub comm: String,
}

/// A decision worth an alert, as the decision path knows it.
#[derive(Debug)]
pub struct Incident {
    /// When it was decided.
    pub time: SystemTime,
    /// The container.
    pub container_id: String,
    /// What the registry knew of it at the time (it may be gone by the time
    /// the alert is written).
    pub container: Option<crate::registry::ContainerRecord>,
    /// Its environment.
    pub environment: String,
    /// The environment's mode.
    pub mode: Mode,
    /// What was done.
    pub action: Action,
    /// Who saw it.
    pub mechanism: Mechanism,
    /// The syscall.
    pub syscall: &'static str,
    /// Why it counts as sniffing.
    pub evidence: Vec<Evidence>,
    /// The process.
    pub process: ProcessInfo,
    /// The executable, to hash.
    pub file: Option<File>,
    /// Time from receiving the notification to answering it.
    pub decision_latency: Duration,
}

/// The MITRE ATT&CK reference of the rule.
#[derive(Debug, Serialize)]
struct Mitre {
    tactic: &'static str,
    technique: &'static str,
    name: &'static str,
}

#[derive(Debug, Serialize)]
struct ContainerInfo {
    id: String,
    name: Option<String>,
    runtime: Option<String>,
    bundle: Option<String>,
    pod: Option<String>,
    namespace: Option<String>,
    pipeline: BTreeMap<String, String>,
    registered: bool,
}

/// The alert document.
#[derive(Debug, Serialize)]
struct Alert<'a> {
    time: String,
    rule: &'static str,
    description: &'static str,
    category: &'static str,
    method: &'static str,
    importance: &'static str,
    mitre: Mitre,
    summary: String,
    host: &'a str,
    environment: &'a str,
    mode: &'static str,
    action: Action,
    mechanism: Mechanism,
    syscall: &'static str,
    evidence: &'a [Evidence],
    container: ContainerInfo,
    process: &'a ProcessInfo,
    decision_latency_us: u64,
    next_steps: Vec<String>,
}

/// Where alerts go, and what it needs to complete them.
#[derive(Clone)]
pub struct AlertSink {
    queue: mpsc::Sender<Incident>,
    dropped: Arc<AtomicU64>,
}

impl AlertSink {
    /// Starts the writer task, writing to `out` (stdout in production).
    pub fn start(out: Box<dyn Write + Send>, policy: Arc<arc_swap::ArcSwap<Policy>>) -> AlertSink {
        let (queue, mut incidents) = mpsc::channel::<Incident>(QUEUE_DEPTH);
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = out;
        tokio::spawn(async move {
            while let Some(mut incident) = incidents.recv().await {
                if let Some(file) = incident.file.take() {
                    incident.process.sha256 =
                        tokio::task::spawn_blocking(move || classify::sha256_hex(&file))
                            .await
                            .ok()
                            .flatten();
                }
                let policy = policy.load();
                let line = render(&incident, &host, &policy);
                if let Err(err) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    tracing::error!(%err, "cannot write alert");
                }
            }
        });
        AlertSink {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues an incident; never waits. A full queue drops it and counts it.
    pub fn raise(&self, incident: Incident) {
        if self.queue.try_send(incident).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, "alert queue full; alert dropped");
        }
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn render(incident: &Incident, host: &str, policy: &Policy) -> String {
    let record = incident.container.as_ref();
    let annotation = |key: &str| record.and_then(|r| r.annotations.get(key).cloned());
    let container = ContainerInfo {
        id: incident.container_id.clone(),
        name: annotation("io.kubernetes.container.name")
            .or_else(|| annotation("io.podman.annotations.name"))
            .or_else(|| annotation("nerdctl/name")),
        runtime: record.and_then(|r| r.runtime.clone()),
        bundle: record.and_then(|r| r.bundle.clone()),
        pod: annotation("io.kubernetes.pod.name"),
        namespace: annotation("io.kubernetes.pod.namespace"),
        pipeline: record.map(|r| r.pipeline.clone()).unwrap_or_default(),
        registered: record.is_some_and(|r| r.registered),
    };
    let next_steps = policy
        .environments
        .get(&incident.environment)
        .map(|env| env.next_steps.clone())
        .unwrap_or_default();
    let what = incident
        .process
        .exe
        .clone()
        .unwrap_or_else(|| "a process".to_string());
    let verb = match incident.action {
        Action::Denied => "was refused",
        Action::Allowed => "ran (audit only)",
        Action::Killed => "was killed",
    };
    let alert = Alert {
        time: humantime::format_rfc3339_micros(incident.time).to_string(),
        rule: RULE_NAME,
        description: "Network sniffing tool",
        category: "Discovery",
        method: "Network Sniffing",
        importance: "critical",
        mitre: Mitre {
            tactic: "Discovery",
            technique: "T1040",
            name: "Network Sniffing",
        },
        summary: format!(
            "network sniffing via {} ({}) {verb} in container {} [{}]",
            what, incident.syscall, incident.container_id, incident.environment
        ),
        host,
        environment: &incident.environment,
        mode: incident.mode.as_str(),
        action: incident.action,
        mechanism: incident.mechanism,
        syscall: incident.syscall,
        evidence: &incident.evidence,
        container,
        process: &incident.process,
        decision_latency_us: u64::try_from(incident.decision_latency.as_micros())
            .unwrap_or(u64::MAX),
        next_steps,
    };
    let mut line = serde_json::to_string(&alert).unwrap_or_else(|err| {
        format!("{{\"rule\":\"{RULE_NAME}\",\"error\":\"cannot render alert: {err}\"}}")
    });
    line.push('\n');
    line
}

/// Fills in what `/proc` says about thread `tid`: pid, parent, uid, working
/// directory, ancestry. Best effort: a process that is already gone leaves
/// these empty.
pub fn describe_process(tid: u32, info: &mut ProcessInfo) {
    info.tid = tid;
    if let Some(status) = read_status(tid) {
        info.pid = status.get("Tgid").and_then(|v| v.parse().ok());
        info.ppid = status.get("PPid").and_then(|v| v.parse().ok());
        info.uid = status
            .get("Uid")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
    }
    let root = std::fs::read_link(format!("/proc/{tid}/root")).ok();
    if let (Ok(cwd), Some(root)) = (std::fs::read_link(format!("/proc/{tid}/cwd")), &root) {
        let cwd = OsString::from(cwd);
        info.cwd =
            strip_root(&cwd, &OsString::from(root)).map(|p| p.to_string_lossy().into_owned());
    }
    let mut next = info.ppid;
    while let Some(pid) = next.filter(|p| *p > 0) {
        if info.ancestry.len() >= MAX_ANCESTRY {
            break;
        }
        let Some(status) = read_status(pid) else {
            break;
        };
        info.ancestry.push(Ancestor {
            pid,
            comm: status.get("Name").cloned().unwrap_or_default(),
        });
        next = status.get("PPid").and_then(|v| v.parse().ok());
    }
}

/// The path of a resolved file inside the process's root.
pub fn path_in_container(tid: u32, host_path: &std::path::Path) -> String {
    let root = std::fs::read_link(format!("/proc/{tid}/root")).unwrap_or_else(|_| "/".into());
    strip_root(&host_path.as_os_str().to_owned(), &root.into_os_string())
        .unwrap_or_else(|| host_path.as_os_str().to_owned())
        .to_string_lossy()
        .into_owned()
}

fn read_status(pid: u32) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}
