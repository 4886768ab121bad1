/* SPDX-License-Identifier: MIT */
/*
 * compute_bench [ITERS]: pure user-mode CPU work (default 200 iterations).
 * Each iteration refills a 1 MiB array with xorshift64 output (seeded from
 * the iteration and the running hash) and folds it into an FNV-1a hash.
 * Only the compute loop is timed; the array is allocated and touched before,
 * so page faults are not counted.  The checksum is deterministic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORDS ((1u << 20) / sizeof(uint64_t)) /* 1 MiB */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int main(int argc, char **argv)
{
	long iters = 200;
	uint64_t *a, h = FNV_OFFSET;
	struct timespec t0, t1;
	double ms;

	if (argc > 1) {
		char *end;
		iters = strtol(argv[1], &end, 10);
		if (*end || iters <= 0) {
			fprintf(stderr, "usage: compute_bench [ITERS>0]\n");
			return 2;
		}
	}
	a = malloc(WORDS * sizeof(*a));
	if (!a) {
		fprintf(stderr, "compute_bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < WORDS; i++) /* fault every page in now */
		a[i] = i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long it = 0; it < iters; it++) {
		uint64_t s = (h ^ ((uint64_t)it * 0x9e3779b97f4a7c15ULL)) | 1;
		for (size_t i = 0; i < WORDS; i++)
			a[i] = xorshift64(&s) ^ (a[i] >> 3);
		for (size_t i = 0; i < WORDS; i++) {
			h ^= a[i];
			h *= FNV_PRIME;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("compute: %.3f ms checksum %016llx\n", ms, (unsigned long long)h);
	free(a);
	return 0;
}
