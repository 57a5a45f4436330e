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
