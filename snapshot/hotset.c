/* SPDX-License-Identifier: MIT */
/*
 * The template's write set (format 1.5, SNAP_SEC_HOTSET): built from the
 * ranges a training request wrote, and put into state.bin of a template
 * still being written (the last section, written empty by the save).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "snapshot/snapshot.h"

uint32_t snapshot__hotset_build(const uint64_t (*ranges)[2], size_t n, uint64_t base,
				struct snap_hotset *hs, struct snap_hot_range *out)
{
	/* coalesce into a scratch list (sorted input), closing gaps <= gap */
	uint64_t gap = 0;
	uint32_t k;

	for (;;) {
		bool over = false;

		k = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t lo = ranges[i][0] - base, hi = ranges[i][1] - base;

			if (hi <= lo)
				continue;
			if (k && lo <= out[k - 1].gpa + (uint64_t)out[k - 1].npages * SNAP_PAGE + gap) {
				out[k - 1].npages = (uint32_t)((hi - out[k - 1].gpa) / SNAP_PAGE);
				continue;
			}
			if (k == SNAP_HOTSET_MAX) {
				over = true;
				break;
			}
			out[k++] = (struct snap_hot_range){ .gpa = lo, .npages = (uint32_t)((hi - lo) / SNAP_PAGE) };
		}
		if (!over)
			break;
		gap = gap ? gap * 2 : SNAP_PAGE; /* too many: close wider gaps */
	}
	hs->n_ranges = k;
	hs->pages = 0;
	for (uint32_t i = 0; i < k; i++)
		hs->pages += out[i].npages;
	return k;
}

int snapshot__set_hotset(int dirfd, const struct snap_hotset *hs, const struct snap_hot_range *r,
			 char id[33], struct sb_err *err)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	size_t hlen = hs->n_ranges * sizeof(*r), len, tl;
	uint8_t *buf = NULL;
	struct stat sb;
	int fd, ret = 0;
	uint32_t last;

	fd = openat(dirfd, SNAP_STATE_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "%s", SNAP_STATE_FILE);
	if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(h) ||
	    !(buf = malloc((size_t)sb.st_size + sizeof(*hs) + hlen)) ||
	    pread(fd, buf, (size_t)sb.st_size, 0) != sb.st_size) {
		close(fd);
		free(buf);
		return err__set(err, -EIO, "reading %s back", SNAP_STATE_FILE);
	}
	close(fd);
	memcpy(&h, buf, sizeof(h));
	tl = h.n_sections * sizeof(t[0]);
	if (h.n_sections == 0 || h.n_sections > SNAP_MAX_SECTIONS ||
	    sizeof(h) + tl > (size_t)sb.st_size) {
		free(buf);
		return err__set(err, -EBADMSG, "%s: not as written", SNAP_STATE_FILE);
	}
	memcpy(t, buf + sizeof(h), tl);
	last = h.n_sections - 1;
	if (t[last].type != SNAP_SEC_HOTSET || t[last].offset + t[last].length != (uint64_t)sb.st_size) {
		free(buf);
		return err__set(err, -EBADMSG, "%s: the hotset section is not the last", SNAP_STATE_FILE);
	}
	memcpy(buf + t[last].offset, hs, sizeof(*hs));
	memcpy(buf + t[last].offset + sizeof(*hs), r, hlen);
	t[last].length = sizeof(*hs) + hlen;
	t[last].hash = XXH3_64bits(buf + t[last].offset, t[last].length);
	len = t[last].offset + t[last].length;
	memcpy(buf + sizeof(h), t, tl);
	h.table_hash = XXH3_64bits(t, tl);
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	memcpy(buf, &h, sizeof(h));
	{
		XXH128_hash_t id128 = XXH3_128bits(buf, len);

		snprintf(id, 33, "%016llx%016llx", (unsigned long long)id128.high64,
			 (unsigned long long)id128.low64);
	}
	unlinkat(dirfd, SNAP_STATE_FILE ".new", 0);
	fd = openat(dirfd, SNAP_STATE_FILE ".new", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		ret = err__errno(err, "create %s.new", SNAP_STATE_FILE);
	else if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd) < 0)
		ret = err__errno(err, "write %s.new", SNAP_STATE_FILE);
	if (fd >= 0)
		close(fd);
	if (ret == 0 && renameat(dirfd, SNAP_STATE_FILE ".new", dirfd, SNAP_STATE_FILE) < 0)
		ret = err__errno(err, "rename %s.new", SNAP_STATE_FILE);
	if (ret < 0)
		unlinkat(dirfd, SNAP_STATE_FILE ".new", 0);
	free(buf);
	return ret;
}
