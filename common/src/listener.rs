//! The `listenerMetadata` string the shim writes into a container's seccomp
//! profile and the runtime hands back to the supervisor with the notify fd.
//!
//! It names the container's environment and, after a `;`, what else the filter
//! promises. Environment names are `[a-z0-9_-]` (see
//! [`crate::policy::valid_environment_name`]), so the separator cannot occur in
//! one. A bare environment name is what shims before the promise wrote: it
//! promises nothing more.

/// The promise that the filter also notifies every syscall that changes what a
/// path means to the container's processes (`chroot`, `pivot_root`, `setns`,
/// `mount`, `umount2`, `move_mount`). While none has been notified, every
/// process of the filter shares the root of the first one that execs.
pub const ROOT_CHANGES_NOTIFIED: &str = "roots";

/// The syscalls behind [`ROOT_CHANGES_NOTIFIED`].
pub const ROOT_CHANGING_SYSCALLS: [&str; 6] = [
    "chroot",
    "pivot_root",
    "setns",
    "mount",
    "umount2",
    "move_mount",
];

/// What a listener's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerMetadata {
    /// The environment the container runs in (empty: not named).
    pub environment: String,
    /// Whether the filter notifies [`ROOT_CHANGING_SYSCALLS`].
    pub root_changes_notified: bool,
}

impl ListenerMetadata {
    /// Reads the metadata. Unknown promises are ignored: a newer shim's extra
    /// promise must not make an older supervisor refuse the container.
    pub fn parse(text: &str) -> ListenerMetadata {
        let mut parts = text.split(';');
        let environment = parts.next().unwrap_or_default().to_string();
        let root_changes_notified = parts.any(|p| p == ROOT_CHANGES_NOTIFIED);
        ListenerMetadata {
            environment,
            root_changes_notified,
        }
    }

    /// The text to write into `listenerMetadata`.
    pub fn render(&self) -> String {
        if self.root_changes_notified {
            format!("{};{ROOT_CHANGES_NOTIFIED}", self.environment)
        } else {
            self.environment.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_tolerates_old_and_new_shims() {
        let m = ListenerMetadata {
            environment: "staging".into(),
            root_changes_notified: true,
        };
        assert_eq!(m.render(), "staging;roots");
        assert_eq!(ListenerMetadata::parse(&m.render()), m);
        let old = ListenerMetadata::parse("production");
        assert_eq!(old.environment, "production");
        assert!(!old.root_changes_notified);
        let newer = ListenerMetadata::parse("ci;future;roots");
        assert!(newer.root_changes_notified);
        assert_eq!(ListenerMetadata::parse("").environment, "");
    }
}
