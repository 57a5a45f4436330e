#!/bin/bash
# Build the minimal container root filesystem used by sniffguard's integration tests.
#
#   scripts/build-rootfs.sh OUT_DIR
#
# Contents (no network needed, only the host's Debian packages busybox-static and tcpdump):
#   - the static busybox at OUT_DIR/bin/busybox plus one symlink per applet (`busybox --list`)
#     in OUT_DIR/bin;
#   - the host's real, dynamically linked tcpdump at the same path inside (/usr/bin/tcpdump on
#     Debian 12) plus every library `ldd` lists, at the paths ldd prints, dynamic loader included
#     (a renamed copy of it must still be recognised as a sniffer because it links libpcap);
#   - /etc/passwd and /etc/group with root and a `tcpdump` user: Debian's tcpdump is built
#     `--with-user=tcpdump` and refuses to capture when it cannot drop privileges to that user;
#   - the empty mount points /tmp /proc /dev /sys /etc /root.
#
# Idempotent: running it again over an existing OUT_DIR converges to the same tree. Files are
# replaced through a rename, so a binary that a running container executes is never rewritten
# in place (that would fail with ETXTBSY).
set -euo pipefail

die() {
	echo "build-rootfs.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
out=$1
mkdir -p -- "$out"
out=$(cd -- "$out" && pwd -P)

busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
tcpdump=$(command -v tcpdump || true)
[ -n "$tcpdump" ] || [ ! -x /usr/bin/tcpdump ] || tcpdump=/usr/bin/tcpdump
[ -n "$tcpdump" ] || [ ! -x /usr/sbin/tcpdump ] || tcpdump=/usr/sbin/tcpdump
[ -n "$tcpdump" ] || die "tcpdump not found (apt-get install tcpdump)"
# The path inside the container is the host's canonical path (Debian 12: /usr/bin/tcpdump).
tcpdump=$(readlink -f -- "$tcpdump")
command -v ldd >/dev/null || die "ldd not found"

# A static busybox is required: a dynamically linked one would need its own libraries.
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; install busybox-static"
fi

# install_file SRC DEST_INSIDE MODE: copy SRC (following symlinks) to OUT_DIR/DEST_INSIDE
# through a temporary name and an atomic rename.
install_file() {
	local src=$1 dest=$out$2 mode=$3 tmp
	mkdir -p -- "$(dirname -- "$dest")"
	if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s -- "$src" "$dest"; then
		chmod "$mode" -- "$dest"
		return
	fi
	tmp=$(mktemp -- "$dest.tmp.XXXXXX")
	cp -L -- "$src" "$tmp"
	chmod "$mode" -- "$tmp"
	mv -f -- "$tmp" "$dest"
}

# write_file DEST_INSIDE MODE: write stdin to OUT_DIR/DEST_INSIDE atomically.
write_file() {
	local dest=$out$1 mode=$2 tmp
	mkdir -p -- "$(dirname -- "$dest")"
	tmp=$(mktemp -- "$dest.tmp.XXXXXX")
	cat >"$tmp"
	chmod "$mode" -- "$tmp"
	mv -f -- "$tmp" "$dest"
}

for d in bin tmp proc dev sys etc root usr/bin; do
	mkdir -p -- "$out/$d"
done
chmod 1777 "$out/tmp"
chmod 0700 "$out/root"

# busybox and its applets. A name already present as a regular file (none today) is kept.
install_file "$busybox" /bin/busybox 0755
applets=$("$busybox" --list) || die "busybox --list failed"
[ -n "$applets" ] || die "busybox --list printed nothing"
while IFS= read -r applet; do
	case $applet in
	'' | busybox | */*) continue ;;
	esac
	link=$out/bin/$applet
	if [ -L "$link" ] || [ ! -e "$link" ]; then
		ln -sfn busybox "$link"
	fi
done <<<"$applets"

# tcpdump and every library ldd lists. ldd lines look like
#   libpcap.so.0.8 => /lib/x86_64-linux-gnu/libpcap.so.0.8 (0x...)
#   /lib64/ld-linux-x86-64.so.2 (0x...)
#   linux-vdso.so.1 (0x...)            <- virtual, no file
install_file "$tcpdump" "$tcpdump" 0755
ldd_out=$(ldd "$tcpdump") || die "ldd $tcpdump failed"
if grep -q 'not found' <<<"$ldd_out"; then
	die "ldd $tcpdump: missing libraries:"$'\n'"$ldd_out"
fi
libs=$(awk '
	$2 == "=>" && $3 ~ /^\// { print $3; next }
	$1 ~ /^\// { print $1 }
' <<<"$ldd_out")
[ -n "$libs" ] || die "ldd $tcpdump listed no libraries"
grep -q 'ld-linux' <<<"$libs" || die "ldd $tcpdump listed no dynamic loader"
while IFS= read -r lib; do
	install_file "$lib" "$lib" 0755
done <<<"$libs"

# Users and groups. Debian's tcpdump drops privileges to user tcpdump after opening the device;
# glibc >= 2.34 has the `files` NSS module built in, so passwd/group lookups need no libnss_*.
write_file /etc/passwd 0644 <<'EOF'
root:x:0:0:root:/root:/bin/sh
tcpdump:x:102:105::/nonexistent:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
write_file /etc/group 0644 <<'EOF'
root:x:0:
tcpdump:x:105:
nogroup:x:65534:
EOF
write_file /etc/nsswitch.conf 0644 <<'EOF'
passwd: files
group: files
hosts: files
EOF
write_file /etc/hosts 0644 <<'EOF'
127.0.0.1 localhost
::1 localhost
EOF

echo "build-rootfs.sh: rootfs ready in $out (tcpdump: $tcpdump)" >&2
