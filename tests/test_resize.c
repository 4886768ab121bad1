/* SPDX-License-Identifier: MIT */
/*
 * Resizing long-lived sandboxes of the service (PATCH /v1/sandboxes/{id};
 * guest ABI 5, backend/resize.h), end to end on the backend under test
 * (SNAPBOX_TEST_BACKEND): a `snapbox serve` of its own, a template of
 * /bin/memhog (guest/rootfs/examples/memhog.c) with 24 MiB of RAM, which
 * allocates, fills and checks memory on request.  What the sandbox uses is
 * read on the host: the resident memory of its worker and the worker's
 * children (kvm: the worker holds guest RAM; proc: the sandbox process
 * does), and its cgroup's CPU file.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launcher/client.h"
#include "run.h"

extern char **environ;

#define MIB (1ULL << 20)
#define TMEM "24M"               /* the template's RAM */
#define USE 24                   /* MiB the tests allocate: more than TMEM */

static char *STORE;
static char SOCK[512];
static pid_t DAEMON = -1;
static struct run_result R;

static int req(const char *method, const char *target, const char *body, struct http_response *r)
{
	return serve_req(SOCK, 60, method, target, body, r);
}

static json_t *req_json(const char *method, const char *target, const char *body, int want)
{
	return serve_req_json(SOCK, 60, method, target, body, want);
}

/* The one-line error of a refused request, asserting its status. */
static char *req_error(const char *method, const char *target, const char *body, int want)
{
	json_t *j = req_json(method, target, body, want);
	const char *e = json_string_value(json_object_get(j, "error"));
	cr_assert(e && *e && !strchr(e, '\n'), "%s %s %s: no one-line error", method, target, body);
	char *s = strdup(e);
	json_decref(j);
	return s;
}

static void init(void)
{
	char log[600];

	if (!test_on_proc())
		require_kvm();
	STORE = make_tempdir();
	cr_assert(STORE);
	snprintf(SOCK, sizeof(SOCK), "%s/snapbox.sock", STORE);
	const char *av[] = { snapbox_bin(), "serve", "--socket", SOCK, "--store", STORE,
			     "--log-level", "error", NULL };
	snprintf(log, sizeof(log), "%s/serve.log", STORE);
	serve_start(av, SOCK, log, &DAEMON);
}

static void fini(void)
{
	int st;

	serve_stop(&DAEMON, &st);
	run_result_free(&R);
	remove_tempdir(&STORE);
}

TestSuite(resize, .init = init, .fini = fini, .timeout = 240);

/* ---- helpers ------------------------------------------------------------------------ */

/* memhog holding `hold` MiB from before its ready point, as template "mh" */
static void make_template(int hold)
{
	char h[16];
	snprintf(h, sizeof(h), "%d", hold);
	const char *av[] = { "snapbox", "template", "create", "mh", "--store", STORE, "--mem", TMEM,
			     "--", "/bin/memhog", h, NULL };
	run_checked(av, NULL, 60, &R);
	cr_assert_eq(R.status, 0, "template create: %s", R.err);
}

static long start(const char *extra)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"template\": \"mh\", \"timeout\": 200%s}", extra);
	json_t *j = req_json("POST", "/v1/sandboxes", body, 201);
	long id = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	cr_assert_gt(id, 0);
	return id;
}

static json_t *patch(long id, const char *body, int want)
{
	char t[64];
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
	return req_json("PATCH", t, body, want);
}

static char *patch_error(long id, const char *body, int want)
{
	char t[64];
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
	return req_error("PATCH", t, body, want);
}

/* Send a command line; wait for the answer line that starts with `prefix`
 * after `*off` bytes of stdout; return it (malloc'd) and move *off on. */
static char *ask(long id, const char *cmd, const char *prefix, size_t *off, double limit)
{
	char t[96];
	struct http_response r;

	snprintf(t, sizeof(t), "/v1/sandboxes/%ld/stdin", id);
	cr_assert_eq(req("POST", t, cmd, &r), 204, "stdin: %s", r.body);
	http_response__free(&r);
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld?stdout_offset=%zu", id, *off);
	for (double t0 = test_now(); test_now() - t0 < test_time(limit); usleep(10000)) {
		json_t *j = req_json("GET", t, NULL, 200);
		const char *out = json_string_value(json_object_get(j, "stdout"));
		const char *nl = out ? strchr(out, '\n') : NULL;
		if (nl) {
			char *line = strndup(out, (size_t)(nl - out));
			*off += (size_t)(nl - out) + 1;
			json_decref(j);
			cr_assert(!strncmp(line, prefix, strlen(prefix)), "%s -> \"%s\" (want %s...)", cmd,
				  line, prefix);
			return line;
		}
		cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "running",
				 "the sandbox ended waiting for the answer to %s(%.1f s): %s", cmd,
				 test_now() - t0, json_string_value(json_object_get(j, "message")));
		json_decref(j);
	}
	cr_assert_fail("no answer to %s within %.0f s", cmd, limit);
	return NULL;
}

static uint64_t pat(int b, size_t i)
{
	return ((uint64_t)i * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(b + 1) << 56);
}

/* What memhog's block b of n MiB sums to. */
static uint64_t block_sum(int b, unsigned n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < (size_t)n * MIB / 8; i++)
		s += pat(b, i);
	return s;
}

static pid_t worker_of(long id)
{
	json_t *j = req_json("GET", "/v1/sandboxes", NULL, 200), *v;
	size_t i;
	pid_t pid = 0;
	json_array_foreach(json_object_get(j, "sandboxes"), i, v)
		if (json_integer_value(json_object_get(v, "id")) == id)
			pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
	json_decref(j);
	cr_assert_gt(pid, 0, "sandbox %ld has no worker", id);
	return pid;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The worker and its children (pids[0] the worker). */
static int family(pid_t w, pid_t *pids, int max)
{
	char path[64];
	int n = 0;
	pids[n++] = w;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", w, w);
	FILE *f = fopen(path, "r");
	if (f) {
		int c;
		while (n < max && fscanf(f, "%d", &c) == 1)
			pids[n++] = c;
		fclose(f);
	}
	return n;
}

/* Resident memory of the sandbox: its worker and the worker's children. */
static long sandbox_rss_kb(long id)
{
	pid_t p[8];
	long kb = 0;
	int n = family(worker_of(id), p, 8);
	for (int i = 0; i < n; i++)
		kb += rss_kb(p[i]);
	return kb;
}

/* Wait for the sandbox's RSS to fall below kb; the last value read. */
static long rss_below(long id, long kb, double limit)
{
	long now = sandbox_rss_kb(id);
	for (double t0 = test_now(); now >= kb && test_now() - t0 < test_time(limit); usleep(20000))
		now = sandbox_rss_kb(id);
	return now;
}

/* The file holding the CPU share of the sandbox's cgroup ("" if none), and
 * the process in it (*in). */
static void cpu_file(long id, char *out, size_t len, pid_t *in)
{
	pid_t p[8];
	int n = family(worker_of(id), p, 8);
	out[0] = 0;
	for (int i = 0; i < n && !out[0]; i++) {
		*in = p[i];
		char path[64], line[512];
		snprintf(path, sizeof(path), "/proc/%d/cgroup", p[i]);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
			if (!c2 || !strstr(c2, "/sb-"))
				continue;
			c2[strcspn(c2, "\n")] = 0;
			*c2 = 0;
			if (!strcmp(c1 + 1, ""))
				snprintf(out, len, "/sys/fs/cgroup%s/cpu.max", c2 + 1);
			else if (strstr(c1 + 1, "cpu") && strncmp(c1 + 1, "cpuset", 6))
				snprintf(out, len, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", c1 + 1, c2 + 1);
			if (out[0])
				break;
		}
		if (f)
			fclose(f);
	}
}

/* CPU time (user + system) of a process, seconds. */
static double cpu_secs(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, st = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(buf, sizeof(buf), f), "%s", path);
	fclose(f);
	char *p = strrchr(buf, ')');
	/* after the comm: state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	cr_assert(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static bool cgroup_cpu_here(void)
{
	char buf[256] = "";
	if (geteuid() != 0)
		return false;
	if (access("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", F_OK) == 0)
		return true;
	FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return strstr(buf, "cpu") != NULL;
}

/* ---- tests -------------------------------------------------------------------------- */

Test(resize, grow_then_use_the_new_memory)
{
	size_t off = 0;
	char want[96];
	make_template(0);
	long id = start("");
	json_t *j;

	/* 24 MiB do not fit in 24 with the program */
	free(ask(id, "alloc 24\n", "alloc 24 failed", &off, 20));
	j = patch(id, "{\"mem\": \"64M\"}", 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "mem_bytes")), 64 * MIB);
	json_decref(j);
	char t[64];
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
	j = req_json("GET", t, NULL, 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "mem_bytes")), 64 * MIB);
	json_decref(j);
	/* now they do, in the memory added (the hot window) */
	snprintf(want, sizeof(want), "alloc 24 ok sum=%llx hot=", (unsigned long long)block_sum(0, USE));
	char *line = ask(id, "alloc 24\n", want, &off, 30);
	cr_assert_gt(atoi(line + strlen(want)), 0, "%s: none of it in the memory added", line);
	free(line);
	snprintf(want, sizeof(want), "check ok sum=%llx", (unsigned long long)block_sum(0, USE));
	free(ask(id, "check\n", want, &off, 30));
	/* above the limit, below the template: refused, nothing changes */
	free(patch_error(id, "{\"mem\": \"16G\"}", 422));
	char *e = patch_error(id, "{\"mem\": \"16M\"}", 409);
	cr_assert(strstr(e, "below the template's RAM"), "%s", e);
	free(e);
	free(ask(id, "check\n", want, &off, 30));
	/* bad bodies */
	free(patch_error(id, "{\"mem\": \"lots\"}", 400));
	free(patch_error(id, "{\"cpu\": -1}", 400));
	free(patch_error(id, "{\"disk\": 1}", 400));
	free(patch_error(999, "{\"mem\": \"64M\"}", 404));
}

Test(resize, shrink_below_use_is_refused_then_shrink_lowers_rss)
{
	size_t off = 0;
	char want[96];
	make_template(0);
	long id = start(", \"free_page_reporting\": false"); /* memory stays until the shrink */

	json_decref(patch(id, "{\"mem\": \"64M\"}", 200));
	snprintf(want, sizeof(want), "alloc 24 ok sum=%llx", (unsigned long long)block_sum(0, USE));
	free(ask(id, "alloc 24\n", want, &off, 30));
	long used = sandbox_rss_kb(id);
	char *e = patch_error(id, "{\"mem\": \"24M\"}", 409);
	cr_assert(strstr(e, "uses") && strstr(e, "cannot shrink"), "%s", e);
	free(e);
	/* refused: the memory is still there and intact */
	snprintf(want, sizeof(want), "check ok sum=%llx", (unsigned long long)block_sum(0, USE));
	free(ask(id, "check\n", want, &off, 30));
	free(ask(id, "free\n", "free ok", &off, 20));
	long freed = sandbox_rss_kb(id);
	cr_assert_gt(freed, used - 8 * 1024, "RSS fell from %ld to %ld kB without reporting", used, freed);
	json_t *j = patch(id, "{\"mem\": \"24M\"}", 200);
	cr_assert_eq(json_integer_value(json_object_get(j, "mem_bytes")), 24 * MIB);
	json_decref(j);
	long after = rss_below(id, used - 16 * 1024, 2);
	cr_assert_lt(after, used - 16 * 1024, "RSS %ld kB before the shrink, %ld after", used, after);
	/* the sandbox goes on, within its RAM again */
	free(ask(id, "alloc 24\n", "alloc 24 failed", &off, 20));
	free(ask(id, "alloc 2\n", "alloc 2 ok", &off, 20));
	/* and grows again: fresh memory reads as zero */
	json_decref(patch(id, "{\"mem\": \"64M\"}", 200));
	free(ask(id, "alloc 24\n", "alloc 24 ok", &off, 30));
}

Test(resize, free_page_reporting_returns_freed_memory)
{
	size_t off = 0;
	char want[96];
	/* 4 MiB filled before the ready point: in the template's RAM */
	make_template(4);
	long id = start("");

	json_decref(patch(id, "{\"mem\": \"64M\"}", 200));
	snprintf(want, sizeof(want), "alloc 24 ok sum=%llx", (unsigned long long)block_sum(1, USE));
	free(ask(id, "alloc 24\n", want, &off, 30));
	long used = sandbox_rss_kb(id);
	free(ask(id, "free\n", "free ok", &off, 20));
	long after = rss_below(id, used - 16 * 1024, 3);
	cr_assert_lt(after, used - 16 * 1024, "RSS %ld kB before the free, %ld after", used, after);
	/* the template's 4 MiB too (they read as the template's pages once given
	 * back: the guest clears them when it hands them out again) */
	free(ask(id, "free\n", "free ok", &off, 20));
	json_t *j = patch(id, "{}", 200);
	cr_assert_geq(json_integer_value(json_object_get(j, "reported_bytes")), (USE + 4) * MIB);
	cr_assert(json_is_true(json_object_get(j, "free_page_reporting")));
	json_decref(j);
	free(ask(id, "alloc 4\n", "alloc 4 ok", &off, 20));
	free(ask(id, "alloc 24\n", "alloc 24 ok", &off, 30));
	snprintf(want, sizeof(want), "check ok sum=%llx",
		 (unsigned long long)(block_sum(0, 4) + block_sum(1, USE)));
	free(ask(id, "check\n", want, &off, 30));
}

Test(resize, cpu_share_changes_while_it_runs)
{
	size_t off = 0;
	char path[700], buf[64] = "";
	make_template(0);
	long id = start("");

	if (!cgroup_cpu_here()) {
		char *e = patch_error(id, "{\"cpu\": 0.5}", 409);
		cr_assert(strstr(e, "cgroup"), "%s", e);
		free(e);
		return;
	}
	json_t *j = patch(id, "{\"cpu\": 0.1}", 200);
	cr_assert_float_eq(json_number_value(json_object_get(j, "cpu")), 0.1, 1e-9);
	json_decref(j);
	pid_t in = 0;
	cpu_file(id, path, sizeof(path), &in);
	cr_assert(path[0], "the sandbox is in no cgroup of its own");
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(buf, sizeof(buf), f), "%s", path);
	fclose(f);
	cr_assert(!strncmp(buf, "10000", 5), "%s: %s (want 10000 per 100000)", path, buf);
	/* a spin loop of 2 s of wall time gets at most ~0.2 s of CPU */
	double c0 = cpu_secs(in), w0 = test_now();
	free(ask(id, "spin 2\n", "spin ", &off, 20));
	double slow = cpu_secs(in) - c0, wall = test_now() - w0;
	cr_assert_lt(slow, 0.1 * wall + 0.15, "at 0.1 CPU the spin loop took %.2f s of CPU in %.2f s",
		     slow, wall);
	json_decref(patch(id, "{\"cpu\": 1}", 200));
	f = fopen(path, "r");
	cr_assert(f && fgets(buf, sizeof(buf), f), "%s", path);
	fclose(f);
	cr_assert(!strncmp(buf, "100000", 6), "%s: %s", path, buf);
	c0 = cpu_secs(in);
	free(ask(id, "spin 2\n", "spin ", &off, 20));
	double fast = cpu_secs(in) - c0, load = 0;
	/* more CPU time unthrottled -- unless the machine is so busy that the
	 * loop gets little anyway (other suites, emulated lanes on 2 cores);
	 * the cap above is checked always */
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = 0;
		fclose(f);
	}
	if (load < 2.0 * (double)sysconf(_SC_NPROCESSORS_ONLN))
		cr_assert_gt(fast, slow + 0.15, "the spin loop took %.2f s of CPU at 0.1 CPU, %.2f s at 1 CPU "
			     "(load %.1f)", slow, fast, load);
	else
		/* info, not warn: a Criterion warning makes the suite exit 1 */
		cr_log_info("load %.1f: the spin loop took %.2f s of CPU at 0.1 CPU, %.2f s at 1 CPU; "
			    "not compared", load, slow, fast);
}

Test(resize, refused_on_a_finished_sandbox)
{
	size_t off = 0;
	make_template(0);
	long id = start("");
	char t[96];
	struct http_response r;

	free(ask(id, "alloc 1\n", "alloc 1 ok", &off, 20));
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld/stdin", id);
	cr_assert_eq(req("POST", t, "quit\n", &r), 204);
	http_response__free(&r);
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
	for (double t0 = test_now(); test_now() - t0 < test_time(5); usleep(10000)) {
		json_t *j = req_json("GET", t, NULL, 200);
		bool done = !strcmp(json_string_value(json_object_get(j, "state")), "exited");
		json_decref(j);
		if (done)
			break;
	}
	char *e = patch_error(id, "{\"mem\": \"64M\"}", 409);
	cr_assert(strstr(e, "ended"), "%s", e);
	free(e);
}

Test(resize, cli_resize_verb)
{
	make_template(0);
	long id = start("");
	char ids[32];
	snprintf(ids, sizeof(ids), "%ld", id);
	const char *av[] = { "snapbox", "resize", "--server", SOCK, ids, "--mem", "48M", NULL };
	run_checked(av, NULL, 20, &R);
	cr_assert_eq(R.status, 0, "%s", R.err);
	cr_assert(strstr(R.out, "mem 48 MiB"), "%s", R.out);
	const char *bad[] = { "snapbox", "resize", "--server", SOCK, ids, "--mem", "16M", NULL };
	run_checked(bad, NULL, 20, &R);
	cr_assert_neq(R.status, 0);
	cr_assert(strstr(R.err, "below the template's RAM") && !strchr(strchr(R.err, '\n') + 1, '\n'),
		  "%s", R.err);
}
