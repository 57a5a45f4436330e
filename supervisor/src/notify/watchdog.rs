//! The bound on a seccomp decision: a listener that has decided one
//! notification for longer than [`CLASSIFY_BOUND`] is given up.
//!
//! Deciding an exec opens and reads the file it names, inside the container.
//! On a file system that never answers (a FUSE server that stopped), that
//! open or read blocks the listener thread in the kernel, uninterruptibly
//! (see [`crate::lanes`]): no answer would ever come, and every later
//! watched call of the container would wait behind it. The listener is not
//! interrupted (it cannot be); a watchdog thread answers for it instead: the
//! call is judged unreadable in time — refused with `unresolved` evidence
//! where the environment enforces, let through with a log line in audit
//! (the exec probe alerts it there) — and a new listener thread takes over
//! the container's notify fd (a duplicate of it). The stuck thread leaves
//! without answering once its read returns; an answer it sent would name a
//! notification already answered, which the kernel refuses.
//!
//! The watchdog costs a decision two uncontended lock round trips, no thread
//! hop: the decision stays on the thread the kernel woke on the caller's CPU.
//! The replacement listener keeps no shared in-flight ledger: a notification
//! it is deciding when the supervisor dies stays unanswered (the container's
//! caller then waits until the supervisor's restart, as without a keeper).

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::decide::ListenerContext;
use crate::inflight::Notification;
use crate::lanes::CLASSIFY_BOUND;
use crate::Shared;

/// How often the watchdog looks: a decision is given up at most this long
/// after the bound.
const TICK: Duration = Duration::from_millis(100);

/// One listener, as the watchdog sees it.
pub(super) struct Watch {
    /// The listener's notify fd; valid while a decision is in progress (the
    /// listener cannot close it while it decides).
    fd: RawFd,
    context: ListenerContext,
    shared: Arc<Shared>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    deciding: Option<(Notification, Instant)>,
    given_up: bool,
}

struct Watchdog {
    watches: Mutex<Vec<Weak<Watch>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static WATCHDOG: OnceLock<Option<&'static Watchdog>> = OnceLock::new();

/// The watchdog, started on first use.
fn watchdog() -> Option<&'static Watchdog> {
    *WATCHDOG.get_or_init(|| {
        let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            watches: Mutex::new(Vec::new()),
        }));
        let runtime = tokio::runtime::Handle::try_current().ok();
        let spawned = std::thread::Builder::new()
            .name("sg-notify-watch".into())
            .spawn(move || {
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                watch(watchdog);
            });
        match spawned {
            Ok(_) => Some(watchdog),
            Err(err) => {
                tracing::error!(%err, "cannot start the decision watchdog: a file system that never answers can stall a listener");
                None
            }
        }
    })
}

impl Watch {
    /// Watches the listener serving `fd`.
    pub(super) fn register(
        fd: RawFd,
        context: &ListenerContext,
        shared: &Arc<Shared>,
    ) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            fd,
            context: context.clone(),
            shared: Arc::clone(shared),
            state: Mutex::default(),
        });
        if let Some(watchdog) = watchdog() {
            let mut watches = lock(&watchdog.watches);
            watches.retain(|w| w.strong_count() > 0);
            watches.push(Arc::downgrade(&watch));
        }
        watch
    }

    /// A decision of `request` starts.
    pub(super) fn begin(&self, request: &Notification) {
        lock(&self.state).deciding = Some((*request, Instant::now()));
    }

    /// The decision is over. `false` when it was given up meanwhile: another
    /// listener serves the fd now, and this one must leave.
    pub(super) fn end(&self) -> bool {
        let mut state = lock(&self.state);
        state.deciding = None;
        !state.given_up
    }
}

fn watch(watchdog: &'static Watchdog) {
    loop {
        std::thread::sleep(TICK);
        let watches: Vec<Arc<Watch>> = {
            let mut watches = lock(&watchdog.watches);
            watches.retain(|w| w.strong_count() > 0);
            watches.iter().filter_map(Weak::upgrade).collect()
        };
        for watch in watches {
            let overdue = {
                let mut state = lock(&watch.state);
                match state.deciding {
                    Some((request, since))
                        if !state.given_up && since.elapsed() >= CLASSIFY_BOUND =>
                    {
                        // Duplicated under the lock: the listener is still
                        // inside its decision (it takes this lock to leave
                        // it), so its fd is open.
                        // SAFETY: `watch.fd` is open while `deciding` is set
                        // (see above); the borrow ends with this statement.
                        let fd = unsafe { BorrowedFd::borrow_raw(watch.fd) };
                        match fd.try_clone_to_owned() {
                            Ok(copy) => {
                                state.given_up = true;
                                Some((request, since, copy))
                            }
                            Err(err) => {
                                tracing::error!(container = watch.context.container_id, %err, "cannot take over a stalled listener's fd");
                                None
                            }
                        }
                    }
                    _ => None,
                }
            };
            if let Some((request, since, copy)) = overdue {
                take_over(&watch, request, since, copy);
            }
        }
    }
}

/// Answers the stalled decision and starts a listener in the stuck one's place.
fn take_over(watch: &Watch, request: Notification, since: Instant, fd: OwnedFd) {
    use std::os::fd::AsRawFd;
    tracing::warn!(
        container = watch.context.container_id,
        pid = request.pid,
        waited_ms = since.elapsed().as_millis() as u64,
        "a decision did not finish within the bound: answered for, and the listener replaced"
    );
    super::give_up(
        fd.as_raw_fd(),
        request,
        since,
        &watch.context,
        &watch.shared,
    );
    let Some(ledger) = crate::inflight::Ledger::or_private(
        crate::inflight::Ledger::private(),
        &watch.context.container_id,
    ) else {
        return;
    };
    watch
        .shared
        .notify
        .serve(fd, ledger, watch.context.clone(), Arc::clone(&watch.shared));
}
