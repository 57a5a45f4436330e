//! Who is on the other end of a socket, and what it may ask.
//!
//! Root alone is not enough: a container's root is uid 0 too, and a container
//! that can reach the runtime directory (a `hostPath: /run`, `-v /run:/run`)
//! would otherwise grant itself sniffing. So every peer is identified by what
//! the kernel says of it (`SO_PEERCRED`, then its `/proc` entry) and judged by
//! where it runs:
//! - every request needs uid 0, the host's pid namespace, and a process that is
//!   not in the cgroup of a container the supervisor watches;
//! - an operator's request (grant, revoke, status, subscribe) also needs the
//!   host's mount namespace: a container sharing the host's pids still has a
//!   mount namespace of its own;
//! - a hook's request must fit the container it names (see [`crate::api`]).
//!
//! "The host" is what pid 1 of the supervisor's pid namespace runs in (the
//! node's init under systemd, and under a DaemonSet with `hostPID` too), or the
//! supervisor's own namespaces (an operator who `kubectl exec`s into the
//! supervisor's pod). They are read once at start-up ([`remember_host`]), while
//! the supervisor may still read pid 1's `/proc` entry.

use std::sync::OnceLock;

use tokio::net::UnixStream;

/// What the kernel says of a connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its uid.
    pub uid: u32,
    /// Its pid, in the supervisor's pid namespace (the kernel translates it);
    /// `None` when the peer lives in a pid namespace the supervisor cannot see
    /// into from above (which is itself a reason to refuse).
    pub pid: Option<u32>,
    /// Its pid namespace inode.
    pub pid_ns: Option<u64>,
    /// Its mount namespace inode.
    pub mnt_ns: Option<u64>,
    /// Its cgroup v2 id.
    pub cgroup_id: Option<u64>,
    /// Its command line, for records (at most `MAX_CMDLINE` bytes).
    pub cmdline: String,
}

/// Bytes of a peer's command line kept for records.
const MAX_CMDLINE: usize = 512;

/// What a peer asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A runtime's hook or the runtime itself (register, deregister, ping, the
    /// seccomp notify fd).
    Runtime,
    /// An operator (grant, revoke, status, subscribe).
    Operator,
}

/// The namespace inode `/proc/PID/ns/NAME` links to.
fn namespace(pid: &str, name: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix(name)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The namespaces a peer may run in: pid 1's and the supervisor's own.
#[derive(Debug, Clone, Default)]
struct HostNamespaces {
    pid: Vec<u64>,
    mnt: Vec<u64>,
}

static HOST: OnceLock<HostNamespaces> = OnceLock::new();

/// Reads the host's namespaces (pid 1's and this process's). Call it at
/// start-up, before capabilities are dropped: afterwards pid 1's entry may be
/// out of reach. Later calls change nothing.
pub fn remember_host() {
    HOST.get_or_init(|| {
        let read = |name: &str| -> Vec<u64> {
            let mut found: Vec<u64> = ["1", "self"]
                .into_iter()
                .filter_map(|pid| namespace(pid, name))
                .collect();
            found.dedup();
            found
        };
        HostNamespaces {
            pid: read("pid"),
            mnt: read("mnt"),
        }
    });
}

fn host() -> &'static HostNamespaces {
    remember_host();
    HOST.get_or_init(HostNamespaces::default)
}

impl Peer {
    /// Identifies the peer of `stream`.
    pub fn of(stream: &UnixStream) -> Result<Peer, String> {
        let cred = stream
            .peer_cred()
            .map_err(|err| format!("cannot read peer credentials: {err}"))?;
        let pid = cred
            .pid()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p != 0);
        let proc_pid = pid.map(|p| p.to_string());
        let cmdline = proc_pid
            .as_deref()
            .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|raw| {
                let raw = &raw[..raw.len().min(MAX_CMDLINE)];
                String::from_utf8_lossy(raw)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        Ok(Peer {
            uid: cred.uid(),
            pid,
            pid_ns: proc_pid.as_deref().and_then(|p| namespace(p, "pid")),
            mnt_ns: proc_pid.as_deref().and_then(|p| namespace(p, "mnt")),
            cgroup_id: pid.and_then(sniffguard_common::cgroups::cgroup_id),
            cmdline,
        })
    }

    /// One line for logs, alerts and grant records.
    pub fn describe(&self) -> String {
        let pid = self.pid.map_or("?".to_string(), |p| p.to_string());
        format!("uid {} pid {pid} ({})", self.uid, self.cmdline)
    }

    /// Whether this peer may ask for what `role` covers; `Err` says why not.
    /// `in_container` tells whether a cgroup id belongs to a watched container.
    pub fn authorise(&self, role: Role, in_container: impl Fn(u64) -> bool) -> Result<(), String> {
        if self.uid != 0 {
            return Err(format!("peer uid {} is not root", self.uid));
        }
        let host = host();
        if !self.pid_ns.is_some_and(|ns| host.pid.contains(&ns)) {
            return Err(format!(
                "the peer does not run in the host's pid namespace (peer {}, host {:?})",
                shown(self.pid_ns),
                host.pid
            ));
        }
        if let Some(cgroup) = self.cgroup_id.filter(|id| in_container(*id)) {
            return Err(format!(
                "the peer runs inside a watched container (cgroup {cgroup})"
            ));
        }
        if role == Role::Operator && !self.mnt_ns.is_some_and(|ns| host.mnt.contains(&ns)) {
            return Err(format!(
                "the peer does not run in the host's mount namespace (peer {}, host {:?})",
                shown(self.mnt_ns),
                host.mnt
            ));
        }
        Ok(())
    }
}

/// A namespace inode for messages.
fn shown(inode: Option<u64>) -> String {
    inode.map_or_else(|| "unreadable".to_string(), |i| i.to_string())
}

/// The parent of process `pid`, from `/proc/PID/status`.
pub fn parent_of(pid: u32) -> Option<u32> {
    crate::procfs::read_status(pid)?.get("PPid")?.parse().ok()
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
pub fn is_gone(pid: u32) -> bool {
    crate::procfs::read_status(pid).is_none_or(|status| {
        status
            .get("State")
            .is_some_and(|s| s.starts_with(['Z', 'X']))
    })
}

/// Checks with `SO_PEERCRED` that the peer runs as root: what every socket of
/// the supervisor asks at the least.
pub fn require_root(stream: &UnixStream) -> Result<(), String> {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 => Ok(()),
        Ok(cred) => Err(format!(
            "peer uid {} (pid {:?}) is not root",
            cred.uid(),
            cred.pid()
        )),
        Err(err) => Err(format!("cannot read peer credentials: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Peer {
        let pid = std::process::id();
        let proc_pid = pid.to_string();
        Peer {
            uid: 0,
            pid: Some(pid),
            pid_ns: namespace(&proc_pid, "pid"),
            mnt_ns: namespace(&proc_pid, "mnt"),
            cgroup_id: Some(42),
            cmdline: "test".into(),
        }
    }

    #[test]
    fn host_processes_pass_and_others_are_told_why_not() {
        let host = me();
        assert!(host.authorise(Role::Operator, |_| false).is_ok());
        let in_container = host.authorise(Role::Runtime, |id| id == 42).unwrap_err();
        assert!(
            in_container.contains("inside a watched container"),
            "{in_container}"
        );
        let other_ns = Peer {
            pid_ns: Some(1),
            ..me()
        };
        assert!(other_ns.authorise(Role::Runtime, |_| false).is_err());
        let own_mounts = Peer {
            mnt_ns: Some(1),
            ..me()
        };
        assert!(own_mounts.authorise(Role::Runtime, |_| false).is_ok());
        let refused = own_mounts.authorise(Role::Operator, |_| false).unwrap_err();
        assert!(refused.contains("mount namespace"), "{refused}");
        let user = Peer { uid: 1000, ..me() };
        assert!(user.authorise(Role::Runtime, |_| false).is_err());
    }

    #[test]
    fn parents_and_zombies_are_read_from_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert_eq!(parent_of(child.id()), Some(std::process::id()));
        assert!(!is_gone(child.id()));
        child.kill().unwrap();
        // Killed but not reaped: a zombie counts as gone (waited for, bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !is_gone(child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(is_gone(child.id()));
        child.wait().unwrap();
        assert!(is_gone(child.id()));
    }
}
