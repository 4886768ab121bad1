#!/bin/sh
# `make demo-python`: the Python handler (guest/rootfs/app/handler.py, run by
# Debian's python3 from the Python layer) as a template, then a clone that
# answers a request, and two more that show per-clone randomness.
set -e
BUILD=${1:-build}
BACKEND=${2:-auto}
STORE=$BUILD/store
echo "\$ snapbox template create py --backend $BACKEND --mem 512M --force -- /usr/bin/python3 /app/handler.py"
"$BUILD/snapbox" template create py --backend "$BACKEND" --mem 512M --store "$STORE" --force -- \
	/usr/bin/python3 /app/handler.py
echo '$ echo '"'"'{"n": 30, "text": "Hello from Python"}'"'"' | snapbox run py'
echo '{"n": 30, "text": "Hello from Python"}' | "$BUILD/snapbox" run --store "$STORE" py
echo '$ echo '"'"'{"raise": "boom"}'"'"' | snapbox run py    # a handler that raises: traceback, exit 1'
rc=0
echo '{"raise": "boom"}' | "$BUILD/snapbox" run --store "$STORE" py || rc=$?
echo "(exit status $rc)"
echo '$ snapbox template ls'
"$BUILD/snapbox" template ls --store "$STORE"
