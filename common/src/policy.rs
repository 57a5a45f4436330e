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
}

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
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue {
            // An empty list in a file means "no names", but a file without a
            // [catalogue] table still gets the capture-library check.
            names: Vec::new(),
            sha256: Vec::new(),
            libpcap: true,
            libraries: vec!["libpcap.so".to_string()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default_environment: String,
    environments: BTreeMap<String, Environment>,
    #[serde(default)]
    catalogue: Catalogue,
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
    /// The sniffer catalogue.
    pub catalogue: Catalogue,
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

    /// Parses and validates policy text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if file.environments.is_empty() {
            return Err(invalid("no environment is defined".into()));
        }
        for name in file.environments.keys() {
            if !valid_environment_name(name) {
                return Err(invalid(format!(
                    "environment name {name:?} must be 1-64 characters of [a-z0-9_-]"
                )));
            }
        }
        if !file.environments.contains_key(&file.default_environment) {
            return Err(invalid(format!(
                "default_environment {:?} is not one of the environments",
                file.default_environment
            )));
        }
        for name in &file.catalogue.names {
            if name.is_empty() || name.contains('/') || name.contains('\0') {
                return Err(invalid(format!(
                    "catalogue name {name:?} must be a non-empty file name without '/'"
                )));
            }
        }
        for digest in &file.catalogue.sha256 {
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(invalid(format!(
                    "catalogue sha256 {digest:?} must be 64 lower-case hex digits"
                )));
            }
        }
        let names = file.catalogue.names.iter().cloned().collect();
        Ok(Policy {
            origin: origin.to_string(),
            default_environment: file.default_environment,
            environments: file.environments,
            catalogue: file.catalogue,
            names,
        })
    }

    /// The environment a container with these annotations belongs to.
    pub fn resolve_environment<'a>(
        &'a self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(&'a str, &'a Environment), PolicyError> {
        let wanted = annotations
            .get(ENVIRONMENT_ANNOTATION)
            .map(String::as_str)
            .unwrap_or(&self.default_environment);
        self.environment(wanted)
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
    fn annotation_selects_the_environment() {
        let policy = Policy::builtin().unwrap();
        let mut annotations = BTreeMap::new();
        assert_eq!(policy.resolve_environment(&annotations).unwrap().0, "ci");
        annotations.insert(ENVIRONMENT_ANNOTATION.to_string(), "production".to_string());
        assert_eq!(
            policy.resolve_environment(&annotations).unwrap().0,
            "production"
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
