//! The rules sniffguard writes into a profile (unconditional and
//! capture-socket `NOTIFY` rules, the architectures of a new profile), and the
//! base profile's `socket` rules carried to the supervisor in the listener
//! metadata ([`SocketRules`]) and written back from it.

use oci_spec::runtime::{
    Arch, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};
use serde_json::Value;
use sniffguard_common::abi::linux::SOCK_TYPE_MASK;
use sniffguard_common::capture::CAPTURE_SOCKETS;
use sniffguard_common::listener::{
    ArgCondition, ArgOp, BaseAction, SocketRule, SocketRules, MAX_SOCKET_RULES,
};

use super::error::SeccompError;
use super::profile::{
    names_syscall, remove_name, rule_action, rule_args, rule_errno, rule_names, SOCKET,
};

/// `EPERM`, the answer to a refused call.
pub(super) const EPERM: u32 = 1;

/// `int` arguments are compared on their low 32 bits only: the kernel ignores the
/// upper half of the register, so a filter that compared all 64 bits could be
/// walked around by setting garbage there.
const INT_MASK: u64 = 0xffff_ffff;

/// What a base profile's action means for a call the supervisor decides in
/// its place.
pub(super) fn base_action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> BaseAction {
    match action {
        LinuxSeccompAction::ScmpActErrno => BaseAction::Errno(errno_ret.unwrap_or(EPERM)),
        LinuxSeccompAction::ScmpActKill
        | LinuxSeccompAction::ScmpActKillThread
        | LinuxSeccompAction::ScmpActKillProcess => BaseAction::Kill,
        _ => BaseAction::Allow,
    }
}

fn arg_condition(arg: &LinuxSeccompArg) -> Result<ArgCondition, SeccompError> {
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
            SeccompError::Unmergeable(format!(
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
pub(super) fn rule_value(rule: &LinuxSyscall) -> Result<Value, SeccompError> {
    serde_json::to_value(rule).map_err(SeccompError::Encode)
}

/// The rule a carried [`SocketRule`] came from, for undoing an injection.
pub(super) fn socket_syscall(rule: &SocketRule) -> Result<Value, SeccompError> {
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
        .map_err(|err| SeccompError::Unmergeable(format!("a carried socket rule: {err}")))?;
    syscall.set_args((!args.is_empty()).then_some(args));
    rule_value(&syscall)
}

/// Takes every rule for `socket` out of `rules` (a rule that also names other
/// syscalls keeps them) and returns them as the supervisor will apply them.
pub(super) fn take_socket_rules(
    rules: &mut Vec<Value>,
    default: BaseAction,
) -> Result<SocketRules, SeccompError> {
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
        return Err(SeccompError::Unmergeable(format!(
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

pub(super) fn notify_rule(
    names: Vec<String>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> Result<Value, SeccompError> {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(LinuxSeccompAction::ScmpActNotify);
    rule.set_args(args);
    rule_value(&rule)
}

/// The conditional rules that catch capture sockets, one per row of
/// [`CAPTURE_SOCKETS`].
pub(super) fn capture_socket_rules() -> Result<Vec<Value>, SeccompError> {
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

/// The syscall whose `SIOCSIFFLAGS` command can turn promiscuous mode on.
pub(super) const IOCTL: &str = "ioctl";

/// The rule that hands `name` to the supervisor when the `int` argument
/// `index` equals `value` (its low 32 bits: [`INT_MASK`]). Generic over the
/// syscall, argument and value: `bpf` with `cmd == BPF_PROG_LOAD` is one use.
pub(super) fn notify_if_arg_rule(
    name: &str,
    index: usize,
    value: u64,
) -> Result<Value, SeccompError> {
    notify_rule(
        vec![name.to_string()],
        Some(vec![masked(index, INT_MASK, value & INT_MASK)]),
    )
}

/// `base` (a permissive rule of the base profile for `name`, without
/// arguments) split into the rules that keep its answer for every call of
/// `name` whose `int` argument `index` is *not* `value`: libseccomp has no
/// masked not-equal, so "the low 32 bits differ from `value`" is written as 32
/// rules, rule `i` matching when bit `i` differs from `value`'s. Together they
/// cover every call [`notify_if_arg_rule`] does not, and none that it does:
/// the two sets are disjoint, so the order libseccomp's decision tree gives
/// them cannot change any answer (where several rules of one syscall match,
/// the tree's shape picks one; here only rules of one action can match
/// together). Each copy keeps every other field of `base` (its action and
/// `errnoRet`). Generic over the syscall, argument and value.
pub(super) fn unless_arg_rules(
    base: &Value,
    name: &str,
    index: usize,
    value: u64,
) -> Result<Vec<Value>, SeccompError> {
    (0..32)
        .map(|bit| {
            let mask = 1u64 << bit;
            let arg = masked(index, mask, !value & mask);
            let mut rule = base.clone();
            let object = rule.as_object_mut().ok_or_else(|| {
                SeccompError::Unmergeable(format!("a rule for {name} is not an object"))
            })?;
            object.insert(
                "names".to_string(),
                Value::Array(vec![Value::String(name.to_string())]),
            );
            object.insert(
                "args".to_string(),
                serde_json::to_value(vec![arg]).map_err(SeccompError::Encode)?,
            );
            Ok(rule)
        })
        .collect()
}

/// Whether `rules` hold the 32 rules [`unless_arg_rules`] writes for `name`,
/// `index` and `value`, all with one action; if so, they are replaced by the
/// one unconditional rule they were split from (undoing an earlier
/// injection, so that a second one merges the same way as the first).
pub(super) fn rejoin_unless_arg_rules(
    rules: &mut Vec<Value>,
    name: &str,
    index: usize,
    value: u64,
) {
    let is_split = |rule: &Value, bit: u32| {
        let mask = 1u64 << bit;
        rule_names(rule).eq([name])
            && rule_args(rule).as_slice() == [masked(index, mask, !value & mask)]
    };
    let mut positions = Vec::with_capacity(32);
    for bit in 0..32 {
        match rules.iter().position(|rule| is_split(rule, bit)) {
            Some(at) => positions.push(at),
            None => return,
        }
    }
    let first = positions.iter().copied().min().unwrap_or(0);
    let action = rules[first].get("action").cloned();
    if positions
        .iter()
        .any(|at| rules[*at].get("action") != action.as_ref())
    {
        return;
    }
    let mut joined = rules[first].clone();
    if let Some(object) = joined.as_object_mut() {
        object.remove("args");
    }
    let mut index_now = 0;
    rules.retain(|_| {
        let keep = !positions.contains(&index_now);
        index_now += 1;
        keep
    });
    let first = first.min(rules.len());
    rules.insert(first, joined);
}

/// What sniffguard writes for a syscall it takes over for one command (the
/// `int` argument `index` equal to `value`): the rule that sends those calls
/// to the supervisor, and, when the base profile allowed the syscall
/// unconditionally with `base` (an action other than the default's), that rule
/// split to keep its answer for every other command. `bpf(BPF_PROG_LOAD)` and
/// `ioctl(SIOCSIFFLAGS)` are the two uses.
pub(super) fn one_command_rules(
    base: Option<&Value>,
    name: &str,
    index: usize,
    value: u64,
) -> Result<Vec<Value>, SeccompError> {
    let mut rules = match base {
        Some(base) => unless_arg_rules(base, name, index, value)?,
        None => Vec::new(),
    };
    rules.push(notify_if_arg_rule(name, index, value)?);
    Ok(rules)
}

/// The architectures a new profile covers. Without the compat ABIs a 32-bit
/// `execve` (`int 0x80`) would not match the filter at all.
pub(super) fn host_architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sniffguard_common::abi::linux::BPF_PROG_LOAD;

    use super::super::profile::BPF;
    use super::*;

    /// Whether a rule's conditions hold for a call whose arguments are `args`,
    /// as the kernel filter compares them (only `MASKED_EQ` is written here).
    fn matches(rule: &Value, args: [u64; 6]) -> bool {
        rule_args(rule).iter().all(|arg| {
            assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
            args[arg.index()] & arg.value() == arg.value_two().unwrap_or(0)
        })
    }

    /// Commands worth trying: every small one, PROG_LOAD's neighbours in each
    /// bit, and garbage in the upper half of the register.
    fn commands() -> Vec<u64> {
        let mut commands: Vec<u64> = (0..64).collect();
        commands.extend((0..64).map(|bit| BPF_PROG_LOAD ^ (1 << bit)));
        commands.extend([
            BPF_PROG_LOAD | (1 << 32),
            BPF_PROG_LOAD | 0xffff_ffff_0000_0000,
            0xffff_ffff,
            u64::MAX,
            0x8000_0005,
        ]);
        commands
    }

    #[test]
    fn the_split_and_the_notify_rule_are_disjoint_and_cover_every_command() {
        let base = json!({"names": ["bpf", "read"], "action": "SCMP_ACT_LOG", "errnoRet": 3});
        let split = unless_arg_rules(&base, BPF, 0, BPF_PROG_LOAD).unwrap();
        assert_eq!(split.len(), 32);
        for rule in &split {
            assert_eq!(rule["names"], json!(["bpf"]));
            assert_eq!(rule["action"], "SCMP_ACT_LOG", "the base rule's action");
            assert_eq!(rule["errnoRet"], 3, "and its other fields");
        }
        let notify = notify_if_arg_rule(BPF, 0, BPF_PROG_LOAD).unwrap();
        for cmd in commands() {
            let args = [cmd, 0x7fff_0000, 128, 0, 0, 0];
            let loads = cmd & INT_MASK == BPF_PROG_LOAD;
            assert_eq!(matches(&notify, args), loads, "cmd {cmd:#x}");
            let kept = split.iter().filter(|r| matches(r, args)).count();
            assert_eq!(kept == 0, loads, "cmd {cmd:#x}: {kept} split rules match");
        }
    }

    #[test]
    fn a_split_rule_is_joined_again() {
        let base = json!({"names": ["bpf"], "action": "SCMP_ACT_ALLOW"});
        let other = json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"});
        let mut rules = vec![other.clone()];
        rules.extend(unless_arg_rules(&base, BPF, 0, BPF_PROG_LOAD).unwrap());
        rules.push(other.clone());
        rejoin_unless_arg_rules(&mut rules, BPF, 0, BPF_PROG_LOAD);
        assert_eq!(rules, [other.clone(), base.clone(), other.clone()]);
        // 31 of the 32 are not a split: left alone.
        let mut partial = unless_arg_rules(&base, BPF, 0, BPF_PROG_LOAD).unwrap();
        partial.pop();
        let before = partial.clone();
        rejoin_unless_arg_rules(&mut partial, BPF, 0, BPF_PROG_LOAD);
        assert_eq!(partial, before);
    }

    #[test]
    fn bpf_rules_without_a_base_rule_are_the_notify_rule_alone() {
        let rules = one_command_rules(None, BPF, 0, BPF_PROG_LOAD).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["action"], "SCMP_ACT_NOTIFY");
        assert!(matches(
            &rules[0],
            [BPF_PROG_LOAD | (7 << 32), 0, 0, 0, 0, 0]
        ));
        assert!(!matches(&rules[0], [0, 0, 0, 0, 0, 0]), "BPF_MAP_CREATE");
    }
}
