#!/bin/bash
# sniffguard demo: one supervisor on the built-in policy, three containers started
# through the runtime shim with runc — ci (audit), staging (enforce), production
# (enforce, fails closed) — and `tcpdump -D` tried in each. Prints the outcomes as
# a table, then the alerts. Finally stops the supervisor and shows what the
# fail policy does to a new production and ci container.
#
# Everything lives under a temporary directory (never /run/sniffguard, which
# belongs to a real installation) and is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

bin=$PWD/target/debug
work=$(mktemp -d /tmp/sniffguard-demo.XXXXXX)
run_dir=$work/run
state=$work/runc-state
sup_pid=
containers=()

cleanup() {
	for id in "${containers[@]}"; do
		runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
	done
	if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
		kill "$sup_pid" && wait "$sup_pid" 2>/dev/null || true
	fi
	[ -n "${SNIFFGUARD_DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

echo "== building a busybox root filesystem with Debian's tcpdump"
scripts/build-rootfs.sh "$work/rootfs" >"$work/rootfs.log" 2>&1 || { cat "$work/rootfs.log" >&2; exit 1; }

start_supervisor() {
	"$bin/sniffguard" run --runtime-dir "$run_dir" --forensics-dir "$work/forensics" \
		>>"$work/alerts.jsonl" 2>>"$work/supervisor.log" &
	sup_pid=$!
	for _ in $(seq 1 500); do
		[ -S "$run_dir/api.sock" ] && [ -S "$run_dir/seccomp.sock" ] && return 0
		kill -0 "$sup_pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "supervisor did not start:" >&2
	cat "$work/supervisor.log" >&2
	exit 1
}

# make_bundle ENV ARGS_JSON: a bundle whose only process runs ARGS.
make_bundle() {
	local env=$1 args=$2 dir=$work/bundle-$1-$RANDOM
	mkdir -p "$dir"
	(cd "$dir" && runc spec)
	jq --arg root "$work/rootfs" --arg env "$env" --argjson args "$args" '
		.process.terminal = false
		| .process.args = $args
		| .root = {path: $root, readonly: true}
		| .mounts += [{destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"]}]
		| .annotations = {"sniffguard.io/environment": $env}
		| .process.env += ["DEMO_API_TOKEN=not-a-real-secret"]
		| .process.capabilities |= with_entries(.value += ["CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"])
	' "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
	echo "$dir"
}

# run_container ENV ARGS_JSON: starts the container through the shim and waits
# for it; prints "exit-code<TAB>first line of stderr<TAB>id<TAB>frozen?". A
# production container is frozen by the supervisor after a sniffing attempt:
# the demo shows the freezer state, then thaws it so that it can finish.
run_container() {
	local env=$1 id=demo-$1-$$-$RANDOM bundle rc=0 pid frozen=no
	bundle=$(make_bundle "$env" "$2")
	containers+=("$id")
	SNIFFGUARD_REAL_RUNTIME=runc SNIFFGUARD_RUNTIME_DIR=$run_dir \
		timeout 60 "$bin/sniffguard-runtime" --root "$state" run --bundle "$bundle" "$id" \
		>"$work/$id.out" 2>"$work/$id.err" </dev/null &
	pid=$!
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		if [ "$(cat "/sys/fs/cgroup/freezer/$id/freezer.state" 2>/dev/null)" = FROZEN ]; then
			frozen=yes
			echo THAWED >"/sys/fs/cgroup/freezer/$id/freezer.state"
			break
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
	printf '%s\t%s\t%s\t%s\n' "$rc" "$(grep -m1 -v '^$' "$work/$id.err" | cut -c1-120)" "$id" "$frozen"
}

start_supervisor
echo "== supervisor running (pid $sup_pid), sockets in $run_dir"
echo

probe='["sh","-c","tcpdump -D >/dev/null 2>/tmp/err; rc=$?; echo tcpdump exit $rc: $(head -c 80 /tmp/err) >&2; exit $rc"]'
printf '%-11s %-8s %-5s %-56s %-7s %s\n' ENVIRONMENT MODE EXIT "WHAT THE CONTAINER SAW" FROZEN ALERT
for env in ci staging production; do
	IFS=$'\t' read -r rc msg id frozen < <(run_container "$env" "$probe")
	mode=$(case $env in ci) echo audit ;; *) echo enforce ;; esac)
	# Bounded wait for the alert line (written just after the decision; in
	# audit, after the exec probe's event).
	alert=-
	for _ in $(seq 1 200); do
		alert=$(jq -r --arg id "$id" 'select(.container.id == $id) | "\(.action) by \(.mechanism) [\([.evidence[].kind] | join(", "))]"' "$work/alerts.jsonl" 2>/dev/null | head -1)
		[ -n "$alert" ] && break
		sleep 0.05
	done
	printf '%-11s %-8s %-5s %-56s %-7s %s\n' "$env" "$mode" "$rc" "${msg:-<nothing on stderr>}" "$frozen" "${alert:--}"
done
echo
echo "== alerts (one JSON object per line on the supervisor's stdout)"
jq -c '{time, rule, environment, mode, action, mechanism, responses, evidence: [.evidence[].kind], container: .container.id, exe: .process.exe, argv: .process.argv, sha256: .process.sha256, forensics, next_step: .next_steps[0]}' "$work/alerts.jsonl"

echo
echo "== forensic records (production responds with freeze + forensics)"
for f in "$work"/forensics/*.json; do
	[ -e "$f" ] || continue
	jq -c '{container, environment, binary, argv: .process.argv, redacted: [.environment_variables | to_entries[] | select(.value == "[REDACTED]") | .key], sockets: (.sockets | keys), timeline: [.timeline[].what]}' "$f"
done

echo
echo "== stopping the supervisor: what the fail policy does to new containers"
kill "$sup_pid" && wait "$sup_pid" 2>/dev/null || true
sup_pid=
for env in production ci; do
	IFS=$'\t' read -r rc msg _ _ < <(run_container "$env" '["true"]')
	printf '%-11s exit %-3s %s\n' "$env" "$rc" "$msg"
done
