/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/format.h"
#include "snapshot/pristine.h"
#include "snapshot/snapshot.h"

static int map_ro(int dirfd, const char *name, size_t len, const uint8_t **out,
		  struct sb_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), ret = 0;
	struct stat sb;
	void *p;

	if (fd < 0)
		return err__errno(err, "%s", name);
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < len)
		ret = err__set(err, -EBADMSG, "%s is shorter than the template says", name);
	else if ((p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
		ret = err__errno(err, "mmap %s", name);
	else
		*out = p;
	close(fd);
	return ret;
}

/* The layer images the template's overlay runs name, and the runs. */
static int pristine__layers(struct snap_pristine *p, const struct snapshot *s, struct sb_err *err)
{
	if (!s->n_runs)
		return 0;
	p->runs = malloc(s->n_runs * sizeof(*p->runs));
	if (!p->runs)
		return err__set(err, -ENOMEM, "out of memory");
	memcpy(p->runs, s->runs, s->n_runs * sizeof(*p->runs));
	p->n_runs = s->n_runs;
	for (uint32_t r = 0; r < s->n_runs; r++) {
		unsigned l = s->runs[r].layer;
		void *m;
		int fd;

		if (p->layer[l])
			continue;
		fd = snapshot__open_layer(s, l, err);
		if (fd < 0)
			return fd;
		m = mmap(NULL, s->layers.layers[l].size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (m == MAP_FAILED)
			return err__errno(err, "mmap of the template's layer %u", l);
		p->layer[l] = m;
		p->layer_size[l] = s->layers.layers[l].size;
	}
	return 0;
}

int snap_pristine__open(struct snap_pristine *p, const struct snapshot *s, struct sb_err *err)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->mem_size = s->hdr.mem_size;
	p->idx_len = sizeof(struct snap_pages_header) + s->hdr.mem_size / SNAP_PAGE * 8;
	ret = map_ro(s->dirfd, SNAP_MEM_FILE, s->hdr.mem_size, &p->img, err);

	if (ret == 0)
		ret = map_ro(s->dirfd, SNAP_PAGES_FILE, p->idx_len, &p->idx, err);
	if (ret == 0)
		ret = pristine__layers(p, s, err);
	if (ret < 0)
		snap_pristine__close(p);
	return ret;
}

const void *snap_pristine__page(const struct snap_pristine *p, uint64_t gpa)
{
	const struct snap_overlay_run *r;
	uint64_t h;

	memcpy(&h, p->idx + sizeof(struct snap_pages_header) + gpa / SNAP_PAGE * 8, 8);
	if (!h)
		return NULL;
	r = p->n_runs ? snapshot__overlay_find(p->runs, p->n_runs, gpa) : NULL;
	return r ? p->layer[r->layer] + r->img_off + (gpa - r->gpa) : p->img + gpa;
}

void snap_pristine__close(struct snap_pristine *p)
{
	if (p->img)
		munmap((void *)p->img, p->mem_size);
	if (p->idx)
		munmap((void *)p->idx, p->idx_len);
	for (unsigned l = 0; l < SB_MAX_LAYERS; l++)
		if (p->layer[l])
			munmap((void *)p->layer[l], p->layer_size[l]);
	free(p->runs);
	memset(p, 0, sizeof(*p));
}
