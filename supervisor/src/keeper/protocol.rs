//! The keeper's wire protocol: its messages, how one travels with its fds, and
//! the requests either side sends (a supervisor to its keeper, a keeper that
//! takes over to the one it replaces).
//!
//! On `RUNTIME_DIR/keeper.sock` (root only): one JSON line per message, the fd
//! (if any) attached with `SCM_RIGHTS`. Versioned by [`PROTOCOL`]; a keeper
//! keeps each listener's description verbatim, so a supervisor newer than its
//! keeper gets back every field it handed in.
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
//!
//! How the keeper answers each message is `keeper/process.rs`.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
pub(super) enum Message {
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

/// A listener inside the keeper: its description as received, and its fds.
#[derive(Debug)]
pub(super) struct Kept {
    pub(super) listener: Value,
    pub(super) notify: OwnedFd,
    pub(super) ledger: Option<OwnedFd>,
}

impl Kept {
    /// The container it serves, for the keeper's log.
    pub(super) fn container(&self) -> &str {
        self.listener
            .get("container")
            .and_then(Value::as_str)
            .unwrap_or("?")
    }
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

pub(super) fn send(stream: &UnixStream, message: &Message, fds: &[RawFd]) -> std::io::Result<()> {
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
pub(super) fn receive(stream: &UnixStream) -> std::io::Result<Option<(Message, Vec<OwnedFd>)>> {
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

pub(super) fn connect_to(path: &Path) -> Result<UnixStream, KeeperError> {
    let stream = UnixStream::connect(path).map_err(|source| KeeperError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let timeout = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    Ok(stream)
}

pub(super) fn connect(runtime_dir: &Path) -> Result<UnixStream, KeeperError> {
    connect_to(&socket(runtime_dir))
}

/// Sends one `keep` (a listener this supervisor handed over before) to the
/// keeper of `runtime_dir`, without starting one.
pub(super) fn send_keep(
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

/// Sends `request` (`restore` or `handover`) to the keeper at `path` and
/// collects the `held` answers until it closes the connection.
pub(super) fn ask_for_all(path: &Path, request: &Message) -> Result<Vec<Kept>, KeeperError> {
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

pub(super) fn hello_at(path: &Path) -> Result<KeeperFacts, KeeperError> {
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
pub(super) fn listener_fds(notify: &OwnedFd, ledger: Option<&OwnedFd>) -> Vec<RawFd> {
    std::iter::once(notify)
        .chain(ledger)
        .map(AsRawFd::as_raw_fd)
        .collect()
}

/// A `keep` or `held` message with its fds: the notify fd first, then the
/// ledger. Anything else, or a description that is not a JSON object, is not
/// a listener.
pub(super) fn kept_listener(message: Message, fds: Vec<OwnedFd>) -> Option<Kept> {
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
