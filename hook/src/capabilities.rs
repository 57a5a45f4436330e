//! The capability floor under an enforced container: the capabilities that make
//! capture sockets possible (`CAP_NET_RAW`, and `CAP_NET_ADMIN` where a policy
//! asks) are taken from every process of the container, so that the kernel
//! refuses a packet socket even if every rule above it were walked around.
//!
//! Two places give a container's processes capabilities, and both are covered:
//! - `create`/`run`: `process.capabilities` of `config.json` (every set:
//!   bounding, effective, inheritable, permitted, ambient);
//! - `exec`: runc and crun add what `--cap NAME` asks to the new process, and
//!   take a `--process FILE` document's capabilities as they are (Podman and
//!   containerd always exec that way). The bounding set of the container does
//!   not limit either, so the shim edits both before handing over.
//!
//! The document is edited as JSON, like the rest of `config.json`, so that
//! capability names `oci-spec` does not know survive untouched.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The capability sets of an OCI process.
pub const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Annotation the shim writes on a container whose capabilities it took: the
/// names, comma-separated. It reaches the supervisor with the registration, and
/// `exec` reads it back. A value the container's author wrote is replaced.
pub use sniffguard_common::DROPPED_CAPABILITIES_ANNOTATION;

/// Errors of the capability floor.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// `process.capabilities` has the wrong shape.
    #[error("config.json: process.capabilities.{0} is not an array of names")]
    Shape(&'static str),
    /// The container asks for a capability its environment refuses.
    #[error("the container asks for {names} (in {sets}), which environment {environment:?} refuses; remove it from the container's capabilities or change the policy's capability_requests")]
    Requested {
        /// The capabilities asked for.
        names: String,
        /// The sets that hold them.
        sets: String,
        /// The environment.
        environment: String,
    },
    /// The `--process` file could not be read, parsed or written.
    #[error("exec --process {path}: {message}")]
    ProcessFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Which of `drop` an OCI process object holds, and in which sets.
fn held(
    process: &Map<String, Value>,
    drop: &[String],
) -> Result<(Vec<String>, Vec<&'static str>), CapabilityError> {
    let mut names = Vec::new();
    let mut sets = Vec::new();
    let Some(capabilities) = process.get("capabilities").filter(|v| !v.is_null()) else {
        return Ok((names, sets));
    };
    let Some(capabilities) = capabilities.as_object() else {
        return Err(CapabilityError::Shape("(all)"));
    };
    for set in SETS {
        let Some(list) = capabilities.get(set).filter(|v| !v.is_null()) else {
            continue;
        };
        let list = list.as_array().ok_or(CapabilityError::Shape(set))?;
        for name in list {
            let name = name.as_str().ok_or(CapabilityError::Shape(set))?;
            if drop.iter().any(|d| d == name) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
                if !sets.contains(&set) {
                    sets.push(set);
                }
            }
        }
    }
    Ok((names, sets))
}

/// Removes every capability of `drop` from every set of an OCI process
/// object; returns the names it removed.
fn remove_from_process(
    process: &mut Map<String, Value>,
    drop: &[String],
) -> Result<Vec<String>, CapabilityError> {
    let (names, _) = held(process, drop)?;
    if let Some(capabilities) = process
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in SETS {
            if let Some(list) = capabilities.get_mut(set).and_then(Value::as_array_mut) {
                list.retain(|name| name.as_str().is_none_or(|n| !drop.iter().any(|d| d == n)));
            }
        }
    }
    Ok(names)
}

/// Applies the floor to a parsed `config.json`: removes `drop` from every set
/// of `process.capabilities` (or, with `refuse`, refuses a container that asks
/// for one), and records the names kept out in
/// [`DROPPED_CAPABILITIES_ANNOTATION`] so that `exec` keeps them out too.
/// Returns the names that were removed.
pub fn apply_to_config(
    config: &mut Map<String, Value>,
    drop: &[String],
    refuse: bool,
    environment: &str,
) -> Result<Vec<String>, CapabilityError> {
    // Whatever the container's author wrote there says nothing.
    if let Some(annotations) = config.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(DROPPED_CAPABILITIES_ANNOTATION);
    }
    let Some(process) = config.get_mut("process").and_then(Value::as_object_mut) else {
        return Ok(Vec::new());
    };
    let removed = if refuse {
        let (names, sets) = held(process, drop)?;
        if !names.is_empty() {
            return Err(CapabilityError::Requested {
                names: names.join(", "),
                sets: sets.join(", "),
                environment: environment.to_string(),
            });
        }
        names
    } else {
        remove_from_process(process, drop)?
    };
    if !drop.is_empty() {
        let annotations = config
            .entry("annotations".to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if annotations.is_null() {
            *annotations = Value::Object(Map::new());
        }
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                DROPPED_CAPABILITIES_ANNOTATION.to_string(),
                Value::String(drop.join(",")),
            );
        }
    }
    Ok(removed)
}

/// The capabilities a container's `config.json` says the shim dropped.
pub fn dropped_by_shim(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("annotations")
        .and_then(|a| a.get(DROPPED_CAPABILITIES_ANNOTATION))
        .and_then(Value::as_str)
        .map(sniffguard_common::dropped_capabilities)
        .unwrap_or_default()
}

/// Flags of `runc exec` / `crun exec` that take a value as the next argument.
const EXEC_VALUE_FLAGS: [&str; 19] = [
    "--console-socket",
    "--pidfd-socket",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--additional-gids",
    "-g",
    "--process",
    "-p",
    "--pid-file",
    "--process-label",
    "--apparmor",
    "--cap",
    "-c",
    "--preserve-fds",
    "--cgroup",
    "--exec-cpu-affinity",
];

/// What an `exec` invocation asks for, as far as capabilities go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecArgs {
    /// The container id (the first operand after the flags).
    pub container: Option<String>,
    /// Every `--cap` value, with the index of the argument that holds it
    /// (the flag itself for `--cap=NAME`, else the value after it).
    pub caps: Vec<(usize, String)>,
    /// The `--process` file and the index of the argument that holds it.
    pub process: Option<(usize, PathBuf)>,
}

impl ExecArgs {
    /// Whether the exec can give its process capabilities beyond the
    /// container's own (the only case the shim must look at).
    pub fn may_add_capabilities(&self) -> bool {
        !self.caps.is_empty() || self.process.is_some()
    }
}

/// Reads the flags of an `exec` invocation; `args` are the whole argument list
/// (global flags included) and `start` the index just after `exec`.
pub fn parse_exec(args: &[OsString], start: usize) -> ExecArgs {
    let mut parsed = ExecArgs::default();
    let mut index = start;
    while let Some(arg) = args.get(index) {
        let bytes = arg.as_bytes();
        if arg == OsStr::new("--") {
            parsed.container = args
                .get(index + 1)
                .map(|a| a.to_string_lossy().into_owned());
            break;
        }
        if !bytes.starts_with(b"-") {
            parsed.container = Some(arg.to_string_lossy().into_owned());
            break;
        }
        let (flag, inline) = match bytes.iter().position(|b| *b == b'=') {
            Some(at) if bytes.starts_with(b"--") || at == 2 => {
                (&bytes[..at], Some((index, &bytes[at + 1..])))
            }
            _ => (bytes, None),
        };
        let takes_value = EXEC_VALUE_FLAGS.iter().any(|f| f.as_bytes() == flag);
        let value = match (takes_value, inline) {
            (true, Some((at, value))) => Some((at, OsStr::from_bytes(value).to_os_string())),
            (true, None) => {
                index += 1;
                args.get(index).map(|v| (index, v.clone()))
            }
            (false, _) => None,
        };
        if let Some((at, value)) = value {
            match flag {
                b"--cap" | b"-c" => parsed.caps.push((at, value.to_string_lossy().into_owned())),
                b"--process" | b"-p" => parsed.process = Some((at, PathBuf::from(value))),
                _ => {}
            }
        }
        index += 1;
    }
    parsed
}

/// Most bytes of a `--process` document read.
const MAX_PROCESS_BYTES: u64 = 1024 * 1024;

/// Whether an `exec` asks for one of `drop`, by `--cap` or in its
/// `--process` document.
pub fn exec_asks_for(exec: &ExecArgs, drop: &[String]) -> Result<bool, CapabilityError> {
    if exec.caps.iter().any(|(_, name)| drop.contains(name)) {
        return Ok(true);
    }
    let Some((_, path)) = &exec.process else {
        return Ok(false);
    };
    let document = read_process_file(path)?;
    let process = document
        .as_object()
        .ok_or_else(|| CapabilityError::ProcessFile {
            path: path.clone(),
            message: "not a JSON object".into(),
        })?;
    let (names, _) = held(process, drop)?;
    Ok(!names.is_empty())
}

/// Applies the floor to an `exec`: `--cap` arguments naming one of `drop` are
/// left out of the arguments handed to the runtime, and the `--process`
/// document loses them from every set (rewritten in place, atomically).
/// Returns the arguments to hand over and the names taken away.
pub fn apply_to_exec(
    args: &[OsString],
    exec: &ExecArgs,
    drop: &[String],
) -> Result<(Vec<OsString>, Vec<String>), CapabilityError> {
    let mut removed: Vec<String> = Vec::new();
    let mut skip = Vec::new();
    for (at, name) in &exec.caps {
        if drop.iter().any(|d| d == name) {
            // `--cap NAME` is two arguments, `--cap=NAME` one.
            let inline = args.get(*at).is_some_and(|a| a.as_bytes().contains(&b'='));
            skip.push(*at);
            if !inline {
                skip.push(at - 1);
            }
            if !removed.contains(name) {
                removed.push(name.clone());
            }
        }
    }
    let kept = args
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    if let Some((_, path)) = &exec.process {
        for name in rewrite_process_file(path, drop)? {
            if !removed.contains(&name) {
                removed.push(name);
            }
        }
    }
    Ok((kept, removed))
}

/// Reads a `--process` document, bounded.
fn read_process_file(path: &Path) -> Result<Value, CapabilityError> {
    use std::io::Read;
    let fail = |message: String| CapabilityError::ProcessFile {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PROCESS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_PROCESS_BYTES {
        return Err(fail(format!("larger than {MAX_PROCESS_BYTES} bytes")));
    }
    serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))
}

fn rewrite_process_file(path: &Path, drop: &[String]) -> Result<Vec<String>, CapabilityError> {
    use std::io::Write;
    let fail = |message: String| CapabilityError::ProcessFile {
        path: path.to_path_buf(),
        message,
    };
    let mut document = read_process_file(path)?;
    let process = document
        .as_object_mut()
        .ok_or_else(|| fail("not a JSON object".into()))?;
    let removed = remove_from_process(process, drop).map_err(|e| fail(e.to_string()))?;
    if removed.is_empty() {
        return Ok(removed);
    }
    let out = serde_json::to_vec(&document).map_err(|e| fail(e.to_string()))?;
    let tmp = path.with_file_name(format!(
        ".{}.sniffguard.{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(&out)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(err.to_string()));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net_raw() -> Vec<String> {
        vec!["CAP_NET_RAW".to_string()]
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_set_loses_the_capability_and_the_annotation_says_so() {
        let mut config = json!({
            "annotations": {"sniffguard.io/capabilities-dropped": "forged"},
            "process": {"capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_RAW"],
                "effective": ["CAP_NET_RAW"],
                "permitted": ["CAP_NET_RAW", "CAP_FUTURE_THING"],
                "ambient": ["CAP_NET_RAW"]
            }}
        });
        let map = config.as_object_mut().unwrap();
        let removed = apply_to_config(map, &net_raw(), false, "staging").unwrap();
        assert_eq!(removed, net_raw());
        let caps = &config["process"]["capabilities"];
        assert_eq!(caps["bounding"], json!(["CAP_CHOWN"]));
        assert_eq!(caps["effective"], json!([]));
        // A name oci-spec does not know passes through.
        assert_eq!(caps["permitted"], json!(["CAP_FUTURE_THING"]));
        assert_eq!(
            config["annotations"][DROPPED_CAPABILITIES_ANNOTATION],
            "CAP_NET_RAW"
        );
        assert_eq!(dropped_by_shim(config.as_object().unwrap()), net_raw());
    }

    #[test]
    fn refuse_names_what_was_asked_and_where() {
        let mut config = json!({"process": {"capabilities": {"effective": ["CAP_NET_RAW"]}}});
        let err = apply_to_config(
            config.as_object_mut().unwrap(),
            &net_raw(),
            true,
            "production",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CAP_NET_RAW (in effective)"), "{err}");
        assert!(err.contains("\"production\""), "{err}");
        let mut clean = json!({"process": {"capabilities": {"effective": ["CAP_CHOWN"]}}});
        assert!(apply_to_config(clean.as_object_mut().unwrap(), &net_raw(), true, "p").is_ok());
        let mut broken = json!({"process": {"capabilities": {"effective": "CAP_NET_RAW"}}});
        assert!(apply_to_config(broken.as_object_mut().unwrap(), &net_raw(), false, "p").is_err());
    }

    #[test]
    fn exec_flags_are_found_before_the_container_id() {
        let list = args(&[
            "--root",
            "/r",
            "exec",
            "-e",
            "A=B",
            "--cap",
            "CAP_NET_RAW",
            "--cap=CAP_SYS_ADMIN",
            "-t",
            "--process",
            "/tmp/p.json",
            "c1",
            "sh",
            "--cap",
            "CAP_X",
        ]);
        let exec = parse_exec(&list, 3);
        assert_eq!(exec.container.as_deref(), Some("c1"));
        assert_eq!(
            exec.caps,
            vec![
                (6, "CAP_NET_RAW".to_string()),
                (7, "CAP_SYS_ADMIN".to_string())
            ]
        );
        assert_eq!(exec.process, Some((10, PathBuf::from("/tmp/p.json"))));
        let both = vec!["CAP_NET_RAW".to_string(), "CAP_SYS_ADMIN".to_string()];
        let without_process = ExecArgs {
            process: None,
            ..exec
        };
        let (kept, removed) = apply_to_exec(&list, &without_process, &both).unwrap();
        assert_eq!(removed, both);
        // Both forms leave; the command's own "--cap CAP_X" stays.
        assert_eq!(
            kept,
            args(&[
                "--root",
                "/r",
                "exec",
                "-e",
                "A=B",
                "-t",
                "--process",
                "/tmp/p.json",
                "c1",
                "sh",
                "--cap",
                "CAP_X",
            ])
        );
        let plain = parse_exec(&args(&["exec", "c2", "ls"]), 1);
        assert!(!plain.may_add_capabilities());
    }

    #[test]
    fn a_process_file_loses_the_capability_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("process.json");
        std::fs::write(
            &path,
            json!({"args": ["sh"], "capabilities": {"bounding": ["CAP_NET_RAW", "CAP_KILL"], "effective": ["CAP_NET_RAW"]}}).to_string(),
        )
        .unwrap();
        let exec = ExecArgs {
            container: Some("c".into()),
            caps: Vec::new(),
            process: Some((1, path.clone())),
        };
        let list = vec![OsString::from("-p"), path.clone().into_os_string()];
        let (kept, removed) = apply_to_exec(&list, &exec, &net_raw()).unwrap();
        assert_eq!(removed, net_raw());
        assert_eq!(kept, list);
        let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(after["capabilities"]["bounding"], json!(["CAP_KILL"]));
        assert_eq!(after["args"], json!(["sh"]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
