/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for sbfs layer images: the host's full check
 * (sbfs__verify, sbfs/check.c) and the reader the guest kernel runs on
 * every open (guest/lib/sbfs.c: sbfs_open, lookups, symlink resolution,
 * directory entries, file data).  Every input is used
 *
 *   1. as-is, and
 *   2. with the id (the content hash in the header) and every in-bounds
 *      file's xxh3 recomputed, so that mutations reach the structural
 *      checks behind the hashes.
 *
 * Whatever the bytes, the reader must stay inside them (an exactly-sized
 * heap copy: ASan sees any read past the end) and end (no endless probe or
 * link loop), and a refusal is a one-line message.  An image the full check
 * accepts must also read back consistently: every inode found at its own
 * path, every file's bytes inside the image, every directory's entries.
 * Corpus: tests/fuzz/sbfs-corpus/ (small images of trees with every kind
 * of entry).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sbfs/sbfs_host.h"
#include "sbtypes.h"

#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, "fuzz_sbfs: invariant failed: %s\n", #c); \
			abort();                                                  \
		}                                                                 \
	} while (0)

static uint64_t sink;

/* The guest kernel's uses: resolve each inode's path with and without
 * following links, list each directory, read each file and target. */
static void read_everything(const uint8_t *img, size_t size, int verified)
{
	struct sbfs fs;

	if (sbfs_open(&fs, img, size)) {
		CHECK(!verified);
		return;
	}
	for (uint32_t i = 0; i < fs.h.n_inodes && i < 2048; i++) {
		struct sbfs_inode n, m;
		struct sbfs_hit h;
		const char *p, *t;
		const uint8_t *d;
		char path[512], tmp[512];

		if (sbfs_inode(&fs, i, &n) || !(p = sbfs_name(&fs, n.path_off, n.path_len))) {
			CHECK(!verified);
			continue;
		}
		if (verified)
			CHECK(sbfs_lookup(&fs, p, n.path_len, &m) == i);
		if (sbfs_file(&fs, &n, &d) == 0) {
			CHECK(d >= img && d + n.size <= img + size);
			if (n.size)
				sink += d[0] + d[n.size - 1];
		}
		if (sbfs_link(&fs, &n, &t) == 0)
			sink += (uint8_t)t[0] + (uint8_t)t[n.size - 1];
		for (uint64_t k = 0; k < n.size && k < 1024; k++) {
			struct sbfs_dirent e;
			const char *name;

			if (sbfs_dirent(&fs, &n, k, &e, &name)) {
				CHECK(!verified || (n.mode & SBFS_S_IFMT) != SBFS_S_IFDIR);
				break;
			}
			sink += (uint8_t)name[e.name_len - 1];
		}
		if (n.path_len < 256 && sbfs_normalize(p, n.path_len, path, sizeof(path)) == 0) {
			char again[512];

			memcpy(again, path, sizeof(again));
			if (sbfs_resolve(&fs, 1, path, tmp, sizeof(path), 1, &h) == 0)
				CHECK(h.layer == 0 && h.ino < fs.h.n_inodes);
			if (sbfs_resolve(&fs, 1, again, tmp, sizeof(again), 0, &h) == 0 && verified)
				CHECK(h.ino == i);
		}
	}
}

static void use(const uint8_t *img, size_t size)
{
	struct sb_err err;
	int ret;

	memset(&err, 0, sizeof(err));
	ret = sbfs__verify(img, size, &err);
	if (ret < 0) {
		CHECK(memchr(err.msg, 0, sizeof(err.msg)) != NULL);
		CHECK(err.msg[0] != 0);
		CHECK(strchr(err.msg, '\n') == NULL);
	}
	read_everything(img, size, ret == 0);
}

/* Recompute each in-bounds file's xxh3 and the id. */
static void fix_hashes(uint8_t *img, size_t size)
{
	struct sbfs_header h;

	if (size < sizeof(h))
		return;
	memcpy(&h, img, sizeof(h));
	if (h.inode_size == sizeof(struct sbfs_inode) && h.n_inodes <= 4096 &&
	    sb_range_in(h.inodes_off, (uint64_t)h.n_inodes * sizeof(struct sbfs_inode), 0, size)) {
		for (uint32_t i = 0; i < h.n_inodes; i++) {
			struct sbfs_inode n;
			uint8_t *at = img + h.inodes_off + (uint64_t)i * sizeof(n);

			memcpy(&n, at, sizeof(n));
			if ((n.mode & SBFS_S_IFMT) == SBFS_S_IFREG && sb_range_in(n.data_off, n.size, 0, size)) {
				n.xxh3 = XXH3_64bits(img + n.data_off, n.size);
				memcpy(at, &n, sizeof(n));
			}
		}
	}
	sbfs__compute_id(img, size, ((struct sbfs_header *)img)->id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	use(buf, size);
	memcpy(buf, data, size);
	fix_hashes(buf, size);
	use(buf, size);
	free(buf);
	return (int)(sink & 0);
}
