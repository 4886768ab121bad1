/* SPDX-License-Identifier: MIT */
/*
 * getpid_bench [N]: time N raw getpid system calls (default 100000).
 * syscall(SYS_getpid) rather than getpid() so nothing can cache the result.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = 100000;
	struct timespec t0, t1;
	long sum = 0;
	double ns;

	if (argc > 1) {
		char *end;
		n = strtol(argv[1], &end, 10);
		if (*end || n <= 0) {
			fprintf(stderr, "usage: getpid_bench [N>0]\n");
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++)
		sum += syscall(SYS_getpid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	if (sum == 0) /* getpid never returns 0; keeps sum live */
		fprintf(stderr, "getpid_bench: odd, pid sum is 0\n");
	printf("getpid: %.1f ns/call over %ld calls\n", ns / (double)n, n);
	return 0;
}
