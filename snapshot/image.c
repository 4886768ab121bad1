/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/file.h"
#include "snapshot/overlay.h"
#include "snapshot/snapshot.h"
#include "snapshot/image.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int page_is_zero(const uint64_t *p)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < SNAP_PAGE / 8; i += 8)
		acc |= p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7];
	return acc == 0;
}

uint64_t snap_image__page_hash(const void *page)
{
	uint64_t h;
	if (page_is_zero(page))
		return 0;
	h = XXH3_64bits(page, SNAP_PAGE);
	return h ? h : 1;
}


static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* unique = distinct non-zero hashes; dup = non-zero pages beyond the first of each */
static void count_unique(const uint64_t *hashes, uint64_t n, struct snap_image_stats *st)
{
	uint64_t *v = malloc(n * sizeof(*v)), m = 0;
	if (!v)
		return;
	for (uint64_t i = 0; i < n; i++)
		if (hashes[i])
			v[m++] = hashes[i];
	qsort(v, m, sizeof(*v), cmp_u64);
	st->unique_pages = 0;
	for (uint64_t i = 0; i < m; i++)
		if (i == 0 || v[i] != v[i - 1])
			st->unique_pages++;
	st->dup_pages = m - st->unique_pages;
	free(v);
}

/* The memfd's data pages (SEEK_DATA/SEEK_HOLE: swapped-out pages are data
 * too, unlike mincore's view): 1 in data[] for each.  0 or -errno. */
static int memfd_data(const struct guest_ram *ram, unsigned char *data, uint64_t n)
{
	off_t off = 0, end = (off_t)ram->size;

	memset(data, 0, n);
	while (off < end) {
		off_t d = lseek(ram->fd, off, SEEK_DATA), h;

		if (d < 0)
			return errno == ENXIO ? 0 : -errno;
		h = lseek(ram->fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		if (h > end)
			h = end;
		for (uint64_t i = (uint64_t)d / SNAP_PAGE; i < ((uint64_t)h + SNAP_PAGE - 1) / SNAP_PAGE; i++)
			data[i] = 1;
		off = h;
	}
	return 0;
}

/* Scan RAM: hashes[] per page (never-populated pages are zero, not read). */
static int image__scan(const struct guest_ram *ram, uint64_t *hashes, struct snap_image_stats *st,
		       struct sb_err *err)
{
	uint64_t n = ram->size / SNAP_PAGE;
	unsigned char *resident = malloc(n);
	const uint8_t *base = ram->host;

	if (!resident)
		return err__set(err, -ENOMEM, "out of memory scanning guest RAM");
	/* never-populated pages of anonymous RAM are zero: no need to read them;
	 * a memfd's holes neither (and reading them would allocate them) */
	if (ram->backend == RAM_MEMFD) {
		if (memfd_data(ram, resident, n) < 0)
			memset(resident, 1, n);
	} else if (ram->backend != RAM_ANON || mincore(ram->host, ram->size, resident) < 0) {
		memset(resident, 1, n);
	}
	for (uint64_t i = 0; i < n; i++) {
		hashes[i] = (resident[i] & 1) ? snap_image__page_hash(base + i * SNAP_PAGE) : 0;
		if (!hashes[i])
			st->zero_pages++;
	}
	free(resident);
	st->n_pages = n;
	return 0;
}

/* Write the non-zero pages outside the overlay runs to mem_fd, in runs. */
static int image__write_pages(const struct guest_ram *ram, int mem_fd, const uint64_t *hashes,
			      const struct snap_overlay_set *ov, struct snap_image_stats *st,
			      struct sb_err *err)
{
	uint64_t n = ram->size / SNAP_PAGE, run_start = 0, run_len = 0;
	const uint8_t *base = ram->host;
	uint32_t r = 0;
	int ret = 0;

	for (uint64_t i = 0; i <= n && ret == 0; i++) {
		bool data = i < n && hashes[i];

		while (ov && r < ov->n_runs &&
		       ov->runs[r].gpa + (uint64_t)ov->runs[r].npages * SNAP_PAGE <= i * SNAP_PAGE)
			r++;
		if (data && ov && r < ov->n_runs && ov->runs[r].gpa <= i * SNAP_PAGE)
			data = false; /* the layer's page: a hole */
		if (data && run_len && run_start + run_len == i) {
			run_len++;
			continue;
		}
		if (run_len) {
			ret = file__pwrite_all(mem_fd, base + run_start * SNAP_PAGE, run_len * SNAP_PAGE,
					       (off_t)(run_start * SNAP_PAGE));
			st->written_bytes += run_len * SNAP_PAGE;
		}
		run_start = i;
		run_len = data ? 1 : 0;
	}
	if (ret < 0)
		return err__set(err, ret, "writing %s: %s", SNAP_MEM_FILE, strerror(-ret));
	return 0;
}

/* Hash RAM, find the overlay runs (src may be NULL), write the rest. */
static int image__scan_and_write(const struct guest_ram *ram, int mem_fd, uint64_t *hashes,
				 const struct snap_overlay_src *src, struct snap_overlay_set *ov,
				 struct snap_image_stats *st, struct sb_err *err)
{
	double t0 = now_s(), t1;
	int ret = image__scan(ram, hashes, st, err);

	if (ret == 0)
		ret = snap_overlay__find(ram->host, ram->size / SNAP_PAGE, hashes, src, ov, err);
	t1 = now_s();
	st->scan_s = t1 - t0;
	if (ret < 0)
		return ret;
	st->overlay_runs = ov->n_runs;
	st->overlay_pages = ov->pages;
	ret = image__write_pages(ram, mem_fd, hashes, ov, st, err);
	st->write_s = now_s() - t1;
	return ret;
}

int snap_image__write(const struct guest_ram *ram, int dirfd, const struct snap_overlay_src *src,
		      struct snap_overlay_set *ov, struct snap_image_stats *st, uint64_t *pages_hash,
		      struct sb_err *err)
{
	uint64_t n = ram->size / SNAP_PAGE;
	size_t idx_len = sizeof(struct snap_pages_header) + n * sizeof(uint64_t);
	uint8_t *idx = calloc(1, idx_len);
	struct snap_pages_header *h = (struct snap_pages_header *)idx;
	uint64_t *hashes = (uint64_t *)(idx + sizeof(*h));
	int mem_fd = -1, idx_fd = -1, ret;

	memset(st, 0, sizeof(*st));
	if (!idx)
		return err__set(err, -ENOMEM, "out of memory for the page index");
	mem_fd = openat(dirfd, SNAP_MEM_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (mem_fd < 0) {
		ret = err__errno(err, "create %s", SNAP_MEM_FILE);
		goto out;
	}
	if (ftruncate(mem_fd, (off_t)ram->size) < 0) {
		ret = err__errno(err, "ftruncate %s", SNAP_MEM_FILE);
		goto out;
	}
	ret = image__scan_and_write(ram, mem_fd, hashes, src, ov, st, err);
	if (ret < 0)
		goto out;
	count_unique(hashes, n, st);
	memcpy(h->magic, SNAP_PAGES_MAGIC, 8);
	h->version = SNAP_PAGES_VERSION;
	h->page_size = SNAP_PAGE;
	h->n_pages = n;
	h->zero_pages = st->zero_pages;
	h->unique_pages = st->unique_pages;
	h->dup_pages = st->dup_pages;
	*pages_hash = XXH3_64bits(idx, idx_len);
	idx_fd = openat(dirfd, SNAP_PAGES_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (idx_fd < 0) {
		ret = err__errno(err, "create %s", SNAP_PAGES_FILE);
		goto out;
	}
	ret = file__pwrite_all(idx_fd, idx, idx_len, 0);
	if (ret < 0) {
		err__set(err, ret, "writing %s: %s", SNAP_PAGES_FILE, strerror(-ret));
		goto out;
	}
	if (fdatasync(mem_fd) < 0 || fdatasync(idx_fd) < 0)
		ret = err__errno(err, "fdatasync of the memory image");
out:
	if (mem_fd >= 0)
		close(mem_fd);
	if (idx_fd >= 0)
		close(idx_fd);
	free(idx);
	return ret < 0 ? ret : 0;
}

int snap_image__read_index(int dirfd, uint64_t mem_size, struct snap_pages_header *hdr,
			   uint64_t *hash, struct sb_err *err)
{
	uint64_t n = mem_size / SNAP_PAGE;
	size_t len = sizeof(*hdr) + n * 8;
	struct stat sb;
	const uint8_t *p;
	int fd = openat(dirfd, SNAP_PAGES_FILE, O_RDONLY | O_CLOEXEC), ret = 0;

	/* mapped, not read: hashing 512 KiB in the page cache costs ~50 us */
	if (fd < 0 || fstat(fd, &sb) < 0) {
		ret = err__errno(err, "%s", SNAP_PAGES_FILE);
		goto out;
	}
	if ((uint64_t)sb.st_size != len) {
		ret = err__set(err, -EBADMSG, "%s is %lld bytes, expected %zu for %llu pages",
			       SNAP_PAGES_FILE, (long long)sb.st_size, len, (unsigned long long)n);
		goto out;
	}
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ret = err__errno(err, "mmap %s", SNAP_PAGES_FILE);
		goto out;
	}
	memcpy(hdr, p, sizeof(*hdr));
	*hash = XXH3_64bits(p, len);
	munmap((void *)p, len);
	if (memcmp(hdr->magic, SNAP_PAGES_MAGIC, 8))
		ret = err__set(err, -EBADMSG, "%s: not a page index (bad magic)", SNAP_PAGES_FILE);
	else if (hdr->version != SNAP_PAGES_VERSION || hdr->page_size != SNAP_PAGE || hdr->n_pages != n)
		ret = err__set(err, -EBADMSG, "%s: version %u, page size %u, %llu pages: not this template's",
			       SNAP_PAGES_FILE, hdr->version, hdr->page_size,
			       (unsigned long long)hdr->n_pages);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static const void *map_file(int dirfd, const char *name, size_t len, struct sb_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0) {
		err__errno(err, "%s", name);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		err__errno(err, "mmap %s", name);
		return NULL;
	}
	return p;
}

/* The layer images the overlay runs name, mapped read-only (the rest NULL). */
static int map_layers(const struct snapshot *s, const uint8_t **img, struct sb_err *err)
{
	for (uint32_t r = 0; r < s->n_runs; r++) {
		unsigned l = s->runs[r].layer;
		int fd;
		void *p;

		if (img[l])
			continue;
		fd = snapshot__open_layer(s, l, err);
		if (fd < 0)
			return fd;
		p = mmap(NULL, s->layers.layers[l].size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			return err__errno(err, "mmap of the template's layer %u", l);
		img[l] = p;
	}
	return 0;
}

static void unmap_layers(const struct snapshot *s, const uint8_t **img)
{
	for (unsigned l = 0; l < SB_MAX_LAYERS; l++)
		if (img[l])
			munmap((void *)img[l], s->layers.layers[l].size);
}

int snap_image__verify(const struct snapshot *s, uint64_t *bad, struct sb_err *err)
{
	struct snap_pages_header h;
	uint64_t hash, mem_size = s->hdr.mem_size, n = mem_size / SNAP_PAGE;
	size_t idx_len = sizeof(h) + n * 8;
	const uint8_t *idx, *mem, *img[SB_MAX_LAYERS] = { 0 };
	const uint64_t *hashes;
	struct stat sb;
	uint32_t r = 0;
	int ret = snap_image__read_index(s->dirfd, mem_size, &h, &hash, err);

	*bad = 0;
	if (ret < 0)
		return ret;
	if (fstatat(s->dirfd, SNAP_MEM_FILE, &sb, 0) < 0)
		return err__errno(err, "%s", SNAP_MEM_FILE);
	if ((uint64_t)sb.st_size != mem_size)
		return err__set(err, -EBADMSG, "%s is %lld bytes, the template's RAM is %llu",
				SNAP_MEM_FILE, (long long)sb.st_size, (unsigned long long)mem_size);
	ret = map_layers(s, img, err);
	if (ret < 0) {
		unmap_layers(s, img);
		return ret;
	}
	idx = map_file(s->dirfd, SNAP_PAGES_FILE, idx_len, err);
	mem = idx ? map_file(s->dirfd, SNAP_MEM_FILE, mem_size, err) : NULL;
	if (!mem) {
		if (idx)
			munmap((void *)idx, idx_len);
		unmap_layers(s, img);
		return -EIO;
	}
	hashes = (const uint64_t *)(idx + sizeof(h));
	madvise((void *)mem, mem_size, MADV_SEQUENTIAL);
	for (uint64_t i = 0; i < n; i++) {
		const struct snap_overlay_run *o;
		const uint8_t *page = mem + i * SNAP_PAGE;
		char where[160];

		while (r < s->n_runs &&
		       s->runs[r].gpa + (uint64_t)s->runs[r].npages * SNAP_PAGE <= i * SNAP_PAGE)
			r++;
		o = r < s->n_runs && s->runs[r].gpa <= i * SNAP_PAGE ? &s->runs[r] : NULL;
		if (!o) {
			if (snap_image__page_hash(page) == hashes[i])
				continue;
			snprintf(where, sizeof(where), "%s: page %llu (offset 0x%llx) does not match its hash",
				 SNAP_MEM_FILE, (unsigned long long)i, (unsigned long long)(i * SNAP_PAGE));
		} else {
			uint64_t off = o->img_off + (i * SNAP_PAGE - o->gpa);
			char rel[64];

			/* the layer's page where mem.img has a hole */
			if (snap_image__page_hash(img[o->layer] + off) == hashes[i] &&
			    snap_image__page_hash(page) == 0)
				continue;
			snapshot__layer_path(s, o->layer, rel, sizeof(rel));
			if (snap_image__page_hash(page))
				snprintf(where, sizeof(where), "%s: page %llu (offset 0x%llx) holds data "
					 "where the template maps its layer", SNAP_MEM_FILE,
					 (unsigned long long)i, (unsigned long long)(i * SNAP_PAGE));
			else
				snprintf(where, sizeof(where), "page %llu (an overlay page) does not match "
					 "its hash in %s at offset 0x%llx", (unsigned long long)i, rel,
					 (unsigned long long)off);
		}
		if (!*bad)
			err__set(err, -EBADMSG, "%s", where);
		(*bad)++;
	}
	munmap((void *)mem, mem_size);
	munmap((void *)idx, idx_len);
	unmap_layers(s, img);
	return *bad ? -EBADMSG : 0;
}
