//! Whether the supervisor is whole: what `READY=1`, `status` (and its
//! `--ready` check, the DaemonSet's readiness probe) and `/metrics` report.
//!
//! The seccomp listener and the API socket are bound before anything is
//! reported, or the supervisor does not start at all. What can be missing while
//! it runs is the eBPF side: probes that did not load or attach (audit
//! environments unobserved, the exec backstop off) and a ring reader that
//! stopped. Each is a named problem with its reason; none, and the supervisor
//! is ready.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The parts whose failure makes the supervisor degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// The eBPF programs (loaded and attached at start-up).
    Probes,
    /// The thread that reads the eBPF ring buffer.
    RingReader,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Probes => "ebpf_probes",
            Component::RingReader => "ring_reader",
        }
    }
}

/// The problems in force, by component.
#[derive(Debug, Default)]
pub struct Health {
    problems: Mutex<BTreeMap<Component, String>>,
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Component, String>) -> T) -> T {
        let mut map = self
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// Records that `component` is down, and why.
    pub fn fail(&self, component: Component, why: impl Into<String>) {
        let why = why.into();
        tracing::error!(component = component.name(), why, "supervisor degraded");
        self.with(|map| map.insert(component, why));
    }

    /// Every problem in force, as `component: why`.
    pub fn problems(&self) -> Vec<String> {
        self.with(|map| {
            map.iter()
                .map(|(component, why)| format!("{}: {why}", component.name()))
                .collect()
        })
    }

    /// Whether nothing is down.
    pub fn is_ready(&self) -> bool {
        self.with(|map| map.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_named_and_make_it_not_ready() {
        let health = Health::default();
        assert!(health.is_ready());
        health.fail(Component::RingReader, "poll failed: EBADF");
        health.fail(Component::Probes, "tracefs unavailable");
        assert!(!health.is_ready());
        assert_eq!(
            health.problems(),
            [
                "ebpf_probes: tracefs unavailable",
                "ring_reader: poll failed: EBADF"
            ]
        );
    }
}
