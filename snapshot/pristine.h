/* SPDX-License-Identifier: MIT */
/*
 * A template's RAM as it was saved, page by page, for putting a recycled
 * sandbox back: mem.img mapped read-only and shared (the page cache's pages,
 * the same ones every clone maps) and pages.idx, which says which pages are
 * zero.  Zero pages are never read through the mapping: they are holes, and
 * a read fault on a hole of a tmpfs file would allocate a page in it.
 */
#ifndef SB_PRISTINE_H
#define SB_PRISTINE_H
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct snapshot;

struct snap_pristine {
	const uint8_t *img;      /* mem.img, mem_size bytes */
	const uint8_t *idx;      /* pages.idx (header, then one hash per page) */
	size_t idx_len;
	uint64_t mem_size;
};

int snap_pristine__open(struct snap_pristine *p, const struct snapshot *s, struct sb_err *err);
/* The saved content of the page at gpa (page-aligned, below mem_size): a
 * pointer into the image, or NULL for a zero page. */
const void *snap_pristine__page(const struct snap_pristine *p, uint64_t gpa);
void snap_pristine__close(struct snap_pristine *p);
#endif
