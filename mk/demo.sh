#!/bin/sh
# The README's main command, after the build: create a template from the
# Lua handler, clone a sandbox from it and print its answer.
set -e
BUILD=${1:-build}
BACKEND=${2:-auto}
STORE=$BUILD/store
echo '$ snapbox info'
"$BUILD/snapbox" info
echo "\$ snapbox template create lua-fn --backend $BACKEND --force -- /bin/lua /app/handler.lua"
"$BUILD/snapbox" template create lua-fn --backend "$BACKEND" --store "$STORE" --force -- /bin/lua /app/handler.lua
echo '$ echo '"'"'{"n": 30}'"'"' | snapbox run lua-fn'
echo '{"n": 30}' | "$BUILD/snapbox" run --store "$STORE" lua-fn
