//! `sniffguard status`: what a running supervisor watches.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use sniffguard_common::client::{self, ClientError};
use sniffguard_common::wire::{Request, Response, StatusReport};

/// Errors asking for the status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The supervisor is unreachable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// It answered something else.
    #[error("unexpected answer from the supervisor: {0}")]
    Unexpected(String),
}

/// Asks the supervisor in `runtime_dir` for its status.
pub fn fetch(runtime_dir: &Path) -> Result<StatusReport, StatusError> {
    match client::call(runtime_dir, &Request::Status {}, Duration::from_secs(5))? {
        Response::Status(report) => Ok(report),
        other => Err(StatusError::Unexpected(format!("{other:?}"))),
    }
}

/// Renders a report for a terminal.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sniffguard {} — policy {} — eBPF probes {}",
        report.version,
        report.policy,
        if report.ebpf { "loaded" } else { "NOT loaded" }
    );
    for problem in &report.degraded {
        let _ = writeln!(out, "  DEGRADED: {problem}");
    }
    for (name, value) in &report.counters {
        let _ = writeln!(out, "  {name:<20} {value}");
    }
    let _ = writeln!(
        out,
        "\n{:<40} {:<12} {:<8} {:<8} {:<10} {:<21} CHOSEN BY",
        "CONTAINER", "ENVIRONMENT", "MODE", "SECCOMP", "REGISTERED", "SINCE"
    );
    for c in &report.containers {
        let _ = writeln!(
            out,
            "{:<40} {:<12} {:<8} {:<8} {:<10} {:<21} {}",
            c.id,
            c.environment,
            c.mode,
            if c.seccomp { "yes" } else { "no" },
            if c.registered { "yes" } else { "no" },
            c.since,
            c.environment_chosen_by
        );
        if !c.capabilities_dropped.is_empty() {
            let _ = writeln!(
                out,
                "{:<40} capabilities kept out: {}",
                "",
                c.capabilities_dropped.join(", ")
            );
        }
    }
    if !report.grants.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<40} {:<16} {:<22} REASON",
            "GRANT FOR CONTAINER", "BY", "UNTIL"
        );
        for g in &report.grants {
            let _ = writeln!(
                out,
                "{:<40} {:<16} {:<22} {}",
                g.container, g.by, g.until, g.reason
            );
        }
    }
    if !report.unsupervised.is_empty() {
        let _ = writeln!(
            out,
            "\nstarted UNSUPERVISED (supervisor unreachable, fail open): {}",
            report.unsupervised.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn counters_are_shown_aligned() {
        let report = StatusReport {
            version: "0".into(),
            policy: "built-in".into(),
            ebpf: true,
            counters: BTreeMap::from([
                ("alert_write_failures".into(), 2),
                ("alerts_dropped".into(), 0),
            ]),
            containers: Vec::new(),
            grants: Vec::new(),
            unsupervised: Vec::new(),
            degraded: vec!["ebpf_probes: not loaded".into()],
        };
        let text = render(&report);
        assert!(text.contains("\n  alert_write_failures 2\n"), "{text}");
        assert!(text.contains("\n  alerts_dropped       0\n"), "{text}");
        assert!(
            text.contains("\n  DEGRADED: ebpf_probes: not loaded\n"),
            "{text}"
        );
    }
}
