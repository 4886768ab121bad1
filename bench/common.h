/* SPDX-License-Identifier: MIT */
/* Shared bits of the benchmark programs: spawning, timing, percentiles. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stddef.h>

double bench_now_us(void);

struct spawn_result {
	int status;
	double total_us;       /* spawn to exit */
	double first_out_us;   /* spawn to the first byte on stdout (or -1) */
	char out[8192];        /* head of stdout */
	char err[8192];        /* head of stderr */
};

/* Run argv with empty stdin; collect output heads and timings. */
int bench_spawn(char *const argv[], struct spawn_result *r);

struct stats {
	double median, p90, p99, min, max;
	int n;
};
void bench_stats(double *v, int n, struct stats *s);
void bench_print(const char *label, const char *unit, const struct stats *s);
#endif
