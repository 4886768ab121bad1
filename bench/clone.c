/* SPDX-License-Identifier: MIT */
/*
 * Clone latency, in-process through the library API (as `snapbox run` does):
 * the template (Lua handler at its ready point, 256 MiB) is loaded once and
 * kept; each clone starts when the "request arrives" (already in a pipe) and
 *   (a) ends just before its first KVM_RUN (the guest's first instruction);
 *       also to the return of that KVM_RUN (first VM exit) and the breakdown:
 *       open /dev/kvm, map mem.img MAP_PRIVATE, KVM_CREATE_VM, memslot,
 *       vCPU create (+ mmap of kvm_run), state restore, pending stdin read;
 *   (b) ends when the response has been read to EOF from the stdout pipe
 *       (the guest exited).
 * Teardown (vm__destroy) is done by background reaper threads, off the path.
 * Peers in the same run, interleaved: the same handler natively
 * (fork+exec /usr/bin/lua5.4 guest/rootfs/app/handler.lua, request on stdin)
 * and `snapbox run` through the CLI (fork+exec).
 * Usage: build/bench/clone [clones] [peer runs] [reapers]  (defaults 1000,
 * 100, 4; reapers 0: destroy each VM inline after its measurement, to see
 * what concurrent teardown costs the measured path).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox;
 * BENCH_MEM=32M changes the template's RAM (default 256M).
 */
#include "common.h"
#include "clonekit.h"

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"
#define HANDLER "guest/rootfs/app/handler.lua"
#define LUA "/usr/bin/lua5.4"

static char *const store = ck_tmpdir;

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int np = argc > 2 ? atoi(argv[2]) : 100;
	int nreap = argc > 3 ? atoi(argv[3]) : 4;
	struct snapshot *snap = malloc(sizeof(*snap));
	struct ck_reaper rp;
	struct ck_spawn sp;
	int bad = 0, native_ok = access(LUA, X_OK) == 0 && access(HANDLER, R_OK) == 0;

	if (n < 10)
		n = 10;
	if (np < 0)
		np = 0;
	if (np > n)
		np = n;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_raise_nofile();
	if (!snap || ck_tmpdir_create(NULL, "clone", NULL) < 0)
		return 1;

	char *prog[] = { "/bin/lua", "/app/handler.lua", NULL };
	const char *mem = getenv("BENCH_MEM"); /* e.g. 32M: guest RAM of the template */
	char *extra[] = { "--mem", (char *)(mem && *mem ? mem : "256M"), NULL };
	printf("# clone latency: template 'h' = %s at its ready point (%s RAM), CLI %s\n",
	       "/bin/lua /app/handler.lua", extra[1], ck_snapbox());
	if (ck_template_create(store, "h", extra, prog, true, &sp) < 0 || ck_load(store, "h", snap) < 0)
		return 1;

	double *a = calloc(n, sizeof(double)), *e1 = calloc(n, sizeof(double)),
	       *b = calloc(n, sizeof(double));
	double *bd[7];
	for (int k = 0; k < 7; k++)
		bd[k] = calloc(n, sizeof(double));
	double *nat = calloc(np + 1, sizeof(double)), *cli = calloc(np + 1, sizeof(double));
	double *cli_clone = calloc(np + 1, sizeof(double)), *cli_run = calloc(np + 1, sizeof(double));
	int nn = 0, nc = 0, ncs = 0;
	if (!a || !e1 || !b || !nat || !cli || !cli_clone || !cli_run)
		return 1;
	if (nreap < 0 || nreap > 32)
		nreap = 4;
	if (nreap && ck_reaper_start(&rp, nreap, 4096) < 0) {
		fprintf(stderr, "reaper threads: cannot start\n");
		return 1;
	}

	struct ck_reaper *rpp = nreap ? &rp : NULL; /* NULL: inline vm__destroy */
	struct ck_clone c;
	for (int i = 0; i < 20; i++) /* warm-up */
		if (ck_clone_once(snap, REQ, rpp, true, NULL, &c) < 0)
			return 1;
	if (rpp)
		ck_reaper_drain(rpp);

	int every = np ? n / np : n + 1;
	size_t max_backlog = 0;
	double sum_exits = 0, sum_inrun = 0, sum_flt = 0, sum_run = 0;
	double t_all = bench_now_us();
	for (int i = 0; i < n; i++) {
		if (ck_clone_once(snap, REQ, rpp, true, NULL, &c) < 0)
			return 1;
		if (c.status != 0 || strcmp(c.out, WANT))
			bad++;
		a[i] = c.a_us;
		e1[i] = c.exit1_us;
		b[i] = c.b_us;
		sum_exits += c.exits, sum_inrun += c.in_kvm_run_us, sum_flt += c.minflt;
		sum_run += c.b_us - c.a_us;
		bd[0][i] = c.open_kvm, bd[1][i] = c.map_mem, bd[2][i] = c.create_vm;
		bd[3][i] = c.memslot, bd[4][i] = c.vcpu, bd[5][i] = c.restore;
		bd[6][i] = c.pending_read;
		size_t bl = rpp ? ck_reaper_backlog(rpp) : 0;
		if (bl > max_backlog)
			max_backlog = bl;
		if (i % every == every - 1 && nn < np) {
			if (native_ok) {
				char *av[] = { LUA, HANDLER, NULL };
				if (ck_spawn(av, REQ, strlen(REQ), 30, &sp) == 0 && sp.status == 0 &&
				    !strcmp(sp.out, WANT))
					nat[nn++] = sp.out_eof_us;
				else
					fprintf(stderr, "native lua: status %d: %s%s\n", sp.status, sp.out, sp.err);
			}
			char *av2[] = { (char *)ck_snapbox(), "run", "--stats", "--store", store, "h", NULL };
			if (ck_spawn(av2, REQ, strlen(REQ), 30, &sp) == 0 && sp.status == 0 &&
			    !strcmp(sp.out, WANT)) {
				cli[nc++] = sp.out_eof_us;
				char *s1 = strstr(sp.err, "clone_us="), *s2 = strstr(sp.err, "run_us=");
				if (s1 && s2) {
					cli_clone[ncs] = atof(s1 + 9);
					cli_run[ncs++] = atof(s2 + 7);
				}
			} else {
				fprintf(stderr, "snapbox run: status %d: %s%s\n", sp.status, sp.out, sp.err);
			}
			if (!native_ok)
				nn++;
		}
	}
	double t_loop = bench_now_us() - t_all;
	double t_d = bench_now_us();
	if (rpp)
		ck_reaper_drain(rpp);
	double drain = bench_now_us() - t_d;

	struct stats sa, se, sb, s;
	bench_stats(a, n, &sa);
	bench_stats(e1, n, &se);
	bench_stats(b, n, &sb);
	if (rpp)
		printf("# %d clones (+20 warm-up), %d wrong responses; loop %.2f s; reapers %d, max backlog "
		       "%zu VMs, drain after loop %.0f ms, mean vm__destroy %.1f ms (%.1f ms CPU; off the "
		       "measured path)\n",
		       n, bad, t_loop / 1e6, rp.nthreads, max_backlog, drain / 1e3,
		       rp.destroyed ? rp.destroy_us_sum / rp.destroyed / 1e3 : 0.0,
		       rp.destroyed ? rp.destroy_cpu_us_sum / rp.destroyed / 1e3 : 0.0);
	else
		printf("# %d clones (+20 warm-up), %d wrong responses; loop %.2f s; no reaper: each VM "
		       "destroyed inline after its measurement\n", n, bad, t_loop / 1e6);
	bench_print("(a) request -> first guest instruction", "us", &sa);
	const char *names[7] = { "    open /dev/kvm (+API version)", "    (unused)",
				 "    KVM_CREATE_VM", "    KVM_SET_USER_MEMORY_REGION",
				 "    KVM_CREATE_VCPU", "    map mem.img + state restore",
				 "    pending stdin read (request in)" };
	for (int k = 0; k < 7; k++) {
		if (k == 1)
			continue;
		bench_stats(bd[k], n, &s);
		bench_print(names[k], "us", &s);
	}
	bench_print("(a') request -> first VM exit", "us", &se);
	bench_print("(b) request -> complete response (EOF)", "us", &sb);
	printf("    run (b - a), means: %.0f us, of which %.0f us inside KVM_RUN over %.1f exits "
	       "(%.0f us each); %.0f host page faults per clone\n",
	       sum_run / n, sum_inrun / n, sum_exits / n, sum_exits ? sum_inrun / sum_exits : 0.0,
	       sum_flt / n);
	printf("targets: (a) median <= 300 us: %s (%.1f); (b) median <= 1000 us: %s (%.1f), "
	       "p99 <= 2000 us: %s (%.1f)\n",
	       sa.median <= 300 ? "met" : "MISSED", sa.median, sb.median <= 1000 ? "met" : "MISSED",
	       sb.median, sb.p99 <= 2000 ? "met" : "MISSED", sb.p99);
	if (native_ok && nn) {
		bench_stats(nat, nn, &s);
		bench_print("native: fork+exec lua5.4 handler.lua", "us", &s);
		printf("ratio native / clone (b), medians: %.2fx  (>1: the clone is faster)\n",
		       s.median / sb.median);
	} else {
		printf("native lua5.4 not available (%s, %s): no native figure\n", LUA, HANDLER);
	}
	if (nc) {
		bench_stats(cli, nc, &s);
		bench_print("CLI: fork+exec snapbox run (to EOF)", "us", &s);
		printf("ratio CLI / in-process clone (b), medians: %.2fx\n", s.median / sb.median);
		if (ncs) {
			bench_stats(cli_clone, ncs, &s);
			bench_print("    CLI --stats clone_us", "us", &s);
			bench_stats(cli_run, ncs, &s);
			bench_print("    CLI --stats run_us", "us", &s);
		}
	}
	/* The same with a pool: each VM shell (KVM VM + vCPU) is created before
	 * its request arrives, as `snapbox serve` does; only memory + state are
	 * on the measured path. */
	{
		int npool = n / 2 > 10 ? n / 2 : 10, badp = 0;
		double *pa = calloc(npool, sizeof(double)), *pb = calloc(npool, sizeof(double));
		double *pr = calloc(npool, sizeof(double));
		struct stats spa, spb;
		for (int i = 0; pa && pb && pr && i < npool; i++) {
			struct sb_err err = { "" };
			struct vm *shell = calloc(1, sizeof(*shell));
			if (!shell || vm__create_shell(shell, snap->hdr.mem_size, &err) < 0) {
				fprintf(stderr, "vm__create_shell: %s\n", err.msg);
				return 1;
			}
			if (ck_clone_pooled(snap, REQ, rpp, shell, &c) < 0)
				return 1;
			if (c.status != 0 || strcmp(c.out, WANT))
				badp++;
			pa[i] = c.a_us;
			pb[i] = c.b_us;
			pr[i] = c.restore;
		}
		printf("# pooled: %d clones into pre-created VM shells, %d wrong responses\n", npool, badp);
		bench_stats(pa, npool, &spa);
		bench_stats(pb, npool, &spb);
		bench_print("(a) pooled: request -> first guest instruction", "us", &spa);
		bench_stats(pr, npool, &s);
		bench_print("    map mem.img over the slot + state restore", "us", &s);
		bench_print("(b) pooled: request -> complete response", "us", &spb);
		printf("targets, pooled: (a) median <= 300 us: %s (%.1f); (b) median <= 1000 us: %s (%.1f), "
		       "p99 <= 2000 us: %s (%.1f)\n",
		       spa.median <= 300 ? "met" : "MISSED", spa.median,
		       spb.median <= 1000 ? "met" : "MISSED", spb.median,
		       spb.p99 <= 2000 ? "met" : "MISSED", spb.p99);
		free(pa), free(pb), free(pr);
	}
	if (rpp)
		ck_reaper_drain(rpp);
	if (rpp)
		ck_reaper_stop(rpp);
	snapshot__close(snap);
	return 0;
}
