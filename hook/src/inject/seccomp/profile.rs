//! Reading a base profile: which of its fields and rules an enforcing merge
//! must understand ([`check_profile`]), how one rule is read and trimmed, and
//! what the profile already does with one of sniffguard's syscalls
//! ([`existing_treatment`]).

use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompArg};
use serde_json::{Map, Value};
use sniffguard_common::listener::ROOT_CHANGING_SYSCALLS;

use super::error::{unreadable, SeccompError};

/// Syscalls refused outright in enforce mode: io_uring's entry points (its
/// requests create sockets without socket(2), out of reach of the filter and
/// the syscall tracepoints) and `pidfd_getfd` (it copies another process's fd,
/// a capture socket included, into the caller).
pub(super) const REFUSED_SYSCALLS: [&str; 4] = [
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "pidfd_getfd",
];

/// The syscalls whose every call the supervisor must see in enforce mode.
pub(super) const EXEC_SYSCALLS: [&str; 2] = ["execve", "execveat"];
pub(super) const SOCKET: &str = "socket";
/// `bpf`, whose `BPF_PROG_LOAD` command the supervisor decides in enforce
/// mode.
pub(super) const BPF: &str = "bpf";

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
        || name == BPF
        || ROOT_CHANGING_SYSCALLS.contains(&name)
        || REFUSED_SYSCALLS.contains(&name)
}

/// The names of a rule (checked by [`check_profile`] before anything else).
pub(super) fn rule_names(rule: &Value) -> impl Iterator<Item = &str> {
    rule.get("names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

pub(super) fn names_syscall(rule: &Value, name: &str) -> bool {
    rule_names(rule).any(|n| n == name)
}

/// A rule's action, when it is one `oci-spec` knows.
pub(super) fn rule_action(rule: &Value) -> Option<LinuxSeccompAction> {
    rule.get("action")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
}

pub(super) fn has_action(rule: &Value, action: LinuxSeccompAction) -> bool {
    rule_action(rule) == Some(action)
}

/// Whether a rule applies to every call of its syscalls (no `args`).
pub(super) fn is_unconditional(rule: &Value) -> bool {
    rule.get("args")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

pub(super) fn set_rule_names(rule: &mut Value, names: Vec<String>) {
    if let Some(rule) = rule.as_object_mut() {
        rule.insert(
            "names".to_string(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
}

pub(super) fn set_rule_action(rule: &mut Value, action: &str) {
    if let Some(rule) = rule.as_object_mut() {
        rule.insert("action".to_string(), Value::String(action.to_string()));
    }
}

/// A rule's argument conditions (checked by [`check_profile`] for every rule
/// that names one of sniffguard's syscalls).
pub(super) fn rule_args(rule: &Value) -> Vec<LinuxSeccompArg> {
    rule.get("args")
        .filter(|a| !a.is_null())
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

pub(super) fn rule_errno(rule: &Value) -> Option<u32> {
    rule.get("errnoRet")
        .and_then(Value::as_u64)
        .and_then(|e| u32::try_from(e).ok())
}

fn parse_action(value: &Value, field: &str) -> Result<LinuxSeccompAction, SeccompError> {
    let text = value
        .as_str()
        .ok_or_else(|| unreadable(field, "not a string"))?;
    text.parse()
        .map_err(|_| unreadable(field, format!("unknown action {text:?}")))
}

fn check_errno(value: Option<&Value>, field: &str) -> Result<(), SeccompError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some_and(|e| u32::try_from(e).is_ok()) => Ok(()),
        Some(_) => Err(unreadable(field, "not an errno number")),
    }
}

fn check_fields(object: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), SeccompError> {
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
pub(super) fn check_profile(profile: &Map<String, Value>) -> Result<(), SeccompError> {
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
pub(super) fn is_permissive(action: LinuxSeccompAction) -> bool {
    !matches!(
        action,
        LinuxSeccompAction::ScmpActErrno
            | LinuxSeccompAction::ScmpActKill
            | LinuxSeccompAction::ScmpActKillThread
            | LinuxSeccompAction::ScmpActKillProcess
    )
}

/// What an existing profile already does with one syscall.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Existing {
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

pub(super) fn existing_treatment(rules: &[Value], name: &str) -> Existing {
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

pub(super) fn remove_name(rules: &mut Vec<Value>, name: &str, only_permissive_unconditional: bool) {
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
