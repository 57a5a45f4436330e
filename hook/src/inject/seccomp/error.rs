//! What stops the seccomp merge: a part of the base profile it cannot read,
//! or a profile it cannot merge with without weakening it.

/// Errors merging sniffguard's rules into a bundle's `linux.seccomp`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A part of `linux.seccomp` the merge must understand cannot be read.
    #[error("config.json: {field}: {problem}; the environment enforces, so sniffguard must merge its rules into this profile and refuses what it cannot read rather than guess (an audit environment passes the profile to the runtime untouched)")]
    Unreadable {
        /// The field, as a path into `config.json`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The profile already sends notifications to another agent.
    #[error("config.json: linux.seccomp.listenerPath is already set to {0:?}; sniffguard will not take over another seccomp agent's notifications")]
    ForeignListener(String),
    /// The profile has rules sniffguard cannot merge without weakening them.
    #[error("config.json: {0}")]
    Unmergeable(String),
    /// A rule or architecture list sniffguard writes could not be turned into
    /// JSON (its types always serialise; this names the step should one not).
    #[error("cannot write sniffguard's seccomp rules as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

/// The error for a field of `linux.seccomp` the merge cannot read.
pub(super) fn unreadable(field: impl Into<String>, problem: impl Into<String>) -> SeccompError {
    SeccompError::Unreadable {
        field: field.into(),
        problem: problem.into(),
    }
}
