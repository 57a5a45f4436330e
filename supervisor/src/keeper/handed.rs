//! The supervisor's side of a keeper that restarts: copies of every listener it
//! handed to a keeper, given again to a keeper that starts without them.
//!
//! A keeper pod that is restarted (a crash, an OOM kill) or deleted comes back
//! empty. The supervisor still serves every fd, so nothing fails at once, but
//! the next supervisor restart would find no keeper holding them, and every
//! enforced container's watched syscalls would fail with ENOSYS. So the
//! supervisor keeps a duplicate of each fd it handed over (which costs the
//! kernel nothing: the filter's file is the same), asks the keeper who it is
//! every [`WATCH_INTERVAL`], and when another keeper answers, hands it every
//! listener again. Each listener carries a key unique to the supervisor that
//! first handed it over ([`next_key`]); a keeper drops a `keep` whose key it
//! already holds, so a keeper that took everything over by a handover is not
//! given duplicates. A duplicate whose filter has lost its last user
//! (`POLLHUP`: the container is gone) is closed at the next look.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use super::protocol::{hello, send_keep, Kept};

/// How often the supervisor asks who the keeper is.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What this supervisor handed to a keeper, or took back from one.
static HANDED: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

/// A key no other listener has: this process's id, its start time and a
/// counter (a supervisor restarted with the same pid starts later).
pub(super) fn next_key() -> String {
    static START: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!(
        "{}-{start}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The key of a listener description, if it has one (a supervisor before
/// keys handed over none).
pub(super) fn key_of(listener: &Value) -> Option<&str> {
    listener.get("key").and_then(Value::as_str)
}

/// Remembers a duplicate of a listener handed to (or restored from) a keeper.
/// One without a key is not remembered: a keeper could not tell it from the
/// copy it may hold already.
pub(super) fn remember(listener: &Value, notify: &OwnedFd, ledger: Option<&OwnedFd>) {
    if key_of(listener).is_none() {
        return;
    }
    let copies = notify.try_clone().and_then(|notify| {
        ledger
            .map(OwnedFd::try_clone)
            .transpose()
            .map(|ledger| (notify, ledger))
    });
    match copies {
        Ok((notify, ledger)) => HANDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Kept {
                listener: listener.clone(),
                notify,
                ledger,
            }),
        Err(err) => {
            tracing::warn!(%err, "cannot keep a copy of a listener for a keeper that restarts")
        }
    }
}

/// Closes the duplicates whose filter has no user left; returns how many stay.
fn prune(handed: &mut Vec<Kept>) -> usize {
    let gone: Vec<bool> = {
        let mut fds: Vec<PollFd<'_>> = handed
            .iter()
            .map(|h| PollFd::new(h.notify.as_fd(), PollFlags::empty()))
            .collect();
        if poll(&mut fds, PollTimeout::ZERO).is_err() {
            return handed.len();
        }
        fds.iter()
            .map(|p| {
                p.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                })
            })
            .collect()
    };
    let mut gone = gone.into_iter();
    handed.retain(|_| !gone.next().unwrap_or(false));
    handed.len()
}

/// Watches the keeper of `runtime_dir` from a thread of its own (see the
/// module documentation). `first` is the keeper found at start-up, which
/// holds everything already.
pub fn watch(runtime_dir: PathBuf, first: Option<u32>) {
    let spawned = std::thread::Builder::new()
        .name("sniffguard-keeper-watch".into())
        .spawn(move || {
            let mut known = first;
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                // Locked only to prune and to give: `keep` remembers each new
                // listener under the same lock, on a container's way to start.
                prune(&mut HANDED.lock().unwrap_or_else(PoisonError::into_inner));
                let Ok(facts) = hello(&runtime_dir) else {
                    continue;
                };
                if facts.pid.is_none() || facts.pid == known {
                    continue;
                }
                let handed = HANDED.lock().unwrap_or_else(PoisonError::into_inner);
                // A protocol 1 keeper drops no duplicate: give it nothing again.
                if facts.protocol >= 2 && !handed.is_empty() {
                    let given = handed
                        .iter()
                        .filter(|h| send_keep(&runtime_dir, &h.listener, &h.notify, h.ledger.as_ref()).is_ok())
                        .count();
                    tracing::warn!(
                        keeper = facts.pid,
                        previous = known,
                        given,
                        of = handed.len(),
                        "another fd keeper answers: handed it every listener again (a keeper that took them over keeps one copy)"
                    );
                }
                known = facts.pid;
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot watch the fd keeper: a keeper that restarts empty is not given the listeners again");
    }
}
