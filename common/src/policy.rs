//! The policy model: environments, how containers map to them, and the sniffer
//! catalogue.
//!
//! The runtime shim reads it to decide what to inject into a container's
//! `config.json`; the supervisor reads it to decide what to do when a sniffer shows
//! up. Both default to [`BUILTIN_POLICY`], the commented file
//! `config/sniffguard.toml` compiled in. Unknown keys are errors: a misspelt key
//! in a security policy must not fall back to a default without a word.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ENVIRONMENT_ANNOTATION;

/// The default policy, as shipped in `config/sniffguard.toml`.
pub const BUILTIN_POLICY: &str = include_str!("../../config/sniffguard.toml");

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Errors loading a policy or resolving an environment.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {origin}: {source}")]
    Read {
        /// Where the policy came from.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("policy {origin} is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge {
        /// Where the policy came from.
        origin: String,
    },
    /// The TOML does not parse or does not fit the schema; the message carries the
    /// line and column.
    #[error("policy {origin}: {message}")]
    Syntax {
        /// Where the policy came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The TOML parses but says something impossible.
    #[error("policy {origin}: {message}")]
    Invalid {
        /// Where the policy came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A container names an environment the policy does not define.
    #[error("container annotation {ENVIRONMENT_ANNOTATION}={0:?} names no environment of the policy (known: {1})")]
    UnknownEnvironment(String, String),
}

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

/// A shell-style pattern where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl Pattern {
    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(&self.0, text)
    }
}

/// `*`-only glob matching in linear time (policy patterns are operator input,
/// names are container input; both may be long). The text between stars is
/// found left to right, each piece at its earliest place after the one
/// before, the first piece anchored at the start and the last at the end.
/// The earliest place is always the right one: a later place only leaves less
/// text for the pieces after it. Each search is `str::find` (two-way, linear),
/// and every byte of the text is passed over once.
fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    // The suffix is taken from what the prefix leaves, so the two never overlap.
    let Some(mut text) = text
        .strip_prefix(first)
        .and_then(|text| text.strip_suffix(last))
    else {
        return false;
    };
    for piece in middle.split('*').filter(|piece| !piece.is_empty()) {
        match text.find(piece) {
            Some(at) => text = &text[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Conditions on a container, all of which must hold (absent ones always do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Kubernetes namespace (`io.kubernetes.pod.namespace`).
    #[serde(default)]
    pub namespace: Option<Pattern>,
    /// Kubernetes pod name (`io.kubernetes.pod.name`).
    #[serde(default)]
    pub pod: Option<Pattern>,
    /// Container name (`io.kubernetes.container.name`, or Podman's name).
    #[serde(default)]
    pub container: Option<Pattern>,
    /// Other annotations, by key.
    #[serde(default)]
    pub annotations: BTreeMap<String, Pattern>,
}

/// Annotation keys the selector reads.
pub mod keys {
    /// Kubernetes namespace.
    pub const NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Kubernetes pod name.
    pub const POD: &str = "io.kubernetes.pod.name";
    /// Kubernetes container name.
    pub const CONTAINER: &str = "io.kubernetes.container.name";
    /// Podman's container name.
    pub const PODMAN_NAME: &str = "io.podman.annotations.name";
    /// containerd CRI's pod namespace.
    pub const CRI_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// containerd CRI's pod name.
    pub const CRI_POD: &str = "io.kubernetes.cri.sandbox-name";
    /// containerd CRI's container name.
    pub const CRI_CONTAINER: &str = "io.kubernetes.cri.container-name";

    /// Where each runtime stack puts the namespace (CRI-O, containerd).
    pub const NAMESPACE_KEYS: [&str; 2] = [NAMESPACE, CRI_NAMESPACE];
    /// Where each runtime stack puts the pod name.
    pub const POD_KEYS: [&str; 2] = [POD, CRI_POD];
    /// Where each runtime stack puts the container name.
    pub const CONTAINER_KEYS: [&str; 3] = [CONTAINER, CRI_CONTAINER, PODMAN_NAME];
}

impl Selector {
    /// Who can satisfy this selector besides the orchestrator, in words, or
    /// `None` when it reads no annotation at all.
    ///
    /// The namespace, pod and container keys are written by containerd's CRI
    /// plugin and by CRI-O from the pod's metadata; under Podman, Docker 24+ and
    /// plain runc/crun the container's author writes every annotation
    /// (`--annotation`). Any other annotation key is the workload's on every
    /// stack unless the node's runtime configuration filters it.
    pub fn workload_exposure(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.annotations.is_empty() {
            let keys: Vec<&str> = self.annotations.keys().map(String::as_str).collect();
            reasons.push(format!(
                "matches annotation(s) {} that a pod or container spec can set itself on every stack",
                keys.join(", ")
            ));
        }
        let orchestrator: Vec<&str> = [
            ("namespace", self.namespace.is_some()),
            ("pod", self.pod.is_some()),
            ("container", self.container.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !orchestrator.is_empty() {
            reasons.push(format!(
                "matches {} — set by containerd's CRI plugin and CRI-O, but written by the container's author under Podman, Docker 24+ and plain runc/crun (--annotation)",
                orchestrator.join(", ")
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.pod.is_none()
            && self.container.is_none()
            && self.annotations.is_empty()
    }

    /// Whether a container with `annotations` is selected.
    pub fn matches(&self, annotations: &BTreeMap<String, String>) -> bool {
        let field = |pattern: &Option<Pattern>, keys: &[&str]| match pattern {
            None => true,
            Some(pattern) => keys
                .iter()
                .find_map(|k| annotations.get(*k))
                .is_some_and(|v| pattern.matches(v)),
        };
        field(&self.namespace, &keys::NAMESPACE_KEYS)
            && field(&self.pod, &keys::POD_KEYS)
            && field(&self.container, &keys::CONTAINER_KEYS)
            && self
                .annotations
                .iter()
                .all(|(k, p)| annotations.get(k).is_some_and(|v| p.matches(v)))
    }
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

/// How alerts are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// sniffguard's own document.
    #[default]
    Sniffguard,
    /// Falco's JSON output (for falcosidekick).
    Falco,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Write alerts to stdout.
    pub stdout: bool,
    /// Append alerts to this file (reopened on SIGHUP, for logrotate).
    pub file: Option<std::path::PathBuf>,
    /// Rendering for stdout, the file and the webhook.
    pub format: AlertFormat,
    /// POST every alert to an HTTP endpoint.
    pub webhook: Option<WebhookConfig>,
    /// Flood control.
    pub flood: FloodConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            // stdout is where a container platform collects a daemon's output.
            stdout: true,
            file: None,
            format: AlertFormat::Sniffguard,
            webhook: None,
            flood: FloodConfig::default(),
        }
    }
}

/// An HTTP endpoint for alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path` (plain HTTP: put a local forwarder in front for TLS).
    pub url: String,
    /// Per-request timeout.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Alerts queued for delivery before new ones are dropped (and counted).
    #[serde(default = "default_webhook_queue")]
    pub queue: usize,
    /// Delivery attempts per alert, with exponential backoff between them.
    #[serde(default = "default_webhook_attempts")]
    pub attempts: u32,
}

fn default_webhook_timeout_ms() -> u64 {
    // Long enough for a loaded collector on the node, short enough that a dead
    // one does not hold the queue for long.
    2000
}
fn default_webhook_queue() -> usize {
    1024
}
fn default_webhook_attempts() -> u32 {
    5
}

/// Flood control: per container and program, the first `burst` alerts of an
/// `interval_seconds` window are written; later ones are counted and written as
/// one alert carrying the count when the window ends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Alerts written at once per key and window.
    pub burst: u32,
    /// Window length.
    pub interval_seconds: u64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        // Five alerts show a pattern; one summary a minute keeps a loop that
        // retries 10,000 times from drowning the sink.
        FloodConfig {
            burst: 5,
            interval_seconds: 60,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` to serve `/metrics` on; off when absent.
    pub listen: Option<String>,
}

/// Where forensic records go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForensicsConfig {
    /// Directory of per-incident JSON records.
    pub dir: std::path::PathBuf,
    /// Records one container may get per [`ForensicsConfig::window_seconds`]:
    /// a sniffer retried in a loop must not fill the disk.
    pub per_container: u32,
    /// The window of [`ForensicsConfig::per_container`].
    pub window_seconds: u64,
    /// Bytes the directory may hold before no more records are written.
    pub max_total_bytes: u64,
}

impl Default for ForensicsConfig {
    fn default() -> Self {
        ForensicsConfig {
            // 10 an hour is 240 a day per container retrying all day (a few
            // megabytes), well under the directory's 256 MiB.
            per_container: 10,
            window_seconds: 3600,
            max_total_bytes: 256 * 1024 * 1024,
            dir: std::path::PathBuf::from("/var/lib/sniffguard/forensics"),
        }
    }
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
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default_environment: toml::Spanned<String>,
    environments: BTreeMap<String, Environment>,
    #[serde(default)]
    rules: Vec<EnvironmentRule>,
    #[serde(default)]
    catalogue: Catalogue,
    #[serde(default)]
    allow: Vec<AllowRule>,
    #[serde(default)]
    alerts: AlertsConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    forensics: ForensicsConfig,
}

/// A container's environment, as the policy resolved it.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    /// The environment's name.
    pub name: &'a str,
    /// Its settings.
    pub environment: &'a Environment,
    /// How it was chosen.
    pub chosen_by: ChosenBy,
    /// An environment the container's annotation asked for and did not get
    /// (less strict than the operator's choice, and not permitted by its rule).
    pub ignored_annotation: Option<String>,
}

impl Resolution<'_> {
    /// One line for alerts, logs and `status`: how the environment was chosen,
    /// and any annotation that was ignored.
    pub fn describe(&self) -> String {
        match &self.ignored_annotation {
            None => self.chosen_by.to_string(),
            Some(wanted) => format!(
                "{}; the annotation's {wanted:?} was ignored (less strict, and no rule lets the container choose it)",
                self.chosen_by
            ),
        }
    }
}

/// Who chose a container's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChosenBy {
    /// `default_environment`: no rule matched.
    Default,
    /// The `[[rules]]` entry with this number (1 = the first in the file).
    Rule(usize),
    /// The container's annotation, stricter than what the operator's rule or
    /// default gave.
    AnnotationStricter {
        /// The operator's environment it tightened.
        over: String,
        /// How the operator's environment was chosen.
        by: Box<ChosenBy>,
    },
    /// The container's annotation, within what rule N lets it choose.
    AnnotationPermitted {
        /// The rule's number.
        rule: usize,
    },
    /// Named by the runtime wiring (the shim's hook arguments or a hand-written
    /// profile's `listenerMetadata`), not derivable from the rules.
    Wiring,
}

impl ChosenBy {
    fn rule(&self) -> Option<usize> {
        match self {
            ChosenBy::Rule(n) => Some(*n),
            _ => None,
        }
    }
}

impl std::fmt::Display for ChosenBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChosenBy::Default => write!(f, "default_environment"),
            ChosenBy::Rule(n) => write!(f, "rule {n}"),
            ChosenBy::AnnotationStricter { over, by } => {
                write!(f, "annotation, stricter than {over:?} from {by}")
            }
            ChosenBy::AnnotationPermitted { rule } => {
                write!(f, "annotation, permitted by rule {rule}")
            }
            ChosenBy::Wiring => write!(f, "named by the runtime wiring"),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from (a path, or "built-in").
    pub origin: String,
    /// Environment of containers without an annotation.
    pub default_environment: String,
    /// Every environment, by name.
    pub environments: BTreeMap<String, Environment>,
    /// Ordered environment rules.
    pub rules: Vec<EnvironmentRule>,
    /// The sniffer catalogue.
    pub catalogue: Catalogue,
    /// Exceptions: containers that may run sniffers, audited.
    pub allow: Vec<AllowRule>,
    /// Alert sinks.
    pub alerts: AlertsConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Forensic records.
    pub forensics: ForensicsConfig,
    names: HashSet<String>,
}

impl Policy {
    /// The compiled-in default policy.
    pub fn builtin() -> Result<Policy, PolicyError> {
        Policy::parse(BUILTIN_POLICY, "built-in")
    }

    /// Reads and validates the policy at `path`, or the built-in one when `None`.
    pub fn load(path: Option<&Path>) -> Result<Policy, PolicyError> {
        let Some(path) = path else {
            return Policy::builtin();
        };
        let origin = path.display().to_string();
        let read_err = |source| PolicyError::Read {
            origin: origin.clone(),
            source,
        };
        let file = File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge { origin });
        }
        Policy::parse(&text, &origin)
    }

    /// Parses and validates policy text; `origin` names it in errors. Every
    /// problem found is reported, each with its line and column.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        // Problems are counted as found but located and written out only up to
        // MAX_PROBLEMS: locating one searches the text, and a hostile file can
        // hold hundreds of thousands.
        let mut problems = Problems::default();
        let lines = LineIndex::new(text);
        let at = |span: std::ops::Range<usize>| {
            let (line, column) = lines.line_column(span.start);
            format!("line {line}, column {column}")
        };
        let whole = || "line 1, column 1".to_string();
        if file.environments.is_empty() {
            problems.add(|| format!("{}: no environment is defined", whole()));
        }
        for (name, env) in &file.environments {
            if !valid_environment_name(name) {
                problems.add(|| {
                    format!(
                        "{}: environment name {name:?} must be 1-64 characters of [a-z0-9_-]",
                        find(text, &format!("environments.{name}")).map_or_else(whole, &at)
                    )
                });
            }
            let responses = env.responses();
            let place = || find(text, &format!("environments.{name}")).map_or_else(whole, &at);
            match env.mode {
                Mode::Audit => {
                    for r in [Response::Deny, Response::Kill, Response::Freeze] {
                        if responses.contains(&r) {
                            problems.add(|| format!(
                                "{}: environment {name:?} audits, so it cannot {:?} (use mode = \"enforce\")",
                                place(),
                                r
                            ));
                        }
                    }
                }
                Mode::Enforce if !responses.contains(&Response::Deny) => problems.add(|| {
                    format!(
                        "{}: environment {name:?} enforces, so its responses must include \"deny\"",
                        place()
                    )
                }),
                Mode::Enforce => {}
            }
        }
        for (name, env) in &file.environments {
            for cap in env.drop_capabilities.iter().flatten() {
                if !valid_capability_name(cap) {
                    problems.add(|| {
                        format!(
                            "{}: environment {name:?}: drop_capabilities entry {cap:?} is not a capability name (CAP_ and upper-case letters, e.g. \"CAP_NET_RAW\")",
                            find(text, &format!("{cap:?}")).map_or_else(whole, &at)
                        )
                    });
                }
            }
        }
        let known = |name: &str| file.environments.contains_key(name);
        if !known(file.default_environment.get_ref()) {
            problems.add(|| {
                format!(
                    "{}: default_environment {:?} is not one of the environments",
                    at(file.default_environment.span()),
                    file.default_environment.get_ref()
                )
            });
        }
        for rule in &file.rules {
            if !known(rule.environment.get_ref()) {
                problems.add(|| {
                    format!(
                        "{}: rule names environment {:?}, which is not defined",
                        at(rule.environment.span()),
                        rule.environment.get_ref()
                    )
                });
            }
            for name in &rule.annotation_may_choose {
                if !known(name.get_ref()) {
                    problems.add(|| {
                        format!(
                            "{}: annotation_may_choose names environment {:?}, which is not defined",
                            at(name.span()),
                            name.get_ref()
                        )
                    });
                }
            }
            if rule.selector.is_empty() {
                problems.add(|| format!(
                    "{}: rule for {:?} selects every container; give it a namespace, pod, container or annotations",
                    at(rule.environment.span()),
                    rule.environment.get_ref()
                ));
            }
        }
        for allow in &file.allow {
            if let Some(env) = &allow.environment {
                if !known(env.get_ref()) {
                    problems.add(|| {
                        format!(
                            "{}: allow rule names environment {:?}, which is not defined",
                            at(env.span()),
                            env.get_ref()
                        )
                    });
                }
            }
        }
        for name in &file.catalogue.names {
            if name.is_empty() || name.contains('/') || name.contains('\0') {
                problems.add(|| {
                    format!(
                        "{}: catalogue name {name:?} must be a non-empty file name without '/'",
                        find(text, &format!("{name:?}")).map_or_else(whole, &at)
                    )
                });
            }
        }
        for digest in &file.catalogue.sha256 {
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                problems.add(|| {
                    format!(
                        "{}: catalogue sha256 {digest:?} must be 64 lower-case hex digits",
                        find(text, digest).map_or_else(whole, &at)
                    )
                });
            }
        }
        if let Some(webhook) = &file.alerts.webhook {
            if !webhook.url.starts_with("http://") {
                problems.add(|| {
                    format!(
                        "{}: alerts.webhook.url {:?} must start with http://",
                        find(text, &webhook.url).map_or_else(whole, &at),
                        webhook.url
                    )
                });
            }
        }
        if let Some(listen) = &file.metrics.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                problems.add(|| {
                    format!(
                        "{}: metrics.listen {listen:?} is not an address:port",
                        find(text, listen).map_or_else(whole, &at)
                    )
                });
            }
        }
        if let Some(message) = problems.message() {
            return Err(PolicyError::Invalid {
                origin: origin.to_string(),
                message,
            });
        }
        let names = file.catalogue.names.iter().cloned().collect();
        Ok(Policy {
            origin: origin.to_string(),
            default_environment: file.default_environment.into_inner(),
            environments: file.environments,
            rules: file.rules,
            catalogue: file.catalogue,
            allow: file.allow,
            alerts: file.alerts,
            metrics: file.metrics,
            forensics: file.forensics,
            names,
        })
    }

    /// The environment a container with these annotations belongs to, and how
    /// it was chosen.
    ///
    /// The operator decides: the first `[[rules]]` entry whose selector matches,
    /// else `default_environment`. The container's own
    /// `sniffguard.io/environment` annotation is the workload speaking, so it
    /// may only move the container to a stricter environment (see
    /// [`Strictness`]), or to one the matching rule lists in
    /// `annotation_may_choose`; any other request is ignored and said in the
    /// resolution. An annotation naming an environment the policy does not
    /// define is an error (a typo must not pass unnoticed).
    pub fn resolve_environment<'a>(
        &'a self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Resolution<'a>, PolicyError> {
        let matched = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.selector.matches(annotations));
        let (operator_name, operator_source) = match matched {
            Some((index, rule)) => (
                rule.environment.get_ref().as_str(),
                ChosenBy::Rule(index + 1),
            ),
            None => (self.default_environment.as_str(), ChosenBy::Default),
        };
        let (operator_name, operator_env) = self.environment(operator_name)?;
        let operator = Resolution {
            name: operator_name,
            environment: operator_env,
            chosen_by: operator_source.clone(),
            ignored_annotation: None,
        };
        let Some(wanted) = annotations.get(ENVIRONMENT_ANNOTATION) else {
            return Ok(operator);
        };
        let (wanted_name, wanted_env) = self.environment(wanted)?;
        if wanted_name == operator_name {
            return Ok(operator);
        }
        let permitted = matched.is_some_and(|(_, rule)| {
            rule.annotation_may_choose
                .iter()
                .any(|name| name.get_ref() == wanted_name)
        });
        let chosen_by = if permitted {
            ChosenBy::AnnotationPermitted {
                rule: operator_source.rule().unwrap_or_default(),
            }
        } else if wanted_env.strictness() > operator_env.strictness() {
            ChosenBy::AnnotationStricter {
                over: operator_name.to_string(),
                by: Box::new(operator_source),
            }
        } else {
            return Ok(Resolution {
                ignored_annotation: Some(wanted_name.to_string()),
                ..operator
            });
        };
        Ok(Resolution {
            name: wanted_name,
            environment: wanted_env,
            chosen_by,
            ignored_annotation: None,
        })
    }

    /// The environment of a container whose wiring may name it: `named` is what
    /// the operator's wiring wrote (the shim's `--environment` on the hook, the
    /// profile's `listenerMetadata`); without it, the annotations and rules
    /// decide as in [`Policy::resolve_environment`].
    pub fn resolve<'a>(
        &'a self,
        named: Option<&str>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Resolution<'a>, PolicyError> {
        let Some(named) = named.filter(|n| !n.is_empty()) else {
            return self.resolve_environment(annotations);
        };
        // The wiring normally writes what the rules give; say how they gave it.
        if let Ok(resolved) = self.resolve_environment(annotations) {
            if resolved.name == named {
                return Ok(resolved);
            }
        }
        let (name, environment) = self.environment(named)?;
        Ok(Resolution {
            name,
            environment,
            chosen_by: ChosenBy::Wiring,
            ignored_annotation: None,
        })
    }

    /// The environment called `name`.
    pub fn environment<'a>(
        &'a self,
        name: &str,
    ) -> Result<(&'a str, &'a Environment), PolicyError> {
        self.environments
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
                PolicyError::UnknownEnvironment(name.chars().take(64).collect(), known.join(", "))
            })
    }

    /// Whether `basename` is a catalogued sniffer name.
    pub fn is_catalogued(&self, basename: &[u8]) -> bool {
        std::str::from_utf8(basename).is_ok_and(|name| self.names.contains(name))
    }
}

impl Policy {
    /// What `check-config` warns about: every `[[allow]]` rule, and every
    /// `[[rules]]` entry that gives a less strict environment than the default
    /// or lets the annotation choose a looser one, whose selector a workload can
    /// satisfy by annotating itself on some stack. One line per rule.
    pub fn workload_settable_warnings(&self) -> Vec<String> {
        let (_, default) = match self.environment(&self.default_environment) {
            Ok(found) => found,
            Err(_) => return Vec::new(),
        };
        let mut warnings = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let Ok((_, env)) = self.environment(rule.environment.get_ref()) else {
                continue;
            };
            let loosens = env.strictness() < default.strictness()
                || rule.annotation_may_choose.iter().any(|name| {
                    self.environment(name.get_ref())
                        .is_ok_and(|(_, chosen)| chosen.strictness() < env.strictness())
                });
            if let Some(exposure) = loosens.then(|| rule.selector.workload_exposure()).flatten() {
                warnings.push(format!(
                    "rule {} (environment {:?}) loosens enforcement and {exposure}",
                    index + 1,
                    rule.environment.get_ref()
                ));
            }
        }
        for (index, rule) in self.allow.iter().enumerate() {
            let Some(exposure) = rule.selector.workload_exposure() else {
                continue;
            };
            warnings.push(format!(
                "allow rule {} ({:?}) lets sniffers run and {exposure}",
                index + 1,
                rule.reason
            ));
        }
        warnings
    }

    /// The allow rule that lets a container with `annotations`, in
    /// `environment`, run the sniffer called `name` (if any rule does).
    pub fn allowed_by(
        &self,
        environment: &str,
        annotations: &BTreeMap<String, String>,
        name: &str,
    ) -> Option<&AllowRule> {
        self.allow.iter().find(|rule| {
            rule.environment
                .as_ref()
                .is_none_or(|e| e.get_ref() == environment)
                && (rule.names.is_empty() || rule.names.iter().any(|n| n == name))
                && rule.selector.matches(annotations)
        })
    }
}

/// Problems written out in one error; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// The problems found in a policy: the first [`MAX_PROBLEMS`] written out,
/// the rest only counted.
#[derive(Default)]
struct Problems {
    shown: Vec<String>,
    more: usize,
}

impl Problems {
    /// One more problem; `describe` (which may search the text for its place)
    /// runs only if it is among the first [`MAX_PROBLEMS`].
    fn add(&mut self, describe: impl FnOnce() -> String) {
        if self.shown.len() < MAX_PROBLEMS {
            self.shown.push(describe());
        } else {
            self.more += 1;
        }
    }

    /// Every problem written out, one per line; `None` without any.
    fn message(self) -> Option<String> {
        if self.shown.is_empty() {
            return None;
        }
        let mut message = self.shown.join("\n  ");
        if self.more > 0 {
            message.push_str(&format!("\n  … and {} more", self.more));
        }
        Some(message)
    }
}

/// Where each line of a text starts, so that a byte offset's line and column
/// cost a binary search rather than a scan of the text before it.
struct LineIndex {
    /// Byte offset of each line's first byte; the first is 0.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// 1-based line and column (in bytes) of byte `offset`.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        // The number of lines starting at or before `offset`: at least 1, as the
        // first starts at 0.
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        (line.max(1), offset - start + 1)
    }
}

/// Where `needle` first appears, for errors about values the parser does not
/// give spans for.
fn find(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|at| at..at + needle.len())
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
    use super::*;

    #[test]
    fn builtin_policy_has_the_three_environments() {
        let policy = Policy::builtin().unwrap();
        assert_eq!(policy.default_environment, "ci");
        assert_eq!(policy.environment("ci").unwrap().1.mode, Mode::Audit);
        let staging = policy.environment("staging").unwrap().1;
        assert_eq!(
            (staging.mode, staging.fail),
            (Mode::Enforce, FailPolicy::Open)
        );
        let production = policy.environment("production").unwrap().1;
        assert_eq!(
            (production.mode, production.fail),
            (Mode::Enforce, FailPolicy::Closed)
        );
        assert!(policy.is_catalogued(b"tcpdump"));
        assert!(!policy.is_catalogued(b"ls"));
        for env in policy.environments.values() {
            assert!(!env.next_steps.is_empty());
        }
    }

    #[test]
    fn a_policy_without_a_catalogue_gets_the_shipped_one() {
        let builtin = Policy::builtin().unwrap();
        assert_eq!(builtin.catalogue.names, Catalogue::default().names);
        let bare = Policy::parse(
            "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n",
            "t",
        )
        .unwrap();
        assert!(bare.is_catalogued(b"tcpdump"));
    }

    #[test]
    fn annotation_selects_the_environment() {
        let policy = Policy::builtin().unwrap();
        let mut annotations = BTreeMap::new();
        assert_eq!(policy.resolve_environment(&annotations).unwrap().name, "ci");
        annotations.insert(ENVIRONMENT_ANNOTATION.to_string(), "production".to_string());
        let resolved = policy.resolve_environment(&annotations).unwrap();
        assert_eq!(resolved.name, "production");
        assert_eq!(
            resolved.describe(),
            "annotation, stricter than \"ci\" from default_environment"
        );
        annotations.insert(ENVIRONMENT_ANNOTATION.to_string(), "prod".to_string());
        let err = policy.resolve_environment(&annotations).unwrap_err();
        assert!(err.to_string().contains("\"prod\""), "{err}");
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        let typo = "default_environment = \"ci\"\n[environments.ci]\nmdoe = \"audit\"\n";
        let err = Policy::parse(typo, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("mdoe"), "{err}");

        let missing_default = "default_environment = \"x\"\n[environments.ci]\nmode = \"audit\"\n";
        assert!(Policy::parse(missing_default, "t").is_err());

        let bad_mode = "default_environment = \"ci\"\n[environments.ci]\nmode = \"block\"\n";
        assert!(Policy::parse(bad_mode, "t").is_err());

        let bad_hash = "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n[catalogue]\nsha256 = [\"abc\"]\n";
        assert!(Policy::parse(bad_hash, "t").is_err());

        let bad_name = "default_environment = \"CI\"\n[environments.CI]\nmode = \"audit\"\n";
        assert!(Policy::parse(bad_name, "t").is_err());
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    const THREE: &str = r#"
default_environment = "ci"

[[rules]]
environment = "production"
namespace = "prod-*"

[[rules]]
environment = "staging"
namespace = "stage"
container = "web*"

[[allow]]
reason = "network team debugging"
namespace = "debug"
names = ["tcpdump"]

[environments.ci]
mode = "audit"

[environments.staging]
mode = "enforce"

[environments.production]
mode = "enforce"
fail = "closed"
responses = ["alert", "deny", "freeze", "forensics"]
"#;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_resolve_in_order_after_the_annotation() {
        let policy = Policy::parse(THREE, "t").unwrap();
        let env = |a: &[(&str, &str)]| {
            policy
                .resolve_environment(&annotations(a))
                .unwrap()
                .name
                .to_string()
        };
        assert_eq!(env(&[(keys::NAMESPACE, "prod-eu")]), "production");
        assert_eq!(
            env(&[(keys::NAMESPACE, "stage"), (keys::CONTAINER, "web-1")]),
            "staging"
        );
        assert_eq!(
            env(&[(keys::NAMESPACE, "stage"), (keys::CONTAINER, "db")]),
            "ci"
        );
        // The workload's annotation cannot loosen the operator's rule...
        assert_eq!(
            env(&[(keys::NAMESPACE, "prod-eu"), (ENVIRONMENT_ANNOTATION, "ci")]),
            "production"
        );
        let ignored = policy
            .resolve_environment(&annotations(&[
                (keys::NAMESPACE, "prod-eu"),
                (ENVIRONMENT_ANNOTATION, "staging"),
            ]))
            .unwrap();
        assert_eq!(ignored.name, "production");
        assert_eq!(ignored.chosen_by, ChosenBy::Rule(1));
        assert_eq!(ignored.ignored_annotation.as_deref(), Some("staging"));
        // ...but may tighten it.
        let tightened = policy
            .resolve_environment(&annotations(&[
                (keys::NAMESPACE, "stage"),
                (keys::CONTAINER, "web-1"),
                (ENVIRONMENT_ANNOTATION, "production"),
            ]))
            .unwrap();
        assert_eq!(tightened.name, "production");
        assert_eq!(
            tightened.describe(),
            "annotation, stricter than \"staging\" from rule 2"
        );
        let production = policy.environment("production").unwrap().1;
        assert!(production.responds_with(Response::Freeze));
        assert!(!policy
            .environment("ci")
            .unwrap()
            .1
            .responds_with(Response::Deny));
        let debug = annotations(&[(keys::NAMESPACE, "debug")]);
        assert!(policy.allowed_by("ci", &debug, "tcpdump").is_some());
        assert!(policy.allowed_by("ci", &debug, "tshark").is_none());
    }

    #[test]
    fn semantic_errors_are_all_reported_with_places() {
        let bad = THREE
            .replace("environment = \"staging\"", "environment = \"stagging\"")
            .replace(
                "[environments.ci]\nmode = \"audit\"",
                "[environments.ci]\nmode = \"audit\"\nresponses = [\"alert\", \"kill\"]",
            );
        let err = Policy::parse(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("\"stagging\""), "{err}");
        assert!(err.contains("line 9, column 15"), "{err}");
        assert!(err.contains("cannot Kill"), "{err}");
    }

    #[test]
    fn a_rule_may_let_the_annotation_choose_a_looser_environment() {
        let text = THREE.replace(
            "namespace = \"stage\"\ncontainer = \"web*\"",
            "namespace = \"stage\"\ncontainer = \"web*\"\nannotation_may_choose = [\"ci\"]",
        );
        let policy = Policy::parse(&text, "t").unwrap();
        let permitted = policy
            .resolve_environment(&annotations(&[
                (keys::NAMESPACE, "stage"),
                (keys::CONTAINER, "web-1"),
                (ENVIRONMENT_ANNOTATION, "ci"),
            ]))
            .unwrap();
        assert_eq!(permitted.name, "ci");
        assert_eq!(permitted.describe(), "annotation, permitted by rule 2");
        // The opt-in belongs to rule 2 only.
        let other = policy
            .resolve_environment(&annotations(&[
                (keys::NAMESPACE, "prod-eu"),
                (ENVIRONMENT_ANNOTATION, "ci"),
            ]))
            .unwrap();
        assert_eq!(other.name, "production");
        // A rule that lets the annotation loosen, and every allow rule on a
        // key a workload can write, is warned about.
        let warnings = policy.workload_settable_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("rule 2 "), "{warnings:?}");
        assert!(warnings[1].starts_with("allow rule 1 "), "{warnings:?}");
        assert!(warnings[1].contains("Podman"), "{warnings:?}");
        let unknown = THREE.replace(
            "namespace = \"prod-*\"",
            "namespace = \"prod-*\"\nannotation_may_choose = [\"qa\"]",
        );
        let err = Policy::parse(&unknown, "t").unwrap_err().to_string();
        assert!(
            err.contains("annotation_may_choose names environment \"qa\""),
            "{err}"
        );
    }

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

    /// `*`-only glob matching by dynamic programming (fuzz/src/lib.rs has the same).
    fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
        // row[j]: the pattern so far matches text[..j].
        let mut row = vec![false; text.len() + 1];
        row[0] = true;
        for &p in pattern {
            let mut next = vec![false; text.len() + 1];
            let mut any = false;
            for j in 0..=text.len() {
                next[j] = if p == b'*' {
                    any |= row[j];
                    any
                } else {
                    j > 0 && row[j - 1] && text[j - 1] == p
                };
            }
            row = next;
        }
        row[text.len()]
    }

    /// Every string of up to `max` characters from `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn globs_agree_with_the_reference_on_every_small_case() {
        let texts = strings(&['a', 'b'], 6);
        for pattern in strings(&['a', 'b', '*'], 5) {
            for text in &texts {
                assert_eq!(
                    Pattern(pattern.clone()).matches(text),
                    glob_reference(pattern.as_bytes(), text.as_bytes()),
                    "{pattern:?} against {text:?}"
                );
            }
        }
        // Multi-byte characters are matched whole.
        assert!(Pattern("é*ü".into()).matches("éxyzü"));
        assert!(Pattern("*ß*".into()).matches("straße"));
        assert!(!Pattern("é*é".into()).matches("é"));
    }

    #[test]
    fn huge_globs_match_in_linear_time() {
        // The bound is the algorithm's (each byte of the text passed over once),
        // not a timer's. 64 KiB of `*a` against 100,000 bytes:
        let pattern = "*a".repeat(32 * 1024);
        let subject = "a".repeat(100_000);
        assert!(Pattern(pattern.clone()).matches(&subject));
        assert!(!Pattern(format!("{pattern}*b")).matches(&subject));
        assert!(!Pattern(pattern.clone()).matches(&subject[..32 * 1024 - 1]));
        assert!(Pattern(pattern).matches(&subject[..32 * 1024]));
        let pieces = "*ab".repeat(20_000) + "*";
        assert!(!Pattern(pieces.clone()).matches(&"a".repeat(100_000)));
        assert!(Pattern(pieces).matches(&"xab".repeat(20_000)));
        // A long piece that almost matches everywhere: the one-backtrack-point
        // matcher this replaced compared up to 4,000 bytes at each of the
        // 200,000 starts (fuzz/corpus/glob/quadratic-backtracking is its kind).
        let almost = format!("*{}b*", "a".repeat(4000));
        assert!(!Pattern(almost.clone()).matches(&"a".repeat(200_000)));
        assert!(Pattern(almost).matches(&format!("{}b", "a".repeat(200_000))));
    }

    #[test]
    fn problems_are_located_by_line_and_capped() {
        let index = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(2), (1, 3));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(6), (3, 1));
        assert_eq!(index.line_column(8), (4, 2));
        assert_eq!(index.line_column(100), (4, 3));
        assert_eq!(LineIndex::new("").line_column(0), (1, 1));

        // Thousands of bad names: the first MAX_PROBLEMS are written out, each
        // with its place, and the rest counted.
        let names: Vec<String> = (0..5000).map(|i| format!("\"/{i}\"")).collect();
        let text = format!(
            "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n\
             [catalogue]\nnames = [\n{}\n]\n",
            names.join(",\n")
        );
        let err = Policy::parse(&text, "t").unwrap_err().to_string();
        assert_eq!(err.matches("catalogue name").count(), MAX_PROBLEMS, "{err}");
        assert!(
            err.contains("line 6, column 1: catalogue name \"/0\""),
            "{err}"
        );
        assert!(
            err.contains("line 105, column 1: catalogue name \"/99\""),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("… and {} more", 5000 - MAX_PROBLEMS)),
            "{err}"
        );
    }

    #[test]
    fn globs_match_without_blowing_up() {
        assert!(Pattern("prod-*".into()).matches("prod-eu"));
        assert!(Pattern("*".into()).matches(""));
        assert!(Pattern("a*b*c".into()).matches("axxbyyc"));
        assert!(!Pattern("a*b*c".into()).matches("axxbyy"));
        let long = "a".repeat(10_000);
        assert!(!Pattern("*a*a*a*a*a*b".into()).matches(&long));
    }
}
