/* SPDX-License-Identifier: MIT */
/*
 * The host side of sbfs images (format: guest/include/sbfs.h): the builder
 * (a directory tree -> an image, deterministically) and the full check.
 * `snapbox image build|inspect|verify` and `make` (build/guest/base.sbfs)
 * use them, and so do `boot` and `template create` for each --rootfs DIR.
 */
#ifndef SB_SBFS_HOST_H
#define SB_SBFS_HOST_H
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "sbfs.h"

struct sbfs_build_stats {
	uint64_t inodes, dirs, files, links;  /* what the image holds */
	uint64_t unique_files;                /* distinct non-empty contents stored */
	uint64_t file_bytes;                  /* sum of the regular files' sizes */
	uint64_t data_bytes;                  /* stored, page-padded */
	uint64_t meta_bytes;                  /* header + tables (data_off) */
	uint64_t image_size;
	uint64_t skipped;                     /* devices, fifos, sockets: not in a sandbox */
};

/*
 * Build the image of directory dir (its regular files, directories and
 * symlinks, verbatim, with their modes and mtimes; devices, fifos and
 * sockets are skipped) into out_fd, an empty writable regular file or
 * memfd, which ends up exactly image_size bytes.  id gets the image's id.
 * The same tree always gives the same bytes.  0 or -errno + message.
 */
int sbfs__build_dir(const char *dir, int out_fd, uint8_t id[16], struct sbfs_build_stats *st,
		    struct sb_err *err);

/* The id of an image (xxh3-128 with its id field taken as zero). */
void sbfs__compute_id(const uint8_t *img, uint64_t size, uint8_t id[16]);

/* "0123...": 32 lower-case hex digits and a NUL. */
void sbfs__id_hex(const uint8_t id[16], char hex[33]);

/*
 * Check a whole image in memory: the header (sbfs_open), every inode,
 * directory entry, hash bucket and data range, that the tree is a tree (each
 * inode but the root named once, by its parent, with its own path), the
 * zero padding, each file's xxh3 and the id.  0 or -EBADMSG + a one-line
 * message (-EPROTONOSUPPORT for another major version).
 */
int sbfs__verify(const uint8_t *img, uint64_t size, struct sb_err *err);

/* The header check alone, with a message: 0 or -EBADMSG/-EPROTONOSUPPORT. */
int sbfs__open_checked(struct sbfs *fs, const void *img, uint64_t size, struct sb_err *err);

/* An image file mapped read-only (MAP_PRIVATE), its header checked. */
struct sbfs_map {
	int fd;                 /* O_RDONLY, close-on-exec; -1 when closed */
	const uint8_t *map;
	uint64_t size;
	struct sbfs fs;
};
/* Open and map path (what names it in messages, e.g. "--rootfs DIR"; NULL:
 * the path).  0 or -errno + message. */
int sbfs_map__open(struct sbfs_map *m, const char *path, const char *what, struct sb_err *err);
/* The same for an open fd, which m then owns (closed on failure too). */
int sbfs_map__fd(struct sbfs_map *m, int fd, const char *what, struct sb_err *err);
void sbfs_map__close(struct sbfs_map *m);
#endif
