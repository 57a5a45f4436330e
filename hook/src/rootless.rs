//! Whether the shim or hook runs where it can attach a container at all.
//!
//! The supervisor takes registrations and notify fds only from root in the
//! host's namespaces (`SO_PEERCRED`, then the peer's `/proc` entry), and its
//! runtime directory is root's alone. A runtime started by an unprivileged
//! user — rootless Podman, which runs runc inside a user namespace of its
//! own where uid 0 is the user's uid on the host, or `runc --rootless` run
//! by hand — can never reach it: its containers would start unwatched.
//! Before this check they did so silently, a `staging` container's tcpdump
//! included. Now an enforce environment refuses such a container (nothing
//! could enforce it) and an audit environment starts it with a warning and
//! a note, because auditing was all it would have had.

use std::io::Read;
use std::path::{Path, PathBuf};

use sniffguard_common::policy::Mode;

/// `/proc/self/uid_map` of the initial user namespace maps every uid to
/// itself: one line, `0 0 4294967295`.
const FULL_RANGE: u64 = 4_294_967_295;

/// Most bytes read from `/proc/self/uid_map` (the kernel allows 340 lines of
/// three numbers each, well under this).
const MAX_UID_MAP_BYTES: u64 = 16 * 1024;

/// Why containers started from here cannot be supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupervisable {
    /// The process runs in a user namespace other than the host's.
    UserNamespace {
        /// The host uid that this namespace's uid 0 maps to, when it maps one.
        host_uid_of_root: Option<u64>,
    },
    /// The process runs in the host's user namespace, but not as root.
    NotRoot {
        /// The effective uid.
        euid: u32,
    },
}

impl std::fmt::Display for Unsupervisable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupervisable::UserNamespace {
                host_uid_of_root: Some(uid),
            } => write!(
                f,
                "the container runtime runs in a user namespace (its uid 0 is uid {uid} on the host: rootless Podman or another rootless engine)"
            ),
            Unsupervisable::UserNamespace {
                host_uid_of_root: None,
            } => write!(
                f,
                "the container runtime runs in a user namespace that is not the host's (rootless Podman or another rootless engine)"
            ),
            Unsupervisable::NotRoot { euid } => write!(
                f,
                "the container runtime runs as uid {euid}, not as root"
            ),
        }
    }
}

/// Whether this process can attach containers to the supervisor; `None` when
/// it can (or when `/proc/self/uid_map` cannot be read, which says nothing
/// either way: reaching the supervisor then decides, as before).
pub fn check() -> Option<Unsupervisable> {
    let mut map = String::new();
    let read = std::fs::File::open("/proc/self/uid_map")
        .and_then(|file| file.take(MAX_UID_MAP_BYTES).read_to_string(&mut map));
    let map = read.ok().map(|_| map);
    judge(nix::unistd::geteuid().as_raw(), map.as_deref())
}

/// [`check`] on given inputs: the effective uid and the text of
/// `/proc/self/uid_map`.
pub fn judge(euid: u32, uid_map: Option<&str>) -> Option<Unsupervisable> {
    if let Some(map) = uid_map {
        let lines: Vec<Vec<u64>> = map
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                line.split_whitespace()
                    .map(|n| n.parse::<u64>().unwrap_or(u64::MAX))
                    .collect()
            })
            .collect();
        let initial = lines.len() == 1 && lines[0] == [0, 0, FULL_RANGE];
        if !initial {
            let host_uid_of_root = lines
                .iter()
                .find(|l| l.len() == 3 && l[0] == 0 && l[2] > 0 && l[1] != u64::MAX)
                .map(|l| l[1]);
            return Some(Unsupervisable::UserNamespace { host_uid_of_root });
        }
    }
    // (uid_t)-1 is no one's uid: it is what a refused geteuid returns (a
    // seccomp filter's EPERM), which says nothing either way.
    (euid != 0 && euid != u32::MAX).then_some(Unsupervisable::NotRoot { euid })
}

/// What to do with a container that cannot be supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Refuse it, with this message.
    Refuse(String),
    /// Start it unwatched, with this warning.
    Warn(String),
}

/// Decides for a container of `environment` (`mode`) that cannot be
/// supervised because of `why`. `who` names the program speaking
/// (`sniffguard-runtime`, `sniffguard-hook`).
pub fn decide(who: &str, why: &Unsupervisable, environment: &str, mode: Mode) -> Verdict {
    match mode {
        Mode::Enforce => Verdict::Refuse(format!(
            "{who}: container refused: {why}, and the sniffguard supervisor accepts containers only from root on the host; environment {environment:?} enforces, and nothing could enforce it here. Run the container with a rootful engine (sudo podman), or ask the node's operator for an audit environment"
        )),
        Mode::Audit => Verdict::Warn(format!(
            "{who}: WARNING: this container is NOT watched for sniffing: {why}, and the sniffguard supervisor accepts containers only from root on the host; environment {environment:?} only audits, so the container starts unwatched"
        )),
    }
}

/// Leaves a note that a container started unwatched because of `why`: in the
/// supervisor's `RUNTIME_DIR/unsupervised/` when this process may write there
/// (the supervisor lists it in `status`), else in
/// `$XDG_RUNTIME_DIR/sniffguard/unsupervised/` (the rootless user's own).
/// Returns where it was written, or every failure.
pub fn record(
    runtime_dir: &Path,
    name: &str,
    environment: &str,
    why: &Unsupervisable,
) -> Result<PathBuf, String> {
    let mut dirs = vec![sniffguard_common::paths::unsupervised_dir(runtime_dir)];
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        dirs.push(
            Path::new(&xdg)
                .join("sniffguard")
                .join(sniffguard_common::paths::UNSUPERVISED_DIR),
        );
    }
    let note = serde_json::json!({
        "container": name,
        "environment": environment,
        "reason": why.to_string(),
        "time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    let mut failures = Vec::new();
    for dir in dirs {
        match write_note(&dir, name, &note) {
            Ok(path) => return Ok(path),
            Err(err) => failures.push(format!("{}: {err}", dir.display())),
        }
    }
    Err(failures.join("; "))
}

fn write_note(dir: &Path, name: &str, note: &serde_json::Value) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(format!("{note}\n").as_bytes())?;
    Ok(path)
}

/// The warning of [`Verdict::Warn`] completed with where the start was recorded.
pub fn warning_with_record(warning: &str, recorded: &Result<PathBuf, String>) -> String {
    match recorded {
        Ok(path) => format!("{warning} (recorded in {})", path.display()),
        Err(err) => format!("{warning} (and it could not be recorded: {err})"),
    }
}

/// The words every [`Verdict::Warn`] carries, for people (and tests) who
/// search logs for unwatched starts.
pub const WARNING_MARK: &str = "is NOT watched for sniffing";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_root_is_supervisable() {
        assert_eq!(judge(0, Some("         0          0 4294967295\n")), None);
        // No /proc: nothing to say.
        assert_eq!(judge(0, None), None);
    }

    #[test]
    fn rootless_podman_maps_are_user_namespaces() {
        let single = "         0      61234          1\n";
        assert_eq!(
            judge(0, Some(single)),
            Some(Unsupervisable::UserNamespace {
                host_uid_of_root: Some(61234)
            })
        );
        let ranges = "0 1001 1\n1 100000 65536\n";
        assert_eq!(
            judge(0, Some(ranges)),
            Some(Unsupervisable::UserNamespace {
                host_uid_of_root: Some(1001)
            })
        );
        // A namespace that maps everything but is not the identity still counts.
        assert!(judge(0, Some("0 1 4294967295\n")).is_some());
        // An empty map (a namespace before its map is written) maps nothing.
        assert_eq!(
            judge(0, Some("")),
            Some(Unsupervisable::UserNamespace {
                host_uid_of_root: None
            })
        );
        // Garbage is not mistaken for the initial namespace.
        assert!(judge(0, Some("zero zero all\n")).is_some());
    }

    #[test]
    fn a_refused_geteuid_says_nothing() {
        assert_eq!(judge(u32::MAX, Some("0 0 4294967295\n")), None);
    }

    #[test]
    fn unprivileged_user_on_the_host() {
        assert_eq!(
            judge(1000, Some("0 0 4294967295\n")),
            Some(Unsupervisable::NotRoot { euid: 1000 })
        );
    }

    #[test]
    fn enforce_refuses_and_audit_warns() {
        let why = Unsupervisable::UserNamespace {
            host_uid_of_root: Some(1001),
        };
        let refused = decide("sniffguard-runtime", &why, "staging", Mode::Enforce);
        let Verdict::Refuse(message) = refused else {
            panic!("{refused:?}")
        };
        assert!(message.contains("uid 1001 on the host"), "{message}");
        assert!(message.contains("\"staging\" enforces"), "{message}");
        let warned = decide("sniffguard-hook", &why, "ci", Mode::Audit);
        let Verdict::Warn(message) = warned else {
            panic!("{warned:?}")
        };
        assert!(message.contains(WARNING_MARK), "{message}");
    }

    #[test]
    fn notes_go_to_the_first_writable_dir() {
        let dir = tempfile::tempdir().unwrap();
        let why = Unsupervisable::NotRoot { euid: 7 };
        let path = record(dir.path(), "c1", "ci", &why).unwrap();
        assert!(path.starts_with(dir.path().join("unsupervised")));
        let note: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(note["environment"], "ci");
        assert_eq!(note["reason"], why.to_string());
    }
}
