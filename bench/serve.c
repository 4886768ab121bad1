/* SPDX-License-Identifier: MIT */
/*
 * The launcher service's cost: request -> response latency through
 * `snapbox serve` (HTTP over its Unix socket, a worker process per sandbox)
 * at 1, 8 and 64 concurrent clients, and clones/s at each level; then the
 * same figures for the in-process clone path without the service (a VM
 * shell created beforehand, as the pool does, then ck_clone_pooled), so the
 * service's overhead shows.  Every response is checked.
 * Usage: build/bench/serve [requests per level] (default 400; at least 64).
 * $SERVE_POOL sets the service's --pool (default 2).  Run from the
 * repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#include <jansson.h>
#include <spawn.h>

#include "launcher/client.h"

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"
#define TARGET "/v1/templates/lua/run?timeout=30"

extern char **environ;

static pid_t daemon_pid = -1;
static char sock[PATH_MAX + 32], store[PATH_MAX + 32];
static struct snapshot snap;
static struct ck_reaper rp;

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
}

static int daemon_start(const char *pool)
{
	const char *av[] = { ck_snapbox(), "serve", "--socket", sock, "--store", store, "--pool", pool,
			     "--log-level", "error", NULL };
	struct http_response r;
	struct sb_err err;

	if (posix_spawn(&daemon_pid, av[0], NULL, NULL, (char *const *)av, environ) != 0) {
		fprintf(stderr, "cannot start %s serve\n", av[0]);
		return -1;
	}
	for (int i = 0; i < 500; i++, usleep(20000)) {
		if (client__request(sock, "GET", "/v1/health", NULL, 0, 4096, 5, &r, &err) == 0) {
			http_response__free(&r);
			return 0;
		}
	}
	fprintf(stderr, "snapbox serve did not answer within 10 s\n");
	return -1;
}

/* ---- through the service -------------------------------------------------------- */

struct client {
	pthread_t th;
	int n;
	double *lat;
	double *pool;            /* the service's own timings_us.total, .clone, .run */
	int bad;
};

/* Checks the answer; its timings_us (total, clone, run) into t[3]. */
static bool answer_ok(const struct http_response *r, double *t)
{
	json_t *j = r->status == 200 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *out = json_string_value(json_object_get(j, "stdout"));
	json_t *tm = json_object_get(j, "timings_us");
	bool ok = out && !strcmp(out, WANT) && json_integer_value(json_object_get(j, "exit_code")) == 0;

	t[0] = (double)json_integer_value(json_object_get(tm, "total"));
	t[1] = (double)json_integer_value(json_object_get(tm, "clone"));
	t[2] = (double)json_integer_value(json_object_get(tm, "run"));

	json_decref(j);
	return ok;
}

static void *service_client(void *p)
{
	struct client *c = p;
	struct http_response r;
	struct sb_err err;

	for (int i = 0; i < c->n; i++) {
		double t0 = bench_now_us();
		int ret = client__request(sock, "POST", TARGET, REQ, strlen(REQ), 1 << 20, 60, &r, &err);

		c->lat[i] = bench_now_us() - t0;
		if (ret < 0 || !answer_ok(&r, c->pool ? c->pool + 3 * i : (double[3]){ 0 })) {
			if (c->bad++ == 0)
				fprintf(stderr, "bad answer: %s\n", ret < 0 ? err.msg : r.body);
		}
		if (ret == 0)
			http_response__free(&r);
	}
	return NULL;
}

/* ---- in process: a VM shell made beforehand, then the clone ------------------------ */

static void *inproc_client(void *p)
{
	struct client *c = p;

	for (int i = 0; i < c->n; i++) {
		struct sb_err err = { "" };
		struct vm *shell = calloc(1, sizeof(*shell));
		struct ck_clone cl;

		if (!shell || vm__create_shell(shell, snap.hdr.mem_size, &err) < 0) {
			fprintf(stderr, "vm__create_shell: %s\n", err.msg);
			free(shell);
			c->lat[i] = 0;
			c->bad++;
			continue;
		}
		if (ck_clone_pooled(&snap, REQ, &rp, shell, &cl) < 0 || cl.status != 0 ||
		    strcmp(cl.out, WANT))
			c->bad++;
		c->lat[i] = cl.b_us;
	}
	return NULL;
}

/* conc clients, total requests in all: latency stats and clones/s (wall). */
static int level(void *(*fn)(void *), int conc, int total, struct stats *s, double *rate, int *bad)
{
	struct client *c = calloc((size_t)conc, sizeof(*c));
	double *all = calloc((size_t)total, sizeof(double)), t0;
	int per = total / conc, n = 0;

	if (!c || !all)
		return -ENOMEM;
	*bad = 0;
	t0 = bench_now_us();
	for (int i = 0; i < conc; i++) {
		c[i].n = per;
		c[i].lat = all + (size_t)i * per;
		pthread_create(&c[i].th, NULL, fn, &c[i]);
	}
	for (int i = 0; i < conc; i++) {
		pthread_join(c[i].th, NULL);
		*bad += c[i].bad;
		n += c[i].n;
	}
	*rate = n / ((bench_now_us() - t0) / 1e6);
	bench_stats(all, n, s);
	free(all);
	free(c);
	return 0;
}

/* One client: where the time goes, from the service's own timings. */
static void breakdown(int n)
{
	struct client c = { .n = n, .lat = calloc((size_t)n, sizeof(double)),
			    .pool = calloc((size_t)n * 3, sizeof(double)) };
	double *v = calloc((size_t)n, sizeof(double));
	static const char *const what[3] = {
		"  in the service: pool__run total", "    clone (worker: load + map + restore)",
		"    run (resume to exit)" };
	struct stats s;

	if (!c.lat || !c.pool || !v)
		return;
	service_client(&c);
	bench_stats(c.lat, n, &s);
	bench_print("service, 1 client (breakdown run)", "us", &s);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < n; i++)
			v[i] = c.pool[3 * i + k];
		bench_stats(v, n, &s);
		bench_print(what[k], "us", &s);
	}
	free(v);
	free(c.lat);
	free(c.pool);
}

static const int levels[3] = { 1, 8, 64 };

static void report(const char *what, int conc, const struct stats *s, double rate, int bad)
{
	char label[96];

	snprintf(label, sizeof(label), "%s, %d client%s", what, conc, conc > 1 ? "s" : "");
	bench_print(label, "us", s);
	printf("%-44s %.0f clones/s%s\n", "", rate, bad ? " (WRONG ANSWERS)" : "");
	if (bad)
		printf("# %d wrong or failed responses\n", bad);
}

int main(int argc, char **argv)
{
	const char *pool = getenv("SERVE_POOL") && *getenv("SERVE_POOL") ? getenv("SERVE_POOL") : "2";
	int total = argc > 1 ? atoi(argv[1]) : 400, bad;
	struct stats svc[3], inp[3];
	double svc_rate[3], inp_rate[3];
	struct ck_spawn sp;

	if (total < 64)
		total = 64;
	ck_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (ck_tmpdir_create(NULL, "serve", daemon_stop) < 0)
		return 1;
	snprintf(store, sizeof(store), "%s/store", ck_tmpdir);
	snprintf(sock, sizeof(sock), "%s/snapbox.sock", ck_tmpdir);
	if (ck_template_create(store, "lua", NULL, (char *[]){ "/bin/lua", "/app/handler.lua", NULL },
			       false, &sp) < 0)
		return 1;
	printf("# request -> response for the Lua handler template ({\"n\": 30}), %d requests per level\n",
	       total);
	printf("# service: snapbox serve --pool %s --max-live 64, HTTP/1.1 over its Unix socket, one "
	       "connection per request\n", pool);
	if (daemon_start(pool) < 0)
		return 1;
	level(service_client, 1, 32, &svc[0], &svc_rate[0], &bad); /* warm up */
	breakdown(total);
	for (int i = 0; i < 3; i++) {
		level(service_client, levels[i], total / levels[i] * levels[i], &svc[i], &svc_rate[i], &bad);
		report("service", levels[i], &svc[i], svc_rate[i], bad);
	}
	daemon_stop();
	printf("# in process, no service: VM shell made beforehand (vm__create_shell, not timed),\n"
	       "# then map + restore + run + read the response (ck_clone_pooled); clones/s includes\n"
	       "# making the shells, as the service's pool does in the background\n");
	if (ck_load(store, "lua", &snap) < 0 || ck_reaper_start(&rp, 2, 1024) < 0)
		return 1;
	for (int i = 0; i < 3; i++) {
		level(inproc_client, levels[i], total / levels[i] * levels[i], &inp[i], &inp_rate[i], &bad);
		report("in process", levels[i], &inp[i], inp_rate[i], bad);
		ck_reaper_drain(&rp);
	}
	ck_reaper_stop(&rp);
	snapshot__close(&snap);
	printf("# the service's overhead (service - in process)\n");
	for (int i = 0; i < 3; i++)
		printf("%3d client%s: median %+8.1f us  p99 %+9.1f us  clones/s %.0f vs %.0f (%.2fx)\n",
		       levels[i], levels[i] > 1 ? "s" : " ", svc[i].median - inp[i].median,
		       svc[i].p99 - inp[i].p99, svc_rate[i], inp_rate[i],
		       inp_rate[i] > 0 ? svc_rate[i] / inp_rate[i] : 0);
	return 0;
}
