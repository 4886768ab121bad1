/* SPDX-License-Identifier: MIT */
/*
 * memtest [MiB]: exercise the guest's memory management (default 64 MiB).
 *  - malloc MiB, write a pattern to every word of every page, verify, free
 *    (brk / mmap);
 *  - mmap a few anonymous regions, touch every page, unmap a hole in the
 *    middle of one, unmap the rest (mmap / munmap);
 *  - realloc-grow a block that starts mmap-served (> 128 KiB in musl)
 *    past 1 MiB, checking the contents survive (mremap).
 * Prints "memtest ok N MiB" on success, a diagnostic and exit 1 otherwise.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL

static int bad(const char *what, size_t where)
{
	fprintf(stderr, "memtest: %s (at offset %zu)\n", what, where);
	return 1;
}

static uint64_t pat(size_t i)
{
	return (uint64_t)i * 0x9e3779b97f4a7c15ULL ^ 0x5a5a5a5a5a5a5a5aULL;
}

static int big_block(size_t mib)
{
	size_t bytes = mib << 20, words = bytes / 8;
	uint64_t *p = malloc(bytes);

	if (!p)
		return bad("malloc failed", bytes);
	for (size_t i = 0; i < words; i++)
		p[i] = pat(i);
	for (size_t i = 0; i < words; i++)
		if (p[i] != pat(i)) {
			free(p);
			return bad("pattern mismatch in malloc block", i * 8);
		}
	free(p);
	return 0;
}

static int regions(void)
{
	static const size_t sizes[] = { PAGE, 16 * PAGE, 1UL << 20, 3UL << 20 };
	unsigned char *m[4];

	for (int r = 0; r < 4; r++) {
		m[r] = mmap(NULL, sizes[r], PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m[r] == MAP_FAILED)
			return bad("mmap failed", sizes[r]);
		for (size_t o = 0; o < sizes[r]; o += PAGE) {
			if (m[r][o] != 0)
				return bad("fresh anonymous page not zero", o);
			m[r][o] = (unsigned char)(r + o / PAGE);
		}
	}
	for (int r = 0; r < 4; r++)
		for (size_t o = 0; o < sizes[r]; o += PAGE)
			if (m[r][o] != (unsigned char)(r + o / PAGE))
				return bad("mmap page lost its contents", o);
	/* punch a 4-page hole in the middle of the 1 MiB region */
	if (munmap(m[2] + 64 * PAGE, 4 * PAGE))
		return bad("munmap of a hole failed", 64 * PAGE);
	if (m[2][63 * PAGE] != (unsigned char)(2 + 63) ||
	    m[2][68 * PAGE] != (unsigned char)(2 + 68))
		return bad("neighbours of the hole changed", 64 * PAGE);
	if (munmap(m[2], 64 * PAGE) || munmap(m[2] + 68 * PAGE, sizes[2] - 68 * PAGE))
		return bad("munmap around the hole failed", 0);
	for (int r = 0; r < 4; r++)
		if (r != 2 && munmap(m[r], sizes[r]))
			return bad("munmap failed", sizes[r]);
	return 0;
}

static int grow(void)
{
	static const size_t steps[] = { 200 << 10, 512 << 10, 3 << 20, 9 << 20 };
	unsigned char *p = NULL;
	size_t have = 0;

	for (int s = 0; s < 4; s++) {
		unsigned char *np = realloc(p, steps[s]);
		if (!np) {
			free(p);
			return bad("realloc failed", steps[s]);
		}
		p = np;
		for (size_t i = 0; i < have; i += 1021)
			if (p[i] != (unsigned char)(i * 7 + 3)) {
				free(p);
				return bad("realloc lost contents", i);
			}
		for (size_t i = have; i < steps[s]; i++)
			p[i] = (unsigned char)(i * 7 + 3);
		have = steps[s];
	}
	free(p);
	return 0;
}

int main(int argc, char **argv)
{
	long mib = 64;

	if (argc > 1) {
		char *end;
		mib = strtol(argv[1], &end, 10);
		if (*end || mib <= 0) {
			fprintf(stderr, "usage: memtest [MiB>0]\n");
			return 2;
		}
	}
	if (big_block((size_t)mib) || regions() || grow())
		return 1;
	printf("memtest ok %ld MiB\n", mib);
	return 0;
}
