/* SPDX-License-Identifier: MIT */
/*
 * A read-only file system over the newc cpio in guest RAM, plus the console
 * (fds 0-2) and /dev/{null,zero,urandom,random}.  The archive is indexed
 * once at boot; a later entry with the same name wins (--rootfs overlays
 * are appended by the host).
 */
#include "kernel.h"
#include "cpio.h"

#define MAX_NODES 4096
#define MAX_FDS 64
#define PATH_MAX_K 256
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFLNK 0120000
#define AT_FDCWD (-100)
#define AT_EMPTY_PATH 0x1000

enum fd_type { FD_FREE, FD_STDIN, FD_OUT, FD_FILE, FD_DIR, FD_NULL, FD_ZERO, FD_RANDOM };

struct ofile {
	uint8_t type;
	uint8_t console;       /* FD_OUT: the host's fd it writes to (1 or 2),
				  whatever number a dup gave it */
	uint32_t ino;
	struct fnode node;
	uint64_t off;
	char path[PATH_MAX_K]; /* directories: for getdents64 */
};

static struct fnode node_buf[MAX_NODES]; /* QEMU path: parsed here */
static const struct fnode *nodes = node_buf;
static uint32_t n_nodes;
static struct ofile fds[MAX_FDS];
static char cwd[PATH_MAX_K]; /* normalised, no leading '/', "" = root */

static void fs_parse_cpio(void)
{
	uint64_t off = 0;
	struct sb_cpio_entry e;
	int r = 0;

	while (K.initrd_size && (r = sb_cpio_next(K.initrd, K.initrd_size, &off, &e)) == 1) {
		const char *n = e.name;
		uint32_t len = e.namelen;
		while (len && (*n == '/' || (*n == '.' && len > 1 && n[1] == '/'))) {
			n++;
			len--;
		}
		if (!len || (len == 1 && *n == '.'))
			continue;
		if (n_nodes == MAX_NODES)
			kpanic(SB_PANIC_KERNEL, "root file system has too many files", 0);
		node_buf[n_nodes++] = (struct fnode){ n, len, e.mode, e.data, e.size };
	}
	if (K.initrd_size && r < 0)
		kpanic(SB_PANIC_KERNEL, "root file system archive is malformed", 0);
}

void fs_init(void)
{
	if (K.files_count) {
		nodes = (const struct fnode *)K.files;
		n_nodes = K.files_count;
	} else {
		fs_parse_cpio();
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
	size_t o = 0;
	const char *p = path;

	if (!*p)
		return -ENOENT;
	if (*p != '/') {
		for (size_t i = 0; cwd[i]; i++)
			out[o++] = cwd[i];
	}
	while (*p) {
		const char *c;
		size_t len;
		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		len = p - c;
		if (len == 0 || (len == 1 && c[0] == '.'))
			continue;
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			while (o && out[o - 1] != '/')
				o--;
			if (o)
				o--;
			continue;
		}
		if (o + len + 2 >= PATH_MAX_K)
			return -ENAMETOOLONG;
		if (o)
			out[o++] = '/';
		for (size_t i = 0; i < len; i++)
			out[o++] = c[i];
	}
	out[o] = 0;
	return 0;
}

static int name_eq(const struct fnode *n, const char *s, size_t len)
{
	return n->namelen == len && !memcmp(n->name, s, len);
}

/* Is some node below directory `d` (len bytes)? */
static int has_children(const char *d, size_t len)
{
	for (uint32_t i = 0; i < n_nodes; i++)
		if (nodes[i].namelen > len && nodes[i].name[len] == '/' &&
		    !memcmp(nodes[i].name, d, len))
			return 1;
	return 0;
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

int fs_lookup(const char *norm, struct fnode *out, uint32_t *ino)
{
	size_t len = strlen(norm);
	if (len == 0) {
		*out = (struct fnode){ "", 0, S_IFDIR | 0755, 0, 0 };
		*ino = 1;
		return 0;
	}
	for (uint32_t i = n_nodes; i-- > 0;) {
		if (name_eq(&nodes[i], norm, len)) {
			*out = nodes[i];
			*ino = i + 2;
			return 0;
		}
	}
	if (dev_type(norm) != FD_FREE) {
		*out = (struct fnode){ norm, (uint32_t)len, S_IFCHR | 0666, 0, 0 };
		*ino = 0x10000 + dev_type(norm);
		return 0;
	}
	if (has_children(norm, len)) {
		*out = (struct fnode){ norm, (uint32_t)len, S_IFDIR | 0755, 0, 0 };
		*ino = 0x20000 + (uint32_t)len;
		return 0;
	}
	return -ENOENT;
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

/* A user path: copied in, normalised into norm[PATH_MAX_K], looked up. */
static int64_t lookup_user(uint64_t up, char *norm, struct fnode *n, uint32_t *ino)
{
	int64_t r = user_path(up, norm);
	return r ? r : fs_lookup(norm, n, ino);
}

static int64_t sys_open(uint64_t up, uint64_t flags)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	uint32_t ino;
	int64_t r = lookup_user(up, norm, &n, &ino);
	int fd;
	if (r == -ENOENT && (flags & 0100)) /* O_CREAT */
		return -EROFS;
	if (r)
		return r;
	if ((flags & 3) != 0 || (flags & 01000)) { /* write access or O_TRUNC */
		enum fd_type t = dev_type(norm);
		if (t != FD_NULL && t != FD_ZERO && t != FD_RANDOM)
			return (n.mode & S_IFMT) == S_IFDIR ? -EISDIR : -EROFS;
	}
	if ((flags & 0200000) && (n.mode & S_IFMT) != S_IFDIR) /* O_DIRECTORY */
		return -ENOTDIR;
	fd = alloc_fd(0);
	if (fd < 0)
		return fd;
	struct ofile *f = &fds[fd];
	f->ino = ino;
	f->node = n;
	f->off = 0;
	f->type = dev_type(norm);
	if (f->type == FD_FREE)
		f->type = (n.mode & S_IFMT) == S_IFDIR ? FD_DIR : FD_FILE;
	if (f->type == FD_DIR) {
		memcpy(f->path, norm, strlen(norm) + 1);
		f->node.name = f->path;
	}
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

static int64_t fill_stat(const struct fnode *n, uint32_t ino, uint64_t up)
{
	if (!user_ok(up, sizeof(struct kstat)))
		return -EFAULT;
	struct kstat *st = (struct kstat *)up;
	memset(st, 0, sizeof(*st));
	st->dev = 1;
	st->ino = ino;
	st->nlink = (n->mode & S_IFMT) == S_IFDIR ? 2 : 1;
	st->mode = n->mode;
	st->size = (int64_t)n->size;
	st->blksize = 4096;
	st->blocks = (int64_t)((n->size + 511) / 512);
	if ((n->mode & S_IFMT) == S_IFCHR)
		st->rdev = 0x0501; /* looks like a tty-ish char device */
	return 0;
}

static int64_t sys_fstatat(int64_t dirfd, uint64_t up, uint64_t stp, uint64_t flags)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	uint32_t ino;
	int64_t r;
	if ((flags & AT_EMPTY_PATH) && up && user_ok(up, 1) && *(const char *)up == 0) {
		struct ofile *f = get_fd((uint64_t)dirfd);
		if (!f)
			return -EBADF;
		return fill_stat(&f->node, f->ino, stp);
	}
	if (dirfd != AT_FDCWD && up && user_ok(up, 1) && *(const char *)up != '/')
		return -ENOSYS; /* relative to a directory fd: not needed so far */
	r = lookup_user(up, norm, &n, &ino);
	return r ? r : fill_stat(&n, ino, stp);
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

/* linux_dirent64 */
static int64_t sys_getdents64(uint64_t fd, uint64_t buf, uint64_t count)
{
	struct ofile *f = get_fd(fd);
	uint64_t used = 0;
	if (!f)
		return -EBADF;
	if (f->type != FD_DIR)
		return -ENOTDIR;
	if (!user_ok(buf, count))
		return -EFAULT;
	size_t dl = strlen(f->path);
	for (;;) {
		const char *name;
		size_t nl;
		uint8_t dtype;
		uint64_t cur = f->off;
		if (cur == 0 || cur == 1) {
			name = cur ? ".." : ".";
			nl = cur + 1;
			dtype = 4;
		} else {
			uint64_t i = cur - 2;
			if (i >= n_nodes)
				break;
			const struct fnode *n = &nodes[i];
			size_t skip = dl ? dl + 1 : 0;
			f->off = cur + 1;
			if (n->namelen <= skip || (dl && (n->name[dl] != '/' || memcmp(n->name, f->path, dl))))
				continue;
			name = n->name + skip;
			nl = 0;
			while (skip + nl < n->namelen && name[nl] != '/')
				nl++;
			int implied = skip + nl < n->namelen;
			dtype = implied || (n->mode & S_IFMT) == S_IFDIR ? 4 :
				(n->mode & S_IFMT) == S_IFLNK ? 10 : 8;
			/* report each child once: skip if a later node has the same
			 * direct name (overlays and implied directories) */
			int dup = 0;
			for (uint64_t j = i + 1; j < n_nodes && !dup; j++) {
				const struct fnode *m = &nodes[j];
				if (m->namelen >= skip + nl && !memcmp(m->name, n->name, skip + nl) &&
				    (m->namelen == skip + nl || m->name[skip + nl] == '/'))
					dup = 1;
			}
			if (dup)
				continue;
			f->off = cur; /* emit below, then advance */
		}
		uint64_t reclen = (19 + nl + 1 + 7) & ~7ULL;
		if (used + reclen > count)
			break;
		uint8_t *d = (uint8_t *)(buf + used);
		*(uint64_t *)d = cur + 1;            /* d_ino */
		*(int64_t *)(d + 8) = (int64_t)cur + 1; /* d_off */
		*(uint16_t *)(d + 16) = (uint16_t)reclen;
		d[18] = dtype;
		memcpy(d + 19, name, nl);
		memset(d + 19 + nl, 0, reclen - 19 - nl);
		used += reclen;
		f->off = cur + 1;
	}
	if (!used && f->off < n_nodes + 2)
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
	if (fds[newfd].type == FD_DIR)
		fds[newfd].node.name = fds[newfd].path;
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
	char norm[PATH_MAX_K];
	struct fnode n;
	uint32_t ino;
	int64_t r = lookup_user(up, norm, &n, &ino);
	if (r)
		return r;
	if (mode & 2) /* W_OK */
		return dev_type(norm) != FD_FREE ? 0 : -EROFS;
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
	char norm[PATH_MAX_K];
	struct fnode n;
	uint32_t ino;
	int64_t r = lookup_user(up, norm, &n, &ino);
	if (r)
		return r;
	if ((n.mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	memcpy(cwd, norm, strlen(norm) + 1);
	return 0;
}

static int64_t sys_readlink(uint64_t up, uint64_t buf, uint64_t size)
{
	char norm[PATH_MAX_K];
	struct fnode n;
	uint32_t ino;
	int64_t r = lookup_user(up, norm, &n, &ino);
	if (r)
		return r;
	if ((n.mode & S_IFMT) != S_IFLNK)
		return -EINVAL;
	if (size > n.size)
		size = n.size;
	if (!user_ok(buf, size))
		return -EFAULT;
	memcpy((void *)buf, n.data, size);
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
	case 4: case 6: return sys_fstatat(AT_FDCWD, a[0], a[1], 0);
	case 5: {
		struct ofile *f = get_fd(a[0]);
		return f ? fill_stat(&f->node, f->ino, a[1]) : -EBADF;
	}
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
