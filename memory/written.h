/* SPDX-License-Identifier: MIT */
/*
 * Which pages of a private file mapping a process has written: those that
 * are now its own anonymous copies (present or swapped, not the file's).
 * Used to put a recycled sandbox back to its template: pages only read
 * stay the file's (page cache) pages, pages never touched are not there.
 * Linux >= 6.7 answers in one PAGEMAP_SCAN ioctl on /proc/PID/pagemap with
 * the ranges themselves; older kernels (Debian 12's 6.1, inside the emulated
 * KVM host) by reading one pagemap entry per page.
 */
#ifndef SB_WRITTEN_H
#define SB_WRITTEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct written_range {
	uint64_t start, end;   /* addresses in the scanned process, page-aligned */
};

struct written_scan {
	int fd;                /* /proc/PID/pagemap */
	bool no_ioctl;         /* PAGEMAP_SCAN missing: read entries */
	struct written_range *r;
	size_t n, cap;         /* ranges found by the last scan */
	uint64_t *buf;         /* entries, for the fallback */
};

/* Open pid's pagemap (0: our own).  0 or -errno + message. */
int written__open(struct written_scan *ws, pid_t pid, struct sb_err *err);
/* Find the written pages of [start, end) (page-aligned): ws->r[0..n). */
int written__scan(struct written_scan *ws, uint64_t start, uint64_t end, struct sb_err *err);
void written__close(struct written_scan *ws);
#endif
