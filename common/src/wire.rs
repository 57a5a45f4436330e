//! The hook ↔ supervisor protocol on the API socket.
//!
//! One JSON object per line in each direction: the client writes a [`Request`],
//! the supervisor answers with one [`Response`]. Lines are bounded by
//! [`MAX_MESSAGE_BYTES`]; unknown fields are an error so that a mismatched hook and
//! supervisor say so instead of silently dropping data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest request line, newline included. Requests come from hooks in every
/// container's start path: they stay small.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest response line: a status report lists every attached container
/// (about 300 bytes each), so it is allowed to grow with the node.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Longest container id accepted (runc accepts any length; 1 KiB is far beyond
/// what any orchestrator generates).
pub const MAX_CONTAINER_ID_BYTES: usize = 1024;

/// Errors decoding or validating a wire message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The message is longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {1}-byte limit")]
    TooLong(usize, usize),
    /// The message is not the JSON this protocol expects.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// A container id that runc would not accept either.
    #[error("invalid container id {0:?}: expected 1-{MAX_CONTAINER_ID_BYTES} characters of [A-Za-z0-9_.+-]")]
    ContainerId(String),
}

/// What a client asks the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the supervisor there? The runtime shim asks before it injects a listener.
    Ping {},
    /// A container is about to start: watch it.
    Register(Registration),
    /// A container has stopped: forget it.
    Deregister {
        /// The container id.
        id: String,
    },
    /// What is the supervisor watching? (`sniffguard status`)
    Status {},
    /// Break-glass: let sniffers run in one container for a while
    /// (`sniffguard allow`).
    Grant {
        /// The container.
        container: String,
        /// For how long, in seconds.
        seconds: u64,
        /// Who asks.
        by: String,
        /// Why.
        reason: String,
    },
    /// End a grant early.
    Revoke {
        /// The container.
        container: String,
    },
    /// Stream every alert as it is raised (`sniffguard events --follow`).
    Subscribe {},
    /// The alerts raised last, kept in memory (`sniffguard events`), then the
    /// end of the stream.
    Recent {},
}

/// A container's annotations as the policy reads them (ordered, owned), from
/// the map the OCI state carries (`annotations` of `state.json`, of the hook's
/// stdin and of the seccomp listener's payload); none is an empty map.
pub fn annotation_map<S: std::hash::BuildHasher>(
    annotations: Option<&std::collections::HashMap<String, String, S>>,
) -> BTreeMap<String, String> {
    annotations
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Everything the hook knows about a starting container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The container id as the runtime knows it.
    pub id: String,
    /// The bundle directory on the host.
    pub bundle: String,
    /// The container's init process on the host, when the runtime reported one.
    pub pid: Option<u32>,
    /// Inode of the init process's cgroup v2 directory (what
    /// `bpf_get_current_cgroup_id` returns for its tasks).
    pub cgroup_id: Option<u64>,
    /// Namespace inodes of the init process, by namespace name (`mnt`, `net`, …).
    #[serde(default)]
    pub namespaces: BTreeMap<String, u64>,
    /// The container's OCI annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The environment the shim resolved for this container.
    pub environment: String,
    /// The real runtime that starts it (`runc`, `crun`, …), when known.
    pub runtime: Option<String>,
    /// CI pipeline identifiers found in the container's process environment.
    #[serde(default)]
    pub pipeline: BTreeMap<String, String>,
    /// How the shim chose `environment` when its wiring named it
    /// (`sniffguard-runtime --environment`, e.g. a Docker runtime entry): the
    /// policy cannot tell that from the annotations, so the words travel with
    /// the registration for alerts and `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_chosen_by: Option<String>,
}

/// The supervisor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Done; for a registration, detection is live.
    Ok {},
    /// Answer to [`Request::Ping`].
    Pong {
        /// The supervisor's version.
        version: String,
    },
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// The request was refused.
    Error {
        /// Why, in words an operator can act on.
        message: String,
    },
}

/// The supervisor's state, as `sniffguard status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The supervisor's version.
    pub version: String,
    /// Where the policy in force came from.
    pub policy: String,
    /// Whether the eBPF probes are loaded.
    pub ebpf: bool,
    /// Counters: `ringbuf_drops`, `probe_events`, `kernel_kills`, `alerts_dropped`,
    /// `alert_write_failures` (alert lines the alert file or stdout could not
    /// take), ….
    ///
    /// A map rather than fields: a counter added on one side is shown by the
    /// other without tripping `deny_unknown_fields`.
    pub counters: BTreeMap<String, u64>,
    /// Attached containers, by id.
    pub containers: Vec<ContainerStatus>,
    /// Break-glass grants in force.
    #[serde(default)]
    pub grants: Vec<GrantStatus>,
    /// Containers that started without supervision since the supervisor
    /// started (fail-open starts reported by the shim).
    #[serde(default)]
    pub unsupervised: Vec<String>,
    /// What is down, `component: why` (empty: the supervisor is whole).
    #[serde(default)]
    pub degraded: Vec<String>,
}

/// One grant in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantStatus {
    /// The container.
    pub container: String,
    /// Who asked.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When it ends (RFC 3339).
    pub until: String,
}

/// One attached container in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerStatus {
    /// The container id.
    pub id: String,
    /// Its environment.
    pub environment: String,
    /// The environment's mode (`audit` or `enforce`).
    pub mode: String,
    /// Whether a seccomp listener fd is being served for it.
    pub seccomp: bool,
    /// Whether the hook registered it.
    pub registered: bool,
    /// Its cgroup v2 id, when known.
    pub cgroup_id: Option<u64>,
    /// Since when the supervisor knows it (RFC 3339).
    pub since: String,
    /// How its environment was chosen (rule N, the default, an annotation
    /// that tightened it).
    #[serde(default)]
    pub environment_chosen_by: String,
    /// Capabilities the runtime shim kept out of its processes.
    #[serde(default)]
    pub capabilities_dropped: Vec<String>,
}

/// A message type and its size limit on the wire.
pub trait Bounded {
    /// Largest encoded line, newline included.
    const LIMIT: usize;
}

impl Bounded for Request {
    const LIMIT: usize = MAX_MESSAGE_BYTES;
}

impl Bounded for Response {
    const LIMIT: usize = MAX_RESPONSE_BYTES;
}

/// Serialises a message as one line (with its trailing newline).
pub fn encode<T: Serialize + Bounded>(message: &T) -> Result<Vec<u8>, WireError> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    if line.len() > T::LIMIT {
        return Err(WireError::TooLong(line.len(), T::LIMIT));
    }
    Ok(line)
}

/// Parses one line (trailing newline optional) into a message.
pub fn decode<'a, T: Deserialize<'a> + Bounded>(line: &'a [u8]) -> Result<T, WireError> {
    if line.len() > T::LIMIT {
        return Err(WireError::TooLong(line.len(), T::LIMIT));
    }
    Ok(serde_json::from_slice(line)?)
}

/// Checks a container id against the character set runc enforces, so ids can be
/// used in file names and log lines without escaping.
pub fn validate_container_id(id: &str) -> Result<(), WireError> {
    // "." and ".." pass the character check but name directories, not
    // containers: ids end up in paths (cgroups, state files).
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= MAX_CONTAINER_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(WireError::ContainerId(id.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Registration {
        Registration {
            id: "c1".into(),
            bundle: "/b".into(),
            pid: Some(42),
            cgroup_id: Some(7),
            namespaces: BTreeMap::from([("mnt".into(), 4026531840)]),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
            environment: "staging".into(),
            runtime: Some("runc".into()),
            pipeline: BTreeMap::new(),
            environment_chosen_by: None,
        }
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Ping {},
            Request::Register(registration()),
            Request::Deregister { id: "c1".into() },
            Request::Status {},
            Request::Grant {
                container: "c1".into(),
                seconds: 900,
                by: "alice".into(),
                reason: "debugging".into(),
            },
            Request::Subscribe {},
            Request::Recent {},
        ] {
            let line = encode(&request).unwrap();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(decode::<Request>(&line).unwrap(), request);
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(decode::<Request>(br#"{"type":"ping","extra":1}"#).is_err());
        assert!(decode::<Request>(br#"{"type":"format_disk"}"#).is_err());
        assert!(decode::<Request>(br#"{"type":"deregister"}"#).is_err());
        assert!(decode::<Request>(b"\xff\xfe").is_err());
    }

    #[test]
    fn oversized_lines_are_refused() {
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<Request>(&huge),
            Err(WireError::TooLong(..))
        ));
        let mut r = registration();
        r.bundle = "x".repeat(MAX_MESSAGE_BYTES);
        assert!(matches!(
            encode(&Request::Register(r)),
            Err(WireError::TooLong(..))
        ));
    }

    #[test]
    fn a_status_of_a_busy_node_fits() {
        let containers = (0..2000)
            .map(|i| ContainerStatus {
                id: format!("container-{i:0>60}"),
                environment: "production".into(),
                mode: "enforce".into(),
                seccomp: true,
                registered: true,
                cgroup_id: Some(i),
                since: "2026-11-28T05:00:00Z".into(),
                environment_chosen_by:
                    "annotation, stricter than \"staging\" from rule 12; the annotation's \"ci\" was ignored".into(),
                capabilities_dropped: vec!["CAP_NET_RAW".into(), "CAP_NET_ADMIN".into()],
            })
            .collect();
        let report = Response::Status(StatusReport {
            version: "0".into(),
            policy: "built-in".into(),
            ebpf: true,
            counters: BTreeMap::new(),
            containers,
            grants: Vec::new(),
            unsupervised: Vec::new(),
            degraded: Vec::new(),
        });
        let line = encode(&report).unwrap();
        assert!(line.len() > MAX_MESSAGE_BYTES);
        assert_eq!(decode::<Response>(&line).unwrap(), report);
    }

    #[test]
    fn a_status_with_alert_write_failures_round_trips() {
        let report = Response::Status(StatusReport {
            version: "0".into(),
            policy: "/etc/sniffguard/policy.toml".into(),
            ebpf: false,
            counters: BTreeMap::from([
                ("alert_write_failures".into(), 3),
                ("alerts_dropped".into(), 0),
            ]),
            containers: Vec::new(),
            grants: vec![GrantStatus {
                container: "c1".into(),
                by: "alice".into(),
                reason: "debugging".into(),
                until: "2026-11-28T05:00:00Z".into(),
            }],
            unsupervised: vec!["c2".into()],
            degraded: vec!["ebpf_probes: not loaded".into()],
        });
        let line = encode(&report).unwrap();
        assert_eq!(decode::<Response>(&line).unwrap(), report);
        // Where `sniffguard status --json` readers find it.
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(json["counters"]["alert_write_failures"], 3);
        // A counter the client has never heard of is not an unknown field.
        let newer = br#"{"type":"status","version":"0","policy":"p","ebpf":true,"counters":{"alert_write_failures":1,"counter_from_the_future":2},"containers":[]}"#;
        match decode::<Response>(newer).unwrap() {
            Response::Status(r) => assert_eq!(r.counters["alert_write_failures"], 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn container_ids_follow_runc_rules() {
        assert!(validate_container_id("abc-1.2_3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"a".repeat(1025)] {
            assert!(validate_container_id(bad).is_err(), "{bad:?}");
        }
    }
}
