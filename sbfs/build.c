/* SPDX-License-Identifier: MIT */
/*
 * sbfs image builder: walk a directory tree, sort it, lay it out and write
 * it (guest/include/sbfs.h).  File data is streamed into the output at
 * page-aligned offsets after the metadata (whose size is known once the
 * tree is walked); identical contents are stored once (same size and
 * xxh3-64, then compared byte for byte); the tables go in last, then the id.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/file.h"
#include "sbfs/sbfs_host.h"
#include "sbtypes.h"

#define CHUNK (1U << 20)
#define NAME_MAX_SBFS 255

struct bent {
	char *path;             /* relative, no leading '/'; "" = the root */
	struct stat st;
	char *target;           /* symlink */
	uint32_t parent;
	uint32_t first, count;  /* directory: its entries */
	uint32_t nsub;          /* directory: subdirectories */
	uint64_t data_off, xxh3, path_off, target_off;
};

struct builder {
	char root[PATH_MAX];
	struct bent *e;
	size_t n, cap;
	uint64_t skipped;
	struct sb_err *err;
};

static void builder__free(struct builder *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->e[i].path);
		free(b->e[i].target);
	}
	free(b->e);
}

static int builder__push(struct builder *b, const char *rel, const struct stat *st,
			 const char *full)
{
	struct bent *e;

	if (b->n == SBFS_MAX_INODES)
		return err__set(b->err, -EFBIG, "%s: more than %u entries", b->root, SBFS_MAX_INODES);
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct bent *p = realloc(b->e, cap * sizeof(*p));

		if (!p)
			return err__set(b->err, -ENOMEM, "out of memory walking %s", b->root);
		b->e = p;
		b->cap = cap;
	}
	e = &b->e[b->n];
	memset(e, 0, sizeof(*e));
	e->st = *st;
	e->path = strdup(rel);
	if (!e->path)
		return err__set(b->err, -ENOMEM, "out of memory walking %s", b->root);
	b->n++;
	if (S_ISLNK(st->st_mode)) {
		char t[SBFS_PATH_MAX + 2];
		ssize_t n = readlink(full, t, sizeof(t));

		if (n < 0)
			return err__errno(b->err, "readlink %s", full);
		if (n == 0 || (size_t)n > SBFS_PATH_MAX || memchr(t, 0, (size_t)n))
			return err__set(b->err, -ENAMETOOLONG, "%s: symlink target of %zd bytes", full, n);
		e->target = strndup(t, (size_t)n);
		if (!e->target)
			return err__set(b->err, -ENOMEM, "out of memory walking %s", b->root);
	}
	return 0;
}

/* Everything under root/rel (rel "" = root itself, already pushed). */
static int builder__walk(struct builder *b, const char *rel)
{
	/* on the heap: a deep tree recurses deeply */
	struct walkbuf {
		char dir[PATH_MAX], full[PATH_MAX], child[PATH_MAX];
	} *w = malloc(sizeof(*w));
	char *dir = w ? w->dir : NULL, *full = w ? w->full : NULL, *child = w ? w->child : NULL;
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int ret = 0;

	if (!w)
		return err__set(b->err, -ENOMEM, "out of memory walking %s", b->root);
	if ((size_t)snprintf(dir, PATH_MAX, "%s%s%s", b->root, *rel ? "/" : "", rel) >= PATH_MAX) {
		free(w);
		return err__set(b->err, -ENAMETOOLONG, "path too long: %s/%s", b->root, rel);
	}
	dp = opendir(dir);
	if (!dp) {
		ret = err__errno(b->err, "cannot read directory %s", dir);
		free(w);
		return ret;
	}
	while (ret == 0 && (errno = 0, d = readdir(dp))) {
		size_t nl = strlen(d->d_name);

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (nl > NAME_MAX_SBFS ||
		    (size_t)snprintf(child, PATH_MAX, "%s%s%s", rel, *rel ? "/" : "", d->d_name) >
			    SBFS_PATH_MAX ||
		    (size_t)snprintf(full, PATH_MAX, "%s/%s", b->root, child) >= PATH_MAX) {
			ret = err__set(b->err, -ENAMETOOLONG, "name or path too long (a name over %d bytes, "
				       "a path over %u): %s/%s", NAME_MAX_SBFS, SBFS_PATH_MAX, dir, d->d_name);
			break;
		}
		if (lstat(full, &st) < 0) {
			ret = err__errno(b->err, "stat %s", full);
			break;
		}
		if (S_ISREG(st.st_mode) && access(full, R_OK) < 0) {
			ret = err__errno(b->err, "%s", full);
			break;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
			b->skipped++;
			continue;
		}
		ret = builder__push(b, child, &st, full);
		if (ret == 0 && S_ISDIR(st.st_mode))
			ret = builder__walk(b, child);
	}
	if (ret == 0 && errno)
		ret = err__errno(b->err, "reading directory %s", dir);
	closedir(dp);
	free(w);
	return ret;
}

static int cmp_bent(const void *a, const void *b)
{
	return strcmp(((const struct bent *)a)->path, ((const struct bent *)b)->path);
}

/* The inode of path[0, len) among the sorted entries, or -1. */
static long builder__find(const struct builder *b, const char *p, size_t len)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *q = b->e[mid].path;
		int c = strncmp(q, p, len);

		if (c == 0)
			c = q[len] ? 1 : 0;
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}


/* Stored contents, for sharing identical files. */
struct dedup {
	struct dslot {
		uint64_t xxh3, size, off;
		int used;
	} *t;
	size_t mask;
};

/* Do out[a, a + len) and out[b, b + len) hold the same bytes? */
static int same_bytes(int out, uint64_t a, uint64_t b, uint64_t len, uint8_t *buf)
{
	uint8_t *x = buf, *y = buf + CHUNK;

	for (uint64_t done = 0; done < len;) {
		size_t k = len - done < CHUNK ? (size_t)(len - done) : CHUNK;

		if (file__pread_all(out, x, k, a + done) || file__pread_all(out, y, k, b + done))
			return -1;
		if (memcmp(x, y, k))
			return 0;
		done += k;
	}
	return 1;
}

/* Copy root/e->path to out at *cur, zero-padded to a page; share it with an
 * earlier identical file if there is one. */
static int builder__file(struct builder *b, struct bent *e, int out, uint64_t *cur,
			 struct dedup *dd, uint8_t *buf, struct sbfs_build_stats *st)
{
	char full[PATH_MAX];
	XXH3_state_t *hs = XXH3_createState();
	uint64_t size = (uint64_t)e->st.st_size, done = 0, pad;
	int fd, ret = 0;

	if (!hs)
		return err__set(b->err, -ENOMEM, "out of memory");
	XXH3_64bits_reset(hs);
	snprintf(full, sizeof(full), "%s/%s", b->root, e->path);
	fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		XXH3_freeState(hs);
		return err__errno(b->err, "open %s", full);
	}
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = err__errno(b->err, "read %s", full);
			break;
		}
		if (n == 0 || done + (uint64_t)n > size) {
			if (n || done != size)
				ret = err__set(b->err, -EIO, "%s changed while the image was built", full);
			break;
		}
		XXH3_64bits_update(hs, buf, (size_t)n);
		ret = file__pwrite_all(out, buf, (size_t)n, *cur + done);
		if (ret < 0) {
			err__set(b->err, ret, "writing the image: %s", strerror(-ret));
			break;
		}
		done += (uint64_t)n;
	}
	close(fd);
	e->xxh3 = XXH3_64bits_digest(hs);
	XXH3_freeState(hs);
	if (ret < 0 || size == 0)
		return ret;
	/* zero the rest of the last page (a shared file's bytes may lie there) */
	pad = (SBFS_PAGE - size % SBFS_PAGE) % SBFS_PAGE;
	memset(buf, 0, pad);
	ret = file__pwrite_all(out, buf, (size_t)pad, *cur + size);
	if (ret < 0)
		return err__set(b->err, ret, "writing the image: %s", strerror(-ret));
	for (size_t j = (size_t)e->xxh3 & dd->mask;; j = (j + 1) & dd->mask) {
		struct dslot *s = &dd->t[j];
		int same;

		if (!s->used) {
			*s = (struct dslot){ e->xxh3, size, *cur, 1 };
			break;
		}
		if (s->xxh3 != e->xxh3 || s->size != size)
			continue;
		same = same_bytes(out, s->off, *cur, size, buf);
		if (same < 0)
			return err__errno(b->err, "reading back the image");
		if (same) {
			e->data_off = s->off;
			return 0;
		}
	}
	e->data_off = *cur;
	*cur += size + pad;
	st->unique_files++;
	st->data_bytes += size + pad;
	return 0;
}

/* Parents, subdirectory counts, entry ranges, names offsets. */
static int builder__link(struct builder *b, uint64_t *names_size, uint32_t *flags)
{
	uint64_t names = 0, next = 0;

	for (size_t i = 1; i < b->n; i++) {
		const char *s = strrchr(b->e[i].path, '/');
		long p = builder__find(b, b->e[i].path, s ? (size_t)(s - b->e[i].path) : 0);

		if (p < 0 || !S_ISDIR(b->e[p].st.st_mode))
			return err__set(b->err, -EIO, "%s/%s: its directory vanished while walking",
					b->root, b->e[i].path);
		b->e[i].parent = (uint32_t)p;
		b->e[p].count++;
		if (S_ISDIR(b->e[i].st.st_mode))
			b->e[p].nsub++;
	}
	for (size_t i = 0; i < b->n; i++) {
		b->e[i].path_off = names;
		names += strlen(b->e[i].path);
		if (S_ISDIR(b->e[i].st.st_mode)) {
			b->e[i].first = (uint32_t)next;
			next += b->e[i].count;
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		if (!b->e[i].target)
			continue;
		b->e[i].target_off = names;
		names += strlen(b->e[i].target);
		*flags |= SBFS_F_SYMLINKS;
	}
	if (names >= (1ULL << 32))
		return err__set(b->err, -EFBIG, "%s: more than 4 GiB of names", b->root);
	*names_size = names;
	return 0;
}

static uint8_t d_type(mode_t m)
{
	return S_ISDIR(m) ? SBFS_DT_DIR : S_ISLNK(m) ? SBFS_DT_LNK : SBFS_DT_REG;
}

/* Header, inodes, entries, hash table and names: [0, data_off). */
static uint8_t *builder__meta(struct builder *b, const struct sbfs_header *h)
{
	uint8_t *m = calloc(1, h->data_off);
	struct sbfs_inode *in;
	struct sbfs_dirent *de;
	uint32_t *ht, mask = h->hash_buckets - 1;
	uint32_t *fill;
	char *names;

	if (!m)
		return NULL;
	fill = calloc(b->n, sizeof(*fill));
	if (!fill) {
		free(m);
		return NULL;
	}
	memcpy(m, h, sizeof(*h));
	in = (struct sbfs_inode *)(m + h->inodes_off);
	de = (struct sbfs_dirent *)(m + h->dirents_off);
	ht = (uint32_t *)(m + h->hash_off);
	names = (char *)m + h->names_off;
	for (size_t i = 0; i < b->n; i++) {
		const struct bent *e = &b->e[i];
		size_t pl = strlen(e->path);
		struct sbfs_inode *n = &in[i];

		n->mode = (uint32_t)(e->st.st_mode & (S_IFMT | 07777));
		n->mtime = (int64_t)e->st.st_mtim.tv_sec;
		n->path_off = (uint32_t)e->path_off;
		n->path_len = (uint32_t)pl;
		n->parent = e->parent;
		memcpy(names + e->path_off, e->path, pl);
		if (S_ISDIR(e->st.st_mode)) {
			n->nlink = 2 + e->nsub;
			n->size = e->count;
			n->data_off = e->first;
		} else if (S_ISLNK(e->st.st_mode)) {
			n->nlink = 1;
			n->size = strlen(e->target);
			n->data_off = e->target_off;
			memcpy(names + e->target_off, e->target, n->size);
		} else {
			n->nlink = 1;
			n->size = (uint64_t)e->st.st_size;
			n->data_off = e->data_off;
			n->xxh3 = e->xxh3;
		}
		if (i) { /* its entry in its directory, in inode (= name) order */
			const struct bent *d = &b->e[e->parent];
			uint32_t k = d->first + fill[e->parent]++;
			size_t nl = strlen(strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path);

			de[k].inode = (uint32_t)i;
			de[k].name_off = (uint32_t)(e->path_off + pl - nl);
			de[k].name_len = (uint16_t)nl;
			de[k].d_type = d_type(e->st.st_mode);
		}
		uint32_t j = (uint32_t)sbfs_path_hash(e->path, pl) & mask;
		while (ht[j])
			j = (j + 1) & mask;
		ht[j] = (uint32_t)i + 1;
	}
	free(fill);
	return m;
}

int sbfs__build_dir(const char *dir, int out, uint8_t id[16], struct sbfs_build_stats *st,
		    struct sb_err *err)
{
	struct builder b = { .err = err };
	struct sbfs_build_stats local;
	struct sbfs_header h;
	struct stat rst;
	struct dedup dd = { 0 };
	uint8_t *buf = NULL, *meta = NULL, *map;
	uint64_t names_size = 0, cur, nfiles = 0;
	uint32_t flags = 0, buckets = 2;
	int ret;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!realpath(dir, b.root))
		return err__errno(err, "%s", dir);
	if (stat(b.root, &rst) < 0)
		return err__errno(err, "%s", dir);
	if (!S_ISDIR(rst.st_mode))
		return err__set(err, -ENOTDIR, "%s: not a directory", dir);
	if (!strcmp(b.root, "/"))
		b.root[0] = 0; /* children become "/x", not "//x" */
	ret = builder__push(&b, "", &rst, dir);
	if (ret == 0)
		ret = builder__walk(&b, "");
	if (ret < 0)
		goto out;
	qsort(b.e, b.n, sizeof(*b.e), cmp_bent);
	ret = builder__link(&b, &names_size, &flags);
	if (ret < 0)
		goto out;
	while (buckets < 2 * b.n)
		buckets *= 2;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SBFS_MAGIC, 8);
	h.major = SBFS_MAJOR;
	h.minor = SBFS_MINOR;
	h.inodes_off = SBFS_PAGE;
	h.n_inodes = (uint32_t)b.n;
	h.inode_size = sizeof(struct sbfs_inode);
	h.dirents_off = h.inodes_off + b.n * sizeof(struct sbfs_inode);
	h.n_dirents = (uint32_t)b.n - 1;
	h.dirent_size = sizeof(struct sbfs_dirent);
	h.hash_off = h.dirents_off + h.n_dirents * sizeof(struct sbfs_dirent);
	h.hash_buckets = buckets;
	h.names_off = h.hash_off + (uint64_t)buckets * 4;
	h.names_size = names_size;
	h.flags = flags;
	h.data_off = (h.names_off + names_size + SBFS_PAGE - 1) / SBFS_PAGE * SBFS_PAGE;

	/* the data, streamed after the metadata */
	for (size_t i = 0; i < b.n; i++)
		nfiles += S_ISREG(b.e[i].st.st_mode);
	dd.mask = 1;
	while (dd.mask < 2 * nfiles)
		dd.mask *= 2;
	dd.t = calloc(dd.mask, sizeof(*dd.t));
	dd.mask--;
	buf = malloc(2 * CHUNK);
	if (!dd.t || !buf) {
		ret = err__set(err, -ENOMEM, "out of memory building the image of %s", dir);
		goto out;
	}
	cur = h.data_off;
	for (size_t i = 0; i < b.n && ret == 0; i++) {
		struct bent *e = &b.e[i];

		st->inodes++;
		if (S_ISDIR(e->st.st_mode)) {
			st->dirs++;
		} else if (S_ISLNK(e->st.st_mode)) {
			st->links++;
		} else {
			st->files++;
			st->file_bytes += (uint64_t)e->st.st_size;
			ret = builder__file(&b, e, out, &cur, &dd, buf, st);
		}
	}
	if (ret < 0)
		goto out;
	h.image_size = cur;
	if (ftruncate(out, (off_t)cur) < 0) {
		ret = err__errno(err, "sizing the image");
		goto out;
	}
	meta = builder__meta(&b, &h);
	if (!meta) {
		ret = err__set(err, -ENOMEM, "out of memory building the image of %s", dir);
		goto out;
	}
	ret = file__pwrite_all(out, meta, h.data_off, 0);
	if (ret < 0) {
		err__set(err, ret, "writing the image: %s", strerror(-ret));
		goto out;
	}
	map = mmap(NULL, cur, PROT_READ, MAP_SHARED, out, 0);
	if (map == MAP_FAILED) {
		ret = err__errno(err, "mapping the image to hash it");
		goto out;
	}
	sbfs__compute_id(map, cur, id);
	munmap(map, cur);
	ret = file__pwrite_all(out, id, 16, __builtin_offsetof(struct sbfs_header, id));
	if (ret < 0)
		err__set(err, ret, "writing the image: %s", strerror(-ret));
	st->meta_bytes = h.data_off;
	st->image_size = cur;
	st->skipped = b.skipped;
out:
	free(meta);
	free(buf);
	free(dd.t);
	builder__free(&b);
	return ret;
}
