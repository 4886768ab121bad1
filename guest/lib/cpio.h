/* SPDX-License-Identifier: MIT */
/* Reader for "newc" cpio archives (the root file system). */
#ifndef SB_CPIO_H
#define SB_CPIO_H
#include "sbtypes.h"

#define SB_CPIO_HDR 110

struct sb_cpio_entry {
	const char *name;     /* as stored: no leading "/" or "./" stripped */
	uint32_t namelen;     /* without the NUL */
	uint32_t mode;        /* st_mode */
	const uint8_t *data;
	uint64_t size;
};

/*
 * Read the entry at *off and advance *off to the next one.
 * Returns 1 for an entry, 0 at the TRAILER!!! record, -1 if malformed
 * (bad magic, bad hex, or anything running past size).
 */
int sb_cpio_next(const uint8_t *base, uint64_t size, uint64_t *off,
		 struct sb_cpio_entry *e);
#endif
