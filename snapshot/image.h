/* SPDX-License-Identifier: MIT */
/* The memory image: mem.img (sparse raw RAM) and pages.idx (xxh3 per page). */
#ifndef SNAP_IMAGE_H
#define SNAP_IMAGE_H
#include <stdint.h>

#include "common/err.h"
#include "memory/ram.h"
#include "snapshot/format.h"

struct snap_image_stats {
	uint64_t n_pages, zero_pages, unique_pages, dup_pages;
	uint64_t written_bytes;   /* non-zero pages written to mem.img */
	double scan_s, write_s;   /* hashing + zero detection; writing */
};

/*
 * Write mem.img and pages.idx into the directory dirfd (files must not
 * exist).  Pages the host never populated are known zero without reading
 * them.  *pages_hash = xxh3 of pages.idx.
 */
int snap_image__write(const struct guest_ram *ram, int dirfd, struct snap_image_stats *st,
		      uint64_t *pages_hash, struct sb_err *err);

/* The page hash as pages.idx stores it (0 only for a zero page). */
uint64_t snap_image__page_hash(const void *page);

/*
 * Re-hash every page of mem.img against pages.idx.  Returns 0, -EBADMSG
 * with the first bad page named in err, or another -errno.  *bad = number
 * of mismatching pages.
 */
int snap_image__verify(int dirfd, uint64_t mem_size, uint64_t *bad, struct sb_err *err);

/* Read and check pages.idx's header; *hash = xxh3 of the whole file. */
int snap_image__read_index(int dirfd, uint64_t mem_size, struct snap_pages_header *h,
			   uint64_t *hash, struct sb_err *err);
#endif
