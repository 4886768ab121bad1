/* SPDX-License-Identifier: MIT */
/* Run the snapbox binary as a user would and capture what it does. */
#ifndef TESTS_RUN_H
#define TESTS_RUN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

struct run_result {
	int status;      /* exit status, or 128 + signal if snapbox itself died */
	int signaled;    /* snapbox (the host process) was killed by a signal */
	int timed_out;   /* the test harness had to kill it */
	char *out;       /* NUL-terminated stdout */
	size_t out_len;
	char *err;       /* NUL-terminated stderr */
	size_t err_len;
	double secs;     /* wall time */
};

/* Path of the snapbox binary under test: $SNAPBOX_BIN or build/snapbox. */
const char *snapbox_bin(void);

/*
 * Run snapbox with argv (NULL-terminated, argv[0] ignored and replaced by
 * the binary), feeding `in` (may be NULL: empty stdin) and waiting at most
 * `limit_s` seconds.  Returns 0, or -errno if it could not be started.
 */
int run_snapbox(const char *const *argv, const char *in, size_t in_len, double limit_s,
		struct run_result *r);
void run_result_free(struct run_result *r);

/* `snapbox template create NAME --store STORE -- PROG...` (with the backend
 * under test), asserting that it worked. */
void template_create(const char *store, const char *name, const char *const *prog,
		     double limit_s);

/* run_snapbox() into *r (freed first), asserting that snapbox started, did
 * not hang past limit_s and did not itself die of a signal. */
void run_checked(const char *const *argv, const char *in, double limit_s, struct run_result *r);
/* The same with stdin a memfd holding in_len bytes of in (a regular file,
 * as the service hands a request: the guest gets the EOF hint), not a pipe. */
void run_checked_file(const char *const *argv, const void *in, size_t in_len, double limit_s,
		      struct run_result *r);

/* From `--stats` output (stderr): how many hypercalls NAME ("STDIN") the
 * run made (0 if none, -1 without a hypercalls line), and how many of all
 * the guest waited on (-1 if not there). */
long stats_calls(const char *err, const char *name);
long stats_waited(const char *err);

/* A guest kernel of ABI 3, built from git by tests/tests.mk (the suite's
 * build/fixtures/abi3-kernel.elf, or $SNAPBOX_ABI3_KERNEL): what older
 * templates hold, to check that they still run. */
const char *abi3_kernel(void);
/* A snapbox from before the root file system became layers (built from git
 * by tests/tests.mk: build/fixtures/old-host/build/snapbox, or
 * $SNAPBOX_OLD_BIN): the only one that boots an ABI 3 kernel, so the one
 * that makes templates of it (format 1.2, the rootfs a cpio in RAM). */
const char *old_snapbox(void);
/* A file of the build the running suite belongs to (BUILD/rel, found from
 * the suite's own path: BUILD/tests/test_x), in a static buffer (4 kept). */
const char *build_file(const char *rel);

/* Can /dev/kvm be opened and does it answer KVM_GET_API_VERSION (what
 * snapbox's --backend auto asks)? */
bool kvm_usable(void);
/* Fail the whole test run (not skip) when /dev/kvm is missing under CI. */
void require_kvm(void);

/* $SNAPBOX_TEST_BACKEND (NULL if unset): the backend the boot and template
 * suites pass to `boot` and `template create` (run_snapbox inserts it).  A
 * proc run needs no KVM: the suites then skip require_kvm() and the checks
 * only KVM has (CPUID refusal, the VMX/SVM syscall path). */
const char *test_backend(void);
bool test_on_proc(void);

/*
 * Inside the emulated KVM host (tests/kvmhost) everything runs ~20-100x
 * slower, so soak and load tests take their counts, and waits their time
 * limits, from the environment (tests/run_all.sh sets them there):
 * test_count("SNAPBOX_SOAK_RUNS", 10000) is $SNAPBOX_SOAK_RUNS if set (> 0),
 * else 10000; test_time(s) is s * $SNAPBOX_TIME_SCALE (default 1).  What a
 * test asserts stays the same; only how often and how patiently.
 */
long test_count(const char *env, long native);
double test_time(double secs);
/* CLOCK_MONOTONIC in seconds. */
double test_now(void);

/* Make a fresh temporary directory; returns a malloc'd path. */
char *make_tempdir(void);
int write_file(const char *dir, const char *name, const void *data, size_t len, int mode);
/* What guest/rootfs/app/handler.lua answers to {"n": n}, computed here:
 * {"n": N, "fib": F, "prime": P}\n (null where out of range). */
void lua_answer(int n, char *out, size_t len);

/* A whole file, malloc'd (asserting it can be read). */
uint8_t *slurp(const char *path, size_t *len);

/* rm -rf *dir, free it, NULL it (test clean-up; tolerates NULL). */
void remove_tempdir(char **dir);

/*
 * The system-call path the guest must report on this host, as snapbox
 * names it ("user", "ud-kernel", "ud-user"): $SNAPBOX_EXPECT_SYSCALL_PATH
 * if set (so that a harness can insist, e.g. that an emulated VMX/SVM host
 * takes "ud-kernel"), else "user" where the kvm_pvm module is loaded and
 * "ud-kernel" elsewhere (kvm_intel, kvm_amd).  An unknown value in the
 * variable fails the test.  *why says where the expectation comes from.
 */
const char *expected_syscall_path(const char **why);

/* The path token ([a-z-]+) right after the first `key` in s, in a static
 * buffer; NULL if key is absent. */
const char *syscall_path_after(const char *s, const char *key);
/* ---- a snapbox service under test (snapbox serve) ---- */
struct http_response;

/* One request to the service on sock (answers up to 64 MiB, timeout_s):
 * the answer's status, or -errno if there was none (then r is not set). */
int serve_req(const char *sock, unsigned timeout_s, const char *method, const char *target,
	      const char *body, struct http_response *r);
/* The same asserting status want and a JSON answer: that JSON (json_decref it). */
json_t *serve_req_json(const char *sock, unsigned timeout_s, const char *method,
		       const char *target, const char *body, int want);
/* posix_spawnp argv (stdin /dev/null, stderr appended to log) into *pid
 * (set at once, so a failed start is still stopped by serve_stop) and wait
 * until sock answers GET /v1/health, asserting it does within
 * test_time(15) s and that the process does not exit first. */
void serve_start(const char *const *argv, const char *sock, const char *log, pid_t *pid);
/* SIGTERM *pid (if > 0) and reap it, SIGKILL after test_time(20) s; *pid = -1.
 * 0 and its wait status in *status (0 if there was none), or -1 if it had
 * to be killed. */
int serve_stop(pid_t *pid, int *status);
#endif
