//! The real OCI runtimes (runc, crun) the shim execs.

use std::fmt;
use std::path::PathBuf;

use crate::locations::{find_in_path, script};

/// A real OCI runtime the shim execs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc from `PATH`.
    Runc,
    /// crun through `scripts/crun-hybrid` (hides the hybrid cgroup v2 mount when needed).
    Crun,
}

impl Runtime {
    /// Both runtimes.
    pub const ALL: [Runtime; 2] = [Runtime::Runc, Runtime::Crun];

    /// `runc` or `crun`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// The executable to run: runc from `PATH`, or the absolute path of `scripts/crun-hybrid`.
    ///
    /// # Panics
    /// When runc / crun is not installed.
    pub fn path(self) -> PathBuf {
        match self {
            Runtime::Runc => find_in_path("runc").expect("runc not in PATH (apt-get install runc)"),
            Runtime::Crun => {
                assert!(
                    find_in_path("crun").is_some(),
                    "crun not in PATH (apt-get install crun)"
                );
                script("crun-hybrid")
            }
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
