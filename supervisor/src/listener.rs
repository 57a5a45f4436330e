//! The seccomp listener socket (the OCI `listenerPath`): runtimes connect here at
//! container create (and at `runc exec`) and pass the seccomp notify fd with
//! `SCM_RIGHTS`, together with a JSON `ContainerProcessState`.

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::{ContainerProcessState, SECCOMP_FD_NAME};
use sniffguard_common::listener::ListenerMetadata;
use sniffguard_common::policy::Policy;
use sniffguard_common::wire::{self, validate_container_id, WireError};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::{UnixListener, UnixStream};

use crate::inflight::{Ledger, LedgerError};
use crate::keeper::ListenerInfo;
use crate::notify::ListenerContext;
use crate::peer;
use crate::Shared;

/// Largest payload accepted: the state carries the container's annotations.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// File descriptors accepted in one message (runtimes send one).
const MAX_FDS: usize = 8;

/// How long a runtime has to deliver its whole payload.
const PAYLOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors receiving a listener payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Reading the socket failed.
    #[error("cannot read the seccomp payload: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel dropped control data (more fds than we made room for).
    #[error("seccomp payload: control data truncated")]
    Truncated,
    /// The payload never completed.
    #[error("seccomp payload: incomplete after {0:?}")]
    Timeout(Duration),
    /// More than [`MAX_PAYLOAD_BYTES`].
    #[error("seccomp payload larger than {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge,
    /// Not a `ContainerProcessState`.
    #[error("seccomp payload is not a valid container process state: {0}")]
    Json(#[from] serde_json::Error),
    /// `fds` does not name a seccomp fd that was actually received.
    #[error("seccomp payload names fds {names:?} but {received} fd(s) arrived")]
    Fds {
        /// The names in the payload.
        names: Vec<String>,
        /// How many fds arrived.
        received: usize,
    },
    /// The container id is unusable.
    #[error("seccomp payload: {0}")]
    Id(#[from] WireError),
    /// The connection closed before anything arrived (a readiness probe).
    #[error("connection closed without a payload")]
    Empty,
}

/// A received payload: the state and the notify fd.
#[derive(Debug)]
pub struct Payload {
    /// The runtime's description of the container process.
    pub state: ContainerProcessState,
    /// The seccomp notify fd.
    pub notify_fd: OwnedFd,
}

/// Accepts runtimes' connections until the listener fails.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { accept_payload(stream, shared).await });
            }
            Err(err) => {
                tracing::error!(%err, "seccomp socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_payload(stream: UnixStream, shared: Arc<Shared>) {
    // Only a runtime on the host hands over notify fds: a process of a watched
    // container (or of another pid namespace) that reaches the socket must not
    // attach a filter of its own choosing. A runtime sends its fd and exits
    // without waiting for an answer, so its /proc entry may be gone by now
    // (measured: 6 of 100 simultaneous starts): a peer that can no longer be
    // read is let through — refusing it would fail that container's watched
    // syscalls — and one that can be read is judged.
    let allowed = peer::Peer::of(&stream).and_then(|peer| {
        if peer.pid_ns.is_none() && peer.uid == 0 {
            tracing::debug!(
                peer = peer.describe(),
                "seccomp socket: the peer is gone already"
            );
            return Ok(());
        }
        peer.authorise(peer::Role::Runtime, |cgroup| {
            shared.registry.cgroup_in_use(cgroup)
        })
        .map_err(|why| format!("{}: {why}", peer.describe()))
    });
    if let Err(why) = allowed {
        tracing::warn!(why, "seccomp socket: refused a client");
        return;
    }
    let payload = match tokio::time::timeout(PAYLOAD_TIMEOUT, receive(stream)).await {
        Err(_) => Err(PayloadError::Timeout(PAYLOAD_TIMEOUT)),
        Ok(result) => result,
    };
    let payload = match payload {
        Ok(payload) => payload,
        Err(PayloadError::Empty) => return,
        Err(err) => {
            // Dropping the fd makes the runtime's notified syscalls fail with
            // ENOSYS: the container does not run unsupervised.
            tracing::error!(%err, "seccomp payload refused; the container's watched syscalls will fail");
            return;
        }
    };
    let policy = shared.policy.load();
    let annotations = wire::annotation_map(payload.state.state().annotations().as_ref());
    let metadata = ListenerMetadata::parse(payload.state.metadata().as_deref().unwrap_or_default());
    let Some(environment) = environment_of(&policy, Some(&metadata.environment), &annotations)
    else {
        tracing::error!(
            container = payload.state.state().id(),
            metadata = payload.state.metadata().as_deref(),
            "seccomp payload names no environment of the policy; refusing its notify fd"
        );
        return;
    };
    let id = payload.state.state().id().to_string();
    shared
        .registry
        .listener_attached(&id, &environment, &annotations);
    tracing::info!(
        container = id,
        environment,
        pid = payload.state.pid(),
        "seccomp listener attached"
    );
    let info = ListenerInfo {
        container: id,
        environment,
        annotations,
        socket_rules: metadata.socket_rules,
    };
    let origin = Origin::Runtime {
        root_changes_notified: metadata.root_changes_notified,
    };
    attach(&shared, info, payload.notify_fd, Ledger::create(), origin);
}

/// Where a notify fd comes from.
pub enum Origin {
    /// Handed over by a runtime just now: the fd keeper gets a copy, so that
    /// a restarted supervisor finds it again.
    Runtime {
        /// See [`ListenerContext::root_changes_notified`].
        root_changes_notified: bool,
    },
    /// Taken back from the fd keeper after a restart. What the container did
    /// while no supervisor read its notifications is not known, so its root is
    /// looked up per exec from now on.
    Keeper,
}

/// Attaches a notify fd to the container `info` names: the registry learns
/// that a listener decides for it, the fd gets its ledger of notifications
/// in flight (`ledger`: a new one, or the one the keeper held), a runtime's fd
/// goes to the keeper, and a worker thread serves it.
pub fn attach(
    shared: &Arc<Shared>,
    info: ListenerInfo,
    notify_fd: OwnedFd,
    ledger: Result<Ledger, LedgerError>,
    origin: Origin,
) {
    shared
        .registry
        .listener_attached(&info.container, &info.environment, &info.annotations);
    let Some(ledger) = Ledger::or_private(ledger, &info.container) else {
        // Nothing serves the fd. A runtime's is dropped here, which fails the
        // container's watched syscalls (ENOSYS); a restored one stays with the
        // keeper, and those syscalls wait until the container is killed.
        shared.registry.listener_detached(&info.container);
        return;
    };
    let root_changes_notified = match origin {
        Origin::Runtime {
            root_changes_notified,
        } => {
            if let Err(err) =
                crate::keeper::keep(&shared.runtime_dir, &info, &notify_fd, ledger.memfd())
            {
                tracing::warn!(container = info.container, %err, "fd keeper unavailable: a supervisor restart would fail this container's watched syscalls");
            }
            root_changes_notified
        }
        Origin::Keeper => false,
    };
    let context = ListenerContext {
        container_id: info.container,
        environment: info.environment,
        annotations: info.annotations,
        root_changes_notified,
        socket_rules: info.socket_rules,
    };
    shared
        .notify
        .serve(notify_fd, ledger, context, shared.clone());
}

/// The environment a listener serves: the shim writes it into
/// `listenerMetadata`; a profile written by hand may leave it out, and then the
/// container's annotations decide, as they did for the shim.
fn environment_of(
    policy: &Policy,
    metadata: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    policy
        .resolve(metadata, annotations)
        .ok()
        .map(|resolved| resolved.name.to_string())
}

/// Reads one payload: the first message carries the fds, the JSON may continue
/// in later reads until it parses or the peer closes.
pub async fn receive(stream: UnixStream) -> Result<Payload, PayloadError> {
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut data = vec![0u8; 64 * 1024];
    let first = loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || {
            recv_with_fds(stream.as_raw_fd(), &mut data, &mut fds)
        }) {
            Ok(n) => break n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) if err.kind() == std::io::ErrorKind::InvalidData => {
                return Err(PayloadError::Truncated)
            }
            Err(err) => return Err(err.into()),
        }
    };
    data.truncate(first);
    if first == 0 && fds.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut stream = stream;
    loop {
        match parse_payload(&data, &mut fds) {
            Ok(payload) => return Ok(payload),
            Err(PayloadError::Json(err)) if err.is_eof() => {}
            Err(err) => return Err(err),
        }
        let mut more = [0u8; 16 * 1024];
        let n = stream.read(&mut more).await?;
        if n == 0 {
            return parse_payload(&data, &mut fds);
        }
        if data.len() + n > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::TooLarge);
        }
        data.extend_from_slice(&more[..n]);
    }
}

fn recv_with_fds(socket: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: the kernel just installed `fd` in this process through
                // SCM_RIGHTS; nothing else refers to it, so taking ownership here
                // is the only way it gets closed.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidData));
    }
    Ok(msg.bytes)
}

/// Parses and checks a payload, taking the seccomp fd out of `fds`.
pub fn parse_payload(data: &[u8], fds: &mut Vec<OwnedFd>) -> Result<Payload, PayloadError> {
    if data.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge);
    }
    let state: ContainerProcessState = serde_json::from_slice(data)?;
    validate_container_id(state.state().id())?;
    let names = state.fds().clone();
    let index = names.iter().position(|n| n == SECCOMP_FD_NAME);
    match index {
        Some(i) if i < fds.len() && names.len() == fds.len() => {
            let notify_fd = fds.swap_remove(i);
            Ok(Payload { state, notify_fd })
        }
        _ => Err(PayloadError::Fds {
            names,
            received: fds.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    const RUNC: &[u8] = br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":4242,"metadata":"staging","state":{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{"sniffguard.io/environment":"staging"}}}"#;

    #[test]
    fn runtime_payload_parses() {
        let mut fds = vec![fd()];
        let payload = parse_payload(RUNC, &mut fds).unwrap();
        assert_eq!(payload.state.state().id(), "c1");
        assert_eq!(payload.state.metadata().as_deref(), Some("staging"));
        assert!(fds.is_empty());
    }

    #[test]
    fn bad_payloads_are_clear_errors() {
        let cases: [(&[u8], usize); 6] = [
            (b"", 1),
            (b"{\"fds\":[\"seccompFd\"]", 1),
            (
                br#"{"fds":["seccompFd"],"pid":1,"state":{"id":"c1","bundle":"/b"}}"#,
                0,
            ),
            (
                br#"{"fds":["other"],"pid":1,"state":{"id":"c1","bundle":"/b"}}"#,
                1,
            ),
            (
                br#"{"fds":["seccompFd"],"pid":1,"state":{"id":"../x","bundle":"/b"}}"#,
                1,
            ),
            (br#"{"fds":"seccompFd","pid":1,"state":{"id":"c1"}}"#, 1),
        ];
        for (data, nfds) in cases {
            let mut fds: Vec<OwnedFd> = (0..nfds).map(|_| fd()).collect();
            let err = parse_payload(data, &mut fds).unwrap_err().to_string();
            assert!(err.contains("seccomp payload"), "{err}");
        }
        let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(
            parse_payload(&huge, &mut vec![fd()]),
            Err(PayloadError::TooLarge)
        ));
    }

    #[test]
    fn metadata_or_annotations_name_the_environment() {
        let policy = Policy::builtin().unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            environment_of(&policy, Some("staging"), &none).as_deref(),
            Some("staging")
        );
        assert_eq!(environment_of(&policy, Some("nope"), &none), None);
        let annotated = BTreeMap::from([(
            "sniffguard.io/environment".to_string(),
            "production".to_string(),
        )]);
        assert_eq!(
            environment_of(&policy, None, &annotated).as_deref(),
            Some("production")
        );
        assert_eq!(
            environment_of(&policy, Some(""), &none).as_deref(),
            Some("ci")
        );
    }
}
