/* SPDX-License-Identifier: MIT */
/*
 * Live migration's cost: a long-lived sandbox of /bin/counter (64 MiB of
 * RAM; it dirties its 16 MiB array at a set rate and prints a counter)
 * moved back and forth between two `snapbox serve` on this host over TCP
 * loopback (POST /v1/sandboxes/{id}/migrate, downtime budget 20 ms), at
 * three dirty rates: idle (blocked reading stdin), ~10 MiB/s and ~100 MiB/s,
 * on each usable backend.  Per rate: downtime (pause -> the destination has
 * resumed it), total time, and bytes sent against the sandbox's private
 * memory (its own pages when it paused) and against its RAM -- the peer: a
 * migration that does not share the template (cloud-hypervisor's, QEMU's)
 * moves all of RAM; cloud-hypervisor publishes 50 ms for a local live
 * upgrade and a 300 ms default downtime budget.
 * Usage: build/bench/migrate [migrations per rate] (default 10).  Run from
 * the repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#include <jansson.h>
#include <spawn.h>

#include "launcher/client.h"

extern char **environ;

#define RAM_MIB 64

static char store[PATH_MAX], sock[2][PATH_MAX + 32], mig[2][64];
static pid_t pid[2] = { -1, -1 };

static void stop_all(void)
{
	for (int i = 0; i < 2; i++)
		if (pid[i] > 0) {
			kill(pid[i], SIGTERM);
			waitpid(pid[i], NULL, 0);
			pid[i] = -1;
		}
}

static int start(int i)
{
	const char *av[] = { ck_snapbox(), "serve", "--socket", sock[i], "--store", store,
			     "--listen-migration", mig[i], "--log-level", "error", NULL };
	struct http_response r;
	struct sb_err err;

	if (posix_spawn(&pid[i], av[0], NULL, NULL, (char *const *)av, environ) != 0)
		return -1;
	for (int k = 0; k < 500; k++, usleep(20000))
		if (client__request(sock[i], "GET", "/v1/health", NULL, 0, 4096, 5, &r, &err) == 0) {
			http_response__free(&r);
			return 0;
		}
	return -1;
}

static json_t *call(int i, const char *method, const char *target, const char *body, int want)
{
	struct http_response r;
	struct sb_err err = { "" };
	json_t *j;

	if (client__request(sock[i], method, target, body, body ? strlen(body) : 0, 1 << 20, 120, &r,
			    &err) < 0) {
		fprintf(stderr, "%s %s: %s\n", method, target, err.msg);
		return NULL;
	}
	if (r.status != want) {
		fprintf(stderr, "%s %s: HTTP %d: %s\n", method, target, r.status, r.body);
		http_response__free(&r);
		return NULL;
	}
	j = json_loadb(r.body ? r.body : "{}", r.len ? r.len : 2, 0, NULL);
	http_response__free(&r);
	return j ? j : json_object();
}

/* One figure of a rate's migrations: "<be> <label> <what>" median/p90/p99. */
static void print_row(const char *be, const char *label, const char *what, const char *unit,
		      double *v, int n)
{
	struct stats s;
	char l[128];

	snprintf(l, sizeof(l), "%s %-9s %s", be, label, what);
	bench_stats(v, n, &s);
	bench_print(l, unit, &s);
}

static int one_rate(const char *be, const char *label, const char *cmd, int n)
{
	double down[256], total[256], ratio[256], ram_ratio[256], kib[256], privk[256];
	char target[128], body[128];
	uint64_t id;
	int at = 0, ok = 0;
	json_t *j = call(0, "POST", "/v1/sandboxes", "{\"template\": \"ctr\"}", 201);

	if (!j)
		return -1;
	id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	if (cmd) {
		snprintf(target, sizeof(target), "/v1/sandboxes/%llu/stdin", (unsigned long long)id);
		j = call(0, "POST", target, cmd, 204);
		json_decref(j);
		usleep(300000); /* its array written once: a steady rate */
	}
	for (int k = 0; k < n; k++) {
		snprintf(target, sizeof(target), "/v1/sandboxes/%llu/migrate", (unsigned long long)id);
		snprintf(body, sizeof(body), "{\"to\": \"%s\", \"downtime_ms\": 20}", mig[!at]);
		j = call(at, "POST", target, body, 200);
		if (!j)
			break;
		down[ok] = json_number_value(json_object_get(j, "downtime_ms"));
		total[ok] = json_number_value(json_object_get(j, "total_ms"));
		double sent = (double)json_integer_value(json_object_get(j, "bytes_sent"));
		double priv = (double)json_integer_value(json_object_get(j, "private_pages")) * 4096;
		ratio[ok] = priv > 0 ? sent / priv : 0;
		kib[ok] = sent / 1024;
		privk[ok] = priv / 1024;
		ram_ratio[ok] = sent / (RAM_MIB << 20);
		ok++;
		json_decref(j);
		at = !at;
		usleep(50000);
	}
	snprintf(target, sizeof(target), "/v1/sandboxes/%llu", (unsigned long long)id);
	json_decref(call(at, "DELETE", target, NULL, 204));
	if (ok < n) {
		fprintf(stderr, "%s %s: %d of %d migrations\n", be, label, ok, n);
		return -1;
	}
	print_row(be, label, "downtime", "ms", down, ok);
	print_row(be, label, "total", "ms", total, ok);
	print_row(be, label, "sent", "KiB", kib, ok);
	print_row(be, label, "private memory", "KiB", privk, ok);
	print_row(be, label, "bytes sent / private memory", "x", ratio, ok);
	print_row(be, label, "bytes sent / RAM (full copy)", "x", ram_ratio, ok);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *label, *cmd;
	} rates[] = {
		{ "idle", NULL },
		/* 64 KiB every ~6 ms; 512 KiB every ~5 ms (plus the writing) */
		{ "10MiB/s", "dirty 100000000 64 6000\n" },
		{ "100MiB/s", "dirty 100000000 512 5000\n" },
	};
	const char *backends[] = { "kvm", "proc" };
	int n = argc > 1 ? atoi(argv[1]) : 10, ret = 0;
	char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	if (n < 2 || n > 256)
		n = 10;
	snprintf(store, sizeof(store), "%s/snapbox-bench-migrate-XXXXXX", tmp);
	if (!mkdtemp(store))
		return 1;
	for (int i = 0; i < 2; i++) {
		snprintf(sock[i], sizeof(sock[i]), "%s/%c.sock", store, 'a' + i);
		snprintf(mig[i], sizeof(mig[i]), "tcp:127.0.0.1:%d", 23000 + getpid() % 10000 + i);
	}
	printf("# live migration: /bin/counter, %d MiB RAM, A <-> B over TCP loopback, %d per rate\n",
	       RAM_MIB, n);
	for (size_t b = 0; b < 2; b++) {
		char *extra[] = { "--mem", "64M", "--backend", (char *)backends[b], NULL };
		char *prog[] = { "/bin/counter", NULL };
		struct ck_spawn r;

		char why[256];
		if (b == 0 && !backend__find("kvm")->available(why, sizeof(why))) {
			printf("# %s: not usable here, skipped\n", backends[b]);
			continue;
		}
		if (ck_template_create(store, "ctr", extra, prog, false, &r) < 0 || start(0) < 0 ||
		    start(1) < 0) {
			ret = 1;
			stop_all();
			break;
		}
		for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++)
			if (one_rate(backends[b], rates[k].label, rates[k].cmd, n) < 0)
				ret = 1;
		stop_all();
	}
	printf("# peer (published): cloud-hypervisor local live upgrade 50 ms; default downtime budget 300 ms\n");
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", store);
		if (system(cmd) != 0)
			ret = 1;
	}
	return ret;
}
