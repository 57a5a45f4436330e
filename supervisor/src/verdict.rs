//! What the policy says to do about a sniffer found in a container: the one
//! place where environment, exceptions and responses meet. Both the seccomp
//! path (`notify`) and the eBPF path (`detect`) ask here.

use std::collections::BTreeMap;

use serde::Serialize;
use sniffguard_common::policy::{Mode, Policy, Response};

use crate::grants::{Grant, Grants};

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
    /// Let through by an allow rule of the policy.
    AllowedByRule,
    /// Let through by a break-glass grant.
    AllowedByGrant,
    /// Got past seccomp in an enforce environment and exited before the
    /// backstop could kill it.
    Exited,
}

/// Why a sniffer was let through in an environment that would refuse it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exception {
    /// An allow rule of the policy.
    Rule {
        /// The rule's reason.
        reason: String,
    },
    /// A break-glass grant.
    Grant(Grant),
}

/// The decision and the responses to carry out.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The mode of the environment.
    pub mode: Mode,
    /// What happens to the call itself.
    pub action: Action,
    /// The exception that allowed it, if any.
    pub exception: Option<Exception>,
    /// Kill the process that tried.
    pub kill: bool,
    /// Freeze the container.
    pub freeze: bool,
    /// Write a forensic record.
    pub forensics: bool,
}

impl Verdict {
    /// Whether the call must be refused.
    pub fn deny(&self) -> bool {
        self.action == Action::Denied
    }
}

/// Judges a sniffer called `tool` (its file name, or empty for a nameless
/// behaviour) in `container` of `environment`.
pub fn judge(
    policy: &Policy,
    grants: &Grants,
    environment: &str,
    container: &str,
    annotations: &BTreeMap<String, String>,
    tool: &str,
) -> Verdict {
    let settings = policy.environment(environment).ok().map(|(_, env)| env);
    // An environment that vanished from a reloaded policy keeps being
    // enforced: the container was attached under enforcement.
    let mode = settings.map_or(Mode::Enforce, |env| env.mode);
    let responds = |r: Response| {
        settings.map_or(r == Response::Deny || r == Response::Alert, |env| {
            env.responds_with(r)
        })
    };
    let exception = grants.active(container).map(Exception::Grant).or_else(|| {
        policy
            .allowed_by(environment, annotations, tool)
            .map(|rule| Exception::Rule {
                reason: rule.reason.clone(),
            })
    });
    let action = match (&exception, mode) {
        (Some(Exception::Grant(_)), _) => Action::AllowedByGrant,
        (Some(Exception::Rule { .. }), _) => Action::AllowedByRule,
        (None, Mode::Audit) => Action::Allowed,
        (None, Mode::Enforce) => Action::Denied,
    };
    let enforcing = action == Action::Denied;
    Verdict {
        mode,
        action,
        kill: enforcing && responds(Response::Kill),
        freeze: enforcing && responds(Response::Freeze),
        forensics: exception.is_none() && responds(Response::Forensics),
        exception,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Policy {
        Policy::parse(
            r#"
default_environment = "ci"
[[allow]]
reason = "netdebug"
namespace = "netdebug"
names = ["tcpdump"]
[environments.ci]
mode = "audit"
responses = ["alert", "forensics"]
[environments.staging]
mode = "enforce"
[environments.production]
mode = "enforce"
responses = ["alert", "deny", "kill", "freeze", "forensics"]
"#,
            "t",
        )
        .unwrap()
    }

    #[test]
    fn environments_decide_the_responses() {
        let policy = policy();
        let grants = Grants::default();
        let none = BTreeMap::new();
        let ci = judge(&policy, &grants, "ci", "c", &none, "tcpdump");
        assert_eq!(ci.action, Action::Allowed);
        assert!(ci.forensics && !ci.freeze && !ci.kill);
        let staging = judge(&policy, &grants, "staging", "c", &none, "tcpdump");
        assert!(staging.deny() && !staging.freeze && !staging.forensics);
        let production = judge(&policy, &grants, "production", "c", &none, "tcpdump");
        assert!(production.deny() && production.kill && production.freeze && production.forensics);
        let vanished = judge(&policy, &grants, "gone", "c", &none, "tcpdump");
        assert!(vanished.deny());
    }

    #[test]
    fn exceptions_let_sniffers_through_and_say_why() {
        let policy = policy();
        let grants = Grants::default();
        let debug = BTreeMap::from([(
            "io.kubernetes.pod.namespace".to_string(),
            "netdebug".to_string(),
        )]);
        let ruled = judge(&policy, &grants, "staging", "c", &debug, "tcpdump");
        assert_eq!(ruled.action, Action::AllowedByRule);
        let other_tool = judge(&policy, &grants, "staging", "c", &debug, "tshark");
        assert!(other_tool.deny());
        grants
            .grant("c", Duration::from_secs(60), "alice", "incident 42")
            .unwrap();
        let granted = judge(
            &policy,
            &grants,
            "production",
            "c",
            &BTreeMap::new(),
            "tshark",
        );
        assert_eq!(granted.action, Action::AllowedByGrant);
        assert!(!granted.freeze && !granted.kill);
        let neighbour = judge(
            &policy,
            &grants,
            "production",
            "d",
            &BTreeMap::new(),
            "tshark",
        );
        assert!(neighbour.deny());
    }
}
