/* SPDX-License-Identifier: MIT */
/*
 * A read-only file system over the root file system's layers (sbfs images
 * in the layer window, guest/include/sbfs.h), plus the console (fds 0-2)
 * and /dev/{null,zero,urandom,random}.  A path resolves in the highest
 * layer that has it (the host stacks --rootfs layers on the base), with
 * symlinks followed; directories list the union of their layers.  Nothing
 * is indexed or copied: a lookup is a hash probe per layer in the image.
 */
#include "kernel.h"
#include "sbfs.h"

#define MAX_FDS 64
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFLNK 0120000
#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000
#define AT_REMOVEDIR 0x200
#define O_ACCMODE 3
#define O_RDONLY 0
#define O_WRONLY 1
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_APPEND 02000
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000
#define O_CLOEXEC 02000000
#define INO_DEV 0x10000 /* + enum fd_type: the devices' inode numbers */
#define DEV_LAYER 0x800 /* + layer: st_dev of a layer's files */
#define DEV_DEVICES 5
#define TMPFS_MAGIC 0x01021994
#define SQUASHFS_MAGIC 0x73717368 /* what a read-only layer says it is */
#define ST_RDONLY 1

enum fd_type { FD_FREE, FD_STDIN, FD_OUT, FD_FILE, FD_DIR, FD_NULL, FD_ZERO, FD_RANDOM,
	       FD_TFILE, FD_TDIR /* /tmp: node.tnode */ };

struct ofile {
	uint8_t type;
	uint8_t console;       /* FD_OUT: the host's fd it writes to (1 or 2),
				  whatever number a dup gave it */
	uint8_t cloexec;       /* FD_CLOEXEC (kept for F_GETFD; there is no exec) */
	uint8_t wrote;         /* FD_TFILE: written through this fd (mtime at close) */
	uint32_t flags;        /* O_ACCMODE | O_APPEND of open() */
	struct fnode node;
	uint64_t off;          /* files: bytes; directories: a getdents cursor */
	char path[PATH_MAX_K]; /* directories: the path, links followed (the base
				  of *at() calls) */
};

static struct sbfs layers[SB_MAX_LAYERS];
static unsigned n_layers;
static struct ofile fds[MAX_FDS];
static char cwd[PATH_MAX_K]; /* normalised, no leading '/', "" = root */
static char exe[PATH_MAX_K]; /* the program, links followed (/proc/self/exe) */

void fs_set_exe(const char *resolved)
{
	size_t l = strlen(resolved);
	if (l + 1 < sizeof(exe)) {
		exe[0] = '/';
		memcpy(exe + 1, resolved, l + 1);
	}
}

static void layer_open(unsigned i, uint64_t gpa, uint64_t size)
{
	int r = sbfs_open(&layers[i], (const void *)gpa, size);

	if (r)
		kpanic(SB_PANIC_KERNEL, "a root file system layer is damaged: ", sbfs_strerror(r));
}

void fs_init(void)
{
	if (K.snapbox) {
		if (K.n_layers == 0 || K.n_layers > SB_MAX_LAYERS)
			kpanic(SB_PANIC_KERNEL, "boot info: no root file system layers", 0);
		for (unsigned i = 0; i < K.n_layers; i++) {
			struct sb_layer l = K.layers[i];
			if (l.gpa % SB_PAGE_2M || !sb_range_in(l.gpa, l.size, SB_IMG_GPA, SB_IMG_GPA + SB_IMG_MAX))
				kpanic(SB_PANIC_KERNEL, "boot info: a layer outside the layer window", 0);
			layer_open(i, l.gpa, l.size);
		}
		n_layers = K.n_layers;
	} else if (K.initrd_size) { /* QEMU: the module is the one layer, in RAM */
		layer_open(0, (uint64_t)K.initrd, K.initrd_size);
		n_layers = 1;
	}
	fds[0].type = FD_STDIN;
	fds[1].type = FD_OUT;
	fds[2].type = FD_OUT;
	fds[1].console = 1;
	fds[2].console = 2;
	for (int i = 0; i < 3; i++) {
		fds[i].node.mode = S_IFCHR | 0620;
		fds[i].node.dev = DEV_DEVICES;
	}
	fds[0].flags = O_RDONLY;
	fds[1].flags = fds[2].flags = O_WRONLY;
}

/* Normalise `path` (relative to base, a normalised directory, unless
 * absolute) into out[PATH_MAX_K]. */
static int normalize_at(const char *base, const char *path, char *out)
{
	char tmp[PATH_MAX_K * 2];
	size_t c = strlen(base), p = strlen(path);

	if (!*path)
		return -ENOENT;
	if (*path == '/')
		return sbfs_normalize(path, p, out, PATH_MAX_K);
	if (c + 1 + p >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, base, c);
	tmp[c] = '/';
	memcpy(tmp + c + 1, path, p);
	return sbfs_normalize(tmp, c + 1 + p, out, PATH_MAX_K);
}

/* A normalised path inside /tmp: the part after "tmp/" ("" for /tmp
 * itself); NULL elsewhere. */
static const char *tmp_rel(const char *norm)
{
	if (norm[0] != 't' || norm[1] != 'm' || norm[2] != 'p')
		return 0;
	if (norm[3] == 0)
		return norm + 3;
	return norm[3] == '/' ? norm + 4 : 0;
}

static enum fd_type dev_type(const char *p)
{
	static const char *const names[] = { "dev/null", "dev/zero", "dev/urandom", "dev/random" };
	static const enum fd_type types[] = { FD_NULL, FD_ZERO, FD_RANDOM, FD_RANDOM };
	for (int i = 0; i < 4; i++) {
		size_t l = strlen(names[i]);
		if (!memcmp(p, names[i], l + 1))
			return types[i];
	}
	return FD_FREE;
}

static uint64_t layer_ino(uint32_t layer, uint32_t ino)
{
	return ((uint64_t)(layer + 1) << 32) | (ino + 1);
}

static void node_of(const struct sbfs_hit *h, struct fnode *out)
{
	*out = (struct fnode){ .mode = h->n.mode, .nlink = h->n.nlink, .size = h->n.size,
			       .ino = layer_ino(h->layer, h->ino), .mtime = h->n.mtime,
			       .dev = DEV_LAYER + h->layer };
	if ((h->n.mode & S_IFMT) == S_IFREG && sbfs_file(&layers[h->layer], &h->n, &out->data))
		out->size = 0, out->data = 0; /* a damaged layer: an empty file */
	if ((h->n.mode & S_IFMT) == S_IFDIR)
		out->size = 4096;
}

int fs_lookup(const char *norm, int follow, struct fnode *out, char *resolved)
{
	char path[PATH_MAX_K], tmp[PATH_MAX_K];
	struct sbfs_hit h;
	size_t len = strlen(norm);
	int r;

	if (len >= PATH_MAX_K)
		return -ENAMETOOLONG;
	/* the devices are the kernel's: no layer puts a file over them */
	if (dev_type(norm) != FD_FREE) {
		*out = (struct fnode){ .mode = S_IFCHR | 0666, .nlink = 1, .ino = INO_DEV + dev_type(norm),
				       .dev = DEV_DEVICES };
		if (resolved)
			memcpy(resolved, norm, len + 1);
		return 0;
	}
	/* /tmp is tmpfs, whatever a layer has there */
	if (tmp_rel(norm)) {
		r = tmpfs_lookup(tmp_rel(norm), out);
		if (r == 0 && resolved)
			memcpy(resolved, norm, len + 1);
		return r;
	}
	memcpy(path, norm, len + 1);
	r = sbfs_resolve(layers, n_layers, path, tmp, PATH_MAX_K, follow, &h);
	if (r == 0) {
		node_of(&h, out);
		if (resolved)
			memcpy(resolved, path, strlen(path) + 1);
		return 0;
	}
	if (r == -ENOENT && len == 0) { /* no layers (QEMU without a module) */
		*out = (struct fnode){ .mode = S_IFDIR | 0755, .nlink = 2, .size = 4096, .ino = 1 };
		if (resolved)
			resolved[0] = 0;
		return 0;
	}
	return r;
}

static struct ofile *get_fd(uint64_t fd)
{
	if (fd >= MAX_FDS || fds[fd].type == FD_FREE)
		return 0;
	return &fds[fd];
}

static int alloc_fd(int from)
{
	for (int i = from; i < MAX_FDS; i++)
		if (fds[i].type == FD_FREE)
			return i;
	return -EMFILE;
}

static int is_tmp_fd(const struct ofile *f)
{
	return f->type == FD_TFILE || f->type == FD_TDIR;
}

/* Close a slot (a dup2 target too): /tmp nodes count their open fds. */
static void fd_release(struct ofile *f)
{
	if (is_tmp_fd(f))
		tmpfs_unref(f->node.tnode, f->wrote);
	f->type = FD_FREE;
}

/* The directory a relative path of an *at() call starts from: the cwd
 * (AT_FDCWD) or a directory fd's path.  NULL with *err set otherwise. */
static const char *at_base(int64_t dirfd, int64_t *err)
{
	struct ofile *f;

	if ((int32_t)dirfd == AT_FDCWD)
		return cwd;
	f = get_fd((uint64_t)dirfd);
	if (!f) {
		*err = -EBADF;
		return 0;
	}
	if (f->type != FD_DIR && f->type != FD_TDIR) {
		*err = -ENOTDIR;
		return 0;
	}
	return f->path;
}

/* A user path of an *at() call, copied in and normalised into
 * norm[PATH_MAX_K]. */
static int64_t user_path_at(int64_t dirfd, uint64_t up, char *norm)
{
	char raw[PATH_MAX_K];
	int64_t r = user_string(up, raw, sizeof(raw));
	const char *base = cwd;

	if (r)
		return r;
	if (raw[0] != '/' && raw[0]) {
		base = at_base(dirfd, &r);
		if (!base)
			return r;
	}
	return normalize_at(base, raw, norm);
}

/* A user path: copied in, normalised into norm[PATH_MAX_K], looked up;
 * resolved (may be NULL) gets it with links followed. */
static int64_t lookup_user_at(int64_t dirfd, uint64_t up, int follow, char *norm, struct fnode *n,
			      char *resolved)
{
	int64_t r = user_path_at(dirfd, up, norm);
	return r ? r : fs_lookup(norm, follow, n, resolved);
}

static int64_t lookup_user(uint64_t up, int follow, char *norm, struct fnode *n, char *resolved)
{
	return lookup_user_at(AT_FDCWD, up, follow, norm, n, resolved);
}

/* open() in /tmp: rel is the path under it */
static int64_t open_tmp(const char *rel, uint64_t flags, uint64_t mode, struct fnode *n)
{
	int64_t r;

	if ((flags & O_CREAT) && *rel)
		r = tmpfs_create(rel, (uint32_t)mode & ~022u, (flags & O_EXCL) != 0, n);
	else
		r = tmpfs_lookup(rel, n);
	if (r)
		return r;
	if ((n->mode & S_IFMT) == S_IFDIR) {
		if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT))
			return -EISDIR;
		return 0;
	}
	if (flags & O_DIRECTORY)
		return -ENOTDIR;
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
		return tmpfs_truncate(n->tnode, 0);
	return 0;
}

static int64_t sys_openat(int64_t dirfd, uint64_t up, uint64_t flags, uint64_t mode)
{
	char norm[PATH_MAX_K], real[PATH_MAX_K];
	struct fnode n;
	int fd = alloc_fd(0);
	int64_t r;

	if (fd < 0)
		return fd;
	r = user_path_at(dirfd, up, norm);
	if (r)
		return r;
	if (tmp_rel(norm)) {
		r = open_tmp(tmp_rel(norm), flags, mode, &n);
		if (r)
			return r;
		memcpy(real, norm, strlen(norm) + 1);
	} else {
		r = fs_lookup(norm, !(flags & O_NOFOLLOW), &n, real);
		if (r == -ENOENT && (flags & O_CREAT))
			return -EROFS;
		if (r)
			return r;
		if ((n.mode & S_IFMT) == S_IFLNK) /* O_NOFOLLOW on a link */
			return -ELOOP;
		if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) { /* write access */
			enum fd_type t = dev_type(real);
			if (t != FD_NULL && t != FD_ZERO && t != FD_RANDOM)
				return (n.mode & S_IFMT) == S_IFDIR ? -EISDIR : -EROFS;
		}
		if ((flags & O_DIRECTORY) && (n.mode & S_IFMT) != S_IFDIR)
			return -ENOTDIR;
	}
	struct ofile *f = &fds[fd];
	f->node = n;
	f->off = 0;
	f->cloexec = (flags & O_CLOEXEC) != 0;
	f->wrote = 0;
	f->flags = (uint32_t)(flags & (O_ACCMODE | O_APPEND));
	if (n.tnode) {
		f->type = (n.mode & S_IFMT) == S_IFDIR ? FD_TDIR : FD_TFILE;
		tmpfs_ref(n.tnode);
	} else {
		f->type = n.ino >= INO_DEV && n.ino < INO_DEV + 16 ? dev_type(real) : FD_FREE;
		if (f->type == FD_FREE)
			f->type = (n.mode & S_IFMT) == S_IFDIR ? FD_DIR : FD_FILE;
	}
	if (f->type == FD_DIR || f->type == FD_TDIR)
		memcpy(f->path, real, strlen(real) + 1);
	return fd;
}

static int64_t file_read(struct ofile *f, uint64_t buf, uint64_t n, uint64_t off)
{
	if (off >= f->node.size)
		return 0;
	if (n > f->node.size - off)
		n = f->node.size - off;
	kcopy(buf, (uint64_t)f->node.data + off, n);
	return (int64_t)n;
}

/* The host said nothing more will come on fd 0 (SB_STDIN_EOF): from now
 * on a read of it is answered here, with 0. */
static uint32_t stdin_eof;

static int64_t console_read(const struct sb_iovec *iov, uint64_t cnt)
{
	if (!K.snapbox || stdin_eof)
		return 0; /* QEMU path: no stdin */
	struct sb_hc_stdin s;
	mm_report_flush(); /* about to wait: give back what was freed */
	do {
		mm_sync();
		s = (struct sb_hc_stdin){ .iovcnt = (uint32_t)cnt, .iov_gpa = (uint64_t)iov };
		krandom_pool_give(&s); /* emptied now, refilled by this call */
		hypercall(SB_HC_STDIN, &s);
		kclock_rebase(); /* clones start here */
		krandom_pool_filled(&s);
	} while (s.flags & SB_STDIN_MEMCTL); /* woken for the mailbox (ABI 5) */
	if (s.flags & SB_STDIN_EOF)
		stdin_eof = 1;
	return s.ret;
}

static int64_t console_writev(int fd, const struct sb_iovec *iov, uint64_t cnt)
{
	if (!K.snapbox) {
		uint64_t total = 0;
		for (uint64_t i = 0; i < cnt; i++) {
			console_write(fd, (const void *)iov[i].base, iov[i].len);
			total += iov[i].len;
		}
		return (int64_t)total;
	}
	if (k_proc())
		return proc_output(fd, iov, cnt); /* one way, inline */
	struct sb_hc_io io = { .fd = (uint32_t)fd, .iovcnt = (uint32_t)cnt, .iov_gpa = (uint64_t)iov };
	hypercall(SB_HC_WRITE, &io);
	return io.ret;
}


/* read one buffer from an open file at *pos (pos may be the fd's offset) */
static int64_t read_one(struct ofile *f, uint64_t buf, uint64_t n, uint64_t *pos)
{
	int64_t r;
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	switch (f->type) {
	case FD_FILE:
	case FD_TFILE:
		r = f->type == FD_FILE ? file_read(f, buf, n, *pos) : tmpfs_read(f->node.tnode, buf, n, *pos);
		if (r > 0)
			*pos += r;
		return r;
	case FD_NULL:
		return 0;
	case FD_ZERO:
		kzero(buf, n);
		return (int64_t)n;
	case FD_RANDOM:
		krandom((void *)buf, n);
		return (int64_t)n;
	case FD_DIR:
	case FD_TDIR:
		return -EISDIR;
	default:
		return -EBADF;
	}
}

/* write one buffer to a /tmp file at *pos, or at its end (O_APPEND) */
static int64_t write_tmp(struct ofile *f, uint64_t buf, uint64_t n, uint64_t *pos, int append)
{
	struct fnode cur;
	int64_t r;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (append && tmpfs_stat(f->node.tnode, &cur) == 0)
		*pos = cur.size;
	r = tmpfs_write(f->node.tnode, buf, n, *pos);
	if (r > 0) {
		*pos += r;
		f->wrote = 1;
	}
	return r;
}

static int check_iov(uint64_t iov, uint64_t cnt)
{
	if (cnt > SB_HC_IOV_MAX)
		return -EINVAL;
	if (!user_ok(iov, cnt * sizeof(struct sb_iovec)))
		return -EFAULT;
	const struct sb_iovec *v = (const struct sb_iovec *)iov;
	for (uint64_t i = 0; i < cnt; i++)
		if (v[i].len && !user_ok(v[i].base, v[i].len))
			return -EFAULT;
	return 0;
}

static int64_t sys_readv(uint64_t fd, uint64_t iov, uint64_t cnt, int use_pos, uint64_t pos)
{
	struct ofile *f = get_fd(fd);
	int64_t r, total = 0;
	if (!f)
		return -EBADF;
	if ((r = check_iov(iov, cnt)))
		return r;
	const struct sb_iovec *v = (const struct sb_iovec *)iov;
	if (f->type == FD_STDIN)
		return use_pos ? -ESPIPE : console_read(v, cnt);
	uint64_t *p = use_pos ? &pos : &f->off;
	for (uint64_t i = 0; i < cnt; i++) {
		r = read_one(f, v[i].base, v[i].len, p);
		if (r < 0)
			return total ? total : r;
		total += r;
		if ((uint64_t)r < v[i].len)
			break;
	}
	return total;
}

static int64_t sys_read(uint64_t fd, uint64_t buf, uint64_t n, int use_pos, uint64_t pos)
{
	struct sb_iovec one = { buf, n };
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	if (n && !user_ok(buf, n))
		return -EFAULT;
	if (f->type == FD_STDIN)
		return use_pos ? -ESPIPE : console_read(&one, 1);
	return read_one(f, buf, n, use_pos ? &pos : &f->off);
}

static int64_t sys_writev(uint64_t fd, uint64_t iov, uint64_t cnt, int use_pos, uint64_t pos)
{
	struct ofile *f = get_fd(fd);
	int64_t r, total = 0;
	if (!f)
		return -EBADF;
	if ((r = check_iov(iov, cnt)))
		return r;
	const struct sb_iovec *v = (const struct sb_iovec *)iov;
	if (f->type == FD_OUT)
		return use_pos ? -ESPIPE : console_writev(f->console, v, cnt);
	if (f->type == FD_NULL || f->type == FD_ZERO || f->type == FD_RANDOM) {
		uint64_t sum = 0;
		for (uint64_t i = 0; i < cnt; i++)
			sum += v[i].len;
		return (int64_t)sum;
	}
	if (f->type != FD_TFILE)
		return f->type == FD_STDIN && use_pos ? -ESPIPE : -EBADF;
	uint64_t *p = use_pos ? &pos : &f->off;
	for (uint64_t i = 0; i < cnt; i++) {
		r = write_tmp(f, v[i].base, v[i].len, p, !use_pos && (f->flags & O_APPEND));
		if (r < 0)
			return total ? total : r;
		total += r;
	}
	return total;
}

static int64_t sys_write(uint64_t fd, uint64_t buf, uint64_t n, int use_pos, uint64_t pos)
{
	struct sb_iovec one = { buf, n };
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	if (n && !user_ok(buf, n))
		return -EFAULT;
	if (f->type == FD_OUT)
		return use_pos ? -ESPIPE : console_writev(f->console, &one, 1);
	if (f->type == FD_NULL || f->type == FD_ZERO || f->type == FD_RANDOM)
		return (int64_t)n;
	if (f->type == FD_TFILE)
		return write_tmp(f, buf, n, use_pos ? &pos : &f->off, !use_pos && (f->flags & O_APPEND));
	return -EBADF;
}

struct kstat {
	uint64_t dev, ino, nlink;
	uint32_t mode, uid, gid, pad0;
	uint64_t rdev;
	int64_t size, blksize, blocks;
	int64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
	int64_t unused[3];
};
_Static_assert(sizeof(struct kstat) == 144, "struct stat");


static int64_t fill_stat(const struct fnode *n, uint64_t up)
{
	if (!user_ok(up, sizeof(struct kstat)))
		return -EFAULT;
	struct kstat *st = (struct kstat *)up;
	memset(st, 0, sizeof(*st));
	st->dev = n->dev ? n->dev : DEV_LAYER;
	st->ino = n->ino;
	st->nlink = n->nlink ? n->nlink : 1;
	st->mode = n->mode;
	st->size = (int64_t)n->size;
	st->blksize = 4096;
	st->blocks = (int64_t)(PAGE_UP(n->size) / 512);
	st->atime = st->mtime = st->ctime = n->mtime;
	if ((n->mode & S_IFMT) == S_IFCHR)
		st->rdev = 0x0501; /* looks like a tty-ish char device */
	return 0;
}

/* An open file's node, live for /tmp (its size changes). */
static int fd_node(struct ofile *f, struct fnode *n)
{
	if (is_tmp_fd(f))
		return tmpfs_stat(f->node.tnode, n);
	*n = f->node;
	return 0;
}

static int empty_path(uint64_t up)
{
	return up && user_ok(up, 1) && *(const char *)up == 0;
}

static int64_t sys_fstatat(int64_t dirfd, uint64_t up, uint64_t stp, uint64_t flags)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r;
	if ((flags & AT_EMPTY_PATH) && empty_path(up)) {
		struct ofile *f = get_fd((uint64_t)dirfd);
		if ((int32_t)dirfd == AT_FDCWD)
			r = fs_lookup(cwd, 1, &n, 0);
		else
			r = f ? fd_node(f, &n) : -EBADF;
		return r ? r : fill_stat(&n, stp);
	}
	r = lookup_user_at(dirfd, up, !(flags & AT_SYMLINK_NOFOLLOW), norm, &n, 0);
	return r ? r : fill_stat(&n, stp);
}

static int64_t sys_lseek(uint64_t fd, int64_t off, uint64_t whence)
{
	struct ofile *f = get_fd(fd);
	struct fnode n;
	int64_t base;
	if (!f)
		return -EBADF;
	if (f->type == FD_STDIN || f->type == FD_OUT)
		return -ESPIPE;
	if (f->type == FD_DIR || f->type == FD_TDIR) {
		if (whence != 0 || off != 0)
			return -EINVAL;
		f->off = 0;
		return 0;
	}
	switch (whence) {
	case 0: base = 0; break;
	case 1: base = (int64_t)f->off; break;
	case 2:
		if (fd_node(f, &n))
			return -EBADF;
		base = (int64_t)n.size;
		break;
	default: return -EINVAL;
	}
	if (base + off < 0)
		return -EINVAL;
	f->off = (uint64_t)(base + off);
	return (int64_t)f->off;
}


/*
 * Directory cursor: 0 ".", 1 "..", then 2 + (k << 32 | i): entry i of the
 * directory in the k-th layer from the top.  A name an upper layer also has
 * is listed once, from the highest (as a lookup finds it).
 */
#define CUR_LAYERS 2ULL

/* Does a layer above `layer` have dir/name?  (buf: PATH_MAX_K) */
static int shadowed(unsigned layer, const char *dir, size_t dl, const char *name, size_t nl, char *buf)
{
	size_t len = dl + !!dl + nl;
	struct sbfs_inode n;

	if (len >= PATH_MAX_K)
		return 0;
	memcpy(buf, dir, dl);
	if (dl)
		buf[dl] = '/';
	memcpy(buf + dl + !!dl, name, nl);
	for (unsigned u = layer + 1; u < n_layers; u++)
		if (sbfs_lookup(&layers[u], buf, len, &n) != SBFS_NONE)
			return 1;
	return 0;
}

/* linux_dirent64 */

/* one linux_dirent64 at buf + *used if it fits: 1, else 0 */
static int put_dirent(uint64_t buf, uint64_t count, uint64_t *used, uint64_t ino, uint64_t next,
		      uint8_t dtype, const char *name, size_t nl)
{
	uint64_t reclen = (19 + nl + 1 + 7) & ~7ULL;
	if (*used + reclen > count)
		return 0;
	uint8_t *p = (uint8_t *)(buf + *used);
	*(uint64_t *)p = ino;
	*(int64_t *)(p + 8) = (int64_t)next; /* d_off */
	*(uint16_t *)(p + 16) = (uint16_t)reclen;
	p[18] = dtype;
	memcpy(p + 19, name, nl);
	memset(p + 19 + nl, 0, reclen - 19 - nl);
	*used += reclen;
	return 1;
}

/* /tmp directories: cursor 0 ".", 1 "..", then 2 + a node cursor */
static int64_t getdents_tmp(struct ofile *f, uint64_t buf, uint64_t count)
{
	uint64_t used = 0;
	for (;;) {
		uint64_t cur = f->off, c, ino;
		const char *name;
		size_t nl;
		uint8_t dtype = SBFS_DT_DIR;
		if (cur < CUR_LAYERS) {
			name = cur ? ".." : ".";
			nl = cur + 1;
			ino = f->node.ino;
			c = CUR_LAYERS;
			if (!put_dirent(buf, count, &used, ino, cur + 1, dtype, name, nl))
				break;
			f->off = cur + 1;
			continue;
		}
		c = cur - CUR_LAYERS;
		if (!tmpfs_readdir(f->node.tnode, &c, &name, &nl, &dtype, &ino))
			return (int64_t)used;
		if (!put_dirent(buf, count, &used, ino, CUR_LAYERS + c, dtype, name, nl))
			break;
		f->off = CUR_LAYERS + c;
	}
	return used ? (int64_t)used : -EINVAL;
}

/* linux_dirent64 */
static int64_t sys_getdents64(uint64_t fd, uint64_t buf, uint64_t count)
{
	struct ofile *f = get_fd(fd);
	uint64_t used = 0;
	char scratch[PATH_MAX_K];
	int more = 1;
	if (!f)
		return -EBADF;
	if (f->type != FD_DIR && f->type != FD_TDIR)
		return -ENOTDIR;
	if (!user_ok(buf, count))
		return -EFAULT;
	if (f->type == FD_TDIR)
		return getdents_tmp(f, buf, count);
	size_t dl = strlen(f->path);
	while (more) {
		const char *name;
		size_t nl;
		uint8_t dtype;
		uint64_t cur = f->off, next, d_ino;
		if (cur < CUR_LAYERS) {
			name = cur ? ".." : ".";
			nl = cur + 1;
			dtype = SBFS_DT_DIR;
			d_ino = cur + 1;
			next = cur + 1;
		} else {
			uint64_t k = (cur - CUR_LAYERS) >> 32, i = (cur - CUR_LAYERS) & 0xffffffffULL;
			struct sbfs_inode d;
			struct sbfs_dirent e;
			unsigned l;
			if (k >= n_layers) {
				more = 0;
				break;
			}
			l = n_layers - 1 - (unsigned)k;
			if (sbfs_lookup(&layers[l], f->path, dl, &d) == SBFS_NONE ||
			    (d.mode & S_IFMT) != S_IFDIR || i >= d.size ||
			    sbfs_dirent(&layers[l], &d, i, &e, &name)) {
				f->off = CUR_LAYERS + ((k + 1) << 32); /* the next layer down */
				continue;
			}
			nl = e.name_len;
			next = cur + 1;
			if (shadowed(l, f->path, dl, name, nl, scratch)) {
				f->off = next;
				continue;
			}
			dtype = e.d_type;
			d_ino = layer_ino(l, e.inode);
		}
		if (!put_dirent(buf, count, &used, d_ino, next, dtype, name, nl))
			break;
		f->off = next;
	}
	if (!used && more)
		return -EINVAL; /* buffer too small for one entry */
	return (int64_t)used;
}

static int64_t sys_dup(uint64_t old, int64_t newfd, int from, int cloexec)
{
	struct ofile *f = get_fd(old);
	if (!f)
		return -EBADF;
	if (newfd < 0) {
		newfd = alloc_fd(from);
		if (newfd < 0)
			return newfd;
	} else if (newfd >= MAX_FDS) {
		return -EBADF;
	}
	if ((uint64_t)newfd == old)
		return newfd; /* dup2(fd, fd) */
	if (fds[newfd].type != FD_FREE)
		fd_release(&fds[newfd]);
	fds[newfd] = *f;
	fds[newfd].wrote = 0;
	fds[newfd].cloexec = (uint8_t)cloexec;
	if (is_tmp_fd(f))
		tmpfs_ref(f->node.tnode);
	return newfd;
}

static int64_t sys_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	switch (cmd) {
	case 0: case 1030: /* F_DUPFD, F_DUPFD_CLOEXEC */
		return arg >= MAX_FDS ? -EINVAL : sys_dup(fd, -1, (int)arg, cmd == 1030);
	case 1: /* F_GETFD */
		return f->cloexec;
	case 2: /* F_SETFD */
		f->cloexec = arg & 1;
		return 0;
	case 3: /* F_GETFL */
		return f->flags;
	case 4: /* F_SETFL: O_APPEND may change; O_NONBLOCK etc. mean nothing here */
		f->flags = (f->flags & ~(uint32_t)O_APPEND) | (uint32_t)(arg & O_APPEND);
		return 0;
	case 5: case 36: /* F_GETLK, F_OFD_GETLK: nobody else holds a lock */
		if (!user_ok(arg, 2))
			return -EFAULT;
		*(uint16_t *)arg = 2; /* F_UNLCK */
		return 0;
	case 6: case 7: case 37: case 38: /* F_SETLK(W), F_OFD_SETLK(W): one process */
		return 0;
	}
	return -EINVAL;
}

static int64_t sys_ioctl(uint64_t fd, uint64_t req)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	switch (req) {
	case 0x5451: /* FIOCLEX */
		f->cloexec = 1;
		return 0;
	case 0x5450: /* FIONCLEX */
		f->cloexec = 0;
		return 0;
	}
	return -ENOTTY; /* TCGETS, TIOCGWINSZ...: no terminal here */
}

static int64_t sys_access(int64_t dirfd, uint64_t up, uint64_t mode)
{
	char norm[PATH_MAX_K], real[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user_at(dirfd, up, 1, norm, &n, real);
	if (r)
		return r;
	if (mode & 2) /* W_OK */
		return dev_type(real) != FD_FREE || n.tnode ? 0 : -EROFS;
	return 0;
}

static int64_t sys_getcwd(uint64_t buf, uint64_t size)
{
	size_t l = strlen(cwd);
	if (size < l + 2)
		return -ERANGE;
	if (!user_ok(buf, l + 2))
		return -EFAULT;
	char *b = (char *)buf;
	b[0] = '/';
	memcpy(b + 1, cwd, l + 1);
	return (int64_t)(l + 2);
}

static int64_t sys_chdir(uint64_t up)
{
	char norm[PATH_MAX_K], real[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user(up, 1, norm, &n, real);
	if (r)
		return r;
	if ((n.mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	memcpy(cwd, real, strlen(real) + 1);
	return 0;
}

static int64_t sys_fchdir(uint64_t fd)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	if (f->type != FD_DIR && f->type != FD_TDIR)
		return -ENOTDIR;
	memcpy(cwd, f->path, strlen(f->path) + 1);
	return 0;
}

static int64_t sys_readlink(int64_t dirfd, uint64_t up, uint64_t buf, uint64_t size)
{
	char norm[PATH_MAX_K], path[PATH_MAX_K], tmp[PATH_MAX_K];
	struct sbfs_hit h;
	struct fnode n;
	const char *t;
	int64_t r = user_path_at(dirfd, up, norm);
	if (r)
		return r;
	if ((int64_t)size <= 0)
		return -EINVAL;
	if (!memcmp(norm, "proc/self/exe", 14) && exe[0]) {
		size_t l = strlen(exe);
		if (size > l)
			size = l;
		if (!user_ok(buf, size))
			return -EFAULT;
		memcpy((void *)buf, exe, size);
		return (int64_t)size;
	}
	if (dev_type(norm) != FD_FREE || tmp_rel(norm)) { /* no links in /tmp */
		r = fs_lookup(norm, 0, &n, 0);
		return r ? r : -EINVAL;
	}
	memcpy(path, norm, strlen(norm) + 1);
	r = sbfs_resolve(layers, n_layers, path, tmp, PATH_MAX_K, 0, &h);
	if (r)
		return r;
	if ((h.n.mode & S_IFMT) != S_IFLNK)
		return -EINVAL;
	if (sbfs_link(&layers[h.layer], &h.n, &t))
		return -EIO;
	if (size > h.n.size)
		size = h.n.size;
	if (!user_ok(buf, size))
		return -EFAULT;
	memcpy((void *)buf, t, size);
	return (int64_t)size;
}

/* ---- changing the file system: /tmp only -------------------------------- */

/* What a change to `norm` outside /tmp gets: EROFS where the path (or its
 * directory, for a new name) exists, else its lookup's error. */
static int64_t read_only(const char *norm, int must_exist)
{
	char dir[PATH_MAX_K];
	struct fnode n;
	size_t l = strlen(norm);
	int64_t r = fs_lookup(norm, 0, &n, 0);

	if (r == 0 || must_exist)
		return r ? r : -EROFS;
	while (l && norm[l - 1] != '/')
		l--;
	memcpy(dir, norm, l ? l - 1 : 0);
	dir[l ? l - 1 : 0] = 0;
	r = fs_lookup(dir, 1, &n, 0);
	return r ? r : -EROFS;
}

static int64_t sys_unlinkat(int64_t dirfd, uint64_t up, uint64_t flags)
{
	char norm[PATH_MAX_K];
	int64_t r = user_path_at(dirfd, up, norm);
	if (r)
		return r;
	if (flags & ~(uint64_t)AT_REMOVEDIR)
		return -EINVAL;
	if (tmp_rel(norm))
		return tmpfs_remove(tmp_rel(norm), (flags & AT_REMOVEDIR) != 0);
	return read_only(norm, 1);
}

static int64_t sys_mkdirat(int64_t dirfd, uint64_t up, uint64_t mode)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r = user_path_at(dirfd, up, norm);
	if (r)
		return r;
	if (tmp_rel(norm))
		return *tmp_rel(norm) ? tmpfs_mkdir(tmp_rel(norm), (uint32_t)mode & ~022u) : -EEXIST;
	if (fs_lookup(norm, 0, &n, 0) == 0)
		return -EEXIST;
	return read_only(norm, 0);
}

static int64_t sys_renameat(int64_t olddir, uint64_t oldp, int64_t newdir, uint64_t newp,
			    uint64_t flags)
{
	char from[PATH_MAX_K], to[PATH_MAX_K];
	int64_t r = user_path_at(olddir, oldp, from);
	if (!r)
		r = user_path_at(newdir, newp, to);
	if (r)
		return r;
	if (tmp_rel(from) && tmp_rel(to))
		return tmpfs_rename(tmp_rel(from), tmp_rel(to), (uint32_t)flags);
	if (tmp_rel(from) || tmp_rel(to))
		return -EXDEV;
	return read_only(from, 1);
}

/* ftruncate / truncate */
static int64_t truncate_node(const struct fnode *n, int writable, int64_t len)
{
	if (len < 0)
		return -EINVAL;
	if ((n->mode & S_IFMT) == S_IFDIR)
		return -EISDIR;
	if (!n->tnode)
		return writable ? -EINVAL : -EROFS;
	return tmpfs_truncate(n->tnode, (uint64_t)len);
}

static int64_t sys_ftruncate(uint64_t fd, int64_t len)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	if (f->type != FD_TFILE || (f->flags & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	return truncate_node(&f->node, 1, len);
}

static int64_t sys_truncate(uint64_t up, int64_t len)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user(up, 1, norm, &n, 0);
	return r ? r : truncate_node(&n, 0, len);
}

/*
 * chmod/chown/utimes: a /tmp node takes a new mode or mtime (owners mean
 * nothing: one user); elsewhere EROFS (devices: accepted, nothing changes).
 * fd >= 0: that fd's file; else the path (dirfd-relative).
 */
#define SET_MODE 1
#define SET_TIME 2
#define SET_OWNER 4
static int64_t set_attr(int64_t fd, int64_t dirfd, uint64_t up, int follow, int what,
			uint32_t mode, int settime, int64_t mtime)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r;

	if (fd >= 0) {
		struct ofile *f = get_fd((uint64_t)fd);
		if (!f)
			return -EBADF;
		r = fd_node(f, &n);
	} else {
		r = lookup_user_at(dirfd, up, follow, norm, &n, 0);
	}
	if (r)
		return r;
	if ((n.mode & S_IFMT) == S_IFCHR || n.dev == DEV_DEVICES)
		return 0;
	if (!n.tnode)
		return -EROFS;
	if (!settime && what == SET_TIME)
		return 0;
	return tmpfs_set(n.tnode, what == SET_MODE, mode, settime, mtime);
}

/* utimensat(dirfd, path, times[2], flags): times NULL or UTIME_NOW = now */
static int64_t sys_utimensat(int64_t dirfd, uint64_t up, uint64_t times, uint64_t flags)
{
	int64_t sec, nsec;
	int settime = 1;
	kclock(0, &sec, &nsec);
	if (times) {
		if (!user_ok(times, 32))
			return -EFAULT;
		const int64_t *t = (const int64_t *)times;
		if (t[3] == (1L << 30) - 2) /* UTIME_OMIT */
			settime = 0;
		else if (t[3] != (1L << 30) - 1) /* UTIME_NOW */
			sec = t[2];
	}
	if (!up) /* futimens */
		return set_attr(dirfd, 0, 0, 1, SET_TIME, 0, settime, sec);
	return set_attr(-1, dirfd, up, !(flags & AT_SYMLINK_NOFOLLOW), SET_TIME, 0, settime, sec);
}

/* struct statfs */
struct kstatfs {
	int64_t type, bsize;
	uint64_t blocks, bfree, bavail, files, ffree;
	int32_t fsid[2];
	int64_t namelen, frsize, flags, spare[4];
};
_Static_assert(sizeof(struct kstatfs) == 120, "struct statfs");

static int64_t fill_statfs(const struct fnode *n, uint64_t up)
{
	if (!user_ok(up, sizeof(struct kstatfs)))
		return -EFAULT;
	struct kstatfs *s = (struct kstatfs *)up;
	memset(s, 0, sizeof(*s));
	s->bsize = s->frsize = 4096;
	if (n->tnode) {
		uint64_t files, bytes;
		tmpfs_usage(&files, &bytes);
		s->type = TMPFS_MAGIC;
		s->blocks = K.mem_size / 4096;
		s->bfree = s->bavail = mm_free_bytes() / 4096;
		s->files = TMPFS_NODES;
		s->ffree = TMPFS_NODES - files;
		s->namelen = TMPFS_NAME_MAX - 1;
		s->fsid[0] = TMPFS_DEV;
		return 0;
	}
	s->type = SQUASHFS_MAGIC;
	for (unsigned i = 0; i < n_layers; i++)
		s->blocks += layers[i].size / 4096;
	s->namelen = 255;
	s->flags = ST_RDONLY;
	s->fsid[0] = (int32_t)n->dev;
	return 0;
}

static int64_t sys_statfs(uint64_t up, uint64_t buf)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user(up, 1, norm, &n, 0);
	return r ? r : fill_statfs(&n, buf);
}

static int64_t sys_fstatfs(uint64_t fd, uint64_t buf)
{
	struct ofile *f = get_fd(fd);
	struct fnode n;
	if (!f)
		return -EBADF;
	if (fd_node(f, &n))
		return -EBADF;
	return fill_statfs(&n, buf);
}

int64_t fs_file_data(int fd, int shared_write, const uint8_t **data, uint64_t *size)
{
	struct ofile *f = get_fd((uint64_t)fd);
	struct fnode n;
	if (!f)
		return -EBADF;
	if (f->type == FD_TFILE) {
		if (shared_write)
			return -ENODEV; /* writes would not reach the file */
		if (tmpfs_stat(f->node.tnode, &n))
			return -EBADF;
		*data = n.data;
		*size = n.size;
		return 0;
	}
	if (f->type != FD_FILE)
		return -EACCES;
	*data = f->node.data;
	*size = f->node.size;
	return 0;
}

static int64_t sys_close(uint64_t fd)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	fd_release(f);
	return 0;
}

static int64_t fd_ok(uint64_t fd)
{
	return get_fd(fd) ? 0 : -EBADF;
}

int64_t fs_syscall(uint64_t nr, const uint64_t *a, int *handled)
{
	const int64_t cwdfd = AT_FDCWD;
	switch (nr) {
	case 0: return sys_read(a[0], a[1], a[2], 0, 0);
	case 1: return sys_write(a[0], a[1], a[2], 0, 0);
	case 2: return sys_openat(cwdfd, a[0], a[1], a[2]);
	case 3: return sys_close(a[0]);
	case 4: return sys_fstatat(cwdfd, a[0], a[1], 0);
	case 5: {
		struct ofile *f = get_fd(a[0]);
		struct fnode n;
		if (!f || fd_node(f, &n))
			return -EBADF;
		return fill_stat(&n, a[1]);
	}
	case 6: return sys_fstatat(cwdfd, a[0], a[1], AT_SYMLINK_NOFOLLOW); /* lstat */
	case 8: return sys_lseek(a[0], (int64_t)a[1], a[2]);
	case 16: return sys_ioctl(a[0], a[1]);
	case 17: return sys_read(a[0], a[1], a[2], 1, a[3]);
	case 18: return sys_write(a[0], a[1], a[2], 1, a[3]);
	case 19: return sys_readv(a[0], a[1], a[2], 0, 0);
	case 20: return sys_writev(a[0], a[1], a[2], 0, 0);
	case 21: return sys_access(cwdfd, a[0], a[1]);
	case 32: return sys_dup(a[0], -1, 0, 0);
	case 33: return sys_dup(a[0], (int64_t)a[1], 0, 0);
	case 72: return sys_fcntl(a[0], a[1], a[2]);
	case 73: case 74: case 75: return fd_ok(a[0]); /* flock, fsync, fdatasync */
	case 76: return sys_truncate(a[0], (int64_t)a[1]);
	case 77: return sys_ftruncate(a[0], (int64_t)a[1]);
	case 78: return -ENOSYS; /* getdents: glibc uses getdents64 */
	case 79: return sys_getcwd(a[0], a[1]);
	case 80: return sys_chdir(a[0]);
	case 81: return sys_fchdir(a[0]);
	case 82: return sys_renameat(cwdfd, a[0], cwdfd, a[1], 0);
	case 83: return sys_mkdirat(cwdfd, a[0], a[1]);
	case 84: return sys_unlinkat(cwdfd, a[0], AT_REMOVEDIR);
	case 86: case 88: case 265: case 266: return -EPERM; /* (sym)link(at): none */
	case 87: return sys_unlinkat(cwdfd, a[0], 0);
	case 89: return sys_readlink(cwdfd, a[0], a[1], a[2]);
	case 90: return set_attr(-1, cwdfd, a[0], 1, SET_MODE, (uint32_t)a[1], 0, 0);
	case 91: return set_attr((int64_t)a[0], 0, 0, 1, SET_MODE, (uint32_t)a[1], 0, 0);
	case 92: return set_attr(-1, cwdfd, a[0], 1, SET_OWNER, 0, 0, 0);
	case 93: return set_attr((int64_t)a[0], 0, 0, 1, SET_OWNER, 0, 0, 0);
	case 94: return set_attr(-1, cwdfd, a[0], 0, SET_OWNER, 0, 0, 0);
	case 137: return sys_statfs(a[0], a[1]);
	case 138: return sys_fstatfs(a[0], a[1]);
	case 162: return 0; /* sync */
	case 217: return sys_getdents64(a[0], a[1], a[2]);
	case 257: return sys_openat((int64_t)a[0], a[1], a[2], a[3]);
	case 258: return sys_mkdirat((int64_t)a[0], a[1], a[2]);
	case 260: /* fchownat */
		return set_attr(-1, (int64_t)a[0], a[1], !(a[4] & AT_SYMLINK_NOFOLLOW), SET_OWNER, 0, 0, 0);
	case 262: return sys_fstatat((int64_t)a[0], a[1], a[2], a[3]);
	case 263: return sys_unlinkat((int64_t)a[0], a[1], a[2]);
	case 264: return sys_renameat((int64_t)a[0], a[1], (int64_t)a[2], a[3], 0);
	case 267: return sys_readlink((int64_t)a[0], a[1], a[2], a[3]);
	case 268: return set_attr(-1, (int64_t)a[0], a[1], 1, SET_MODE, (uint32_t)a[2], 0, 0);
	case 269: case 439: return sys_access((int64_t)a[0], a[1], a[2]);
	case 277: return fd_ok(a[0]); /* sync_file_range */
	case 280: return sys_utimensat((int64_t)a[0], a[1], a[2], a[3]);
	case 285: return fd_ok(a[0]); /* fallocate: not worth it */
	case 292:
		if (a[0] == a[1] || (a[2] & ~(uint64_t)O_CLOEXEC))
			return -EINVAL;
		return sys_dup(a[0], (int64_t)a[1], 0, (a[2] & O_CLOEXEC) != 0);
	case 295: return sys_readv(a[0], a[1], a[2], 1, a[3]); /* preadv */
	case 296: return sys_writev(a[0], a[1], a[2], 1, a[3]); /* pwritev */
	case 306: return 0; /* syncfs */
	case 316: return sys_renameat((int64_t)a[0], a[1], (int64_t)a[2], a[3], a[4]);
	case 332: return -ENOSYS; /* statx: glibc 2.36 uses newfstatat */
	}
	*handled = 0;
	return 0;
}
