//! The hook API socket: register, deregister, ping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sniffguard_common::policy::Mode;
use sniffguard_common::wire::{
    self, ContainerStatus, Request, Response, StatusReport, MAX_MESSAGE_BYTES,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::peer;
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
    if let Err(why) = peer::require_root(&stream) {
        tracing::warn!(why, "api: refused a client");
        let _ = reply(
            &mut stream,
            &Response::Error {
                message: format!("permission denied: {why}"),
            },
        )
        .await;
        return;
    }
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read).take(MAX_MESSAGE_BYTES as u64 + 1);
    let mut line = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let response = match read {
        Err(_) => return,
        Ok(Err(err)) => {
            tracing::debug!(%err, "api: read failed");
            return;
        }
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => match wire::decode::<Request>(&line) {
            Ok(request) => answer(request, &shared),
            Err(err) => {
                tracing::warn!(%err, "api: bad request");
                Response::Error {
                    message: format!("bad request: {err}"),
                }
            }
        },
    };
    if let Ok(bytes) = wire::encode(&response) {
        let _ = write.write_all(&bytes).await;
    }
}

async fn reply(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let bytes = wire::encode(response).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await
}

fn answer(request: Request, shared: &Shared) -> Response {
    match request {
        Request::Ping {} => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Register(registration) => {
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
            shared.registry.register(&registration);
            if let Some(cgroup_id) = registration.cgroup_id {
                let enforce = policy
                    .environment(&registration.environment)
                    .map(|(_, env)| env.mode == Mode::Enforce)
                    .unwrap_or(true);
                watch_cgroup(shared, &registration.id, cgroup_id, enforce);
            }
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
        Request::Deregister { id } => {
            if let Some(record) = shared.registry.deregister(&id) {
                if let Some(cgroup_id) = record.cgroup_id {
                    // Another registered container may share the cgroup (a
                    // pod's sandbox and its containers): keep watching it then.
                    if shared.registry.by_cgroup(cgroup_id).is_none() {
                        shared.with_probes(|maps| maps.unmonitor(cgroup_id));
                    }
                }
                tracing::info!(container = id, "container deregistered");
            }
            Response::Ok {}
        }
    }
}

/// The supervisor's state for `sniffguard status`.
fn status(shared: &Shared) -> StatusReport {
    let policy = shared.policy.load();
    let mut counters = BTreeMap::new();
    counters.insert("alerts_dropped".to_string(), shared.alerts.dropped());
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
            environment: record.environment,
            id: record.id,
        })
        .collect();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        policy: policy.origin.clone(),
        ebpf: probe_counters.is_some(),
        counters,
        containers,
    }
}

/// Adds a container's cgroup to the in-kernel filter, unless it is a cgroup the
/// host's own processes live in: watching that would report (and in enforce,
/// kill) host processes.
fn watch_cgroup(shared: &Shared, id: &str, cgroup_id: u64, enforce: bool) {
    if host_cgroups().contains(&cgroup_id) {
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

/// The cgroup v2 root and the supervisor's own cgroup.
fn host_cgroups() -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut ids = Vec::new();
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if std::path::Path::new(root)
            .join("cgroup.controllers")
            .exists()
        {
            if let Ok(meta) = std::fs::metadata(root) {
                ids.push(meta.ino());
            }
            if let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") {
                if let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) {
                    if let Ok(meta) = std::fs::metadata(format!("{root}{path}")) {
                        ids.push(meta.ino());
                    }
                }
            }
            break;
        }
    }
    ids
}
