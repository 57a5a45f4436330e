//! What the eBPF events mean: classification of every exec and capture attempt
//! the probes report, alerts, and the enforce backstop.
//!
//! In audit environments this is the whole detection. In enforce environments
//! the seccomp path has already refused what it could see; an event that gets
//! here from an enforce container is something that got past it (a raced path,
//! a container started without the filter), and the process is killed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sniffguard_common::abi::{self, Event, ExecEvent, FLAG_KILLED};
use sniffguard_common::policy::Policy;
use std::os::fd::AsFd;

use crate::alert::Mechanism;
use crate::classify::{Evidence, ExecSite, SiteRoot};
use crate::finding::{self, Acted, Finding, Subject};
use crate::identity::{self, ExecIdentity, Judgement, Judgements};
use crate::lanes::{Claim, Handler, Lanes, CLASSIFY_BOUND};
use crate::procfs;
use crate::registry::ContainerRecord;
use crate::verdict::Action;
use crate::{resolve, respond, Shared};

mod exited;
mod net;
use exited::{ExitedPaths, Located};
use net::{
    clear_promiscuous, installs_tc_mirroring, judge_net, remove_tc_mirroring, sets_interface_flag,
    sweep_capture_holders,
};

/// At most one exec event in 50 ms wakes the reader (the probe's
/// `exec_wakeup_flags`: the first exec after a quiet spell is read at once);
/// while events flow the reader drains the ring this often. Short enough that
/// a sniffer which runs for a few milliseconds is still alive (and its file
/// reachable through /proc) when its event is classified.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How often an idle ring is drained: after [`IDLE_AFTER`] empty drains in a
/// row. The first exec after a quiet spell wakes the reader itself; this
/// bounds how long anything submitted without a wake-up can wait, and a quiet
/// node does not pay 500 timer wake-ups a second for nothing.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Empty drains in a row before the reader slows down (~100 ms).
const IDLE_AFTER: u32 = 50;

/// Processes already alerted, remembered so that one tcpdump's socket, filter
/// and promiscuous calls make one alert, not four (see [`Seen::admit`]).
const MAX_REMEMBERED: usize = 8192;

/// Reads the ring buffer on a thread of its own until the supervisor stops.
///
/// A thread that waits in `poll(2)` with a timeout, rather than a task on the
/// async runtime: while events flow the ring is drained every
/// `POLL_INTERVAL`, and each of those ticks through the runtime cost a timer,
/// an epoll round and a worker hand-off (about a fifth of the supervisor's CPU
/// at 5,000 execs/s here); here a tick is one system call.
///
/// The reader itself reads no file: each drain's events go to the
/// classification workers ([`crate::lanes`]), since judging an exec reads
/// the file it runs and a file on a file system that never answers (a stalled
/// FUSE server) would hold the reader, and every later event of every
/// container, for as long as it likes. The reader watches the workers: an
/// exec not judged within [`CLASSIFY_BOUND`] is alerted as unreadable in time
/// (`unresolved` evidence). Alerts and responses are handed to the runtime.
pub fn spawn_reader(events: RingBuf<MapData>, shared: Arc<Shared>) {
    let runtime = tokio::runtime::Handle::current();
    let failed = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("sg-events".into())
        .spawn(move || {
            let _entered = runtime.enter();
            read(events, shared);
        });
    if let Err(err) = spawned {
        failed.health.fail(
            crate::health::Component::RingReader,
            format!("cannot start the eBPF event reader ({err}); detection is off"),
        );
    }
}

fn read(mut ring: RingBuf<MapData>, shared: Arc<Shared>) {
    let lanes = match Lanes::start(Judge {
        shared: shared.clone(),
        seen: Mutex::default(),
        judged: Mutex::default(),
    }) {
        Ok(lanes) => lanes,
        Err(err) => {
            shared.health.fail(
                crate::health::Component::RingReader,
                format!("cannot start the classification workers ({err}); detection is off"),
            );
            return;
        }
    };
    let mut empty_drains: u32 = 0;
    let mut next_deadline: Option<Instant> = None;
    loop {
        let period = if empty_drains >= IDLE_AFTER {
            IDLE_POLL_INTERVAL
        } else {
            POLL_INTERVAL
        };
        // Wake in time to give up a job that reaches the bound.
        let period = next_deadline.map_or(period, |at| {
            period.min(at.saturating_duration_since(Instant::now()))
        });
        let timeout = PollTimeout::try_from(period).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(ring.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => {
                shared.health.fail(
                    crate::health::Component::RingReader,
                    format!("the eBPF ring buffer failed ({errno}); detection is off"),
                );
                return;
            }
        }
        let drained = drain(&mut ring, &lanes);
        next_deadline = lanes.overdue();
        empty_drains = if drained == 0 {
            empty_drains.saturating_add(1)
        } else {
            0
        };
    }
}

/// Events handed to the workers in one drain, at most.
const MAX_BATCH: usize = 4096;

/// Hands every event in the ring to the workers (as many as their queue
/// takes); returns how many there were.
fn drain(ring: &mut RingBuf<MapData>, lanes: &Lanes<Judge>) -> usize {
    if !lanes.has_room() {
        // The workers are behind: what stays in the ring waits there, and
        // what no longer fits is counted as dropped by the kernel.
        return 0;
    }
    let mut batch = Vec::new();
    let mut drained = 0;
    while drained < MAX_BATCH {
        let Some(item) = ring.next() else { break };
        drained += 1;
        match Event::decode(&item) {
            Ok(event) if lanes.handler().already_decided(&event) => {}
            Ok(event) => batch.push(Arc::new(event)),
            Err(err) => tracing::warn!(?err, "undecodable eBPF event"),
        }
    }
    // An enforce container's execs were decided by its seccomp listener: a
    // drain of only those wakes no worker.
    lanes.push(batch);
    drained
}

#[derive(Default)]
struct Seen {
    alerted: HashMap<(u64, u32), Alerted>,
}

/// What was alerted about one process image.
#[derive(Clone, Copy)]
struct Alerted {
    /// The exec probe named the file a sniffer.
    by_exec: bool,
    /// [`widening`] bits already named by its alerts.
    widened: u8,
}

/// The bit of evidence that widens a capture beyond the process's own
/// socket, to the whole interface or another device: promiscuous mode,
/// mirroring.
fn widening(evidence: &Evidence) -> u8 {
    match evidence {
        Evidence::Promiscuous { .. } => 1,
        Evidence::Mirroring { .. } => 2,
        _ => 0,
    }
}

impl Seen {
    /// Whether a finding about this process makes an alert. One alert per
    /// process image, with one exception: a process alerted only for what it
    /// did (a capture socket) is alerted again the first time it puts an
    /// interface into promiscuous mode or mirrors traffic, so that the alerts
    /// name it. A process the exec probe named a sniffer is not: that is what
    /// sniffers do (tcpdump's socket, filter and promiscuous calls stay one
    /// alert).
    fn admit(&mut self, cgroup: u64, tgid: u32, by_exec: bool, evidence: &[Evidence]) -> bool {
        if self.alerted.len() >= MAX_REMEMBERED {
            self.alerted.clear();
        }
        let wide = evidence.iter().fold(0, |bits, e| bits | widening(e));
        match self.alerted.entry((cgroup, tgid)) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Alerted {
                    by_exec,
                    widened: wide,
                });
                true
            }
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let alerted = entry.get_mut();
                if alerted.by_exec || wide & !alerted.widened == 0 {
                    return false;
                }
                alerted.widened |= wide;
                true
            }
        }
    }

    fn new_image(&mut self, cgroup: u64, tgid: u32) {
        self.alerted.remove(&(cgroup, tgid));
    }
}

/// What the workers do with an event: judge it, and report what it shows.
struct Judge {
    shared: Arc<Shared>,
    seen: Mutex<Seen>,
    /// Earlier judgements of executed files, by identity (shared by the
    /// workers: a container's events may run on either).
    judged: Mutex<Judgements>,
}

impl Judge {
    /// Whether the event needs no judging: an exec the seccomp listener
    /// checked before it ran. Read from memory only, so the reader asks it
    /// itself and hands the workers only what they must judge.
    fn already_decided(&self, event: &Event) -> bool {
        let header = event.header();
        let Event::Exec(exec) = event else {
            return false;
        };
        if header.flags & FLAG_KILLED == 0
            && self.shared.registry.has_listener(header.cgroup_id)
            && self
                .shared
                .vetted
                .take(header.tgid, abi::c_str(&exec.filename))
        {
            // The same process's later events are about a new image.
            self.seen().new_image(header.cgroup_id, header.tgid);
            return true;
        }
        false
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Handler for Judge {
    type Job = Arc<Event>;
    type Local = ExitedPaths;

    /// A container's events in order, one at a time (its cgroup).
    fn lane(event: &Arc<Event>) -> u64 {
        event.header().cgroup_id
    }

    fn handle(&self, event: Arc<Event>, exited: &mut ExitedPaths, claim: &Claim<'_, Judge>) {
        let shared = &self.shared;
        let header = *event.header();
        let Some(container) = shared.registry.by_cgroup(header.cgroup_id) else {
            // Deregistered between the event and now.
            return;
        };
        let policy = shared.policy.load();
        let finding = match &*event {
            Event::Exec(exec) => {
                self.seen().new_image(header.cgroup_id, header.tgid);
                classify_exec(exec, &container, shared, &policy, exited, &self.judged)
            }
            Event::Net(net) => judge_net(net, &policy, &container.environment),
        };
        let Some(finding) = finding else { return };
        if !claim.claim() {
            // Too late: given up and reported as unreadable in time.
            tracing::debug!(
                container = container.id,
                pid = header.tgid,
                "a classification finished after it was given up"
            );
            return;
        }
        self.report(&event, &container, &policy, finding);
    }

    fn idle(exited: &mut ExitedPaths) {
        // Resolved paths hold fds and describe the moment they were resolved.
        exited.located.clear();
        exited.since = None;
    }

    fn overdue(&self, event: Arc<Event>, in_hand: bool, stuck: usize) {
        let header = *event.header();
        let Some(container) = self.shared.registry.by_cgroup(header.cgroup_id) else {
            return;
        };
        let policy = self.shared.policy.load();
        let finding = match &*event {
            Event::Exec(exec) => {
                self.seen().new_image(header.cgroup_id, header.tgid);
                let reason = if in_hand {
                    format!(
                        "{}: the file could not be read within {} ms (its file system does \
                         not answer: a FUSE server that stopped?); {stuck} classification \
                         thread(s) left waiting on reads",
                        text(abi::c_str(&exec.filename)),
                        CLASSIFY_BOUND.as_millis()
                    )
                } else {
                    format!(
                        "{}: not judged within {} ms: every classification thread is waiting \
                         on a file system that does not answer ({stuck} left waiting)",
                        text(abi::c_str(&exec.filename)),
                        CLASSIFY_BOUND.as_millis()
                    )
                };
                tracing::warn!(
                    container = container.id,
                    pid = header.tgid,
                    reason,
                    "exec not judged in time"
                );
                Some(unread_in_time(exec, &policy, reason))
            }
            // Socket events read only /proc, never a file of the container:
            // judged here (only queued ones get here, when no worker is free).
            Event::Net(net) => judge_net(net, &policy, &container.environment),
        };
        if let Some(finding) = finding {
            self.report(&event, &container, &policy, finding);
        }
    }
}

/// The finding for an exec whose file could not be read within the bound:
/// `Unresolved` evidence that says so, and what the names recorded by the
/// kernel show, with no read of the file.
fn unread_in_time(exec: &ExecEvent, policy: &Policy, reason: String) -> Finding {
    let filename = abi::c_str(&exec.filename);
    let argv: Vec<Vec<u8>> = abi::argv_slots(&exec.argv, exec.argc)
        .map(<[u8]>::to_vec)
        .collect();
    let mut evidence = vec![Evidence::Unresolved { reason }];
    for name in [Some(filename), argv.first().map(Vec::as_slice)]
        .into_iter()
        .flatten()
    {
        let base = name.rsplit(|b| *b == b'/').next().unwrap_or(name);
        let found = Evidence::NameGiven { name: text(base) };
        if policy.is_catalogued(base) && !evidence.contains(&found) {
            evidence.push(found);
        }
    }
    Finding::new(
        evidence,
        Some(text(filename)),
        argv.iter().map(|a| text(a)).collect(),
    )
}

impl Judge {
    /// Judges a finding by the policy, acts (the enforce backstop) and alerts,
    /// once per process.
    fn report(
        &self,
        event: &Event,
        container: &ContainerRecord,
        policy: &Policy,
        finding: Finding,
    ) {
        let shared = &self.shared;
        let header = *event.header();
        let by_exec = matches!(event, Event::Exec(_));
        if !self
            .seen()
            .admit(header.cgroup_id, header.tgid, by_exec, &finding.evidence)
        {
            tracing::debug!(
                container = container.id,
                pid = header.tgid,
                "further sniffing evidence from an alerted process"
            );
            return;
        }
        let subject = Subject {
            container_id: &container.id,
            environment: &container.environment,
            annotations: &container.annotations,
            record: Some(container.clone()),
            mechanism: match event {
                Event::Exec(_) => Mechanism::ExecProbe,
                Event::Net(_) => Mechanism::SocketProbe,
            },
            tid: header.tid,
        };
        finding::judge_and_report(shared, policy, subject, finding, |finding, verdict| {
            finding.process.pid.get_or_insert(header.tgid);
            finding.process.uid.get_or_insert(header.uid);
            if container.listeners > 0 && !verdict.deny() {
                // A seccomp listener already decided (and alerted) this exec or
                // socket and let it through: reporting it again would double the
                // alert.
                return None;
            }
            let mut responses = Vec::new();
            if verdict.deny() {
                // Too late to refuse: it runs. The backstop kills it, whatever the
                // environment's other responses are.
                verdict.action = Action::Killed;
                verdict.kill = false;
                if header.flags & FLAG_KILLED != 0 {
                    responses.push("kill".to_string());
                } else {
                    match respond::kill_process(header.tgid) {
                        Ok(()) => responses.push("kill".to_string()),
                        // Gone already: it ran to its end before the backstop got
                        // to it. Say so rather than claim a kill.
                        Err(errno) => {
                            tracing::warn!(container = container.id, pid = header.tgid, %errno, "backstop kill failed");
                            verdict.action = Action::Exited;
                        }
                    }
                }
                if let (Event::Net(_), Some(init)) = (event, container.pid) {
                    // The socket outlives its creator in whoever shares or
                    // inherited its file table: end them too.
                    sweep_capture_holders(&container.id, init, &mut responses);
                }
                if let Event::Net(net) = event {
                    if net.header.kind == abi::EVENT_MIRROR && header.flags & FLAG_KILLED == 0 {
                        // Sent without a netlink address, so the probe left the
                        // kill to this check of the socket: the kernel had the
                        // batch by then and may have committed the rule.
                        tracing::warn!(container = container.id, pid = header.tgid, "a mirroring rule was sent without an address; its sender was killed after the kernel read the batch, so the rule may be in place");
                        responses.push(
                            "the rule was sent without a netlink address and may be in place: check the container's nf_tables ruleset".to_string(),
                        );
                    }
                    if sets_interface_flag(&finding.evidence) {
                        responses.push(clear_promiscuous(shared, header.tgid, container.pid));
                    }
                    if installs_tc_mirroring(&finding.evidence) {
                        responses.push(remove_tc_mirroring(shared, header.tgid, container.pid));
                    }
                }
            }
            Some(Acted {
                syscall: match event {
                    Event::Exec(_) => "execve",
                    Event::Net(net) => match net.header.kind {
                        abi::EVENT_SETSOCKOPT => "setsockopt",
                        abi::EVENT_IOCTL => "ioctl",
                        abi::EVENT_SOCKET if net.value == 1 => "socket (i386)",
                        abi::EVENT_SOCKET if net.value == 2 => "socket (x32)",
                        abi::EVENT_SOCKET if net.value == 3 => "io_uring (IORING_OP_SOCKET)",
                        abi::EVENT_NETFILTER | abi::EVENT_MIRROR | abi::EVENT_LINK
                            if net.level == 1 =>
                        {
                            "sendmsg"
                        }
                        abi::EVENT_NETFILTER | abi::EVENT_MIRROR | abi::EVENT_LINK => "sendto",
                        abi::EVENT_BPF => "bpf",
                        _ => "socket",
                    },
                },
                decision_latency: Duration::ZERO,
                responses,
                pid: header.tgid,
            })
        });
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Classifies what the kernel executed.
///
/// The file is judged, in this order, by: the file the process runs now
/// (`/proc/PID/exe`, which also reaches deleted and memfd files), if it is
/// still the file the probe recorded; else an earlier judgement of that same
/// file ([`Judgements`]); else the path the kernel recorded, resolved now (see
/// [`ExitedPaths`]), if it still leads to that file; else the names given.
/// Without a recorded identity (a kernel whose offsets were not found) the
/// live image and the resolved path are taken as they are, as before.
fn classify_exec(
    exec: &ExecEvent,
    container: &ContainerRecord,
    shared: &Shared,
    policy: &Arc<Policy>,
    exited: &mut ExitedPaths,
    judged: &Mutex<Judgements>,
) -> Option<Finding> {
    // Held for a lookup or an insert only, never across a read of the file:
    // a read that never returns must not hold up the other workers.
    let judgements = || {
        judged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let header = exec.header;
    let filename = abi::c_str(&exec.filename);
    let argv: Vec<Vec<u8>> = abi::argv_slots(&exec.argv, exec.argc)
        .map(<[u8]>::to_vec)
        .collect();
    let argv0 = argv.first().map(Vec::as_slice);
    let mut evidence = Vec::new();
    if header.flags & FLAG_KILLED != 0 {
        evidence.push(Evidence::CatalogueName {
            name: text(abi::c_str(&exec.comm)),
        });
    }
    let identity = ExecIdentity::of(exec);
    // A process that has run another file since (a launcher exec'ing through
    // an fd, say) is not judged by that later file: its own event judges it.
    let live = resolve::Resolved::running(header.tgid)
        .ok()
        .filter(|resolved| identity.is_none_or(|id| id.is_running_image(&resolved.stat)))
        // A file whose content is not remembered yet is opened now, while the
        // process still runs it: opened only when the classifier reads it, it
        // could be out of reach by then (a run through a descriptor has no
        // path), and the run would be judged benign for want of a read. If
        // the process is gone already, it is judged as a process gone.
        .and_then(|resolved| {
            if shared.classifier.has_read(policy, &resolved) {
                Some(resolved)
            } else {
                resolved.pinned().ok()
            }
        })
        .map(|resolved| Located {
            resolved,
            root: None,
            tid: header.tgid,
        });
    if live.is_none() {
        if let Some(earlier) =
            identity.and_then(|id| judgements().get(policy, header.cgroup_id, &id))
        {
            merge(&mut evidence, earlier.evidence.iter().cloned());
            merge(&mut evidence, names_given(policy, filename, argv0));
            if evidence.is_empty() {
                return None;
            }
            return Some(Finding::new(
                evidence,
                earlier.exe.clone().or_else(|| Some(text(filename))),
                argv.iter().map(|a| text(a)).collect(),
            ));
        }
    }
    let located = match &live {
        Some(live) => Some(live),
        None => exited
            .locate(header.cgroup_id, container, filename)
            .filter(|located| identity.is_none_or(|id| id.matches(&located.resolved.stat))),
    };
    if let Some(Located {
        resolved,
        root,
        tid,
    }) = located
    {
        let tid = *tid;
        let argv_read = std::cell::Cell::new(false);
        let read_args = || {
            argv_read.set(true);
            argv.clone()
        };
        let site = ExecSite {
            // The live process's root is opened only if a script or the
            // loader names another file.
            root: match &root {
                Some(root) => SiteRoot::Given(root),
                None => SiteRoot::lazy(tid),
            },
            tid,
            argv: &read_args,
        };
        // The file's own evidence, without the names this exec gave it: that
        // part stands for every exec of the same file.
        let of_file = shared
            .classifier
            .classify_exec(policy, &site, b"", None, Some(resolved));
        let exe = (!of_file.is_empty() || !evidence.is_empty())
            .then(|| procfs::path_in_container(tid, &resolved.host_path()));
        // Remembered only when it is the file's own verdict: its content was
        // read (not a process gone before its file could be opened), nothing
        // it needed was missed, and it did not depend on this exec's
        // arguments (what the loader runs).
        let complete = !argv_read.get()
            && !site.root.was_missed()
            && shared.classifier.has_read(policy, resolved);
        if let (Some(id), true) = (identity, complete) {
            judgements().insert(
                policy,
                header.cgroup_id,
                id,
                Judgement {
                    evidence: of_file.clone(),
                    exe: exe.clone().filter(|_| !of_file.is_empty()),
                },
            );
        }
        merge(&mut evidence, of_file);
        merge(&mut evidence, names_given(policy, filename, argv0));
        if evidence.is_empty() {
            return None;
        }
        let exe = exe.unwrap_or_else(|| procfs::path_in_container(tid, &resolved.host_path()));
        let mut finding = Finding::new(evidence, Some(exe), argv.iter().map(|a| text(a)).collect());
        finding.file = resolved.open().ok();
        return Some(finding);
    }
    // The file cannot be reached any more: judge by the names the kernel
    // recorded.
    merge(&mut evidence, names_given(policy, filename, argv0));
    if evidence.is_empty() {
        // A file that only a descriptor named, or that had no name left, was
        // never seen by anything but the kernel: in audit it ran, and that is
        // said rather than dropped (DESIGN.md: "in audit, let it run and say
        // why"). A path that merely resolves elsewhere now (relative to
        // another directory, replaced since) is not reported: that happens to
        // benign programs every day.
        // Without a recorded identity (a read the probe could not make) a
        // descriptor still says the file was never reachable by name.
        let descriptor = identity::names_a_descriptor(filename);
        let unlinked = identity.is_some_and(|id| id.unlinked);
        if !(unlinked || descriptor) {
            return None;
        }
        let which = match identity {
            Some(id) => format!(
                "that file (device {}:{}, inode {}{})",
                libc::major(id.dev),
                libc::minor(id.dev),
                id.ino,
                if id.unlinked { ", no name left" } else { "" },
            ),
            None => "that file (its identity was not recorded)".to_string(),
        };
        evidence.push(Evidence::Unresolved {
            reason: format!(
                "it exited (or ran another file) before its file could be read, and {which} was \
                 never judged before: it was run through {}",
                if descriptor {
                    "a file descriptor"
                } else {
                    "a file deleted before it ran"
                },
            ),
        });
    }
    Some(Finding::new(
        evidence,
        Some(text(filename)),
        argv.iter().map(|a| text(a)).collect(),
    ))
}

/// Adds each piece of `found` not in `evidence` yet.
fn merge(evidence: &mut Vec<Evidence>, found: impl IntoIterator<Item = Evidence>) {
    for found in found {
        if !evidence.contains(&found) {
            evidence.push(found);
        }
    }
}

/// The names an exec gave (its path and argv\[0\]) that the catalogue lists.
fn names_given(policy: &Policy, filename: &[u8], argv0: Option<&[u8]>) -> Vec<Evidence> {
    let mut found = Vec::new();
    for name in [Some(filename), argv0].into_iter().flatten() {
        let base = name.rsplit(|b| *b == b'/').next().unwrap_or(name);
        if policy.is_catalogued(base) {
            merge(&mut found, [Evidence::NameGiven { name: text(base) }]);
        }
    }
    found
}

/// The host path of a bundle's root filesystem (`root.path` of its
/// `config.json`, relative to the bundle unless absolute).
fn bundle_rootfs(bundle: &str) -> Option<std::path::PathBuf> {
    let bundle = std::path::Path::new(bundle);
    let config = std::fs::read(bundle.join("config.json")).ok()?;
    if config.len() > 4 * 1024 * 1024 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&config).ok()?;
    let root = value.pointer("/root/path")?.as_str()?;
    Some(bundle.join(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promiscuous() -> Evidence {
        Evidence::Promiscuous {
            method: "PACKET_ADD_MEMBERSHIP".into(),
        }
    }

    fn packet_socket() -> Evidence {
        Evidence::PacketSocket {
            family: "AF_PACKET".into(),
            socket_type: 3,
        }
    }

    #[test]
    fn widening_a_behaviour_alerted_capture_is_alerted_once_more() {
        let mut seen = Seen::default();
        assert!(seen.admit(1, 10, false, &[packet_socket()]));
        let filter = Evidence::SocketFilter {
            option: "SO_ATTACH_FILTER".into(),
        };
        assert!(!seen.admit(1, 10, false, &[filter]), "folded");
        assert!(seen.admit(1, 10, false, &[promiscuous()]), "named");
        assert!(!seen.admit(1, 10, false, &[promiscuous()]), "named once");
        let mirroring = Evidence::Mirroring {
            method: "tc mirred (RTM_NEWTFILTER)".into(),
        };
        assert!(seen.admit(1, 10, false, &[mirroring]));
        assert!(
            seen.admit(2, 10, false, &[packet_socket()]),
            "another container"
        );
    }

    #[test]
    fn a_process_the_exec_probe_named_is_alerted_once() {
        let mut seen = Seen::default();
        let name = Evidence::CatalogueName {
            name: "tcpdump".into(),
        };
        assert!(seen.admit(1, 10, true, &[name]));
        assert!(!seen.admit(1, 10, false, &[packet_socket()]));
        assert!(!seen.admit(1, 10, false, &[promiscuous()]));
        seen.new_image(1, 10);
        assert!(seen.admit(1, 10, false, &[promiscuous()]), "a new image");
    }
}
