/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbfs/layers.h"

#define PATH_BUF 4096

void layers__init(struct layer_set *ls)
{
	memset(ls, 0, sizeof(*ls));
	for (unsigned i = 0; i < SB_MAX_LAYERS; i++)
		ls->map[i].fd = -1;
}

void layers__free(struct layer_set *ls)
{
	for (unsigned i = 0; i < ls->n; i++)
		sbfs_map__close(&ls->map[i]);
	layers__init(ls);
}

static int layers__room(const struct layer_set *ls, const char *what, struct sb_err *err)
{
	if (ls->n == SB_MAX_LAYERS)
		return err__set(err, -E2BIG, "%s: more than %d root file system layers (the base, python3.11 and "
				"%d --rootfs; %d with --no-python)", what, SB_MAX_LAYERS, SB_MAX_LAYERS - 2,
				SB_MAX_LAYERS - 1);
	return 0;
}

static int layers__push(struct layer_set *ls, const char *what, struct sb_err *err)
{
	struct sbfs_map *m = &ls->map[ls->n];

	if (layers__span(ls) + ((m->size + SB_PAGE_2M - 1) & ~(SB_PAGE_2M - 1)) > SB_IMG_MAX) {
		int ret = err__set(err, -EFBIG, "%s: the root file system layers add up to more than %llu GiB",
				   what, SB_IMG_MAX >> 30);
		sbfs_map__close(m);
		return ret;
	}
	ls->fs[ls->n] = m->fs;
	snprintf(ls->what[ls->n], sizeof(ls->what[0]), "%s", what);
	ls->n++;
	return 0;
}

int layers__add_file(struct layer_set *ls, const char *path, const char *what, struct sb_err *err)
{
	int ret = layers__room(ls, what, err);

	if (ret == 0)
		ret = sbfs_map__open(&ls->map[ls->n], path, what, err);
	return ret < 0 ? ret : layers__push(ls, what, err);
}

int layers__add_dir(struct layer_set *ls, const char *dir, struct sb_err *err)
{
	char what[300];
	uint8_t id[16];
	int fd, ret;

	snprintf(what, sizeof(what), "--rootfs %s", dir);
	ret = layers__room(ls, what, err);
	if (ret < 0)
		return ret;
	fd = memfd_create("snapbox-layer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return err__errno(err, "memfd_create for %s", what);
	ret = sbfs__build_dir(dir, fd, id, NULL, err);
	if (ret < 0) {
		struct sb_err e = *err;
		close(fd);
		return err__set(err, ret, "--rootfs: %s", e.msg);
	}
	/* nobody changes it any more: not us, not whoever we hand it to */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		ret = err__errno(err, "sealing the image of %s", what);
		close(fd);
		return ret;
	}
	ret = sbfs_map__fd(&ls->map[ls->n], fd, what, err);
	return ret < 0 ? ret : layers__push(ls, what, err);
}

uint64_t layers__span_of(const uint64_t *sizes, unsigned n)
{
	uint64_t span = 0;

	for (unsigned i = 0; i < n; i++)
		span += (sizes[i] + SB_PAGE_2M - 1) & ~(SB_PAGE_2M - 1);
	return span;
}

uint64_t layers__gpa(const struct layer_set *ls, unsigned i)
{
	uint64_t sizes[SB_MAX_LAYERS];

	for (unsigned k = 0; k < i && k < SB_MAX_LAYERS; k++)
		sizes[k] = ls->map[k].size;
	return SB_IMG_GPA + layers__span_of(sizes, i);
}

uint64_t layers__span(const struct layer_set *ls)
{
	return layers__gpa(ls, ls->n) - SB_IMG_GPA;
}

int layers__lookup(const struct layer_set *ls, const char *path, int follow, struct sbfs_hit *hit,
		   const uint8_t **data)
{
	char p[PATH_BUF], tmp[PATH_BUF];
	int r = sbfs_normalize(path, strlen(path), p, sizeof(p));

	if (r == 0)
		r = sbfs_resolve(ls->fs, ls->n, p, tmp, sizeof(p), follow, hit);
	if (r == 0 && data && (hit->n.mode & SBFS_S_IFMT) == SBFS_S_IFREG &&
	    sbfs_file(&ls->fs[hit->layer], &hit->n, data))
		r = -EIO;
	return r;
}

int layers__which(const struct layer_set *ls, const char *name, const char *pathvar, char *out,
		  size_t outlen)
{
	const char *p = pathvar;

	while (p && *p) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct sbfs_hit h;

		if ((size_t)snprintf(out, outlen, "%s%.*s/%s", len && p[0] == '/' ? "" : "/", (int)len, p,
				     name) < outlen &&
		    layers__lookup(ls, out, 1, &h, NULL) == 0 &&
		    (h.n.mode & SBFS_S_IFMT) == SBFS_S_IFREG)
			return 0;
		p = end ? end + 1 : NULL;
	}
	return -ENOENT;
}
