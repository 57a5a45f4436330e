//! The tail every decision shares. A mechanism — the seccomp listener before a
//! call runs, the eBPF reader after — finds a sniffer and hands the
//! [`Finding`] here: the process is described from `/proc`, the policy judges
//! it ([`verdict::judge`]), the mechanism acts on the verdict (answers the
//! call, or kills what already runs), and the incident is reported with the
//! responses carried out. Both mechanisms go through [`judge_and_report`], so
//! an alert reads the same whichever of them raised it.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sniffguard_common::capture::{CaptureSocket, SocketKind};
use sniffguard_common::policy::Policy;

use crate::alert::{Incident, Mechanism};
use crate::classify::Evidence;
use crate::procfs::{self, ProcessInfo};
use crate::registry::ContainerRecord;
use crate::verdict::{self, Verdict};
use crate::{respond, Shared};

/// What a mechanism found out about one call.
#[derive(Debug)]
pub struct Finding {
    /// Why it counts as sniffing.
    pub evidence: Vec<Evidence>,
    /// What the mechanism knows of the process (the file it runs or tries to
    /// run, its arguments); the rest is read from `/proc` when it is judged.
    pub process: ProcessInfo,
    /// The executable, for the digest in the alert.
    pub file: Option<File>,
    /// The errno a refusal answers with, where the kernel would have failed
    /// the call the same way had nothing changed (`EFAULT`, `ENAMETOOLONG`);
    /// `EPERM` otherwise.
    pub refusal: Option<i32>,
}

impl Finding {
    /// A finding with nothing known of the process yet.
    pub fn new(evidence: Vec<Evidence>, exe: Option<String>, argv: Vec<String>) -> Finding {
        Finding {
            evidence,
            process: ProcessInfo {
                exe,
                argv,
                ..ProcessInfo::default()
            },
            file: None,
            refusal: None,
        }
    }

    /// The name the policy's allow rules match: the file name of what runs.
    fn tool(&self) -> &str {
        self.process
            .exe
            .as_deref()
            .and_then(|exe| exe.rsplit('/').next())
            .unwrap_or_default()
    }
}

/// The evidence a capture socket gives, by the row of the capture rule it
/// matched.
pub fn capture_socket_evidence(rule: &CaptureSocket, socket_type: u32) -> Evidence {
    let family = rule.family_name.to_string();
    match rule.kind {
        SocketKind::Packet => Evidence::PacketSocket {
            family,
            socket_type,
        },
        SocketKind::Raw => Evidence::RawSocket {
            family,
            socket_type,
        },
        SocketKind::Xdp => Evidence::XdpSocket {},
        SocketKind::NetfilterLegacyLog => Evidence::NetfilterLog {
            method: "NETLINK_NFLOG socket".into(),
        },
        SocketKind::Netfilter => Evidence::NetfilterSocket {},
    }
}

/// The container a finding is about, as the mechanism knows it.
pub struct Subject<'a> {
    /// The container's id.
    pub container_id: &'a str,
    /// Its environment.
    pub environment: &'a str,
    /// Its annotations, which the policy's allow rules select on.
    pub annotations: &'a BTreeMap<String, String>,
    /// What the registry holds of it, for the alert, when the mechanism has
    /// it at hand; otherwise it is looked up once the mechanism has acted (a
    /// registry lookup does not belong before a seccomp answer).
    pub record: Option<ContainerRecord>,
    /// Who saw it.
    pub mechanism: Mechanism,
    /// The thread that made the call, described from `/proc`.
    pub tid: u32,
}

/// What the mechanism did about a verdict, for the alert.
pub struct Acted {
    /// The syscall the decision was about.
    pub syscall: &'static str,
    /// Time from receiving the call to answering it (zero after the fact).
    pub decision_latency: Duration,
    /// Responses carried out besides the action (`kill`, …).
    pub responses: Vec<String>,
    /// The process the environment's further responses (kill, freeze,
    /// forensics) are about.
    pub pid: u32,
}

/// Describes the process while it still exists, judges the finding by the
/// policy, lets the mechanism act on the verdict and reports the incident.
/// `act` may change the verdict (the backstop turns a refusal into a kill)
/// and returns `None` when there is nothing to report (the answer never
/// reached the caller, or another mechanism already reported the call).
pub fn judge_and_report(
    shared: &Arc<Shared>,
    policy: &Policy,
    subject: Subject<'_>,
    mut finding: Finding,
    act: impl FnOnce(&mut Finding, &mut Verdict) -> Option<Acted>,
) {
    procfs::describe_process(subject.tid, &mut finding.process);
    let mut verdict = verdict::judge(
        policy,
        &shared.grants,
        subject.environment,
        subject.container_id,
        subject.annotations,
        finding.tool(),
    );
    let Some(acted) = act(&mut finding, &mut verdict) else {
        return;
    };
    let incident = Incident {
        time: SystemTime::now(),
        container_id: subject.container_id.to_string(),
        environment: subject.environment.to_string(),
        container: subject
            .record
            .or_else(|| shared.registry.get(subject.container_id)),
        mode: verdict.mode,
        action: verdict.action,
        mechanism: subject.mechanism,
        syscall: acted.syscall,
        evidence: finding.evidence,
        process: finding.process,
        file: finding.file,
        decision_latency: acted.decision_latency,
        exception: verdict.exception.clone(),
        responses: acted.responses,
        forensics: None,
    };
    respond::follow_up(shared, verdict, acted.pid, incident);
}
