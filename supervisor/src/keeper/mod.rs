//! The fd keeper: a small process that holds a copy of every seccomp notify fd,
//! so that a supervisor restart costs no enforcement.
//!
//! The kernel fails every notified syscall with `ENOSYS` once no process holds
//! the listener fd any more. The keeper holds one: while the supervisor is
//! down, a watched exec in an enforced container simply waits; the next
//! supervisor asks the keeper for the fds back (`restore`) and answers the
//! waiting calls. The keeper never reads notifications, so it never competes
//! with the supervisor for them; it drops an fd once its filter has no users
//! left (`POLLHUP`), and exits when it holds nothing and nobody has talked to it
//! for a while.
//!
//! Two lifecycles (see the README's "Restarts"):
//! - *spawned* ([`ensure_running`]): `sniffguard run` starts the keeper as its
//!   own child in a session of its own, and it exits once it has held nothing
//!   for `IDLE_EXIT` (10 s). That survives a restart wherever only the supervisor's
//!   process is stopped (systemd with `KillMode=process`, a shell).
//! - *resident* (`sniffguard keeper --resident`): a process of its own, started
//!   by whatever runs the node's services, that never exits when idle. On
//!   Kubernetes it is its own DaemonSet (the Helm chart's `templates/keeper.yaml`). A
//!   keeper spawned inside the supervisor's container cannot outlive it: with
//!   `hostPID`, the container has no pid namespace of its own, so when its init
//!   exits containerd's runc shim kills every process in the container's cgroup
//!   (`runc kill --all`), the keeper too, and every enforced container's
//!   watched syscalls fail with `ENOSYS`. A pod of its own is the one lifecycle
//!   that needs nothing more from the node: moving into a host cgroup would need
//!   the host's cgroup namespace (a non-privileged pod on cgroup v2 has a
//!   private one, and `nsdelegate` confines its moves to it), and a systemd
//!   scope would need the node's D-Bus and a systemd that not every node runs.
//!
//! A keeper that starts while another answers on the socket takes over from it
//! without dropping an fd (`take_over`): it binds a socket of its own beside
//! the public one, asks the old keeper to hand over (`handover`: the old keeper
//! sends what it holds and forwards whatever it is given later), and only then
//! renames its socket over the public path. The old keeper notices that the
//! path is no longer its socket and retires: a spawned one exits, a resident
//! one lets go of its fds and waits to be stopped (its pod is being replaced;
//! exiting would only make its restart take the fds back). A keeper that does
//! not know `hello` (protocol 1) is asked for copies (`restore`) instead.
//!
//! Its rooms:
//! - `protocol.rs`: the wire, that is the messages and their versions, sending
//!   and receiving a message with its fds, and the requests either side sends
//!   (`hello`, `restore`, `handover`, one `keep`);
//! - `process.rs`: the keeper process, that is taking over, the serve loop,
//!   letting go of fds, retiring and leaving idle;
//! - `handed.rs`: the supervisor's copies of what it handed over, given again to
//!   a keeper that restarts empty;
//! - this file: what the supervisor calls, that is starting a keeper
//!   ([`ensure_running`]), handing it a listener ([`keep`]) and taking
//!   everything back ([`restore`]).

mod handed;
mod process;
mod protocol;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use handed::{watch, WATCH_INTERVAL};
pub use process::{run, Lifecycle};
use protocol::{ask_for_all, connect, listener_fds, send, Message};
pub use protocol::{
    hello, socket, KeeperError, KeeperFacts, ListenerInfo, KEEPER_SOCKET, PROTOCOL,
};

/// A listener as the keeper holds it.
#[derive(Debug)]
pub struct HeldListener {
    /// Which container it serves.
    pub info: ListenerInfo,
    /// The seccomp notify fd.
    pub notify: OwnedFd,
    /// Its in-flight ledger, if it was handed one.
    pub ledger: Option<OwnedFd>,
}

/// Hands a copy of `fd` (and of its in-flight ledger) to the keeper, starting
/// a keeper first when none answers: one that held nothing for `IDLE_EXIT`
/// has gone (a supervisor idle since start-up, or whose containers all went),
/// and without this the next container's fd would be held by nobody but the
/// supervisor.
pub fn keep(
    runtime_dir: &Path,
    listener: &ListenerInfo,
    fd: &OwnedFd,
    ledger: Option<&OwnedFd>,
) -> Result<(), KeeperError> {
    let stream = match connect(runtime_dir) {
        Ok(stream) => stream,
        Err(_) => {
            // One start at a time: concurrent listeners must not start two keepers
            // that take the socket from each other (the first one's fds would
            // then be out of reach of `restore`).
            static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _starting = STARTING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ensure_running(runtime_dir)?;
            connect(runtime_dir)?
        }
    };
    let mut listener = serde_json::to_value(listener).map_err(|e| KeeperError::Protocol {
        path: socket(runtime_dir),
        what: e.to_string(),
    })?;
    listener["key"] = Value::String(handed::next_key());
    handed::remember(&listener, fd, ledger);
    send(
        &stream,
        &Message::Keep { listener },
        &listener_fds(fd, ledger),
    )
    .map_err(|source| KeeperError::Io {
        path: socket(runtime_dir),
        source,
    })
}

/// Takes back (copies of) every listener the keeper holds. A description this
/// build cannot read is left with the keeper (and logged).
pub fn restore(runtime_dir: &Path) -> Result<Vec<HeldListener>, KeeperError> {
    let kept = ask_for_all(&socket(runtime_dir), &Message::Restore)?;
    for k in &kept {
        handed::remember(&k.listener, &k.notify, k.ledger.as_ref());
    }
    Ok(kept
        .into_iter()
        .filter_map(|k| match serde_json::from_value(k.listener.clone()) {
            Ok(info) => Some(HeldListener {
                info,
                notify: k.notify,
                ledger: k.ledger,
            }),
            Err(err) => {
                tracing::error!(%err, listener = %k.listener, "the fd keeper holds a listener this supervisor cannot read; its container's watched syscalls wait until it is gone");
                None
            }
        })
        .collect())
}

/// Starts a keeper for `runtime_dir` unless one answers there already.
pub fn ensure_running(runtime_dir: &Path) -> Result<(), KeeperError> {
    if UnixStream::connect(socket(runtime_dir)).is_ok() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| KeeperError::Start(e.to_string()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(runtime_dir.join("keeper.log"))
        .map_err(|e| KeeperError::Start(e.to_string()))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("keeper")
        .arg("--runtime-dir")
        .arg(runtime_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory; it detaches the
    // keeper from the supervisor's session so that signals to the supervisor's
    // process group (a terminal's Ctrl-C, systemd's KillMode=process) leave it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| KeeperError::Start(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if UnixStream::connect(socket(runtime_dir)).is_ok() {
            // The keeper outlives us on purpose and exits when idle. It stays
            // our child (setsid changes its session, not its parent): wait for
            // it aside, or every keeper that leaves idle stays a zombie.
            let reaper = std::thread::Builder::new()
                .name("sniffguard-keeper-wait".into())
                .spawn(move || {
                    let _ = child.wait();
                });
            if let Err(err) = reaper {
                tracing::debug!(%err, "cannot wait for the keeper; it becomes a zombie when it exits");
            }
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(KeeperError::Start(format!("exited with {status}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(KeeperError::Start("no socket after 5 s".into()))
}
