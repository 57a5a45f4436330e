//! Reading a policy file and checking it: the schema of the file, the size
//! bound, and every rule a file that parses must still keep.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::problems::{find, LineIndex, Problems};
use super::{
    valid_capability_name, valid_environment_name, AlertsConfig, AllowRule, Catalogue, Environment,
    EnvironmentRule, ForensicsConfig, MetricsConfig, Mode, Policy, PolicyError, Response,
};

/// The default policy, as shipped in `config/sniffguard.toml`.
pub const BUILTIN_POLICY: &str = include_str!("../../../config/sniffguard.toml");

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

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
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::THREE;
    use super::*;
    use crate::policy::FailPolicy;

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
}
