/* SPDX-License-Identifier: MIT */
/*
 * dirty: a template program that dirties memory after its ready point.
 * Set-up: none.  Ready point: reads all of stdin, expects "<MiB> <seed>"
 * (decimal integers).  Then mallocs MiB, writes every 64-bit word with
 * pat(i) = (i * 0x9e3779b97f4a7c15) ^ seed, reads it all back and prints
 *   dirty <MiB> MiB sum <16 hex digits>
 * where sum = the 64-bit wrapping sum of all the words read back.  A
 * malformed request: "dirty: bad request" on stderr, exit 2; malloc failure:
 * exit 1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
	char req[256];
	size_t len = 0;
	ssize_t r;
	unsigned long long mib, seed;

	while (len < sizeof(req) - 1 && (r = read(0, req + len, sizeof(req) - 1 - len)) > 0)
		len += (size_t)r;
	req[len] = 0;
	if (sscanf(req, "%llu %llu", &mib, &seed) != 2 || mib == 0 || mib > 4096) {
		fprintf(stderr, "dirty: bad request\n");
		return 2;
	}
	size_t words = (size_t)(mib << 20) / 8;
	uint64_t *p = malloc(words * 8), sum = 0;
	if (!p) {
		fprintf(stderr, "dirty: malloc of %llu MiB failed\n", mib);
		return 1;
	}
	for (size_t i = 0; i < words; i++)
		p[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL ^ seed;
	for (size_t i = 0; i < words; i++)
		sum += ((volatile uint64_t *)p)[i];
	printf("dirty %llu MiB sum %016" PRIx64 "\n", mib, sum);
	free(p);
	return 0;
}
