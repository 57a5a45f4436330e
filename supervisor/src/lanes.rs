//! Work that may read a file which never answers, off the thread that must not
//! wait: the ring reader hands each event to a pool of worker threads and
//! watches how long each takes.
//!
//! Judging an exec reads the file it runs. A file on a FUSE mount whose server
//! stops answering (a build container can mount one) blocks that read, in the
//! kernel, for as long as the server likes: `FUSE_OPEN`, `FUSE_READ` and even
//! `FUSE_LOOKUP`/`FUSE_GETATTR` wait uninterruptibly (`request_wait_answer`
//! in the kernel's `fs/fuse/dev.c` only lets a fatal signal through, and only
//! before the server took the request). Such a thread cannot be cancelled or
//! interrupted from user space. So instead of cancelling, the pool *leaks*: a
//! worker that has held one job longer than [`CLASSIFY_BOUND`] is given up
//! ([`Lanes::overdue`] hands its job back to be reported as unjudged), a fresh
//! worker takes its place, and the stuck thread exits on its own if the read
//! ever returns. At most [`MAX_STUCK`] threads are leaked that way; beyond
//! that no replacement is started and queued jobs that waited longer than the
//! bound are handed back unjudged too, so every event is still answered for
//! within about the bound.
//!
//! Jobs run in **lanes** (a container's cgroup): the jobs of one lane run one
//! at a time, in order, so one process's exec and its socket calls are seen in
//! the order the kernel made them (the first evidence is the one alerted);
//! jobs of different lanes run side by side, so a stuck read stalls only its
//! own container, and only for the bound.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long one job may take before it is given up and reported as unjudged.
///
/// Reading and parsing an executable the cache has not seen takes a few
/// milliseconds (tens to hundreds for a debug build of the supervisor
/// scanning a large binary on a loaded 2-core node); two seconds leave a wide
/// margin over that, since a bound that fires on a slow but answering file
/// system refuses a legitimate exec in enforce environments, and are still
/// short enough for an alert to be prompt. The seccomp listener uses the same
/// bound for the same reads ([`crate::notify`]).
pub const CLASSIFY_BOUND: Duration = Duration::from_millis(2000);

/// Workers that are not stuck: two, so that a job which blocks for the bound
/// leaves one to take every other lane's jobs at once.
const LIVE_WORKERS: usize = 2;

/// Threads left blocked in a read that never returned, at most. Each holds a
/// small stack and the fds of one classification.
pub const MAX_STUCK: usize = 32;

/// Jobs queued at most; beyond that the reader leaves events in the ring
/// (where the kernel counts what does not fit as dropped).
pub const MAX_QUEUED: usize = 16 * 1024;

/// Stack of a worker thread: the classifier keeps page-sized buffers on it.
const WORKER_STACK_BYTES: usize = 512 * 1024;

/// What the pool runs.
pub trait Handler: Send + Sync + 'static {
    /// One unit of work.
    type Job: Clone + Send + 'static;
    /// What a worker keeps between jobs (caches of one batch).
    type Local: Default;

    /// The lane of a job: jobs of one lane run in order, one at a time.
    fn lane(job: &Self::Job) -> u64;

    /// Runs a job on a worker. `claim` must be asked before anything is
    /// reported: `false` means the job was given up meanwhile (and reported
    /// by [`Handler::overdue`]), so the result is dropped.
    fn handle(&self, job: Self::Job, local: &mut Self::Local, claim: &Claim<'_, Self>)
    where
        Self: Sized;

    /// The queue ran empty: what a worker keeps for one batch is stale now.
    fn idle(local: &mut Self::Local);

    /// A job given up: `in_hand` when a worker held it for longer than the
    /// bound, else it waited in the queue with no worker free. Runs on the
    /// thread that called [`Lanes::overdue`].
    fn overdue(&self, job: Self::Job, in_hand: bool, stuck: usize);
}

/// One worker's job in hand.
struct InHand<J> {
    job: J,
    lane: u64,
    since: Instant,
    /// The result is being reported: too late to give it up.
    claimed: bool,
}

struct Slot<J> {
    id: u64,
    in_hand: Option<InHand<J>>,
}

struct State<J> {
    queue: VecDeque<(J, Instant)>,
    /// Lanes a worker holds a job of.
    busy: HashSet<u64>,
    /// Workers not given up.
    live: Vec<Slot<J>>,
    /// Workers given up, still blocked (they leave when their read returns).
    stuck: usize,
    next_id: u64,
}

struct Inner<H: Handler> {
    handler: H,
    /// The async runtime the handler hands alerts and responses to.
    runtime: Option<tokio::runtime::Handle>,
    state: Mutex<State<H::Job>>,
    work: Condvar,
}

/// The pool: the reader [`push`](Lanes::push)es and calls
/// [`overdue`](Lanes::overdue) on every turn of its loop.
pub struct Lanes<H: Handler> {
    inner: Arc<Inner<H>>,
}

/// A worker's right to report the job it holds.
pub struct Claim<'a, H: Handler> {
    inner: &'a Inner<H>,
    id: u64,
}

impl<H: Handler> Claim<'_, H> {
    /// Whether the job is still this worker's; once `true`, it is not given up.
    pub fn claim(&self) -> bool {
        let mut state = lock(&self.inner.state);
        match state.live.iter_mut().find(|slot| slot.id == self.id) {
            Some(Slot {
                in_hand: Some(in_hand),
                ..
            }) => {
                in_hand.claimed = true;
                true
            }
            _ => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked held no invariant half-changed that matters more
    // than detection going on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<H: Handler> Lanes<H> {
    /// Starts the pool's workers; they enter the caller's async runtime, if
    /// it has one.
    pub fn start(handler: H) -> std::io::Result<Lanes<H>> {
        let inner = Arc::new(Inner {
            handler,
            runtime: tokio::runtime::Handle::try_current().ok(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: HashSet::new(),
                live: Vec::new(),
                stuck: 0,
                next_id: 0,
            }),
            work: Condvar::new(),
        });
        for _ in 0..LIVE_WORKERS {
            let mut state = lock(&inner.state);
            spawn_worker(&inner, &mut state)?;
        }
        Ok(Lanes { inner })
    }

    /// The handler the workers run.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// Whether another job fits in the queue.
    pub fn has_room(&self) -> bool {
        lock(&self.inner.state).queue.len() < MAX_QUEUED
    }

    /// Queues jobs and wakes workers for them.
    pub fn push(&self, jobs: impl IntoIterator<Item = H::Job>) {
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        let before = state.queue.len();
        state.queue.extend(jobs.into_iter().map(|job| (job, now)));
        let added = state.queue.len() - before;
        drop(state);
        match added {
            0 => {}
            1 => self.inner.work.notify_one(),
            _ => self.inner.work.notify_all(),
        }
    }

    /// Gives up every job held or queued for longer than [`CLASSIFY_BOUND`]
    /// and hands it to [`Handler::overdue`]; starts workers in place of the
    /// ones given up, while fewer than [`MAX_STUCK`] are. Returns when the
    /// next job in hand would be overdue, for the caller's next wait.
    pub fn overdue(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut given_up = Vec::new();
        let mut state = lock(&self.inner.state);
        let mut index = 0;
        while index < state.live.len() {
            let late = state.live[index]
                .in_hand
                .as_ref()
                .is_some_and(|h| !h.claimed && now.duration_since(h.since) >= CLASSIFY_BOUND);
            if !late {
                index += 1;
                continue;
            }
            let slot = state.live.swap_remove(index);
            if let Some(in_hand) = slot.in_hand {
                state.busy.remove(&in_hand.lane);
                given_up.push((in_hand.job, true));
            }
            state.stuck += 1;
        }
        while state.live.len() < LIVE_WORKERS && state.stuck < MAX_STUCK {
            if let Err(err) = spawn_worker(&self.inner, &mut state) {
                tracing::error!(%err, "cannot start a classification worker");
                break;
            }
        }
        if state.stuck >= MAX_STUCK && state.live.iter().all(|slot| slot.in_hand.is_some()) {
            // No worker free and none may be added: what waited past the
            // bound is answered for now, judged by what needs no read. (Below
            // the cap a queue that backs up is only load: it waits, as the
            // ring would.)
            while state
                .queue
                .front()
                .is_some_and(|(_, queued)| now.duration_since(*queued) >= CLASSIFY_BOUND)
            {
                if let Some((job, _)) = state.queue.pop_front() {
                    given_up.push((job, false));
                }
            }
        }
        let next = state
            .live
            .iter()
            .filter_map(|slot| slot.in_hand.as_ref().map(|h| h.since + CLASSIFY_BOUND))
            .min();
        let stuck = state.stuck;
        drop(state);
        if !given_up.is_empty() {
            // Lanes were freed: their queued jobs can go to a free worker.
            self.inner.work.notify_all();
        }
        for (job, in_hand) in given_up {
            self.inner.handler.overdue(job, in_hand, stuck);
        }
        next
    }
}

fn spawn_worker<H: Handler>(
    inner: &Arc<Inner<H>>,
    state: &mut State<H::Job>,
) -> std::io::Result<()> {
    let id = state.next_id;
    let for_thread = Arc::clone(inner);
    std::thread::Builder::new()
        .name("sg-classify".into())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || work(&for_thread, id))?;
    state.next_id += 1;
    state.live.push(Slot { id, in_hand: None });
    Ok(())
}

/// A worker: takes the first queued job whose lane is free, runs it, and
/// leaves once it was given up.
fn work<H: Handler>(inner: &Inner<H>, id: u64) {
    let mut local = H::Local::default();
    let _entered = inner.runtime.as_ref().map(tokio::runtime::Handle::enter);
    loop {
        let job = {
            let mut state = lock(&inner.state);
            loop {
                if !state.live.iter().any(|slot| slot.id == id) {
                    // Given up while it waited (cannot happen without a job in
                    // hand, but a worker never runs twice under one id).
                    return;
                }
                let free = {
                    let busy = &state.busy;
                    state
                        .queue
                        .iter()
                        .position(|(job, _)| !busy.contains(&H::lane(job)))
                };
                if let Some(at) = free {
                    let Some((job, _)) = state.queue.remove(at) else {
                        continue;
                    };
                    let lane = H::lane(&job);
                    state.busy.insert(lane);
                    if let Some(slot) = state.live.iter_mut().find(|slot| slot.id == id) {
                        slot.in_hand = Some(InHand {
                            job: job.clone(),
                            lane,
                            since: Instant::now(),
                            claimed: false,
                        });
                    }
                    break job;
                }
                if state.queue.is_empty() {
                    H::idle(&mut local);
                }
                state = inner
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        inner.handler.handle(job, &mut local, &Claim { inner, id });
        let mut state = lock(&inner.state);
        match state.live.iter_mut().find(|slot| slot.id == id) {
            Some(slot) => {
                if let Some(in_hand) = slot.in_hand.take() {
                    state.busy.remove(&in_hand.lane);
                }
                drop(state);
                // Its lane may have more queued.
                inner.work.notify_one();
            }
            None => {
                // Given up: another worker took its place. The read returned
                // at last; this thread is no longer needed.
                state.stuck = state.stuck.saturating_sub(1);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    /// Jobs are (lane, value); value 0 blocks until released.
    struct Recorder {
        done: Mutex<mpsc::Sender<(u64, u32)>>,
        overdue: Mutex<mpsc::Sender<(u64, u32, bool)>>,
        release: Mutex<mpsc::Receiver<()>>,
        handled: AtomicUsize,
    }

    impl Handler for Recorder {
        type Job = (u64, u32);
        type Local = ();

        fn lane(job: &(u64, u32)) -> u64 {
            job.0
        }

        fn handle(&self, job: (u64, u32), _: &mut (), claim: &Claim<'_, Self>) {
            if job.1 == 0 {
                let _ = lock(&self.release).recv();
            }
            self.handled.fetch_add(1, Ordering::SeqCst);
            if claim.claim() {
                let _ = lock(&self.done).send(job);
            }
        }

        fn idle(_: &mut ()) {}

        fn overdue(&self, job: (u64, u32), in_hand: bool, _: usize) {
            let _ = lock(&self.overdue).send((job.0, job.1, in_hand));
        }
    }

    #[test]
    fn a_stuck_job_is_given_up_and_other_lanes_go_on() {
        let (done_tx, done) = mpsc::channel();
        let (overdue_tx, overdue) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let lanes = Lanes::start(Recorder {
            done: Mutex::new(done_tx),
            overdue: Mutex::new(overdue_tx),
            release: Mutex::new(release_rx),
            handled: AtomicUsize::new(0),
        })
        .unwrap();
        // Lane 1 blocks; lane 1's next job waits behind it, lane 2 goes on.
        lanes.push([(1, 0), (1, 1), (2, 2)]);
        let got = done.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, (2, 2));
        assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
        // Past the bound the stuck job is handed back, and its lane goes on.
        let deadline = Instant::now() + CLASSIFY_BOUND * 5;
        let given_up = loop {
            lanes.overdue();
            if let Ok(job) = overdue.try_recv() {
                break job;
            }
            assert!(Instant::now() < deadline, "never given up");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(given_up, (1, 0, true));
        assert_eq!(done.recv_timeout(Duration::from_secs(5)).unwrap(), (1, 1));
        // The stuck worker returns at last: its result is dropped.
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lanes.inner.handler.handled.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&lanes.inner.state).stuck, 0);
        assert_eq!(lock(&lanes.inner.state).live.len(), LIVE_WORKERS);
    }
}
