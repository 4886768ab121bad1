#!/bin/sh
# Install the Debian packages snapbox builds with, when any is missing.
# Idempotent and quiet when everything is there.
set -e
PKGS="gcc make musl-tools liburing-dev libxxhash-dev liblz4-dev libcriterion-dev
      pkg-config cpio dpkg-dev qemu-system-x86 lua5.4 clang libclang-rt-dev file
      libmicrohttpd-dev libjansson-dev curl busybox-static xz-utils binutils"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
# Lua is built from Debian's source package: needs a deb-src entry.
SRC_LIST=/etc/apt/sources.list.d/snapbox-src.sources
need_src=0
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	need_src=1
fi
[ -z "$missing" ] && [ $need_src = 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "snapbox: missing packages:$missing (run make as root, or install them)" >&2
	exit 1
fi
if [ $need_src = 1 ]; then
	. /etc/os-release
	cat > "$SRC_LIST" <<EOT
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME} ${VERSION_CODENAME}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
fi
echo "snapbox: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ -z "$missing" ] || apt-get install -y -qq --no-install-recommends $missing >/dev/null
