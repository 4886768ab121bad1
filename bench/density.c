/* SPDX-License-Identifier: MIT */
/*
 * Memory per clone: N concurrent clones of the 256 MiB Lua-handler template
 * held by ONE process (the library API, as `snapbox run` would do it N times
 * in one server).  Measured from /proc/self/smaps_rollup before and after
 * creating the N clones (Pss, Private_Clean + Private_Dirty, Rss), plus the
 * system-wide kernel-side deltas from /proc/meminfo (KVM's own structures and
 * shadow page tables are kernel memory, invisible in smaps; other processes
 * on the machine add noise to those).
 *
 * Two kinds of clone:
 *   idle   restored (vm__create_clone) and not run.  This IS the state of a
 *          clone waiting for its request: the template was taken at the
 *          program's first read of stdin, and that read stays pending until
 *          the host completes it with a request (hypercall__complete_pending),
 *          so "run until it blocks" would not run a single guest instruction.
 *   served restored, given one request and run to exit, not yet destroyed:
 *          includes the pages the request dirtied (copy-on-write) -- the
 *          upper bound for a clone in use.
 * Teardown: background reaper threads (timed; off the measurement).
 * Usage: build/bench/density [N ...] [--served M]  (default: idle 100 1000,
 * served 100; --served 0 skips it).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#define REQ "{\"n\": 30}"

static char *const store = ck_tmpdir;

#define MI_MAX 128
struct meminfo {
	int n;
	char name[MI_MAX][32];
	double kib[MI_MAX];
};

struct mem {
	struct meminfo mi;
	double rss, pss, priv, priv_dirty, anon;      /* KiB, this process */
	double slab, sunrecl, kstack, pt, secpt, percpu, memfree; /* KiB, system */
};

static double field(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);
	return p ? atof(p + strlen(name)) : 0;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	buf[n] = 0;
	return 0;
}

static int mem_read(struct mem *m)
{
	char b[8192];
	memset(m, 0, sizeof(*m));
	if (read_file("/proc/self/smaps_rollup", b, sizeof(b)) < 0)
		return -1;
	m->rss = field(b, "\nRss:");
	m->pss = field(b, "\nPss:");
	m->priv_dirty = field(b, "\nPrivate_Dirty:");
	m->priv = field(b, "\nPrivate_Clean:") + m->priv_dirty;
	m->anon = field(b, "\nAnonymous:");
	if (read_file("/proc/meminfo", b, sizeof(b)) < 0)
		return -1;
	m->slab = field(b, "\nSlab:");
	m->sunrecl = field(b, "\nSUnreclaim:");
	m->kstack = field(b, "\nKernelStack:");
	m->pt = field(b, "\nPageTables:");
	m->secpt = field(b, "\nSecPageTables:");
	m->percpu = field(b, "\nPercpu:");
	m->memfree = field(b, "MemFree:");
	for (char *line = b, *nl; m->mi.n < MI_MAX && (nl = strchr(line, '\n')); line = nl + 1) {
		char *colon = memchr(line, ':', nl - line);
		if (!colon || colon - line >= 32)
			continue;
		memcpy(m->mi.name[m->mi.n], line, colon - line);
		m->mi.name[m->mi.n][colon - line] = 0;
		m->mi.kib[m->mi.n++] = atof(colon + 1);
	}
	return 0;
}

static int measure(const struct snapshot *snap, struct ck_reaper *rp, int n, bool serve)
{
	struct vm **vms = calloc(n, sizeof(*vms));
	double *lat = calloc(n, sizeof(double));
	struct mem m0, m1;
	struct ck_clone c;
	int made = 0, ret = 0;

	if (!vms || !lat)
		return -1;
	ck_reaper_drain(rp);
	if (mem_read(&m0) < 0)
		return -1;
	double t0 = bench_now_us();
	for (; made < n; made++) {
		if (ck_clone_once(snap, REQ, NULL, serve, &vms[made], &c) < 0) {
			fprintf(stderr, "clone %d of %d failed\n", made + 1, n);
			ret = -1;
			break;
		}
		lat[made] = serve ? c.b_us : c.a_us;
	}
	double t_make = bench_now_us() - t0;
	if (mem_read(&m1) < 0)
		ret = -1;
	if (ret == 0) {
		struct stats s;
		double k = 1.0 / n;
		printf("%-6s N=%-5d per clone: Pss %7.1f KiB  private %7.1f KiB (dirty %6.1f)  Rss %7.1f "
		       "KiB  anon %6.1f KiB  -> private target <= 256 KiB: %s\n",
		       serve ? "served" : "idle", n, (m1.pss - m0.pss) * k, (m1.priv - m0.priv) * k,
		       (m1.priv_dirty - m0.priv_dirty) * k, (m1.rss - m0.rss) * k, (m1.anon - m0.anon) * k,
		       (m1.priv - m0.priv) * k <= 256 ? "met" : "MISSED");
		printf("       totals: Pss +%.1f MiB, private +%.1f MiB for %d clones; kernel (system-wide, "
		       "per clone): Slab %+.1f KiB (unreclaimable %+.1f), KernelStack %+.1f, PageTables "
		       "%+.1f, SecPageTables %+.1f, Percpu %+.1f; MemFree %+.1f KiB\n",
		       (m1.pss - m0.pss) / 1024, (m1.priv - m0.priv) / 1024, n, (m1.slab - m0.slab) * k,
		       (m1.sunrecl - m0.sunrecl) * k, (m1.kstack - m0.kstack) * k, (m1.pt - m0.pt) * k,
		       (m1.secpt - m0.secpt) * k, (m1.percpu - m0.percpu) * k,
		       (m0.memfree - m1.memfree) * -k);
		printf("       /proc/meminfo fields that moved by >= 1 MiB in total (per clone, KiB):");
		for (int i = 0; i < m0.mi.n && i < m1.mi.n; i++) {
			double d = m1.mi.kib[i] - m0.mi.kib[i];
			if ((d >= 1024 || d <= -1024) && !strcmp(m0.mi.name[i], m1.mi.name[i]))
				printf(" %s %+.1f", m0.mi.name[i], d * k);
		}
		printf("\n");
		bench_stats(lat, n, &s);
		printf("       made in %.2f s; ", t_make / 1e6);
		bench_print(serve ? "clone + request + response" : "clone (restore only)", "us", &s);
	}
	double td = bench_now_us();
	for (int i = 0; i < made; i++)
		ck_reaper_put(rp, vms[i]);
	ck_reaper_drain(rp);
	printf("       teardown of %d VMs by %d reaper threads: %.0f ms\n", made, rp->nthreads,
	       (bench_now_us() - td) / 1e3);
	free(vms);
	free(lat);
	return ret;
}

int main(int argc, char **argv)
{
	int ns[8] = { 100, 1000 }, nn = 2, served = 100;
	struct snapshot *snap = malloc(sizeof(*snap));
	struct ck_reaper rp;
	struct ck_spawn sp;

	if (argc > 1) {
		nn = 0;
		for (int i = 1; i < argc && nn < 8; i++) {
			if (!strcmp(argv[i], "--served") && i + 1 < argc)
				served = atoi(argv[++i]);
			else if (atoi(argv[i]) > 0 && atoi(argv[i]) <= 5000)
				ns[nn++] = atoi(argv[i]);
		}
	}
	if (served < 0 || served > 5000)
		served = 100;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_raise_nofile();
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (!snap || ck_tmpdir_create(NULL, "density", NULL) < 0)
		return 1;
	char *prog[] = { "/bin/lua", "/app/handler.lua", NULL };
	printf("# density: N concurrent clones of template 'h' (/bin/lua /app/handler.lua, 256 MiB) in "
	       "one process; RLIMIT_NOFILE %llu\n", (unsigned long long)rl.rlim_cur);
	if (ck_template_create(store, "h", NULL, prog, true, &sp) < 0 || ck_load(store, "h", snap) < 0)
		return 1;
	if (ck_reaper_start(&rp, 8, 8192) < 0)
		return 1;
	{ /* warm-up: library, page cache of mem.img, allocator */
		struct ck_clone c;
		for (int i = 0; i < 10; i++)
			if (ck_clone_once(snap, REQ, &rp, i & 1, NULL, &c) < 0)
				return 1;
	}
	int ret = 0;
	for (int i = 0; i < nn && !ret; i++)
		ret = measure(snap, &rp, ns[i], false);
	if (served && !ret)
		ret = measure(snap, &rp, served, true);
	ck_reaper_stop(&rp);
	snapshot__close(snap);
	return ret ? 1 : 0;
}
