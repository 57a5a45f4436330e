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
# The base profile is kept: only the rules that allow execve, execveat and socket change.
#   - every unconditional ALLOW/LOG rule naming them loses those names, and they get a
#     NOTIFY rule with the same `includes`/`excludes` (capability and arch gates);
#   - NOTIFY rules for capture sockets are added: AF_PACKET of any type, SOCK_RAW on
#     AF_INET/AF_INET6, the obsolete (AF_INET, SOCK_PACKET);
#   - execve/execveat left unmentioned under a permissive default get a NOTIFY rule;
#   - io_uring_setup/enter/register are refused (EPERM) unless the base already refuses
#     them unconditionally: io_uring can open sockets without socket(2), out of the
#     filter's sight (the runtime shim does the same for enforce environments).
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
def watched: ["execve", "execveat", "socket"];
def unconditional: ((.args // []) | length) == 0;
def permissive: .action == "SCMP_ACT_ALLOW" or .action == "SCMP_ACT_LOG";
def names_of: (.names // []) + (if .name then [.name] else [] end);
# AF_PACKET=17, AF_INET=2, AF_INET6=10; SOCK_RAW=3, SOCK_PACKET=10. int arguments are
# compared on their low 32 bits, the socket type without SOCK_NONBLOCK/SOCK_CLOEXEC.
def family(f): {"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295, "valueTwo": f};
def kind(t): {"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 15, "valueTwo": t};
def notify(names): {"names": names, "action": "SCMP_ACT_NOTIFY"};
def uring: ["io_uring_setup", "io_uring_enter", "io_uring_register"];

if (.listenerPath // "") != "" then fail("the base profile already has listenerPath \(.listenerPath)") else . end
| if any(.syscalls[]?; .action == "SCMP_ACT_NOTIFY") then fail("the base profile already has SCMP_ACT_NOTIFY rules") else . end
| if any(.syscalls[]?; (unconditional | not) and (names_of | any(. == "execve" or . == "execveat")))
  then fail("the base profile has argument conditions on execve/execveat; sniffguard must see every exec") else . end
| (.defaultAction == "SCMP_ACT_ALLOW" or .defaultAction == "SCMP_ACT_LOG") as $default_permissive
| ([.syscalls[]? | names_of[]] | unique) as $mentioned
# io_uring calls some unconditional, non-permissive rule already refuses.
| ([.syscalls[]? | select((permissive | not) and unconditional and ((.includes // {}) == {}) and ((.excludes // {}) == {})) | names_of[]]
   | unique) as $refused
| (uring - $refused | map(select(. as $n | $mentioned | index($n) or $default_permissive))) as $uring
| .syscalls = [.syscalls[]? | if (names_of | any(. as $n | $uring | index($n)))
    then (del(.name) | .names = (names_of - $uring) | select(.names | length > 0)) else . end]
| .syscalls = [
    (.syscalls // [])[]
    | if permissive and unconditional and (names_of | any(. as $n | watched | index($n)))
      then
        (del(.name) | .names = (names_of - watched) | select(.names | length > 0)),
        (del(.name) | .names = (names_of - (names_of - watched)) | .action = "SCMP_ACT_NOTIFY"
          | del(.errnoRet) | .comment = "sniffguard: decided by the supervisor")
      else . end
  ]
  + (["execve", "execveat"] - $mentioned | if $default_permissive and length > 0 then [notify(.)] else [] end)
  + [
      [family(17)],
      [family(2), kind(3)],
      [family(2), kind(10)],
      [family(10), kind(3)]
    | notify(["socket"]) + {"args": ., "comment": "sniffguard: capture sockets"}
  ]
  + (if ($uring | length) > 0
     then [{"names": $uring, "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "comment": "sniffguard: io_uring opens sockets out of the filter'"'"'s sight"}]
     else [] end)
| .listenerPath = $listener
| .listenerMetadata = $env
' "$base"
