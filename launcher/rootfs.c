/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "launcher/rootfs.h"

#define ROOTFS_MAX_SIZE (4ULL << 30)
#define ROOTFS_FIRST_INO 0x10000000u
#define ROOTFS_MAX_LINKS 8
#define NEWC_TRAILER "TRAILER!!!"

void rootfs__init(struct rootfs *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->next_ino = ROOTFS_FIRST_INO;
}

void rootfs__free(struct rootfs *fs)
{
	free(fs->buf);
	rootfs__init(fs);
}

/* ---- building ----------------------------------------------------------- */

static int rootfs__reserve(struct rootfs *fs, uint64_t more, struct sb_err *err)
{
	uint64_t need, cap;
	uint8_t *p;

	if (!sb_add_ok(fs->size, more, &need) || need > ROOTFS_MAX_SIZE)
		return err__set(err, -EFBIG, "root file system image larger than %llu GiB",
				ROOTFS_MAX_SIZE >> 30);
	if (need <= fs->cap)
		return 0;
	cap = fs->cap ? fs->cap : 1 << 20;
	while (cap < need)
		cap *= 2;
	p = realloc(fs->buf, cap);
	if (!p)
		return err__set(err, -ENOMEM, "out of memory building the root file system");
	fs->buf = p;
	fs->cap = cap;
	return 0;
}

static void rootfs__pad4(struct rootfs *fs)
{
	while (fs->size & 3)
		fs->buf[fs->size++] = 0;
}

/* newc header + name + padding; the caller appends filesize bytes of data. */
static int rootfs__header(struct rootfs *fs, const char *name, uint32_t mode, uint64_t filesize,
			  struct sb_err *err)
{
	size_t namesize = strlen(name) + 1;
	char hdr[SB_CPIO_HDR + 16];
	int ret;

	if (filesize > UINT32_MAX)
		return err__set(err, -EFBIG, "%s: too large for a cpio archive (4 GiB limit)", name);
	ret = rootfs__reserve(fs, SB_CPIO_HDR + namesize + 3 + filesize + 3, err);
	if (ret < 0)
		return ret;
	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 fs->next_ino++, mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, (uint32_t)filesize,
		 0u, 0u, 0u, 0u, (uint32_t)namesize, 0u);
	memcpy(fs->buf + fs->size, hdr, SB_CPIO_HDR);
	fs->size += SB_CPIO_HDR;
	memcpy(fs->buf + fs->size, name, namesize);
	fs->size += namesize;
	rootfs__pad4(fs);
	return 0;
}

static int rootfs__file_data(struct rootfs *fs, const char *path, uint64_t size,
			     struct sb_err *err)
{
	uint64_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err__errno(err, "--rootfs: open %s", path);
	while (done < size) {
		ssize_t n = read(fd, fs->buf + fs->size + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int ret = n < 0 ? err__errno(err, "--rootfs: read %s", path)
					: err__set(err, -EIO, "--rootfs: %s shrank while reading", path);
			close(fd);
			return ret;
		}
		done += (uint64_t)n;
	}
	close(fd);
	fs->size += size;
	rootfs__pad4(fs);
	return 0;
}

static int rootfs__add_file(struct rootfs *fs, const char *name, const char *path,
			    const struct stat *st, struct sb_err *err)
{
	int ret;

	if (access(path, R_OK) < 0)
		return err__errno(err, "--rootfs: %s", path);
	ret = rootfs__header(fs, name, st->st_mode, (uint64_t)st->st_size, err);
	if (ret < 0)
		return ret;
	return rootfs__file_data(fs, path, (uint64_t)st->st_size, err);
}

static int rootfs__walk(struct rootfs *fs, const char *root, const char *rel,
			struct sb_err *err);

/* A symlink: keep it only if it resolves to a regular file inside root. */
static int rootfs__add_link(struct rootfs *fs, const char *root, const char *name,
			    const char *path, struct sb_err *err)
{
	char real[PATH_MAX];
	size_t rl = strlen(root);
	struct stat st;

	if (!realpath(path, real))
		return 0; /* dangling */
	if (strncmp(real, root, rl) != 0 || real[rl] != '/')
		return 0; /* points outside the overlay */
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return rootfs__add_file(fs, name, real, &st, err);
}

static int rootfs__add_entry(struct rootfs *fs, const char *root, const char *rel,
			     struct sb_err *err)
{
	char path[PATH_MAX];
	struct stat st;
	int ret;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, rel) >= sizeof(path))
		return err__set(err, -ENAMETOOLONG, "--rootfs: %s/%s: path too long", root, rel);
	if (lstat(path, &st) < 0)
		return err__errno(err, "--rootfs: stat %s", path);
	if (S_ISDIR(st.st_mode)) {
		ret = rootfs__header(fs, rel, st.st_mode, 0, err);
		return ret < 0 ? ret : rootfs__walk(fs, root, rel, err);
	}
	if (S_ISREG(st.st_mode))
		return rootfs__add_file(fs, rel, path, &st, err);
	if (S_ISLNK(st.st_mode))
		return rootfs__add_link(fs, root, rel, path, err);
	return 0; /* devices, fifos, sockets: not in a sandbox */
}

static int skip_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

/* Entries of root/rel in name order (reproducible archives), parents first. */
static int rootfs__walk(struct rootfs *fs, const char *root, const char *rel,
			struct sb_err *err)
{
	char dir[PATH_MAX], child[PATH_MAX];
	struct dirent **list;
	int n, ret = 0;

	snprintf(dir, sizeof(dir), "%s%s%s", root, *rel ? "/" : "", rel);
	n = scandir(dir, &list, skip_dots, alphasort);
	if (n < 0)
		return err__errno(err, "--rootfs: cannot read directory %s", dir);
	for (int i = 0; i < n; i++) {
		if (ret == 0) {
			if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
					     list[i]->d_name) >= sizeof(child))
				ret = err__set(err, -ENAMETOOLONG, "--rootfs: %s/%s: path too long",
					       dir, list[i]->d_name);
			else
				ret = rootfs__add_entry(fs, root, child, err);
		}
		free(list[i]);
	}
	free(list);
	return ret;
}

int rootfs__add_dir(struct rootfs *fs, const char *dir, struct sb_err *err)
{
	char root[PATH_MAX];
	struct stat st;

	if (fs->finished)
		return err__set(err, -EINVAL, "root file system already finished");
	if (!realpath(dir, root))
		return err__errno(err, "--rootfs %s", dir);
	if (stat(root, &st) < 0)
		return err__errno(err, "--rootfs %s", dir);
	if (!S_ISDIR(st.st_mode))
		return err__set(err, -ENOTDIR, "--rootfs %s: not a directory", dir);
	if (strcmp(root, "/") == 0)
		root[0] = '\0'; /* children become "/x", not "//x" */
	return rootfs__walk(fs, root, "", err);
}

int rootfs__finish(struct rootfs *fs, struct sb_err *err)
{
	int ret;

	if (fs->finished)
		return 0;
	ret = rootfs__header(fs, NEWC_TRAILER, 0, 0, err);
	if (ret < 0)
		return ret;
	fs->finished = 1;
	return 0;
}

int rootfs__load_base(struct rootfs *fs, const char *path, struct sb_err *err)
{
	struct sb_cpio_entry e;
	uint64_t off = 0, size;
	uint8_t *buf;
	int ret;

	ret = file__read_all(path, &buf, &size, err);
	if (ret < 0)
		return ret;
	for (;;) {
		uint64_t at = off;

		ret = size == off ? 0 : sb_cpio_next(buf, size, &off, &e);
		if (ret < 0) {
			free(buf);
			return err__set(err, -EINVAL, "%s: not a newc cpio archive (malformed entry at offset %llu)",
					path, (unsigned long long)at);
		}
		if (ret == 0) {
			off = at; /* drop the trailer and any padding after it */
			break;
		}
	}
	free(fs->buf);
	fs->buf = buf;
	fs->size = off;
	fs->cap = size;
	fs->finished = 0;
	return 0;
}

/* ---- lookup ------------------------------------------------------------- */

/* Canonical form without leading "/": resolves "", "." and ".." components. */
static int path_normalize(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	while (*in) {
		const char *seg = in;
		size_t len;

		while (*in && *in != '/')
			in++;
		len = (size_t)(in - seg);
		while (*in == '/')
			in++;
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			continue;
		}
		if (o + !!o + len + 1 > outlen)
			return -ENAMETOOLONG;
		if (o)
			out[o++] = '/';
		memcpy(out + o, seg, len);
		o += len;
	}
	out[o] = '\0';
	return 0;
}

/* Entry name without leading "./" or "/" ("." itself becomes ""). */
static const char *entry_name(const struct sb_cpio_entry *e, uint32_t *len)
{
	const char *n = e->name;
	uint32_t l = e->namelen;

	for (;;) {
		if (l >= 1 && n[0] == '/') {
			n++, l--;
		} else if (l >= 2 && n[0] == '.' && n[1] == '/') {
			n += 2, l -= 2;
		} else if (l == 1 && n[0] == '.') {
			n++, l--;
		} else {
			break;
		}
	}
	*len = l;
	return n;
}

static int rootfs__find(const uint8_t *cpio, uint64_t size, const char *norm,
			struct sb_cpio_entry *out)
{
	size_t want = strlen(norm);
	struct sb_cpio_entry e;
	uint64_t off = 0;
	int found = 0, ret;

	while ((ret = sb_cpio_next(cpio, size, &off, &e)) == 1) {
		uint32_t len;
		const char *n = entry_name(&e, &len);

		if (len == want && memcmp(n, norm, want) == 0) {
			*out = e;
			found = 1;
		}
	}
	if (ret < 0)
		return -EINVAL;
	return found ? 0 : -ENOENT;
}

int rootfs__lookup(const uint8_t *cpio, uint64_t size, const char *path,
		   struct sb_cpio_entry *out)
{
	char norm[PATH_MAX], next[PATH_MAX * 2];

	if (path_normalize(path, norm, sizeof(norm)) < 0)
		return -ENAMETOOLONG;
	for (int hops = 0; hops <= ROOTFS_MAX_LINKS; hops++) {
		char *slash;
		int ret = rootfs__find(cpio, size, norm, out);

		if (ret < 0 || !S_ISLNK(out->mode))
			return ret;
		if (out->size >= PATH_MAX)
			return -ENAMETOOLONG;
		slash = strrchr(norm, '/');
		if (out->size > 0 && out->data[0] == '/')
			snprintf(next, sizeof(next), "%.*s", (int)out->size, (const char *)out->data);
		else
			snprintf(next, sizeof(next), "%.*s/%.*s", slash ? (int)(slash - norm) : 0, norm,
				 (int)out->size, (const char *)out->data);
		if (path_normalize(next, norm, sizeof(norm)) < 0)
			return -ENAMETOOLONG;
	}
	return -ELOOP;
}

int rootfs__which(const uint8_t *cpio, uint64_t size, const char *name, const char *pathvar,
		  char *out, size_t outlen)
{
	const char *p = pathvar;

	while (p && *p) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct sb_cpio_entry e;

		if ((size_t)snprintf(out, outlen, "%s%.*s/%s", len && p[0] == '/' ? "" : "/",
				     (int)len, p, name) < outlen &&
		    rootfs__lookup(cpio, size, out, &e) == 0 && S_ISREG(e.mode))
			return 0;
		p = end ? end + 1 : NULL;
	}
	return -ENOENT;
}
