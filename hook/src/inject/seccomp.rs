//! Merging sniffguard's seccomp rules into a bundle's `linux.seccomp`, in an
//! enforce environment: `SCMP_ACT_NOTIFY` for `execve`, `execveat`, capture
//! sockets and the syscalls that change a process's root, a refusal of
//! io_uring and `pidfd_getfd`, `listenerPath` pointing at the supervisor and
//! `listenerMetadata` naming the environment.
//!
//! Merging with an existing profile must hold whatever the profile says (its
//! author is the workload's): sniffguard's rule for a syscall is never placed
//! beside a permissive rule of the profile for the same syscall, because
//! libseccomp resolves several rules of one syscall by the shape of its
//! decision tree, not by their actions. See [`merge_seccomp`] for the table.
//!
//! Rooms: this module decides, syscall by syscall, what to add, move or keep
//! ([`merge_seccomp`]); `profile` reads the base profile and refuses what it
//! cannot understand; `rules` builds what sniffguard writes and the socket
//! rules it carries to the supervisor; `error` holds [`SeccompError`]. None
//! of them reads or writes `config.json` itself ([`crate::inject`] does).

mod error;
mod profile;
mod rules;

use std::path::Path;

use oci_spec::runtime::{LinuxSeccompAction, LinuxSyscall};
use serde_json::{json, Map, Value};
use sniffguard_common::listener::{BaseAction, ListenerMetadata, ROOT_CHANGING_SYSCALLS};

use error::unreadable;
pub use error::SeccompError;
use profile::{
    check_profile, existing_treatment, has_action, is_permissive, is_unconditional, names_syscall,
    remove_name, rule_action, rule_names, set_rule_action, set_rule_names, Existing, BPF,
    EXEC_SYSCALLS, REFUSED_SYSCALLS, SOCKET,
};
use rules::{
    base_action, capture_socket_rules, host_architectures, notify_rule, one_command_rules,
    rejoin_unless_arg_rules, rule_value, socket_syscall, take_socket_rules, EPERM, IOCTL,
};

/// Merges sniffguard's notify rules into `existing` (a `linux.seccomp` object,
/// or none for a fresh allow-all profile) and returns the merged object. Only
/// the rules for sniffguard's syscalls, `syscalls`' order around them,
/// `listenerPath`, `listenerMetadata` and (when the profile lists none)
/// `architectures` change; every other field and rule is passed through as it
/// was (see `profile::check_profile` for what must be readable).
///
/// "Permissive" is every action but `ERRNO` and the kills (see
/// `profile::is_permissive`).
///
/// | existing treatment of the syscall | result |
/// |---|---|
/// | unconditional refusal (`ERRNO`, `KILL`, …) | kept; no notify rule (already stopped) |
/// | unconditional permissive rule | the name leaves that rule; unconditional `NOTIFY` |
/// | only conditional rules, `execve`/`execveat` | refused: merging would widen or drop them |
/// | any permissive or conditional rule, `socket` | every `socket` rule moves to the listener metadata ([`SocketRules`](sniffguard_common::listener::SocketRules)); unconditional `NOTIFY` |
/// | not mentioned, permissive default | `NOTIFY` (conditional for `socket`) |
/// | not mentioned, refusing default | nothing (already stopped) |
///
/// An unconditional `NOTIFY` on `socket` sends every socket call to the
/// supervisor, which refuses capture sockets and gives every other call the
/// base profile's own answer.
///
/// With `guard_interfaces` (the container keeps `CAP_NET_ADMIN`),
/// `ioctl(SIOCSIFFLAGS)` goes to the supervisor too, which performs it itself
/// unless it turns promiscuous mode on:
///
/// | existing treatment of `ioctl` | result |
/// |---|---|
/// | unconditional refusal | kept; nothing added |
/// | unconditional permissive rule | the name leaves that rule; the rule's action for every other command, 32 rules of one bit each (see `rules::other_ioctl_rules`); `NOTIFY` for `SIOCSIFFLAGS` |
/// | only conditional rules | kept as they are, nothing added: the profile decides `ioctl` by its arguments and a merged rule could lose to them (the probes still see, and kill, a promiscuous `SIOCSIFFLAGS`) |
/// | not mentioned, permissive default | `NOTIFY` for `SIOCSIFFLAGS` |
/// | not mentioned, refusing default | nothing |
///
/// `bpf` is handed over for one command only, `BPF_PROG_LOAD` (a `NOTIFY` rule
/// on `args[0]`'s low 32 bits):
///
/// | existing treatment of `bpf` | result |
/// |---|---|
/// | unconditional refusal | kept; nothing added |
/// | unconditional permissive rule | the name leaves that rule; the rule is copied for every *other* command (32 rules, one per bit that differs from `BPF_PROG_LOAD`'s, unless its action is the default's) beside the `NOTIFY` rule: no call matches both |
/// | conditional rules | refused: which commands they let through cannot be split from ours without changing their meaning |
/// | not mentioned, permissive default | the `NOTIFY` rule |
/// | not mentioned, refusing default | nothing |
///
/// Docker's and containers-common's profiles allow `bpf` unconditionally for
/// a container with `CAP_SYS_ADMIN` or `CAP_BPF`, and do not mention it
/// otherwise (the runtime sees the profile resolved for the capabilities).
pub fn merge_seccomp(
    existing: Option<Value>,
    listener: &Path,
    environment: &str,
    guard_interfaces: bool,
) -> Result<Value, SeccompError> {
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
        Some(path) => return Err(SeccompError::ForeignListener(path.to_string())),
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
        // A `bpf` or `ioctl` rule a previous injection split around its one
        // command is joined again (its NOTIFY half goes with the conditional
        // rules below).
        for command in [&PROGRAM_LOADS, &INTERFACE_FLAGS] {
            rejoin_unless_arg_rules(&mut rules, command.name, command.index, command.value);
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
        return Err(SeccompError::Unmergeable(
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
                return Err(SeccompError::Unmergeable(format!(
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
    // Promiscuous mode by ioctl(SIOCSIFFLAGS): only a container that keeps
    // CAP_NET_ADMIN can, and only that command goes to the supervisor.
    if guard_interfaces {
        added.extend(merge_one_command(
            &mut rules,
            default_action,
            &INTERFACE_FLAGS,
        )?);
    }
    // eBPF programs that see every frame of an interface or socket (socket
    // filter, tc, XDP) are loaded with bpf(BPF_PROG_LOAD): that command goes
    // to the supervisor, decided from the register. The base profile's answer
    // for every other command is kept, without ever putting our rule beside a
    // permissive one that also matches it (see `bpf_prog_load_rules`).
    added.extend(merge_one_command(
        &mut rules,
        default_action,
        &PROGRAM_LOADS,
    )?);
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
            serde_json::to_value(host_architectures()).map_err(SeccompError::Encode)?;
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

/// A syscall handed to the supervisor for one value of one `int` argument
/// (its low 32 bits), every other call keeping the base profile's answer.
struct OneCommand {
    /// The syscall.
    name: &'static str,
    /// The argument holding the command.
    index: usize,
    /// The command.
    value: u64,
    /// What a base profile's conditional rules for the syscall mean:
    /// `Some(why)`, the merge is refused; `None`, they are kept and nothing is
    /// added (the probes still report the command).
    refuse_conditional: Option<&'static str>,
}

/// `bpf(BPF_PROG_LOAD, …)`: loading socket-filter, tc and XDP programs.
const PROGRAM_LOADS: OneCommand = OneCommand {
    name: BPF,
    index: 0,
    value: sniffguard_common::abi::linux::BPF_PROG_LOAD,
    refuse_conditional: Some("sniffguard must see every bpf(BPF_PROG_LOAD) and cannot split those rules around it without changing their meaning"),
};

/// `ioctl(fd, SIOCSIFFLAGS, …)`: promiscuous mode on any socket.
const INTERFACE_FLAGS: OneCommand = OneCommand {
    name: IOCTL,
    index: 1,
    value: sniffguard_common::capture::INTERFACE_FLAGS_IOCTL,
    refuse_conditional: None,
};

/// The step of [`merge_seccomp`] for one [`OneCommand`] (its second table):
/// takes the base profile's unconditional permissive rule for the syscall out
/// of `rules` when there is one, and returns the rules to add.
fn merge_one_command(
    rules: &mut Vec<Value>,
    default_action: LinuxSeccompAction,
    command: &OneCommand,
) -> Result<Vec<Value>, SeccompError> {
    let name = command.name;
    let conditional = |what: &str| match command.refuse_conditional {
        Some(why) => Err(SeccompError::Unmergeable(format!(
            "linux.seccomp has {what} for {name}; {why}"
        ))),
        None => Ok(Vec::new()),
    };
    match existing_treatment(rules, name) {
        Existing::Refused => Ok(Vec::new()),
        Existing::Unmentioned if is_permissive(default_action) => {
            one_command_rules(None, name, command.index, command.value)
        }
        Existing::Unmentioned => Ok(Vec::new()),
        Existing::Conditional => conditional("rules with argument conditions"),
        Existing::Allowed => {
            if rules
                .iter()
                .any(|rule| names_syscall(rule, name) && !is_unconditional(rule))
            {
                return conditional("both unconditional and conditional rules");
            }
            // The first unconditional permissive rule is the one libseccomp
            // would have applied.
            let base = rules
                .iter()
                .find(|rule| names_syscall(rule, name))
                .cloned()
                .ok_or_else(|| SeccompError::Unmergeable(format!("no rule for {name}")))?;
            remove_name(rules, name, true);
            // A copy with the default's own action would be a no-op that
            // runtimes skip or refuse: the default answers those commands.
            let same_as_default = rule_action(&base) == Some(default_action);
            one_command_rules(
                (!same_as_default).then_some(&base),
                name,
                command.index,
                command.value,
            )
        }
    }
}
