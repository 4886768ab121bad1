#!/bin/sh
# Install what the libFuzzer harness builds with, when any is missing
# (mk/deps.sh's style): clang, its compiler-rt (libFuzzer, ASan and UBSan
# runtimes: libclang-rt-dev pulls the one for Debian's default clang) and
# libxxhash.  Quiet when everything is there; as non-root it only says what
# is missing and fails.
set -e
PKGS="clang libclang-rt-dev libxxhash-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "snapbox fuzz: missing packages:$missing (run make as root, or: apt-get install$missing)" >&2
		exit 1
	fi
	echo "snapbox fuzz: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The packages are there; check the compiler really links a fuzzer.
CC=${1:-clang}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
	> "$tmp/t.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" 2>"$tmp/log"; then
	echo "snapbox fuzz: $CC cannot build a libFuzzer binary (is the compiler-rt package for this clang version installed, e.g. libclang-rt-14-dev?):" >&2
	sed 's/^/  /' "$tmp/log" | head -5 >&2
	exit 1
fi
