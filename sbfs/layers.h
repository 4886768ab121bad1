/* SPDX-License-Identifier: MIT */
/*
 * The root file system of a boot, as the host holds it: up to SB_MAX_LAYERS
 * sbfs images, bottom first (the base layer, then one per --rootfs DIR),
 * each open and mapped read-only here.  The host looks the program up in
 * them (the same resolver as the guest's), hands their descriptors to the
 * backend, and lays them out in the guest's layer window (SB_IMG_GPA).
 */
#ifndef SB_LAYERS_H
#define SB_LAYERS_H
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sbfs/sbfs_host.h"
#include "snapbox_abi.h"

struct layer_set {
	unsigned n;
	struct sbfs_map map[SB_MAX_LAYERS];
	struct sbfs fs[SB_MAX_LAYERS];      /* = map[i].fs, contiguous for sbfs_resolve */
	char what[SB_MAX_LAYERS][256];      /* "base", "--rootfs DIR": for messages */
};

void layers__init(struct layer_set *ls);
void layers__free(struct layer_set *ls);

/* Add the image file at path on top (its header checked; what names it). */
int layers__add_file(struct layer_set *ls, const char *path, const char *what, struct sb_err *err);

/* Build the image of directory dir (into a sealed memfd) and add it on top. */
int layers__add_dir(struct layer_set *ls, const char *dir, struct sb_err *err);

/* Where layer i lies in the guest (2 MiB-aligned, one after the other from
 * SB_IMG_GPA), and the span of all of them (a multiple of 2 MiB). */
uint64_t layers__gpa(const struct layer_set *ls, unsigned i);
uint64_t layers__span(const struct layer_set *ls);
/* The same for any list of sizes (the clone's check of a template's). */
uint64_t layers__span_of(const uint64_t *sizes, unsigned n);

/*
 * Look path (absolute or not: from the root) up in the union, links
 * followed (the last one too if follow): 0 with *hit, or -errno (ENOENT,
 * ENOTDIR, ELOOP, ENAMETOOLONG, EIO).  *data: a regular file's bytes.
 */
int layers__lookup(const struct layer_set *ls, const char *path, int follow, struct sbfs_hit *hit,
		   const uint8_t **data);

/* A bare program name searched in pathvar ("/bin:/usr/bin"), like a shell:
 * the first regular file found, "/dir/name" in out.  0 or -ENOENT. */
int layers__which(const struct layer_set *ls, const char *name, const char *pathvar, char *out,
		  size_t outlen);
#endif
