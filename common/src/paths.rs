//! Where the supervisor's sockets live inside its runtime directory.

use std::path::{Path, PathBuf};

/// The runtime directory a real installation uses.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/sniffguard";

/// File name of the hook API socket (register / deregister / ping).
pub const API_SOCKET: &str = "api.sock";

/// File name of the seccomp listener socket (the OCI `listenerPath`).
pub const SECCOMP_SOCKET: &str = "seccomp.sock";

/// The API socket inside `runtime_dir`.
pub fn api_socket(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(API_SOCKET)
}

/// The seccomp listener socket inside `runtime_dir`.
pub fn seccomp_socket(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(SECCOMP_SOCKET)
}

/// Directory where the shim leaves one file per container that started
/// without supervision (fail open), for the supervisor to report.
pub const UNSUPERVISED_DIR: &str = "unsupervised";

/// The fail-open spool inside `runtime_dir`.
pub fn unsupervised_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(UNSUPERVISED_DIR)
}

/// Directory where the hook leaves each registration before it sends it; the
/// supervisor removes it once registered. One left behind is a container that
/// started while the supervisor was unreachable: the next supervisor attaches
/// it to the eBPF probes.
pub const PENDING_DIR: &str = "pending";

/// The pending registrations inside `runtime_dir`.
pub fn pending_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(PENDING_DIR)
}
