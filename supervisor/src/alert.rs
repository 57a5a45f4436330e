//! Alerts: one JSON object per line, telling the reader what happened, where,
//! and what to do next.
//!
//! The decision path hands an [`Incident`] to `sinks::AlertSink::raise`, which
//! never blocks; this module turns an incident into the alert document.

use std::collections::BTreeMap;
use std::fs::File;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sniffguard_common::policy::{keys as policy_keys, Mode, Policy};
use sniffguard_common::RULE_NAME;

use crate::classify::Evidence;
use crate::procfs::{self, ProcessInfo};
use crate::verdict::{Action, Exception};

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
    /// The end (expiry or revocation) of a break-glass grant, which ends the
    /// captures it let start.
    GrantEnd,
    /// The supervisor's own sockets: a request from where none may come.
    Api,
    /// A supervisor that came back attaching a container that started while
    /// it was away.
    Reattach,
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
    /// The exception that let it through, if any.
    pub exception: Option<Exception>,
    /// Responses carried out besides the action (`kill`, `freeze`, `forensics`).
    pub responses: Vec<String>,
    /// The forensic record written for it.
    pub forensics: Option<String>,
}

impl Incident {
    /// An incident that is not the decision on a syscall — a refused request
    /// to the supervisor, the end of a grant, a container attached late: the
    /// container when it is known, its process `pid` as `/proc` describes it
    /// now, no file, no decision latency.
    pub fn about(
        policy: &Policy,
        container: Option<crate::registry::ContainerRecord>,
        pid: Option<u32>,
        (action, mechanism, syscall): (Action, Mechanism, &'static str),
        evidence: Evidence,
    ) -> Incident {
        let environment = container
            .as_ref()
            .map(|c| c.environment.clone())
            .unwrap_or_default();
        let mode = policy
            .environment(&environment)
            .map_or(Mode::Enforce, |(_, env)| env.mode);
        let mut process = ProcessInfo {
            pid,
            tid: pid.unwrap_or_default(),
            ..ProcessInfo::default()
        };
        if let Some(pid) = pid {
            procfs::describe_process(pid, &mut process);
        }
        Incident {
            time: SystemTime::now(),
            container_id: container
                .as_ref()
                .map_or_else(|| "(not a watched container)".to_string(), |c| c.id.clone()),
            container,
            environment,
            mode,
            action,
            mechanism,
            syscall,
            evidence: vec![evidence],
            process,
            file: None,
            decision_latency: Duration::ZERO,
            exception: None,
            responses: Vec::new(),
            forensics: None,
        }
    }
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
    /// How the environment was chosen (rule N, the default, an annotation
    /// that tightened it), so that an operator can audit it.
    environment_chosen_by: String,
    /// Capabilities the runtime shim kept out of the container's processes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    capabilities_dropped: Vec<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a crate::verdict::Exception>,
    responses: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    forensics: Option<&'a str>,
    next_steps: Vec<String>,
}

/// How the policy chose `environment` for a container with `annotations`, in
/// words (see [`sniffguard_common::policy::Resolution::describe`]).
pub fn environment_chosen_by(
    policy: &Policy,
    environment: &str,
    annotations: Option<&BTreeMap<String, String>>,
) -> String {
    let empty = BTreeMap::new();
    policy
        .resolve(Some(environment), annotations.unwrap_or(&empty))
        .map(|resolved| resolved.describe())
        .unwrap_or_else(|_| "an environment the current policy no longer defines".to_string())
}

/// The capabilities the runtime shim says it kept out of a container.
pub fn capabilities_dropped(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .get(sniffguard_common::DROPPED_CAPABILITIES_ANNOTATION)
        .map(|v| sniffguard_common::dropped_capabilities(v))
        .unwrap_or_default()
}

/// The alert document of `incident`, in sniffguard's own format.
pub fn document(incident: &Incident, host: &str, policy: &Policy) -> serde_json::Value {
    let record = incident.container.as_ref();
    let annotation = |keys: &[&str]| {
        record.and_then(|r| keys.iter().find_map(|k| r.annotations.get(*k).cloned()))
    };
    let container = ContainerInfo {
        id: incident.container_id.clone(),
        name: annotation(&policy_keys::CONTAINER_KEYS).or_else(|| annotation(&["nerdctl/name"])),
        runtime: record.and_then(|r| r.runtime.clone()),
        bundle: record.and_then(|r| r.bundle.clone()),
        pod: annotation(&policy_keys::POD_KEYS),
        namespace: annotation(&policy_keys::NAMESPACE_KEYS),
        pipeline: record.map(|r| r.pipeline.clone()).unwrap_or_default(),
        registered: record.is_some_and(|r| r.registered),
        environment_chosen_by: record
            .and_then(|r| r.environment_chosen_by.clone())
            .unwrap_or_else(|| {
                environment_chosen_by(
                    policy,
                    &incident.environment,
                    record.map(|r| &r.annotations),
                )
            }),
        capabilities_dropped: record
            .map(|r| capabilities_dropped(&r.annotations))
            .unwrap_or_default(),
    };
    let next_steps = policy
        .environments
        .get(&incident.environment)
        .map(|env| env.next_steps.clone())
        .unwrap_or_default();
    // A process gone before /proc was read is named by its comm.
    let what = incident
        .process
        .exe
        .clone()
        .or_else(|| incident.process.comm.clone())
        .unwrap_or_else(|| "a process".to_string());
    let verb = match incident.action {
        Action::Denied => "was refused",
        Action::Allowed => "ran (audit only)",
        Action::Killed => "was killed",
        Action::AllowedByRule => "ran (allowed by a policy rule)",
        Action::AllowedByGrant => "ran (allowed by a break-glass grant)",
        Action::Exited => "ran and exited before it could be killed",
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
        exception: incident.exception.as_ref(),
        responses: &incident.responses,
        forensics: incident.forensics.as_deref(),
        next_steps,
    };
    serde_json::to_value(&alert).unwrap_or_else(|err| {
        serde_json::json!({"rule": RULE_NAME, "error": format!("cannot render alert: {err}")})
    })
}

/// The same alert as Falco writes its JSON output, so that falcosidekick and
/// other Falco routing can forward it unchanged.
pub fn falco(doc: &serde_json::Value) -> serde_json::Value {
    let get = |pointer: &str| {
        doc.pointer(pointer)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let text = |pointer: &str| {
        doc.pointer(pointer)
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "<NA>".to_string(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "<NA>".to_string())
    };
    let cmdline = doc
        .pointer("/process/argv")
        .and_then(serde_json::Value::as_array)
        .map(|args| {
            args.iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let evidence: Vec<String> = doc
        .pointer("/evidence")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| e.get("kind").and_then(serde_json::Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let output = format!(
        "{} Critical Network sniffing tool {} (action={} environment={} container_id={} proc_exepath={} proc_cmdline={} evidence={})",
        text("/time"),
        text("/summary"),
        text("/action"),
        text("/environment"),
        text("/container/id"),
        text("/process/exe"),
        cmdline,
        evidence.join(","),
    );
    serde_json::json!({
        "output": output,
        "priority": "Critical",
        "rule": RULE_NAME,
        "time": get("/time"),
        "source": "sniffguard",
        "hostname": get("/host"),
        "tags": ["T1040", "mitre_discovery", "network", "container", "sniffguard"],
        "output_fields": {
            "container.id": get("/container/id"),
            "container.name": get("/container/name"),
            "k8s.ns.name": get("/container/namespace"),
            "k8s.pod.name": get("/container/pod"),
            "proc.pid": get("/process/pid"),
            "proc.ppid": get("/process/ppid"),
            "proc.exepath": get("/process/exe"),
            "proc.cmdline": cmdline,
            "user.uid": get("/process/uid"),
            "sniffguard.environment": get("/environment"),
            "sniffguard.mode": get("/mode"),
            "sniffguard.action": get("/action"),
            "sniffguard.mechanism": get("/mechanism"),
            "sniffguard.evidence": evidence,
            "sniffguard.sha256": get("/process/sha256"),
        },
    })
}
