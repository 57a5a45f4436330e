//! The keeper process itself: how it starts (taking over from a keeper that
//! already serves the socket), serves its clients, lets go of the fds whose
//! containers are gone, and leaves (idle, or retired by a successor).
//!
//! Each message it answers is described in `keeper/protocol.rs`; the two ways
//! it lives ([`Lifecycle`]) in the module documentation of [`crate::keeper`].

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::handed;
use super::protocol::{
    ask_for_all, connect_to, hello_at, kept_listener, listener_fds, receive, send, socket,
    KeeperError, Kept, Message, KEEPER_SOCKET, PROTOCOL,
};

/// The keeper exits after holding nothing for this long.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// How a keeper lives (see the documentation of [`crate::keeper`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Started by `sniffguard run`; exits when it has held nothing for a while.
    Spawned,
    /// Started on its own (`--resident`); never exits when idle.
    Resident,
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
