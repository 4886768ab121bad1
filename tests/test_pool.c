/* SPDX-License-Identifier: MIT */
/* The sandbox pool behind `snapbox serve`: worker processes, real guests. */
#include <criterion/criterion.h>
#include <dirent.h>
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
	const char *argv[16] = { "snapbox", "template", "create", name, "--store", NULL };
	int n = 5;
	struct pool_opts o = { .ready_per_size = 2, .max_live = 64, .log_fd = 2 }; /* errors */
	struct sb_err err = { "" };

	if (!test_on_proc())
		require_kvm();
	if (!STORE)
		STORE = make_tempdir();
	argv[n++] = STORE;
	argv[n++] = "--";
	for (int i = 0; prog[i]; i++)
		argv[n++] = prog[i];
	argv[n] = NULL;
	run_result_free(&R);
	cr_assert_eq(run_snapbox(argv, NULL, 0, 60, &R), 0);
	cr_assert_eq(R.status, 0, "template create %s: %s", name, R.err);
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
