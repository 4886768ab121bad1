/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbfs/sbfs_host.h"

int sbfs_map__fd(struct sbfs_map *m, int fd, const char *what, struct sb_err *err)
{
	struct stat st;
	void *p;
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = fd;
	if (fstat(fd, &st) < 0) {
		ret = err__errno(err, "%s", what);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct sbfs_header)) {
		ret = err__set(err, -EBADMSG, "%s: not an sbfs image (%s)", what,
			       S_ISREG(st.st_mode) ? "too short" : "not a regular file");
		goto fail;
	}
	m->size = (uint64_t)st.st_size;
	p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		ret = err__errno(err, "%s: mmap", what);
		m->size = 0;
		goto fail;
	}
	m->map = p;
	ret = sbfs__open_checked(&m->fs, m->map, m->size, err);
	if (ret < 0) {
		struct sb_err e = *err;
		err__set(err, ret, "%s: %s", what, e.msg);
		goto fail;
	}
	return 0;
fail:
	sbfs_map__close(m);
	return ret;
}

int sbfs_map__open(struct sbfs_map *m, const char *path, const char *what, struct sb_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (fd < 0)
		return err__errno(err, "%s", what ? what : path);
	return sbfs_map__fd(m, fd, what ? what : path, err);
}

void sbfs_map__close(struct sbfs_map *m)
{
	if (m->map)
		munmap((void *)m->map, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->map = NULL;
	m->size = 0;
	m->fd = -1;
}
