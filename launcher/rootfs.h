/* SPDX-License-Identifier: MIT */
/*
 * The guest's root file system: a newc cpio archive.  The base image
 * (build/guest/rootfs.cpio, or --initrd) comes first, then every --rootfs
 * DIR overlay appended as more entries, then one TRAILER!!!.  The guest
 * kernel lets the last entry of a name win, so overlays replace base files.
 */
#ifndef SB_ROOTFS_H
#define SB_ROOTFS_H
#include <stddef.h>
#include <stdint.h>

#include "cpio.h"
#include "common/err.h"

struct rootfs {
	uint8_t *buf;
	uint64_t size;
	uint64_t cap;
	uint32_t next_ino;
	int finished;
};

void rootfs__init(struct rootfs *fs);
void rootfs__free(struct rootfs *fs);

/* Start from the cpio archive at path (its trailer is dropped). */
int rootfs__load_base(struct rootfs *fs, const char *path, struct sb_err *err);

/* Append everything under dir: directories, regular files, and symlinks
 * that resolve to regular files inside dir (stored as regular files). */
int rootfs__add_dir(struct rootfs *fs, const char *dir, struct sb_err *err);

/* Append the TRAILER!!! record; no more additions after this. */
int rootfs__finish(struct rootfs *fs, struct sb_err *err);

/*
 * Find path ("/bin/lua", leading "/" optional) in a finished archive; the
 * last entry with that name wins and symlinks inside the archive are
 * followed.  Returns 0, -ENOENT, -ELOOP or -EINVAL (malformed archive).
 */
int rootfs__lookup(const uint8_t *cpio, uint64_t size, const char *path,
		   struct sb_cpio_entry *out);

/* Search name (no "/") in the ':'-separated dirs of pathvar; writes "/dir/name". */
int rootfs__which(const uint8_t *cpio, uint64_t size, const char *name, const char *pathvar,
		  char *out, size_t outlen);
#endif
