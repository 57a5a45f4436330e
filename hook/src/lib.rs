//! What runs in a container runtime's path: the OCI hook that attaches a
//! container to the sniffguard supervisor, and the runtime shim that prepares a
//! bundle for it before handing over to the real runtime (runc, crun).
//!
//! The binaries in `src/bin/` only parse their command line and call into these
//! modules.

pub mod capabilities;
pub mod hook;
pub mod inject;
pub mod inspect;
pub mod podman;
pub mod rootless;
pub mod sandbox;
pub mod shim;
pub mod state;

/// Prefix of every message these programs print, so that a runtime's error
/// output always names sniffguard as the component that spoke.
pub const MESSAGE_PREFIX: &str = "sniffguard";
