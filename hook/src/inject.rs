//! Rewriting a bundle's `config.json` so that the container is attached to the
//! supervisor.
//!
//! Two additions:
//! - the `sniffguard-hook` as the first `createRuntime` hook (registration)
//!   and the first `poststop` hook (deregistration);
//! - in an enforce environment, seccomp rules that hand `execve`, `execveat` and
//!   packet/raw `socket` calls to the supervisor (`SCMP_ACT_NOTIFY`), merged into
//!   whatever profile the bundle already has, with `listenerPath` pointing at the
//!   supervisor and `listenerMetadata` naming the environment.
//!
//! The shim is a drop-in for the real runtime, so it must never refuse a
//! `config.json` the runtime would accept, or accept one it would refuse: a
//! capability, seccomp flag, architecture or field that a newer runtime knows
//! and `oci-spec` does not is the runtime's to judge. The document is therefore
//! edited as JSON, and only the parts sniffguard changes are read at all —
//! `hooks.createRuntime` and `hooks.poststop`, `process.capabilities`,
//! `annotations`, and in an enforce environment `linux.seccomp`. Everything else
//! is written back value for value (object keys come out sorted; no value
//! changes). A part sniffguard must change and cannot read is refused with the
//! field's name:
//!
//! - a wrong JSON type where sniffguard edits (`hooks` not an object,
//!   `process.capabilities.bounding` not a list of names) in every environment;
//! - in an enforce environment, whatever of `linux.seccomp` decides what the
//!   merge must hold: an unknown `defaultAction`, an unknown field of the
//!   profile, and an unknown action, operator or field in a rule naming a
//!   syscall sniffguard adds rules for. Guessing there could let a sniffer
//!   through, so enforce refuses and says why (the trust model: unknown in
//!   enforce means refuse). Rules for other syscalls, `flags` and
//!   `architectures` are not sniffguard's to judge and pass through to the
//!   runtime as they are. In an audit environment `linux.seccomp` is never
//!   read.
//!
//! This module reads, checks and writes the document and adds the hooks and
//! the capability floor ([`crate::capabilities`]); the merge of the seccomp
//! rules, and what it must hold of the profile that was there, live in
//! [`seccomp`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sniffguard_common::paths;
use sniffguard_common::policy::FailPolicy;

use crate::capabilities::{self, CapabilityError};

pub mod seccomp;

pub use seccomp::{merge_seccomp, SeccompError};

/// Largest `config.json` accepted. Real ones are a few kilobytes; a profile with
/// every syscall listed is under 100 KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Seconds a runtime gives our hook before it kills it.
const HOOK_TIMEOUT_SECONDS: i64 = 10;

/// Errors preparing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// `config.json` could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is larger than [`MAX_CONFIG_BYTES`].
    #[error("{0}: larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge(PathBuf),
    /// `config.json` is not JSON.
    #[error("config.json is not valid JSON: {0}")]
    Spec(#[source] serde_json::Error),
    /// A part of `config.json` has the wrong JSON type.
    #[error("config.json: {0}")]
    Shape(String),
    /// `linux.seccomp` cannot be merged with (enforce environments only).
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The capability floor could not be applied.
    #[error(transparent)]
    Capabilities(#[from] CapabilityError),
}

/// Everything needed to attach one container.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The `sniffguard-hook` binary the runtime will run.
    pub hook_path: PathBuf,
    /// The supervisor's runtime directory.
    pub runtime_dir: PathBuf,
    /// The container's environment.
    pub environment: String,
    /// What the hook does when the supervisor cannot be reached.
    pub fail: FailPolicy,
    /// The real runtime's name, for alerts.
    pub runtime_name: Option<String>,
    /// How the environment was chosen, when the wiring named it (the shim's
    /// `--environment`): passed to the hook for alerts.
    pub environment_chosen_by: Option<String>,
    /// Whether to install the seccomp listener (enforce environments with a
    /// reachable supervisor).
    pub seccomp_listener: bool,
    /// Capabilities kept out of every process of the container (the
    /// environment's `drop_capabilities`; applied whether or not the
    /// supervisor is reachable).
    pub drop_capabilities: Vec<String>,
    /// Refuse a container that asks for one of them instead of taking it.
    pub refuse_capability_requests: bool,
}

impl Attachment {
    fn hook_entry(&self, stage: &str) -> Value {
        let mut args = vec![
            "sniffguard-hook".to_string(),
            "hook".to_string(),
            "--stage".to_string(),
            stage.to_string(),
            "--runtime-dir".to_string(),
            self.runtime_dir.display().to_string(),
            "--environment".to_string(),
            self.environment.clone(),
            "--fail".to_string(),
            self.fail.as_str().to_string(),
        ];
        if let Some(runtime) = &self.runtime_name {
            args.push("--runtime".to_string());
            args.push(runtime.clone());
        }
        if let Some(chosen_by) = &self.environment_chosen_by {
            args.push("--environment-chosen-by".to_string());
            args.push(chosen_by.clone());
        }
        json!({
            "path": self.hook_path.display().to_string(),
            "args": args,
            "timeout": HOOK_TIMEOUT_SECONDS,
        })
    }
}

/// Reads `BUNDLE/config.json`, bounded.
pub fn read_config(bundle: &Path) -> Result<Vec<u8>, InjectError> {
    let path = bundle.join("config.json");
    let io = |source| InjectError::Io {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(InjectError::TooLarge(path));
    }
    Ok(bytes)
}

/// Parses `config.json` as a JSON object whose objects have no key twice.
/// Nothing else is checked here: the parts sniffguard changes are checked
/// where they are changed ([`attach`]), and the rest is the runtime's to judge
/// (see the module documentation).
///
/// A repeated key is refused because the two readers would part ways: serde
/// keeps the last `"process"`, while Go's decoder (runc) decodes every
/// occurrence into the same struct, so capabilities given in a first
/// `"process"` reach the container although sniffguard, reading the second,
/// saw none to drop (measured with runc 1.1.5).
pub fn parse_config(bytes: &[u8]) -> Result<Map<String, Value>, InjectError> {
    let UniqueKeys(value) = serde_json::from_slice(bytes).map_err(InjectError::Spec)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(InjectError::Shape(
            "the document is not a JSON object".into(),
        )),
    }
}

/// A JSON value read with every object checked for a repeated key.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            list.push(item);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object; runc would merge the two and sniffguard would read only the last"
                )));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The container's annotations, as `config.json` states them.
pub fn annotations(config: &Map<String, Value>) -> std::collections::BTreeMap<String, String> {
    config
        .get("annotations")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies `attachment` to a parsed `config.json`.
pub fn attach(config: &mut Map<String, Value>, attachment: &Attachment) -> Result<(), InjectError> {
    check_spelling(config, attachment.seccomp_listener)?;
    capabilities::apply_to_config(
        config,
        &attachment.drop_capabilities,
        attachment.refuse_capability_requests,
        &attachment.environment,
    )?;
    add_hooks(config, attachment)?;
    if attachment.seccomp_listener {
        let linux = object_entry(config, "linux")?;
        let existing = linux.remove("seccomp");
        let listener = paths::seccomp_socket(&attachment.runtime_dir);
        // A container that keeps CAP_NET_ADMIN can turn promiscuous mode on
        // and mirror traffic: those requests go to the supervisor too. An
        // exec may add the capability later (`--cap`), so what counts is the
        // environment's floor, not the spec's sets.
        let guard_interfaces = !attachment
            .drop_capabilities
            .iter()
            .any(|c| c == "CAP_NET_ADMIN");
        let merged = merge_seccomp(
            existing,
            &listener,
            &attachment.environment,
            guard_interfaces,
        )?;
        linux.insert("seccomp".to_string(), merged);
    }
    Ok(())
}

/// A key as Go's `encoding/json` (runc's parser) compares it with a field
/// name: without regard to ASCII case, and with `ſ` (U+017F) taken for `s` and
/// the Kelvin sign (U+212A) for `k`, the two non-ASCII letters that fold to
/// ASCII ones.
fn go_fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Refuses a key that the runtime would read as one of `fields` but that is
/// not spelt as it: runc would take `"Process"` for `process`, while
/// sniffguard edits only `process`, so its edit (the capability floor, its
/// hooks) and the runtime's reading would part ways.
fn check_fields_spelling(
    object: &Map<String, Value>,
    fields: &[&str],
    at: &str,
) -> Result<(), InjectError> {
    for key in object.keys() {
        let folded = go_fold(key);
        if let Some(field) = fields.iter().find(|f| **f != key && **f == folded) {
            return Err(InjectError::Shape(format!(
                "{at}{key:?} would be read by the runtime as {field:?} (Go matches JSON keys regardless of case), but sniffguard edits {field:?} only; spell it {field:?}"
            )));
        }
    }
    Ok(())
}

/// [`check_fields_spelling`] for every object sniffguard edits.
fn check_spelling(config: &Map<String, Value>, seccomp: bool) -> Result<(), InjectError> {
    check_fields_spelling(config, &["process", "hooks", "annotations", "linux"], "")?;
    if let Some(process) = config.get("process").and_then(Value::as_object) {
        check_fields_spelling(process, &["capabilities"], "process.")?;
        if let Some(sets) = process.get("capabilities").and_then(Value::as_object) {
            check_fields_spelling(sets, &capabilities::SETS, "process.capabilities.")?;
        }
    }
    if let Some(hooks) = config.get("hooks").and_then(Value::as_object) {
        check_fields_spelling(hooks, &["createRuntime", "poststop"], "hooks.")?;
    }
    if seccomp {
        if let Some(linux) = config.get("linux").and_then(Value::as_object) {
            check_fields_spelling(linux, &["seccomp"], "linux.")?;
        }
    }
    Ok(())
}

/// Rewrites `BUNDLE/config.json` in place: read, attach, write to a temporary
/// file beside it, rename over the original (`write_atomically` says why
/// there is no `fsync`). A reader never sees a half written file and a
/// failure leaves the original untouched.
pub fn inject_bundle(bundle: &Path, attachment: &Attachment) -> Result<(), InjectError> {
    let bytes = read_config(bundle)?;
    let mut config = parse_config(&bytes)?;
    attach(&mut config, attachment)?;
    write_config(bundle, &config)
}

/// Writes `config` as `BUNDLE/config.json`, atomically.
pub fn write_config(bundle: &Path, config: &Map<String, Value>) -> Result<(), InjectError> {
    let out = serde_json::to_vec_pretty(config).map_err(InjectError::Spec)?;
    write_atomically(&bundle.join("config.json"), &out)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), InjectError> {
    let io = |source| InjectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let tmp = path.with_file_name(format!(".config.json.sniffguard.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        // No fsync (it cost ~3 ms of every container start here): the rename
        // is what makes the rewrite atomic for the runtime, which reads the
        // file from the page cache a moment later. A crash before write-back
        // ends the container too (its state lives in /run), and ext4 flushes
        // a file replaced by rename before the rename itself commits.
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| InjectError::Shape(format!("{key} is not an object")))
}

fn add_hooks(config: &mut Map<String, Value>, attachment: &Attachment) -> Result<(), InjectError> {
    let hooks = object_entry(config, "hooks")?;
    let ours = attachment.hook_path.display().to_string();
    for stage in ["createRuntime", "poststop"] {
        let entry = hooks
            .entry(stage.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if entry.is_null() {
            *entry = Value::Array(Vec::new());
        }
        let list = entry
            .as_array_mut()
            .ok_or_else(|| InjectError::Shape(format!("hooks.{stage} is not an array")))?;
        // Injecting twice (a retried create, or `inject` then the shim) replaces
        // our entry instead of running the hook twice.
        list.retain(|hook| hook.get("path").and_then(Value::as_str) != Some(ours.as_str()));
        let hook_stage = if stage == "createRuntime" {
            "create-runtime"
        } else {
            "poststop"
        };
        let hook = attachment.hook_entry(hook_stage);
        // First in both stages. createRuntime: detection is live before any
        // other hook runs. poststop: runc and crun stop running a stage's
        // hooks at the first one that fails, so a failing poststop hook of
        // the bundle placed before ours would leave the container registered
        // for the supervisor's reaper to find, logged as a runtime killed
        // mid-create; deregistering first cannot be skipped that way, and
        // nothing another poststop hook does needs the registration.
        list.insert(0, hook);
    }
    Ok(())
}
