#!/bin/sh
# seccomp-profile.sh — make a Podman/Docker seccomp profile that hands execs and capture
# sockets to the sniffguard supervisor (SCMP_ACT_NOTIFY + listenerPath), for
# `podman run --security-opt seccomp=PROFILE`: enforcement without the runtime shim.
#
#   config/podman/seccomp-profile.sh [-e ENVIRONMENT] [-d RUNTIME_DIR] [BASE] > profile.json
#
#   -e ENVIRONMENT  listenerMetadata: the environment the supervisor decides for
#                   (default staging; must be an enforce environment of its policy)
#   -d RUNTIME_DIR  the supervisor's runtime directory (default /run/sniffguard);
#                   listenerPath is RUNTIME_DIR/seccomp.sock
#   BASE            the profile to start from, in the containers/Docker format
#                   (default /usr/share/containers/seccomp.json, Podman's own default)
#
# The base profile is kept: only the rules for execve, execveat and socket change.
# "Permissive" is every action but ERRNO and the KILLs (ALLOW, LOG, TRACE, TRAP: a
# tracer or a signal handler can let the call run).
#   - every unconditional permissive rule naming execve/execveat loses those names, and
#     they get a NOTIFY rule with the same `includes`/`excludes` (capability and arch
#     gates); left unmentioned under a permissive default, they get a NOTIFY rule;
#   - socket: unless an ungated unconditional refusal names it, every rule naming socket
#     loses that name, socket gets one unconditional NOTIFY rule, and the base's socket
#     rules travel to the supervisor in listenerMetadata (`ENV;socket={...}`), which
#     refuses capture sockets and gives every other socket call the base's answer (the
#     most severe of the rules that match, whatever their capability gates: never
#     looser than the base). A conditional base ALLOW for socket must not share the
#     filter with a conditional capture rule: libseccomp would let the first rule of
#     its tree win. With no base rule for socket and a permissive default, NOTIFY rules
#     for capture sockets are added instead: AF_PACKET of any type, SOCK_RAW on
#     AF_INET/AF_INET6, the obsolete (AF_INET, SOCK_PACKET);
#   - io_uring_setup/enter/register and pidfd_getfd are refused (EPERM) unless the base
#     already refuses them unconditionally: io_uring can open sockets without
#     socket(2), out of the filter's sight, and pidfd_getfd copies another process's
#     socket (the runtime shim does the same for enforce environments).
# It refuses (non-zero exit, message on stderr) a base that already has NOTIFY rules or a
# listenerPath, or argument-conditional rules for execve/execveat (sniffguard must see
# every exec; merging would change what those rules mean). Needs jq.
set -eu

environment=staging
runtime_dir=/run/sniffguard
while getopts e:d:h opt; do
	case $opt in
	e) environment=$OPTARG ;;
	d) runtime_dir=$OPTARG ;;
	h)
		sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
base=${1:-/usr/share/containers/seccomp.json}
[ $# -le 1 ] || {
	echo "seccomp-profile.sh: at most one BASE profile" >&2
	exit 2
}
command -v jq >/dev/null || {
	echo "seccomp-profile.sh: jq is required (apt-get install jq)" >&2
	exit 1
}
[ -r "$base" ] || {
	echo "seccomp-profile.sh: cannot read base profile $base" >&2
	exit 1
}

exec jq --sort-keys --arg listener "${runtime_dir%/}/seccomp.sock" --arg env "$environment" '
def fail(msg): error("seccomp-profile.sh: " + msg);
def watched: ["execve", "execveat"];
def unconditional: ((.args // []) | length) == 0;
def refusing: .action == "SCMP_ACT_ERRNO" or .action == "SCMP_ACT_KILL"
  or .action == "SCMP_ACT_KILL_PROCESS" or .action == "SCMP_ACT_KILL_THREAD";
def permissive: refusing | not;
def ungated: ((.includes // {}) == {}) and ((.excludes // {}) == {});
# What the supervisor applies for a base rule (common/src/listener.rs, SocketRules).
def base_action(errno): if .action == "SCMP_ACT_ERRNO" then {"errno": errno}
  elif refusing then "kill" else "allow" end;
def op_name: {"SCMP_CMP_NE": "ne", "SCMP_CMP_LT": "lt", "SCMP_CMP_LE": "le",
  "SCMP_CMP_EQ": "eq", "SCMP_CMP_GE": "ge", "SCMP_CMP_GT": "gt",
  "SCMP_CMP_MASKED_EQ": "masked_eq"}[.] // fail("unknown operator \(.)");
def carried: {"action": base_action(.errnoRet // 1),
  "args": [(.args // [])[] | {"index": .index, "op": (.op | op_name), "value": .value,
  "value_two": (.valueTwo // 0)}]};
def names_of: (.names // []) + (if .name then [.name] else [] end);
# The rows of common/src/capture.rs (CAPTURE_SOCKETS; keep them alike): AF_PACKET=17,
# AF_INET=2, AF_INET6=10, AF_XDP=44, AF_NETLINK=16 with NETLINK_NFLOG=5 or
# NETLINK_NETFILTER=12; SOCK_RAW=3, SOCK_PACKET=10. int arguments are
# compared on their low 32 bits, the socket type without SOCK_NONBLOCK/SOCK_CLOEXEC.
def family(f): {"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295, "valueTwo": f};
def kind(t): {"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 15, "valueTwo": t};
def proto(p): {"index": 2, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295, "valueTwo": p};
def notify(names): {"names": names, "action": "SCMP_ACT_NOTIFY"};
def uring: ["io_uring_setup", "io_uring_enter", "io_uring_register", "pidfd_getfd"];

if (.listenerPath // "") != "" then fail("the base profile already has listenerPath \(.listenerPath)") else . end
| if any(.syscalls[]?; .action == "SCMP_ACT_NOTIFY") then fail("the base profile already has SCMP_ACT_NOTIFY rules") else . end
| if any(.syscalls[]?; (unconditional | not) and (names_of | any(. == "execve" or . == "execveat")))
  then fail("the base profile has argument conditions on execve/execveat; sniffguard must see every exec") else . end
| ({"action": .defaultAction} | permissive) as $default_permissive
| ([.syscalls[]? | names_of[]] | unique) as $mentioned
# io_uring calls some unconditional, non-permissive rule already refuses.
| ([.syscalls[]? | select(refusing and unconditional and ungated) | names_of[]]
   | unique) as $refused
# socket: the rules of the base, unless one refuses it outright.
| ([.syscalls[]? | select(names_of | index("socket"))]) as $socket_rules
| ($refused | index("socket")) as $socket_refused
| (if ($socket_rules | length) > 0 and ($socket_refused | not)
   then {"rules": [$socket_rules[] | carried],
         "default": (if .defaultAction == "SCMP_ACT_ERRNO" then {"errno": (.defaultErrnoRet // 1)}
                     else ({"action": .defaultAction} | base_action(1)) end)}
   else null end) as $carried
| (uring - $refused | map(select(. as $n | $mentioned | index($n) or $default_permissive))) as $uring
| .syscalls = [.syscalls[]? | if (names_of | any(. as $n | $uring | index($n)))
    then (del(.name) | .names = (names_of - $uring) | select(.names | length > 0)) else . end]
| .syscalls = ([
    (.syscalls // [])[]
    | if permissive and unconditional and (names_of | any(. as $n | watched | index($n)))
      then
        (del(.name) | .names = (names_of - watched) | select(.names | length > 0)),
        (del(.name) | .names = (names_of - (names_of - watched)) | .action = "SCMP_ACT_NOTIFY"
          | del(.errnoRet) | .comment = "sniffguard: decided by the supervisor")
      else . end
  ]
  | if $carried then [.[] | if (names_of | index("socket"))
      then (del(.name) | .names = (names_of - ["socket"]) | select(.names | length > 0)) else . end]
    else . end)
  + (["execve", "execveat"] - $mentioned | if $default_permissive and length > 0 then [notify(.)] else [] end)
  + (if $carried then [notify(["socket"]) + {"comment": "sniffguard: every socket call; the base rules are in listenerMetadata"}]
     elif ($socket_rules | length) == 0 and $default_permissive then [
      [family(17)],
      [family(2), kind(10)],
      [family(2), kind(3)],
      [family(10), kind(3)],
      [family(44)],
      [family(16), proto(5)],
      [family(16), proto(12)]
    | notify(["socket"]) + {"args": ., "comment": "sniffguard: capture sockets"}
    ] else [] end)
  + (if ($uring | length) > 0
     then [{"names": $uring, "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "comment": "sniffguard: io_uring opens sockets out of the filter'"'"'s sight; pidfd_getfd copies them"}]
     else [] end)
| .listenerPath = $listener
| .listenerMetadata = ($env + (if $carried then ";socket=" + ($carried | tojson) else "" end))
' "$base"
