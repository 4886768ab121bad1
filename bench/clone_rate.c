/* SPDX-License-Identifier: MIT */
/*
 * Clone throughput: W worker threads (default 2 = the cores here) each loop
 * { clone the Lua-handler template, hand it a request, run it to exit, read
 * the response } for D seconds; finished VMs go to background reaper
 * threads (vm__destroy).  Prints clones/s over the window (counted when the
 * response is complete) and the per-clone latency under that load; the
 * reaper backlog left at the end is reported (and drained after the clock
 * stops).
 * Usage: build/bench/clone_rate [seconds] [workers] [reapers]  (8, 2, 2).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#include <stdatomic.h>

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"
#define MAXLAT 200000

static char *const store = ck_tmpdir;
static struct snapshot snap;
static struct ck_reaper rp;
static atomic_bool go, stop;
static double t_end;

struct worker {
	pthread_t th;
	long done, bad, failed;
	double *lat;
	long nlat;
	double exits, inrun;
};

static void *work(void *p)
{
	struct worker *w = p;
	struct ck_clone c;

	while (!atomic_load(&go))
		usleep(100);
	while (!atomic_load(&stop)) {
		if (ck_clone_once(&snap, REQ, &rp, true, NULL, &c) < 0) {
			if (++w->failed > 10)
				break;
			continue;
		}
		if (bench_now_us() > t_end)
			break; /* finished after the window: not counted */
		if (c.status != 0 || strcmp(c.out, WANT))
			w->bad++;
		w->done++;
		w->exits += c.exits;
		w->inrun += c.in_kvm_run_us;
		if (w->nlat < MAXLAT)
			w->lat[w->nlat++] = c.b_us;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 8;
	int nw = argc > 2 ? atoi(argv[2]) : 2;
	int nr = argc > 3 ? atoi(argv[3]) : 2;
	struct worker w[16];
	struct ck_spawn sp;

	if (secs <= 0 || secs > 60)
		secs = 8;
	if (nw < 1 || nw > 16)
		nw = 2;
	if (nr < 1 || nr > 32)
		nr = 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_raise_nofile();
	if (ck_tmpdir_create(NULL, "rate", NULL) < 0)
		return 1;
	char *prog[] = { "/bin/lua", "/app/handler.lua", NULL };
	printf("# clone rate: %d workers x {clone + Lua handler + response}, %d reaper threads, "
	       "%.0f s, %ld cores\n", nw, nr, secs, sysconf(_SC_NPROCESSORS_ONLN));
	if (ck_template_create(store, "h", NULL, prog, false, &sp) < 0 || ck_load(store, "h", &snap) < 0)
		return 1;
	if (ck_reaper_start(&rp, nr, 1 << 16) < 0)
		return 1;
	{ /* warm-up */
		struct ck_clone c;
		for (int i = 0; i < 10; i++)
			if (ck_clone_once(&snap, REQ, &rp, true, NULL, &c) < 0)
				return 1;
		ck_reaper_drain(&rp);
	}
	memset(w, 0, sizeof(w));
	for (int i = 0; i < nw; i++) {
		w[i].lat = calloc(MAXLAT, sizeof(double));
		if (!w[i].lat || pthread_create(&w[i].th, NULL, work, &w[i])) {
			fprintf(stderr, "worker %d: cannot start\n", i);
			return 1;
		}
	}
	uint64_t destroyed0 = rp.destroyed;
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	double t0 = bench_now_us();
	t_end = t0 + secs * 1e6;
	atomic_store(&go, true);
	while (bench_now_us() < t_end)
		usleep(10000);
	size_t backlog = ck_reaper_backlog(&rp);
	getrusage(RUSAGE_SELF, &ru1);
	pthread_mutex_lock(&rp.mu);
	uint64_t destroyed = rp.destroyed - destroyed0;
	pthread_mutex_unlock(&rp.mu);
	atomic_store(&stop, true);
	for (int i = 0; i < nw; i++)
		pthread_join(w[i].th, NULL);
	double td = bench_now_us();
	ck_reaper_drain(&rp);
	double drain_ms = (bench_now_us() - td) / 1e3;

	long done = 0, bad = 0, failed = 0, nl = 0;
	double exits = 0, inrun = 0;
	for (int i = 0; i < nw; i++) {
		done += w[i].done, bad += w[i].bad, failed += w[i].failed;
		exits += w[i].exits, inrun += w[i].inrun;
	}
	double *all = calloc(done + 1, sizeof(double));
	for (int i = 0; i < nw && all; i++) {
		memcpy(all + nl, w[i].lat, w[i].nlat * sizeof(double));
		nl += w[i].nlat;
	}
	double rate = done / secs;
	printf("clones completed in %.0f s: %ld (%ld wrong responses, %ld failures)\n", secs, done, bad,
	       failed);
	printf("clone rate: %.0f clones/s (target >= 1000/s: %s)\n", rate,
	       rate >= 1000 ? "met" : "MISSED");
	printf("per worker: %.0f clones/s; mean time inside KVM_RUN per clone %.0f us over %.1f exits\n",
	       rate / nw, done ? inrun / done : 0, done ? exits / done : 0);
	printf("reapers destroyed %llu VMs in the window (%.0f/s, mean vm__destroy %.1f ms); backlog at "
	       "the end %zu, drained in %.0f ms after the clock stopped\n",
	       (unsigned long long)destroyed, destroyed / secs,
	       rp.destroyed ? rp.destroy_us_sum / rp.destroyed / 1e3 : 0.0, backlog, drain_ms);
#define TV(t) ((t).tv_sec * 1e6 + (t).tv_usec)
	double cpu_user = TV(ru1.ru_utime) - TV(ru0.ru_utime), cpu_sys = TV(ru1.ru_stime) - TV(ru0.ru_stime);
	printf("CPU of this process in the window: %.2f s user + %.2f s sys = %.0f%% of %ld cores; per "
	       "completed clone %.2f ms (incl. teardown; reaper CPU per vm__destroy %.2f ms)\n",
	       cpu_user / 1e6, cpu_sys / 1e6, (cpu_user + cpu_sys) / (secs * 1e6) * 100 /
	       sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_NPROCESSORS_ONLN),
	       done ? (cpu_user + cpu_sys) / done / 1e3 : 0.0,
	       rp.destroyed ? rp.destroy_cpu_us_sum / rp.destroyed / 1e3 : 0.0);
	if (nl && all) {
		struct stats s;
		bench_stats(all, (int)nl, &s);
		bench_print("latency under load: request -> response", "us", &s);
	}
	ck_reaper_stop(&rp);
	snapshot__close(&snap);
	return 0;
}
