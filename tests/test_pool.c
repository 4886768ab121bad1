/* SPDX-License-Identifier: MIT */
/* The sandbox pool behind `snapbox serve`: worker processes, real guests. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <elf.h>
#include <signal.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "launcher/pool.h"
#include "run.h"

static char *STORE;
static struct pool *P;
static struct run_result R;

static void fini(void)
{
	if (P)
		pool__destroy(P);
	P = NULL;
	run_result_free(&R);
	remove_tempdir(&STORE);
}

TestSuite(pool, .fini = fini, .timeout = 120);

/*
 * template NAME from PROGRAM..., then a pool (started before any thread).
 * The templates are made with the backend under test (SNAPBOX_TEST_BACKEND:
 * run_snapbox passes --backend to template create), so the pool serves them
 * with workers of that backend.
 */
static void setup(const char *name, const char *const *prog)
{
	struct pool_opts o = { .ready_per_size = 2, .max_live = 64, .log_fd = 2 }; /* errors */
	struct sb_err err = { "" };

	if (!test_on_proc())
		require_kvm();
	if (!STORE)
		STORE = make_tempdir();
	template_create(STORE, name, prog, 60);
	if (!P)
		cr_assert_eq(pool__create(&P, &o, &err), 0, "pool__create: %s", err.msg);
}

static char *tdir(const char *name)
{
	static char d[4096];
	snprintf(d, sizeof(d), "%s/templates/%s", STORE, name);
	return d;
}


static const char *const LUA[] = { "/bin/lua", "/app/handler.lua", NULL };
static const char *const PROG_CAT[] = { "/bin/cat", NULL };

static void run_lua(int n, struct sandbox_result *res)
{
	char req[64];
	struct sandbox_limits lim = { .timeout_ns = 30000000000ULL };
	struct sb_err err = { "" };
	snprintf(req, sizeof(req), "{\"n\": %d}", n);
	cr_assert_eq(pool__run(P, "lua", tdir("lua"), req, strlen(req), &lim, res, &err), 0,
		     "pool__run: %s", err.msg);
}

Test(pool, answers_requests_in_worker_processes)
{
	struct sandbox_result res;
	char want[128];

	setup("lua", LUA);
	for (int n = 1; n <= 20; n++) {
		run_lua(n, &res);
		lua_answer(n, want, sizeof(want));
		cr_assert_eq(res.status, 0, "n=%d: %s / %s", n, res.message, res.err);
		cr_assert_str_eq(res.out, want);
		cr_assert(!res.timed_out && !res.killed && !res.output_limited);
		cr_assert_gt(res.clone_us, 0);
		sandbox_result__free(&res);
	}
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_eq(st.started, 20);
	cr_assert_eq(st.finished, 20);
	cr_assert_eq(st.live, 0);
	cr_assert_eq(st.latency_buckets[11], 20);
}

struct conc {
	int n;
	struct sandbox_result res;
};

static void *conc_run(void *arg)
{
	struct conc *c = arg;
	char req[64];
	struct sandbox_limits lim = { .timeout_ns = 60000000000ULL };
	struct sb_err err = { "" };
	snprintf(req, sizeof(req), "{\"n\": %d}", c->n);
	if (pool__run(P, "lua", tdir("lua"), req, strlen(req), &lim, &c->res, &err) < 0)
		c->res.status = -1;
	return NULL;
}

Test(pool, thirty_two_at_once_each_with_its_own_answer)
{
	struct conc c[32];
	pthread_t t[32];
	char want[128];

	setup("lua", LUA);
	for (int i = 0; i < 32; i++) {
		c[i].n = 40 + i;
		cr_assert_eq(pthread_create(&t[i], NULL, conc_run, &c[i]), 0);
	}
	for (int i = 0; i < 32; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 32; i++) {
		lua_answer(c[i].n, want, sizeof(want));
		cr_assert_eq(c[i].res.status, 0, "run %d: %s", i, c[i].res.message);
		cr_assert_str_eq(c[i].res.out, want, "run %d", i);
		sandbox_result__free(&c[i].res);
	}
}

static const char *const LOOP[] = { "/bin/lua", "-e", "io.read('a') while true do end", NULL };

Test(pool, a_looping_sandbox_times_out_and_the_pool_goes_on)
{
	struct sandbox_limits lim = { .timeout_ns = 1000000000ULL };
	struct sandbox_result res;
	struct sb_err err = { "" };

	setup("loop", LOOP);
	setup("lua", LUA);
	cr_assert_eq(pool__run(P, "loop", tdir("loop"), "x", 1, &lim, &res, &err), 0, "%s", err.msg);
	cr_assert(res.timed_out, "status %d: %s", res.status, res.message);
	cr_assert_eq(res.status, 124);
	cr_assert_lt(res.total_us, 5e6);
	sandbox_result__free(&res);
	run_lua(7, &res);
	cr_assert_str_eq(res.out, "{\"n\": 7, \"fib\": 13, \"prime\": 17}\n");
	sandbox_result__free(&res);
}

static void *loop_run(void *arg)
{
	struct sandbox_result *res = arg;
	struct sandbox_limits lim = { .timeout_ns = 60000000000ULL };
	struct sb_err err = { "" };
	if (pool__run(P, "loop", tdir("loop"), "x", 1, &lim, res, &err) < 0)
		res->status = -1;
	return NULL;
}

Test(pool, kill_stops_a_live_sandbox)
{
	struct sandbox_result res = { 0 };
	struct sandbox_info *v = NULL;
	size_t n = 0;
	pthread_t t;

	setup("loop", LOOP);
	cr_assert_eq(pthread_create(&t, NULL, loop_run, &res), 0);
	for (double t0 = test_now(); n == 0 && test_now() - t0 < test_time(5); usleep(10000)) {
		free(v);
		pool__list(P, &v, &n);
	}
	cr_assert_eq(n, 1, "the running sandbox is listed");
	cr_assert_str_eq(v[0].template_name, "loop");
	cr_assert_gt(v[0].pid, 0);
	cr_assert_gt(v[0].rss_bytes, 0);
	cr_assert_eq(pool__kill(P, v[0].id), 0);
	cr_assert_eq(pool__kill(P, v[0].id + 1000), -ENOENT);
	pthread_join(t, NULL);
	cr_assert(res.killed, "status %d: %s", res.status, res.message);
	cr_assert_eq(res.status, 128 + 9);
	free(v);
	sandbox_result__free(&res);
	pool__list(P, &v, &n);
	cr_assert_eq(n, 0);
	free(v);
}

static const char *const FLOOD[] = {
	"/bin/lua", "-e", "io.read('a') local s = ('x'):rep(65536) while true do io.write(s) end", NULL
};

Test(pool, output_over_the_limit_stops_the_sandbox)
{
	struct sandbox_limits lim = { .timeout_ns = 30000000000ULL, .max_output = 1 << 20 };
	struct sandbox_result res;
	struct sb_err err = { "" };

	setup("flood", FLOOD);
	cr_assert_eq(pool__run(P, "flood", tdir("flood"), "x", 1, &lim, &res, &err), 0);
	cr_assert(res.output_limited, "status %d: %s", res.status, res.message);
	cr_assert_leq(res.out_len + res.err_len, 1 << 20);
	cr_assert_neq(res.status, 0);
	sandbox_result__free(&res);
}

Test(pool, a_missing_template_runs_nothing)
{
	struct sandbox_limits lim = { 0 };
	struct sandbox_result res;
	struct sb_err err = { "" };

	setup("lua", LUA);
	cr_assert_eq(pool__run(P, "nope", tdir("nope"), "x", 1, &lim, &res, &err), -ENOENT);
	cr_assert(strstr(err.msg, "nope") || strstr(err.msg, "No such"), "%s", err.msg);
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_eq(st.started, 0);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Ready workers the pool keeps at rest: ready_per_size (2) for the default
 * kind (256 MiB on the backend `auto` picks here) and, when the backend under
 * test is another one, 2 more for the templates' kind. */
static unsigned ready_at_rest(void)
{
	struct sb_err err = { "" };
	const struct backend *be = backend__pick("auto", &err);
	const char *tested = test_backend() ? test_backend() : "kvm";

	return be && strcmp(be->name, tested) ? 4 : 2;
}

/* The pool at rest: its ready workers (and their sockets) all made. */
static void wait_ready(unsigned want)
{
	struct pool_stats st;
	for (double t0 = test_now(); test_now() - t0 < test_time(5); usleep(5000)) {
		pool__stats(P, &st);
		if (st.ready == want && st.live == 0)
			break;
	}
	usleep(20000); /* a spawn in flight holds a socket too */
	pool__stats(P, &st);
	cr_assert_eq(st.ready, want, "pool not at rest: %u ready", st.ready);
}

Test(pool, many_sandboxes_leave_fds_and_memory_flat)
{
	struct sandbox_result res;

	setup("lua", LUA);
	for (int i = 0; i < 50; i++) { /* warm up allocations */
		run_lua(3, &res);
		sandbox_result__free(&res);
	}
	wait_ready(ready_at_rest());
	int fds0 = count_fds();
	long rss0 = rss_kb();
	for (long i = 0, runs = test_count("SNAPBOX_POOL_RUNS", 1000); i < runs; i++) {
		run_lua(5, &res);
		cr_assert_eq(res.status, 0, "run %ld: %s", i, res.message);
		sandbox_result__free(&res);
	}
	wait_ready(ready_at_rest());
	cr_assert_eq(count_fds(), fds0, "file descriptors leak");
	cr_assert_lt(rss_kb() - rss0, 4096, "RSS grew from %ld to %ld KiB", rss0, rss_kb());
}

/* Poll a long-lived sandbox until its stdout has `want` (or it ends). */
static void wait_output(uint64_t id, const char *want, struct sandbox_output *o)
{
	for (double t0 = test_now(); test_now() - t0 < test_time(5); usleep(5000)) {
		cr_assert_eq(pool__read(P, id, 0, 0, o), 0);
		if ((o->out && strstr(o->out, want)) || o->done)
			return;
		sandbox_output__free(o);
	}
	cr_assert_fail("no '%s' from sandbox %llu", want, (unsigned long long)id);
}

Test(pool, a_long_lived_sandbox_takes_stdin_in_pieces)
{
	struct sandbox_limits lim = { .timeout_ns = 30000000000ULL };
	struct sandbox_output o;
	struct sb_err err = { "" };
	uint64_t id;

	setup("cat", PROG_CAT);
	cr_assert_eq(pool__start(P, "cat", tdir("cat"), &lim, &id, &err), 0, "%s", err.msg);
	cr_assert_eq(pool__write_stdin(P, id, "hello ", 6, false), 0);
	wait_output(id, "hello ", &o);
	cr_assert(!o.done, "cat ended before its stdin was closed");
	sandbox_output__free(&o);
	cr_assert_eq(pool__write_stdin(P, id, "world\n", 6, true), 0);
	cr_assert_eq(pool__write_stdin(P, id, "more", 4, false), -EPIPE, "stdin is closed");
	for (double t0 = test_now(); test_now() - t0 < test_time(5); usleep(5000)) {
		cr_assert_eq(pool__read(P, id, 0, 0, &o), 0);
		if (o.done)
			break;
		sandbox_output__free(&o);
	}
	cr_assert(o.done);
	cr_assert_str_eq(o.out, "hello world\n");
	cr_assert_eq(o.result.status, 0, "%s", o.result.message);
	sandbox_output__free(&o);
	struct sandbox_info *v;
	size_t n;
	pool__list(P, &v, &n);
	cr_assert_eq(n, 1, "an ended, unreleased sandbox is still listed");
	cr_assert_str_eq(v[0].state, "exited 0");
	free(v);
	/* reading from an offset returns only what is new */
	cr_assert_eq(pool__read(P, id, 6, 0, &o), 0);
	cr_assert_str_eq(o.out, "world\n");
	cr_assert_eq(o.out_total, 12);
	sandbox_output__free(&o);
	cr_assert_eq(pool__release(P, id), 0);
	cr_assert_eq(pool__read(P, id, 0, 0, &o), -ENOENT);
	cr_assert_eq(pool__release(P, id), -ENOENT);
}

Test(pool, releasing_a_running_sandbox_kills_it)
{
	struct sandbox_limits lim = { 0 };
	struct sb_err err = { "" };
	struct sandbox_info *v;
	size_t n;
	uint64_t id;

	setup("cat", PROG_CAT);
	cr_assert_eq(pool__start(P, "cat", tdir("cat"), &lim, &id, &err), 0, "%s", err.msg);
	pool__list(P, &v, &n);
	cr_assert_eq(n, 1);
	pid_t pid = v[0].pid;
	free(v);
	cr_assert_eq(pool__release(P, id), 0);
	pool__list(P, &v, &n);
	cr_assert_eq(n, 0, "still listed after release");
	free(v);
	char path[64];
	int gone = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	for (double t0 = test_now(); !gone && test_now() - t0 < test_time(2); usleep(20000)) {
		FILE *f = fopen(path, "r");
		gone = !f;
		if (f) { /* a zombie awaiting the zygote's reaping counts as gone */
			char line[128];
			while (fgets(line, sizeof(line), f))
				if (!strncmp(line, "State:", 6))
					gone = strchr(line, 'Z') != NULL;
			fclose(f);
		}
	}
	cr_assert(gone, "worker %d still alive", pid);
}

/* The service keeps templates loaded; a replaced one must be seen at once. */
static void create_force(const char *name, const char *const *prog)
{
	const char *argv[16] = { "snapbox", "template", "create", name, "--force", "--store", STORE, "--" };
	int n = 8;
	for (int i = 0; prog[i]; i++)
		argv[n++] = prog[i];
	argv[n] = NULL;
	run_result_free(&R);
	cr_assert_eq(run_snapbox(argv, NULL, 0, 60, &R), 0);
	cr_assert_eq(R.status, 0, "template create --force %s: %s", name, R.err);
}

Test(pool, a_replaced_template_is_not_served_from_the_cache)
{
	static const char *const ONE[] = { "/bin/lua", "-e", "io.read('a') print('one')", NULL };
	static const char *const TWO[] = { "/bin/lua", "-e", "io.read('a') print('two')", NULL };
	struct sandbox_limits lim = { .timeout_ns = 30000000000ULL };
	struct sandbox_result res;
	struct sb_err err = { "" };

	setup("swap", ONE);
	cr_assert_eq(pool__run(P, "swap", tdir("swap"), "x", 1, &lim, &res, &err), 0, "%s", err.msg);
	cr_assert_str_eq(res.out, "one\n");
	sandbox_result__free(&res);
	create_force("swap", TWO);
	cr_assert_eq(pool__run(P, "swap", tdir("swap"), "x", 1, &lim, &res, &err), 0, "%s", err.msg);
	cr_assert_str_eq(res.out, "two\n", "served the replaced template");
	sandbox_result__free(&res);
	/* and a removed one is refused, not run from the cache */
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir("swap"));
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(pool__run(P, "swap", tdir("swap"), "x", 1, &lim, &res, &err), -ENOENT);
}

/* ---- recycling (a template's policy: reset a sandbox, serve the next request) ---- */

static const char *const HOSTILE[] = { "/bin/hostile_reset", NULL };

/* The proc stub's writable memory [lo, hi), from its ELF (proc only: under
 * KVM there is no stub in the guest; 0 0 then). */
static void stub_range(unsigned long long *lo, unsigned long long *hi)
{
	char path[4096];
	Elf64_Ehdr eh;
	FILE *f;

	*lo = *hi = 0;
	if (!test_on_proc())
		return;
	snprintf(path, sizeof(path), "%s", snapbox_bin());
	snprintf(strrchr(path, '/') + 1, sizeof(path) - (size_t)(strrchr(path, '/') + 1 - path),
		 "guest/proc-stub");
	f = fopen(path, "rb");
	cr_assert(f, "%s", path);
	cr_assert_eq(fread(&eh, sizeof(eh), 1, f), 1);
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		cr_assert_eq(fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize), SEEK_SET), 0);
		cr_assert_eq(fread(&ph, sizeof(ph), 1, f), 1);
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W)) {
			*lo = ph.p_vaddr & ~4095ULL;
			*hi = ph.p_vaddr + ph.p_memsz;
		}
	}
	fclose(f);
	cr_assert(*hi > *lo, "no writable segment in %s", path);
}

static int run_req(const char *name, const char *req, const struct sandbox_limits *lim,
		   struct sandbox_result *res)
{
	struct sb_err err = { "" };
	int ret = pool__run(P, name, tdir(name), req, strlen(req), lim, res, &err);
	cr_assert_eq(ret, 0, "pool__run %s: %s", req, err.msg);
	return res->status;
}

static const struct sandbox_limits RECYCLE = { .timeout_ns = 30000000000ULL,
					       .recycle = { true, 0, 0 } };

Test(pool, a_recycled_sandbox_answers_and_serves_only_its_template)
{
	struct sandbox_result res;
	char want[128];

	setup("lua", LUA);
	setup("hr", HOSTILE);
	for (int n = 1; n <= 10; n++) {
		char req[64];
		snprintf(req, sizeof(req), "{\"n\": %d}", n);
		cr_assert_eq(run_req("lua", req, &RECYCLE, &res), 0, "%s", res.message);
		lua_answer(n, want, sizeof(want));
		cr_assert_str_eq(res.out, want);
		cr_assert_eq(res.recycled, n > 1, "request %d %s recycled", n,
			     res.recycled ? "was" : "was not");
		cr_assert_eq(res.reuse, (uint32_t)(n - 1));
		sandbox_result__free(&res);
		/* another template in between never gets the lua sandbox */
		cr_assert_eq(run_req("hr", "sum 40 2", &RECYCLE, &res), 0, "%s", res.message);
		cr_assert_str_eq(res.out, "42\n");
		cr_assert_eq(res.recycled, n > 1);
		sandbox_result__free(&res);
	}
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_eq(st.recycled_runs, 18);
	cr_assert_geq(st.resets, 18);
	cr_assert_eq(st.failed_resets, 0);
	cr_assert_gt(st.reset_pages, 0);
}

Test(pool, secrets_do_not_survive_a_reset)
{
	unsigned long long lo, hi;
	struct sandbox_result res;
	char req[256];

	stub_range(&lo, &hi);
	setup("hr", HOSTILE);
	snprintf(req, sizeof(req), "stub %llx %llx S3CR3T-%d", lo, hi, getpid());
	cr_assert_eq(run_req("hr", req, &RECYCLE, &res), 0, "%s %s", res.message, res.err);
	sandbox_result__free(&res);
	snprintf(req, sizeof(req), "check %llx %llx S3CR3T-%d", lo, hi, getpid());
	cr_assert_eq(run_req("hr", req, &RECYCLE, &res), 0, "%s", res.message);
	cr_assert(res.recycled);
	cr_assert_str_eq(res.out, "stub: clean\nheap: clean\nstack: clean\n");
	sandbox_result__free(&res);
	/* a guest that keeps writing after telling the monitor it exited (a
	 * proc sandbox can say so on its channel; a VM's exit stops its vCPU) */
	if (!test_on_proc())
		return;
	snprintf(req, sizeof(req), "exitspin SPIN-%d", getpid());
	cr_assert_eq(run_req("hr", req, &RECYCLE, &res), 0, "%s", res.message);
	sandbox_result__free(&res);
	snprintf(req, sizeof(req), "check %llx %llx SPIN-%d", lo, hi, getpid());
	cr_assert_eq(run_req("hr", req, &RECYCLE, &res), 0, "%s", res.message);
	cr_assert(res.recycled);
	cr_assert_str_eq(res.out, "stub: clean\nheap: clean\nstack: clean\n");
	sandbox_result__free(&res);
}

Test(pool, junk_left_on_the_channel_is_drained_by_a_reset)
{
	struct sandbox_result res;

	if (!test_on_proc())
		return; /* the channel is the proc backend's */
	setup("hr", HOSTILE);
	cr_assert_eq(run_req("hr", "exitjunk 5000", &RECYCLE, &res), 0, "%s", res.message);
	sandbox_result__free(&res);
	cr_assert_eq(run_req("hr", "sum 1 2", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert_str_eq(res.out, "3\n");
	sandbox_result__free(&res);
}

Test(pool, a_reset_that_fails_ends_the_worker)
{
	struct sandbox_result res;
	struct pool_stats st;

	if (!test_on_proc())
		return; /* blocking the reset's signal is a proc sandbox's trick */
	setup("hr", HOSTILE);
	cr_assert_eq(run_req("hr", "sigblock", &RECYCLE, &res), 0, "%s %s", res.message, res.err);
	cr_assert_str_eq(res.out, "forged: resumed\n");
	pid_t pid = res.pid;
	sandbox_result__free(&res);
	/* the worker's reset waits for the signal to be taken, then gives up */
	for (double t0 = test_now(); test_now() - t0 < test_time(10); usleep(20000)) {
		pool__stats(P, &st);
		if (st.failed_resets)
			break;
	}
	cr_assert_eq(st.failed_resets, 1);
	cr_assert_eq(run_req("hr", "sum 2 2", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert_str_eq(res.out, "4\n");
	cr_assert(!res.recycled, "served by a sandbox whose reset failed");
	cr_assert_neq(res.pid, pid);
	sandbox_result__free(&res);
	bool gone = false;
	for (double t0 = test_now(); !gone && test_now() - t0 < test_time(5); usleep(10000))
		gone = kill(pid, 0) < 0;
	cr_assert(gone, "worker %d still alive", pid);
}

Test(pool, the_guests_signal_stack_does_not_survive_a_reset)
{
	unsigned long long lo, hi;
	struct sandbox_result res;
	char req[128];

	if (!test_on_proc())
		return; /* a forged rt_sigreturn frame is a proc sandbox's trick */
	stub_range(&lo, &hi);
	setup("hr", HOSTILE);
	/* its signal stack on its heap: the reset puts the stub's back */
	cr_assert_eq(run_req("hr", "altram", &RECYCLE, &res), 0, "%s", res.message);
	sandbox_result__free(&res);
	cr_assert_eq(run_req("hr", "altcheck", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert(res.recycled);
	cr_assert(strstr(res.out, "altstack: clean\n"), "%s", res.out);
	sandbox_result__free(&res);
	/* on the stub's own memory: the reset cannot be done, the worker ends */
	snprintf(req, sizeof(req), "altstub %llx %llx", lo, hi);
	cr_assert_eq(run_req("hr", req, &RECYCLE, &res), 0, "%s", res.message);
	sandbox_result__free(&res);
	cr_assert_eq(run_req("hr", "sum 3 4", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert_str_eq(res.out, "7\n");
	sandbox_result__free(&res);
}

/* The sandbox process of an idle recycled worker dies (OOM killer, an
 * operator): the request it would have served goes to another. */
Test(pool, a_recycled_sandbox_that_died_while_idle_is_replaced)
{
	struct sandbox_result res;
	char path[300], buf[256] = "";

	if (!test_on_proc())
		return; /* under KVM the sandbox is the worker itself */
	setup("hr", HOSTILE);
	cr_assert_eq(run_req("hr", "sum 1 1", &RECYCLE, &res), 0, "%s", res.message);
	pid_t worker = res.pid;
	sandbox_result__free(&res);
	usleep(100000); /* its reset is done */
	pid_t sandbox = 0;
	DIR *d = opendir("/proc");
	for (struct dirent *e; d && !sandbox && (e = readdir(d));) {
		int ppid = 0;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = atoi(e->d_name) > 0 ? fopen(path, "r") : NULL;
		if (f && fgets(buf, sizeof(buf), f) && strrchr(buf, ')') &&
		    sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid) == 1 && ppid == worker)
			sandbox = atoi(e->d_name);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	cr_assert_gt(sandbox, 0, "no sandbox process under worker %d", worker);
	cr_assert_eq(kill(sandbox, SIGKILL), 0);
	usleep(50000);
	cr_assert_eq(run_req("hr", "sum 20 22", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert_str_eq(res.out, "42\n");
	cr_assert_neq(res.pid, worker);
	sandbox_result__free(&res);
}

Test(pool, the_policy_limits_reuses_and_idle_time)
{
	struct sandbox_limits lim = RECYCLE;
	struct sandbox_result res;

	setup("hr", HOSTILE);
	lim.recycle.max_reuses = 2;
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(run_req("hr", "sum 1 1", &lim, &res), 0, "%s", res.message);
		/* requests 0,1,2 on one sandbox, 3,4,5 on the next, ... */
		cr_assert_eq(res.recycled, i % 3 != 0, "request %d", i);
		sandbox_result__free(&res);
	}
	lim.recycle.max_reuses = 0;
	lim.recycle.idle_ms = (uint32_t)(test_time(0.3) * 1000); /* 300 ms, longer emulated */
	cr_assert_eq(run_req("hr", "sum 1 1", &lim, &res), 0, "%s", res.message);
	sandbox_result__free(&res);
	usleep(50000);
	cr_assert_eq(run_req("hr", "sum 1 1", &lim, &res), 0, "%s", res.message);
	cr_assert(res.recycled);
	pid_t pid = res.pid;
	sandbox_result__free(&res);
	usleep((useconds_t)(test_time(1.0) * 1e6)); /* idle past 300 ms: the service ends it */
	cr_assert_eq(run_req("hr", "sum 1 1", &lim, &res), 0, "%s", res.message);
	cr_assert(!res.recycled, "an idle recycled worker outlived its idle time");
	cr_assert_neq(res.pid, pid);
	sandbox_result__free(&res);
}

/* 1,000 mixed requests on recycled sandboxes give byte for byte what
 * fresh clones give; those that crash, time out or go over the output limit
 * are never recycled. */
Test(pool, recycled_answers_equal_fresh_clones_over_mixed_requests, .timeout = 600)
{
	/* 2 s: the limit of the looping requests, and room for the others on a
	 * loaded machine (a timeout of one of them would differ by load) */
	struct sandbox_limits fresh = { .timeout_ns = (uint64_t)(test_time(2) * 1e9),
					.max_output = 65536 };
	struct sandbox_limits rec = fresh;
	unsigned long long lo, hi;
	unsigned seed = 12345;
	bool last_bad = false;
	long runs = test_count("SNAPBOX_RECYCLE_RUNS", 1000);

	rec.recycle.on = true;
	stub_range(&lo, &hi);
	setup("hr", HOSTILE);
	for (long i = 0; i < runs; i++) {
		struct sandbox_result a, b;
		char req[256];
		unsigned r = (seed = seed * 1103515245u + 12345u) >> 16;

		switch (r % 100) {
		case 0:
			snprintf(req, sizeof(req), "%s", r % 200 < 100 ? "crash" : "spin");
			break;
		case 1:
			snprintf(req, sizeof(req), "fail 77");
			break;
		case 2:
			snprintf(req, sizeof(req), "big 100000");
			break;
		case 3 ... 9:
			snprintf(req, sizeof(req), "fail %u", 1 + r % 50);
			break;
		case 10 ... 39:
			snprintf(req, sizeof(req), "stub %llx %llx X%u", lo, hi, r);
			break;
		case 40 ... 69:
			snprintf(req, sizeof(req), "check %llx %llx X%u", lo, hi, r - 30);
			break;
		default:
			snprintf(req, sizeof(req), "sum %u %ld", r, i);
			break;
		}
		run_req("hr", req, &rec, &a);
		run_req("hr", req, &fresh, &b);
		cr_assert(!b.recycled);
		cr_assert_eq(a.status, b.status, "%ld %s: %d vs fresh %d (%s)", i, req, a.status,
			     b.status, a.message);
		cr_assert_eq(a.timed_out, b.timed_out, "%ld %s", i, req);
		cr_assert_eq(a.output_limited, b.output_limited, "%ld %s", i, req);
		if (!b.output_limited) { /* how much of it was read before the stop varies */
			cr_assert_eq(a.out_len, b.out_len, "%ld %s: stdout", i, req);
			cr_assert(!memcmp(a.out, b.out, a.out_len), "%ld %s: stdout differs", i, req);
			cr_assert_str_eq(a.err, b.err, "%ld %s: stderr", i, req);
		}
		if (last_bad)
			cr_assert(!a.recycled, "%ld %s: ran on a sandbox whose last request failed", i, req);
		last_bad = a.timed_out || a.output_limited || a.status >= 128;
		sandbox_result__free(&a);
		sandbox_result__free(&b);
	}
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_gt(st.recycled_runs, (uint64_t)runs / 2);
	cr_assert_eq(st.failed_resets, 0);
}

Test(pool, ten_thousand_recycled_runs_leave_fds_and_memory_flat, .timeout = 600)
{
	struct sandbox_result res;
	long runs = test_count("SNAPBOX_SOAK_RUNS", 10000);
	int wfds0 = -1;
	long wrss0 = -1;
	pid_t wpid = 0;

	setup("lua", LUA);
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(run_req("lua", "{\"n\": 3}", &RECYCLE, &res), 0);
		sandbox_result__free(&res);
	}
	wait_ready(ready_at_rest());
	int fds0 = count_fds();
	long rss0 = rss_kb();
	for (long i = 0; i < runs; i++) {
		cr_assert_eq(run_req("lua", "{\"n\": 5}", &RECYCLE, &res), 0, "run %ld: %s", i,
			     res.message);
		cr_assert(res.recycled, "run %ld not recycled", i);
		if (i == 100 || i == runs - 1) {
			/* the worker's own descriptors and memory */
			char path[64];
			int n = 0;
			snprintf(path, sizeof(path), "/proc/%d/fd", res.pid);
			DIR *d = opendir(path);
			while (d && readdir(d))
				n++;
			if (d)
				closedir(d);
			snprintf(path, sizeof(path), "/proc/%d/status", res.pid);
			FILE *f = fopen(path, "r");
			char line[256];
			long kb = -1;
			while (f && fgets(line, sizeof(line), f))
				if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
					break;
			if (f)
				fclose(f);
			if (i == 100) {
				wfds0 = n, wrss0 = kb, wpid = res.pid;
			} else if (res.pid == wpid) {
				cr_assert_eq(n, wfds0, "the worker's descriptors leak: %d then %d", wfds0, n);
				cr_assert_lt(kb - wrss0, 1024, "worker RSS grew from %ld to %ld KiB", wrss0, kb);
			}
		}
		sandbox_result__free(&res);
	}
	wait_ready(ready_at_rest());
	cr_assert_eq(count_fds(), fds0, "file descriptors leak");
	cr_assert_lt(rss_kb() - rss0, 4096, "RSS grew from %ld to %ld KiB", rss0, rss_kb());
}

/* A sandbox that wrote more than a reset should copy back every time is
 * reset once more and then retired, not failed. */
Test(pool, a_sandbox_that_wrote_much_is_retired_after_its_reset)
{
	static const char *const SECRET[] = { "/bin/secret", NULL };
	struct sandbox_result res;
	struct pool_stats st;

	setup("secret", SECRET);
	cr_assert_eq(run_req("secret", "dirty 5000", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert_str_eq(res.out, "dirty 5000\n");
	sandbox_result__free(&res);
	cr_assert_eq(run_req("secret", "compute 7", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert(!res.recycled, "a sandbox with 5000 written pages was recycled");
	sandbox_result__free(&res);
	cr_assert_eq(run_req("secret", "compute 7", &RECYCLE, &res), 0, "%s", res.message);
	cr_assert(res.recycled);
	sandbox_result__free(&res);
	pool__stats(P, &st);
	cr_assert_eq(st.failed_resets, 0);
}

/* ---- pre-cloned sandboxes (the template's write set pre-faulted) ------------------- */

static const char *const PY_HANDLER[] = { "/usr/bin/python3", "/app/handler.py", NULL };
/* put S: S into a global, the heap and /tmp/secret; get: what of it is
 * there.  Both print a draw of `random`, reseeded after the ready point. */
static const char *const PY_SECRET[] = {
	"/usr/bin/python3", "-c",
	"import os, random, sys\n"
	"KEEP = []\n"
	"d = sys.stdin.read().split()\n"
	"random.seed()\n"
	"tok = '%016x' % random.getrandbits(64)\n"
	"if d[0] == 'put':\n"
	"    KEEP.append(d[1] * 1000)\n"
	"    open('/tmp/secret', 'w').write(d[1])\n"
	"    print('put', tok)\n"
	"else:\n"
	"    seen = os.path.exists('/tmp/secret') or any(d[1] in k for k in KEEP)\n"
	"    print('seen' if seen else 'clean', tok)\n"
	"sys.stdout.flush()\n"
	"os._exit(0)\n",
	NULL };

/* template NAME, trained with the request `train`, then the pool. */
static void setup_trained(const char *name, const char *const *prog, const char *train)
{
	struct pool_opts o = { .ready_per_size = 2, .max_live = 64, .log_fd = 2 };
	struct sb_err err = { "" };
	char path[4200];
	const char *av[32] = { "snapbox", "template", "create", name, "--store", NULL, "--mem", "512M",
			       "--warmup-request", path, "--" };
	int n = 11;

	if (!test_on_proc())
		require_kvm();
	if (!STORE)
		STORE = make_tempdir();
	av[5] = STORE;
	cr_assert_eq(write_file(STORE, "train.req", train, strlen(train), 0644), 0);
	snprintf(path, sizeof(path), "%s/train.req", STORE);
	for (int i = 0; prog[i] && n < 31; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	run_checked(av, NULL, 120, &R);
	cr_assert_eq(R.status, 0, "template create %s: %s", name, R.err);
	cr_assert(strstr(R.out, "write set: "), "%s", R.out);
	if (!P)
		cr_assert_eq(pool__create(&P, &o, &err), 0, "pool__create: %s", err.msg);
}

/* Wait (up to 10 s) until a pre-cloned sandbox waits. */
static void wait_precloned(void)
{
	struct pool_stats st;

	for (int i = 0; i < 1000; i++) {
		pool__stats(P, &st);
		if (st.idle_precloned >= 1)
			break;
		usleep(10000);
	}
	usleep(20000); /* its pre-clone answered (RECYCLED, not RECYCLING) most likely */
}

static const struct sandbox_limits ONCE = { .timeout_ns = 60000000000ULL };

Test(pool, a_precloned_sandbox_answers_as_a_fresh_clone_with_its_own_draws, .timeout = 240)
{
	enum { N = 8 };
	struct sandbox_result res;
	char tokens[N][20];
	unsigned pre = 0;

	setup_trained("py", PY_HANDLER, "{\"n\": 7, \"text\": \"training\"}");
	for (int i = 0; i < N; i++) {
		char req[96], *tok;
		const char *cli[] = { "snapbox", "run", "--store", STORE, "py", NULL };

		snprintf(req, sizeof(req), "{\"n\": %d, \"text\": \"Pre Cloned %d\"}", 20 + i, i);
		if (i)
			wait_precloned();
		cr_assert_eq(run_req("py", req, &ONCE, &res), 0, "%s %s", res.message, res.err);
		pre += res.precloned;
		cr_assert(!res.recycled);
		if (i)
			cr_assert(res.precloned, "request %d did not find its pre-cloned sandbox", i);
		/* a fresh clone's answer (snapbox run) to the same request, token aside */
		run_checked(cli, req, 60, &R);
		cr_assert_eq(R.status, 0, "%s", R.err);
		tok = strstr(res.out, "\"token\": \"");
		cr_assert_not_null(tok, "%s", res.out);
		cr_assert_not_null(strstr(R.out, "\"token\": \""), "%s", R.out);
		cr_assert_eq(strncmp(res.out, R.out, (size_t)(tok - res.out)), 0,
			     "pre-cloned: %s\nfresh: %s", res.out, R.out);
		snprintf(tokens[i], sizeof(tokens[i]), "%.16s", tok + 10);
		for (int k = 0; k < i; k++)
			cr_assert_str_neq(tokens[k], tokens[i], "requests %d and %d drew the same", k, i);
		sandbox_result__free(&res);
	}
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_geq(pre, N - 1);
	cr_assert_geq(st.precloned_runs, N - 1);
	cr_assert_geq(st.preclones, N - 1);
	cr_assert_eq(st.failed_preclones, 0);
	/* every pre-clone made the write set its own */
	cr_assert_geq(st.prefault_pages, st.preclones * 4);
	cr_assert_eq(st.recycled_runs, 0);
}

Test(pool, a_secret_of_one_request_is_not_in_the_next_precloned_sandbox, .timeout = 240)
{
	struct sandbox_result res;
	struct sandbox_limits lims[2] = { ONCE, RECYCLE };

	setup_trained("sec", PY_SECRET, "get nothing");
	for (int round = 0; round < 2; round++) { /* not recycled, then recycled */
		char req[64];

		for (int i = 0; i < 3; i++) {
			snprintf(req, sizeof(req), "put S3CR3T%d%d", round, i);
			wait_precloned();
			cr_assert_eq(run_req("sec", req, &lims[round], &res), 0, "%s %s", res.message,
				     res.err);
			cr_assert_eq(strncmp(res.out, "put ", 4), 0, "%s", res.out);
			sandbox_result__free(&res);
			snprintf(req, sizeof(req), "get S3CR3T%d%d", round, i);
			wait_precloned();
			cr_assert_eq(run_req("sec", req, &lims[round], &res), 0, "%s %s", res.message,
				     res.err);
			cr_assert_eq(strncmp(res.out, "clean ", 6), 0, "round %d: %s", round, res.out);
			cr_assert(res.precloned || res.recycled);
			sandbox_result__free(&res);
		}
	}
	struct pool_stats st;
	pool__stats(P, &st);
	cr_assert_geq(st.precloned_runs, 3);
}
