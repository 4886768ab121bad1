/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/store.h"

static int mkdir_p(const char *path, struct sb_err *err)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return err__set(err, -ENAMETOOLONG, "store path too long: %s", path);
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return err__errno(err, "mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return err__errno(err, "mkdir %s", tmp);
	return 0;
}

int store__open(struct store *st, const char *root, struct sb_err *err)
{
	const char *env = getenv("SNAPBOX_STORE"), *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	char sub[PATH_MAX + 16];
	int n, ret;

	if (root && *root)
		n = snprintf(st->root, sizeof(st->root), "%s", root);
	else if (env && *env)
		n = snprintf(st->root, sizeof(st->root), "%s", env);
	else if (xdg && *xdg)
		n = snprintf(st->root, sizeof(st->root), "%s/snapbox", xdg);
	else if (geteuid() == 0 || !home)
		n = snprintf(st->root, sizeof(st->root), "/var/lib/snapbox");
	else
		n = snprintf(st->root, sizeof(st->root), "%s/.local/share/snapbox", home);
	if (n < 0 || (size_t)n >= sizeof(st->root) - 16)
		return err__set(err, -ENAMETOOLONG, "store path too long");
	static const char *const subs[] = { "templates", "tmp", "trash", "images" };
	for (int i = 0; i < 4; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", st->root, subs[i]);
		ret = mkdir_p(sub, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int store__check_name(const char *name, struct sb_err *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			goto bad;
	}
	return 0;
bad:
	return err__set(err, -EINVAL,
			"bad template name '%s' (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -)",
			name);
}

int store__path(const struct store *st, const char *name, char *out, size_t len,
		struct sb_err *err)
{
	int n;

	if (strchr(name, '/'))
		n = snprintf(out, len, "%s", name);
	else if (store__check_name(name, err) < 0)
		return -EINVAL;
	else
		n = snprintf(out, len, "%s/templates/%s", st->root, name);
	if (n < 0 || (size_t)n >= len)
		return err__set(err, -ENAMETOOLONG, "template path too long");
	return 0;
}

int store__begin(const struct store *st, const char *name, char *tmp, size_t len,
		 struct sb_err *err)
{
	int n = snprintf(tmp, len, "%s/tmp/%s.XXXXXX", st->root, name);

	if (n < 0 || (size_t)n >= len)
		return err__set(err, -ENAMETOOLONG, "template path too long");
	if (!mkdtemp(tmp))
		return err__errno(err, "mkdtemp %s", tmp);
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void store__discard(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Move dir into <root>/trash under a unique name; returns 0 or -errno. */
static int store__to_trash(const struct store *st, const char *dir, const char *name,
			   char *trash, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(trash, len, "%s/trash/%s.%lld.%09ld.%d", st->root, name, (long long)ts.tv_sec,
		 ts.tv_nsec, (int)getpid());
	return rename(dir, trash) < 0 ? -errno : 0;
}

int store__commit(const struct store *st, const char *name, const char *tmp, bool replace,
		  struct sb_err *err)
{
	char dst[PATH_MAX + 256], trash[PATH_MAX + 256];
	int dfd, ret;

	ret = store__path(st, name, dst, sizeof(dst), err);
	if (ret < 0)
		return ret;
	if (rename(tmp, dst) == 0)
		goto synced;
	if (errno != EEXIST && errno != ENOTEMPTY)
		return err__errno(err, "rename %s to %s", tmp, dst);
	if (!replace)
		return err__set(err, -EEXIST, "template %s already exists (use --force to replace it)",
				name);
	ret = store__to_trash(st, dst, name, trash, sizeof(trash));
	if (ret < 0)
		return err__set(err, ret, "moving the old template %s aside: %s", name, strerror(-ret));
	if (rename(tmp, dst) < 0)
		return err__errno(err, "rename %s to %s", tmp, dst);
	store__discard(trash);
synced:
	snprintf(trash, sizeof(trash), "%s/templates", st->root);
	dfd = open(trash, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int store__remove(const struct store *st, const char *name, struct sb_err *err)
{
	char dir[PATH_MAX + 256], trash[PATH_MAX + 256];
	int ret = store__check_name(name, err);

	if (ret < 0)
		return ret;
	snprintf(dir, sizeof(dir), "%s/templates/%s", st->root, name);
	ret = store__to_trash(st, dir, name, trash, sizeof(trash));
	if (ret == -ENOENT)
		return err__set(err, -ENOENT, "no template named %s", name);
	if (ret < 0)
		return err__set(err, ret, "removing template %s: %s", name, strerror(-ret));
	store__discard(trash);
	return 0;
}

static void image_path(const struct store *st, const uint8_t id[16], char *out, size_t len)
{
	char hex[33];

	sbfs__id_hex(id, hex);
	snprintf(out, len, "%s/images/%s.sbfs", st->root, hex);
}

/* Is the file at path that image (its size and its header's id)? */
static bool image_there(const char *path, uint64_t size, const uint8_t id[16])
{
	struct sbfs_header h;
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == size &&
	     pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) && !memcmp(h.id, id, 16);
	close(fd);
	return ok;
}

static int write_all(int fd, const uint8_t *p, uint64_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len > (1U << 30) ? (1U << 30) : len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

int store__put_image(const struct store *st, const struct sbfs_map *m, const char *what,
		     struct sb_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	int fd, ret;

	image_path(st, m->fs.h.id, path, sizeof(path));
	if (image_there(path, m->size, m->fs.h.id))
		return 0;
	ret = sbfs__verify(m->map, m->size, err);
	if (ret < 0) {
		struct sb_err e = *err;
		return err__set(err, ret, "%s: %s", what, e.msg);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "creating %s", tmp);
	ret = write_all(fd, m->map, m->size);
	if (ret < 0)
		err__set(err, ret, "writing %s: %s", tmp, strerror(-ret));
	else if (fchmod(fd, 0444) < 0 || fsync(fd) < 0)
		ret = err__errno(err, "writing %s", tmp);
	close(fd);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = err__errno(err, "rename %s to %s", tmp, path);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int store__link_image(const struct store *st, int dirfd, const uint8_t id[16], struct sb_err *err)
{
	char src[PATH_MAX], dst[64], hex[33];
	int in, out, ret = 0;
	struct stat sb;

	image_path(st, id, src, sizeof(src));
	sbfs__id_hex(id, hex);
	snprintf(dst, sizeof(dst), "layers/%s.sbfs", hex);
	if (mkdirat(dirfd, "layers", 0755) < 0 && errno != EEXIST)
		return err__errno(err, "mkdir layers");
	if (linkat(AT_FDCWD, src, dirfd, dst, 0) == 0 || errno == EEXIST)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return err__errno(err, "link %s into the template", src);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return err__errno(err, "%s", src);
	out = openat(dirfd, dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0 || fstat(in, &sb) < 0) {
		ret = err__errno(err, "copying %s into the template", src);
		goto done;
	}
	for (off_t off = 0; off < sb.st_size && ret == 0;) {
		ssize_t n = sendfile(out, in, &off, (size_t)(sb.st_size - off));
		if (n <= 0)
			ret = n < 0 ? err__errno(err, "copying %s into the template", src)
				    : err__set(err, -EIO, "%s shrank while copied", src);
	}
	if (ret == 0 && fsync(out) < 0)
		ret = err__errno(err, "copying %s into the template", src);
done:
	if (out >= 0)
		close(out);
	close(in);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store__list(const struct store *st, char ***names, size_t *n, struct sb_err *err)
{
	char dir[PATH_MAX + 256];
	DIR *d;
	struct dirent *e;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	snprintf(dir, sizeof(dir), "%s/templates", st->root);
	d = opendir(dir);
	if (!d)
		return err__errno(err, "%s", dir);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(*names, cap * sizeof(*nn));
			if (!nn)
				break;
			*names = nn;
		}
		(*names)[(*n)++] = strdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return 0;
}
