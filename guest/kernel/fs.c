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
#define O_NOFOLLOW 0400000
#define ELOOP 40
#define INO_DEV 0x10000 /* + enum fd_type: the devices' inode numbers */

enum fd_type { FD_FREE, FD_STDIN, FD_OUT, FD_FILE, FD_DIR, FD_NULL, FD_ZERO, FD_RANDOM };

struct ofile {
	uint8_t type;
	uint8_t console;       /* FD_OUT: the host's fd it writes to (1 or 2),
				  whatever number a dup gave it */
	struct fnode node;
	uint64_t off;          /* files: bytes; directories: a getdents cursor */
	char path[PATH_MAX_K]; /* directories: the path, links followed */
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
	for (int i = 0; i < 3; i++)
		fds[i].node.mode = S_IFCHR | 0620;
}

/* Normalise `path` (relative to cwd unless absolute) into out[PATH_MAX_K]. */
static int normalize(const char *path, char *out)
{
	char tmp[PATH_MAX_K * 2];
	size_t c = strlen(cwd), p = strlen(path);

	if (!*path)
		return -ENOENT;
	if (*path == '/')
		return sbfs_normalize(path, p, out, PATH_MAX_K);
	if (c + 1 + p >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, cwd, c);
	tmp[c] = '/';
	memcpy(tmp + c + 1, path, p);
	return sbfs_normalize(tmp, c + 1 + p, out, PATH_MAX_K);
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
			       .ino = layer_ino(h->layer, h->ino), .mtime = h->n.mtime };
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
		*out = (struct fnode){ .mode = S_IFCHR | 0666, .nlink = 1, .ino = INO_DEV + dev_type(norm) };
		if (resolved)
			memcpy(resolved, norm, len + 1);
		return 0;
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

static int64_t user_path(uint64_t up, char *norm)
{
	char raw[PATH_MAX_K];
	int r = user_string(up, raw, sizeof(raw));
	if (r)
		return r;
	return normalize(raw, norm);
}

/* A user path: copied in, normalised into norm[PATH_MAX_K], looked up;
 * resolved (may be NULL) gets it with links followed. */
static int64_t lookup_user(uint64_t up, int follow, char *norm, struct fnode *n, char *resolved)
{
	int64_t r = user_path(up, norm);
	return r ? r : fs_lookup(norm, follow, n, resolved);
}

static int64_t sys_open(uint64_t up, uint64_t flags)
{
	char norm[PATH_MAX_K], real[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user(up, !(flags & O_NOFOLLOW), norm, &n, real);
	int fd;
	if (r == -ENOENT && (flags & 0100)) /* O_CREAT */
		return -EROFS;
	if (r)
		return r;
	if ((n.mode & S_IFMT) == S_IFLNK) /* O_NOFOLLOW on a link */
		return -ELOOP;
	if ((flags & 3) != 0 || (flags & 01000)) { /* write access or O_TRUNC */
		enum fd_type t = dev_type(real);
		if (t != FD_NULL && t != FD_ZERO && t != FD_RANDOM)
			return (n.mode & S_IFMT) == S_IFDIR ? -EISDIR : -EROFS;
	}
	if ((flags & 0200000) && (n.mode & S_IFMT) != S_IFDIR) /* O_DIRECTORY */
		return -ENOTDIR;
	fd = alloc_fd(0);
	if (fd < 0)
		return fd;
	struct ofile *f = &fds[fd];
	f->node = n;
	f->off = 0;
	f->type = n.ino >= INO_DEV && n.ino < INO_DEV + 16 ? dev_type(real) : FD_FREE;
	if (f->type == FD_FREE)
		f->type = (n.mode & S_IFMT) == S_IFDIR ? FD_DIR : FD_FILE;
	if (f->type == FD_DIR)
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
	struct sb_hc_stdin s = { .iovcnt = (uint32_t)cnt, .iov_gpa = (uint64_t)iov };
	krandom_pool_give(&s); /* emptied now, refilled by this call */
	hypercall(SB_HC_STDIN, &s);
	krandom_pool_filled(&s);
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
	switch (f->type) {
	case FD_FILE:
		r = file_read(f, buf, n, *pos);
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
		return -EISDIR;
	default:
		return -EBADF;
	}
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

static int64_t sys_writev(uint64_t fd, uint64_t iov, uint64_t cnt)
{
	struct ofile *f = get_fd(fd);
	int64_t r;
	if (!f)
		return -EBADF;
	if ((r = check_iov(iov, cnt)))
		return r;
	const struct sb_iovec *v = (const struct sb_iovec *)iov;
	if (f->type == FD_OUT)
		return console_writev(f->console, v, cnt);
	if (f->type == FD_NULL || f->type == FD_ZERO || f->type == FD_RANDOM) {
		uint64_t total = 0;
		for (uint64_t i = 0; i < cnt; i++)
			total += v[i].len;
		return (int64_t)total;
	}
	return -EBADF;
}

static int64_t sys_write(uint64_t fd, uint64_t buf, uint64_t n)
{
	struct sb_iovec one = { buf, n };
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	if (n && !user_ok(buf, n))
		return -EFAULT;
	if (f->type == FD_OUT)
		return console_writev(f->console, &one, 1);
	if (f->type == FD_NULL || f->type == FD_ZERO || f->type == FD_RANDOM)
		return (int64_t)n;
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
	st->dev = 1;
	st->ino = n->ino;
	st->nlink = n->nlink ? n->nlink : 1;
	st->mode = n->mode;
	st->size = (int64_t)n->size;
	st->blksize = 4096;
	st->blocks = (int64_t)((n->size + 511) / 512);
	st->atime = st->mtime = st->ctime = n->mtime;
	if ((n->mode & S_IFMT) == S_IFCHR)
		st->rdev = 0x0501; /* looks like a tty-ish char device */
	return 0;
}

static int64_t sys_fstatat(int64_t dirfd, uint64_t up, uint64_t stp, uint64_t flags)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	int64_t r;
	if ((flags & AT_EMPTY_PATH) && up && user_ok(up, 1) && *(const char *)up == 0) {
		struct ofile *f = get_fd((uint64_t)dirfd);
		if (!f)
			return -EBADF;
		return fill_stat(&f->node, stp);
	}
	if (dirfd != AT_FDCWD && up && user_ok(up, 1) && *(const char *)up != '/')
		return -ENOSYS; /* relative to a directory fd: not needed so far */
	r = lookup_user(up, !(flags & AT_SYMLINK_NOFOLLOW), norm, &n, 0);
	return r ? r : fill_stat(&n, stp);
}

static int64_t sys_lseek(uint64_t fd, int64_t off, uint64_t whence)
{
	struct ofile *f = get_fd(fd);
	int64_t base;
	if (!f)
		return -EBADF;
	if (f->type == FD_STDIN || f->type == FD_OUT)
		return -ESPIPE;
	if (f->type == FD_DIR) {
		if (whence != 0 || off != 0)
			return -EINVAL;
		f->off = 0;
		return 0;
	}
	switch (whence) {
	case 0: base = 0; break;
	case 1: base = (int64_t)f->off; break;
	case 2: base = (int64_t)f->node.size; break;
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
static int64_t sys_getdents64(uint64_t fd, uint64_t buf, uint64_t count)
{
	struct ofile *f = get_fd(fd);
	uint64_t used = 0;
	char scratch[PATH_MAX_K];
	int more = 1;
	if (!f)
		return -EBADF;
	if (f->type != FD_DIR)
		return -ENOTDIR;
	if (!user_ok(buf, count))
		return -EFAULT;
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
		uint64_t reclen = (19 + nl + 1 + 7) & ~7ULL;
		if (used + reclen > count)
			break;
		uint8_t *p = (uint8_t *)(buf + used);
		*(uint64_t *)p = d_ino;
		*(int64_t *)(p + 8) = (int64_t)next; /* d_off */
		*(uint16_t *)(p + 16) = (uint16_t)reclen;
		p[18] = dtype;
		memcpy(p + 19, name, nl);
		memset(p + 19 + nl, 0, reclen - 19 - nl);
		used += reclen;
		f->off = next;
	}
	if (!used && more)
		return -EINVAL; /* buffer too small for one entry */
	return (int64_t)used;
}

static int64_t sys_dup(uint64_t old, int64_t newfd, int from)
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
	if ((uint64_t)newfd != old)
		fds[newfd] = *f;
	return newfd;
}

static int64_t sys_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
	struct ofile *f = get_fd(fd);
	if (!f)
		return -EBADF;
	switch (cmd) {
	case 0: case 1030: /* F_DUPFD, F_DUPFD_CLOEXEC */
		return arg >= MAX_FDS ? -EINVAL : sys_dup(fd, -1, (int)arg);
	case 1: case 2: case 4: /* F_GETFD, F_SETFD, F_SETFL */
		return 0;
	case 3: /* F_GETFL */
		return f->type == FD_OUT ? 1 : 0;
	}
	return -EINVAL;
}

static int64_t sys_access(uint64_t up, uint64_t mode)
{
	char norm[PATH_MAX_K], real[PATH_MAX_K];
	struct fnode n;
	int64_t r = lookup_user(up, 1, norm, &n, real);
	if (r)
		return r;
	if (mode & 2) /* W_OK */
		return dev_type(real) != FD_FREE ? 0 : -EROFS;
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

static int64_t sys_readlink(uint64_t up, uint64_t buf, uint64_t size)
{
	char norm[PATH_MAX_K], path[PATH_MAX_K], tmp[PATH_MAX_K];
	struct sbfs_hit h;
	const char *t;
	int64_t r = user_path(up, norm);
	if (r)
		return r;
	if (!memcmp(norm, "proc/self/exe", 14) && exe[0]) {
		size_t l = strlen(exe);
		if (size > l)
			size = l;
		if (!user_ok(buf, size))
			return -EFAULT;
		memcpy((void *)buf, exe, size);
		return (int64_t)size;
	}
	memcpy(path, norm, strlen(norm) + 1);
	if (dev_type(norm) != FD_FREE)
		return -EINVAL;
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

int64_t fs_file_data(int fd, const uint8_t **data, uint64_t *size)
{
	struct ofile *f = get_fd((uint64_t)fd);
	if (!f)
		return -EBADF;
	if (f->type != FD_FILE)
		return -EACCES;
	*data = f->node.data;
	*size = f->node.size;
	return 0;
}

static int at_cwd_ok(int64_t dirfd, uint64_t up)
{
	return dirfd == AT_FDCWD || (user_ok(up, 1) && *(const char *)up == '/');
}

int64_t fs_syscall(uint64_t nr, const uint64_t *a, int *handled)
{
	switch (nr) {
	case 0: return sys_read(a[0], a[1], a[2], 0, 0);
	case 1: return sys_write(a[0], a[1], a[2]);
	case 2: return sys_open(a[0], a[1]);
	case 3:
		if (!get_fd(a[0]))
			return -EBADF;
		fds[a[0]].type = FD_FREE;
		return 0;
	case 4: return sys_fstatat(AT_FDCWD, a[0], a[1], 0);
	case 5: {
		struct ofile *f = get_fd(a[0]);
		return f ? fill_stat(&f->node, a[1]) : -EBADF;
	}
	case 6: return sys_fstatat(AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW); /* lstat */
	case 8: return sys_lseek(a[0], (int64_t)a[1], a[2]);
	case 16: return get_fd(a[0]) ? -ENOTTY : -EBADF; /* ioctl */
	case 17: return sys_read(a[0], a[1], a[2], 1, a[3]);
	case 19: return sys_readv(a[0], a[1], a[2], 0, 0);
	case 20: return sys_writev(a[0], a[1], a[2]);
	case 21: return sys_access(a[0], a[1]);
	case 32: return sys_dup(a[0], -1, 0);
	case 33: return sys_dup(a[0], (int64_t)a[1], 0);
	case 72: return sys_fcntl(a[0], a[1], a[2]);
	case 79: return sys_getcwd(a[0], a[1]);
	case 80: return sys_chdir(a[0]);
	case 89: return sys_readlink(a[0], a[1], a[2]);
	case 217: return sys_getdents64(a[0], a[1], a[2]);
	case 257:
		return at_cwd_ok((int64_t)a[0], a[1]) ? sys_open(a[1], a[2]) : -ENOSYS;
	case 262: return sys_fstatat((int64_t)a[0], a[1], a[2], a[3]);
	case 267:
		return at_cwd_ok((int64_t)a[0], a[1]) ? sys_readlink(a[1], a[2], a[3]) : -ENOSYS;
	case 269: case 439:
		return at_cwd_ok((int64_t)a[0], a[1]) ? sys_access(a[1], a[2]) : -ENOSYS;
	case 292:
		if (a[0] == a[1])
			return -EINVAL;
		return sys_dup(a[0], (int64_t)a[1], 0);
	case 295: return sys_readv(a[0], a[1], a[2], 1, a[3]); /* preadv */
	}
	*handled = 0;
	return 0;
}
