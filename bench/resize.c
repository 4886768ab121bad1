/* SPDX-License-Identifier: MIT */
/*
 * Resizing long-lived sandboxes (PATCH /v1/sandboxes/{id}, guest ABI 5):
 * the time of a grow (24 MiB -> 152 MiB: the first, which sets the hot
 * window up, and one after a shrink) and of a shrink back (the guest
 * woken from its stdin read, vacating the memory added and answering), as
 * the client of `snapbox serve` sees them, and the sandbox's resident memory
 * before and after: after the guest used 64 MiB of the memory added and
 * freed it (free-page reporting off), then after the shrink; and with
 * free-page reporting on, after the free alone.  The peer: starting a new
 * sandbox (POST /v1/sandboxes, a clone from the pool), what a service
 * without hotplug would do to get a sandbox of another size.
 * Per backend usable here (kvm, proc), on /bin/memhog.
 * Usage: build/bench/resize [rounds] (default 20).  Run from the
 * repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#include <jansson.h>
#include <spawn.h>

#include "launcher/client.h"

extern char **environ;

static pid_t daemon_pid = -1;
static char sock[PATH_MAX + 32], store[PATH_MAX + 32];

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
}

static int daemon_start(void)
{
	const char *av[] = { ck_snapbox(), "serve", "--socket", sock, "--store", store,
			     "--log-level", "error", NULL };
	struct http_response r;
	struct sb_err err;

	if (posix_spawn(&daemon_pid, av[0], NULL, NULL, (char *const *)av, environ) != 0)
		return -1;
	for (int i = 0; i < 500; i++, usleep(20000)) {
		if (client__request(sock, "GET", "/v1/health", NULL, 0, 4096, 5, &r, &err) == 0) {
			http_response__free(&r);
			return 0;
		}
	}
	return -1;
}

/* One request: its status, *j its JSON (or NULL), *us its time. */
static int call(const char *method, const char *target, const char *body, json_t **j, double *us)
{
	struct http_response r;
	struct sb_err err;
	double t0 = bench_now_us();
	int ret = client__request(sock, method, target, body, body ? strlen(body) : 0, 1 << 20, 30, &r,
				  &err);

	if (us)
		*us = bench_now_us() - t0;
	if (ret < 0)
		return ret;
	if (j)
		*j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	ret = r.status;
	http_response__free(&r);
	return ret;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The worker of sandbox id and its children (kvm: the worker holds guest
 * RAM; proc: the sandbox process does). */
static double sandbox_rss_mib(long id)
{
	json_t *j = NULL, *v;
	size_t i;
	pid_t w = 0;
	long kb = 0;
	char path[64];
	FILE *f;
	int c;

	call("GET", "/v1/sandboxes", NULL, &j, NULL);
	json_array_foreach(json_object_get(j, "sandboxes"), i, v)
		if (json_integer_value(json_object_get(v, "id")) == id)
			w = (pid_t)json_integer_value(json_object_get(v, "pid"));
	json_decref(j);
	if (w <= 0)
		return -1;
	kb = rss_kb(w);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", w, w);
	f = fopen(path, "r");
	while (f && fscanf(f, "%d", &c) == 1)
		kb += rss_kb(c);
	if (f)
		fclose(f);
	return kb / 1024.0;
}

/* Send cmd; wait for its answer line (after *off bytes of stdout). */
static int ask(long id, const char *cmd, const char *want, size_t *off)
{
	char t[96];
	json_t *j = NULL;

	snprintf(t, sizeof(t), "/v1/sandboxes/%ld/stdin", id);
	if (call("POST", t, cmd, NULL, NULL) != 204)
		return -1;
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld?stdout_offset=%zu", id, *off);
	for (int i = 0; i < 6000; i++, usleep(2000)) {
		if (call("GET", t, NULL, &j, NULL) != 200)
			return -1;
		const char *out = json_string_value(json_object_get(j, "stdout"));
		const char *nl = out ? strchr(out, '\n') : NULL;
		if (nl) {
			int ok = !strncmp(out, want, strlen(want));
			if (!ok)
				fprintf(stderr, "%s -> %.*s\n", cmd, (int)(nl - out), out);
			*off += (size_t)(nl - out) + 1;
			json_decref(j);
			return ok ? 0 : -1;
		}
		json_decref(j);
	}
	return -1;
}

static long start(bool report, double *us)
{
	json_t *j = NULL;
	long id = -1;

	if (call("POST", "/v1/sandboxes", report ? "{\"template\": \"mh\"}"
			: "{\"template\": \"mh\", \"free_page_reporting\": false}", &j, us) == 201)
		id = (long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	return id;
}

static void release(long id)
{
	char t[64];
	snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
	call("DELETE", t, NULL, NULL, NULL);
}

static int bench_backend(const char *backend, int rounds)
{
	char *extra[] = { "--backend", (char *)backend, "--mem", "24M", NULL };
	char *prog[] = { "/bin/memhog", NULL };
	struct ck_spawn cs;
	double *grow = calloc((size_t)rounds, sizeof(double)), *shrink = calloc((size_t)rounds, sizeof(double));
	double *post = calloc((size_t)rounds, sizeof(double)), *r_used = calloc((size_t)rounds, sizeof(double));
	double *r_freed = calloc((size_t)rounds, sizeof(double)), *r_shrunk = calloc((size_t)rounds, sizeof(double));
	double *r_rep = calloc((size_t)rounds, sizeof(double)), *r_base = calloc((size_t)rounds, sizeof(double));
	double *regrow = calloc((size_t)rounds, sizeof(double));
	struct stats s;
	int n = 0;

	if (ck_template_create(store, "mh", extra, prog, false, &cs) < 0 || daemon_start() < 0)
		return -1;
	for (int i = 0; i < rounds; i++) {
		char t[64];
		size_t off = 0;
		json_t *j = NULL;
		long id = start(false, &post[n]);

		if (id < 0)
			break;
		snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
		r_base[n] = sandbox_rss_mib(id);
		if (call("PATCH", t, "{\"mem\": \"152M\"}", NULL, &grow[n]) != 200 ||
		    ask(id, "alloc 64\n", "alloc 64 ok", &off) < 0)
			break;
		r_used[n] = sandbox_rss_mib(id);
		if (ask(id, "free\n", "free ok", &off) < 0)
			break;
		r_freed[n] = sandbox_rss_mib(id);
		if (call("PATCH", t, "{\"mem\": \"24M\"}", &j, &shrink[n]) != 200)
			break;
		json_decref(j);
		r_shrunk[n] = sandbox_rss_mib(id);
		if (call("PATCH", t, "{\"mem\": \"152M\"}", NULL, &regrow[n]) != 200)
			break;
		release(id);
		/* free-page reporting on: the free alone gives it back */
		off = 0;
		id = start(true, NULL);
		snprintf(t, sizeof(t), "/v1/sandboxes/%ld", id);
		if (id < 0 || call("PATCH", t, "{\"mem\": \"152M\"}", NULL, NULL) != 200 ||
		    ask(id, "alloc 64\n", "alloc 64 ok", &off) < 0 || ask(id, "free\n", "free ok", &off) < 0)
			break;
		r_rep[n] = sandbox_rss_mib(id);
		release(id);
		n++;
	}
	daemon_stop();
	if (n < rounds) {
		fprintf(stderr, "%s: round %d failed\n", backend, n);
		return -1;
	}
	printf("# %s: template 24 MiB (memhog), grown to 152 MiB, 64 MiB used and freed, %d rounds\n",
	       backend, n);
	bench_stats(grow, n, &s);
	bench_print("first grow 24 -> 152 MiB (PATCH, client side)", "us", &s);
	bench_stats(regrow, n, &s);
	bench_print("grow again 24 -> 152 MiB (after a shrink)", "us", &s);
	bench_stats(shrink, n, &s);
	bench_print("shrink 152 -> 24 MiB (PATCH: guest woken, vacates, acks)", "us", &s);
	bench_stats(post, n, &s);
	bench_print("peer: a new sandbox (POST /v1/sandboxes)", "us", &s);
	bench_stats(r_base, n, &s);
	bench_print("RSS at start", "MiB", &s);
	bench_stats(r_used, n, &s);
	bench_print("RSS with 64 MiB used", "MiB", &s);
	bench_stats(r_freed, n, &s);
	bench_print("RSS after the free (reporting off)", "MiB", &s);
	bench_stats(r_shrunk, n, &s);
	bench_print("RSS after the shrink", "MiB", &s);
	bench_stats(r_rep, n, &s);
	bench_print("RSS after the free (reporting on)", "MiB", &s);
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20, ret = 0;
	char tmpl[] = "/tmp/snapbox-bench-resize-XXXXXX";

	if (rounds < 1 || !mkdtemp(tmpl))
		return 1;
	snprintf(store, sizeof(store), "%s", tmpl);
	snprintf(sock, sizeof(sock), "%s/s.sock", tmpl);
	/* the service decides what runs; kvm where /dev/kvm is usable */
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		if (bench_backend("kvm", rounds) < 0)
			ret = 1;
	} else {
		printf("# kvm: /dev/kvm is not usable here\n");
	}
	if (bench_backend("proc", rounds) < 0)
		ret = 1;
	ck_rmtree(tmpl);
	return ret;
}
