#!/bin/sh
# mk/python-fetch.sh PACKAGES.TXT DEBDIR
# Download the pinned .debs of PACKAGES.TXT (lines NAME VERSION SHA256) into
# DEBDIR as NAME_VERSION.deb (':' of an epoch as '%3a', as apt does), once:
# a .deb already there with the right SHA256 is kept.  Each download is
# checked against the pinned SHA256 and against the one `apt-cache show`
# gives for NAME=VERSION; `apt-get update` runs only when apt does not know
# a pinned version.  A download goes to a temporary directory first, so DEBDIR
# never holds a partial or unchecked file.
set -e
pkgs=$1 dir=$2
[ -f "$pkgs" ] && [ -n "$dir" ] || { echo "usage: $0 PACKAGES.TXT DEBDIR" >&2; exit 2; }
mkdir -p "$dir"
updated=0

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

apt_sha() { # NAME VERSION -> the SHA256 apt-cache knows, or nothing
	apt-cache show "$1=$2" 2>/dev/null | awk '/^SHA256:/ { print $2; exit }'
}

grep -v '^[[:space:]]*\(#\|$\)' "$pkgs" | while read -r name ver sha extra; do
	if [ -z "$sha" ] || [ -n "$extra" ] || [ ${#sha} != 64 ]; then
		echo "python-fetch: $pkgs: bad line '$name $ver $sha $extra' (want NAME VERSION SHA256)" >&2
		exit 1
	fi
	deb="$dir/${name}_$(echo "$ver" | sed 's/:/%3a/g').deb"
	if [ -f "$deb" ] && [ "$(sha_of "$deb")" = "$sha" ]; then
		continue
	fi
	asha=$(apt_sha "$name" "$ver")
	if [ -z "$asha" ] && [ $updated = 0 ]; then
		echo "python-fetch: apt does not know $name=$ver; apt-get update" >&2
		apt-get update -qq || true
		updated=1
		asha=$(apt_sha "$name" "$ver")
	fi
	if [ -z "$asha" ]; then
		echo "python-fetch: $name=$ver is not in apt's lists (Debian replaced it?); update $pkgs with mk/python-pins.sh" >&2
		exit 1
	fi
	if [ "$asha" != "$sha" ]; then
		echo "python-fetch: $name=$ver: apt-cache show says SHA256 $asha, $pkgs pins $sha" >&2
		exit 1
	fi
	tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
	echo "  FETCH   apt-get download $name=$ver" >&2
	if ! (cd "$tmp" && apt-get -qq -o APT::Sandbox::User=root download "$name=$ver" >/dev/null); then
		rm -rf "$tmp"
		echo "python-fetch: apt-get download $name=$ver failed" >&2
		exit 1
	fi
	set -- "$tmp"/*.deb
	if [ $# != 1 ] || [ ! -f "$1" ]; then
		rm -rf "$tmp"
		echo "python-fetch: apt-get download $name=$ver left no single .deb" >&2
		exit 1
	fi
	got=$(sha_of "$1")
	if [ "$got" != "$sha" ]; then
		rm -rf "$tmp"
		echo "python-fetch: $name=$ver: downloaded SHA256 $got, pinned $sha" >&2
		exit 1
	fi
	mv -f "$1" "$deb"
	rm -rf "$tmp"
done
