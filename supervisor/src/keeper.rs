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
//! Protocol on `RUNTIME_DIR/keeper.sock` (root only): one JSON line per
//! message, the fd (if any) attached with `SCM_RIGHTS`.
//! - `{"op":"keep", "listener": {...}}` + the notify fd, then the listener's
//!   in-flight ledger ([`crate::inflight`]) when it has one: hold them.
//! - `{"op":"restore"}`: the keeper answers with one `{"op":"held", "listener":
//!   {...}}` message per listener it holds, with the same fds, then closes the
//!   connection.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use sniffguard_common::listener::SocketRules;

/// The keeper's socket inside the runtime directory.
pub const KEEPER_SOCKET: &str = "keeper.sock";

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

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Message {
    Keep { listener: ListenerInfo },
    Restore,
    Held { listener: ListenerInfo },
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

fn connect(runtime_dir: &Path) -> Result<UnixStream, KeeperError> {
    let path = socket(runtime_dir);
    let stream = UnixStream::connect(&path).map_err(|source| KeeperError::Io {
        path: path.clone(),
        source,
    })?;
    let timeout = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    Ok(stream)
}

/// Hands a copy of `fd` (and of its in-flight ledger) to the keeper, starting
/// a keeper first when none answers: one that held nothing for [`IDLE_EXIT`]
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

/// Takes back (copies of) every listener the keeper holds.
pub fn restore(runtime_dir: &Path) -> Result<Vec<HeldListener>, KeeperError> {
    let io = |source| KeeperError::Io {
        path: socket(runtime_dir),
        source,
    };
    let stream = connect(runtime_dir)?;
    send(&stream, &Message::Restore, &[]).map_err(io)?;
    let mut out = Vec::new();
    while let Some((message, fds)) = receive(&stream).map_err(io)? {
        if let Some(held) = held_listener(message, fds) {
            out.push(held);
        }
    }
    Ok(out)
}

/// The fds a `keep` or `held` message carries: the notify fd first, then the
/// ledger ([`held_listener`] reads them in that order).
fn listener_fds(notify: &OwnedFd, ledger: Option<&OwnedFd>) -> Vec<RawFd> {
    std::iter::once(notify)
        .chain(ledger)
        .map(AsRawFd::as_raw_fd)
        .collect()
}

/// A `keep` or `held` message with its fds: the notify fd first, then the
/// ledger. Anything else is not a listener.
fn held_listener(message: Message, fds: Vec<OwnedFd>) -> Option<HeldListener> {
    let (Message::Keep { listener } | Message::Held { listener }) = message else {
        return None;
    };
    let mut fds = fds.into_iter();
    let notify = fds.next()?;
    Some(HeldListener {
        info: listener,
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

/// Runs the keeper until it has held nothing for [`IDLE_EXIT`].
pub fn run(runtime_dir: &Path) -> Result<(), KeeperError> {
    let path = socket(runtime_dir);
    let io = |source| KeeperError::Io {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io)?;
    // Holding fds and polling them needs no privilege at all.
    crate::privileges::drop_and_log(&crate::privileges::KEEPER_KEEPS, "keeper");
    listener.set_nonblocking(true).map_err(io)?;
    let mut held: Vec<HeldListener> = Vec::new();
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
                gone.info.container
            );
        }
        if accept {
            while let Ok((stream, _)) = listener.accept() {
                idle_since = Instant::now();
                if let Err(err) = serve_client(&stream, &mut held) {
                    eprintln!("sniffguard keeper: {err}");
                }
            }
        }
        if !path.exists() {
            // The runtime directory was removed: this installation is gone.
            return Ok(());
        }
        if held.is_empty() && idle_since.elapsed() > IDLE_EXIT {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        if !held.is_empty() {
            idle_since = Instant::now();
        }
    }
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

fn serve_client(stream: &UnixStream, held: &mut Vec<HeldListener>) -> std::io::Result<()> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
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
    // previous one started).
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
        Some((Message::Restore, _)) => {
            for h in held.iter() {
                send(
                    stream,
                    &Message::Held {
                        listener: h.info.clone(),
                    },
                    &listener_fds(&h.notify, h.ledger.as_ref()),
                )?;
            }
        }
        Some((message @ Message::Keep { .. }, fds)) => {
            if let Some(listener) = held_listener(message, fds) {
                held.push(listener);
            }
        }
        _ => {}
    }
    Ok(())
}
