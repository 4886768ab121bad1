#!/bin/sh
# Run every Criterion suite against build/snapbox, then the end-to-end
# suites again against an ASan/UBSan build of the host side.  Ends with one
# plain "N passed, N failed" line over everything.
set -u
BUILD=${1:-build}
ASAN_BUILD=build-asan
pass=0; fail=0; status=0

run_suite() { # label, binary, env...
	label=$1; bin=$2; shift 2
	log=$(mktemp)
	echo "== $label"
	env "$@" "$bin" --jobs 2 --short-filename >"$log" 2>&1
	rc=$?
	cat "$log"
	line=$(grep -a 'Synthesis:' "$log" | tail -n 1)
	t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	[ -n "$t" ] || { t=1; p=0; }
	pass=$((pass + p)); fail=$((fail + t - p))
	[ $rc -eq 0 ] && [ "$t" = "$p" ] || status=1
	rm -f "$log"
}

for t in "$BUILD"/tests/test_*; do
	run_suite "$(basename "$t")" "$t" SNAPBOX_BIN="$BUILD/snapbox"
done

echo "== fuzz-regress: the state.bin reader over tests/fuzz/corpus (libFuzzer, ASan, UBSan)"
ncorp=$(ls tests/fuzz/corpus | wc -l)
if make -s BUILD="$BUILD" fuzz-regress >"$BUILD/fuzz-regress.log" 2>&1; then
	echo "$ncorp corpus inputs parsed without a crash or a broken invariant"
	pass=$((pass + ncorp))
else
	tail -n 30 "$BUILD/fuzz-regress.log"
	echo "fuzz-regress FAILED (log: $BUILD/fuzz-regress.log)"
	fail=$((fail + 1)); status=1
fi

echo "== building the ASan/UBSan host side in $ASAN_BUILD"
if make -s BUILD=$ASAN_BUILD \
	EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	EXTRA_LDLIBS="-fsanitize=address,undefined" $ASAN_BUILD/snapbox >/dev/null; then
	mkdir -p $ASAN_BUILD
	ln -sfn "$(cd "$BUILD" && pwd)/guest" $ASAN_BUILD/guest
	for t in "$BUILD"/tests/test_boot "$BUILD"/tests/test_template "$BUILD"/tests/test_proc; do
		[ -x "$t" ] || continue
		run_suite "$(basename "$t") (ASan/UBSan snapbox)" "$t" SNAPBOX_BIN="$ASAN_BUILD/snapbox" \
			ASAN_OPTIONS=exitcode=99:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=98
	done
else
	echo "ASan build failed"; fail=$((fail + 1)); status=1
fi
echo "$pass passed, $fail failed"
exit $status
