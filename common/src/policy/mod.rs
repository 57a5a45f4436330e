//! The policy model: environments, how containers map to them, and the sniffer
//! catalogue.
//!
//! The runtime shim reads it to decide what to inject into a container's
//! `config.json`; the supervisor reads it to decide what to do when a sniffer shows
//! up. Both default to [`BUILTIN_POLICY`], the commented file
//! `config/sniffguard.toml` compiled in. Unknown keys are errors: a misspelt key
//! in a security policy must not fall back to a default without a word.
//!
//! The module is laid out the way a reader meets a policy file:
//! - `model`: environments, modes, responses, rules and the catalogue;
//! - `selector`: which containers a rule picks, and the `*` globs it uses;
//! - `settings`: what only the supervisor acts on (alerts, webhook, flood
//!   control, metrics, forensics);
//! - `parse`: reading and validating the file;
//! - `resolve`: a container's environment and its allow rules;
//! - `problems`: how mistakes are located and counted, and what
//!   `check-config` warns about.
//!
//! Every public item is re-exported here, so `policy::Policy`,
//! `policy::keys` and the rest are the paths to use; the submodules are an
//! arrangement for readers, not an API.

use std::collections::{BTreeMap, HashSet};

use crate::ENVIRONMENT_ANNOTATION;

mod model;
mod parse;
mod problems;
mod resolve;
mod selector;
mod settings;

pub use model::{
    valid_capability_name, valid_environment_name, AllowRule, CapabilityRequests, Catalogue,
    Environment, EnvironmentRule, FailPolicy, Mode, Response, Strictness, CAP_NET_RAW,
    DEFAULT_CATALOGUE,
};
pub use parse::{BUILTIN_POLICY, MAX_POLICY_BYTES};
pub use resolve::{ChosenBy, Resolution};
pub use selector::{keys, Pattern, Selector};
pub use settings::{
    AlertFormat, AlertsConfig, FloodConfig, ForensicsConfig, MetricsConfig, WebhookConfig,
};

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

/// A small policy with two rules and an allow rule, shared by the tests of
/// the submodules (their expected line numbers point into it).
#[cfg(test)]
mod fixtures {
    use std::collections::BTreeMap;

    pub(super) const THREE: &str = r#"
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

    pub(super) fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
