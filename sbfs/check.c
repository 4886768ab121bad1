/* SPDX-License-Identifier: MIT */
/*
 * The full check of an sbfs image (sbfs/sbfs.h): what the guest's reader
 * checks on each access, for everything at once, plus what makes an image
 * canonical (the tree, the order, the padding, the hashes).  Run before an
 * image enters a template store and by `snapbox image verify`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sbfs/sbfs_host.h"
#include "sbtypes.h"

int sbfs__open_checked(struct sbfs *fs, const void *img, uint64_t size, struct sb_err *err)
{
	int r = sbfs_open(fs, img, size);

	if (r == SBFS_EVERSION)
		return err__set(err, -EPROTONOSUPPORT,
				"sbfs image version %u.%u or flags 0x%x: this snapbox reads %u.x, flags 0x%x",
				fs->h.major, fs->h.minor, fs->h.flags, SBFS_MAJOR, SBFS_F_KNOWN);
	if (r == SBFS_ESHORT && size >= sizeof(struct sbfs_header))
		return err__set(err, -EBADMSG, "truncated sbfs image: %llu bytes, its header says %llu",
				(unsigned long long)size, (unsigned long long)fs->h.image_size);
	if (r)
		return err__set(err, -EBADMSG, "%s", sbfs_strerror(r));
	return 0;
}

void sbfs__compute_id(const uint8_t *img, uint64_t size, uint8_t id[16])
{
	static const uint8_t zero[16];
	const size_t at = __builtin_offsetof(struct sbfs_header, id);
	XXH3_state_t *s = XXH3_createState();
	XXH128_canonical_t c;

	if (!s || size < sizeof(struct sbfs_header)) {
		memset(id, 0, 16);
		XXH3_freeState(s);
		return;
	}
	XXH3_128bits_reset(s);
	XXH3_128bits_update(s, img, at);
	XXH3_128bits_update(s, zero, 16);
	XXH3_128bits_update(s, img + at + 16, size - at - 16);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s));
	memcpy(id, c.digest, 16);
	XXH3_freeState(s);
}

void sbfs__id_hex(const uint8_t id[16], char hex[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
}

static int all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

struct extent {
	uint64_t off, size, xxh3;
	uint32_t ino;
};

static int cmp_extent(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off ? 1 : x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* name1 < name2, bytewise, shorter first on a common prefix (strcmp order) */
static int name_less(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c < 0 || (c == 0 && al < bl);
}

#define BAD(...) err__set(err, -EBADMSG, __VA_ARGS__)

static const char *ipath(const struct sbfs *fs, const struct sbfs_inode *n, int *len)
{
	const char *p = sbfs_name(fs, n->path_off, n->path_len);

	*len = p ? (int)(n->path_len > 200 ? 200 : n->path_len) : 1;
	return p ? p : "?";
}

/* Each inode on its own. */
static int check_inode(const struct sbfs *fs, uint32_t i, const struct sbfs_inode *n,
		       const struct sbfs_inode *prev, struct sb_err *err)
{
	uint32_t type = n->mode & SBFS_S_IFMT;
	const char *p = sbfs_name(fs, n->path_off, n->path_len), *q;
	const uint8_t *data;
	int pl;

	if (!p || n->path_len > SBFS_PATH_MAX || memchr(p, 0, n->path_len))
		return BAD("inode %u: its path lies outside the names table", i);
	pl = n->path_len > 200 ? 200 : (int)n->path_len;
	if (n->reserved0 || n->reserved1 || (n->mode & ~(SBFS_S_IFMT | 07777)))
		return BAD("inode %u (/%.*s): reserved bits are not zero", i, pl, p);
	if (i == 0 && (type != SBFS_S_IFDIR || n->path_len || n->parent))
		return BAD("inode 0 is not the root directory");
	if (i > 0) {
		int pql;
		q = ipath(fs, prev, &pql);
		if (!name_less(q, prev->path_len, p, n->path_len) || n->path_len == 0)
			return BAD("inode %u (/%.*s) is out of order", i, pl, p);
		if (n->parent >= fs->h.n_inodes)
			return BAD("inode %u (/%.*s): parent %u out of range", i, pl, p, n->parent);
	}
	switch (type) {
	case SBFS_S_IFDIR:
		if (!sb_range_in(n->data_off, n->size, 0, fs->h.n_dirents))
			return BAD("directory /%.*s: entries %llu+%llu outside the entry table", pl, p,
				   (unsigned long long)n->data_off, (unsigned long long)n->size);
		if (n->xxh3)
			return BAD("directory /%.*s has a content hash", pl, p);
		break;
	case SBFS_S_IFREG:
		if (n->nlink != 1)
			return BAD("file /%.*s: %u links", pl, p, n->nlink);
		if (sbfs_file(fs, n, &data))
			return BAD("file /%.*s: data at %#llx+%llu outside the data area or not on a page",
				   pl, p, (unsigned long long)n->data_off, (unsigned long long)n->size);
		if (!n->size && n->data_off)
			return BAD("empty file /%.*s has a data offset", pl, p);
		if (XXH3_64bits(data, n->size) != n->xxh3)
			return BAD("file /%.*s: contents damaged (hash mismatch)", pl, p);
		if (n->size % SBFS_PAGE &&
		    !all_zero(data + n->size, SBFS_PAGE - n->size % SBFS_PAGE))
			return BAD("file /%.*s: the rest of its last page is not zero", pl, p);
		break;
	case SBFS_S_IFLNK:
		if (n->nlink != 1 || n->xxh3 || sbfs_link(fs, n, &q) || memchr(q, 0, n->size))
			return BAD("symlink /%.*s: bad target (%llu bytes at %llu)", pl, p,
				   (unsigned long long)n->size, (unsigned long long)n->data_off);
		if (!(fs->h.flags & SBFS_F_SYMLINKS))
			return BAD("symlink /%.*s in an image whose header says it has none", pl, p);
		break;
	default:
		return BAD("inode %u (/%.*s): mode %#o is not a file, directory or symlink", i, pl, p,
			   n->mode);
	}
	return 0;
}

/* A directory's entries: sorted names, each naming a child of its own. */
static int check_dir(const struct sbfs *fs, uint32_t d, const struct sbfs_inode *dn,
		     uint8_t *seen, struct sb_err *err)
{
	const char *dp = sbfs_name(fs, dn->path_off, dn->path_len), *prev = NULL, *name, *cp;
	int dl = dn->path_len > 200 ? 200 : (int)dn->path_len;
	uint16_t prev_len = 0;
	uint32_t subdirs = 0;

	for (uint64_t k = 0; k < dn->size; k++) {
		struct sbfs_dirent e;
		struct sbfs_inode c;
		uint64_t want;

		if (sbfs_dirent(fs, dn, k, &e, &name))
			return BAD("directory /%.*s: entry %llu lies outside the tables", dl, dp,
				   (unsigned long long)k);
		if (e.name_len > 255 || memchr(name, '/', e.name_len) || memchr(name, 0, e.name_len) ||
		    (e.name_len == 1 && name[0] == '.') ||
		    (e.name_len == 2 && name[0] == '.' && name[1] == '.') ||
		    !all_zero(e.pad, sizeof(e.pad)))
			return BAD("directory /%.*s: entry %llu has a bad name", dl, dp,
				   (unsigned long long)k);
		if (prev && !name_less(prev, prev_len, name, e.name_len))
			return BAD("directory /%.*s: entries out of order or repeated at '%.*s'", dl, dp,
				   (int)e.name_len, name);
		prev = name;
		prev_len = e.name_len;
		if (e.inode == 0 || sbfs_inode(fs, e.inode, &c))
			return BAD("directory /%.*s: entry '%.*s' names inode %u", dl, dp, (int)e.name_len,
				   name, e.inode);
		if (seen[e.inode]++)
			return BAD("inode %u is named twice (again in /%.*s as '%.*s')", e.inode, dl, dp,
				   (int)e.name_len, name);
		if (c.parent != d)
			return BAD("directory /%.*s: '%.*s' says its parent is inode %u", dl, dp,
				   (int)e.name_len, name, c.parent);
		want = dn->path_len + (dn->path_len ? 1 : 0) + e.name_len;
		cp = sbfs_name(fs, c.path_off, c.path_len);
		if (c.path_len != want || !cp || memcmp(cp, dp, dn->path_len) ||
		    (dn->path_len && cp[dn->path_len] != '/') ||
		    memcmp(cp + want - e.name_len, name, e.name_len))
			return BAD("directory /%.*s: '%.*s' has another path", dl, dp, (int)e.name_len, name);
		if (e.d_type != ((c.mode & SBFS_S_IFMT) == SBFS_S_IFDIR	  ? SBFS_DT_DIR
				 : (c.mode & SBFS_S_IFMT) == SBFS_S_IFLNK ? SBFS_DT_LNK
									  : SBFS_DT_REG))
			return BAD("directory /%.*s: '%.*s' has the wrong type", dl, dp, (int)e.name_len,
				   name);
		subdirs += (c.mode & SBFS_S_IFMT) == SBFS_S_IFDIR;
	}
	if (dn->nlink != 2 + subdirs)
		return BAD("directory /%.*s: %u links for %u subdirectories", dl, dp, dn->nlink, subdirs);
	return 0;
}

/* Every bucket is an inode found at its own path; every inode has one. */
static int check_hash(const struct sbfs *fs, struct sb_err *err)
{
	const uint8_t *ht = fs->base + fs->h.hash_off;
	uint32_t used = 0;

	for (uint32_t j = 0; j < fs->h.hash_buckets; j++) {
		uint32_t v;
		memcpy(&v, ht + (uint64_t)j * 4, 4);
		if (v && v > fs->h.n_inodes)
			return BAD("hash bucket %u names inode %u of %u", j, v - 1, fs->h.n_inodes);
		used += v != 0;
	}
	if (used != fs->h.n_inodes)
		return BAD("the hash table holds %u inodes of %u", used, fs->h.n_inodes);
	for (uint32_t i = 0; i < fs->h.n_inodes; i++) {
		struct sbfs_inode n, m;
		const char *p;

		sbfs_inode(fs, i, &n);
		p = sbfs_name(fs, n.path_off, n.path_len);
		if (sbfs_lookup(fs, p, n.path_len, &m) != i)
			return BAD("inode %u (/%.*s) is not found by its path", i,
				   n.path_len > 200 ? 200 : (int)n.path_len, p);
	}
	return 0;
}

/* Files' data: page-aligned, no partial overlap, zero in between. */
static int check_data(const struct sbfs *fs, struct extent *x, uint32_t nx, struct sb_err *err)
{
	uint64_t at = fs->h.data_off;

	qsort(x, nx, sizeof(*x), cmp_extent);
	for (uint32_t k = 0; k < nx; k++) {
		if (k && x[k].off == x[k - 1].off) { /* stored once, named twice */
			if (x[k].size != x[k - 1].size || x[k].xxh3 != x[k - 1].xxh3)
				return BAD("inodes %u and %u overlap at %#llx", x[k - 1].ino, x[k].ino,
					   (unsigned long long)x[k].off);
			continue;
		}
		if (x[k].off < at)
			return BAD("inode %u's data at %#llx overlaps the data before it", x[k].ino,
				   (unsigned long long)x[k].off);
		if (!all_zero(fs->base + at, x[k].off - at))
			return BAD("non-zero bytes between files at %#llx", (unsigned long long)at);
		at = x[k].off + (x[k].size + SBFS_PAGE - 1) / SBFS_PAGE * SBFS_PAGE;
	}
	if (at > fs->h.image_size || !all_zero(fs->base + at, fs->h.image_size - at))
		return BAD("non-zero bytes after the last file at %#llx", (unsigned long long)at);
	return 0;
}

int sbfs__verify(const uint8_t *img, uint64_t size, struct sb_err *err)
{
	struct sbfs fs;
	struct sbfs_inode n, prev = { 0 };
	struct extent *x = NULL;
	uint8_t *seen = NULL, id[16];
	uint32_t nx = 0, links = 0;
	int ret = sbfs__open_checked(&fs, img, size, err);

	if (ret < 0)
		return ret;
	if (!all_zero(img + sizeof(struct sbfs_header), SBFS_PAGE - sizeof(struct sbfs_header)))
		return BAD("the header page is not zero after the header");
	if (fs.h.n_dirents != fs.h.n_inodes - 1)
		return BAD("%u directory entries for %u inodes", fs.h.n_dirents, fs.h.n_inodes);
	seen = calloc(fs.h.n_inodes, 1);
	x = calloc(fs.h.n_inodes, sizeof(*x));
	if (!seen || !x) {
		ret = err__set(err, -ENOMEM, "out of memory checking the image");
		goto out;
	}
	for (uint32_t i = 0; i < fs.h.n_inodes && ret == 0; i++) {
		sbfs_inode(&fs, i, &n);
		ret = check_inode(&fs, i, &n, &prev, err);
		if (ret == 0 && (n.mode & SBFS_S_IFMT) == SBFS_S_IFREG && n.size)
			x[nx++] = (struct extent){ n.data_off, n.size, n.xxh3, i };
		links += (n.mode & SBFS_S_IFMT) == SBFS_S_IFLNK;
		prev = n;
	}
	for (uint32_t i = 0; i < fs.h.n_inodes && ret == 0; i++) {
		sbfs_inode(&fs, i, &n);
		if ((n.mode & SBFS_S_IFMT) == SBFS_S_IFDIR)
			ret = check_dir(&fs, i, &n, seen, err);
	}
	for (uint32_t i = 1; i < fs.h.n_inodes && ret == 0; i++)
		if (!seen[i])
			ret = BAD("inode %u is in no directory", i);
	if (ret == 0 && !links && (fs.h.flags & SBFS_F_SYMLINKS))
		ret = BAD("the header says there are symlinks, there are none");
	if (ret == 0)
		ret = check_hash(&fs, err);
	if (ret == 0)
		ret = check_data(&fs, x, nx, err);
	if (ret == 0) {
		sbfs__compute_id(img, size, id);
		if (memcmp(id, fs.h.id, 16))
			ret = BAD("the image is damaged (its content hash does not match its id)");
	}
out:
	free(seen);
	free(x);
	/* names from the image may hold any byte: keep the message one line */
	for (char *c = err->msg; ret < 0 && *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return ret;
}
