//! The hook API socket: register, deregister, ping, status, grants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sniffguard_common::policy::{Mode, Policy};
use sniffguard_common::wire::{
    self, ContainerStatus, GrantStatus, Registration, Request, Response, StatusReport,
    MAX_MESSAGE_BYTES,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::alert::{Incident, Mechanism};
use crate::classify::Evidence;
use crate::grants::Grant;
use crate::peer::{self, Peer, Role};
use crate::registry::ContainerRecord;
use crate::verdict::Action;
use crate::Shared;

/// A client that sends nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections until the listener fails.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { handle(stream, shared).await });
            }
            Err(err) => {
                tracing::error!(%err, "api socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, shared: Arc<Shared>) {
    let peer = Peer::of(&stream).and_then(|peer| {
        peer::require_root(&stream)?;
        Ok(peer)
    });
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read).take(MAX_MESSAGE_BYTES as u64 + 1);
    let mut line = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    match read {
        Err(_) => return,
        Ok(Err(err)) => {
            tracing::debug!(%err, "api: read failed");
            return;
        }
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => {}
    }
    // Decoded once, then judged by who sent it (the request is read first, so
    // that a refused client is not cut off mid-write and gets the reason).
    let request = wire::decode::<Request>(&line);
    let peer = match peer {
        Ok(peer) => peer,
        Err(why) => {
            if let Ok(bytes) = wire::encode(&refusal(&why)) {
                let _ = write.write_all(&bytes).await;
            }
            return;
        }
    };
    let refused = request.as_ref().ok().and_then(|request| {
        authorise(&peer, request, &shared).err().inspect(|why| {
            refused_attempt(&shared, &peer, request, why);
        })
    });
    let response = match (refused, request) {
        (Some(why), _) => refusal(&why),
        (None, Ok(Request::Subscribe {})) => {
            follow(write, &shared).await;
            return;
        }
        (None, Ok(Request::Recent {})) => {
            recent(write, &shared).await;
            return;
        }
        (None, Ok(request)) => answer(request, &shared, &peer),
        (None, Err(err)) => {
            tracing::warn!(%err, "api: bad request");
            Response::Error {
                message: format!("bad request: {err}"),
            }
        }
    };
    if let Ok(bytes) = wire::encode(&response) {
        let _ = write.write_all(&bytes).await;
    }
}

/// The answer to a refused client, logged.
fn refusal(why: &str) -> Response {
    tracing::warn!(why, "api: refused a client");
    Response::Error {
        message: format!("permission denied: {why}"),
    }
}

/// Streams every alert line to a subscriber until it goes away. A subscriber
/// that falls behind skips the alerts it missed (and is told how many).
async fn follow(mut write: tokio::net::unix::WriteHalf<'_>, shared: &Shared) {
    let mut alerts = shared.alerts.subscribe();
    if let Ok(bytes) = wire::encode(&Response::Ok {}) {
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
    loop {
        let line = match alerts.recv().await {
            Ok(line) => line.to_string(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                format!("{{\"lagged\":{missed}}}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if write.write_all(line.as_bytes()).await.is_err() || write.write_all(b"\n").await.is_err()
        {
            return;
        }
    }
}

/// Sends the alerts kept in memory, oldest first, and ends the stream.
async fn recent(mut write: tokio::net::unix::WriteHalf<'_>, shared: &Shared) {
    let Ok(mut bytes) = wire::encode(&Response::Ok {}) else {
        return;
    };
    for line in shared.alerts.recent() {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    let _ = write.write_all(&bytes).await;
}

/// What a request asks of its peer (see [`peer`]).
fn role_of(request: &Request) -> Role {
    match request {
        Request::Ping {} | Request::Register(_) | Request::Deregister { .. } => Role::Runtime,
        Request::Status {}
        | Request::Grant { .. }
        | Request::Revoke { .. }
        | Request::Subscribe {}
        | Request::Recent {} => Role::Operator,
    }
}

/// The request's short name, for errors and alerts.
fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Ping {} => "ping",
        Request::Register(_) => "register",
        Request::Deregister { .. } => "deregister",
        Request::Status {} => "status",
        Request::Grant { .. } => "grant",
        Request::Revoke { .. } => "revoke",
        Request::Subscribe {} => "subscribe",
        Request::Recent {} => "recent",
    }
}

/// Whether `peer` may make `request`: where it runs (see [`Peer::authorise`]),
/// and for a hook's request, whether it fits the container it names.
fn authorise(peer: &Peer, request: &Request, shared: &Shared) -> Result<(), String> {
    peer.authorise(role_of(request), |cgroup| {
        shared.registry.cgroup_in_use(cgroup)
    })
    .map_err(|why| format!("{} refused: {why}", request_name(request)))?;
    match request {
        Request::Register(registration) => registration_fits(peer, registration, shared),
        Request::Deregister { id } => {
            // The poststop hook runs once the container's init is gone; a live
            // container is never deregistered by its runtime.
            match shared.registry.get(id).and_then(|record| record.pid) {
                Some(pid) if !peer::is_gone(pid) => Err(format!(
                    "deregister refused: container {id} is still running (init pid {pid})"
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// A registration comes from the runtime that is creating the container: the
/// container's init and the hook descend from the same runtime process (the
/// init's parent is an ancestor of the hook). A container already registered
/// with a live init is not taken over by another registration.
fn registration_fits(
    peer: &Peer,
    registration: &Registration,
    shared: &Shared,
) -> Result<(), String> {
    let id = &registration.id;
    if let Some(existing) = shared.registry.get(id).filter(|r| r.registered) {
        let live = existing.pid.filter(|pid| !peer::is_gone(*pid));
        if let Some(pid) = live {
            // A runtime registers once per hook stage, with the same init and
            // environment; anything else is someone else's registration.
            if registration.pid != Some(pid) {
                return Err(format!(
                    "register refused: container {id} is registered with a live init (pid {pid})"
                ));
            }
            if registration.environment != existing.environment {
                return Err(format!(
                    "register refused: container {id} is registered in environment {:?}; a registration cannot move it to {:?}",
                    existing.environment, registration.environment
                ));
            }
        }
    }
    let Some(init) = registration.pid else {
        return Ok(());
    };
    let runtime = peer::parent_of(init).ok_or_else(|| {
        format!("register refused: the container's init (pid {init}) is not there")
    })?;
    let mut ancestor = peer.pid;
    for _ in 0..MAX_HOOK_DEPTH {
        match ancestor {
            Some(pid) if pid == runtime => return Ok(()),
            Some(pid) if pid > 1 => ancestor = peer::parent_of(pid),
            _ => break,
        }
    }
    Err(format!(
        "register refused: the peer is not a hook of the runtime that created container {id} (its init's parent, pid {runtime}, is not among the peer's ancestors)"
    ))
}

/// How far up from a hook its runtime may be (wrappers between them).
const MAX_HOOK_DEPTH: usize = 8;

/// Logs and alerts a refused request: someone tried to talk to the
/// supervisor from where it may not.
fn refused_attempt(shared: &Shared, peer: &Peer, request: &Request, why: &str) {
    tracing::warn!(peer = peer.describe(), why, "api: refused a request");
    let container = peer
        .cgroup_id
        .and_then(|cgroup| shared.registry.by_cgroup(cgroup));
    shared.alerts.raise(Incident::about(
        &shared.policy.load(),
        container,
        peer.pid,
        (Action::Denied, Mechanism::Api, "connect"),
        Evidence::SupervisorRequest {
            request: request_name(request).to_string(),
            refused_because: why.to_string(),
        },
    ));
}

fn answer(request: Request, shared: &Arc<Shared>, peer: &Peer) -> Response {
    match request {
        Request::Ping {} => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Register(mut registration) => {
            if let Err(err) = wire::validate_container_id(&registration.id) {
                return Response::Error {
                    message: err.to_string(),
                };
            }
            let policy = shared.policy.load();
            if let Err(err) = policy.environment(&registration.environment) {
                return Response::Error {
                    message: err.to_string(),
                };
            }
            attach_registered(shared, &mut registration);
            tracing::info!(
                container = registration.id,
                environment = registration.environment,
                pid = registration.pid,
                cgroup_id = registration.cgroup_id,
                "container registered"
            );
            Response::Ok {}
        }
        Request::Status {} => Response::Status(status(shared)),
        Request::Grant {
            container,
            seconds,
            by,
            reason,
        } => {
            // Who asked is what the kernel says of the peer; `--by` is a note.
            let asked_by = peer.describe();
            grant(
                shared,
                &container,
                seconds,
                &format!("{asked_by}; note: {by}"),
                &reason,
            )
        }
        Request::Revoke { container } => {
            // A grant outlives nothing it names: a container already gone
            // still has its grant revoked by its full id.
            let container = resolve_container(shared, &container).unwrap_or(container);
            if shared.grants.revoke(&container) {
                tracing::info!(container, "grant revoked");
                crate::state::save_grants(&shared.runtime_dir, &shared.grants.list());
                grant_ended(shared, &container);
            }
            Response::Ok {}
        }
        // Handled by the connection loop before it gets here.
        Request::Subscribe {} | Request::Recent {} => Response::Error {
            message: "alerts are sent as a stream".into(),
        },
        Request::Deregister { id } => {
            if deregister(shared, &id).is_some() {
                tracing::info!(container = id, "container deregistered");
            }
            Response::Ok {}
        }
    }
}

/// Attaches a registered container: gives it a cgroup identity of its own
/// where the runtime made none, records and saves it, drops the registration
/// the hook left pending, and puts it in the kernel's filter. What a hook's
/// registration does, and what a restarted supervisor does for a container
/// that started while it was away.
pub fn attach_registered(shared: &Shared, registration: &mut Registration) {
    // The hook of a runtime that runs with the v2 hierarchy hidden (crun on a
    // hybrid host) cannot give the container a cgroup identity; the
    // supervisor, which sees it, does.
    let shared_cgroup = registration
        .cgroup_id
        .is_none_or(|id| sniffguard_common::cgroups::host_cgroup_ids().contains(&id));
    if shared_cgroup {
        if let Some(pid) = registration.pid {
            registration.cgroup_id =
                match sniffguard_common::cgroups::own_cgroup(pid, &registration.id) {
                    Ok(id) => Some(id),
                    Err(why) => {
                        // Without a cgroup of its own the eBPF probes cannot
                        // tell the container from the host.
                        tracing::warn!(
                            container = registration.id,
                            why,
                            "container has no cgroup v2 identity: the eBPF probes do not see it"
                        );
                        None
                    }
                };
        }
    }
    shared.registry.register(registration);
    crate::state::save_registration(&shared.runtime_dir, registration);
    crate::state::forget_pending(&shared.runtime_dir, &registration.id);
    refresh_kernel_kill(shared, &registration.id);
    refresh_compat_probe(shared);
}

/// Forgets a container: what [`Request::Deregister`] (the poststop hook) does,
/// and what the supervisor does itself for a container whose init died before
/// any hook could deregister it.
///
/// Removes the saved registration and the cgroup the supervisor made for the
/// container, marks the registry record gone and takes its cgroup out of the
/// eBPF filter — unless another registered container shares that cgroup (a
/// pod's sandbox and its containers). Idempotent: a container already forgotten
/// (or never known) is left as it is.
///
/// Returns the record that was deregistered, or `None` when there was none, so
/// that the caller can log the deregistration in its own words.
pub fn deregister(shared: &Shared, id: &str) -> Option<ContainerRecord> {
    crate::state::forget_registration(&shared.runtime_dir, id);
    sniffguard_common::cgroups::remove_own_cgroup(id);
    let record = shared.registry.deregister(id)?;
    if let Some(cgroup_id) = record.cgroup_id {
        // Another registered container may share the cgroup (a pod's sandbox
        // and its containers): keep watching it then.
        if !shared.registry.cgroup_in_use(cgroup_id) {
            shared.with_probes(|maps| maps.unmonitor(cgroup_id));
        }
    }
    refresh_compat_probe(shared);
    Some(record)
}

/// Whether the exec probe may kill catalogued names in this container on its
/// own: only in enforce environments, and not where an allow rule could let a
/// sniffer through (user space, which knows the rule, decides there).
fn kernel_may_kill(
    policy: &Policy,
    environment: &str,
    annotations: &BTreeMap<String, String>,
) -> bool {
    let enforce = policy
        .environment(environment)
        .map(|(_, env)| env.mode == Mode::Enforce)
        .unwrap_or(true);
    let excepted = policy.allow.iter().any(|rule| {
        rule.environment
            .as_ref()
            .is_none_or(|e| e.get_ref() == environment)
            && rule.selector.matches(annotations)
    });
    enforce && !excepted
}

/// Grants a break-glass exception, lifts the in-kernel kill for the container
/// and schedules its return when the grant ends.
/// The attached container `name` means: its full id, a prefix of exactly one
/// id, or the name the runtime gave it (Kubernetes', containerd's or Podman's
/// annotation). Anything else is an error naming what was tried: a grant that
/// silently matched nothing would tell the operator "allowed" and allow nothing.
fn resolve_container(shared: &Shared, name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("no container named".into());
    }
    let records = shared.registry.list();
    if records.iter().any(|r| r.id == name) {
        return Ok(name.to_string());
    }
    let by_prefix: Vec<&ContainerRecord> =
        records.iter().filter(|r| r.id.starts_with(name)).collect();
    let by_name: Vec<&ContainerRecord> = records
        .iter()
        .filter(|r| {
            sniffguard_common::policy::keys::CONTAINER_KEYS
                .iter()
                .any(|k| r.annotations.get(*k).is_some_and(|v| v == name))
        })
        .collect();
    let mut candidates: Vec<&str> = by_prefix
        .iter()
        .chain(by_name.iter())
        .map(|r| r.id.as_str())
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(format!(
            "no attached container has the id, id prefix or name {name:?} (`sniffguard status` lists them)"
        )),
        many => Err(format!(
            "{name:?} matches {} containers ({}); give more of the id",
            many.len(),
            many.join(", ")
        )),
    }
}

fn grant(shared: &Arc<Shared>, container: &str, seconds: u64, by: &str, reason: &str) -> Response {
    let container = match resolve_container(shared, container) {
        Ok(id) => id,
        Err(message) => return Response::Error { message },
    };
    let container = container.as_str();
    let duration = Duration::from_secs(seconds);
    let granted = match shared.grants.grant(container, duration, by, reason) {
        Ok(granted) => granted,
        Err(err) => {
            return Response::Error {
                message: err.to_string(),
            }
        }
    };
    tracing::warn!(
        container,
        by,
        reason,
        seconds,
        "break-glass grant: sniffers allowed"
    );
    crate::state::save_grants(&shared.runtime_dir, &shared.grants.list());
    refresh_kernel_kill(shared, container);
    schedule_grant_end(shared, granted);
    Response::Ok {}
}

/// Ends `grant` when its time is up (unless it was replaced or revoked first).
pub fn schedule_grant_end(shared: &Arc<Shared>, grant: Grant) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let left = grant
            .until
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(left + Duration::from_millis(10)).await;
        if shared.grants.active(&grant.container).is_none() {
            tracing::info!(container = grant.container, "grant expired");
            crate::state::save_grants(&shared.runtime_dir, &shared.grants.list());
            grant_ended(&shared, &grant.container);
        }
    });
}

/// The one answer to "is the in-kernel kill armed for this container": in an
/// enforce environment, unless an `[[allow]]` rule could let a sniffer through
/// there or a break-glass grant is in force. Registration, a grant's start and
/// end, a restart's restore and a policy reload all set the kernel's filter
/// from here. A container without a cgroup identity is not in the filter.
pub fn kernel_kill_armed(shared: &Shared, record: &ContainerRecord) -> bool {
    let policy = shared.policy.load();
    kernel_may_kill(&policy, &record.environment, &record.annotations)
        && shared.grants.active(&record.id).is_none()
}

/// Puts the container's cgroup in the kernel's filter with the kill armed or
/// not, as [`kernel_kill_armed`] says.
pub fn refresh_kernel_kill(shared: &Shared, container: &str) {
    let Some(record) = shared.registry.get(container) else {
        return;
    };
    if let Some(cgroup_id) = record.cgroup_id {
        watch_cgroup(
            shared,
            container,
            cgroup_id,
            kernel_kill_armed(shared, &record),
        );
    }
}

/// Attaches the compat socket probe while at least one registered container
/// is in an audit environment, and detaches it when none is
/// ([`crate::probe::CompatProbe`]). Called after every registration (before
/// the hook gets its answer, so before the container's process runs), every
/// deregistration and every policy reload.
pub fn refresh_compat_probe(shared: &Shared) {
    let policy = shared.policy.load();
    let audited = shared.registry.any_live(|record| {
        policy
            .environment(&record.environment)
            .is_ok_and(|(_, env)| env.mode == sniffguard_common::policy::Mode::Audit)
    });
    shared.with_probes(|maps| {
        let compat = &mut maps.compat;
        if compat.always || audited == compat.link.is_some() {
            return;
        }
        if !audited {
            compat.link = None;
            tracing::info!("compat socket probe detached: no audit container runs");
            return;
        }
        let attached = match (compat.program.as_ref(), shared.netbroker.as_ref()) {
            (Some(program), Some(broker)) => broker
                .attach_sys_enter(std::os::fd::AsFd::as_fd(program))
                .map_err(|errno| errno.to_string()),
            (None, _) => Err("the program was not loaded".to_string()),
            (_, None) => Err("no network broker".to_string()),
        };
        match attached {
            Ok(link) => {
                compat.link = Some(link);
                tracing::info!("compat socket probe attached: an audit container runs");
            }
            Err(why) => tracing::warn!(
                why,
                "compat socket probe not attached: i386 and x32 capture sockets are not seen in audit containers"
            ),
        }
    });
}

/// A grant ended (expired or revoked): the kill is armed again and the
/// captures the grant let start are ended.
fn grant_ended(shared: &Shared, container: &str) {
    refresh_kernel_kill(shared, container);
    if let Some(record) = shared.registry.get(container) {
        if kernel_kill_armed(shared, &record) {
            end_captures_past_grant(shared, &record);
        }
    }
}

/// Ends the captures a grant let start: every process of the container that
/// still holds a capture socket when the grant ends is killed, and each is
/// alerted. Without this, a capture started under the grant would outlive it.
fn end_captures_past_grant(shared: &Shared, record: &ContainerRecord) {
    let Some(init) = record.pid else {
        return;
    };
    for pid in crate::sweep::capture_holders(init) {
        // Described before the kill: a dead process has no /proc to read.
        let mut incident = Incident::about(
            &shared.policy.load(),
            Some(record.clone()),
            Some(pid),
            (Action::Killed, Mechanism::GrantEnd, "socket"),
            Evidence::PacketSocket {
                family: "a capture socket still held when the grant ended".into(),
                socket_type: 0,
            },
        );
        let killed = crate::respond::kill_process(pid);
        tracing::warn!(
            container = record.id,
            pid,
            ?killed,
            "capture held past its grant ended"
        );
        if killed.is_err() {
            continue;
        }
        incident.responses.push("kill".into());
        shared.alerts.raise(incident);
    }
}

/// The supervisor's state for `sniffguard status`.
fn status(shared: &Shared) -> StatusReport {
    let policy = shared.policy.load();
    let mut counters = BTreeMap::new();
    counters.insert("alerts_dropped".to_string(), shared.alerts.dropped());
    counters.insert(
        "forensics_written".to_string(),
        shared.forensics_budget.written(),
    );
    counters.insert(
        "forensics_skipped".to_string(),
        shared.forensics_budget.skipped(),
    );
    counters.insert(
        "alert_write_failures".to_string(),
        shared.alerts.write_failures(),
    );
    counters.insert(
        "subscribers".to_string(),
        shared.alerts.subscribers() as u64,
    );
    counters.insert(
        "alerts_suppressed".to_string(),
        shared.metrics.alerts_suppressed.get(),
    );
    counters.insert(
        "webhook_failures".to_string(),
        shared.metrics.webhook_failures.get(),
    );
    let probe_counters = shared.with_probes(|maps| maps.counters());
    if let Some(c) = probe_counters {
        counters.insert("ringbuf_drops".to_string(), c.ringbuf_drops);
        counters.insert("probe_events".to_string(), c.events);
        counters.insert("kernel_kills".to_string(), c.kernel_kills);
    }
    let containers = shared
        .registry
        .list()
        .into_iter()
        .map(|record| ContainerStatus {
            mode: policy
                .environment(&record.environment)
                .map(|(_, env)| env.mode.as_str().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            seccomp: record.listeners > 0,
            registered: record.registered,
            cgroup_id: record.cgroup_id,
            since: humantime::format_rfc3339_seconds(record.since).to_string(),
            environment_chosen_by: record.environment_chosen_by.clone().unwrap_or_else(|| {
                crate::alert::environment_chosen_by(
                    &policy,
                    &record.environment,
                    Some(&record.annotations),
                )
            }),
            capabilities_dropped: crate::alert::capabilities_dropped(&record.annotations),
            environment: record.environment,
            id: record.id,
        })
        .collect();
    let grants = shared
        .grants
        .list()
        .into_iter()
        .map(|g| GrantStatus {
            until: humantime::format_rfc3339_seconds(g.until).to_string(),
            container: g.container,
            by: g.by,
            reason: g.reason,
        })
        .collect();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        policy: policy.origin.clone(),
        ebpf: probe_counters.is_some(),
        counters,
        containers,
        grants,
        unsupervised: unsupervised_starts(&shared.runtime_dir)
            .into_iter()
            .chain(shared.registry.list().into_iter().filter(|r| r.started_unsupervised).map(|r| {
                format!(
                    "{} ({}): started while no supervisor answered; attached to the eBPF probes since, without a seccomp listener",
                    r.id, r.environment
                )
            }))
            .collect(),
        degraded: shared.health.problems(),
    }
}

/// Raises the one alert about a container that started while no supervisor
/// answered and is attached now.
pub fn alert_started_unsupervised(shared: &Shared, id: &str) {
    let Some(record) = shared.registry.get(id) else {
        return;
    };
    let pid = record.pid;
    shared.alerts.raise(Incident::about(
        &shared.policy.load(),
        Some(record),
        pid,
        (Action::Allowed, Mechanism::Reattach, "none"),
        Evidence::StartedUnsupervised {
            reason: "the container started while no supervisor answered (its environment fails open); it is attached to the eBPF probes now, without a seccomp listener: restart it to enforce".into(),
        },
    ));
}

/// Containers the shim started without supervision (its spool of notes).
pub fn unsupervised_starts(runtime_dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(sniffguard_common::paths::unsupervised_dir(runtime_dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
    names.sort();
    names
}

/// Adds a container's cgroup to the in-kernel filter, unless it is a cgroup the
/// host's own processes live in: watching that would report (and in enforce,
/// kill) host processes.
fn watch_cgroup(shared: &Shared, id: &str, cgroup_id: u64, enforce: bool) {
    if sniffguard_common::cgroups::host_cgroup_ids().contains(&cgroup_id) {
        tracing::warn!(
            container = id,
            cgroup_id,
            "container shares a host cgroup v2; eBPF detection is unavailable for it"
        );
        return;
    }
    if let Some(Err(err)) = shared.with_probes(|maps| maps.monitor(cgroup_id, enforce)) {
        tracing::error!(container = id, %err, "cannot add the container to the eBPF filter");
    }
}
