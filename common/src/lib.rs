//! Types shared across the sniffguard components.
//!
//! Without features this crate is `no_std` and holds only what an eBPF program
//! may link. The `std` feature adds what user space shares: the wire protocol
//! between the OCI hook and the supervisor ([`wire`]), the policy model that both
//! the runtime shim and the supervisor read ([`policy`]), and the names of the
//! files under the runtime directory ([`paths`]). Keeping these here means the hook
//! never links the supervisor and the supervisor never links the hook.
#![cfg_attr(not(any(feature = "std", test)), no_std)]

pub mod abi;
pub mod capture;

#[cfg(feature = "std")]
pub mod cgroups;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod listener;
#[cfg(feature = "std")]
pub mod paths;
#[cfg(feature = "std")]
pub mod policy;
#[cfg(feature = "std")]
pub mod wire;

/// Name of the detection rule every alert carries.
pub const RULE_NAME: &str = "net_sniff_tool_exec";

/// Annotation that names a container's environment.
pub const ENVIRONMENT_ANNOTATION: &str = "sniffguard.io/environment";

/// Annotation the runtime shim writes on a container whose capabilities it
/// keeps out (comma-separated names, e.g. `CAP_NET_RAW`).
pub const DROPPED_CAPABILITIES_ANNOTATION: &str = "sniffguard.io/capabilities-dropped";

/// The capability names of a [`DROPPED_CAPABILITIES_ANNOTATION`] value.
#[cfg(feature = "std")]
pub fn dropped_capabilities(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}
