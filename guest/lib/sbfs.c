/* SPDX-License-Identifier: MIT */
/*
 * The sbfs reader (guest/include/sbfs.h), shared by the guest kernel and the
 * host.  Freestanding.  Every index and offset read from the image is
 * checked against the header before use, and the header against the size.
 */
#include "sbfs.h"
#include "sbtypes.h"

int memcmp(const void *a, const void *b, size_t n);
void *memcpy(void *d, const void *s, size_t n);

#define E_NOENT 2
#define E_IO 5
#define E_NOTDIR 20
#define E_NAMETOOLONG 36
#define E_LOOP 40

const char *sbfs_strerror(int err)
{
	switch (err) {
	case SBFS_OK: return "ok";
	case SBFS_ESHORT: return "truncated (shorter than its header says)";
	case SBFS_EMAGIC: return "not an sbfs image (bad magic)";
	case SBFS_EVERSION: return "an sbfs version or feature this snapbox does not read";
	case SBFS_EHEADER: return "bad header (sizes, counts or reserved bytes)";
	case SBFS_ETABLES: return "a table lies outside the metadata area or overlaps another";
	case SBFS_ECORRUPT: return "an inode, entry or offset is out of range";
	}
	return "unknown sbfs error";
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

struct region {
	uint64_t off, len;
};

/* [off, off + len) inside [SBFS_PAGE, data_off), overflow-checked */
static int region_ok(const struct region *r, uint64_t data_off)
{
	return sb_range_in(r->off, r->len, SBFS_PAGE, data_off);
}

static int disjoint(const struct region *a, const struct region *b)
{
	return !a->len || !b->len || a->off + a->len <= b->off || b->off + b->len <= a->off;
}

int sbfs_open(struct sbfs *fs, const void *base, uint64_t size)
{
	struct sbfs_header *h = &fs->h;
	struct region r[4];

	fs->base = base;
	fs->size = size;
	if (size < sizeof(*h))
		return SBFS_ESHORT;
	memcpy(h, base, sizeof(*h));
	if (memcmp(h->magic, SBFS_MAGIC, 8))
		return SBFS_EMAGIC;
	if (h->major != SBFS_MAJOR || (h->flags & ~SBFS_F_KNOWN))
		return SBFS_EVERSION;
	if (h->image_size > size)
		return SBFS_ESHORT;
	if (h->image_size != size || h->image_size % SBFS_PAGE || h->image_size < SBFS_PAGE ||
	    h->inode_size != sizeof(struct sbfs_inode) ||
	    h->dirent_size != sizeof(struct sbfs_dirent) || h->n_inodes == 0 ||
	    h->n_inodes > SBFS_MAX_INODES || h->n_dirents >= h->n_inodes ||
	    h->hash_buckets <= h->n_inodes || (h->hash_buckets & (h->hash_buckets - 1)) ||
	    h->names_size >= (1ULL << 32) || h->data_off % SBFS_PAGE ||
	    h->data_off < SBFS_PAGE || h->data_off > h->image_size ||
	    h->inodes_off % 8 || h->dirents_off % 8 || h->hash_off % 4 ||
	    !all_zero(h->reserved, sizeof(h->reserved)))
		return SBFS_EHEADER;
	r[0] = (struct region){ h->inodes_off, (uint64_t)h->n_inodes * sizeof(struct sbfs_inode) };
	r[1] = (struct region){ h->dirents_off, (uint64_t)h->n_dirents * sizeof(struct sbfs_dirent) };
	r[2] = (struct region){ h->hash_off, (uint64_t)h->hash_buckets * 4 };
	r[3] = (struct region){ h->names_off, h->names_size };
	for (int i = 0; i < 4; i++) {
		if (!region_ok(&r[i], h->data_off))
			return SBFS_ETABLES;
		for (int j = 0; j < i; j++)
			if (!disjoint(&r[i], &r[j]))
				return SBFS_ETABLES;
	}
	return SBFS_OK;
}

int sbfs_inode(const struct sbfs *fs, uint32_t ino, struct sbfs_inode *out)
{
	if (ino >= fs->h.n_inodes)
		return SBFS_ECORRUPT;
	memcpy(out, fs->base + fs->h.inodes_off + (uint64_t)ino * sizeof(*out), sizeof(*out));
	return SBFS_OK;
}

const char *sbfs_name(const struct sbfs *fs, uint64_t off, uint64_t len)
{
	if (!sb_range_in(off, len, 0, fs->h.names_size))
		return 0;
	return (const char *)fs->base + fs->h.names_off + off;
}

uint32_t sbfs_lookup(const struct sbfs *fs, const char *path, uint64_t len, struct sbfs_inode *out)
{
	const uint8_t *ht = fs->base + fs->h.hash_off;
	uint32_t mask = fs->h.hash_buckets - 1;
	uint32_t j = (uint32_t)sbfs_path_hash(path, len) & mask;

	/* at most every bucket once: a damaged table cannot loop forever */
	for (uint32_t probes = 0; probes <= mask; probes++, j = (j + 1) & mask) {
		uint32_t v;
		const char *p;

		memcpy(&v, ht + (uint64_t)j * 4, 4);
		if (v == 0 || sbfs_inode(fs, v - 1, out))
			return SBFS_NONE;
		if (out->path_len != len)
			continue;
		p = sbfs_name(fs, out->path_off, len);
		if (p && !memcmp(p, path, len))
			return v - 1;
	}
	return SBFS_NONE;
}

int sbfs_file(const struct sbfs *fs, const struct sbfs_inode *n, const uint8_t **data)
{
	if ((n->mode & SBFS_S_IFMT) != SBFS_S_IFREG ||
	    (n->size && (n->data_off % SBFS_PAGE || n->data_off < fs->h.data_off ||
			 !sb_range_in(n->data_off, n->size, 0, fs->h.image_size))))
		return SBFS_ECORRUPT;
	*data = fs->base + (n->size ? n->data_off : fs->h.data_off);
	return SBFS_OK;
}

int sbfs_link(const struct sbfs *fs, const struct sbfs_inode *n, const char **target)
{
	if ((n->mode & SBFS_S_IFMT) != SBFS_S_IFLNK || n->size == 0 || n->size > SBFS_PATH_MAX)
		return SBFS_ECORRUPT;
	*target = sbfs_name(fs, n->data_off, n->size);
	return *target ? SBFS_OK : SBFS_ECORRUPT;
}

int sbfs_dirent(const struct sbfs *fs, const struct sbfs_inode *dir, uint64_t i,
		struct sbfs_dirent *e, const char **name)
{
	uint64_t k;

	if ((dir->mode & SBFS_S_IFMT) != SBFS_S_IFDIR || i >= dir->size ||
	    !sb_add_ok(dir->data_off, i, &k) || k >= fs->h.n_dirents)
		return SBFS_ECORRUPT;
	memcpy(e, fs->base + fs->h.dirents_off + k * sizeof(*e), sizeof(*e));
	*name = sbfs_name(fs, e->name_off, e->name_len);
	return *name && e->name_len ? SBFS_OK : SBFS_ECORRUPT;
}

int sbfs_normalize(const char *in, size_t in_len, char *out, size_t cap)
{
	size_t o = 0, i = 0;

	if (cap == 0)
		return -E_NAMETOOLONG;
	while (i < in_len) {
		size_t c, len;

		while (i < in_len && in[i] == '/')
			i++;
		c = i;
		while (i < in_len && in[i] != '/')
			i++;
		len = i - c;
		if (len == 0 || (len == 1 && in[c] == '.'))
			continue;
		if (len == 2 && in[c] == '.' && in[c + 1] == '.') {
			while (o && out[o - 1] != '/')
				o--;
			if (o)
				o--;
			continue;
		}
		if (o + !!o + len + 1 > cap)
			return -E_NAMETOOLONG;
		if (o)
			out[o++] = '/';
		memcpy(out + o, in + c, len);
		o += len;
	}
	out[o] = 0;
	return 0;
}

/* The highest layer that has exactly this path: 0, or -E_NOENT. */
static int find_top(const struct sbfs *l, unsigned n, const char *p, uint64_t len,
		    struct sbfs_hit *hit)
{
	for (unsigned i = n; i-- > 0;) {
		uint32_t ino = sbfs_lookup(&l[i], p, len, &hit->n);

		if (ino != SBFS_NONE) {
			hit->layer = i;
			hit->ino = ino;
			return 0;
		}
	}
	return -E_NOENT;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/*
 * path[0, at) is the symlink h (in layer h->layer); path[at..] the rest.
 * Replace that prefix with the link's target, resolved against the link's
 * directory, and normalise: 0 or -errno.
 */
static int substitute(const struct sbfs *l, const struct sbfs_hit *h, char *path, char *tmp,
		      size_t cap, size_t at)
{
	const char *t;
	size_t len = slen(path), o = 0, dir = at;

	if (sbfs_link(&l[h->layer], &h->n, &t))
		return -E_IO;
	if (t[0] != '/') { /* relative: from the link's directory */
		while (dir && path[dir - 1] != '/')
			dir--;
		o = dir;
	}
	if (o + h->n.size + (len - at) + 1 > cap)
		return -E_NAMETOOLONG;
	memcpy(tmp, path, o);
	memcpy(tmp + o, t, h->n.size);
	memcpy(tmp + o + h->n.size, path + at, len - at);
	return sbfs_normalize(tmp, o + h->n.size + (len - at), path, cap);
}

int sbfs_resolve(const struct sbfs *layers, unsigned n, char *path, char *tmp, size_t cap,
		 int follow_last, struct sbfs_hit *hit)
{
	unsigned hops = 0;
	uint32_t links = 0;
	int r;

	for (unsigned i = 0; i < n; i++)
		links |= layers[i].h.flags & SBFS_F_SYMLINKS;
	for (;;) {
		size_t len = slen(path), i;

		if (find_top(layers, n, path, len, hit) == 0) {
			if (!follow_last || (hit->n.mode & SBFS_S_IFMT) != SBFS_S_IFLNK)
				return 0;
			if (++hops > SBFS_LINK_HOPS)
				return -E_LOOP;
			r = substitute(layers, hit, path, tmp, cap, len);
			if (r)
				return r;
			continue;
		}
		if (!links)
			return -E_NOENT;
		/* a miss: is a directory on the way a symlink, or a file? */
		for (i = 0; i < len; i++) {
			if (path[i] != '/')
				continue;
			if (find_top(layers, n, path, i, hit))
				return -E_NOENT;
			if ((hit->n.mode & SBFS_S_IFMT) == SBFS_S_IFLNK)
				break;
			if ((hit->n.mode & SBFS_S_IFMT) != SBFS_S_IFDIR)
				return -E_NOTDIR;
		}
		if (i >= len)
			return -E_NOENT;
		if (++hops > SBFS_LINK_HOPS)
			return -E_LOOP;
		r = substitute(layers, hit, path, tmp, cap, i);
		if (r)
			return r;
	}
}
