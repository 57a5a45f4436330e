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
//! Merging with an existing profile must hold whatever the profile says (its
//! author is the workload's): sniffguard's rule for a syscall is never placed
//! beside a permissive rule of the profile for the same syscall, because
//! libseccomp resolves several rules of one syscall by the shape of its
//! decision tree, not by their actions. See [`merge_seccomp`] for the table.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};
use serde_json::{json, Map, Value};
use sniffguard_common::abi::linux::SOCK_TYPE_MASK;
use sniffguard_common::capture::CAPTURE_SOCKETS;
use sniffguard_common::listener::{
    ArgCondition, ArgOp, BaseAction, ListenerMetadata, SocketRule, SocketRules, MAX_SOCKET_RULES,
    ROOT_CHANGING_SYSCALLS,
};
use sniffguard_common::paths;

use crate::capabilities::{self, CapabilityError};
use sniffguard_common::policy::FailPolicy;

/// Largest `config.json` accepted. Real ones are a few kilobytes; a profile with
/// every syscall listed is under 100 KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Seconds a runtime gives our hook before it kills it.
const HOOK_TIMEOUT_SECONDS: i64 = 10;

/// `int` arguments are compared on their low 32 bits only: the kernel ignores the
/// upper half of the register, so a filter that compared all 64 bits could be
/// walked around by setting garbage there.
const INT_MASK: u64 = 0xffff_ffff;

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
    /// A part of `linux.seccomp` the merge must understand cannot be read.
    #[error("config.json: {field}: {problem}; the environment enforces, so sniffguard must merge its rules into this profile and refuses what it cannot read rather than guess (an audit environment passes the profile to the runtime untouched)")]
    Seccomp {
        /// The field, as a path into `config.json`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A part of `config.json` has the wrong JSON type.
    #[error("config.json: {0}")]
    Shape(String),
    /// The profile already sends notifications to another agent.
    #[error("config.json: linux.seccomp.listenerPath is already set to {0:?}; sniffguard will not take over another seccomp agent's notifications")]
    ForeignListener(String),
    /// The profile has rules sniffguard cannot merge without weakening them.
    #[error("config.json: {0}")]
    Unmergeable(String),
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
        let merged = merge_seccomp(existing, &listener, &attachment.environment)?;
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
/// file beside it, `fsync`, rename over the original. A reader never sees a half
/// written file and a failure leaves the original untouched.
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

/// Syscalls refused outright in enforce mode: io_uring's entry points (its
/// requests create sockets without socket(2), out of reach of the filter and
/// the syscall tracepoints) and `pidfd_getfd` (it copies another process's fd,
/// a capture socket included, into the caller).
const REFUSED_SYSCALLS: [&str; 4] = [
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "pidfd_getfd",
];

/// `EPERM`, the answer to a refused call.
const EPERM: u32 = 1;

/// The syscalls whose every call the supervisor must see in enforce mode.
const EXEC_SYSCALLS: [&str; 2] = ["execve", "execveat"];
const SOCKET: &str = "socket";

/// The fields of an OCI `linux.seccomp` object (runtime-spec
/// config-linux.md, "Seccomp"). Another one could change what the profile's
/// rules mean, so an enforcing merge refuses it.
const SECCOMP_FIELDS: [&str; 7] = [
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
];

/// The fields of one `linux.seccomp.syscalls` rule.
const RULE_FIELDS: [&str; 4] = ["names", "action", "errnoRet", "args"];

/// The fields of one condition of a rule's `args`.
const ARG_FIELDS: [&str; 4] = ["index", "value", "valueTwo", "op"];

/// Whether sniffguard adds, moves or reads rules for syscall `name`: a base
/// rule naming one of these decides what the merge must hold, so it must be
/// understood in full.
fn is_ours(name: &str) -> bool {
    EXEC_SYSCALLS.contains(&name)
        || name == SOCKET
        || ROOT_CHANGING_SYSCALLS.contains(&name)
        || REFUSED_SYSCALLS.contains(&name)
}

fn unreadable(field: impl Into<String>, problem: impl Into<String>) -> InjectError {
    InjectError::Seccomp {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The names of a rule (checked by [`check_profile`] before anything else).
fn rule_names(rule: &Value) -> impl Iterator<Item = &str> {
    rule.get("names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn names_syscall(rule: &Value, name: &str) -> bool {
    rule_names(rule).any(|n| n == name)
}

/// A rule's action, when it is one `oci-spec` knows.
fn rule_action(rule: &Value) -> Option<LinuxSeccompAction> {
    rule.get("action")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
}

fn has_action(rule: &Value, action: LinuxSeccompAction) -> bool {
    rule_action(rule) == Some(action)
}

/// Whether a rule applies to every call of its syscalls (no `args`).
fn is_unconditional(rule: &Value) -> bool {
    rule.get("args")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

fn set_rule_names(rule: &mut Value, names: Vec<String>) {
    if let Some(rule) = rule.as_object_mut() {
        rule.insert(
            "names".to_string(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
}

fn set_rule_action(rule: &mut Value, action: &str) {
    if let Some(rule) = rule.as_object_mut() {
        rule.insert("action".to_string(), Value::String(action.to_string()));
    }
}

/// A rule's argument conditions (checked by [`check_profile`] for every rule
/// that names one of sniffguard's syscalls).
fn rule_args(rule: &Value) -> Vec<LinuxSeccompArg> {
    rule.get("args")
        .filter(|a| !a.is_null())
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

fn rule_errno(rule: &Value) -> Option<u32> {
    rule.get("errnoRet")
        .and_then(Value::as_u64)
        .and_then(|e| u32::try_from(e).ok())
}

fn parse_action(value: &Value, field: &str) -> Result<LinuxSeccompAction, InjectError> {
    let text = value
        .as_str()
        .ok_or_else(|| unreadable(field, "not a string"))?;
    text.parse()
        .map_err(|_| unreadable(field, format!("unknown action {text:?}")))
}

fn check_errno(value: Option<&Value>, field: &str) -> Result<(), InjectError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|e| u32::try_from(e).is_ok()) => Ok(()),
        Some(_) => Err(unreadable(field, "not an errno number")),
    }
}

fn check_fields(object: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), InjectError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        // runc reads JSON keys case-insensitively, so "Action" would be read
        // as "action": an unknown key is refused, not skipped.
        Some(key) => Err(unreadable(
            format!("{at}.{key}"),
            "a field sniffguard does not know",
        )),
        None => Ok(()),
    }
}

/// Checks what an enforcing merge reads of a `linux.seccomp` object: its
/// fields, its default action, the names of every rule, and in full every rule
/// that names one of sniffguard's syscalls. Rules for other syscalls are
/// passed through unread (their actions are the runtime's to judge).
fn check_profile(profile: &Map<String, Value>) -> Result<(), InjectError> {
    const AT: &str = "linux.seccomp";
    check_fields(profile, &SECCOMP_FIELDS, AT)?;
    let default = profile
        .get("defaultAction")
        .ok_or_else(|| unreadable(format!("{AT}.defaultAction"), "missing"))?;
    parse_action(default, &format!("{AT}.defaultAction"))?;
    check_errno(
        profile.get("defaultErrnoRet"),
        &format!("{AT}.defaultErrnoRet"),
    )?;
    for key in ["listenerPath", "listenerMetadata"] {
        if profile
            .get(key)
            .is_some_and(|v| !v.is_null() && !v.is_string())
        {
            return Err(unreadable(format!("{AT}.{key}"), "not a string"));
        }
    }
    let rules = match profile.get("syscalls") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err(unreadable(format!("{AT}.syscalls"), "not an array")),
    };
    for (index, rule) in rules.iter().enumerate() {
        let at = format!("{AT}.syscalls[{index}]");
        let object = rule
            .as_object()
            .ok_or_else(|| unreadable(&at, "not an object"))?;
        let names = object
            .get("names")
            .and_then(Value::as_array)
            .filter(|names| names.iter().all(Value::is_string))
            .ok_or_else(|| unreadable(format!("{at}.names"), "not an array of syscall names"))?;
        if !names.iter().filter_map(Value::as_str).any(is_ours) {
            continue;
        }
        check_fields(object, &RULE_FIELDS, &at)?;
        let action = object
            .get("action")
            .ok_or_else(|| unreadable(format!("{at}.action"), "missing"))?;
        parse_action(action, &format!("{at}.action"))?;
        check_errno(object.get("errnoRet"), &format!("{at}.errnoRet"))?;
        match object.get("args") {
            None | Some(Value::Null) => {}
            Some(Value::Array(args)) => {
                for (arg_index, arg) in args.iter().enumerate() {
                    let arg_at = format!("{at}.args[{arg_index}]");
                    let arg_object = arg
                        .as_object()
                        .ok_or_else(|| unreadable(&arg_at, "not an object"))?;
                    check_fields(arg_object, &ARG_FIELDS, &arg_at)?;
                    serde_json::from_value::<LinuxSeccompArg>(arg.clone())
                        .map_err(|err| unreadable(&arg_at, err.to_string()))?;
                }
            }
            Some(_) => return Err(unreadable(format!("{at}.args"), "not an array")),
        }
    }
    Ok(())
}

/// Whether `action` can let a call run. Only `ERRNO` and the kills are sure
/// refusals: `TRACE` hands the call to a tracer that may continue it, `TRAP`
/// to a signal handler, `LOG` and `ALLOW` run it. A rule or default with any
/// of those must never stand in for sniffguard's own rule.
fn is_permissive(action: LinuxSeccompAction) -> bool {
    !matches!(
        action,
        LinuxSeccompAction::ScmpActErrno
            | LinuxSeccompAction::ScmpActKill
            | LinuxSeccompAction::ScmpActKillThread
            | LinuxSeccompAction::ScmpActKillProcess
    )
}

/// What a base profile's action means for a call the supervisor decides in
/// its place.
fn base_action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> BaseAction {
    match action {
        LinuxSeccompAction::ScmpActErrno => BaseAction::Errno(errno_ret.unwrap_or(EPERM)),
        LinuxSeccompAction::ScmpActKill
        | LinuxSeccompAction::ScmpActKillThread
        | LinuxSeccompAction::ScmpActKillProcess => BaseAction::Kill,
        _ => BaseAction::Allow,
    }
}

fn arg_condition(arg: &LinuxSeccompArg) -> Result<ArgCondition, InjectError> {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ArgOp::Ne,
        LinuxSeccompOperator::ScmpCmpLt => ArgOp::Lt,
        LinuxSeccompOperator::ScmpCmpLe => ArgOp::Le,
        LinuxSeccompOperator::ScmpCmpEq => ArgOp::Eq,
        LinuxSeccompOperator::ScmpCmpGe => ArgOp::Ge,
        LinuxSeccompOperator::ScmpCmpGt => ArgOp::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ArgOp::MaskedEq,
    };
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| {
            InjectError::Unmergeable(format!(
                "linux.seccomp has a socket rule on argument {}; syscalls have six",
                arg.index()
            ))
        })?;
    Ok(ArgCondition {
        index,
        op,
        value: arg.value(),
        value_two: arg.value_two().unwrap_or(0),
    })
}

/// A rule sniffguard writes, as JSON.
fn rule_value(rule: &LinuxSyscall) -> Result<Value, InjectError> {
    serde_json::to_value(rule).map_err(InjectError::Spec)
}

/// The rule a carried [`SocketRule`] came from, for undoing an injection.
fn socket_syscall(rule: &SocketRule) -> Result<Value, InjectError> {
    let mut syscall = LinuxSyscall::default();
    syscall.set_names(vec![SOCKET.to_string()]);
    let (action, errno) = match rule.action {
        BaseAction::Allow => (LinuxSeccompAction::ScmpActAllow, None),
        BaseAction::Errno(errno) => (LinuxSeccompAction::ScmpActErrno, Some(errno)),
        BaseAction::Kill => (LinuxSeccompAction::ScmpActKillProcess, None),
    };
    syscall.set_action(action);
    syscall.set_errno_ret(errno);
    let args: Vec<LinuxSeccompArg> = rule
        .args
        .iter()
        .map(|c| {
            let op = match c.op {
                ArgOp::Ne => LinuxSeccompOperator::ScmpCmpNe,
                ArgOp::Lt => LinuxSeccompOperator::ScmpCmpLt,
                ArgOp::Le => LinuxSeccompOperator::ScmpCmpLe,
                ArgOp::Eq => LinuxSeccompOperator::ScmpCmpEq,
                ArgOp::Ge => LinuxSeccompOperator::ScmpCmpGe,
                ArgOp::Gt => LinuxSeccompOperator::ScmpCmpGt,
                ArgOp::MaskedEq => LinuxSeccompOperator::ScmpCmpMaskedEq,
            };
            let arg = LinuxSeccompArgBuilder::default()
                .index(usize::from(c.index))
                .op(op)
                .value(c.value);
            let arg = if c.op == ArgOp::MaskedEq {
                arg.value_two(c.value_two)
            } else {
                arg
            };
            arg.build()
        })
        .collect::<Result<_, _>>()
        .map_err(|err| InjectError::Unmergeable(format!("a carried socket rule: {err}")))?;
    syscall.set_args((!args.is_empty()).then_some(args));
    rule_value(&syscall)
}

/// Takes every rule for `socket` out of `rules` (a rule that also names other
/// syscalls keeps them) and returns them as the supervisor will apply them.
fn take_socket_rules(
    rules: &mut Vec<Value>,
    default: BaseAction,
) -> Result<SocketRules, InjectError> {
    let mut taken = Vec::new();
    for rule in rules.iter().filter(|r| names_syscall(r, SOCKET)) {
        let args = rule_args(rule)
            .iter()
            .map(arg_condition)
            .collect::<Result<Vec<_>, _>>()?;
        // Checked: a rule naming socket has an action oci-spec knows.
        let action = rule_action(rule).unwrap_or(LinuxSeccompAction::ScmpActAllow);
        taken.push(SocketRule {
            action: base_action(action, rule_errno(rule)),
            args,
        });
    }
    if taken.len() > MAX_SOCKET_RULES {
        return Err(InjectError::Unmergeable(format!(
            "linux.seccomp has {} rules for socket; sniffguard carries at most {MAX_SOCKET_RULES}",
            taken.len()
        )));
    }
    remove_name(rules, SOCKET, false);
    Ok(SocketRules {
        rules: taken,
        default,
    })
}

fn masked(index: usize, mask: u64, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .value(mask)
        .value_two(value)
        .build()
        .unwrap_or_default()
}

fn notify_rule(
    names: Vec<String>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> Result<Value, InjectError> {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(LinuxSeccompAction::ScmpActNotify);
    rule.set_args(args);
    rule_value(&rule)
}

/// The conditional rules that catch capture sockets, one per row of
/// [`CAPTURE_SOCKETS`].
fn capture_socket_rules() -> Result<Vec<Value>, InjectError> {
    CAPTURE_SOCKETS
        .iter()
        .map(|rule| {
            let mut args = vec![masked(0, INT_MASK, rule.family)];
            if let Some(socket_type) = rule.socket_type {
                args.push(masked(1, SOCK_TYPE_MASK, socket_type));
            }
            if let Some(protocol) = rule.protocol {
                args.push(masked(2, INT_MASK, protocol));
            }
            notify_rule(vec![SOCKET.to_string()], Some(args))
        })
        .collect()
}

/// The architectures a new profile covers. Without the compat ABIs a 32-bit
/// `execve` (`int 0x80`) would not match the filter at all.
fn host_architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

/// What an existing profile already does with one syscall.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// An unconditional rule refuses it: nothing to add.
    Refused,
    /// An unconditional rule allows it: that rule must lose the name, or it would
    /// win over ours.
    Allowed,
    /// Only rules with argument conditions name it.
    Conditional,
    /// No rule names it: the default action applies.
    Unmentioned,
}

fn existing_treatment(rules: &[Value], name: &str) -> Existing {
    let mut found = Existing::Unmentioned;
    for rule in rules.iter().filter(|r| names_syscall(r, name)) {
        // Checked: a rule naming one of sniffguard's syscalls has a known
        // action; were it not, counting it permissive is the safe reading.
        let permissive = rule_action(rule).is_none_or(is_permissive);
        match (is_unconditional(rule), permissive) {
            (true, false) => return Existing::Refused,
            (true, true) => found = Existing::Allowed,
            (false, _) if found == Existing::Unmentioned => found = Existing::Conditional,
            (false, _) => {}
        }
    }
    found
}

fn remove_name(rules: &mut Vec<Value>, name: &str, only_permissive_unconditional: bool) {
    for rule in rules.iter_mut() {
        if !names_syscall(rule, name) {
            continue;
        }
        let permissive = rule_action(rule).is_none_or(is_permissive);
        if only_permissive_unconditional && !(is_unconditional(rule) && permissive) {
            continue;
        }
        let names: Vec<String> = rule_names(rule)
            .filter(|n| *n != name)
            .map(str::to_string)
            .collect();
        set_rule_names(rule, names);
    }
    rules.retain(|rule| rule_names(rule).next().is_some());
}

/// Merges sniffguard's notify rules into `existing` (a `linux.seccomp` object,
/// or none for a fresh allow-all profile) and returns the merged object. Only
/// the rules for sniffguard's syscalls, `syscalls`' order around them,
/// `listenerPath`, `listenerMetadata` and (when the profile lists none)
/// `architectures` change; every other field and rule is passed through as it
/// was (see [`check_profile`] for what must be readable).
///
/// "Permissive" is every action but `ERRNO` and the kills (see
/// [`is_permissive`]).
///
/// | existing treatment of the syscall | result |
/// |---|---|
/// | unconditional refusal (`ERRNO`, `KILL`, …) | kept; no notify rule (already stopped) |
/// | unconditional permissive rule | the name leaves that rule; unconditional `NOTIFY` |
/// | only conditional rules, `execve`/`execveat` | refused: merging would widen or drop them |
/// | any permissive or conditional rule, `socket` | every `socket` rule moves to the listener metadata ([`SocketRules`]); unconditional `NOTIFY` |
/// | not mentioned, permissive default | `NOTIFY` (conditional for `socket`) |
/// | not mentioned, refusing default | nothing (already stopped) |
///
/// An unconditional `NOTIFY` on `socket` sends every socket call to the
/// supervisor, which refuses capture sockets and gives every other call the
/// base profile's own answer.
pub fn merge_seccomp(
    existing: Option<Value>,
    listener: &Path,
    environment: &str,
) -> Result<Value, InjectError> {
    let listener_text = listener.display().to_string();
    let mut profile = match existing {
        Some(Value::Object(profile)) => profile,
        None | Some(Value::Null) => {
            let mut profile = Map::new();
            profile.insert("defaultAction".to_string(), json!("SCMP_ACT_ALLOW"));
            profile
        }
        Some(_) => return Err(unreadable("linux.seccomp", "not an object")),
    };
    check_profile(&profile)?;
    // Checked: present and known.
    let default_action = profile
        .get("defaultAction")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .unwrap_or(LinuxSeccompAction::ScmpActErrno);
    let default_errno = profile
        .get("defaultErrnoRet")
        .and_then(Value::as_u64)
        .and_then(|e| u32::try_from(e).ok());
    let ours_already = match profile.get("listenerPath").and_then(Value::as_str) {
        None | Some("") => false,
        Some(path) if Path::new(path) == listener => true,
        Some(path) => return Err(InjectError::ForeignListener(path.to_string())),
    };
    let mut rules = match profile.remove("syscalls") {
        Some(Value::Array(rules)) => rules,
        _ => Vec::new(),
    };
    let notify = LinuxSeccompAction::ScmpActNotify;
    if ours_already {
        // The socket rules a previous injection took out of the profile travel
        // in its metadata: put them back, in place of its socket notify rule.
        let carried = profile
            .get("listenerMetadata")
            .and_then(Value::as_str)
            .map(ListenerMetadata::parse)
            .and_then(|m| m.socket_rules);
        if let Some(carried) = carried {
            for rule in rules.iter_mut() {
                if has_action(rule, notify) {
                    let names = rule_names(rule)
                        .filter(|n| *n != SOCKET)
                        .map(str::to_string)
                        .collect();
                    set_rule_names(rule, names);
                }
            }
            rules.retain(|rule| rule_names(rule).next().is_some());
            for rule in &carried.rules {
                rules.push(socket_syscall(rule)?);
            }
        }
        // A previous injection's rules are the only NOTIFY rules a profile with
        // our listener can have. Undo them before merging afresh: an unconditional
        // one replaced an unconditional allow (or a permissive default), so it
        // turns back into an allow; conditional ones were pure additions.
        rules.retain(|rule| !has_action(rule, notify) || is_unconditional(rule));
        // An io_uring refusal from a previous injection stays as it is: it
        // reads as "already refused" below, which keeps a second injection
        // from changing the document.
        for rule in rules.iter_mut() {
            if has_action(rule, notify) {
                set_rule_action(rule, "SCMP_ACT_ALLOW");
            }
        }
    } else if rules.iter().any(|rule| has_action(rule, notify)) {
        return Err(InjectError::Unmergeable(
            "linux.seccomp already has SCMP_ACT_NOTIFY rules but no listener".into(),
        ));
    }
    let default_permissive = is_permissive(default_action);

    let mut exec_names = Vec::new();
    for name in EXEC_SYSCALLS {
        match existing_treatment(&rules, name) {
            Existing::Refused => {}
            Existing::Allowed => {
                remove_name(&mut rules, name, true);
                exec_names.push(name.to_string());
            }
            Existing::Conditional => {
                return Err(InjectError::Unmergeable(format!(
                    "linux.seccomp has rules with argument conditions for {name}; sniffguard must see every {name} and cannot merge them without changing their meaning"
                )))
            }
            Existing::Unmentioned if default_permissive => exec_names.push(name.to_string()),
            Existing::Unmentioned => {}
        }
    }
    let mut added = Vec::new();
    if !exec_names.is_empty() {
        added.push(notify_rule(exec_names, None)?);
    }
    // Capture sockets. The only sound way to share `socket` with the base
    // profile is to be its only rule there: libseccomp resolves several rules
    // of one syscall by the shape of its decision tree, not by their actions,
    // and a base `ALLOW socket if args[0] != 16` was measured to win over a
    // merged capture rule. So either no base rule names `socket` (then the
    // conditional capture rules are all there is), or every base rule for it
    // moves to the supervisor, which gets every `socket` call.
    let mut socket_rules = None;
    match existing_treatment(&rules, SOCKET) {
        Existing::Refused => {}
        Existing::Allowed | Existing::Conditional => {
            let default = base_action(default_action, default_errno);
            let taken = take_socket_rules(&mut rules, default)?;
            // Docker's default (one unconditional allow) needs no carrying:
            // "run" is what the supervisor gives a non-capture socket without
            // rules, and what undoing the injection writes back.
            let always_runs = taken
                .rules
                .iter()
                .any(|r| r.action == BaseAction::Allow && r.args.is_empty())
                && taken.rules.iter().all(|r| r.action == BaseAction::Allow);
            socket_rules = (!always_runs).then_some(taken);
            added.push(notify_rule(vec![SOCKET.to_string()], None)?);
        }
        Existing::Unmentioned if default_permissive => added.extend(capture_socket_rules()?),
        Existing::Unmentioned => {}
    }
    // Syscalls that change what `/` means to a process (chroot, a mount over
    // a directory, another mount namespace's root) are handed over as well,
    // so the supervisor may keep the container's root open between execs
    // until one is made. A profile that already decides one of them by its
    // arguments keeps its rule; the supervisor then looks the root up per exec.
    let mut root_names = Vec::new();
    let mut root_changes_notified = true;
    for name in ROOT_CHANGING_SYSCALLS {
        match existing_treatment(&rules, name) {
            Existing::Refused => {}
            Existing::Allowed => {
                remove_name(&mut rules, name, true);
                root_names.push(name.to_string());
            }
            Existing::Conditional => root_changes_notified = false,
            Existing::Unmentioned if default_permissive => root_names.push(name.to_string()),
            Existing::Unmentioned => {}
        }
    }
    if !root_names.is_empty() {
        added.push(notify_rule(root_names, None)?);
    }
    // io_uring can create sockets (IORING_OP_SOCKET) without calling socket(2),
    // out of reach of both the filter and the syscall tracepoints, and
    // pidfd_getfd lifts a socket out of another process: enforced containers
    // do without both (Docker's default profile refuses io_uring too).
    let mut refused = Vec::new();
    for name in REFUSED_SYSCALLS {
        match existing_treatment(&rules, name) {
            Existing::Refused => {}
            Existing::Allowed | Existing::Conditional => {
                remove_name(&mut rules, name, false);
                refused.push(name.to_string());
            }
            Existing::Unmentioned if default_permissive => refused.push(name.to_string()),
            Existing::Unmentioned => {}
        }
    }
    if !refused.is_empty() {
        let mut rule = LinuxSyscall::default();
        rule.set_names(refused);
        rule.set_action(LinuxSeccompAction::ScmpActErrno);
        rule.set_errno_ret(Some(EPERM));
        // Before the notify rules: a second injection keeps this rule where it
        // is and appends the notify rules again, so the order must already be
        // that one for the rewrite to be idempotent.
        rules.push(rule_value(&rule)?);
    }
    rules.extend(added);
    profile.insert("syscalls".to_string(), Value::Array(rules));
    let lists_architectures = profile
        .get("architectures")
        .is_some_and(|a| !a.is_null() && a.as_array().is_none_or(|a| !a.is_empty()));
    if !lists_architectures {
        let architectures =
            serde_json::to_value(host_architectures()).map_err(InjectError::Spec)?;
        profile.insert("architectures".to_string(), architectures);
    }
    profile.insert("listenerPath".to_string(), Value::String(listener_text));
    let metadata = ListenerMetadata {
        environment: environment.to_string(),
        root_changes_notified,
        socket_rules,
    };
    profile.insert(
        "listenerMetadata".to_string(),
        Value::String(metadata.render()),
    );
    Ok(Value::Object(profile))
}
