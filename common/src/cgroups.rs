//! cgroup v2 identities of containers, as the eBPF container filter sees
//! them (`bpf_get_current_cgroup_id` is the inode of the task's v2 cgroup).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest `/proc/PID/cgroup` read; a few lines in practice.
const MAX_CGROUP_FILE_BYTES: usize = 64 * 1024;

/// Where the cgroup v2 hierarchy is mounted on this host: the hybrid layout's
/// `unified` directory, or the root of a pure v2 host.
pub fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|root| root.join("cgroup.controllers").exists())
}

/// The cgroup v2 path of `pid` as `/proc/PID/cgroup` states it (the `0::` line).
pub fn cgroup2_path(pid: u32) -> Option<String> {
    let text = fs::read(format!("/proc/{pid}/cgroup")).ok()?;
    let text = String::from_utf8_lossy(&text[..text.len().min(MAX_CGROUP_FILE_BYTES)]).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string)
}

/// The cgroup v2 ids the host's own processes live in: the hierarchy's root
/// and this process's own cgroup. Watching either would report (and in enforce,
/// kill) host processes.
pub fn host_cgroup_ids() -> Vec<u64> {
    let Some(root) = cgroup2_root() else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = fs::metadata(&root).map(|m| m.ino()).into_iter().collect();
    if let Some(own) = inode_of(&root, &cgroup2_path(std::process::id()).unwrap_or_default()) {
        ids.push(own);
    }
    ids
}

/// The inode of `pid`'s cgroup v2 directory: the id the kernel reports as
/// `bpf_get_current_cgroup_id()` for tasks in it.
pub fn cgroup_id(pid: u32) -> Option<u64> {
    let root = cgroup2_root()?;
    inode_of(&root, &cgroup2_path(pid)?)
}

/// The inode of the cgroup at `relative` (as `/proc/PID/cgroup` names it).
fn inode_of(root: &Path, relative: &str) -> Option<u64> {
    let dir = join_cgroup(root, relative)?;
    fs::metadata(dir).ok().map(|m| m.ino())
}

/// Parent of the cgroups sniffguard creates for containers that have none.
pub const OWN_CGROUP_PARENT: &str = "sniffguard";

/// Gives the container of init process `pid` a cgroup v2 identity of its own and
/// returns its id.
///
/// The eBPF probes recognise a container by its cgroup v2 id. A runtime that
/// manages only cgroup v1 (crun on a hybrid host, run with the v2 mount hidden)
/// leaves the container in the caller's v2 cgroup, shared with host processes.
/// Returns `None` when this process cannot see a v2 hierarchy (the hook of such a
/// runtime runs with it hidden: the supervisor then does it at registration).
/// Such a container is moved into an empty leaf `sniffguard/ID` of the v2
/// hierarchy, created for it: no controller is enabled there, so nothing about
/// its resource limits changes, and its children inherit the leaf.
pub fn ensure_own_cgroup(pid: u32, id: &str) -> Option<u64> {
    own_cgroup(pid, id).ok()
}

/// [`ensure_own_cgroup`], saying why it could not.
pub fn own_cgroup(pid: u32, id: &str) -> Result<u64, String> {
    let root = cgroup2_root().ok_or("no cgroup v2 hierarchy is visible")?;
    let current =
        cgroup2_path(pid).ok_or_else(|| format!("/proc/{pid}/cgroup names no v2 cgroup"))?;
    // A cgroup the runtime made for this container carries its id in its path
    // (runc's `/ID`, systemd's `…-ID.scope`, Kubernetes' `…/pod…/ID`). Any
    // other (the root, the caller's own) is shared with processes outside it.
    if current != "/" && current.contains(id) {
        // Read once: the path just read is the one to identify.
        return inode_of(&root, &current).ok_or_else(|| format!("cannot stat cgroup {current}"));
    }
    let leaf = root.join(OWN_CGROUP_PARENT).join(id);
    let shown = leaf.display();
    fs::create_dir_all(&leaf).map_err(|e| format!("cannot create {shown}: {e}"))?;
    fs::write(leaf.join("cgroup.procs"), pid.to_string())
        .map_err(|e| format!("cannot move {pid} into {shown}: {e}"))?;
    fs::metadata(&leaf)
        .map(|m| m.ino())
        .map_err(|e| format!("cannot stat {shown}: {e}"))
}

/// Creates [`OWN_CGROUP_PARENT`] in the v2 hierarchy if it is missing. The
/// hierarchy's root is mode 0555: creating in it takes `CAP_DAC_OVERRIDE`,
/// which the supervisor gives up after start-up, while the parent itself is
/// its owner's to add leaves to. No v2 hierarchy: nothing to do.
pub fn prepare_own_cgroup_parent() -> Result<(), String> {
    let Some(root) = cgroup2_root() else {
        return Ok(());
    };
    let parent = root.join(OWN_CGROUP_PARENT);
    fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))
}

/// Removes the leaf [`ensure_own_cgroup`] created for container `id`, if any.
/// Only an empty cgroup can be removed, so this never disturbs a live process.
pub fn remove_own_cgroup(id: &str) {
    if let Some(root) = cgroup2_root() {
        let _ = fs::remove_dir(root.join(OWN_CGROUP_PARENT).join(id));
    }
}

/// Joins a cgroup path from `/proc` onto the mount root, refusing `..` so that a
/// hostile path cannot point outside the hierarchy.
fn join_cgroup(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." {
            return None;
        }
        dir.push(part);
    }
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_cannot_climb_out() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            join_cgroup(root, "/a/b").unwrap(),
            PathBuf::from("/sys/fs/cgroup/a/b")
        );
        assert!(join_cgroup(root, "/a/../../etc").is_none());
    }
}
