//! Paths of processes that exited before their exec event was read, resolved
//! now in their container's root and kept for a moment so that a storm of one
//! short command resolves its path once per poll interval, not once per exec.

use std::collections::HashMap;

use std::time::Instant;

use super::{bundle_rootfs, POLL_INTERVAL};
use crate::registry::ContainerRecord;
use crate::resolve;

/// How many paths of exited processes one drain keeps resolved (each entry
/// holds up to two fds: the file and its container's root).
const MAX_EXITED_PATHS: usize = 32;

/// An exec's file, located for classification.
pub(super) struct Located {
    pub(super) resolved: resolve::Resolved,
    /// The root it was resolved in, when not the live process's own.
    pub(super) root: Option<std::os::fd::OwnedFd>,
    /// The process whose root and working directory the path was resolved
    /// against (0 for a bundle's root filesystem).
    pub(super) tid: u32,
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
pub(super) struct ExitedPaths {
    pub(super) located: HashMap<(u64, Vec<u8>), Option<Located>>,
    /// When the oldest resolution held was made.
    pub(super) since: Option<Instant>,
}

impl ExitedPaths {
    pub(super) fn locate(
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
