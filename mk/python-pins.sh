#!/bin/sh
# Print guest/python/packages.txt's package lines for the versions apt would
# install now (its Candidate), with their SHA256 from `apt-cache show`: paste
# them over the old lines when Debian has replaced a pinned version.
# Run `apt-get update` first for the newest.
set -e
pkgs=${1:-guest/python/packages.txt}
grep -v '^[[:space:]]*\(#\|$\)' "$pkgs" | while read -r name _ _; do
	v=$(apt-cache policy "$name" | awk '/Candidate:/ { print $2 }')
	[ -n "$v" ] && [ "$v" != "(none)" ] ||
		{ echo "python-pins: apt knows no version of $name" >&2; exit 1; }
	sha=$(apt-cache show "$name=$v" | awk '/^SHA256:/ { print $2; exit }')
	echo "$name $v $sha"
done
