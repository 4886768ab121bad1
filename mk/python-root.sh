#!/bin/sh
# mk/python-root.sh PACKAGES.TXT DEBDIR ROOT [MTIME]
# Unpack the .debs fetched by mk/python-fetch.sh into the tree ROOT that
# becomes the Python layer (build/guest/python3.11.sbfs):
#   - `dpkg-deb -x` of each package (no maintainer scripts: none is needed);
#   - prune what a sandbox never uses: usr/share (docs, man, lintian, bug),
#     binfmt.d, glibc's gconv modules (iconv; CPython's codecs do not use
#     them: 8 MB), the `nis` module (needs libnsl/libtirpc, not in the layer),
#     CPython's own test modules (test/, _test*, _ctypes_test, xxlimited*,
#     _xxtestfuzz), and Debian's sitecustomize (a symlink to an apport hook
#     in /etc: ~20 failing stats and a .pyc write attempt at every start);
#   - usr/bin/python3 -> python3.11 (Debian's python3 package, which has it,
#     drags in python3-minimal's maintainer scripts; the link is all we need);
#   - etc/ld.so.conf + `ldconfig -r ROOT` -> etc/ld.so.cache: without a cache
#     ld.so probes ~18 hwcaps subdirectories per search directory;
#   - byte-compile the standard library with the unpacked interpreter, run
#     through the tree's own ld.so (so neither the host's python nor its libc
#     is involved): compileall --invalidation-mode unchecked-hash (a .pyc
#     records its source's hash, never checked: the layer is read-only; no
#     mtimes; -B -f: no timestamp .pyc of the modules compileall itself
#     imports), PYTHONHASHSEED=0 and -j 1 for a deterministic output;
#   - every mtime MTIME (default 0), so the same packages give the same image.
# Built in ROOT.tmp, renamed to ROOT when complete.
set -e
pkgs=$1 debs=$2 root=$3 mtime=${4:-0}
[ -f "$pkgs" ] && [ -d "$debs" ] && [ -n "$root" ] ||
	{ echo "usage: $0 PACKAGES.TXT DEBDIR ROOT [MTIME]" >&2; exit 2; }
tmp=$root.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
chmod 0755 "$tmp"

grep -v '^[[:space:]]*\(#\|$\)' "$pkgs" | while read -r name ver _; do
	deb="$debs/${name}_$(echo "$ver" | sed 's/:/%3a/g').deb"
	[ -f "$deb" ] || { echo "python-root: $deb missing (run mk/python-fetch.sh)" >&2; exit 1; }
	dpkg-deb -x "$deb" "$tmp"
done

py=usr/lib/python3.11
dyn=$py/lib-dynload
[ -x "$tmp/usr/bin/python3.11" ] && [ -f "$tmp/$py/os.py" ] && [ -d "$tmp/$dyn" ] ||
	{ echo "python-root: the packages gave no usr/bin/python3.11 + $py" >&2; exit 1; }

rm -rf "$tmp/usr/share" "$tmp/usr/lib/binfmt.d" "$tmp/usr/lib/x86_64-linux-gnu/gconv" \
	"$tmp/$py/test" "$tmp/$py/sitecustomize.py" "$tmp/etc/python3.11/sitecustomize.py"
rm -f "$tmp/$dyn"/nis.* "$tmp/$dyn"/_test*.so "$tmp/$dyn"/_ctypes_test.*.so \
	"$tmp/$dyn"/xxlimited*.so "$tmp/$dyn"/_xxtestfuzz.*.so

ln -s python3.11 "$tmp/usr/bin/python3"

# ld.so.cache.  libc6 ships etc/ld.so.conf.d/x86_64-linux-gnu.conf.
printf 'include /etc/ld.so.conf.d/*.conf\n' > "$tmp/etc/ld.so.conf"
chmod 0644 "$tmp/etc/ld.so.conf"
# ldconfig -r chroots: not root, it gets the right in a user namespace.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
if [ "$(id -u)" = 0 ]; then
	"$ldconfig" -X -r "$tmp"
else
	unshare -r "$ldconfig" -X -r "$tmp"
fi
[ -s "$tmp/etc/ld.so.cache" ] || { echo "python-root: ldconfig -r wrote no ld.so.cache" >&2; exit 1; }

# The unpacked interpreter through its own ld.so (not lib64/'s link: it is
# absolute and would name the host's ld.so).
tmpabs=$(cd "$tmp" && pwd)
ldso=$tmpabs/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
libpath=$tmpabs/lib/x86_64-linux-gnu:$tmpabs/usr/lib/x86_64-linux-gnu
env -i PYTHONHASHSEED=0 LC_ALL=C.UTF-8 "$ldso" --library-path "$libpath" \
	"$tmpabs/usr/bin/python3.11" -I -B -m compileall -f -q -j 1 \
	--invalidation-mode unchecked-hash -s "$tmpabs" -p / \
	-x '/(test|tests|idle_test)/' "$tmpabs/$py" >/dev/null ||
	{ echo "python-root: byte-compiling the standard library failed" >&2; exit 1; }

find "$tmp" -exec touch -h -d "@$mtime" {} +
rm -rf "$root"
mv "$tmp" "$root"
