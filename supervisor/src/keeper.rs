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
//! Protocol on `RUNTIME_DIR/keeper.sock` (root only): one JSON line per
//! message, the fd (if any) attached with `SCM_RIGHTS`. Versioned by
//! [`PROTOCOL`]; a keeper keeps each listener's description verbatim, so a
//! supervisor newer than its keeper gets back every field it handed in.
//! - `{"op":"keep", "listener": {...}}` + the notify fd, then the listener's
//!   in-flight ledger ([`crate::inflight`]) when it has one: hold them. A
//!   listener whose `key` the keeper holds already is dropped (a supervisor
//!   gives a keeper that changed every listener again: `keeper/handed.rs`).
//! - `{"op":"restore"}`: the keeper answers with one `{"op":"held", "listener":
//!   {...}}` message per listener it holds, with the same fds, then closes the
//!   connection.
//! - `{"op":"hello"}` (protocol 2): answered with `{"op":"welcome",
//!   "protocol":N, "version":"...", "resident":bool}`. A protocol 1 keeper
//!   closes the connection instead.
//! - `{"op":"handover", "to": PATH}` (protocol 2): answered like `restore`;
//!   from then on the keeper forwards every `keep` it gets to `PATH` (or, once
//!   that has been renamed, to the public socket), and retires as soon as the
//!   public socket is no longer its own.
//! - Any other op is refused (logged, connection closed).

mod handed;

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sniffguard_common::listener::SocketRules;

/// The keeper's socket inside the runtime directory.
pub const KEEPER_SOCKET: &str = "keeper.sock";

/// The protocol this build speaks (module documentation): 1 had `keep` and
/// `restore` only; 2 adds `hello` and `handover`.
pub const PROTOCOL: u32 = 2;

/// Largest message.
const MAX_MESSAGE: usize = 64 * 1024;

/// The keeper exits after holding nothing for this long.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// What the supervisor needs to serve a restored fd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// The container id.
    pub container: String,
    /// Its environment.
    pub environment: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The base profile's socket rules the supervisor applies for the filter
    /// (see [`sniffguard_common::listener::SocketRules`]); a keeper of an older
    /// supervisor holds none.
    #[serde(default)]
    pub socket_rules: Option<SocketRules>,
}

/// The keeper's messages. A listener travels as the JSON its supervisor wrote:
/// the keeper reads only its `container` (for its log) and hands the rest back
/// untouched, so that fields added by a later supervisor survive an older keeper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Message {
    Keep {
        listener: Value,
    },
    Restore,
    Held {
        listener: Value,
    },
    Hello,
    Welcome {
        protocol: u32,
        version: String,
        resident: bool,
    },
    Handover {
        to: PathBuf,
    },
    /// An op of a later protocol: refused, never mistaken for one of ours.
    #[serde(other)]
    Unknown,
}

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

/// A listener inside the keeper: its description as received, and its fds.
#[derive(Debug)]
struct Kept {
    listener: Value,
    notify: OwnedFd,
    ledger: Option<OwnedFd>,
}

impl Kept {
    /// The container it serves, for the keeper's log.
    fn container(&self) -> &str {
        self.listener
            .get("container")
            .and_then(Value::as_str)
            .unwrap_or("?")
    }
}

/// How a keeper lives (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Started by `sniffguard run`; exits when it has held nothing for a while.
    Spawned,
    /// Started on its own (`--resident`); never exits when idle.
    Resident,
}

/// What a keeper says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperFacts {
    /// Its process id, from the socket's peer credentials.
    pub pid: Option<u32>,
    /// The protocol it speaks: 1 when it does not know `hello`.
    pub protocol: u32,
    /// Its program's version, when it says.
    pub version: Option<String>,
    /// Whether it was started on its own (`--resident`).
    pub resident: bool,
}

/// Errors talking to the keeper.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// Socket trouble.
    #[error("fd keeper at {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The keeper did not start.
    #[error("fd keeper did not start: {0}")]
    Start(String),
    /// A keeper answered something this build cannot use.
    #[error("fd keeper at {path}: unexpected answer: {what}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What came.
        what: String,
    },
}

/// The keeper socket of `runtime_dir`.
pub fn socket(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(KEEPER_SOCKET)
}

fn send(stream: &UnixStream, message: &Message, fds: &[RawFd]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&line)],
        &cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

/// Receives one message and the fds that came with it, in order; `None` at
/// end of stream.
fn receive(stream: &UnixStream) -> std::io::Result<Option<(Message, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: SCM_RIGHTS just installed `raw` in this process and
                // nothing else refers to it: owning it is the only way it closes.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    let n = msg.bytes;
    if n == 0 {
        return Ok(None);
    }
    let line = &buf[..n];
    let message = serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Some((message, fds)))
}

fn connect_to(path: &Path) -> Result<UnixStream, KeeperError> {
    let stream = UnixStream::connect(path).map_err(|source| KeeperError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let timeout = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    Ok(stream)
}

fn connect(runtime_dir: &Path) -> Result<UnixStream, KeeperError> {
    connect_to(&socket(runtime_dir))
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

/// Sends one `keep` (a listener this supervisor handed over before) to the
/// keeper of `runtime_dir`, without starting one.
fn send_keep(
    runtime_dir: &Path,
    listener: &Value,
    fd: &OwnedFd,
    ledger: Option<&OwnedFd>,
) -> Result<(), KeeperError> {
    let stream = connect(runtime_dir)?;
    send(
        &stream,
        &Message::Keep {
            listener: listener.clone(),
        },
        &listener_fds(fd, ledger),
    )
    .map_err(|source| KeeperError::Io {
        path: socket(runtime_dir),
        source,
    })
}

pub use handed::{watch, WATCH_INTERVAL};

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

/// Sends `request` (`restore` or `handover`) to the keeper at `path` and
/// collects the `held` answers until it closes the connection.
fn ask_for_all(path: &Path, request: &Message) -> Result<Vec<Kept>, KeeperError> {
    let io = |source| KeeperError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = connect_to(path)?;
    send(&stream, request, &[]).map_err(io)?;
    let mut out = Vec::new();
    while let Some((message, fds)) = receive(&stream).map_err(io)? {
        if let Some(kept) = kept_listener(message, fds) {
            out.push(kept);
        }
    }
    Ok(out)
}

/// Asks the keeper of `runtime_dir` who it is. A keeper that closes the
/// connection without an answer speaks protocol 1 (it was spawned: there was
/// no other kind then).
pub fn hello(runtime_dir: &Path) -> Result<KeeperFacts, KeeperError> {
    hello_at(&socket(runtime_dir))
}

fn hello_at(path: &Path) -> Result<KeeperFacts, KeeperError> {
    let io = |source| KeeperError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = connect_to(path)?;
    let pid =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .ok()
            .and_then(|cred| u32::try_from(cred.pid()).ok());
    send(&stream, &Message::Hello, &[]).map_err(io)?;
    match receive(&stream) {
        Ok(Some((
            Message::Welcome {
                protocol,
                version,
                resident,
            },
            _,
        ))) => Ok(KeeperFacts {
            pid,
            protocol,
            version: Some(version),
            resident,
        }),
        // A protocol 1 keeper fails to parse `hello` and hangs up, with or
        // without a reset.
        Ok(None) | Err(_) => Ok(KeeperFacts {
            pid,
            protocol: 1,
            version: None,
            resident: false,
        }),
        Ok(Some((other, _))) => Err(KeeperError::Protocol {
            path: path.to_path_buf(),
            what: format!("{other:?}"),
        }),
    }
}

/// The fds a `keep` or `held` message carries: the notify fd first, then the
/// ledger ([`kept_listener`] reads them in that order).
fn listener_fds(notify: &OwnedFd, ledger: Option<&OwnedFd>) -> Vec<RawFd> {
    std::iter::once(notify)
        .chain(ledger)
        .map(AsRawFd::as_raw_fd)
        .collect()
}

/// A `keep` or `held` message with its fds: the notify fd first, then the
/// ledger. Anything else, or a description that is not a JSON object, is not
/// a listener.
fn kept_listener(message: Message, fds: Vec<OwnedFd>) -> Option<Kept> {
    let (Message::Keep { listener } | Message::Held { listener }) = message else {
        return None;
    };
    if !listener.is_object() {
        return None;
    }
    let mut fds = fds.into_iter();
    let notify = fds.next()?;
    Some(Kept {
        listener,
        notify,
        ledger: fds.next(),
    })
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

/// The inode of the socket file at `path`: which keeper the public path
/// names right now.
fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Binds the keeper's socket under a name of its own beside the public one,
/// takes over what a keeper already answering at `path` holds, then renames
/// the socket over `path`: from the first client on, this keeper holds
/// everything the old one did.
fn take_over(path: &Path) -> Result<(UnixListener, Vec<Kept>), KeeperError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| KeeperError::Io { path: p, source }
    };
    let mut own = path.as_os_str().to_owned();
    own.push(format!(".{}", std::process::id()));
    let own = PathBuf::from(own);
    let _ = std::fs::remove_file(&own);
    let listener = UnixListener::bind(&own).map_err(io(&own))?;
    std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io(&own))?;
    let mut held = Vec::new();
    if UnixStream::connect(path).is_ok() {
        let taken = hello_at(path).and_then(|facts| {
            let request = if facts.protocol >= 2 {
                Message::Handover { to: own.clone() }
            } else {
                // A protocol 1 keeper knows no handover: take copies. It keeps
                // its own until its containers are gone (or its supervisor's
                // container takes it down); what it is given between this copy
                // and the rename below only it and the supervisor hold.
                Message::Restore
            };
            ask_for_all(path, &request).map(|kept| (facts, kept))
        });
        match taken {
            Ok((facts, kept)) => {
                eprintln!(
                    "sniffguard keeper: took over {} listener(s) from the keeper at {} (pid {}, protocol {})",
                    kept.len(),
                    path.display(),
                    facts.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                    facts.protocol
                );
                held = kept;
            }
            Err(err) => {
                let _ = std::fs::remove_file(&own);
                return Err(err);
            }
        }
    }
    std::fs::rename(&own, path).map_err(io(path))?;
    Ok((listener, held))
}

/// Runs the keeper: until it has held nothing for `IDLE_EXIT` when it was
/// spawned, until it is stopped when it is resident. It takes over from a
/// keeper already serving `runtime_dir` (`take_over`) and gives way to one
/// that takes over from it.
pub fn run(runtime_dir: &Path, lifecycle: Lifecycle) -> Result<(), KeeperError> {
    let path = socket(runtime_dir);
    if lifecycle == Lifecycle::Resident {
        // A resident keeper may start before any supervisor made the directory
        // (the keeper DaemonSet's hostPath creates it 0755): root's alone, as
        // the supervisor leaves it.
        std::fs::create_dir_all(runtime_dir)
            .and_then(|()| {
                std::fs::set_permissions(
                    runtime_dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o700),
                )
            })
            .map_err(|source| KeeperError::Io {
                path: runtime_dir.to_path_buf(),
                source,
            })?;
    }
    let (listener, mut held) = take_over(&path)?;
    let own_inode = inode(&path);
    let io = |source| KeeperError::Io {
        path: path.clone(),
        source,
    };
    // Holding fds and polling them needs no privilege at all.
    crate::privileges::drop_and_log(&crate::privileges::KEEPER_KEEPS, "keeper");
    listener.set_nonblocking(true).map_err(io)?;
    // Where `keep`s go once a successor asked for a handover.
    let mut successor: Option<PathBuf> = None;
    let mut idle_since = Instant::now();
    loop {
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        // Events 0: only POLLHUP (the filter lost its last user) is reported,
        // so the keeper never looks like it wants the notifications.
        fds.extend(
            held.iter()
                .map(|h| PollFd::new(h.notify.as_fd(), PollFlags::empty())),
        );
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        let gone: Vec<usize> = fds
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, p)| {
                p.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                })
            })
            .map(|(i, _)| i - 1)
            .collect();
        let accept = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        drop(fds);
        for i in gone.into_iter().rev() {
            let gone = held.remove(i);
            eprintln!(
                "sniffguard keeper: released the fd of container {} (no users left)",
                gone.container()
            );
        }
        // Read before the backlog is drained: a client that found this socket
        // through the path did so before it changed, and is in the backlog.
        let replaced = inode(&path) != own_inode;
        if accept || replaced {
            while let Ok((stream, _)) = listener.accept() {
                let mut served = Served {
                    path: &path,
                    own_inode,
                    held: &mut held,
                    successor: &mut successor,
                    lifecycle,
                };
                match serve_client(&stream, &mut served) {
                    Ok(Activity::Some) => idle_since = Instant::now(),
                    Ok(Activity::Hello) => {}
                    Err(err) => {
                        idle_since = Instant::now();
                        eprintln!("sniffguard keeper: {err}");
                    }
                }
            }
        }
        if replaced {
            return retire(
                &path,
                own_inode,
                listener,
                held,
                successor.is_some(),
                lifecycle,
            );
        }
        if lifecycle == Lifecycle::Spawned && held.is_empty() && idle_since.elapsed() > IDLE_EXIT {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        if !held.is_empty() {
            idle_since = Instant::now();
        }
    }
}

/// Gives way to the keeper that now answers at `path` (or to nobody, when the
/// runtime directory was removed: this installation is gone). Without a
/// handover (two keepers started at once, or the successor was a protocol 1
/// keeper started by hand) it is given everything first.
fn retire(
    path: &Path,
    own_inode: Option<u64>,
    listener: UnixListener,
    held: Vec<Kept>,
    handed_over: bool,
    lifecycle: Lifecycle,
) -> Result<(), KeeperError> {
    drop(listener);
    if !handed_over && inode(path).is_some() {
        for kept in &held {
            if let Err(err) = forward(path, own_inode, None, kept) {
                eprintln!(
                    "sniffguard keeper: cannot hand container {}'s fd to the keeper now at {}: {err}",
                    kept.container(),
                    path.display()
                );
            }
        }
    }
    eprintln!(
        "sniffguard keeper: another keeper now serves {}; retiring",
        path.display()
    );
    drop(held);
    if lifecycle == Lifecycle::Resident {
        // The pod of a resident keeper is being replaced: exiting would only
        // have it restarted, and the restarted keeper would take everything
        // back from its successor. Wait to be stopped.
        loop {
            nix::unistd::pause();
        }
    }
    Ok(())
}

/// Sends `kept` to the keeper that took over: at `successor` while it has not
/// renamed its socket yet, else at the public `path`, but never back to this
/// keeper's own socket (`own_inode`: a successor that died before its rename).
fn forward(
    path: &Path,
    own_inode: Option<u64>,
    successor: Option<&Path>,
    kept: &Kept,
) -> Result<(), KeeperError> {
    let stream = match successor.map(connect_to) {
        Some(Ok(stream)) => stream,
        _ if inode(path) == own_inode => {
            return Err(KeeperError::Protocol {
                path: path.to_path_buf(),
                what: "the keeper that asked for a handover is gone before it took the socket"
                    .into(),
            })
        }
        _ => connect_to(path)?,
    };
    send(
        &stream,
        &Message::Keep {
            listener: kept.listener.clone(),
        },
        &listener_fds(&kept.notify, kept.ledger.as_ref()),
    )
    .map_err(|source| KeeperError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether process `pid` may be a supervisor of this keeper: it runs in the
/// keeper's own pid namespace. Read from `/proc/PID/status` (`NSpid` lists the
/// process's pid in every namespace from ours down: one entry means ours),
/// which needs no capability: the keeper holds none, and the namespace links
/// of a process with more capabilities than it are out of its reach. A
/// container process is in a pid namespace of its own; one that shares the
/// host's is not told apart here (the supervisor's own sockets judge its cgroup
/// and mount namespace too).
fn is_own_supervisor(pid: u32) -> Result<(), String> {
    let status = crate::procfs::read_status(pid).ok_or("cannot read its status")?;
    let levels = status
        .get("NSpid")
        .map(|pids| pids.split_whitespace().count())
        .ok_or("its status has no NSpid line")?;
    if levels == 1 {
        Ok(())
    } else {
        Err("it runs in another pid namespace".into())
    }
}

/// What [`serve_client`] reads and changes of the keeper's state.
struct Served<'a> {
    /// The public socket path.
    path: &'a Path,
    /// Its inode while it is this keeper's.
    own_inode: Option<u64>,
    held: &'a mut Vec<Kept>,
    /// The socket of the keeper that asked for a handover.
    successor: &'a mut Option<PathBuf>,
    lifecycle: Lifecycle,
}

/// Whether a client's request keeps a spawned keeper from leaving idle: a
/// supervisor asks `hello` every few seconds (keeper/handed.rs), which must
/// not keep an empty keeper alive for ever.
enum Activity {
    Some,
    Hello,
}

fn serve_client(stream: &UnixStream, state: &mut Served<'_>) -> std::io::Result<Activity> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .map_err(std::io::Error::from)?;
    if cred.uid() != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refused a client with uid {}", cred.uid()),
        ));
    }
    // The keeper hands out every enforced container's notify fd: never to a
    // root process of a container that reaches the runtime directory. Its
    // supervisor runs in the keeper's own pid namespace (the program may
    // differ: an upgraded supervisor takes the fds back from the keeper the
    // previous one started, and a keeper that takes over is judged the same).
    if let Err(why) = u32::try_from(cred.pid())
        .map_err(|_| "no peer pid".to_string())
        .and_then(is_own_supervisor)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refused a client (pid {}): {why}", cred.pid()),
        ));
    }
    match receive(stream)? {
        Some((Message::Restore, _)) => send_all(stream, state.held)?,
        Some((Message::Hello, _)) => {
            send(
                stream,
                &Message::Welcome {
                    protocol: PROTOCOL,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    resident: state.lifecycle == Lifecycle::Resident,
                },
                &[],
            )?;
            return Ok(Activity::Hello);
        }
        Some((Message::Handover { to }, _)) => {
            // The successor's socket sits beside ours (`keeper.sock.PID`, see
            // take_over): never forward fds anywhere else.
            let beside = to.parent() == state.path.parent()
                && to.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix(KEEPER_SOCKET)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|pid| pid.parse::<u32>().is_ok())
                });
            if !beside {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "refused a handover to {}: not a keeper socket beside this one",
                        to.display()
                    ),
                ));
            }
            send_all(stream, state.held)?;
            eprintln!(
                "sniffguard keeper: handed {} listener(s) over to the keeper at {}",
                state.held.len(),
                to.display()
            );
            *state.successor = Some(to);
        }
        Some((message @ Message::Keep { .. }, fds)) => {
            if let Some(kept) = kept_listener(message, fds) {
                // A supervisor gives a keeper that changed every listener again
                // (keeper/handed.rs): one copy per key is enough.
                if let Some(key) = handed::key_of(&kept.listener) {
                    if state
                        .held
                        .iter()
                        .any(|h| handed::key_of(&h.listener) == Some(key))
                    {
                        return Ok(Activity::Some);
                    }
                }
                if let Some(to) = state.successor.as_deref() {
                    if let Err(err) = forward(state.path, state.own_inode, Some(to), &kept) {
                        eprintln!(
                            "sniffguard keeper: cannot forward container {}'s fd to the keeper that took over: {err}",
                            kept.container()
                        );
                        // A successor that died before it took the socket: this
                        // keeper serves on, alone.
                        if inode(state.path) == state.own_inode {
                            *state.successor = None;
                        }
                    }
                }
                state.held.push(kept);
            }
        }
        Some((Message::Unknown, _)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("refused a request of a later protocol (this keeper speaks {PROTOCOL})"),
            ))
        }
        _ => {}
    }
    Ok(Activity::Some)
}

/// Answers `restore` and `handover`: one `held` message per listener.
fn send_all(stream: &UnixStream, held: &[Kept]) -> std::io::Result<()> {
    for h in held {
        send(
            stream,
            &Message::Held {
                listener: h.listener.clone(),
            },
            &listener_fds(&h.notify, h.ledger.as_ref()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a protocol 1 supervisor and keeper send still parses, and a
    /// listener description comes back with the fields this build does not
    /// know (a newer supervisor's) untouched.
    #[test]
    fn messages_of_both_protocols_parse_and_descriptions_survive() {
        let keep = br#"{"op":"keep","listener":{"container":"c1","environment":"staging","annotations":{},"added_later":{"x":[1,2]}}}"#;
        let Message::Keep { listener } = serde_json::from_slice(keep).unwrap() else {
            panic!("not a keep");
        };
        let held = serde_json::to_value(Message::Held {
            listener: listener.clone(),
        })
        .unwrap();
        assert_eq!(held["listener"]["added_later"]["x"][1], 2);
        let info: ListenerInfo = serde_json::from_value(listener).unwrap();
        assert_eq!(info.container, "c1");
        assert_eq!(info.socket_rules, None);
        assert!(matches!(
            serde_json::from_slice(br#"{"op":"restore"}"#).unwrap(),
            Message::Restore
        ));
        assert!(matches!(
            serde_json::from_slice(br#"{"op":"hello"}"#).unwrap(),
            Message::Hello
        ));
        assert!(matches!(
            serde_json::from_slice(br#"{"op":"something_later","x":1}"#).unwrap(),
            Message::Unknown
        ));
        let welcome = serde_json::to_string(&Message::Welcome {
            protocol: PROTOCOL,
            version: "0.1.0".into(),
            resident: true,
        })
        .unwrap();
        assert_eq!(
            welcome,
            r#"{"op":"welcome","protocol":2,"version":"0.1.0","resident":true}"#
        );
    }

    /// A description that is not an object is not a listener, and neither is
    /// a keep without its fd.
    #[test]
    fn malformed_listeners_are_refused() {
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        assert!(kept_listener(
            Message::Keep {
                listener: Value::String("c1".into())
            },
            vec![fd()]
        )
        .is_none());
        assert!(kept_listener(
            Message::Keep {
                listener: serde_json::json!({"container": "c1"})
            },
            Vec::new()
        )
        .is_none());
        let kept = kept_listener(
            Message::Keep {
                listener: serde_json::json!({"container": "c1"}),
            },
            vec![fd(), fd()],
        )
        .unwrap();
        assert_eq!(kept.container(), "c1");
        assert!(kept.ledger.is_some());
    }
}
