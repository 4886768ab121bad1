/* SPDX-License-Identifier: MIT */
/*
 * counter: a long-lived sandbox that keeps dirtying memory and printing a
 * counter (for live migration: tests/test_migrate.c, bench/migrate.c).
 * Ready point: its first read of stdin.  Then it reads commands, a line each:
 *   dirty STEPS KIB US   STEPS steps; step c (the counter, from 1 on, going
 *                        on across commands) writes KIB KiB of its 16 MiB
 *                        array, word i = (c * 64 * KIB + j) mod N for j <
 *                        64 * KIB (N words in all) set to
 *                        c * 0x9e3779b97f4a7c15 ^ i, prints "c <c>",
 *                        then sleeps US microseconds (0: none)
 *   sum                  prints "sum <c> <16 hex digits>": the counter and
 *                        the 64-bit wrapping sum of every word of the array
 *   quit                 exits 0
 * Anything else: "counter: bad command" on stderr, exit 2.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WORDS ((16u << 20) / 8)

static uint64_t a[WORDS];

int main(void)
{
	char line[256];
	uint64_t c = 0;

	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long steps, kib, us;

		if (sscanf(line, "dirty %llu %llu %llu", &steps, &kib, &us) == 3 && kib >= 1 &&
		    kib <= 16384) {
			for (unsigned long long s = 0; s < steps; s++) {
				uint64_t w = 128 * (uint64_t)kib; /* 8-byte words in KIB KiB */
				c++;
				for (uint64_t j = 0; j < w; j++) {
					uint64_t i = (c * w + j) % WORDS;
					a[i] = c * 0x9e3779b97f4a7c15ULL ^ i;
				}
				printf("c %" PRIu64 "\n", c);
				fflush(stdout);
				if (us) {
					struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
					nanosleep(&ts, NULL);
				}
			}
		} else if (!strcmp(line, "sum\n")) {
			uint64_t sum = 0;
			for (uint64_t i = 0; i < WORDS; i++)
				sum += a[i];
			printf("sum %" PRIu64 " %016" PRIx64 "\n", c, sum);
			fflush(stdout);
		} else if (!strcmp(line, "quit\n")) {
			return 0;
		} else {
			fprintf(stderr, "counter: bad command\n");
			return 2;
		}
	}
	return 0;
}
