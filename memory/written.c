/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "memory/written.h"

/* <linux/fs.h> of Linux 6.7+ (Debian 12's headers are 6.1) */
#define SB_PAGEMAP_SCAN 0xc0606610UL /* _IOWR('f', 16, struct pm_scan_arg) */
#define SB_PAGE_IS_FILE (1ULL << 2)
#define SB_PAGE_IS_PRESENT (1ULL << 3)
#define SB_PAGE_IS_SWAPPED (1ULL << 4)
#define SB_PAGE_IS_PFNZERO (1ULL << 5)
struct sb_page_region {
	uint64_t start, end, categories;
};
struct sb_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
_Static_assert(sizeof(struct sb_pm_scan_arg) == 96, "pm_scan_arg size");

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE (1ULL << 61)

#define PAGE 4096ULL
#define FALLBACK_CHUNK 8192 /* entries per read: 32 MiB of address space */

int written__open(struct written_scan *ws, pid_t pid, struct sb_err *err)
{
	char path[64];

	memset(ws, 0, sizeof(*ws));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	ws->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ws->fd < 0)
		return err__errno(err, "open %s", path);
	return 0;
}

void written__close(struct written_scan *ws)
{
	if (ws->fd > 0)
		close(ws->fd);
	free(ws->r);
	free(ws->buf);
	memset(ws, 0, sizeof(*ws));
	ws->fd = -1;
}

static int add(struct written_scan *ws, uint64_t start, uint64_t end)
{
	if (ws->n && ws->r[ws->n - 1].end == start) {
		ws->r[ws->n - 1].end = end;
		return 0;
	}
	if (ws->n == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 64;
		struct written_range *r = realloc(ws->r, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		ws->r = r;
		ws->cap = cap;
	}
	ws->r[ws->n++] = (struct written_range){ start, end };
	return 0;
}

static int scan_ioctl(struct written_scan *ws, uint64_t start, uint64_t end)
{
	struct sb_page_region v[256];

	while (start < end) {
		struct sb_pm_scan_arg a = {
			.size = sizeof(a), .start = start, .end = end,
			.vec = (uint64_t)(uintptr_t)v, .vec_len = 256,
			/* not the file's page, not the shared zero page (a read of
			 * untouched anonymous memory maps it) */
			.category_inverted = SB_PAGE_IS_FILE | SB_PAGE_IS_PFNZERO,
			.category_mask = SB_PAGE_IS_FILE | SB_PAGE_IS_PFNZERO,
			.category_anyof_mask = SB_PAGE_IS_PRESENT | SB_PAGE_IS_SWAPPED,
			.return_mask = SB_PAGE_IS_PRESENT | SB_PAGE_IS_SWAPPED,
		};
		long n = ioctl(ws->fd, SB_PAGEMAP_SCAN, &a);
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			if (add(ws, v[i].start, v[i].end) < 0)
				return -ENOMEM;
		if (a.walk_end <= start || (n < 256 && a.walk_end < end))
			return -EIO; /* no progress: do not loop */
		start = a.walk_end;
	}
	return 0;
}

static int scan_read(struct written_scan *ws, uint64_t start, uint64_t end)
{
	if (!ws->buf && !(ws->buf = malloc(FALLBACK_CHUNK * sizeof(uint64_t))))
		return -ENOMEM;
	for (uint64_t a = start; a < end;) {
		uint64_t n = (end - a) / PAGE;
		if (n > FALLBACK_CHUNK)
			n = FALLBACK_CHUNK;
		ssize_t got = pread(ws->fd, ws->buf, n * 8, (off_t)(a / PAGE * 8));
		if (got < 0)
			return -errno;
		if (got == 0 || got % 8)
			return -EIO;
		for (uint64_t i = 0; i < (uint64_t)got / 8; i++) {
			uint64_t e = ws->buf[i];
			if ((e & (PM_PRESENT | PM_SWAPPED)) && !(e & PM_FILE) &&
			    add(ws, a + i * PAGE, a + (i + 1) * PAGE) < 0)
				return -ENOMEM;
		}
		a += (uint64_t)got / 8 * PAGE;
	}
	return 0;
}

int written__scan(struct written_scan *ws, uint64_t start, uint64_t end, struct sb_err *err)
{
	int ret = -ENOTTY;

	ws->n = 0;
	if (start % PAGE || end % PAGE || end < start)
		return err__set(err, -EINVAL, "page scan of an unaligned range");
	if (!ws->no_ioctl) {
		ret = scan_ioctl(ws, start, end);
		if (ret == -ENOTTY || ret == -EINVAL) {
			ws->no_ioctl = true; /* a kernel before 6.7 */
			ws->n = 0;
		}
	}
	if (ws->no_ioctl)
		ret = scan_read(ws, start, end);
	if (ret < 0)
		return err__set(err, ret, "finding the pages a sandbox wrote: %s", strerror(-ret));
	return 0;
}
