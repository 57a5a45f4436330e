//! The container state a runtime writes on a hook's standard input.

use std::io::Read;

use oci_spec::runtime::State;
use sniffguard_common::wire::{validate_container_id, WireError};

/// Largest state document accepted on stdin. Annotations make it grow, but a
/// megabyte is far beyond anything a runtime writes.
pub const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// Errors reading the hook's input.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading stdin failed.
    #[error("cannot read the container state from stdin: {0}")]
    Read(#[from] std::io::Error),
    /// More than [`MAX_STATE_BYTES`].
    #[error("container state on stdin is larger than {MAX_STATE_BYTES} bytes")]
    TooLarge,
    /// Not an OCI state document.
    #[error("container state on stdin is not valid OCI state JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The id is missing or not one runc would accept.
    #[error("container state on stdin: {0}")]
    Id(#[from] WireError),
    /// The bundle path is missing or relative.
    #[error("container state on stdin: bundle {0:?} is not an absolute path")]
    Bundle(String),
    /// The pid is present but not a process id.
    #[error("container state on stdin: pid {0} is not a process id")]
    Pid(i32),
}

/// Reads and validates an OCI state document from `input`.
pub fn read_state(input: impl Read) -> Result<State, StateError> {
    let mut text = Vec::new();
    input.take(MAX_STATE_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_STATE_BYTES {
        return Err(StateError::TooLarge);
    }
    parse_state(&text)
}

/// Parses and validates an OCI state document.
pub fn parse_state(text: &[u8]) -> Result<State, StateError> {
    let state: State = serde_json::from_slice(text)?;
    validate_container_id(state.id())?;
    if !state.bundle().is_absolute() {
        return Err(StateError::Bundle(state.bundle().display().to_string()));
    }
    if let Some(pid) = *state.pid() {
        // createContainer/startContainer report the pid seen inside (1), and
        // poststop may report 0: only negative values are nonsense.
        if pid < 0 {
            return Err(StateError::Pid(pid));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_prestart_state_parses() {
        let text = br#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":6848,"bundle":"/path/bundle","annotations":{"k":"v"}}"#;
        let state = parse_state(text).unwrap();
        assert_eq!(state.id(), "c1");
        assert_eq!(*state.pid(), Some(6848));
    }

    #[test]
    fn crun_state_with_root_parses() {
        let text = br#"{"ociVersion":"1.0.0","id":"c2","status":"created","pid":10,"bundle":"/b","root":"/r"}"#;
        // `root` is not in the OCI state schema; crun adds it. Unknown fields are
        // tolerated here because the runtime, not a user, writes this document.
        assert_eq!(parse_state(text).unwrap().id(), "c2");
    }

    #[test]
    fn bad_states_are_clear_errors() {
        let cases: [&[u8]; 6] = [
            b"",
            b"not json",
            br#"{"id":"","bundle":"/b"}"#,
            br#"{"id":"../../etc","bundle":"/b"}"#,
            br#"{"id":"c","bundle":"relative"}"#,
            br#"{"id":"c","bundle":"/b","pid":-5}"#,
        ];
        for case in cases {
            let err = parse_state(case).unwrap_err().to_string();
            assert!(err.contains("container state"), "{err}");
        }
        let huge = vec![b' '; (MAX_STATE_BYTES + 10) as usize];
        assert!(matches!(read_state(&huge[..]), Err(StateError::TooLarge)));
    }
}
