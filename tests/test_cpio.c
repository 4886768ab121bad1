/* SPDX-License-Identifier: MIT */
/* The newc cpio reader (the guest's root file system). */
#include <criterion/criterion.h>
#include "run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpio.h"


Test(cpio, reads_the_built_rootfs)
{
	size_t n;
	uint8_t *a = slurp("build/guest/rootfs.cpio", &n);
	uint64_t off = 0;
	struct sb_cpio_entry e;
	int r, found_lua = 0, count = 0;
	while ((r = sb_cpio_next(a, n, &off, &e)) == 1) {
		count++;
		if (e.namelen == 7 && !memcmp(e.name, "bin/lua", 7)) {
			found_lua = 1;
			cr_assert_gt(e.size, 100000);
			cr_assert_eq(memcmp(e.data, "\x7f" "ELF", 4), 0);
			cr_assert_eq(e.mode & 0170000, 0100000);
		}
	}
	cr_assert_eq(r, 0, "ends at the trailer");
	cr_assert(found_lua);
	cr_assert_gt(count, 10);
	free(a);
}

Test(cpio, malformed_archives_are_rejected_not_overrun)
{
	size_t n;
	uint8_t *a = slurp("build/guest/rootfs.cpio", &n);
	uint64_t off = 0;
	struct sb_cpio_entry e;

	/* every truncation either stops cleanly or reports an error; never reads past */
	for (size_t cut = 0; cut < 2000 && cut < n; cut += 7) {
		uint8_t *c = malloc(cut ? cut : 1);
		memcpy(c, a, cut);
		off = 0;
		int r;
		while ((r = sb_cpio_next(c, cut, &off, &e)) == 1)
			cr_assert_leq(e.data + e.size, c + cut);
		cr_assert_eq(r, -1, "truncated at %zu", cut);
		free(c);
	}
	/* bad magic */
	a[0] = 'X';
	off = 0;
	cr_assert_eq(sb_cpio_next(a, n, &off, &e), -1);
	a[0] = '0';
	/* non-hex size field */
	uint8_t save = a[6 + 6 * 8];
	a[6 + 6 * 8] = 'z';
	off = 0;
	cr_assert_eq(sb_cpio_next(a, n, &off, &e), -1);
	a[6 + 6 * 8] = save;
	/* a file size that runs past the archive */
	memcpy(a + 6 + 6 * 8, "7fffffff", 8);
	off = 0;
	cr_assert_eq(sb_cpio_next(a, n, &off, &e), -1);
	free(a);
}
