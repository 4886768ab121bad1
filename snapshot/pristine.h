/* SPDX-License-Identifier: MIT */
/*
 * A template's RAM as it was saved, page by page, for putting a recycled
 * sandbox back: mem.img mapped read-only and shared (the page cache's pages,
 * the same ones every clone maps) and pages.idx, which says which pages are
 * zero.  Zero pages are never read through the mapping: they are holes, and
 * a read fault on a hole of a tmpfs file would allocate a page in it.
 * Overlay pages (format 1.4) are holes in mem.img too: their content is
 * their layer image's page, which is mapped the same way.
 */
#ifndef SB_PRISTINE_H
#define SB_PRISTINE_H
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "snapbox_abi.h"
#include "snapshot/format.h"

struct snapshot;

struct snap_pristine {
	const uint8_t *img;      /* mem.img, mem_size bytes */
	const uint8_t *idx;      /* pages.idx (header, then one hash per page) */
	size_t idx_len;
	uint64_t mem_size;
	struct snap_overlay_run *runs; /* the template's, sorted by gpa */
	uint32_t n_runs;
	const uint8_t *layer[SB_MAX_LAYERS]; /* the images runs name, mapped */
	uint64_t layer_size[SB_MAX_LAYERS];
};

int snap_pristine__open(struct snap_pristine *p, const struct snapshot *s, struct sb_err *err);
/* The saved content of the page at gpa (page-aligned, below mem_size): a
 * pointer into mem.img or a layer image, or NULL for a zero page. */
const void *snap_pristine__page(const struct snap_pristine *p, uint64_t gpa);
void snap_pristine__close(struct snap_pristine *p);
#endif
