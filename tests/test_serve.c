/* SPDX-License-Identifier: MIT */
/*
 * The launcher service end to end: each test starts its own `snapbox serve`
 * on a temporary socket and store, talks HTTP to it (launcher/client.c, or
 * raw bytes for the malformed cases) and stops it with SIGTERM.  Templates
 * are made with the CLI (`snapbox template create --store`), real guests:
 * /bin/lua /app/handler.lua, and a Lua loop that never ends.  They are made
 * with the backend under test (SNAPBOX_TEST_BACKEND: run_snapbox passes
 * --backend, and the API's "backend" field says it), so the service serves
 * them with workers of that backend.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "launcher/client.h"
#include "run.h"

extern char **environ;

static char *STORE;
static char SOCK[512];
static pid_t DAEMON = -1;
static struct run_result R;

#define ARGS(...) ((const char *const[]){ "snapbox", __VA_ARGS__, NULL })

/* ---- the daemon --------------------------------------------------------------- */

/* One request; the answer's status (or -errno if there was none). */
static int req(const char *method, const char *target, const char *body, struct http_response *r)
{
	return serve_req(SOCK, 60, method, target, body, r);
}

/* The answer's JSON (asserting it parses). */
static json_t *req_json(const char *method, const char *target, const char *body, int want)
{
	return serve_req_json(SOCK, 60, method, target, body, want);
}

/* snapbox serve on SOCK and STORE; recycle: its --recycle (NULL: none) */
static void daemon_start_recycle(const char *recycle)
{
	char log[600];
	const char *av[] = { snapbox_bin(), "serve", "--socket", SOCK, "--store", STORE,
			     "--log-level", "error", recycle ? "--recycle" : NULL, recycle, NULL };

	snprintf(log, sizeof(log), "%s/serve.log", STORE);
	serve_start(av, SOCK, log, &DAEMON);
}

static void daemon_start(void)
{
	daemon_start_recycle(NULL);
}

/* SIGTERM, and the exit status (-1: had to be killed). */
static int daemon_stop(void)
{
	int st;

	if (serve_stop(&DAEMON, &st))
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void init(void)
{
	if (!test_on_proc())
		require_kvm();
	STORE = make_tempdir();
	cr_assert(STORE);
	snprintf(SOCK, sizeof(SOCK), "%s/snapbox.sock", STORE);
	daemon_start();
}

static void fini(void)
{

	daemon_stop();
	run_result_free(&R);
	remove_tempdir(&STORE);
}

TestSuite(serve, .init = init, .fini = fini, .timeout = 120);

/* ---- helpers ---------------------------------------------------------------------- */

static void sb(const char *const *argv, const char *in, double limit)
{
	run_checked(argv, in, limit, &R);
}

static void create(const char *name, const char *const *prog)
{
	const char *av[16] = { "snapbox", "template", "create", name, "--store", STORE, "--" };
	int n = 7;
	for (int i = 0; prog[i]; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	sb(av, NULL, 60);
	cr_assert_eq(R.status, 0, "template create %s: %s", name, R.err);
}

#define LUA ((const char *const[]){ "/bin/lua", "/app/handler.lua", NULL })
#define LOOP ((const char *const[]){ "/bin/lua", "-e", "io.read(\"a\") while true do end", NULL })


/* POST run for {"n": n}; asserts the handler's answer; returns the sandbox id. */
static json_int_t lua_run(const char *name, int n)
{
	char body[64], want[128];
	json_t *j;
	snprintf(body, sizeof(body), "{\"n\": %d}", n);
	lua_answer(n, want, sizeof(want));
	char target[128];
	snprintf(target, sizeof(target), "/v1/templates/%s/run", name);
	j = req_json("POST", target, body, 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 0);
	cr_assert_str_eq(json_string_value(json_object_get(j, "stdout")), want, "n=%d", n);
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	return id;
}

/* Raw bytes in (then our write side shut), the answer's status: 0 if the
 * service closed the connection without one. */
static int raw(const void *bytes, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	char buf[256] = "";
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), st = 0;
	ssize_t n;

	strcpy(sa.sun_path, SOCK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	shutdown(fd, SHUT_WR);
	n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0, "no answer and no close within 10 s: %s", strerror(errno));
	close(fd);
	if (n > 0 && sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
		cr_assert_fail("not an HTTP answer: %.60s", buf);
	return st;
}

static void assert_healthy(void)
{
	json_t *j = req_json("GET", "/v1/health", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(serve, run_returns_the_handlers_answer)
{
	json_t *j, *t;

	create("lua", LUA);
	lua_run("lua", 30);
	j = req_json("GET", "/v1/templates", NULL, 200);
	t = json_array_get(json_object_get(j, "templates"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(t, "name")), "lua");
	cr_assert_eq(strlen(json_string_value(json_object_get(t, "id"))), 32);
	cr_assert_eq(json_integer_value(json_object_get(t, "mem_bytes")), 256 << 20);
	json_decref(j);
	j = req_json("GET", "/v1/templates/lua", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "format")), "1.5");
	/* lua's text and read-only data come from the base layer (overlays) */
	cr_assert_geq(json_integer_value(json_object_get(json_object_get(j, "overlay"), "runs")), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "overlay"), "bytes")),
		     4096 * json_integer_value(json_object_get(json_object_get(j, "overlay"), "pages")));
	cr_assert_gt(json_array_size(json_object_get(j, "sections")), 3);
	cr_assert_eq(json_array_size(json_object_get(j, "layers")), 2, "the base and python3.11 layers");
	cr_assert_eq(strlen(json_string_value(json_object_get(json_array_get(json_object_get(j, "layers"), 0),
							       "id"))), 32);
	cr_assert_str_eq(json_string_value(json_object_get(j, "backend")),
			 test_on_proc() ? "proc" : "kvm");
	if (!test_on_proc()) /* KVM only: a proc template has no vCPU section */
		cr_assert(json_object_get(json_object_get(j, "vcpu"), "rip"));
	json_decref(j);
	/* the handler refuses garbage: its own status and answer */
	j = req_json("POST", "/v1/templates/lua/run", "garbage", 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(j, "stdout")), "{\"error\": \"bad request\"}\n");
	json_decref(j);
	/* metrics count it */
	struct http_response r;
	cr_assert_eq(req("GET", "/metrics", NULL, &r), 200);
	cr_assert(strstr(r.body, "snapbox_clones_finished_total 2\n"), "%s", r.body);
	cr_assert(strstr(r.body, "snapbox_clone_latency_seconds_count 2\n"), "%s", r.body);
	http_response__free(&r);
}

/* The pool keeps workers per RAM size and backend: a proc template and a
 * kvm one are served side by side, each by its own backend. */
Test(serve, proc_and_kvm_templates_side_by_side)
{
	const char *av[] = { "snapbox", "template", "create", "luap", "--backend", "proc",
			     "--store", STORE, "--", "/bin/lua", "/app/handler.lua", NULL };
	json_t *j;

	if (test_on_proc()) {
		fini(); /* a skipped test's .fini does not run: no daemon left behind */
		cr_skip_test("needs KVM for its kvm template: runs in the kvm pass");
	}
	create("lua", LUA);
	sb(av, NULL, 60);
	cr_assert_eq(R.status, 0, "template create luap: %s", R.err);
	j = req_json("GET", "/v1/templates/luap", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "backend")), "proc");
	json_decref(j);
	j = req_json("GET", "/v1/templates/lua", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "backend")), "kvm");
	json_decref(j);
	for (int i = 0; i < 10; i++) {
		lua_run("luap", i);
		lua_run("lua", i + 10);
	}
}

struct worker_arg {
	int n;
	json_int_t id;
};

static void *concurrent_run(void *p)
{
	struct worker_arg *a = p;
	a->id = lua_run("lua", a->n);
	return NULL;
}

Test(serve, thirty_two_concurrent_runs)
{
	enum { N = 32 };
	pthread_t th[N];
	struct worker_arg a[N];

	create("lua", LUA);
	for (int i = 0; i < N; i++) {
		a[i] = (struct worker_arg){ 10 + 2 * i, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, concurrent_run, &a[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++)
		for (int k = i + 1; k < N; k++)
			cr_assert_neq(a[i].id, a[k].id, "runs %d and %d share sandbox id %lld", i, k,
				      (long long)a[i].id);
}

Test(serve, looping_guest_stopped_by_timeout)
{
	json_t *j;

	create("loop", LOOP);
	create("lua", LUA);
	double t0 = test_now();
	j = req_json("POST", "/v1/templates/loop/run?timeout=1", "x", 200);
	cr_assert_lt(test_now() - t0, test_time(10));
	cr_assert(json_is_true(json_object_get(j, "timed_out")));
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 124);
	json_decref(j);
	assert_healthy();
	lua_run("lua", 12);
}

static void *looping_run(void *p)
{
	json_t **out = p;
	*out = req_json("POST", "/v1/templates/loop/run?timeout=60", "x", 200);
	return NULL;
}

Test(serve, kill_a_running_sandbox)
{
	pthread_t th;
	json_t *res = NULL, *j;
	json_int_t id = 0;
	char target[64];

	create("loop", LOOP);
	cr_assert_eq(pthread_create(&th, NULL, looping_run, &res), 0);
	for (double t0 = test_now(); !id && test_now() - t0 < test_time(10); usleep(20000)) {
		j = req_json("GET", "/v1/sandboxes", NULL, 200);
		json_t *s = json_array_get(json_object_get(j, "sandboxes"), 0);
		if (s) {
			cr_assert_str_eq(json_string_value(json_object_get(s, "template")), "loop");
			cr_assert_gt(json_integer_value(json_object_get(s, "pid")), 0);
			id = json_integer_value(json_object_get(s, "id"));
		}
		json_decref(j);
	}
	cr_assert_gt(id, 0, "the looping sandbox never showed in GET /v1/sandboxes");
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld", (long long)id);
	struct http_response r;
	cr_assert_eq(req("DELETE", target, NULL, &r), 204);
	http_response__free(&r);
	pthread_join(th, NULL);
	cr_assert(json_is_true(json_object_get(res, "killed")));
	cr_assert_eq(json_integer_value(json_object_get(res, "id")), id);
	json_decref(res);
	j = req_json("DELETE", target, NULL, 404);
	json_decref(j);
	/* `snapbox ps` talks to it too */
	sb(ARGS("ps", "--server", SOCK), NULL, 30);
	cr_assert_eq(R.status, 0, "ps: %s", R.err);
	cr_assert(!strncmp(R.out, "ID ", 3), "ps: %s", R.out);
}

Test(serve, malformed_http_gets_4xx_or_a_closed_connection)
{
	static const char bin[] = "\x00\x01\xff\xfe garbage \x16\x03\x01\r\n\r\n";
	int st;

#define RAW(lit) raw(lit, sizeof(lit) - 1)
	st = RAW("hello world\r\n\r\n");
	cr_assert(st >= 400 && st < 500, "status %d", st);
	st = RAW("GET /v1/health HTTP/1.1\r\nno colon here\r\n\r\n");
	cr_assert_eq(st, 400);
	st = RAW("POST /v1/templates/x/run HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
	cr_assert_eq(st, 400);
	st = RAW("POST /v1/templates/x/run HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n");
	cr_assert_eq(st, 413);
	/* bytes that are no request line at all: libmicrohttpd just closes */
	st = raw(bin, sizeof(bin) - 1);
	cr_assert(st == 0 || (st >= 400 && st < 500), "status %d", st);
	st = RAW("\x16\x03\x01\x02\x00\x01");
	cr_assert(st == 0 || (st >= 400 && st < 500), "status %d", st);
	assert_healthy();
}

Test(serve, malformed_json_and_bad_values_get_400)
{
	json_t *j = req_json("POST", "/v1/templates/x", "{\"program\": [\"/bin/lua\",", 400);
	const char *e = json_string_value(json_object_get(j, "error"));
	cr_assert(e && !strncmp(e, "line 1 column ", 14), "error: %s", e);
	json_decref(j);
	static const char *const bad[] = {
		"[]", "{}", "{\"program\": 5}", "{\"program\": []}", "{\"program\": [\"\"]}",
		"{\"program\": [\"/bin/lua\"], \"mem\": \"12Q\"}",
		"{\"program\": [\"/bin/lua\"], \"timeout\": -1}",
		"{\"program\": [\"/bin/lua\"], \"env\": [\"NOEQUALS\"]}",
		"{\"program\": [\"/bin/lua\"], \"rootfs\": \"relative\"}",
		"{\"program\": [\"/bin/lua\"], \"force\": 1}",
		"{\"program\": [\"/bin/lua\"], \"backend\": \"bogus\"}",
		"{\"program\": [\"/bin/lua\"], \"backend\": 1}",
		"{\"program\": [\"/bin/lua\"], \"bogus\": 1}",
		"{\"program\": [\"/bin/lua\"], \"program\": [\"/bin/lua\"]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = req_json("POST", "/v1/templates/x", bad[i], 400);
		cr_assert(json_string_value(json_object_get(j, "error")), "%s", bad[i]);
		json_decref(j);
	}
	json_decref(req_json("POST", "/v1/templates/x/run?timeout=0", "", 400));
	json_decref(req_json("POST", "/v1/templates/x/run?timeout=abc", "", 400));
	json_decref(req_json("POST", "/v1/templates/x/run?max_output=-1", "", 400));
	json_decref(req_json("POST", "/v1/templates/x/run?what=1", "", 400));
	json_decref(req_json("GET", "/v1/templates/..", NULL, 400));
	json_decref(req_json("DELETE", "/v1/sandboxes/abc", NULL, 400));
}

Test(serve, unknown_things_get_404_and_wrong_methods_405)
{
	json_decref(req_json("POST", "/v1/templates/nope/run", "{}", 404));
	json_decref(req_json("GET", "/v1/templates/nope", NULL, 404));
	json_decref(req_json("DELETE", "/v1/templates/nope", NULL, 404));
	json_decref(req_json("DELETE", "/v1/sandboxes/12345", NULL, 404));
	json_decref(req_json("GET", "/v2/anything", NULL, 404));
	json_decref(req_json("GET", "/v1/templates/a/b/c", NULL, 404));
	json_decref(req_json("PUT", "/v1/templates/x", "", 405));
	json_decref(req_json("POST", "/v1/health", "", 405));
}

Test(serve, templates_created_and_removed_through_the_api)
{
	/* "backend": the one under test ("auto", the default, where unset) */
	const char *be = test_backend() ? test_backend() : "auto";
	char body[512], force[512];
	snprintf(body, sizeof(body),
		 "{\"program\": [\"/bin/lua\", \"/app/handler.lua\"], \"mem\": \"64M\", "
		 "\"env\": [\"GREETING=hi\"], \"timeout\": 60, \"backend\": \"%s\"}", be);
	snprintf(force, sizeof(force),
		 "{\"program\": [\"/bin/lua\", \"/app/handler.lua\"], \"force\": true, "
		 "\"backend\": \"%s\"}", be);
	json_t *j = req_json("POST", "/v1/templates/api-lua", body, 201);
	cr_assert_eq(json_integer_value(json_object_get(j, "mem_bytes")), 64 << 20);
	if (test_backend())
		cr_assert_str_eq(json_string_value(json_object_get(j, "backend")), be);
	json_decref(j);
	lua_run("api-lua", 20);
	json_decref(req_json("POST", "/v1/templates/api-lua", body, 409));
	j = req_json("POST", "/v1/templates/api-lua", force, 201);
	cr_assert_eq(json_integer_value(json_object_get(j, "mem_bytes")), 256 << 20);
	if (test_backend())
		cr_assert_str_eq(json_string_value(json_object_get(j, "backend")), be);
	json_decref(j);
	lua_run("api-lua", 21);
	/* a program that cannot run: the child's one-line message */
	j = req_json("POST", "/v1/templates/broken", "{\"program\": [\"/bin/no-such-program\"]}", 422);
	cr_assert(strstr(json_string_value(json_object_get(j, "error")), "no-such-program"), "%s",
		  json_string_value(json_object_get(j, "error")));
	json_decref(j);
	struct http_response r;
	cr_assert_eq(req("DELETE", "/v1/templates/api-lua", NULL, &r), 204);
	http_response__free(&r);
	json_decref(req_json("DELETE", "/v1/templates/api-lua", NULL, 404));
	json_decref(req_json("POST", "/v1/templates/api-lua/run", "{}", 404));
}

Test(serve, restart_keeps_templates)
{
	create("lua", LUA);
	lua_run("lua", 5);
	cr_assert_eq(daemon_stop(), 0, "serve exit status on SIGTERM");
	struct stat sb;
	cr_assert_neq(stat(SOCK, &sb), 0, "the socket file outlived the service");
	daemon_start();
	json_t *j = req_json("GET", "/v1/templates", NULL, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "templates")), 1);
	json_decref(j);
	lua_run("lua", 6);
}

Test(serve, cli_run_through_the_service)
{
	char want[128];

	create("lua", LUA);
	lua_answer(25, want, sizeof(want));
	sb(ARGS("run", "--server", SOCK, "--timeout", "30", "lua"), "{\"n\": 25}", 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, want);
	sb(ARGS("run", "--server", SOCK, "lua"), "garbage", 60);
	cr_assert_eq(R.status, 1, "the program's own status; stderr: %s", R.err);
	sb(ARGS("run", "--server", SOCK, "nope"), "", 60);
	cr_assert_eq(R.status, 125);
	cr_assert_str_eq(R.err, "snapbox: no template named nope\n");
	char gone[600];
	snprintf(gone, sizeof(gone), "%s/nothing.sock", STORE);
	sb(ARGS("run", "--server", gone, "lua"), "", 60);
	cr_assert_eq(R.status, 125);
	cr_assert(strstr(R.err, "snapbox: cannot reach the snapbox service at "), "%s", R.err);
	sb(ARGS("ps", "--server", SOCK), NULL, 30);
	cr_assert_eq(R.status, 0, "ps: %s", R.err);
}

/* ---- no leak over many runs --------------------------------------------------------------- */

static int count_fds(pid_t pid)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)pid);
	FILE *f = popen(cmd, "r");
	int n = -1;
	cr_assert(f);
	cr_assert_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Ready workers the service keeps at rest (--pool 2): 2 for the default
 * kind (256 MiB on the backend `auto` picks here) and 2 more when the
 * templates' backend is another one. */
static int ready_at_rest(void)
{
	struct sb_err err = { "" };
	const struct backend *be = backend__pick("auto", &err);
	const char *tested = test_backend() ? test_backend() : "kvm";

	return be && strcmp(be->name, tested) ? 4 : 2;
}

/* Wait until the pool is idle and refilled, so that counts compare. */
static void settle(void)
{
	for (double t0 = test_now(); test_now() - t0 < test_time(10); usleep(20000)) {
		json_t *j = req_json("GET", "/v1/health", NULL, 200);
		bool idle = json_integer_value(json_object_get(j, "live")) == 0 &&
			    json_integer_value(json_object_get(j, "ready")) == ready_at_rest();
		json_decref(j);
		if (idle) {
			usleep(100000); /* the health request's connection ends */
			return;
		}
	}
	cr_assert_fail("the pool did not settle within 10 s");
}

Test(serve, many_sequential_runs_leave_fds_and_rss_flat, .timeout = 240)
{
	create("lua", LUA);
	for (int i = 0; i < 50; i++) /* warm up: allocator arenas, libmicrohttpd */
		lua_run("lua", i % 90);
	settle();
	int fd0 = count_fds(DAEMON);
	long rss0 = rss_kb(DAEMON);
	const long runs = test_count("SNAPBOX_SOAK_RUNS", 10000);
	double t0 = test_now();
	for (long i = 0; i < runs; i++)
		lua_run("lua", i % 90);
	double secs = test_now() - t0;
	settle();
	int fd1 = count_fds(DAEMON);
	long rss1 = rss_kb(DAEMON);
	cr_log_info("%ld runs in %.1f s; fds %d -> %d; VmRSS %ld -> %ld kB", runs, secs, fd0, fd1,
		    rss0, rss1);
	cr_assert_eq(fd1, fd0, "the service's open fds went from %d to %d", fd0, fd1);
	cr_assert_lt(rss1 - rss0, 8 << 10, "VmRSS grew from %ld to %ld kB", rss0, rss1);
}

/* ---- long-lived sandboxes: start, write stdin in pieces, read, release ------- */

static json_t *sandbox_state(json_int_t id, const char *query)
{
	char target[128];
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld%s", (long long)id, query);
	return req_json("GET", target, NULL, 200);
}

Test(serve, long_lived_sandbox_over_the_api)
{
	struct http_response r;
	char target[128];
	json_t *j;

	create("cat", ((const char *const[]){ "/bin/cat", NULL }));
	j = req_json("POST", "/v1/sandboxes", "{\"template\": \"cat\", \"timeout\": 60}", 201);
	json_int_t id = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	cr_assert_gt(id, 0);
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld/stdin", (long long)id);
	cr_assert_eq(req("POST", target, "hello ", &r), 204, "%s", r.body);
	http_response__free(&r);
	/* its output arrives while it runs */
	const char *out = "";
	for (double t0 = test_now(); test_now() - t0 < test_time(2); usleep(5000)) {
		j = sandbox_state(id, "");
		out = json_string_value(json_object_get(j, "stdout"));
		if (out && !strcmp(out, "hello "))
			break;
		json_decref(j);
		j = NULL;
	}
	cr_assert_not_null(j, "no output from the long-lived sandbox");
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld/stdin?eof=1", (long long)id);
	cr_assert_eq(req("POST", target, "world", &r), 204, "%s", r.body);
	http_response__free(&r);
	for (double t0 = test_now(); test_now() - t0 < test_time(2); usleep(5000)) {
		j = sandbox_state(id, "?stdout_offset=6");
		if (!strcmp(json_string_value(json_object_get(j, "state")), "exited"))
			break;
		json_decref(j);
		j = NULL;
	}
	cr_assert_not_null(j, "cat did not end after its stdin was closed");
	cr_assert_str_eq(json_string_value(json_object_get(j, "stdout")), "world");
	cr_assert_eq(json_integer_value(json_object_get(j, "stdout_total")), 11);
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 0);
	json_decref(j);
	/* stdin after EOF: 409; release: 204, then it is gone */
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld/stdin", (long long)id);
	cr_assert_eq(req("POST", target, "more", &r), 409, "%s", r.body);
	http_response__free(&r);
	snprintf(target, sizeof(target), "/v1/sandboxes/%lld", (long long)id);
	cr_assert_eq(req("DELETE", target, NULL, &r), 204);
	http_response__free(&r);
	cr_assert_eq(req("GET", target, NULL, &r), 404);
	http_response__free(&r);
	cr_assert_eq(req("POST", "/v1/sandboxes", "{\"template\": \"nope\"}", &r), 404, "%s", r.body);
	http_response__free(&r);
	cr_assert_eq(req("POST", "/v1/sandboxes", "{\"tmpl\": 1}", &r), 400, "%s", r.body);
	http_response__free(&r);
	assert_healthy();
}

/* ---- the recycle policy: the template's own, the service's default ---------------- */

/* the template's "recycle" and "recycle_effective" as the API shows them */
static void assert_policy(json_t *t, const char *own, const char *effective)
{
	const char *name = json_string_value(json_object_get(t, "name"));

	cr_assert_str_eq(json_string_value(json_object_get(t, "recycle")), own, "%s", name);
	cr_assert_str_eq(json_string_value(json_object_get(t, "recycle_effective")), effective, "%s",
			 name);
}

static json_t *template_of(json_t *list, const char *name)
{
	size_t i;
	json_t *t;

	json_array_foreach(json_object_get(list, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "name")), name))
			return t;
	cr_assert_fail("template %s is not listed", name);
	return NULL;
}

Test(serve, recycle_policy_of_templates_created_through_the_api)
{
	const char *be = test_backend() ? test_backend() : "auto";
	static const struct { const char *name, *field, *own, *effective; } ok[] = {
		{ "rc-on", ", \"recycle\": \"on,max=100,idle=5s\"", "on,max=100,idle=5s", "on,max=100,idle=5s" },
		{ "rc-on2", ", \"recycle\": \"on,idle=1500ms\"", "on,idle=1500ms", "on,idle=1500ms" },
		{ "rc-bare", ", \"recycle\": \"on\"", "on", "on,idle=60s" },
		{ "rc-off", ", \"recycle\": \"off\"", "off", "off" },
		{ "rc-dflt", ", \"recycle\": \"default\"", "default", "off" },
		{ "rc-none", "", "default", "off" },
	};
	char body[512];
	json_t *j;

	/* no --recycle: the service's default is off */
	j = req_json("GET", "/v1/health", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "recycle_default")), "off");
	json_decref(j);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char target[128];

		snprintf(body, sizeof(body), "{\"program\": [\"/bin/lua\", \"/app/handler.lua\"], "
			 "\"backend\": \"%s\"%s}", be, ok[i].field);
		snprintf(target, sizeof(target), "/v1/templates/%s", ok[i].name);
		j = req_json("POST", target, body, 201);
		assert_policy(j, ok[i].own, ok[i].effective);
		json_decref(j);
		j = req_json("GET", target, NULL, 200); /* round trip */
		assert_policy(j, ok[i].own, ok[i].effective);
		json_decref(j);
	}
	j = req_json("GET", "/v1/templates", NULL, 200);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_policy(template_of(j, ok[i].name), ok[i].own, ok[i].effective);
	json_decref(j);
	/* a run says whether a recycled sandbox served it: the first run of a
	 * template recycled is a fresh clone, the next ones reuse its sandbox;
	 * an "off" template's never do */
	for (int i = 0; i < 3; i++) {
		j = req_json("POST", "/v1/templates/rc-on/run", "{\"n\": 3}", 200);
		cr_assert_eq(json_is_true(json_object_get(j, "recycled")), i > 0, "run %d: %s", i,
			     json_dumps(j, 0));
		cr_assert(json_is_integer(json_object_get(j, "reuse")));
		cr_assert_eq(json_integer_value(json_object_get(j, "reuse")), i);
		cr_assert_str_eq(json_string_value(json_object_get(j, "stdout")),
				 "{\"n\": 3, \"fib\": 2, \"prime\": 5}\n", "%s", json_dumps(j, 0));
		json_decref(j);
		j = req_json("POST", "/v1/templates/rc-off/run", "{\"n\": 3}", 200);
		cr_assert(json_is_false(json_object_get(j, "recycled")), "%s", json_dumps(j, 0));
		json_decref(j);
	}
	struct http_response r;
	cr_assert_eq(req("GET", "/metrics", NULL, &r), 200);
	cr_assert(strstr(r.body, "snapbox_recycled_runs_total 2\n"), "%s", r.body);
	cr_assert(strstr(r.body, "snapbox_resets_failed_total 0\n"), "%s", r.body);
	cr_assert(strstr(r.body, "snapbox_resets_total "), "%s", r.body);
	http_response__free(&r);

	/* malformed: 400 with a message naming the field; nothing created */
	static const char *const bad[] = {
		"\"on,max=0\"", "\"on,max=x\"", "\"ON\"", "\"\"", "\"on,idle=5\"", "\"off,max=1\"",
		"\"on,bogus=1\"", "\"on,idle=25h\"", "\"on,max=1,max=2\"", "5", "true", "null",
		"[\"on\"]", "{\"mode\": \"on\", \"max_reuses\": 100}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"program\": [\"/bin/lua\", \"/app/handler.lua\"], "
			 "\"backend\": \"%s\", \"recycle\": %s}", be, bad[i]);
		j = req_json("POST", "/v1/templates/rc-bad", body, 400);
		const char *e = json_string_value(json_object_get(j, "error"));
		cr_assert(e && strstr(e, "\"recycle\""), "recycle %s: %s", bad[i], e);
		cr_assert_null(strchr(e, '\n'), "%s", e);
		json_decref(j);
	}
	json_decref(req_json("GET", "/v1/templates/rc-bad", NULL, 404));
	assert_healthy();
}

Test(serve, serve_recycle_sets_the_default_for_templates_without_a_policy)
{
	const char *off[] = { "snapbox", "template", "create", "own-off", "--store", STORE,
			      "--recycle", "off", "--", "/bin/lua", "/app/handler.lua", NULL };
	json_t *j;

	create("plain", LUA);
	sb(off, NULL, 60);
	cr_assert_eq(R.status, 0, "template create own-off: %s", R.err);
	/* the default daemon: off for both */
	j = req_json("GET", "/v1/templates/plain", NULL, 200);
	assert_policy(j, "default", "off");
	json_decref(j);

	cr_assert_eq(daemon_stop(), 0);
	daemon_start_recycle("on,max=7,idle=2s");
	j = req_json("GET", "/v1/health", NULL, 200);
	cr_assert_str_eq(json_string_value(json_object_get(j, "recycle_default")), "on,max=7,idle=2s");
	json_decref(j);
	j = req_json("GET", "/v1/templates", NULL, 200);
	assert_policy(template_of(j, "plain"), "default", "on,max=7,idle=2s");
	assert_policy(template_of(j, "own-off"), "off", "off");
	json_decref(j);
	lua_run("plain", 11);
	lua_run("own-off", 12);

	/* on without settings: the idle time filled in */
	cr_assert_eq(daemon_stop(), 0);
	daemon_start_recycle("on");
	j = req_json("GET", "/v1/templates/plain", NULL, 200);
	assert_policy(j, "default", "on,idle=60s");
	json_decref(j);
	lua_run("plain", 13);

	/* a bad default: one line, exit 2, no service */
	static const char *const junk[] = { "default", "yes", "on,max=0", "on,idle=1y", "" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		char sock[600];

		snprintf(sock, sizeof(sock), "%s/other.sock", STORE);
		sb(ARGS("serve", "--socket", sock, "--store", STORE, "--recycle", junk[i]), NULL, 30);
		cr_assert_eq(R.status, 2, "--recycle '%s': status %d, stderr: %s", junk[i], R.status, R.err);
		cr_assert(!strncmp(R.err, "snapbox: --recycle ", 19) && strchr(R.err, '\n') == R.err + R.err_len - 1,
			  "--recycle '%s': %s", junk[i], R.err);
		struct stat st;
		cr_assert_neq(stat(sock, &st), 0, "a socket was made");
	}
}
