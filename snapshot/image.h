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
	uint64_t overlay_runs, overlay_pages; /* pages left to the layer images */
	double scan_s, write_s;   /* hashing + zero detection; writing */
};

struct snap_overlay_src;
struct snap_overlay_set;
struct snapshot;

/*
 * Write mem.img and pages.idx into the directory dirfd (files must not
 * exist).  Pages the host never populated are known zero without reading
 * them.  Pages equal to a page of one of src's layer images (src NULL:
 * none) are left as holes and described in *ov (snapshot/overlay.h).
 * *pages_hash = xxh3 of pages.idx.
 */
int snap_image__write(const struct guest_ram *ram, int dirfd, const struct snap_overlay_src *src,
		      struct snap_overlay_set *ov, struct snap_image_stats *st, uint64_t *pages_hash,
		      struct sb_err *err);

/* The page hash as pages.idx stores it (0 only for a zero page). */
uint64_t snap_image__page_hash(const void *page);

/*
 * Re-hash every page of the template s against pages.idx: mem.img's, and
 * an overlay page's in its layer image (where mem.img must hold a hole).
 * Returns 0, -EBADMSG with the first bad page named in err, or another
 * -errno.  *bad = number of mismatching pages.
 */
int snap_image__verify(const struct snapshot *s, uint64_t *bad, struct sb_err *err);

/* Read and check pages.idx's header; *hash = xxh3 of the whole file. */
int snap_image__read_index(int dirfd, uint64_t mem_size, struct snap_pages_header *h,
			   uint64_t *hash, struct sb_err *err);
#endif
