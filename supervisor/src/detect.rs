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
use sniffguard_common::abi::{self, linux, Event, ExecEvent, NetEvent, FLAG_KILLED};
use sniffguard_common::capture;
use sniffguard_common::policy::Policy;
use std::os::fd::AsFd;

use crate::alert::Mechanism;
use crate::classify::{Evidence, ExecSite, SiteRoot};
use crate::finding::{self, Acted, Finding, Subject};
use crate::lanes::{Claim, Handler, Lanes, CLASSIFY_BOUND};
use crate::procfs;
use crate::registry::ContainerRecord;
use crate::verdict::Action;
use crate::{resolve, respond, Shared};

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
/// and promiscuous calls make one alert, not four.
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

/// How many paths of exited processes one drain keeps resolved (each entry
/// holds up to two fds: the file and its container's root).
const MAX_EXITED_PATHS: usize = 32;

/// An exec's file, located for classification.
struct Located {
    resolved: resolve::Resolved,
    /// The root it was resolved in, when not the live process's own.
    root: Option<std::os::fd::OwnedFd>,
    /// The process whose root and working directory the path was resolved
    /// against (0 for a bundle's root filesystem).
    tid: u32,
}

/// Paths of exited processes, resolved once per batch of events: per
/// [`POLL_INTERVAL`] at most, and anew once a worker's queue ran empty.
///
/// A process that has exited by the time its event is read can only be judged
/// by resolving the path it ran *now*, in its container's root. Events judged
/// within one poll interval are judged at about that same moment, so one
/// resolution per container and path serves them all: an exec storm of one
/// short command (a build running `true` or `sed` thousands of times) resolves
/// it every 2 ms while events flow, rather than once per exec. Older
/// resolutions are dropped: the container may have put another file at the
/// path since. Each event is still classified on its own (its arguments may
/// differ).
#[derive(Default)]
struct ExitedPaths {
    located: HashMap<(u64, Vec<u8>), Option<Located>>,
    /// When the oldest resolution held was made.
    since: Option<Instant>,
}

impl ExitedPaths {
    fn locate(
        &mut self,
        cgroup: u64,
        container: &ContainerRecord,
        filename: &[u8],
    ) -> Option<&Located> {
        let key = (cgroup, filename.to_vec());
        let now = Instant::now();
        if self
            .since
            .is_none_or(|since| now.duration_since(since) >= POLL_INTERVAL)
        {
            self.located.clear();
            self.since = Some(now);
        }
        if self.located.len() >= MAX_EXITED_PATHS && !self.located.contains_key(&key) {
            // Bounded: the fds held are dropped, not the resolutions to come.
            self.located.clear();
        }
        self.located
            .entry(key)
            .or_insert_with(|| locate_exited(container, filename))
            .as_ref()
    }
}

/// The file at `filename` now: in the container's root through its init
/// process, or, once the whole container is gone, in the bundle's root
/// filesystem on the host (mounts made inside the container are not there).
fn locate_exited(container: &ContainerRecord, filename: &[u8]) -> Option<Located> {
    let in_init = || {
        let init = container.pid?;
        let root = resolve::open_root(init).ok()?;
        let resolved = resolve::resolve(&root, init, resolve::Base::Cwd, filename).ok()?;
        Some(Located {
            resolved,
            root: Some(root),
            tid: init,
        })
    };
    in_init().or_else(|| {
        let root = resolve::open_dir(&bundle_rootfs(container.bundle.as_deref()?)?).ok()?;
        let resolved = resolve::open_in_root(&root, filename).ok()?;
        Some(Located {
            resolved,
            root: Some(root),
            // No process is left to ask about the container's view.
            tid: 0,
        })
    })
}

#[derive(Default)]
struct Seen {
    alerted: HashMap<(u64, u32), ()>,
}

impl Seen {
    fn first(&mut self, cgroup: u64, tgid: u32) -> bool {
        if self.alerted.len() >= MAX_REMEMBERED {
            self.alerted.clear();
        }
        self.alerted.insert((cgroup, tgid), ()).is_none()
    }

    fn new_image(&mut self, cgroup: u64, tgid: u32) {
        self.alerted.remove(&(cgroup, tgid));
    }
}

/// What the workers do with an event: judge it, and report what it shows.
struct Judge {
    shared: Arc<Shared>,
    seen: Mutex<Seen>,
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
                classify_exec(exec, &container, shared, &policy, exited)
            }
            Event::Net(net) => judge_net(net, &policy),
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
            Event::Net(net) => judge_net(net, &policy),
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

/// A socket-probe event's finding, when the policy looks at behaviour.
fn judge_net(net: &NetEvent, policy: &Policy) -> Option<Finding> {
    if !policy.catalogue.behaviour {
        return None;
    }
    classify_net(net, policy).map(|evidence| {
        Finding::new(
            vec![evidence],
            procfs::running_exe(net.header.tgid),
            procfs::cmdline(net.header.tgid),
        )
    })
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
        if !self.seen().first(header.cgroup_id, header.tgid) {
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
                        abi::EVENT_NETFILTER if net.level == 1 => "sendmsg",
                        abi::EVENT_NETFILTER => "sendto",
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

/// Classifies what the kernel executed, by the file the process now runs
/// (`/proc/PID/exe`, which also reaches deleted and memfd files).
fn classify_exec(
    exec: &ExecEvent,
    container: &ContainerRecord,
    shared: &Shared,
    policy: &Policy,
    exited: &mut ExitedPaths,
) -> Option<Finding> {
    let header = exec.header;
    let filename = abi::c_str(&exec.filename);
    let argv: Vec<Vec<u8>> = abi::argv_slots(&exec.argv, exec.argc)
        .map(<[u8]>::to_vec)
        .collect();
    let mut evidence = Vec::new();
    if header.flags & FLAG_KILLED != 0 {
        evidence.push(Evidence::CatalogueName {
            name: text(abi::c_str(&exec.comm)),
        });
    }
    // The file the process runs now: through /proc while it lives (that also
    // reaches deleted and memfd files), else the path the kernel recorded,
    // resolved now (see ExitedPaths).
    let live = resolve::Resolved::running(header.tgid)
        .ok()
        .map(|resolved| Located {
            resolved,
            root: None,
            tid: header.tgid,
        });
    let located = match &live {
        Some(live) => Some(live),
        None => exited.locate(header.cgroup_id, container, filename),
    };
    if let Some(Located {
        resolved,
        root,
        tid,
    }) = located
    {
        let tid = *tid;
        let argv_copy = argv.clone();
        let read_args = move || argv_copy.clone();
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
        for found in shared.classifier.classify_exec(
            policy,
            &site,
            filename,
            argv.first().map(Vec::as_slice),
            Some(resolved),
        ) {
            if !evidence.contains(&found) {
                evidence.push(found);
            }
        }
        if evidence.is_empty() {
            return None;
        }
        let mut finding = Finding::new(
            evidence,
            Some(procfs::path_in_container(tid, &resolved.host_path())),
            argv.iter().map(|a| text(a)).collect(),
        );
        finding.file = resolved.open().ok();
        return Some(finding);
    }
    // The process is already gone: judge by the names the kernel recorded.
    for name in [Some(filename), argv.first().map(Vec::as_slice)]
        .into_iter()
        .flatten()
    {
        let base = name.rsplit(|b| *b == b'/').next().unwrap_or(name);
        if policy.is_catalogued(base) {
            let found = Evidence::NameGiven { name: text(base) };
            if !evidence.contains(&found) {
                evidence.push(found);
            }
        }
    }
    if evidence.is_empty() {
        return None;
    }
    Some(Finding::new(
        evidence,
        Some(text(filename)),
        argv.iter().map(|a| text(a)).collect(),
    ))
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

/// Turns a socket-probe event into evidence. The kernel side already filtered
/// on the syscall arguments; filters are only sniffing on packet sockets.
fn classify_net(net: &NetEvent, policy: &Policy) -> Option<Evidence> {
    match net.header.kind {
        abi::EVENT_SOCKET => {
            capture::capture_socket(net.family.into(), net.sock_type.into(), net.protocol.into())
                .filter(|rule| {
                    policy.catalogue.raw_icmp_is_capture
                        || !capture::is_raw_icmp(rule, net.protocol.into())
                })
                .map(|rule| finding::capture_socket_evidence(rule, net.sock_type))
        }
        abi::EVENT_SETSOCKOPT if u64::from(net.level) == linux::SOL_PACKET => {
            Some(Evidence::Promiscuous {
                method: "PACKET_ADD_MEMBERSHIP".into(),
            })
        }
        abi::EVENT_SETSOCKOPT => {
            is_packet_socket(net.header.tgid, net.fd).then(|| Evidence::SocketFilter {
                option: if u64::from(net.optname) == linux::SO_ATTACH_BPF {
                    "SO_ATTACH_BPF".into()
                } else {
                    "SO_ATTACH_FILTER".into()
                },
            })
        }
        abi::EVENT_NETFILTER => netfilter_binding(net),
        abi::EVENT_IOCTL => Some(Evidence::Promiscuous {
            method: "SIOCSIFFLAGS".into(),
        }),
        _ => None,
    }
}

/// An NFLOG or NFQUEUE configuration message the probe saw sent. Its bytes
/// were read from the sender's memory: what the socket is, is checked here
/// while the sender lives (a netfilter netlink socket, `/proc/PID/net/netlink`
/// protocol 12); one that is gone already, or that the probe killed, is taken
/// as the probe saw it.
fn netfilter_binding(net: &NetEvent) -> Option<Evidence> {
    // A sender the probe killed is reported whatever its socket was.
    if net.header.flags & FLAG_KILLED == 0
        && !socket_in_table(net.header.tgid, net.fd, "netlink", |fields| {
            fields.get(1) == Some(&"12")
        })
        .unwrap_or(true)
    {
        return None;
    }
    let method = format!("nlmsg_type {:#06x} on NETLINK_NETFILTER", net.optname);
    match u16::try_from(net.optname).ok()? {
        linux::NFULNL_CONFIG_TYPE => Some(Evidence::NetfilterLog { method }),
        linux::NFQNL_CONFIG_TYPE => Some(Evidence::NetfilterQueue { method }),
        _ => None,
    }
}

/// Whether fd `fd` of `tgid` is a socket listed in `/proc/PID/net/TABLE` on a
/// line whose fields `select` accepts; `None` when the process or its fd is
/// gone.
fn socket_in_table(
    tgid: u32,
    fd: u32,
    table: &str,
    select: impl Fn(&[&str]) -> bool,
) -> Option<bool> {
    let link = std::fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    let link = link.to_string_lossy();
    let Some(inode) = link
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
    else {
        return Some(false);
    };
    let text = std::fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
    Some(text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.last() == Some(&inode) && select(&fields)
    }))
}

/// Whether fd `fd` of `tgid` is a packet socket: its inode is listed in the
/// process's `/proc/PID/net/packet`.
fn is_packet_socket(tgid: u32, fd: u32) -> bool {
    socket_in_table(tgid, fd, "packet", |_| true).unwrap_or(false)
}

/// Ends every process of the container of `init` that holds a capture
/// socket, now and once more a moment later: the creator was killed at the
/// socket call's entry, and the call may complete (installing the fd in a
/// shared file table) just after the first look.
fn sweep_capture_holders(container: &str, init: u32, responses: &mut Vec<String>) {
    let killed = crate::sweep::end_capture_holders(init);
    if !killed.is_empty() {
        tracing::warn!(container, pids = ?killed, "capture socket holders ended");
        responses.push(format!(
            "ended {} other holder(s) of the capture socket",
            killed.len()
        ));
    }
    let container = container.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let killed = crate::sweep::end_capture_holders(init);
        if !killed.is_empty() {
            tracing::warn!(container, pids = ?killed, "capture socket holders ended (second look)");
        }
    });
}
