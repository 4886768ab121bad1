/* SPDX-License-Identifier: MIT */
/*
 * Overlays at save time: which pages of guest RAM are, byte for byte, pages
 * of the template's layer images (format.h, SNAP_SEC_OVERLAY).
 *
 * Every page of every layer is hashed as pages.idx hashes RAM (xxh3-64, 0
 * for a zero page) into a sorted index; each non-zero RAM page is looked up
 * there and confirmed with memcmp: nothing the guest says is used, a page
 * becomes an overlay page only because its bytes are the image's.  A run
 * grows while the next RAM page is the next image page (zero pages too, as
 * long as the image's page there is zero as well: a run is one mmap per
 * clone, holes in it cost nothing); where a page has several candidates the
 * one whose following pages match longest (by hash) starts the run, the
 * highest layer's on a tie (the copy a path lookup finds).  Runs
 * shorter than SNAP_OVERLAY_MIN_RUN pages are dropped (stored in mem.img:
 * an mmap per clone is not worth less), and beyond SNAP_OVERLAY_MAX runs
 * the shortest go.  Hashing the images costs ~5 ms per 50 MiB of layer,
 * once per template create.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/image.h"
#include "snapshot/overlay.h"

#define PAGE SNAP_PAGE
#define LOOKAHEAD 256      /* pages compared by hash to pick among candidates */
#define CANDIDATES_MAX 64  /* image pages of one content tried per RAM page */

struct ov_entry {
	uint64_t hash;
	uint32_t page;
	uint16_t layer;
	uint16_t pad;
};

struct ov_ctx {
	const struct snap_overlay_src *src;
	uint64_t *lh[SB_MAX_LAYERS];   /* per layer, per page: the page hash */
	uint64_t np[SB_MAX_LAYERS];    /* pages per layer */
	struct ov_entry *idx;
	size_t n_idx;
	struct snap_overlay_run *runs; /* found so far, sorted by gpa */
	size_t n_runs, cap;
};

static int cmp_entry(const void *a, const void *b)
{
	const struct ov_entry *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

static int cmp_len_desc(const void *a, const void *b)
{
	const struct snap_overlay_run *x = a, *y = b;

	return x->npages > y->npages ? -1 : x->npages < y->npages;
}

static int cmp_gpa(const void *a, const void *b)
{
	const struct snap_overlay_run *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int ov__index(struct ov_ctx *c, struct sb_err *err)
{
	size_t total = 0, k = 0;

	for (unsigned l = 0; l < c->src->n; l++) {
		if (c->src->size[l] % PAGE || c->src->size[l] / PAGE > UINT32_MAX)
			return err__set(err, -EINVAL, "layer %u: %llu bytes is not whole pages", l,
					(unsigned long long)c->src->size[l]);
		c->np[l] = c->src->size[l] / PAGE;
		c->lh[l] = malloc((c->np[l] ? c->np[l] : 1) * sizeof(uint64_t));
		if (!c->lh[l])
			return err__set(err, -ENOMEM, "out of memory hashing the layer images");
		for (uint64_t p = 0; p < c->np[l]; p++) {
			c->lh[l][p] = snap_image__page_hash(c->src->img[l] + p * PAGE);
			total += c->lh[l][p] != 0;
		}
	}
	c->idx = malloc((total ? total : 1) * sizeof(*c->idx));
	if (!c->idx)
		return err__set(err, -ENOMEM, "out of memory indexing the layer images");
	for (unsigned l = 0; l < c->src->n; l++)
		for (uint64_t p = 0; p < c->np[l]; p++)
			if (c->lh[l][p])
				c->idx[k++] = (struct ov_entry){ c->lh[l][p], (uint32_t)p, (uint16_t)l, 0 };
	c->n_idx = k;
	qsort(c->idx, k, sizeof(*c->idx), cmp_entry);
	return 0;
}

/* The first index entry of hash h (or n_idx). */
static size_t ov__lower(const struct ov_ctx *c, uint64_t h)
{
	size_t lo = 0, hi = c->n_idx;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->idx[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int ov__push(struct ov_ctx *c, const struct snap_overlay_run *r)
{
	if (r->npages < SNAP_OVERLAY_MIN_RUN)
		return 0;
	if (c->n_runs == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct snap_overlay_run *n = realloc(c->runs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->runs = n;
		c->cap = cap;
	}
	c->runs[c->n_runs++] = *r;
	return 0;
}

static const uint8_t *ov__img_page(const struct ov_ctx *c, unsigned layer, uint64_t page)
{
	return c->src->img[layer] + page * PAGE;
}

/* Among the image pages with RAM page i's hash, the one equal to it whose
 * following pages go on matching longest: 0 and *best, or -1 for none. */
static int ov__start(const struct ov_ctx *c, const uint8_t *ram, const uint64_t *hashes,
		     uint64_t n, uint64_t i, struct ov_entry *best)
{
	uint64_t best_len = 0;
	unsigned tried = 0;

	for (size_t k = ov__lower(c, hashes[i]);
	     k < c->n_idx && c->idx[k].hash == hashes[i] && tried < CANDIDATES_MAX; k++, tried++) {
		const struct ov_entry *e = &c->idx[k];
		uint64_t len = 1;

		if (memcmp(ram + i * PAGE, ov__img_page(c, e->layer, e->page), PAGE))
			continue;
		while (len < LOOKAHEAD && i + len < n && e->page + len < c->np[e->layer] &&
		       c->lh[e->layer][e->page + len] == hashes[i + len])
			len++;
		if (len >= best_len) { /* a tie: the higher layer (which a lookup finds first) */
			best_len = len;
			*best = *e;
		}
	}
	return best_len ? 0 : -1;
}

static int ov__scan(struct ov_ctx *c, const uint8_t *ram, const uint64_t *hashes, uint64_t n)
{
	struct snap_overlay_run cur = { 0 };
	uint32_t last_data = 0; /* cur's pages up to its last non-zero one */
	int ret = 0;

	for (uint64_t i = SNAP_OVERLAY_MIN_GPA / PAGE; i < n && ret == 0; i++) {
		struct ov_entry e;

		if (cur.npages) {
			uint64_t next = cur.img_off / PAGE + cur.npages;

			if (next < c->np[cur.layer] && c->lh[cur.layer][next] == hashes[i] &&
			    (hashes[i] == 0 ||
			     !memcmp(ram + i * PAGE, ov__img_page(c, cur.layer, next), PAGE)) &&
			    cur.npages < UINT32_MAX) {
				cur.npages++;
				if (hashes[i])
					last_data = cur.npages;
				continue;
			}
			cur.npages = last_data; /* no zero pages at its end */
			ret = ov__push(c, &cur);
			cur.npages = 0;
		}
		if (hashes[i] == 0 || ov__start(c, ram, hashes, n, i, &e) < 0)
			continue;
		cur = (struct snap_overlay_run){ .gpa = i * PAGE, .img_off = (uint64_t)e.page * PAGE,
						 .npages = 1, .layer = e.layer };
		last_data = 1;
	}
	if (ret == 0 && cur.npages) {
		cur.npages = last_data;
		ret = ov__push(c, &cur);
	}
	return ret;
}

int snap_overlay__find(const uint8_t *ram, uint64_t n_pages, const uint64_t *hashes,
		       const struct snap_overlay_src *src, struct snap_overlay_set *out,
		       struct sb_err *err)
{
	struct ov_ctx c = { .src = src };
	int ret;

	memset(out, 0, sizeof(*out));
	if (!src || src->n == 0)
		return 0;
	if (src->n > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "%u layers", src->n);
	ret = ov__index(&c, err);
	if (ret == 0 && (ret = ov__scan(&c, ram, hashes, n_pages)) < 0)
		err__set(err, ret, "out of memory finding the overlay runs");
	if (ret == 0) {
		if (c.n_runs > SNAP_OVERLAY_MAX) { /* keep the longest */
			qsort(c.runs, c.n_runs, sizeof(*c.runs), cmp_len_desc);
			c.n_runs = SNAP_OVERLAY_MAX;
			qsort(c.runs, c.n_runs, sizeof(*c.runs), cmp_gpa);
		}
		out->n_runs = (uint32_t)c.n_runs;
		memcpy(out->runs, c.runs, c.n_runs * sizeof(*c.runs));
		for (size_t k = 0; k < c.n_runs; k++)
			out->pages += c.runs[k].npages;
	}
	for (unsigned l = 0; l < SB_MAX_LAYERS; l++)
		free(c.lh[l]);
	free(c.idx);
	free(c.runs);
	return ret;
}
