//! The containers the supervisor knows, by id.
//!
//! A container is known from two sides that arrive in either order: the hook's
//! registration (bundle, cgroup, namespaces, annotations) and the runtime's
//! seccomp listener fd (enforce environments only). Both are joined here by
//! container id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use sniffguard_common::wire::Registration;

/// One attached container.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub bundle: Option<String>,
    /// The init process on the host.
    pub pid: Option<u32>,
    /// The cgroup v2 id.
    pub cgroup_id: Option<u64>,
    /// Namespace inodes.
    pub namespaces: BTreeMap<String, u64>,
    /// OCI annotations.
    pub annotations: BTreeMap<String, String>,
    /// The environment.
    pub environment: String,
    /// The real runtime.
    pub runtime: Option<String>,
    /// CI pipeline identifiers.
    pub pipeline: BTreeMap<String, String>,
    /// How the shim chose the environment, when its wiring named it (see
    /// [`Registration::environment_chosen_by`]); otherwise the policy says.
    #[serde(default)]
    pub environment_chosen_by: Option<String>,
    /// Whether the hook registered it (as opposed to only a listener fd).
    pub registered: bool,
    /// Whether it started while no supervisor answered (fail open) and was
    /// attached to the probes only when the supervisor came back.
    pub started_unsupervised: bool,
    /// Seccomp listener fds currently served for it.
    pub listeners: u32,
    /// When the supervisor first heard of it.
    #[serde(with = "humantime_serde_shim")]
    pub since: SystemTime,
    /// When the hook deregistered it; the record stays a little longer so that
    /// eBPF events still in the ring buffer can be attributed.
    #[serde(skip)]
    pub gone_since: Option<std::time::Instant>,
}

/// Most characters of a registration's `environment_chosen_by` kept.
const MAX_CHOSEN_BY_CHARS: usize = 256;

/// How long a deregistered container's record is kept for late events.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

mod humantime_serde_shim {
    use std::time::SystemTime;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_micros(*time).to_string())
    }
}

impl ContainerRecord {
    fn new(id: &str, environment: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string(),
            bundle: None,
            pid: None,
            cgroup_id: None,
            namespaces: BTreeMap::new(),
            annotations: BTreeMap::new(),
            environment: environment.to_string(),
            runtime: None,
            pipeline: BTreeMap::new(),
            environment_chosen_by: None,
            registered: false,
            started_unsupervised: false,
            listeners: 0,
            since: SystemTime::now(),
            gone_since: None,
        }
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    containers: Mutex<HashMap<String, ContainerRecord>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ContainerRecord>) -> T) -> T {
        // A panic while the lock was held cannot leave a record half-written in a
        // way that matters more than losing every container: keep going.
        let mut guard = self
            .containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.retain(|_, r| r.gone_since.is_none_or(|t| t.elapsed() < LINGER));
        f(&mut guard)
    }

    /// Records a hook registration; idempotent (createRuntime and prestart may
    /// both run it).
    pub fn register(&self, registration: &Registration) {
        self.with(|map| {
            let record = map.entry(registration.id.clone()).or_insert_with(|| {
                ContainerRecord::new(&registration.id, &registration.environment)
            });
            record.bundle = Some(registration.bundle.clone());
            record.pid = registration.pid.or(record.pid);
            record.cgroup_id = registration.cgroup_id.or(record.cgroup_id);
            if !registration.namespaces.is_empty() {
                record.namespaces = registration.namespaces.clone();
            }
            record.annotations = registration.annotations.clone();
            record.environment = registration.environment.clone();
            record.runtime = registration.runtime.clone();
            record.pipeline = registration.pipeline.clone();
            // Words for an operator, from the hook: bounded like a name.
            record.environment_chosen_by = registration
                .environment_chosen_by
                .as_ref()
                .map(|text| text.chars().take(MAX_CHOSEN_BY_CHARS).collect());
            record.registered = true;
            record.gone_since = None;
        });
    }

    /// Marks `id` as a container that started while no supervisor answered.
    pub fn mark_started_unsupervised(&self, id: &str) {
        self.with(|map| {
            if let Some(record) = map.get_mut(id) {
                record.started_unsupervised = true;
            }
        });
    }

    /// Records that a listener fd for `id` is being served.
    pub fn listener_attached(
        &self,
        id: &str,
        environment: &str,
        annotations: &BTreeMap<String, String>,
    ) {
        self.with(|map| {
            let record = map
                .entry(id.to_string())
                .or_insert_with(|| ContainerRecord::new(id, environment));
            if record.annotations.is_empty() {
                record.annotations = annotations.clone();
            }
            record.listeners += 1;
        });
    }

    /// Records that a listener fd for `id` closed (all its processes exited).
    /// A container that was never registered and has no listener left is
    /// forgotten.
    pub fn listener_detached(&self, id: &str) {
        self.with(|map| {
            if let Some(record) = map.get_mut(id) {
                record.listeners = record.listeners.saturating_sub(1);
                if record.listeners == 0 && !record.registered {
                    map.remove(id);
                }
            }
        });
    }

    /// Forgets a container the hook deregistered (after [`LINGER`], for late
    /// events). Returns its record.
    pub fn deregister(&self, id: &str) -> Option<ContainerRecord> {
        self.with(|map| {
            let record = map.get_mut(id).filter(|r| r.gone_since.is_none())?;
            record.gone_since = Some(std::time::Instant::now());
            Some(record.clone())
        })
    }

    /// Whether a registered container (not one lingering after
    /// deregistration) uses `cgroup_id`.
    pub fn cgroup_in_use(&self, cgroup_id: u64) -> bool {
        self.with(|map| {
            map.values()
                .any(|r| r.registered && r.gone_since.is_none() && r.cgroup_id == Some(cgroup_id))
        })
    }

    /// The registered container whose cgroup v2 id is `cgroup_id`.
    pub fn by_cgroup(&self, cgroup_id: u64) -> Option<ContainerRecord> {
        self.with(|map| select_by_cgroup(map, cgroup_id).cloned())
    }

    /// Whether the container whose cgroup v2 id is `cgroup_id` has a seccomp
    /// listener: a look that copies nothing, for every exec event.
    pub fn has_listener(&self, cgroup_id: u64) -> bool {
        self.with(|map| select_by_cgroup(map, cgroup_id).is_some_and(|r| r.listeners > 0))
    }

    /// A copy of one live record.
    pub fn get(&self, id: &str) -> Option<ContainerRecord> {
        self.with(|map| map.get(id).filter(|r| r.gone_since.is_none()).cloned())
    }

    /// Copies of every live record, sorted by id.
    pub fn list(&self) -> Vec<ContainerRecord> {
        let mut all: Vec<_> = self.with(|map| {
            map.values()
                .filter(|r| r.gone_since.is_none())
                .cloned()
                .collect()
        });
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Whether a live record (not one lingering after deregistration)
    /// satisfies `test`: a look that copies nothing.
    pub fn any_live(&self, test: impl Fn(&ContainerRecord) -> bool) -> bool {
        self.with(|map| map.values().any(|r| r.gone_since.is_none() && test(r)))
    }

    /// How many containers are attached.
    pub fn len(&self) -> usize {
        self.with(|map| map.values().filter(|r| r.gone_since.is_none()).count())
    }

    /// Whether no container is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The record of the container in `cgroup_id`. A live container wins over one
/// lingering after deregistration: cgroup ids are inode numbers and can be
/// reused.
fn select_by_cgroup(
    map: &HashMap<String, ContainerRecord>,
    cgroup_id: u64,
) -> Option<&ContainerRecord> {
    let mut matches = map
        .values()
        .filter(|r| r.registered && r.cgroup_id == Some(cgroup_id));
    let first = matches.next()?;
    if first.gone_since.is_none() {
        return Some(first);
    }
    Some(matches.find(|r| r.gone_since.is_none()).unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(id: &str) -> Registration {
        Registration {
            id: id.into(),
            bundle: "/b".into(),
            pid: Some(5),
            cgroup_id: Some(9),
            namespaces: BTreeMap::new(),
            annotations: BTreeMap::new(),
            environment: "staging".into(),
            runtime: Some("runc".into()),
            pipeline: BTreeMap::new(),
            environment_chosen_by: None,
        }
    }

    #[test]
    fn fd_and_registration_join_in_either_order() {
        let registry = Registry::new();
        registry.listener_attached("a", "staging", &BTreeMap::new());
        registry.register(&registration("a"));
        let a = registry.get("a").unwrap();
        assert!(a.registered);
        assert_eq!(a.listeners, 1);

        registry.register(&registration("b"));
        registry.register(&registration("b"));
        registry.listener_attached("b", "staging", &BTreeMap::new());
        assert_eq!(registry.get("b").unwrap().listeners, 1);
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn unregistered_containers_go_with_their_last_listener() {
        let registry = Registry::new();
        registry.listener_attached("x", "staging", &BTreeMap::new());
        registry.listener_attached("x", "staging", &BTreeMap::new());
        registry.listener_detached("x");
        assert!(registry.get("x").is_some());
        registry.listener_detached("x");
        assert!(registry.get("x").is_none());

        registry.register(&registration("y"));
        registry.listener_attached("y", "staging", &BTreeMap::new());
        registry.listener_detached("y");
        assert!(
            registry.get("y").is_some(),
            "registered containers stay until poststop"
        );
        assert_eq!(registry.by_cgroup(9).unwrap().id, "y");
        assert!(registry.cgroup_in_use(9));
        assert!(registry.deregister("y").is_some());
        assert!(registry.deregister("y").is_none());
        // Late eBPF events are still attributed for a while, but the container
        // is no longer attached.
        assert_eq!(registry.by_cgroup(9).unwrap().id, "y");
        assert!(!registry.cgroup_in_use(9));
        assert!(registry.get("y").is_none());
        assert_eq!(registry.len(), 0);
    }
}
