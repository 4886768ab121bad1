/* SPDX-License-Identifier: MIT */
/*
 * What running inside snapbox costs a program:
 *   - one guest system call (getpid loop), vs the same binary on the host;
 *   - guest user-mode compute vs the same static binary run natively.
 * Usage: bench/guest_cost [runs] (default 7).  Prints figures; asserts nothing.
 */
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double field(const char *out, const char *key)
{
	const char *p = strstr(out, key);
	return p ? atof(p + strlen(key)) : -1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 7;
	double g_sc[64], h_sc[64], g_cpu[64], h_cpu[64];
	struct spawn_result r;
	struct stats a, b, c, d;
	if (n < 1 || n > 64)
		n = 7;
	for (int i = 0; i < n; i++) {
		char *g1[] = { "build/snapbox", "boot", "--", "/bin/getpid_bench", "20000", NULL };
		char *h1[] = { "build/guest/rootfs/bin/getpid_bench", "20000", NULL };
		char *g2[] = { "build/snapbox", "boot", "--", "/bin/compute_bench", NULL };
		char *h2[] = { "build/guest/rootfs/bin/compute_bench", NULL };
		if (bench_spawn(g1, &r) || r.status) {
			fprintf(stderr, "guest getpid_bench failed: %s\n", r.err);
			return 1;
		}
		g_sc[i] = field(r.out, "getpid: ");
		bench_spawn(h1, &r);
		h_sc[i] = field(r.out, "getpid: ");
		bench_spawn(g2, &r);
		g_cpu[i] = field(r.out, "compute: ");
		bench_spawn(h2, &r);
		h_cpu[i] = field(r.out, "compute: ");
	}
	bench_stats(g_sc, n, &a);
	bench_stats(h_sc, n, &b);
	bench_stats(g_cpu, n, &c);
	bench_stats(h_cpu, n, &d);
	printf("# guest cost, %d runs each, interleaved\n", n);
	bench_print("guest getpid() (ns per call)", "ns", &a);
	bench_print("host getpid() (ns per call)", "ns", &b);
	bench_print("guest compute_bench (ms)", "ms", &c);
	bench_print("host compute_bench, same binary (ms)", "ms", &d);
	printf("ratio guest/host syscall (median): %.1fx\n", a.median / b.median);
	printf("ratio guest/host compute (median): %.3fx\n", c.median / d.median);
	return 0;
}
