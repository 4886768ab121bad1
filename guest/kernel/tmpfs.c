/* SPDX-License-Identifier: MIT */
/*
 * /tmp: a small writable file system in the sandbox's own RAM.  A table of
 * nodes in the syscall layer's data (so a template keeps whatever its boot
 * wrote, and a clone's changes are its own, copy-on-write like the rest of
 * its memory); a file's bytes live in one extent of user memory taken from
 * the mmap allocator (mm_take_top) and grown by doubling.  Running out of
 * nodes or memory is ENOSPC, never a panic.  No links, no symlinks, no
 * permissions: one user.  Paths here are relative to /tmp, normalised
 * ("" = /tmp itself).
 */
#include "kernel.h"

#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define RENAME_NOREPLACE 1

struct tnode {
	uint8_t used;
	uint8_t unlinked;      /* removed from its directory, still open */
	uint16_t namelen;
	uint32_t parent;       /* node index of its directory */
	uint32_t mode;
	uint32_t nopen;        /* open file descriptions (fds) */
	uint32_t gen;          /* bumped when the slot is reused: inode numbers */
	uint32_t pad;
	uint64_t size;
	uint64_t data, cap;    /* files: an extent of user memory */
	int64_t mtime;
	char name[TMPFS_NAME_MAX];
};

static struct tnode nodes[TMPFS_NODES];
static int ready;

static int64_t now(void)
{
	int64_t s, ns;
	kclock(0, &s, &ns);
	return s;
}

static void init(void)
{
	if (ready)
		return;
	ready = 1;
	nodes[0] = (struct tnode){ .used = 1, .mode = S_IFDIR | 01777, .mtime = now() };
}

/* The entry `name` of directory dir, or -1. */
static int child(uint32_t dir, const char *name, size_t len)
{
	for (uint32_t i = 1; i < TMPFS_NODES; i++) {
		const struct tnode *t = &nodes[i];
		if (t->used && !t->unlinked && t->parent == dir && t->namelen == len &&
		    !memcmp(t->name, name, len))
			return (int)i;
	}
	return -1;
}

/* Where a path leads: the last component's node (or -1 if only it is
 * missing), its directory, and the last component's name. */
struct where {
	int node;
	uint32_t parent;
	const char *name;
	size_t len;
};

/* Walk rel into *w: 0, -ENOENT (a directory on the way is missing), -ENOTDIR. */
static int walk(const char *rel, struct where *w)
{
	uint32_t cur = 0;
	const char *p = rel;

	init();
	*w = (struct where){ .name = "" };
	while (*p) {
		const char *e = p;
		while (*e && *e != '/')
			e++;
		if ((nodes[cur].mode & S_IFMT) != S_IFDIR)
			return -ENOTDIR;
		int c = child(cur, p, (size_t)(e - p));
		w->parent = cur;
		w->name = p;
		w->len = (size_t)(e - p);
		if (c < 0) {
			w->node = -1;
			return *e ? -ENOENT : 0;
		}
		cur = (uint32_t)c;
		w->node = c;
		p = *e ? e + 1 : e;
	}
	return 0;
}

/* walk() to a node that must exist: 0, -ENOENT, -ENOTDIR. */
static int walk_existing(const char *rel, struct where *w)
{
	int r = walk(rel, w);

	if (r)
		return r;
	return w->node < 0 ? -ENOENT : 0;
}

static void node_to(uint32_t i, struct fnode *out)
{
	const struct tnode *t = &nodes[i];
	uint32_t sub = 0;

	if ((t->mode & S_IFMT) == S_IFDIR)
		for (uint32_t j = 1; j < TMPFS_NODES; j++)
			sub += nodes[j].used && !nodes[j].unlinked && nodes[j].parent == i &&
			       (nodes[j].mode & S_IFMT) == S_IFDIR;
	*out = (struct fnode){
		.mode = t->mode,
		.nlink = (t->mode & S_IFMT) == S_IFDIR ? 2 + sub : !t->unlinked,
		.size = (t->mode & S_IFMT) == S_IFDIR ? 4096 : t->size,
		.data = (const uint8_t *)t->data,
		.ino = ((uint64_t)t->gen << 32) | (i + 1),
		.mtime = t->mtime,
		.tnode = i + 1,
		.dev = TMPFS_DEV,
	};
}

int tmpfs_lookup(const char *rel, struct fnode *out)
{
	struct where w;
	int r = walk_existing(rel, &w);

	if (r)
		return r;
	node_to((uint32_t)w.node, out);
	return 0;
}

int tmpfs_stat(uint32_t tnode, struct fnode *out)
{
	if (tnode == 0 || tnode > TMPFS_NODES || !nodes[tnode - 1].used)
		return -EBADF;
	node_to(tnode - 1, out);
	return 0;
}

static int new_node(uint32_t parent, const char *name, size_t len, uint32_t mode)
{
	if (len >= TMPFS_NAME_MAX)
		return -ENAMETOOLONG;
	if ((nodes[parent].mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	for (uint32_t i = 1; i < TMPFS_NODES; i++) {
		struct tnode *t = &nodes[i];
		if (t->used)
			continue;
		uint32_t gen = t->gen + 1;
		*t = (struct tnode){ .used = 1, .parent = parent, .mode = mode, .gen = gen,
				     .namelen = (uint16_t)len, .mtime = now() };
		memcpy(t->name, name, len);
		nodes[parent].mtime = t->mtime;
		return (int)i;
	}
	return -ENOSPC;
}

int tmpfs_create(const char *rel, uint32_t perm, int excl, struct fnode *out)
{
	struct where w;
	int r = walk(rel, &w);

	if (r)
		return r;
	if (w.node >= 0) {
		if (excl)
			return -EEXIST;
	} else {
		w.node = new_node(w.parent, w.name, w.len, S_IFREG | (perm & 07777));
		if (w.node < 0)
			return w.node;
	}
	node_to((uint32_t)w.node, out);
	return 0;
}

int tmpfs_mkdir(const char *rel, uint32_t perm)
{
	struct where w;
	int r = walk(rel, &w);

	if (r)
		return r;
	if (w.node >= 0)
		return -EEXIST;
	r = new_node(w.parent, w.name, w.len, S_IFDIR | (perm & 07777));
	return r < 0 ? r : 0;
}

static int empty_dir(uint32_t dir)
{
	for (uint32_t j = 1; j < TMPFS_NODES; j++)
		if (nodes[j].used && !nodes[j].unlinked && nodes[j].parent == dir)
			return 0;
	return 1;
}

static void release(uint32_t i)
{
	struct tnode *t = &nodes[i];
	if (t->cap)
		mm_give(t->data, t->cap);
	t->used = 0;
	t->data = t->cap = t->size = 0;
}

/* Take node i out of its directory; free it unless it is open. */
static void drop(uint32_t i)
{
	nodes[nodes[i].parent].mtime = now();
	nodes[i].unlinked = 1;
	if (!nodes[i].nopen)
		release(i);
}

int tmpfs_remove(const char *rel, int dir)
{
	struct where w;
	int r = walk_existing(rel, &w);

	if (r)
		return r;
	if (w.node == 0)
		return dir ? -EBUSY : -EISDIR;
	if (dir) {
		if ((nodes[w.node].mode & S_IFMT) != S_IFDIR)
			return -ENOTDIR;
		if (!empty_dir((uint32_t)w.node))
			return -ENOTEMPTY;
	} else if ((nodes[w.node].mode & S_IFMT) == S_IFDIR) {
		return -EISDIR;
	}
	drop((uint32_t)w.node);
	return 0;
}

/* Is a inside directory d (or d itself)? */
static int within(uint32_t a, uint32_t d)
{
	for (unsigned hops = 0; hops < TMPFS_NODES; hops++) {
		if (a == d)
			return 1;
		if (a == 0)
			return 0;
		a = nodes[a].parent;
	}
	return 1;
}

int tmpfs_rename(const char *from, const char *to, uint32_t flags)
{
	struct where from_w, to_w;
	int r;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if ((r = walk_existing(from, &from_w)) || (r = walk(to, &to_w)))
		return r;
	int src = from_w.node, dst = to_w.node;
	uint32_t sp = from_w.parent, dp = to_w.parent;
	const char *dn = to_w.name;
	size_t dl = to_w.len;
	if (src == 0 || dst == 0)
		return -EBUSY;
	if (dl >= TMPFS_NAME_MAX)
		return -ENAMETOOLONG;
	if ((nodes[dp].mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	int src_dir = (nodes[src].mode & S_IFMT) == S_IFDIR;
	if (src_dir && within(dp, (uint32_t)src))
		return -EINVAL;
	if (dst == src)
		return 0;
	if (dst >= 0) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		int dst_dir = (nodes[dst].mode & S_IFMT) == S_IFDIR;
		if (src_dir && !dst_dir)
			return -ENOTDIR;
		if (!src_dir && dst_dir)
			return -EISDIR;
		if (dst_dir && !empty_dir((uint32_t)dst))
			return -ENOTEMPTY;
		drop((uint32_t)dst);
	}
	struct tnode *t = &nodes[src];
	nodes[sp].mtime = nodes[dp].mtime = now();
	t->parent = dp;
	t->namelen = (uint16_t)dl;
	memcpy(t->name, dn, dl);
	return 0;
}

void tmpfs_ref(uint32_t tnode)
{
	if (tnode && tnode <= TMPFS_NODES)
		nodes[tnode - 1].nopen++;
}

void tmpfs_unref(uint32_t tnode, int wrote)
{
	if (!tnode || tnode > TMPFS_NODES)
		return;
	struct tnode *t = &nodes[tnode - 1];
	if (t->nopen)
		t->nopen--;
	if (wrote && t->used)
		t->mtime = now();
	if (t->unlinked && !t->nopen && t->used)
		release(tnode - 1);
}

/* Room for `need` bytes of file i: 0 or -ENOSPC. */
static int reserve(struct tnode *t, uint64_t need)
{
	uint64_t cap, a;

	if (need <= t->cap)
		return 0;
	if (need > K.mem_size)
		return -ENOSPC;
	cap = t->cap ? t->cap * 2 : PAGE;
	if (cap < PAGE_UP(need))
		cap = PAGE_UP(need);
	a = mm_take_top(cap);
	if (!a && cap > PAGE_UP(need))
		a = mm_take_top(cap = PAGE_UP(need));
	if (!a)
		return -ENOSPC;
	if (t->size)
		kcopy(a, t->data, t->size);
	if (t->cap && mm_give(t->data, t->cap)) {
		mm_give(a, cap);
		return -ENOSPC;
	}
	t->data = a;
	t->cap = cap;
	return 0;
}

/* A file node whose extent is (still) user memory: the table lies in the
 * user-accessible syscall layer, so it is checked before every copy. */
static struct tnode *file(uint32_t tnode)
{
	struct tnode *t;
	if (!tnode || tnode > TMPFS_NODES)
		return 0;
	t = &nodes[tnode - 1];
	if (!t->used || (t->mode & S_IFMT) != S_IFREG || t->size > t->cap ||
	    (t->cap && !user_ok(t->data, t->cap)))
		return 0;
	return t;
}

int64_t tmpfs_read(uint32_t tnode, uint64_t buf, uint64_t n, uint64_t off)
{
	struct tnode *t = file(tnode);
	if (!t)
		return -EBADF;
	if (off >= t->size)
		return 0;
	if (n > t->size - off)
		n = t->size - off;
	kcopy(buf, t->data + off, n);
	return (int64_t)n;
}

int64_t tmpfs_write(uint32_t tnode, uint64_t buf, uint64_t n, uint64_t off)
{
	struct tnode *t = file(tnode);
	uint64_t end;
	if (!t)
		return -EBADF;
	if (!n)
		return 0;
	if (!sb_add_ok(off, n, &end) || end > K.mem_size)
		return -EFBIG;
	int r = reserve(t, end);
	if (r)
		return r;
	kcopy(t->data + off, buf, n);
	if (end > t->size)
		t->size = end;
	return (int64_t)n;
}

int tmpfs_truncate(uint32_t tnode, uint64_t len)
{
	struct tnode *t = file(tnode);
	if (!t)
		return -EINVAL;
	if (len > K.mem_size)
		return -EFBIG;
	if (len < t->size) {
		kzero(t->data + len, t->size - len); /* what grows back reads zero */
	} else if (len > t->size) {
		int r = reserve(t, len);
		if (r)
			return r;
	}
	t->size = len;
	t->mtime = now();
	return 0;
}

int tmpfs_set(uint32_t tnode, int chmod, uint32_t perm, int settime, int64_t mtime)
{
	if (!tnode || tnode > TMPFS_NODES || !nodes[tnode - 1].used)
		return -EBADF;
	struct tnode *t = &nodes[tnode - 1];
	if (chmod)
		t->mode = (t->mode & S_IFMT) | (perm & 07777);
	if (settime)
		t->mtime = mtime;
	return 0;
}

int tmpfs_readdir(uint32_t dir, uint64_t *cursor, const char **name, size_t *len,
		  uint8_t *dtype, uint64_t *ino)
{
	if (!dir || dir > TMPFS_NODES)
		return 0;
	for (uint64_t i = *cursor; i < TMPFS_NODES; i++) {
		const struct tnode *t = &nodes[i];
		if (!t->used || t->unlinked || t->parent != dir - 1 || i == 0)
			continue;
		*name = t->name;
		*len = t->namelen;
		*dtype = (t->mode & S_IFMT) == S_IFDIR ? 4 : 8;
		*ino = ((uint64_t)t->gen << 32) | (i + 1);
		*cursor = i + 1;
		return 1;
	}
	*cursor = TMPFS_NODES;
	return 0;
}

void tmpfs_usage(uint64_t *files, uint64_t *bytes)
{
	*files = *bytes = 0;
	for (uint32_t i = 0; i < TMPFS_NODES; i++) {
		*files += nodes[i].used;
		*bytes += nodes[i].cap;
	}
}
