/* SPDX-License-Identifier: MIT */
/*
 * Recycled sandboxes (machine__reset) against fresh clones, for one backend
 * (--backend kvm|proc; default kvm where /dev/kvm is usable, else proc),
 * in-process through backend/backend.h as the pool's worker uses it:
 *
 *  1. the Lua handler template (/bin/lua /app/handler.lua, 256 MiB),
 *     request {"n": 30}, interleaved rounds of
 *       - fresh from a shell: the shell (machine__new RAM_RESERVED) made
 *         before the clock starts; clone_into, hypercall__complete_pending,
 *         run() until it returns (the response is written, the program has
 *         exited); the machine is torn down by a background thread;
 *       - recycled: the same request on one machine that is reset after
 *         each: complete_pending + run, then machine__reset timed apart;
 *       - the peer: a warm fork of Debian's lua5.4 that ran the handler's
 *         set-up (bench/warmfork.h): request -> response;
 *  2. the reset alone against the number of pages the guest wrote:
 *     /bin/secret's `dirty N` (one word in each of N fresh pages) on a
 *     recycled machine per N: reset time, its scan and copy parts;
 *  3. kvm only, the alternative to the pagemap: KVM's dirty log
 *     (KVM_MEM_LOG_DIRTY_PAGES on the memory slot, KVM_GET_DIRTY_LOG after
 *     each request), against the pagemap scan, per reset and per request
 *     (the dirty log write-protects what it reports: the next request's
 *     first write to each such page faults), for `dirty N` and for
 *     /bin/cat given 60 KB (its buffer is written only by us, serving its
 *     read: pages the dirty log never sees).
 *
 *  4. requests per second on this machine's cores, the Lua handler:
 *     - in-process machines: T threads, each with a recycled machine of its
 *       own (complete_pending + run + reset, back to back);
 *     - through the pool (pool__run, the service's in-process API, what
 *       `snapbox serve` calls per request): T client threads, recycling on
 *       and off, each run checked;
 *     - the warm fork peer, T threads asking it for forks.
 *
 * Prints median / p90 / p99 (bench/common.c); never asserts.
 * Usage: build/bench/recycle [--backend kvm|proc] [rounds] [reset rounds]
 * (200, 40).  Run from the repository root; SNAPBOX=path overrides
 * build/snapbox.
 */
#include "common.h"
#include "clonekit.h"
#include "warmfork.h"

#include "backend/backend.h"
#include "launcher/pool.h"

#include <sys/mman.h>
#include "backend/proc/proc.h"
#include "memory/written.h"


static const struct backend *be;

/* ---- a reaper for machines (teardown off the measured path) ----------------- */

#include "reaper.h"

/* ---- one request ---------------------------------------------------------------- */

struct req {
	int in[2], out[2];
};

/* stdin: a memfd holding the request (as the service hands it); stdout: a
 * pipe.  (q->in[1] unused.) */
static int req_open(struct machine *m, struct req *q, const char *in)
{
	q->in[0] = memfd_create("bench-request", MFD_CLOEXEC);
	if (q->in[0] < 0 || pipe2(q->out, O_CLOEXEC))
		return -errno;
	if (write(q->in[0], in, strlen(in)) != (ssize_t)strlen(in) || lseek(q->in[0], 0, SEEK_SET))
		return -EIO;
	m->hc.stdin_fd = q->in[0];
	m->hc.stdout_fd = q->out[1];
	m->hc.stderr_fd = 2;
	m->hc.trace_fd = 2;
	m->hc.program = "bench";
	return 0;
}

/* The output (at most len - 1 bytes), pipes closed. */
static void req_close(struct req *q, char *out, size_t len)
{
	ssize_t n;

	close(q->out[1]);
	n = read(q->out[0], out, len - 1);
	out[n > 0 ? n : 0] = 0;
	while (n > 0) /* the rest, unread (cat's echo) */
		n = read(q->out[0], (char[4096]){ 0 }, 4096);
	close(q->in[0]);
	close(q->out[0]);
}

/* complete_pending + run: run()'s result (the program's exit status). */
static int req_run(struct machine *m, struct sb_err *err)
{
	int ret = timeout__start(&m->timeout, 30000000000ULL, err);

	if (ret == 0)
		ret = hypercall__complete_pending(&m->hc, err);
	if (ret == HC_CONTINUE)
		ret = m->be->run(m, err);
	timeout__stop(&m->timeout);
	return ret;
}

static struct machine *shell_new(uint64_t mem)
{
	struct sb_err err = { "" };
	struct machine *m = machine__new(be, mem, RAM_RESERVED, &err);

	if (!m)
		fprintf(stderr, "shell: %s\n", err.msg);
	return m;
}

static struct machine *clone_new(const struct snapshot *snap)
{
	struct sb_err err = { "" };
	struct machine_opts o = { .recycle = true };
	struct machine *m = machine__new_clone_opts(be, snap, &o, &err);

	if (!m)
		fprintf(stderr, "clone: %s\n", err.msg);
	return m;
}

/* A request on a machine that is recycled right after: run and reset times. */
static int recycled(struct machine *m, const struct snapshot *snap, const char *in,
		    const char *want, double *run_us, struct reset_stats *st)
{
	struct sb_err err = { "" };
	struct req q;
	char out[256];
	double t0;
	int ret;

	if (req_open(m, &q, in) < 0)
		return -1;
	t0 = bench_now_us();
	ret = req_run(m, &err);
	*run_us = bench_now_us() - t0;
	req_close(&q, out, sizeof(out));
	if (ret != 0 || (want && strcmp(out, want))) {
		fprintf(stderr, "recycled [%s]: status %d (%s): %s\n", in, ret, err.msg, out);
		return -1;
	}
	if (machine__reset(m, snap, st, &err) < 0) {
		fprintf(stderr, "reset: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* ---- 1. latency: fresh from a shell vs recycled -------------------------------- */

static void latency(const struct snapshot *lua, int n)
{
	double *fr = calloc(n, 8), *frun = calloc(n, 8), *rc = calloc(n, 8), *rs = calloc(n, 8),
	       *rt = calloc(n, 8), *pg = calloc(n, 8), *sc = calloc(n, 8), *cp = calloc(n, 8),
	       *wf = calloc(n, 8);
	int nwf = 0;
	struct machine *m = clone_new(lua);
	int k = 0, bad = 0;

	if (!m || !fr || !frun || !rc || !rs || !rt || !pg || !sc || !cp)
		return;
	for (int i = -10; i < n; i++) { /* 10 warm-up rounds */
		struct machine *s = shell_new(lua->hdr.mem_size);
		struct sb_err err = { "" };
		struct reset_stats st;
		struct req q;
		char out[256];
		double t0, t1, t2, run_us;
		int ret;

		if (!s || req_open(s, &q, REQ) < 0)
			return;
		t0 = bench_now_us();
		ret = s->be->clone_into(s, lua, &err);
		t1 = bench_now_us();
		if (ret == 0)
			ret = req_run(s, &err);
		t2 = bench_now_us();
		req_close(&q, out, sizeof(out));
		reap(s);
		if (ret != 0 || strcmp(out, WANT)) {
			fprintf(stderr, "fresh: status %d (%s): %s\n", ret, err.msg, out);
			bad++;
			continue;
		}
		if (recycled(m, lua, REQ, WANT, &run_us, &st) < 0) {
			bad++;
			break;
		}
		double w_resp, w_eof;
		bool w_ok = zy_ctl >= 0 && warm_fork(&w_resp, &w_eof) == 0;
		if (i < 0)
			continue;
		if (w_ok)
			wf[nwf++] = w_resp;
		fr[k] = t2 - t0;
		frun[k] = t2 - t1;
		rc[k] = run_us;
		rs[k] = st.total_us;
		rt[k] = run_us + st.total_us;
		pg[k] = (double)st.pages;
		sc[k] = st.scan_us;
		cp[k] = st.copy_us;
		k++;
	}
	reap(m);
	struct stats s;
	printf("\n## 1. request -> response (run() returned: response written, program exited), "
	       "Lua handler %s, %d interleaved rounds%s\n", REQ, k, bad ? " (some failed)" : "");
	double med_fr, med_rc, med_rt;
	bench_stats(fr, k, &s), med_fr = s.median;
	bench_print("fresh from a shell: clone_into + run", "us", &s);
	bench_stats(frun, k, &s);
	bench_print("  of which run (complete_pending + run)", "us", &s);
	bench_stats(rc, k, &s), med_rc = s.median;
	bench_print("recycled: run (complete_pending + run)", "us", &s);
	bench_stats(rs, k, &s);
	bench_print("  reset after it (machine__reset)", "us", &s);
	bench_stats(sc, k, &s);
	bench_print("    finding the written pages", "us", &s);
	bench_stats(cp, k, &s);
	bench_print("    copying them back", "us", &s);
	bench_stats(pg, k, &s);
	bench_print("    pages put back", "", &s);
	if (nwf) {
		bench_stats(wf, nwf, &s);
		bench_print("warm fork of lua5.4: request -> response", "us", &s);
		printf("# recycled %s request -> response is %.2fx faster than the warm fork's\n",
		       be->name, s.median / med_rc);
	}
	bench_stats(rt, k, &s), med_rt = s.median;
	bench_print("recycled: run + reset (worker time per request)", "us", &s);
	printf("recycled request -> response is %.2fx faster than a fresh clone's (medians); "
	       "with the reset %.2fx\n", med_fr / med_rc, med_fr / med_rt);
	free(fr), free(frun), free(rc), free(rs), free(rt), free(pg), free(sc), free(cp);
}

/* ---- 2. reset cost against pages written ----------------------------------------- */

static void reset_vs_pages(const struct snapshot *sec, int n)
{
	static const unsigned long sizes[] = { 1, 16, 64, 256, 1024, 4096, 16384 };
	double *rt = calloc(n, 8), *sc = calloc(n, 8), *cp = calloc(n, 8), *pg = calloc(n, 8),
	       *ru = calloc(n, 8), *rg = calloc(n, 8);

	printf("\n## 2. reset against pages written: /bin/secret `dirty N` on one recycled machine "
	       "per N, %d rounds each (medians; run = the request itself)\n", n);
	printf("%8s %8s %7s %10s %10s %10s %12s %10s\n", "N", "pages", "ranges", "scan us",
	       "copy us", "reset us", "copy us/page", "run us");
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		struct machine *m = clone_new(sec);
		char in[64], want[64];
		int k = 0;

		if (!m)
			return;
		snprintf(in, sizeof(in), "dirty %lu", sizes[z]);
		snprintf(want, sizeof(want), "dirty %lu\n", sizes[z]);
		for (int i = -3; i < n; i++) {
			struct reset_stats st;
			double run_us;
			if (recycled(m, sec, in, want, &run_us, &st) < 0)
				break;
			if (i < 0)
				continue;
			rt[k] = st.total_us, sc[k] = st.scan_us, cp[k] = st.copy_us;
			pg[k] = (double)st.pages, ru[k] = run_us, rg[k] = (double)st.ranges;
			k++;
		}
		reap(m);
		if (!k)
			continue;
		struct stats a, b, c, d, e, f;
		bench_stats(pg, k, &a), bench_stats(sc, k, &b), bench_stats(cp, k, &c);
		bench_stats(rt, k, &d), bench_stats(ru, k, &e), bench_stats(rg, k, &f);
		printf("%8lu %8.0f %7.0f %10.1f %10.1f %10.1f %12.3f %10.1f\n", sizes[z], a.median,
		       f.median, b.median, c.median, d.median, c.median / a.median, e.median);
	}
	free(rt), free(sc), free(cp), free(pg), free(ru), free(rg);
}

/* ---- 3. kvm: dirty log against the pagemap ---------------------------------------- */

static int slot_flags(struct vm *vm, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0, .flags = flags, .guest_phys_addr = 0,
		.memory_size = vm->m.ram.size,
		.userspace_addr = (uint64_t)(uintptr_t)vm->m.ram.host,
	};
	return kvm__ioctl_raw(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

/* One row: `in` on two recycled machines of snap, one with its memory slot
 * dirty-logged. */
static void dirty_log_row(const struct snapshot *sec, const char *label, const char *in,
			  const char *want, int n)
{
	size_t bits = sec->hdr.mem_size / 4096;
	uint64_t *bitmap = calloc(bits / 64 + 1, 8);
	double *prun = calloc(n, 8), *drun = calloc(n, 8), *get = calloc(n, 8), *scan = calloc(n, 8),
	       *dpg = calloc(n, 8), *ppg = calloc(n, 8), *missed = calloc(n, 8);
	struct written_scan ws;
	struct sb_err err = { "" };

	if (written__open(&ws, 0, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	{
		struct machine *p = clone_new(sec), *d = clone_new(sec);
		int k = 0;

		if (!p || !d)
			return;
		if (slot_flags(vm__of(d), KVM_MEM_LOG_DIRTY_PAGES) < 0) {
			printf("KVM_MEM_LOG_DIRTY_PAGES refused here\n");
			return;
		}
		for (int i = -3; i < n; i++) {
			struct reset_stats st;
			struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
			double run_p, run_d, t0, t1;
			uint64_t hosts = 0, dp = 0;
			int ret;

			if (recycled(p, sec, in, want, &run_p, &st) < 0)
				break;
			/* the dirty-logged machine: its run, then the log (which
			 * write-protects what it reports), then the pagemap
			 * for comparison, then the reset as usual */
			struct req q;
			char out[256];
			if (req_open(d, &q, in) < 0)
				break;
			t0 = bench_now_us();
			ret = req_run(d, &err);
			run_d = bench_now_us() - t0;
			req_close(&q, out, sizeof(out));
			if (want && strcmp(out, want))
				break;
			t0 = bench_now_us();
			if (ret != 0 || kvm__ioctl_raw(vm__of(d)->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
				break;
			t1 = bench_now_us();
			uint64_t lo = (uint64_t)(uintptr_t)d->ram.host;
			double s0 = bench_now_us();
			if (written__scan(&ws, lo, lo + d->ram.size, &err) < 0)
				break;
			double s1 = bench_now_us();
			/* pages the pagemap lists and the log does not: written by us
			 * for the guest (stdin, MEMSET, RANDOM ...), or written in an
			 * earlier request (a page copied back stays ours) */
			for (size_t b = 0; b < bits / 64; b++)
				dp += (uint64_t)__builtin_popcountll(bitmap[b]);
			for (size_t r = 0; r < ws.n; r++)
				for (uint64_t a = ws.r[r].start; a < ws.r[r].end; a += 4096) {
					uint64_t g = (a - lo) / 4096;
					hosts += !(bitmap[g / 64] >> (g % 64) & 1);
				}
			if (machine__reset(d, sec, &st, &err) < 0)
				break;
			if (i < 0)
				continue;
			prun[k] = run_p, drun[k] = run_d, get[k] = t1 - t0, scan[k] = s1 - s0;
			dpg[k] = (double)dp, ppg[k] = (double)st.pages, missed[k] = (double)hosts;
			k++;
		}
		reap(p);
		reap(d);
		if (!k) {
			fprintf(stderr, "dirty log [%s]: %s\n", label, err.msg);
			return;
		}
		struct stats a, b, c, e, f, g, h;
		bench_stats(prun, k, &a), bench_stats(drun, k, &b), bench_stats(get, k, &c);
		bench_stats(scan, k, &e), bench_stats(dpg, k, &f), bench_stats(ppg, k, &g);
		bench_stats(missed, k, &h);
		printf("%-14s %11.1f us %11.1f us %13.2f %9.1f us %9.1f us %12.0f %8.0f (%.0f not in the "
		       "log)\n", label, a.median, b.median, (b.median - a.median) / f.median, c.median,
		       e.median, f.median, g.median, h.median);
	}
	written__close(&ws);
	free(bitmap), free(prun), free(drun), free(get), free(scan), free(dpg), free(ppg),
		free(missed);
}

static void dirty_log(const struct snapshot *sec, const struct snapshot *cat, int n)
{
	static const unsigned long sizes[] = { 16, 256, 4096 };
	static char big[60001];
	char in[64], want[64], label[64];

	printf("\n## 3. kvm: the dirty log (KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG) against "
	       "the pagemap, %d interleaved rounds (medians)\n", n);
	printf("%-14s %14s %14s %13s %12s %12s %12s %14s\n", "request", "run: pagemap",
	       "run: dirty log", "fault us/page", "GET_DIRTY_LOG", "pagemap scan", "dirty pages",
	       "pagemap pages");
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		snprintf(in, sizeof(in), "dirty %lu", sizes[z]);
		snprintf(want, sizeof(want), "dirty %lu\n", sizes[z]);
		snprintf(label, sizeof(label), "dirty %lu", sizes[z]);
		dirty_log_row(sec, label, in, want, n);
	}
	/* /bin/cat reads its stdin into a 64 KiB static buffer that only we
	 * write (the READ hypercall): the log never sees those pages */
	memset(big, 'r', sizeof(big) - 1);
	dirty_log_row(cat, "cat, 60 KB in", big, NULL, n);
}

/* ---- 4. requests per second ------------------------------------------------------ */

struct tp {
	const struct snapshot *snap;  /* in-process machines */
	struct pool *pool;            /* or the pool, with this template */
	const char *tdir;
	bool recycle;
	double until;                 /* bench_now_us() deadline */
	long done, bad;
	double *lat;                  /* per request, us */
	long cap;
};

static void *tp_machine(void *arg)
{
	struct tp *t = arg;
	struct machine *m = clone_new(t->snap);
	struct reset_stats st;
	double run_us;

	if (!m)
		return NULL;
	while (bench_now_us() < t->until) {
		if (recycled(m, t->snap, REQ, WANT, &run_us, &st) < 0) {
			t->bad++;
			break;
		}
		if (t->done < t->cap)
			t->lat[t->done] = run_us; /* request -> response; the reset follows */
		t->done++;
	}
	reap(m);
	return NULL;
}

static void *tp_pool(void *arg)
{
	struct tp *t = arg;
	struct sandbox_limits lim = { .timeout_ns = 30000000000ULL,
				      .recycle = { t->recycle, 0, 0 } };

	while (bench_now_us() < t->until) {
		struct sandbox_result r;
		struct sb_err err = { "" };
		double t0 = bench_now_us();

		if (pool__run(t->pool, "lua", t->tdir, REQ, strlen(REQ), &lim, &r, &err) < 0 ||
		    r.status || strcmp(r.out, WANT))
			t->bad++;
		else if (t->done < t->cap)
			t->lat[t->done] = bench_now_us() - t0;
		t->done++;
		sandbox_result__free(&r);
	}
	return NULL;
}

/* T threads for secs seconds (after a warm-up of secs / 4): requests/s and
 * the per-request latency over all of them. */
static void rate(const char *label, struct tp *proto, int threads, double secs,
		 void *(*fn)(void *))
{
	struct tp t[16];
	pthread_t th[16];
	long done = 0, bad = 0, nl = 0;
	double *all, t0;

	for (int warm = 1; warm >= 0; warm--) {
		double d = warm ? secs / 4 : secs;
		t0 = bench_now_us();
		for (int i = 0; i < threads; i++) {
			t[i] = *proto;
			t[i].cap = 200000;
			t[i].lat = calloc((size_t)t[i].cap, sizeof(double));
			t[i].until = t0 + d * 1e6;
			pthread_create(&th[i], NULL, fn, &t[i]);
		}
		for (int i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		if (warm)
			for (int i = 0; i < threads; i++)
				free(t[i].lat);
	}
	double el = (bench_now_us() - t0) / 1e6;
	for (int i = 0; i < threads; i++)
		done += t[i].done, bad += t[i].bad;
	all = calloc((size_t)done + 1, sizeof(double));
	for (int i = 0; i < threads; i++) {
		for (long k = 0; k < t[i].done && k < t[i].cap; k++)
			if (t[i].lat[k] > 0)
				all[nl++] = t[i].lat[k];
		free(t[i].lat);
	}
	struct stats s;
	char l[160];
	bench_stats(all, (int)nl, &s);
	snprintf(l, sizeof(l), "%s, %d threads: request -> response", label, threads);
	bench_print(l, "us", &s);
	printf("%s, %d threads: %.0f requests/s (%ld in %.1f s, %ld failed)\n", label, threads,
	       done / el, done, el, bad);
	free(all);
}

static void *tp_warm_fork(void *arg)
{
	struct tp *t = arg;

	while (bench_now_us() < t->until) {
		double resp, eof;

		if (warm_fork(&resp, &eof) < 0)
			t->bad++;
		else if (t->done < t->cap)
			t->lat[t->done] = resp;
		t->done++;
	}
	return NULL;
}

static void throughput(const struct snapshot *lua, struct pool *pool, const char *tdir,
		       double secs)
{
	struct tp proto = { .snap = lua, .pool = pool, .tdir = tdir };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	printf("\n## requests per second, %ld cores, %.0f s each (Lua handler, %s)\n", ncpu, secs,
	       REQ);
	/* one thread: requests back to back on one machine (reset after each) */
	rate("in-process recycled machine", &proto, 1, secs, tp_machine);
	rate("in-process recycled machines", &proto, (int)ncpu, secs, tp_machine);
	if (zy_ctl >= 0)
		rate("warm fork of lua5.4", &proto, (int)ncpu, secs, tp_warm_fork);
	if (!pool)
		return;
	for (int threads = (int)ncpu; threads <= 2 * ncpu; threads += (int)ncpu) {
		proto.recycle = true;
		rate("pool__run, recycling on", &proto, threads, secs, tp_pool);
	}
	proto.recycle = false;
	rate("pool__run, recycling off (fresh clones)", &proto, (int)ncpu, secs, tp_pool);
}

int main(int argc, char **argv)
{
	const char *name = NULL;
	int a = 1, n, nr;
	char why[256];
	struct sb_err err = { "" };
	static struct snapshot lua, sec, cat;
	struct ck_spawn sp;

	if (argc > 2 && !strcmp(argv[1], "--backend"))
		name = argv[2], a = 3;
	n = argc > a ? atoi(argv[a]) : 200;
	nr = argc > a + 1 ? atoi(argv[a + 1]) : 40;
	if (n < 10)
		n = 10;
	if (nr < 5)
		nr = 5;
	be = backend__pick(name ? name : "auto", &err);
	if (!be) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	ck_link_guest();
	if (!be->available(why, sizeof(why))) {
		fprintf(stderr, "the %s backend is not usable here: %s\n", be->name, why);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_raise_nofile();
	if (ck_tmpdir_create(NULL, "recycle", zy_kill) < 0)
		return 1;
	printf("# recycled sandboxes against fresh clones: %s backend (%s), 256 MiB templates\n",
	       be->name, why);
	char *xb[] = { "--mem", "256M", "--backend", (char *)be->name, NULL };
	char *plua[] = { "/bin/lua", "/app/handler.lua", NULL };
	char *psec[] = { "/bin/secret", NULL };
	char *pcat[] = { "/bin/cat", NULL };
	char dir[PATH_MAX + 64];
	if (ck_template_create(ck_tmpdir, "lua", xb, plua, false, &sp) < 0 ||
	    ck_template_create(ck_tmpdir, "sec", xb, psec, false, &sp) < 0 ||
	    ck_template_create(ck_tmpdir, "cat", xb, pcat, false, &sp) < 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/templates/lua", ck_tmpdir);
	if (snapshot__load(dir, &lua, &err) < 0 || be->check(&lua, &err) < 0) {
		fprintf(stderr, "lua template: %s\n", err.msg);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/templates/sec", ck_tmpdir);
	if (snapshot__load(dir, &sec, &err) < 0) {
		fprintf(stderr, "secret template: %s\n", err.msg);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/templates/cat", ck_tmpdir);
	if (snapshot__load(dir, &cat, &err) < 0) {
		fprintf(stderr, "cat template: %s\n", err.msg);
		return 1;
	}
	if (!be->reset) {
		printf("# the %s backend has no reset() in this build: nothing to recycle\n", be->name);
		return 0;
	}
	/* the pool's zygote forks: before any thread */
	struct pool *pool = NULL;
	struct pool_opts po = { .ready_per_size = 2, .max_live = 64, .log_fd = 2 };
	if (getenv("BENCH_NOPOOL")) {
		pool = NULL;
	} else if (pool__create(&pool, &po, &err) < 0) {
		fprintf(stderr, "pool: %s\n", err.msg);
		pool = NULL;
	}
	if (zy_start() < 0)
		fprintf(stderr, "(no warm fork peer: apt-get install lua5.4, make build/bench/lua_zygote.so)\n");
	if (reap_start())
		return 1;
	latency(&lua, n);
	reset_vs_pages(&sec, nr);
	if (be == &kvm_backend)
		dirty_log(&sec, &cat, nr);
	snprintf(dir, sizeof(dir), "%s/templates/lua", ck_tmpdir);
	throughput(&lua, pool, dir, getenv("BENCH_SECS") ? atof(getenv("BENCH_SECS")) : 5);
	if (pool)
		pool__destroy(pool);
	reap_drain();
	snapshot__close(&lua);
	snapshot__close(&sec);
	snapshot__close(&cat);
	return 0;
}
