//! What a policy says: environments and their modes, fail policies and
//! responses, the rules that map containers to environments, the allow rules,
//! and the sniffer catalogue.

use serde::{Deserialize, Serialize};

use super::Selector;

/// How sniffing is handled in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Let it run and raise an alert.
    Audit,
    /// Refuse it before it runs and raise an alert.
    Enforce,
}

/// What happens to a starting container when the supervisor cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Start it unsupervised, with a warning.
    #[default]
    Open,
    /// Refuse to start it.
    Closed,
}

impl Mode {
    /// The name used in policies and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Enforce => "enforce",
        }
    }
}

impl FailPolicy {
    /// The name used in policies and on the hook's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FailPolicy::Open => "open",
            FailPolicy::Closed => "closed",
        }
    }
}

/// One environment's treatment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Audit or enforce.
    pub mode: Mode,
    /// Behaviour when the supervisor is unreachable at container start.
    #[serde(default)]
    pub fail: FailPolicy,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// What an alert from this environment recommends, in order.
    #[serde(default)]
    pub next_steps: Vec<String>,
    /// What is done when a sniffer shows up. Default: `["alert"]` in audit,
    /// `["alert", "deny"]` in enforce.
    #[serde(default)]
    pub responses: Option<Vec<Response>>,
    /// Capabilities taken from every process of the container (every
    /// capability set, also for processes started later with `runc exec`).
    /// Default: `["CAP_NET_RAW"]` in enforce, none in audit.
    #[serde(default)]
    pub drop_capabilities: Option<Vec<String>>,
    /// What to do with a container whose spec asks for one of
    /// [`Environment::drop_capabilities`]: take it away (the default) or refuse
    /// to start the container.
    #[serde(default)]
    pub capability_requests: CapabilityRequests,
    /// Whether the container's processes may open netfilter's netlink socket
    /// (`nft`, `iptables-nft`, VPN and mesh sidecars that manage their rules)
    /// in an enforce environment. Binding an NFLOG group or an NFQUEUE queue on
    /// it is capture either way; without this the socket itself is refused,
    /// before anything can be bound. Audit environments never refuse it.
    #[serde(default)]
    pub netfilter_management: bool,
    /// Whether the container's processes may load eBPF programs
    /// (`bpf(BPF_PROG_LOAD)`). Socket filter, tc and XDP programs see every
    /// frame of an interface or socket and can copy or redirect it: a load of
    /// one is evidence (`bpf_program`) unless this is set. In an enforce
    /// environment without it every program load is refused by the seccomp
    /// filter, whatever its type (the type lives in the caller's memory,
    /// which a second thread could change after a check). Default: false.
    #[serde(default)]
    pub bpf_programs: bool,
}

/// What happens to a container that asks for a capability its environment drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityRequests {
    /// Remove the capability and start the container (said in its registration
    /// alert).
    #[default]
    Drop,
    /// Refuse to start the container, naming the capability.
    Refuse,
}

/// One thing done about a sniffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Raise an alert.
    Alert,
    /// Refuse the exec or socket (`EPERM`) before it runs.
    Deny,
    /// Kill the process that tried (by pidfd).
    Kill,
    /// Freeze every process of the container (cgroup freezer).
    Freeze,
    /// Write a forensic record of the incident.
    Forensics,
}

impl Environment {
    /// The responses in force, defaults applied.
    pub fn responses(&self) -> Vec<Response> {
        match (&self.responses, self.mode) {
            (Some(list), _) => list.clone(),
            (None, Mode::Audit) => vec![Response::Alert],
            (None, Mode::Enforce) => vec![Response::Alert, Response::Deny],
        }
    }

    /// Whether `response` is among the responses in force.
    pub fn responds_with(&self, response: Response) -> bool {
        self.responses().contains(&response)
    }

    /// The capabilities taken from the container's processes, defaults applied.
    pub fn dropped_capabilities(&self) -> Vec<String> {
        match (&self.drop_capabilities, self.mode) {
            (Some(list), _) => list.clone(),
            (None, Mode::Audit) => Vec::new(),
            (None, Mode::Enforce) => vec![CAP_NET_RAW.to_string()],
        }
    }

    /// How strict the environment is: audit < enforce failing open < enforce
    /// failing closed. A container's own annotation may move it up this order,
    /// never down (unless the operator's rule says it may).
    pub fn strictness(&self) -> Strictness {
        match (self.mode, self.fail) {
            (Mode::Audit, _) => Strictness::Audit,
            (Mode::Enforce, FailPolicy::Open) => Strictness::EnforceFailOpen,
            (Mode::Enforce, FailPolicy::Closed) => Strictness::EnforceFailClosed,
        }
    }
}

/// The capability that opens packet and raw sockets.
pub const CAP_NET_RAW: &str = "CAP_NET_RAW";

/// The order of strictness between environments, least strict first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strictness {
    /// Sniffers run and are alerted.
    Audit,
    /// Sniffers are refused; a container starts unsupervised when the
    /// supervisor is away.
    EnforceFailOpen,
    /// Sniffers are refused; no container starts without the supervisor.
    EnforceFailClosed,
}

/// Maps selected containers to an environment (tried in order; the first match
/// decides, and the `sniffguard.io/environment` annotation may only tighten it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRule {
    /// The environment given to matching containers.
    pub environment: toml::Spanned<String>,
    /// Environments the container's own annotation may pick even where they are
    /// less strict than [`EnvironmentRule::environment`] (an explicit operator
    /// opt-in, e.g. a CI namespace whose jobs pick between ci and staging).
    #[serde(default)]
    pub annotation_may_choose: Vec<toml::Spanned<String>>,
    /// Which containers.
    #[serde(flatten)]
    pub selector: Selector,
}

/// Lets selected containers run sniffers; every use is still alerted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Why this exception exists (shown in alerts).
    pub reason: String,
    /// Only in this environment.
    #[serde(default)]
    pub environment: Option<toml::Spanned<String>>,
    /// Only these tools (basenames; empty: any sniffer).
    #[serde(default)]
    pub names: Vec<String>,
    /// Which containers.
    #[serde(flatten)]
    pub selector: Selector,
}

/// The capture tools a policy without its own list catalogues (the same list as
/// `config/sniffguard.toml`; a test keeps them equal).
pub const DEFAULT_CATALOGUE: &[&str] = &[
    "tcpdump",
    "windump",
    "tshark",
    "wireshark",
    "dumpcap",
    "rawshark",
    "sharkd",
    "termshark",
    "ngrep",
    "tcpflow",
    "tcpick",
    "ssldump",
    "httpry",
    "justniffer",
    "ettercap",
    "bettercap",
    "dsniff",
    "arpspoof",
    "dnsspoof",
    "filesnarf",
    "mailsnarf",
    "msgsnarf",
    "urlsnarf",
    "webspy",
    "sshmitm",
    "webmitm",
    "netsniff-ng",
    "sniffit",
    "driftnet",
    "kismet",
    "p0f",
    "arpwatch",
    // eBPF and netfilter capture: xdp-tools' XDP packet dumper, Cloudflare's
    // XDP capture tool, and the netfilter logging daemon (NFLOG/NFQUEUE
    // packets to pcap files among others).
    "xdpdump",
    "xdpcap",
    "ulogd",
];

/// What counts as a sniffer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Catalogue {
    /// Executable basenames of capture tools.
    pub names: Vec<String>,
    /// SHA-256 digests (lower-case hex) of capture binaries.
    pub sha256: Vec<String>,
    /// Whether linking a capture library marks an ELF binary as a sniffer.
    pub libpcap: bool,
    /// Library name prefixes that count as capture libraries.
    pub libraries: Vec<String>,
    /// Whether capture sockets and promiscuous mode count as sniffing.
    pub behaviour: bool,
    /// Whether a raw ICMP (`AF_INET`) or ICMPv6 (`AF_INET6`) socket — what
    /// `ping` and `traceroute` open — counts as a capture socket. It reads
    /// only ICMP, not other processes' conversations, so by default it does
    /// not; raw sockets of every other protocol do.
    pub raw_icmp_is_capture: bool,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue {
            // A policy without a [catalogue] table gets the built-in names and
            // the capture-library check; an explicit empty list means none.
            names: DEFAULT_CATALOGUE.iter().map(|n| n.to_string()).collect(),
            sha256: Vec::new(),
            libpcap: true,
            libraries: vec!["libpcap.so".to_string()],
            behaviour: true,
            raw_icmp_is_capture: false,
        }
    }
}

/// Whether `name` looks like a Linux capability name (`CAP_NET_RAW`).
pub fn valid_capability_name(name: &str) -> bool {
    name.strip_prefix("CAP_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 32
            && rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    })
}

/// Environment names end up in file names, metrics labels and the seccomp
/// listener metadata, so they are kept to a plain character set.
pub fn valid_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::THREE;
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn strictness_orders_audit_then_fail_open_then_fail_closed() {
        let policy = Policy::parse(THREE, "t").unwrap();
        let strictness = |name| policy.environment(name).unwrap().1.strictness();
        assert!(strictness("ci") < strictness("staging"));
        assert!(strictness("staging") < strictness("production"));
    }

    #[test]
    fn enforce_environments_drop_cap_net_raw_unless_told_otherwise() {
        let policy = Policy::parse(THREE, "t").unwrap();
        let env = |name| policy.environment(name).unwrap().1;
        assert_eq!(env("staging").dropped_capabilities(), vec![CAP_NET_RAW]);
        assert!(env("ci").dropped_capabilities().is_empty());
        let kept = THREE.replace(
            "[environments.staging]\nmode = \"enforce\"",
            "[environments.staging]\nmode = \"enforce\"\ndrop_capabilities = []\ncapability_requests = \"refuse\"",
        );
        let policy = Policy::parse(&kept, "t").unwrap();
        let staging = policy.environment("staging").unwrap().1;
        assert!(staging.dropped_capabilities().is_empty());
        assert_eq!(staging.capability_requests, CapabilityRequests::Refuse);
        let bad = THREE.replace(
            "[environments.staging]\nmode = \"enforce\"",
            "[environments.staging]\nmode = \"enforce\"\ndrop_capabilities = [\"net_raw\"]",
        );
        let err = Policy::parse(&bad, "t").unwrap_err().to_string();
        assert!(
            err.contains("\"net_raw\" is not a capability name"),
            "{err}"
        );
    }
}
