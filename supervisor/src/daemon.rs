//! Start-up and life cycle of `sniffguard run`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use sniffguard_common::paths;
use sniffguard_common::policy::{Policy, PolicyError};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::classify::Classifier;
use crate::inflight::Ledger;
use crate::metrics::{self, Metrics};
use crate::probe::Probes;
use crate::registry::Registry;
use crate::sinks::AlertSink;
use crate::{api, detect, keeper, listener, privileges, state, Shared};

/// Errors that stop the supervisor from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The policy is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The runtime directory cannot be prepared.
    #[error("runtime directory {path}: {source}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A socket cannot be bound.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path exists where a socket should go and is not a socket.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The metrics endpoint cannot listen.
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// How the supervisor was asked to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where its sockets go.
    pub runtime_dir: PathBuf,
    /// The policy file, or `None` for the built-in policy.
    pub policy: Option<PathBuf>,
    /// Whether to load the eBPF probes.
    pub ebpf: bool,
    /// Overrides the policy's forensic record directory.
    pub forensics_dir: Option<PathBuf>,
}

/// The supervisor's scheduling niceness. An exec in an enforced container
/// waits for the supervisor's answer, and runc's init retries an entrypoint
/// exec answered late (PLATFORM.md): on a node busy with the very execs it
/// decides, the supervisor must not queue behind them. -10 puts it ahead of
/// ordinary work without starving anything (it does not use a real-time
/// class, which a busy loop in the supervisor could turn into a frozen node).
pub const SUPERVISOR_NICE: i32 = -10;

/// Raises the calling thread's scheduling priority to [`SUPERVISOR_NICE`].
/// Linux keeps the nice value per thread and new threads inherit it: call
/// this before the async runtime starts its threads. Needs CAP_SYS_NICE,
/// which the supervisor drops later; without it the supervisor runs at the
/// priority it was given, and says so.
pub fn raise_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours;
    // who = 0 is the calling thread (Linux applies PRIO_PROCESS with 0 to it).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SUPERVISOR_NICE) };
    if rc != 0 {
        tracing::warn!(
            nice = SUPERVISOR_NICE,
            err = %std::io::Error::last_os_error(),
            "cannot raise the supervisor's priority; decisions may wait behind the execs they decide"
        );
    }
}

/// Runs the supervisor until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let policy = load_policy(&config)?;
    tracing::info!(
        policy = policy.origin,
        environments = ?policy.environments.keys().collect::<Vec<_>>(),
        "policy loaded"
    );
    prepare_runtime_dir(&config.runtime_dir)?;
    let keeper_pid = start_keeper(&config.runtime_dir);
    let api_path = paths::api_socket(&config.runtime_dir);
    let seccomp_path = paths::seccomp_socket(&config.runtime_dir);
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    let health = crate::health::Health::default();
    let (probes, events) = if config.ebpf {
        match Probes::load() {
            Ok(mut probes) => {
                if let Err(err) = probes
                    .maps
                    .set_kill_names(policy.catalogue.names.iter().map(String::as_str))
                {
                    tracing::error!(%err, "cannot fill the exec probe's kill list");
                }
                tracing::info!("eBPF exec and socket probes attached");
                let events = probes.events.take();
                (Some(probes), events)
            }
            Err(err) => {
                health.fail(
                    crate::health::Component::Probes,
                    format!("eBPF probes unavailable ({err}): audit environments are not observed and the exec backstop is off (`sniffguard doctor` tells why)"),
                );
                (None, None)
            }
        }
    } else {
        tracing::warn!("eBPF probes disabled by --no-ebpf");
        (None, None)
    };
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let registry = Arc::new(Registry::new());
    let metrics = Metrics::new();
    // Started while every capability is still held: it keeps CAP_NET_ADMIN
    // for the supervisor, which gives it up below.
    let netbroker = match crate::netbroker::Broker::spawn() {
        Ok(broker) => {
            tracing::info!(pid = broker.pid(), "network broker started");
            Some(broker)
        }
        Err(err) => {
            tracing::error!(%err, "no network broker: enforced containers that keep CAP_NET_ADMIN get EPERM for SIOCSIFFLAGS");
            None
        }
    };
    let mut probes = probes;
    if let (Some(probes), None) = (probes.as_mut(), netbroker.as_ref()) {
        // Nothing could attach it later: attached for good, the node pays
        // for it on every system call.
        if let Err(err) = probes.attach_compat_for_good() {
            tracing::warn!(%err, "compat socket probe not attached: i386 and x32 capture sockets are not seen in audit containers");
        }
    }
    // The programs stay attached for as long as this binding lives.
    let (_attached_programs, probe_maps) = match probes {
        Some(Probes { programs, maps, .. }) => (Some(programs), Some(std::sync::Mutex::new(maps))),
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        policy: policy.clone(),
        registry,
        classifier: Classifier::new(),
        alerts: AlertSink::start(policy.clone(), metrics.clone()),
        metrics: metrics.clone(),
        grants: crate::grants::Grants::default(),
        runtime_dir: config.runtime_dir.clone(),
        probes: probe_maps,
        vetted: crate::vetted::Vetted::default(),
        notify: crate::notify::NotifyThreads::new(tokio::runtime::Handle::current()),
        health,
        forensics_budget: crate::forensics_budget::ForensicsBudget::default(),
        netbroker,
    });
    if let Some(events) = events {
        detect::spawn_reader(events, shared.clone());
    }
    if let Some(address) = shared.policy.load().metrics.listen.clone() {
        let scraped = shared.clone();
        metrics::serve(&address, metrics, move |m| refresh_gauges(&scraped, m))
            .map_err(|source| DaemonError::Metrics { address, source })?;
    }
    // The seccomp socket is bound first: a runtime that finds the API socket
    // (the shim's ping) must also find the listener.
    let seccomp = bind(&seccomp_path)?;
    let api_listener = bind(&api_path)?;
    // The parent of the cgroup leaves given to crun containers sits in the v2
    // root, which is not writable by its owner alone (mode 0555): made now,
    // while CAP_DAC_OVERRIDE is still held.
    if let Err(why) = sniffguard_common::cgroups::prepare_own_cgroup_parent() {
        tracing::warn!(why, "containers without a cgroup of their own (crun on a hybrid host) will not be seen by the eBPF probes");
    }
    // Who may talk to the supervisor is judged against the host's namespaces,
    // read while pid 1's /proc entry is still within reach.
    crate::peer::remember_host();
    // Everything that needs more is done: probes loaded and attached, tracefs
    // mounted, sockets bound, runtime directory made, keeper started. Dropped
    // before any notify fd is served: the per-thread drop interrupts system
    // calls, and an interrupted SECCOMP_IOCTL_NOTIF_SEND (EINTR, not restarted)
    // would leave a held exec unanswered.
    privileges::drop_and_log(&privileges::SUPERVISOR_KEEPS, "supervisor");
    restore(&shared);
    keeper::watch(config.runtime_dir.clone(), keeper_pid);
    tokio::spawn(reap_dead_registrations(shared.clone()));
    tokio::spawn(listener::serve(seccomp, shared.clone()));
    tokio::spawn(api::serve(api_listener, shared.clone()));
    // Ready only when whole: a supervisor without its probes enforces through
    // seccomp but sees nothing in audit environments, and must not be taken
    // for a working one (systemd keeps waiting for READY=1; `status --ready`
    // fails with the reason).
    if shared.health.is_ready() {
        tracing::info!(runtime_dir = %config.runtime_dir.display(), "sniffguard supervisor ready");
        notify_systemd("READY=1");
    } else {
        let problems = shared.health.problems().join("; ");
        tracing::error!(runtime_dir = %config.runtime_dir.display(), problems, "sniffguard supervisor running DEGRADED, not ready");
        notify_systemd(&format!("STATUS=degraded: {problems}"));
    }

    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => reload(&config, &shared),
        }
    }
    tracing::info!(
        "stopping; enforced containers' watched syscalls fail until a supervisor is back"
    );
    let _ = fs::remove_file(&api_path);
    let _ = fs::remove_file(&seccomp_path);
    Ok(())
}

/// Finds the fd keeper, or starts one, and says whether it outlives this
/// supervisor. A resident keeper (its own service or pod) does; one this
/// supervisor spawns does only where the service manager stops the
/// supervisor's process alone (systemd `KillMode=process`). In a container
/// sharing the host's pid namespace (the DaemonSet) it does not: the runtime
/// kills every process of such a container when its init exits, and every
/// enforced container's watched syscalls then fail with ENOSYS. Any keeper
/// that answers is adopted, whatever its version: the protocol is versioned
/// ([`keeper::PROTOCOL`]) and a keeper hands back each listener's description
/// as it was given; a keeper that takes over later (the keeper DaemonSet's
/// rollout) does so without dropping an fd ([`keeper::run`]). Returns the
/// keeper's pid, for [`keeper::watch`].
fn start_keeper(runtime_dir: &Path) -> Option<u32> {
    if let Err(err) = keeper::ensure_running(runtime_dir) {
        tracing::error!(%err, "no fd keeper: a restart of this supervisor will fail enforced containers' watched syscalls");
        return None;
    }
    let facts = keeper::hello(runtime_dir);
    match &facts {
        Ok(facts) if facts.resident => tracing::info!(
            pid = facts.pid,
            protocol = facts.protocol,
            version = facts.version,
            "fd keeper found: resident, it outlives this supervisor"
        ),
        Ok(facts) if in_own_container() => tracing::warn!(
            pid = facts.pid,
            protocol = facts.protocol,
            "the fd keeper was started by a supervisor in a container: it dies with the container (a restart or a rollout fails every enforced container's watched syscalls with ENOSYS); run the keeper as its own pod (the sniffguard-keeper DaemonSet of deploy/helm/sniffguard)"
        ),
        Ok(facts) => tracing::info!(
            pid = facts.pid,
            protocol = facts.protocol,
            "fd keeper found: started by a supervisor, it outlives this one where only the supervisor's process is stopped (systemd KillMode=process)"
        ),
        Err(err) => tracing::warn!(%err, "the fd keeper does not say who it is"),
    }
    facts.ok().and_then(|f| f.pid)
}

/// Whether this process runs in a mount namespace other than the host's init's
/// (a container; read while CAP_SYS_PTRACE still reaches pid 1's links). Unknown
/// counts as yes: the warning it leads to names what to check.
fn in_own_container() -> bool {
    match (
        fs::read_link("/proc/self/ns/mnt"),
        fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(own), Ok(host)) => own != host,
        _ => true,
    }
}

/// The policy file (or the built-in one), with command-line overrides applied.
fn load_policy(config: &DaemonConfig) -> Result<Policy, PolicyError> {
    let mut policy = Policy::load(config.policy.as_deref())?;
    if let Some(dir) = &config.forensics_dir {
        policy.forensics.dir = dir.clone();
    }
    Ok(policy)
}

fn reload(config: &DaemonConfig, shared: &Shared) {
    match load_policy(config) {
        Ok(new) => {
            tracing::info!(policy = new.origin, "policy reloaded");
            // The alert sinks and the metrics endpoint are set up once, at
            // start: say so rather than let a changed section look applied.
            let old = shared.policy.load();
            let needs_restart: Vec<&str> = [
                ("[alerts]", old.alerts != new.alerts),
                ("[metrics]", old.metrics != new.metrics),
            ]
            .into_iter()
            .filter_map(|(section, changed)| changed.then_some(section))
            .collect();
            if !needs_restart.is_empty() {
                tracing::warn!(
                    sections = needs_restart.join(", "),
                    "these sections changed but apply only after a restart of the supervisor; every other section applies now"
                );
            }
            let names: Vec<String> = new.catalogue.names.clone();
            shared.policy.store(Arc::new(new));
            // The kill armed in the kernel follows the environments and allow
            // rules of the policy now in force.
            for record in shared.registry.list() {
                crate::api::refresh_kernel_kill(shared, &record.id);
            }
            // An environment may have turned to audit, or from it.
            crate::api::refresh_compat_probe(shared);
            shared.alerts.reopen();
            shared.with_probes(|maps| {
                if let Err(err) = maps.set_kill_names(names.iter().map(String::as_str)) {
                    tracing::error!(%err, "cannot refresh the exec probe's kill list");
                }
            });
        }
        Err(err) => {
            tracing::error!(%err, "policy reload failed; keeping the policy in force");
            shared.alerts.reopen();
        }
    }
}

/// How often registrations are checked for a dead init process.
const REAP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Forgets registrations nobody will ever deregister.
///
/// The poststop hook deregisters a container, but it never runs when the runtime
/// dies between the createRuntime hook and the end of `create` (killed, OOM, a
/// host crash): the container's init is gone, and its registration, saved state
/// and eBPF filter entry would stay for the supervisor's lifetime. A registration
/// whose init process has been gone for two checks in a row ([`REAP_INTERVAL`]
/// apart) and that has no seccomp listener left is deregistered as the hook would
/// have. A container that merely exited is treated the same: its later poststop
/// deregistration finds nothing left and is answered `ok`. A reused PID keeps a
/// registration alive (harmless: it only watches a cgroup nobody uses).
async fn reap_dead_registrations(shared: Arc<Shared>) {
    let mut suspects: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dead: std::collections::HashSet<String> = shared
            .registry
            .list()
            .into_iter()
            .filter(|r| r.registered && r.listeners == 0)
            .filter(|r| {
                r.pid
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            })
            .map(|r| r.id)
            .collect();
        for id in dead.intersection(&suspects) {
            reap(&shared, id);
        }
        suspects = dead;
    }
}

/// Deregisters a container whose init is gone, as its poststop hook would.
fn reap(shared: &Shared, id: &str) {
    if let Some(record) = api::deregister(shared, id) {
        tracing::warn!(
            container = id,
            pid = record.pid,
            "container deregistered: its init process is gone and no poststop hook came (runtime killed during create?)"
        );
    }
}

/// Takes back what a previous supervisor left: the registrations it saved
/// and the notify fds the keeper holds. Held execs are answered from here on.
fn restore(shared: &Arc<Shared>) {
    // Grants first: whether a restored container's kill is armed depends on them.
    for grant in state::load_grants(&shared.runtime_dir) {
        if shared.grants.restore(grant.clone()) {
            tracing::info!(container = grant.container, "grant restored");
            crate::api::schedule_grant_end(shared, grant);
        }
    }
    for registration in state::load_registrations(&shared.runtime_dir) {
        let alive = registration
            .pid
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            state::forget_registration(&shared.runtime_dir, &registration.id);
            continue;
        }
        shared.registry.register(&registration);
        crate::api::refresh_kernel_kill(shared, &registration.id);
        crate::api::refresh_compat_probe(shared);
        tracing::info!(container = registration.id, "registration restored");
    }
    // Containers that started while no supervisor answered (their environment
    // fails open): the hook's registration is still pending. Attached to the
    // probes now, said once.
    for mut registration in state::load_pending(&shared.runtime_dir) {
        let alive = registration
            .pid
            .is_some_and(|pid| !crate::peer::is_gone(pid));
        if !alive || shared.registry.get(&registration.id).is_some() {
            state::forget_pending(&shared.runtime_dir, &registration.id);
            continue;
        }
        crate::api::attach_registered(shared, &mut registration);
        shared.registry.mark_started_unsupervised(&registration.id);
        tracing::warn!(
            container = registration.id,
            environment = registration.environment,
            "container started while no supervisor answered: attached to the eBPF probes now, without a seccomp listener (restart it to enforce)"
        );
        crate::api::alert_started_unsupervised(shared, &registration.id);
    }
    match keeper::restore(&shared.runtime_dir) {
        Ok(held) => {
            for keeper::HeldListener {
                info,
                notify: fd,
                ledger,
            } in held
            {
                tracing::info!(
                    container = info.container,
                    "seccomp listener restored from the keeper"
                );
                // A keeper of an older supervisor holds no ledger.
                let ledger = ledger.map_or_else(Ledger::private, Ledger::reopen);
                listener::attach(shared, info, fd, ledger, listener::Origin::Keeper);
            }
        }
        Err(err) => tracing::warn!(%err, "nothing restored from the fd keeper"),
    }
}

/// Tells systemd (`Type=notify`) that the sockets accept connections. The
/// protocol is one datagram to `$NOTIFY_SOCKET` (sd_notify(3)); written here
/// rather than pulling in libsystemd for two lines.
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
    let sent = UnixDatagram::unbound().and_then(|socket| match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr)),
        None => socket.send_to(state.as_bytes(), Path::new(&target)),
    });
    if let Err(err) = sent {
        tracing::warn!(%err, "cannot notify systemd");
    }
}

/// Gauges (and counters kept elsewhere) read at scrape time.
fn refresh_gauges(shared: &Shared, metrics: &Metrics) {
    metrics.set_alert_write_failures(shared.alerts.write_failures());
    metrics
        .attached_containers
        .set(i64::try_from(shared.registry.len()).unwrap_or(i64::MAX));
    if let Some(counters) = shared.with_probes(|maps| maps.counters()) {
        metrics.ringbuf_drops.set(counters.ringbuf_drops);
    }
    metrics
        .fail_open_starts
        .set(crate::api::unsupervised_starts(&shared.runtime_dir).len() as u64);
    metrics.degraded.set(i64::from(!shared.health.is_ready()));
}

fn prepare_runtime_dir(dir: &Path) -> Result<(), DaemonError> {
    let err = |source| DaemonError::RuntimeDir {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    // Only root may even look at the sockets.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
    Ok(())
}

fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A previous supervisor's socket: nobody can be listening on it any
            // more once we could not... but check, two supervisors must not race.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(DaemonError::Bind {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another supervisor is listening there",
                    ),
                });
            }
            let _ = fs::remove_file(path);
        }
        Ok(_) => return Err(DaemonError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|source| DaemonError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| {
        DaemonError::Bind {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(listener)
}
