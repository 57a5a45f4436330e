//! What the hook learns about a container's init process from `/proc` on the
//! host: its cgroup v2 id (see `sniffguard_common::cgroups`) and its namespace
//! inodes.

pub use sniffguard_common::cgroups::{ensure_own_cgroup, remove_own_cgroup};

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// Namespaces recorded at registration.
const NAMESPACES: [&str; 7] = ["mnt", "net", "pid", "uts", "ipc", "user", "cgroup"];

/// The namespace inodes of `pid`, by namespace name; missing ones are left out.
pub fn namespaces(pid: u32) -> BTreeMap<String, u64> {
    NAMESPACES
        .iter()
        .filter_map(|ns| {
            fs::metadata(format!("/proc/{pid}/ns/{ns}"))
                .ok()
                .map(|m| (ns.to_string(), m.ino()))
        })
        .collect()
}

/// CI systems' variables that identify a pipeline run; copied from the container
/// process's environment into alerts so that a CI owner can find the job.
pub const PIPELINE_VARIABLES: [&str; 14] = [
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "CI_PROJECT_PATH",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_REPOSITORY",
    "BUILD_ID",
    "BUILD_NUMBER",
    "BUILD_URL",
    "BUILDKITE_BUILD_ID",
    "CIRCLE_WORKFLOW_ID",
    "TRAVIS_BUILD_ID",
    "DRONE_BUILD_NUMBER",
    "TEKTON_PIPELINE_RUN",
];

/// Picks the pipeline identifiers out of `KEY=VALUE` environment entries.
pub fn pipeline_ids<'a>(env: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    env.into_iter()
        .filter_map(|entry| entry.split_once('='))
        .filter(|(key, _)| PIPELINE_VARIABLES.contains(key))
        .map(|(key, value)| (key.to_string(), value.chars().take(256).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_namespaces() {
        let ns = namespaces(std::process::id());
        assert!(ns.contains_key("mnt") && ns.contains_key("net"));
    }

    #[test]
    fn pipeline_variables_are_picked() {
        let ids = pipeline_ids(["PATH=/bin", "CI_JOB_ID=42", "GITHUB_RUN_ID=7", "junk"]);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids["CI_JOB_ID"], "42");
    }
}
