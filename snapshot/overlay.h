/* SPDX-License-Identifier: MIT */
/* Overlays at save time: RAM pages that are layer image pages (overlay.c). */
#ifndef SNAP_OVERLAY_H
#define SNAP_OVERLAY_H
#include <stdint.h>

#include "common/err.h"
#include "snapbox_abi.h"
#include "snapshot/format.h"

/* Runs shorter than this many pages are stored in mem.img instead. */
#define SNAP_OVERLAY_MIN_RUN 4

/* The layer images to match against: img[i] mapped, size[i] bytes. */
struct snap_overlay_src {
	unsigned n;
	const uint8_t *img[SB_MAX_LAYERS];
	uint64_t size[SB_MAX_LAYERS];
};

/* The runs found, sorted by gpa. */
struct snap_overlay_set {
	uint32_t n_runs;
	uint64_t pages;
	struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
};

/*
 * ram: guest RAM (n_pages pages); hashes: pages.idx's hash of each (0 for
 * a zero page, whose bytes are not read).  Fills out (no runs for a NULL
 * or empty src).  0 or -errno + message.
 */
int snap_overlay__find(const uint8_t *ram, uint64_t n_pages, const uint64_t *hashes,
		       const struct snap_overlay_src *src, struct snap_overlay_set *out,
		       struct sb_err *err);
#endif
