#!/bin/sh
# Run every Criterion suite against build/snapbox, then the end-to-end
# suites again against an ASan/UBSan build of the host side.  Ends with one
# plain "N passed, N failed" line over everything.
#
# Suites that need KVM run natively where /dev/kvm is usable and inside the
# emulated KVM host (tests/kvmhost: QEMU TCG with AMD SVM) where it is not,
# two emulated machines at a time (one per core).  SNAPBOX_TEST_KVM picks:
#   auto (default)  native if /dev/kvm is usable, else emulated; on a KVM
#                   machine test_boot also runs once in the emulated host, so
#                   that the VMX/SVM syscall path and the harness stay tested
#   native          KVM suites natively only (fails without /dev/kvm)
#   emulated        every KVM suite in the emulated host, even where
#                   /dev/kvm exists (to check that path before submitting)
# Nothing that needs KVM is ever skipped.
#
# The boot, template, pool, serve, recycle, resize, python and migrate suites run once per backend: SNAPBOX_TEST_BACKEND=kvm
# (natively or emulated, as above) and SNAPBOX_TEST_BACKEND=proc, natively on
# every machine (the proc backend needs no KVM).
set -u
BUILD=${1:-build}
ASAN_BUILD=build-asan
KVM_SUITES="test_boot test_template test_pool test_serve test_recycle test_resize test_python test_migrate"
ASAN_SUITES="test_boot test_template"
ASAN_NATIVE_SUITES="test_proc test_jail"
BOTH_SUITES="test_boot test_template test_pool test_serve test_recycle test_resize test_python test_migrate" # once more with the proc backend
pass=0; fail=0; status=0
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

# Under emulation everything is ~20-100x slower: fewer soak runs, more
# patient waits (tests/run.h: test_count, test_time); the same assertions.
EMU_ENV="SNAPBOX_TIME_SCALE=20 SNAPBOX_SOAK_RUNS=500 SNAPBOX_POOL_RUNS=250 SNAPBOX_SEQ_CLONES=30 SNAPBOX_RECYCLE_RUNS=300 SNAPBOX_EXPECT_SYSCALL_PATH=ud-kernel"
ASAN_ENV="ASAN_OPTIONS=exitcode=99:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=98"

kvm_usable() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
mode=${SNAPBOX_TEST_KVM:-auto}
case $mode in
auto) if kvm_usable; then mode=native; smoke=1; else mode=emulated; smoke=0; fi ;;
native) smoke=0 ;;
emulated) smoke=0 ;;
*) echo "SNAPBOX_TEST_KVM must be auto, native or emulated, not '$mode'" >&2; exit 2 ;;
esac

# tally LABEL LOG RC: print a suite's log and count its Synthesis line
tally() {
	echo "== $1"
	cat "$2"
	line=$(grep -a 'Synthesis:' "$2" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')
	t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	[ -n "$t" ] || { t=1; p=0; }
	pass=$((pass + p)); fail=$((fail + t - p))
	[ "$3" -eq 0 ] || echo "($1: exit status $3)"
	[ "$3" -eq 0 ] && [ "$t" = "$p" ] || status=1
}

# run_native LABEL BIN ENV...: a suite on this machine
run_native() {
	label=$1; bin=$2; shift 2
	t0=$(date +%s)
	env $NATIVE_ENV "$@" "$bin" --jobs 2 --short-filename --color=never >"$LOGS/log" 2>&1
	rc=$?
	echo "(natively: $(($(date +%s) - t0)) s)" >> "$LOGS/log"
	tally "$label" "$LOGS/log" $rc
}

# Two lanes run the emulated suites, each suite in a fresh emulated
# machine; both take the next suite from one queue (longest first), so
# neither waits idle while the other has a long tail.  A lane claims job N
# by making the directory $LOGS/claim.N (atomic: one lane wins).  Queue
# lines: LABEL|BIN|ENV...
lane() {
	n=0
	while :; do
		n=$((n + 1))
		line=$(sed -n "${n}p" "$LOGS/queue")
		[ -n "$line" ] || break
		mkdir "$LOGS/claim.$n" 2>/dev/null || continue
		f=$LOGS/job.$(printf %02d $n)
		label=${line%%|*}; rest=${line#*|}; bin=${rest%%|*}; envs=${rest#*|}
		echo "$label" > "$f.label"
		t0=$(date +%s)
		KVMHOST_LABEL=$(basename "$bin")-$1 tests/kvmhost/run env $envs "$bin" \
			--jobs 2 --short-filename --color=never >"$f.log" 2>&1
		echo $? > "$f.rc"
		echo "(emulated KVM host: $(($(date +%s) - t0)) s)" >> "$f.log"
	done
}

asan_build() {
	make -s BUILD=$ASAN_BUILD \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		EXTRA_LDLIBS="-fsanitize=address,undefined" $ASAN_BUILD/snapbox >/dev/null &&
		mkdir -p $ASAN_BUILD && ln -sfn "$(cd "$BUILD" && pwd)/guest" $ASAN_BUILD/guest
}

echo "== building the ASan/UBSan host side in $ASAN_BUILD"
asan_ok=1
asan_build || { echo "ASan build failed"; fail=$((fail + 1)); status=1; asan_ok=0; }

# Where every KVM suite is emulated, two emulated machines keep both cores
# busy while the native suites run: those wait more patiently (test_time).
NATIVE_ENV=""
[ $mode = emulated ] && NATIVE_ENV="SNAPBOX_TIME_SCALE=3"

# Start the emulated lanes first: they take longest.
emu_suites=""
[ $mode = emulated ] && emu_suites=$KVM_SUITES
[ $smoke = 1 ] && emu_suites="test_boot"
if [ -n "$emu_suites" ]; then
	echo "== KVM suites in the emulated KVM host (QEMU TCG, AMD SVM): $emu_suites"
	tests/kvmhost/prepare || { echo "cannot prepare the emulated KVM host"; exit 1; }
	: > "$LOGS/queue"
	# longest first (measured without /dev/kvm: ASan test_template ~10 min,
	# test_template ~9, test_pool ~5, the rest 1-3 each)
	if [ $mode = emulated ] && [ $asan_ok = 1 ]; then
		for s in $ASAN_SUITES; do
			[ $s = test_template ] || continue
			echo "$s (ASan/UBSan snapbox, emulated KVM host)|$BUILD/tests/$s|SNAPBOX_BIN=$ASAN_BUILD/snapbox SNAPBOX_TEST_BACKEND=kvm $EMU_ENV $ASAN_ENV" >> "$LOGS/queue"
		done
	fi
	for s in test_template test_pool test_serve test_python test_migrate test_recycle test_resize test_boot; do
		case " $emu_suites " in *" $s "*) ;; *) continue ;; esac
		echo "$s (emulated KVM host)|$BUILD/tests/$s|SNAPBOX_BIN=$BUILD/snapbox SNAPBOX_TEST_BACKEND=kvm $EMU_ENV" >> "$LOGS/queue"
	done
	if [ $mode = emulated ] && [ $asan_ok = 1 ]; then
		for s in $ASAN_SUITES; do
			[ $s = test_template ] && continue
			echo "$s (ASan/UBSan snapbox, emulated KVM host)|$BUILD/tests/$s|SNAPBOX_BIN=$ASAN_BUILD/snapbox SNAPBOX_TEST_BACKEND=kvm $EMU_ENV $ASAN_ENV" >> "$LOGS/queue"
		done
	fi
	lane laneA & pidA=$!
	lane laneB & pidB=$!
fi

for t in "$BUILD"/tests/test_*; do
	s=$(basename "$t")
	case " $KVM_SUITES " in
	*" $s "*) [ $mode = native ] || continue ;;
	esac
	run_native "$s" "$t" SNAPBOX_BIN="$BUILD/snapbox" SNAPBOX_TEST_BACKEND=kvm
done
for s in $BOTH_SUITES; do
	run_native "$s (proc backend)" "$BUILD/tests/$s" SNAPBOX_BIN="$BUILD/snapbox" SNAPBOX_TEST_BACKEND=proc
done
if [ $mode = native ] && [ $asan_ok = 1 ]; then
	for s in $ASAN_SUITES; do
		run_native "$s (ASan/UBSan snapbox)" "$BUILD/tests/$s" SNAPBOX_BIN="$ASAN_BUILD/snapbox" SNAPBOX_TEST_BACKEND=kvm $ASAN_ENV
	done
fi
# suites that need no KVM: against the ASan/UBSan build everywhere
if [ $asan_ok = 1 ]; then
	for s in $ASAN_NATIVE_SUITES; do
		run_native "$s (ASan/UBSan snapbox)" "$BUILD/tests/$s" SNAPBOX_BIN="$ASAN_BUILD/snapbox" $ASAN_ENV
	done
	for s in $ASAN_SUITES; do # the suites the ASan kvm pass runs
		run_native "$s (ASan/UBSan snapbox, proc backend)" "$BUILD/tests/$s" SNAPBOX_BIN="$ASAN_BUILD/snapbox" SNAPBOX_TEST_BACKEND=proc $ASAN_ENV
	done
fi

echo "== fuzz-regress: the state.bin reader, the sbfs image check/reader and the migration stream reader over tests/fuzz/corpus, sbfs-corpus and migrate-corpus (libFuzzer, ASan, UBSan)"
ncorp=$(($(ls tests/fuzz/corpus | wc -l) + $(ls tests/fuzz/sbfs-corpus | wc -l) + $(ls tests/fuzz/migrate-corpus | wc -l)))
if make -s BUILD="$BUILD" fuzz-regress >"$BUILD/fuzz-regress.log" 2>&1; then
	echo "$ncorp corpus inputs parsed without a crash or a broken invariant"
	pass=$((pass + ncorp))
else
	tail -n 30 "$BUILD/fuzz-regress.log"
	echo "fuzz-regress FAILED (log: $BUILD/fuzz-regress.log)"
	fail=$((fail + 1)); status=1
fi

if [ -n "$emu_suites" ]; then
	wait $pidA $pidB
	for f in $(ls "$LOGS" | sed -n 's/^\(job\.[0-9]*\)\.label$/\1/p' | sort); do
		rc=$(cat "$LOGS/$f.rc" 2>/dev/null || echo 1)
		case $rc in
		252) echo "(the emulated KVM host crashed: see build/kvmhost/console-*.log)" >> "$LOGS/$f.log" ;;
		253) echo "(the emulated KVM host hung: see build/kvmhost/console-*.log)" >> "$LOGS/$f.log" ;;
		esac
		tally "$(cat "$LOGS/$f.label")" "$LOGS/$f.log" "$rc"
	done
fi
echo "$pass passed, $fail failed"
exit $status
