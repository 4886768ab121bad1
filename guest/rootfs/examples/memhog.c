/* SPDX-License-Identifier: MIT */
/*
 * memhog [HOLD]: uses memory on request, for the resize tests
 * (tests/test_resize.c) and bench/resize.  Before its ready point (its
 * first read of stdin) it allocates and fills HOLD MiB (block 0; in the
 * template), then one command per line, one answer line each:
 *   alloc N   mmap N MiB, check that it reads as zero, write every 8-byte
 *             word of it (word i of block b gets pat(b, i)), read it all
 *             back and print "alloc N ok sum=HEX hot=H" (sum: of every
 *             word, as read back; H: how many MiB of it lie in the hot
 *             window above 64 GiB), "alloc N DIRTY" if it was not zero, or
 *             "alloc N failed" when the kernel has no such memory
 *   check     re-read every held block: "check ok sum=HEX" or "check BAD"
 *   free      munmap the block allocated last: "free ok"
 *   spin S    count loop iterations for S seconds of wall time (CPU share):
 *             "spin N"
 *   poke V    make page 5 of a 256 KiB read-only table (0xa5 everywhere; in a
 *             template, overlay pages mapped from the layer) writable and set
 *             its byte 100 to V: "poke ok" (tests/test_migrate.c)
 *   peek      "peek B S": that byte and the sum of the table's bytes
 *   clock     "clock M E": CLOCK_MONOTONIC in ns, and the clock epoch word the
 *             host bumps after a migration (SB_CLOCK_EPOCH_GPA, 0x200820)
 *   quit      exit 0
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_BLOCKS 64
#define HOT_GPA (65ULL << 30) /* SB_HOT_GPA */

static struct { uint64_t *p; size_t words; } blk[MAX_BLOCKS];

#define RO_TABLE (64 * 4096)
static const unsigned char ro_table[RO_TABLE] __attribute__((aligned(4096))) = {
	[0 ... RO_TABLE - 1] = 0xa5
};
static int n_blk;

static uint64_t pat(int b, size_t i)
{
	return ((uint64_t)i * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)(b + 1) << 56);
}

static uint64_t sum_block(int b, int *bad)
{
	uint64_t s = 0;
	for (size_t i = 0; i < blk[b].words; i++) {
		if (blk[b].p[i] != pat(b, i))
			*bad = 1;
		s += blk[b].p[i];
	}
	return s;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int alloc(unsigned long n)
{
	size_t bytes = n << 20;
	uint64_t *p = n_blk < MAX_BLOCKS ? mmap(NULL, bytes, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
					 : MAP_FAILED;
	int b, dirty = 0;

	if (p == MAP_FAILED)
		return -1;
	b = n_blk++;
	blk[b].p = p;
	blk[b].words = bytes / 8;
	for (size_t i = 0; i < blk[b].words; i++) {
		dirty |= p[i] != 0;
		p[i] = pat(b, i);
	}
	return dirty;
}

int main(int argc, char **argv)
{
	char line[128];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strtoul(argv[1], NULL, 10) && alloc(strtoul(argv[1], NULL, 10)) != 0)
		return 1;
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long n = 0;
		if (sscanf(line, "alloc %lu", &n) == 1) {
			int r = alloc(n), b = n_blk - 1, bad = 0;
			if (r < 0) {
				printf("alloc %lu failed\n", n);
				continue;
			}
			if (r > 0) {
				printf("alloc %lu DIRTY\n", n);
				continue;
			}
			uint64_t s = sum_block(b, &bad);
			uint64_t lo = (uint64_t)(uintptr_t)blk[b].p, hi = lo + (n << 20), hot = 0;
			if (hi > HOT_GPA)
				hot = (hi - (lo > HOT_GPA ? lo : HOT_GPA)) >> 20;
			printf("alloc %lu %s sum=%llx hot=%llu\n", n, bad ? "BAD" : "ok",
			       (unsigned long long)s, (unsigned long long)hot);
		} else if (!strncmp(line, "check", 5)) {
			uint64_t s = 0;
			int bad = 0;
			for (int b = 0; b < n_blk; b++)
				s += sum_block(b, &bad);
			printf(bad ? "check BAD\n" : "check ok sum=%llx\n", (unsigned long long)s);
		} else if (!strncmp(line, "free", 4)) {
			if (n_blk) {
				n_blk--;
				munmap(blk[n_blk].p, blk[n_blk].words * 8);
			}
			printf("free ok\n");
		} else if (sscanf(line, "spin %lu", &n) == 1) {
			double end = now() + (double)n;
			unsigned long long it = 0;
			while (now() < end)
				for (int k = 0; k < 10000000; k++) {
					it++;
					__asm__ volatile("" ::: "memory");
				}
			printf("spin %llu\n", it);
		} else if (sscanf(line, "poke %lu", &n) == 1) {
			unsigned char *pg = (unsigned char *)(uintptr_t)ro_table + 5 * 4096;
			if (mprotect(pg, 4096, PROT_READ | PROT_WRITE) < 0) {
				printf("poke failed\n");
				continue;
			}
			((volatile unsigned char *)pg)[100] = (unsigned char)n;
			printf("poke ok\n");
		} else if (!strncmp(line, "peek", 4)) {
			const volatile unsigned char *t = ro_table;
			unsigned long long sum = 0;
			for (size_t i = 0; i < RO_TABLE; i++)
				sum += t[i];
			printf("peek %u %llu\n", t[5 * 4096 + 100], sum);
		} else if (!strncmp(line, "clock", 5)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			printf("clock %lld %u\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
			       *(const volatile uint32_t *)0x200820);
		} else if (!strncmp(line, "quit", 4)) {
			return 0;
		} else {
			printf("? %s", line);
		}
	}
	return 0;
}
