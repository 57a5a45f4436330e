//! Rewriting a bundle's `config.json` so that the container is attached to the
//! supervisor.
//!
//! Two additions:
//! - the `sniffguard-hook` as a `createRuntime` hook (registration) and a
//!   `poststop` hook (deregistration);
//! - in an enforce environment, seccomp rules that hand `execve`, `execveat` and
//!   packet/raw `socket` calls to the supervisor (`SCMP_ACT_NOTIFY`), merged into
//!   whatever profile the bundle already has, with `listenerPath` pointing at the
//!   supervisor and `listenerMetadata` naming the environment.
//!
//! The document is edited as JSON so that fields this crate does not model survive
//! untouched; it is also parsed as an [`oci_spec::runtime::Spec`] first so that a
//! malformed bundle is refused before anything is written.
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
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
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
    /// `config.json` is not a valid OCI runtime spec.
    #[error("config.json is not a valid OCI runtime spec: {0}")]
    Spec(#[source] serde_json::Error),
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

/// Parses `config.json` strictly and returns it as a JSON object.
pub fn parse_config(bytes: &[u8]) -> Result<Map<String, Value>, InjectError> {
    let value: Value = serde_json::from_slice(bytes).map_err(InjectError::Spec)?;
    // Validate against the OCI schema, then keep the untyped document so that
    // fields oci-spec does not model are written back as they were.
    serde_json::from_value::<oci_spec::runtime::Spec>(value.clone()).map_err(InjectError::Spec)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(InjectError::Shape(
            "the document is not a JSON object".into(),
        )),
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
    capabilities::apply_to_config(
        config,
        &attachment.drop_capabilities,
        attachment.refuse_capability_requests,
        &attachment.environment,
    )?;
    add_hooks(config, attachment)?;
    if attachment.seccomp_listener {
        let linux = object_entry(config, "linux")?;
        let existing = match linux.remove("seccomp") {
            None | Some(Value::Null) => None,
            Some(value) => {
                Some(serde_json::from_value::<LinuxSeccomp>(value).map_err(InjectError::Spec)?)
            }
        };
        let listener = paths::seccomp_socket(&attachment.runtime_dir);
        let merged = merge_seccomp(existing, &listener, &attachment.environment)?;
        let merged = serde_json::to_value(merged).map_err(InjectError::Spec)?;
        linux.insert("seccomp".to_string(), merged);
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
    for (stage, first) in [("createRuntime", true), ("poststop", false)] {
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
        // Register before any other createRuntime hook runs; deregister last.
        if first {
            list.insert(0, hook);
        } else {
            list.push(hook);
        }
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

/// The rule a carried [`SocketRule`] came from, for undoing an injection.
fn socket_syscall(rule: &SocketRule) -> Result<LinuxSyscall, InjectError> {
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
    Ok(syscall)
}

/// Takes every rule for `socket` out of `rules` (a rule that also names other
/// syscalls keeps them) and returns them as the supervisor will apply them.
fn take_socket_rules(
    rules: &mut Vec<LinuxSyscall>,
    default: BaseAction,
) -> Result<SocketRules, InjectError> {
    let mut taken = Vec::new();
    for rule in rules
        .iter()
        .filter(|r| r.names().iter().any(|n| n == SOCKET))
    {
        let args = rule
            .args()
            .iter()
            .flatten()
            .map(arg_condition)
            .collect::<Result<Vec<_>, _>>()?;
        taken.push(SocketRule {
            action: base_action(rule.action(), rule.errno_ret()),
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

fn notify_rule(names: Vec<String>, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(LinuxSeccompAction::ScmpActNotify);
    rule.set_args(args);
    rule
}

/// The conditional rules that catch capture sockets, one per row of
/// [`CAPTURE_SOCKETS`].
fn capture_socket_rules() -> Vec<LinuxSyscall> {
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

fn existing_treatment(rules: &[LinuxSyscall], name: &str) -> Existing {
    let mut found = Existing::Unmentioned;
    for rule in rules.iter().filter(|r| r.names().iter().any(|n| n == name)) {
        let unconditional = rule.args().as_ref().is_none_or(Vec::is_empty);
        match (unconditional, is_permissive(rule.action())) {
            (true, false) => return Existing::Refused,
            (true, true) => found = Existing::Allowed,
            (false, _) if found == Existing::Unmentioned => found = Existing::Conditional,
            (false, _) => {}
        }
    }
    found
}

fn remove_name(rules: &mut Vec<LinuxSyscall>, name: &str, only_permissive_unconditional: bool) {
    for rule in rules.iter_mut() {
        let unconditional = rule.args().as_ref().is_none_or(Vec::is_empty);
        if only_permissive_unconditional && !(unconditional && is_permissive(rule.action())) {
            continue;
        }
        let names: Vec<String> = rule
            .names()
            .iter()
            .filter(|n| *n != name)
            .cloned()
            .collect();
        rule.set_names(names);
    }
    rules.retain(|rule| !rule.names().is_empty());
}

/// Merges sniffguard's notify rules into `existing` (or a fresh allow-all
/// profile).
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
    existing: Option<LinuxSeccomp>,
    listener: &Path,
    environment: &str,
) -> Result<LinuxSeccomp, InjectError> {
    let listener_text = listener.display().to_string();
    let mut profile = match existing {
        Some(profile) => profile,
        None => {
            let mut profile = LinuxSeccomp::default();
            profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
            profile
        }
    };
    let ours_already = match profile.listener_path() {
        Some(path) if path.as_os_str().is_empty() => false,
        Some(path) if path == listener => true,
        Some(path) => return Err(InjectError::ForeignListener(path.display().to_string())),
        None => false,
    };
    let mut rules = profile.syscalls().clone().unwrap_or_default();
    if ours_already {
        // The socket rules a previous injection took out of the profile travel
        // in its metadata: put them back, in place of its socket notify rule.
        let carried = profile
            .listener_metadata()
            .as_deref()
            .map(ListenerMetadata::parse)
            .and_then(|m| m.socket_rules);
        if let Some(carried) = carried {
            for rule in rules.iter_mut() {
                if rule.action() == LinuxSeccompAction::ScmpActNotify {
                    let names = rule
                        .names()
                        .iter()
                        .filter(|n| *n != SOCKET)
                        .cloned()
                        .collect();
                    rule.set_names(names);
                }
            }
            rules.retain(|rule| !rule.names().is_empty());
            for rule in &carried.rules {
                rules.push(socket_syscall(rule)?);
            }
        }
        // A previous injection's rules are the only NOTIFY rules a profile with
        // our listener can have. Undo them before merging afresh: an unconditional
        // one replaced an unconditional allow (or a permissive default), so it
        // turns back into an allow; conditional ones were pure additions.
        rules.retain(|rule| {
            rule.action() != LinuxSeccompAction::ScmpActNotify
                || rule.args().as_ref().is_none_or(Vec::is_empty)
        });
        // An io_uring refusal from a previous injection stays as it is: it
        // reads as "already refused" below, which keeps a second injection
        // from changing the document.
        for rule in rules.iter_mut() {
            if rule.action() == LinuxSeccompAction::ScmpActNotify {
                rule.set_action(LinuxSeccompAction::ScmpActAllow);
            }
        }
    } else if rules
        .iter()
        .any(|rule| rule.action() == LinuxSeccompAction::ScmpActNotify)
    {
        return Err(InjectError::Unmergeable(
            "linux.seccomp already has SCMP_ACT_NOTIFY rules but no listener".into(),
        ));
    }
    let default_permissive = is_permissive(profile.default_action());

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
        added.push(notify_rule(exec_names, None));
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
            let default = base_action(profile.default_action(), profile.default_errno_ret());
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
            added.push(notify_rule(vec![SOCKET.to_string()], None));
        }
        Existing::Unmentioned if default_permissive => added.extend(capture_socket_rules()),
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
        added.push(notify_rule(root_names, None));
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
        rules.push(rule);
    }
    rules.extend(added);
    profile.set_syscalls(Some(rules));
    if profile.architectures().as_ref().is_none_or(Vec::is_empty) {
        profile.set_architectures(Some(host_architectures()));
    }
    profile.set_listener_path(Some(PathBuf::from(listener_text)));
    let metadata = ListenerMetadata {
        environment: environment.to_string(),
        root_changes_notified,
        socket_rules,
    };
    profile.set_listener_metadata(Some(metadata.render()));
    Ok(profile)
}
