//! A container's environment, decided from the operator's rules, the default
//! and the container's own annotation (which may only tighten), and the allow
//! rules that let a container run a sniffer.

use std::collections::BTreeMap;

use super::{AllowRule, Environment, Policy, PolicyError};
use crate::ENVIRONMENT_ANNOTATION;

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

impl Policy {
    /// The environment a container with these annotations belongs to, and how
    /// it was chosen.
    ///
    /// The operator decides: the first `[[rules]]` entry whose selector matches,
    /// else `default_environment`. The container's own
    /// `sniffguard.io/environment` annotation is the workload speaking, so it
    /// may only move the container to a stricter environment (see
    /// [`Strictness`](super::Strictness)), or to one the matching rule lists in
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
#[cfg(test)]
mod tests {
    use super::super::fixtures::{annotations, THREE};
    use super::*;
    use crate::policy::{keys, Response};

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
}
