//! Break-glass grants: a named person may run a sniffer in one container for a
//! bounded time. Grants live in the supervisor's memory, are saved under the
//! runtime directory so that a restart keeps them ([`crate::state`]), expire on
//! their own, and every use is alerted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Longest grant accepted: break-glass is for a debugging session, not a
/// standing exception (that is what the policy's allow rules are for).
pub const MAX_GRANT: Duration = Duration::from_secs(24 * 3600);

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The container it applies to.
    pub container: String,
    /// Who asked for it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When it was granted.
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub granted: SystemTime,
    /// When it ends.
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub until: SystemTime,
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_seconds(*time).to_string())
}

fn from_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

/// Errors granting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// Zero or longer than [`MAX_GRANT`].
    #[error("a grant must last between 1 second and {} hours", MAX_GRANT.as_secs() / 3600)]
    Duration,
    /// No reason given.
    #[error("a grant needs a reason")]
    Reason,
}

/// The grants in force.
#[derive(Debug, Default)]
pub struct Grants {
    by_container: Mutex<HashMap<String, Grant>>,
}

impl Grants {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Grant>) -> T) -> T {
        let mut map = self
            .by_container
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = SystemTime::now();
        map.retain(|_, g| g.until > now);
        f(&mut map)
    }

    /// Grants `container` for `duration`; replaces an earlier grant for it.
    pub fn grant(
        &self,
        container: &str,
        duration: Duration,
        by: &str,
        reason: &str,
    ) -> Result<Grant, GrantError> {
        if duration.is_zero() || duration > MAX_GRANT {
            return Err(GrantError::Duration);
        }
        if reason.trim().is_empty() {
            return Err(GrantError::Reason);
        }
        let now = SystemTime::now();
        let grant = Grant {
            container: container.to_string(),
            by: by.to_string(),
            reason: reason.to_string(),
            granted: now,
            until: now + duration,
        };
        self.with(|map| map.insert(container.to_string(), grant.clone()));
        Ok(grant)
    }

    /// The grant in force for `container`, if any.
    pub fn active(&self, container: &str) -> Option<Grant> {
        self.with(|map| map.get(container).cloned())
    }

    /// Every grant in force.
    pub fn list(&self) -> Vec<Grant> {
        let mut all: Vec<Grant> = self.with(|map| map.values().cloned().collect());
        all.sort_by(|a, b| a.container.cmp(&b.container));
        all
    }

    /// Takes back a grant saved before a restart; one that has ended meanwhile,
    /// or that is longer than [`MAX_GRANT`] from now, is not taken.
    pub fn restore(&self, grant: Grant) -> bool {
        let now = SystemTime::now();
        let within = grant
            .until
            .duration_since(now)
            .is_ok_and(|left| !left.is_zero() && left <= MAX_GRANT);
        if within {
            self.with(|map| map.insert(grant.container.clone(), grant));
        }
        within
    }

    /// Ends the grant for `container`. Returns whether there was one.
    pub fn revoke(&self, container: &str) -> bool {
        self.with(|map| map.remove(container).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_apply_to_one_container_and_expire() {
        let grants = Grants::default();
        grants
            .grant("a", Duration::from_millis(50), "alice", "debug")
            .unwrap();
        assert!(grants.active("a").is_some());
        assert!(grants.active("b").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(grants.active("a").is_none());
        assert!(grants.list().is_empty());
    }

    #[test]
    fn unbounded_or_unexplained_grants_are_refused() {
        let grants = Grants::default();
        assert_eq!(
            grants.grant("a", Duration::ZERO, "x", "y"),
            Err(GrantError::Duration)
        );
        assert_eq!(
            grants.grant("a", MAX_GRANT * 2, "x", "y"),
            Err(GrantError::Duration)
        );
        assert_eq!(
            grants.grant("a", Duration::from_secs(1), "x", " "),
            Err(GrantError::Reason)
        );
        grants
            .grant("a", Duration::from_secs(60), "x", "y")
            .unwrap();
        assert!(grants.revoke("a"));
        assert!(!grants.revoke("a"));
    }
}
