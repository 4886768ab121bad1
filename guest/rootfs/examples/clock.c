/* SPDX-License-Identifier: MIT */
/*
 * clock: print CLOCK_REALTIME in seconds and CLOCK_MONOTONIC in ns:
 *   realtime: <seconds since the epoch>
 *   monotonic: <nanoseconds>
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(void)
{
	struct timespec rt, mono;

	if (clock_gettime(CLOCK_REALTIME, &rt) || clock_gettime(CLOCK_MONOTONIC, &mono)) {
		fprintf(stderr, "clock: clock_gettime: %s\n", strerror(errno));
		return 1;
	}
	printf("realtime: %lld\n", (long long)rt.tv_sec);
	printf("monotonic: %lld\n", (long long)mono.tv_sec * 1000000000LL + mono.tv_nsec);
	return 0;
}
