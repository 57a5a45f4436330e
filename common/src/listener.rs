//! The `listenerMetadata` string the shim writes into a container's seccomp
//! profile and the runtime hands back to the supervisor with the notify fd.
//!
//! It names the container's environment and, after a `;`, what else the filter
//! promises. Environment names are `[a-z0-9_-]` (see
//! [`crate::policy::valid_environment_name`]), so the separator cannot occur in
//! one. A bare environment name is what shims before the promise wrote: it
//! promises nothing more.

use serde::{Deserialize, Serialize};

/// The promise that the filter also notifies every syscall that changes what a
/// path means to the container's processes (`chroot`, `pivot_root`, `setns`,
/// `mount`, `umount2`, `move_mount`). While none has been notified, every
/// process of the filter shares the root of the first one that execs.
pub const ROOT_CHANGES_NOTIFIED: &str = "roots";

/// The syscalls behind [`ROOT_CHANGES_NOTIFIED`].
pub const ROOT_CHANGING_SYSCALLS: [&str; 6] = [
    "chroot",
    "pivot_root",
    "setns",
    "mount",
    "umount2",
    "move_mount",
];

/// The prefix of the promise that carries the base profile's own `socket`
/// rules ([`SocketRules`], as JSON).
pub const SOCKET_RULES_PREFIX: &str = "socket=";

/// Most base-profile rules for `socket` the shim carries: real profiles have
/// a handful; the bound keeps a hostile profile from growing every decision.
pub const MAX_SOCKET_RULES: usize = 64;

/// What a listener's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerMetadata {
    /// The environment the container runs in (empty: not named).
    pub environment: String,
    /// Whether the filter notifies [`ROOT_CHANGING_SYSCALLS`].
    pub root_changes_notified: bool,
    /// The base profile's rules for `socket`, when the shim took them out of
    /// the kernel filter and notifies every `socket` call instead.
    pub socket_rules: Option<SocketRules>,
}

impl ListenerMetadata {
    /// Reads the metadata. Unknown promises are ignored: a newer shim's extra
    /// promise must not make an older supervisor refuse the container. Socket
    /// rules that do not parse (or exceed [`MAX_SOCKET_RULES`]) read as a
    /// profile that refuses every socket: the supervisor then refuses what it
    /// cannot judge.
    pub fn parse(text: &str) -> ListenerMetadata {
        let mut parts = text.split(';');
        let environment = parts.next().unwrap_or_default().to_string();
        let mut metadata = ListenerMetadata {
            environment,
            root_changes_notified: false,
            socket_rules: None,
        };
        for part in parts {
            if part == ROOT_CHANGES_NOTIFIED {
                metadata.root_changes_notified = true;
            } else if let Some(json) = part.strip_prefix(SOCKET_RULES_PREFIX) {
                let rules = serde_json::from_str::<SocketRules>(json)
                    .ok()
                    .filter(|r| r.rules.len() <= MAX_SOCKET_RULES)
                    .unwrap_or_else(SocketRules::refuse_all);
                metadata.socket_rules = Some(rules);
            }
        }
        metadata
    }

    /// The text to write into `listenerMetadata`.
    pub fn render(&self) -> String {
        let mut text = self.environment.clone();
        if self.root_changes_notified {
            text.push(';');
            text.push_str(ROOT_CHANGES_NOTIFIED);
        }
        if let Some(rules) = &self.socket_rules {
            // Numbers and fixed names only: the JSON never holds a ';'.
            let json = serde_json::to_string(rules).unwrap_or_default();
            text.push(';');
            text.push_str(SOCKET_RULES_PREFIX);
            text.push_str(&json);
        }
        text
    }
}

/// What the base profile does with a call, reduced to what matters for
/// deciding it: let it run, refuse it with an errno, or kill the caller.
///
/// `SCMP_ACT_ALLOW`, `LOG`, `TRACE`, `TRAP` and `NOTIFY` all read as
/// [`BaseAction::Allow`]: each can let the call run (a tracer or a signal
/// handler continues it), so none of them may stand in for a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseAction {
    /// The call may run.
    Allow,
    /// The call fails with this errno.
    Errno(u32),
    /// The caller is killed.
    Kill,
}

impl BaseAction {
    fn severity(self) -> u8 {
        match self {
            BaseAction::Allow => 0,
            BaseAction::Errno(_) => 1,
            BaseAction::Kill => 2,
        }
    }
}

/// A comparison of one syscall argument, as libseccomp makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgOp {
    /// `arg != value`
    Ne,
    /// `arg < value`
    Lt,
    /// `arg <= value`
    Le,
    /// `arg == value`
    Eq,
    /// `arg >= value`
    Ge,
    /// `arg > value`
    Gt,
    /// `arg & value == value_two`
    MaskedEq,
}

/// One argument condition of a base rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCondition {
    /// The argument's index (0-5).
    pub index: u8,
    /// The comparison.
    pub op: ArgOp,
    /// The value (the mask for [`ArgOp::MaskedEq`]).
    pub value: u64,
    /// The datum of [`ArgOp::MaskedEq`].
    #[serde(default)]
    pub value_two: u64,
}

impl ArgCondition {
    fn holds(&self, args: &[u64; 6]) -> bool {
        let Some(&arg) = args.get(usize::from(self.index)) else {
            return false;
        };
        match self.op {
            ArgOp::Ne => arg != self.value,
            ArgOp::Lt => arg < self.value,
            ArgOp::Le => arg <= self.value,
            ArgOp::Eq => arg == self.value,
            ArgOp::Ge => arg >= self.value,
            ArgOp::Gt => arg > self.value,
            ArgOp::MaskedEq => arg & self.value == self.value_two,
        }
    }
}

/// One base rule for `socket`: its action when every condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRule {
    /// What the base profile does.
    pub action: BaseAction,
    /// All must hold (none: always).
    #[serde(default)]
    pub args: Vec<ArgCondition>,
}

/// The base profile's treatment of `socket(2)`, decided by the supervisor
/// instead of the kernel.
///
/// Why: a profile's conditional `ALLOW socket if …` rules and sniffguard's
/// conditional capture rules cannot share one libseccomp filter soundly —
/// libseccomp builds one decision tree per syscall and the first rule reached
/// wins, whatever its action. So the shim takes every base rule for `socket`
/// out of the filter, notifies every `socket` call, and carries the rules
/// here: a capture socket is judged by the policy, and what the policy lets
/// through still gets the base profile's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRules {
    /// The rules, in profile order.
    pub rules: Vec<SocketRule>,
    /// The profile's default action (when no rule matches).
    pub default: BaseAction,
}

impl SocketRules {
    /// A stand-in for rules that could not be read: every socket refused.
    pub fn refuse_all() -> SocketRules {
        SocketRules {
            rules: Vec::new(),
            default: BaseAction::Errno(1),
        }
    }

    /// What the base profile does with `socket` called with `args`. Where
    /// several rules match, the most severe action is taken (as the kernel does
    /// between stacked filters): merging never makes the profile looser.
    pub fn verdict(&self, args: &[u64; 6]) -> BaseAction {
        self.rules
            .iter()
            .filter(|rule| rule.args.iter().all(|c| c.holds(args)))
            .map(|rule| rule.action)
            .reduce(|a, b| if b.severity() > a.severity() { b } else { a })
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_tolerates_old_and_new_shims() {
        let m = ListenerMetadata {
            environment: "staging".into(),
            root_changes_notified: true,
            socket_rules: None,
        };
        assert_eq!(m.render(), "staging;roots");
        assert_eq!(ListenerMetadata::parse(&m.render()), m);
        let old = ListenerMetadata::parse("production");
        assert_eq!(old.environment, "production");
        assert!(!old.root_changes_notified);
        let newer = ListenerMetadata::parse("ci;future;roots");
        assert!(newer.root_changes_notified);
        assert_eq!(ListenerMetadata::parse("").environment, "");
    }

    /// containers-common's socket rules for a container without
    /// `CAP_AUDIT_WRITE`.
    fn podman_like() -> SocketRules {
        let cond = |index, op, value| ArgCondition {
            index,
            op,
            value,
            value_two: 0,
        };
        SocketRules {
            rules: vec![
                SocketRule {
                    action: BaseAction::Errno(22),
                    args: vec![cond(0, ArgOp::Eq, 16), cond(2, ArgOp::Eq, 9)],
                },
                SocketRule {
                    action: BaseAction::Allow,
                    args: vec![cond(2, ArgOp::Ne, 9)],
                },
                SocketRule {
                    action: BaseAction::Allow,
                    args: vec![cond(0, ArgOp::Ne, 16)],
                },
            ],
            default: BaseAction::Errno(1),
        }
    }

    #[test]
    fn socket_rules_give_the_base_profiles_answer() {
        let rules = podman_like();
        // AF_NETLINK / NETLINK_AUDIT: the profile's own refusal.
        assert_eq!(rules.verdict(&[16, 3, 9, 0, 0, 0]), BaseAction::Errno(22));
        assert_eq!(rules.verdict(&[2, 1, 0, 0, 0, 0]), BaseAction::Allow);
        assert_eq!(rules.verdict(&[16, 3, 0, 0, 0, 0]), BaseAction::Allow);
        let masked = SocketRules {
            rules: vec![SocketRule {
                action: BaseAction::Kill,
                args: vec![ArgCondition {
                    index: 1,
                    op: ArgOp::MaskedEq,
                    value: 0xf,
                    value_two: 3,
                }],
            }],
            default: BaseAction::Allow,
        };
        assert_eq!(masked.verdict(&[2, 0x80003, 0, 0, 0, 0]), BaseAction::Kill);
        assert_eq!(masked.verdict(&[2, 0x80001, 0, 0, 0, 0]), BaseAction::Allow);
    }

    #[test]
    fn socket_rules_travel_in_the_metadata() {
        let m = ListenerMetadata {
            environment: "production".into(),
            root_changes_notified: true,
            socket_rules: Some(podman_like()),
        };
        let text = m.render();
        assert!(text.starts_with("production;roots;socket={"), "{text}");
        assert_eq!(text.matches(';').count(), 2, "{text}");
        assert_eq!(ListenerMetadata::parse(&text), m);
        // Rules that cannot be read refuse every socket rather than none.
        let broken = ListenerMetadata::parse("staging;socket={not json");
        assert_eq!(broken.socket_rules, Some(SocketRules::refuse_all()));
    }
}
