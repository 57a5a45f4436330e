//! The sniffguard supervisor: one per node, it watches every attached container
//! for network sniffing and stops or reports it according to the container's
//! environment.
//!
//! The modules, in the order a decision passes through them:
//! - **who may talk**: [`api`] (the hook's and the operator's socket),
//!   [`listener`] (notify fds from the runtimes), [`peer`] (where a caller
//!   runs, and what it may ask);
//! - **what the kernel reports**: [`notify`] (a seccomp notification, answered
//!   before the call runs; [`inflight`] keeps what is pending across restarts)
//!   and [`probe`] + [`detect`] (the eBPF programs and what their events
//!   mean, judged on [`lanes`]' worker threads within a bound; [`vetted`]
//!   says which execs seccomp already decided; [`btf`] finds the kernel
//!   offsets the exec probe reads the executed file's identity with, and
//!   [`identity`] recognises that file later);
//! - **what it is**: [`target`] (the caller's memory), [`resolve`] (the file,
//!   inside the container), [`classify`] (is it a sniffer), [`procfs`] (who
//!   the caller is);
//! - **what to do**: [`finding`] (the tail both paths share), [`verdict`] (the
//!   policy, its exceptions and [`grants`]);
//! - **doing it and saying so**: [`respond`] (kill, freeze, forensics, within
//!   the [`forensics_budget`]), [`sweep`] (every holder of a capture socket),
//!   [`alert`] → [`sinks`], [`metrics`];
//! - **staying up**: [`registry`] (the attached containers), [`daemon`]
//!   (start-up, signals), [`privileges`] (the capabilities kept), [`keeper`]
//!   (notify fds across restarts), [`state`] (what a restart finds again),
//!   [`health`] (readiness); and [`commands`], the operator's side.
//!
//! The modules stay one flat list on purpose: most serve more than one of
//! these steps (the registry, the classifier and the alert are shared by the
//! seccomp and the eBPF path), and no module imports one that imports it back.

pub mod alert;
pub mod api;
pub mod btf;
pub mod classify;
pub mod commands;
pub mod daemon;
pub mod detect;
pub mod finding;
pub mod forensics_budget;
pub mod grants;
pub mod health;
pub mod identity;
pub mod inflight;
pub mod keeper;
pub mod lanes;
pub mod listener;
pub mod metrics;
pub mod netbroker;
pub mod notify;
pub mod peer;
pub mod privileges;
pub mod probe;
pub mod procfs;
pub mod registry;
pub mod resolve;
pub mod respond;
pub mod sinks;
pub mod state;
pub mod sweep;
pub mod target;
pub mod verdict;
pub mod vetted;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sniffguard_common::policy::Policy;

/// What every task of the supervisor shares.
pub struct Shared {
    /// The policy in force (replaced whole on reload).
    pub policy: Arc<ArcSwap<Policy>>,
    /// Attached containers.
    pub registry: Arc<registry::Registry>,
    /// The classifier and its file cache.
    pub classifier: classify::Classifier,
    /// The alert queue.
    pub alerts: sinks::AlertSink,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The runtime directory (sockets, fail-open spool).
    pub runtime_dir: std::path::PathBuf,
    /// Break-glass grants in force.
    pub grants: grants::Grants,
    /// The eBPF maps, when the probes are loaded.
    pub probes: Option<Mutex<probe::ProbeMaps>>,
    /// Execs the seccomp listeners let through, for the exec probe to skip.
    pub vetted: vetted::Vetted,
    /// The threads answering seccomp notifications.
    pub notify: notify::NotifyThreads,
    /// What is down (degraded when anything is).
    pub health: health::Health,
    /// How many forensic records may still be written.
    pub forensics_budget: forensics_budget::ForensicsBudget,
    /// The process that sets interface flags and opens `NETLINK_ROUTE`
    /// sockets for enforced containers, when it could be started.
    pub netbroker: Option<netbroker::Broker>,
}

impl Shared {
    /// Runs `f` on the eBPF maps, if the probes are loaded.
    pub fn with_probes<T>(&self, f: impl FnOnce(&mut probe::ProbeMaps) -> T) -> Option<T> {
        let probes = self.probes.as_ref()?;
        let mut maps = probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut maps))
    }
}
