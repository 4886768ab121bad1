/* SPDX-License-Identifier: MIT */
/*
 * A dynamically linked glibc program for the guest (tests/tests.mk builds
 * it with the host's gcc into $(BUILD)/tests/dynroot with the host's ld.so
 * and libraries).  Each mode checks one group of the guest kernel's Linux
 * emulation and prints what it found, one "name value" line each, so the
 * test can compare with what it computes itself; a check that fails prints
 * "FAIL name: detail" and the program exits 1.
 *
 *   dyncheck basic        auxv, dlopen(libm) + cos, /proc/self/exe
 *   dyncheck fs           dirfd calls, lstat vs stat, FD_CLOEXEC, ioctls,
 *                         sigaction queries, statfs, getdents64, mmap
 *   dyncheck tmp          /tmp: create, write, read back, rename, unlink,
 *                         mkdir/rmdir, EROFS/EXDEV, running out of room
 *   dyncheck futex MS     futex waits with a timeout of MS ms: their times
 *   dyncheck clock MS     read both clocks for MS ms: never back, close to
 *                         the host's, a sleep measured right
 *   dyncheck clone        /tmp/boot.txt at start; after stdin (the ready
 *                         point) /tmp/<stdin>, then lists /tmp
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int failed;

#define CHECK(cond, name, ...)                                                   \
	do {                                                                     \
		if (!(cond)) {                                                   \
			printf("FAIL %s: ", name);                               \
			printf(__VA_ARGS__);                                     \
			printf(" (errno %d %s)\n", errno, strerror(errno));     \
			failed = 1;                                              \
		}                                                                \
	} while (0)

/* expect a -1 with this errno */
#define FAILS(expr, err, name)                                                   \
	do {                                                                     \
		errno = 0;                                                       \
		long r_ = (long)(expr);                                          \
		CHECK(r_ == -1 && errno == (err), name, "%s returned %ld, want errno %d", #expr, r_, err); \
	} while (0)

extern void _start(void);

static int mode_basic(int argc, char **argv)
{
	char exe[256];
	ssize_t n;
	void *m;
	double (*cosp)(double);

	printf("argc %d\n", argc);
	printf("base_nonzero %d\n", getauxval(AT_BASE) != 0);
	printf("entry_is_start %d\n", getauxval(AT_ENTRY) == (unsigned long)&_start);
	printf("pagesz %lu\n", getauxval(AT_PAGESZ));
	printf("secure %lu\n", getauxval(AT_SECURE));
	printf("random_nonzero %d\n", getauxval(AT_RANDOM) != 0);
	printf("execfn %s\n", (const char *)getauxval(AT_EXECFN));
	printf("platform %s\n", (const char *)getauxval(AT_PLATFORM));
	printf("vdso %lu\n", getauxval(AT_SYSINFO_EHDR));
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0, "exe", "readlink /proc/self/exe");
	exe[n > 0 ? n : 0] = 0;
	printf("exe %s\n", exe);
	m = dlopen("libm.so.6", RTLD_NOW);
	CHECK(m, "dlopen", "%s", dlerror());
	if (m) {
		cosp = (double (*)(double))dlsym(m, "cos");
		CHECK(cosp, "dlsym", "cos");
		if (cosp)
			printf("cos %.17g\n", cosp(argc > 2 ? atof(argv[2]) : 0.5));
	}
	return 0;
}

static int cloexec(int fd)
{
	return fcntl(fd, F_GETFD);
}

static void list_dir(const char *what, DIR *d)
{
	struct dirent *e;
	char names[64][64];
	int n = 0;

	while ((e = readdir(d)) && n < 64)
		snprintf(names[n++], sizeof(names[0]), "%.60s%s", e->d_name,
			 e->d_type == DT_DIR ? "/" : e->d_type == DT_LNK ? "@" : "");
	qsort(names, n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
	printf("%s", what);
	for (int i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

static int mode_fs(void)
{
	struct stat st, lst;
	char buf[256];
	int dfd, fd, sub;
	ssize_t n;

	dfd = open("/data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, "open_dir", "/data");
	fd = openat(dfd, "file.txt", O_RDONLY);
	CHECK(fd >= 0, "openat", "file.txt");
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("openat_read %s", buf);
	CHECK(fstatat(dfd, "link", &lst, AT_SYMLINK_NOFOLLOW) == 0, "fstatat_nofollow", "link");
	CHECK(fstatat(dfd, "link", &st, 0) == 0, "fstatat", "link");
	printf("link_lstat %s %lld\n", S_ISLNK(lst.st_mode) ? "lnk" : "other", (long long)lst.st_size);
	printf("link_stat %s %lld\n", S_ISREG(st.st_mode) ? "reg" : "other", (long long)st.st_size);
	CHECK(lstat("/data/link", &lst) == 0 && S_ISLNK(lst.st_mode), "lstat", "/data/link");
	CHECK(stat("/data/link", &st) == 0 && S_ISREG(st.st_mode), "stat", "/data/link");
	printf("mtime %lld\n", (long long)st.st_mtime);
	printf("blocks %lld nlink %lu\n", (long long)st.st_blocks, (unsigned long)st.st_nlink);
	CHECK(stat("/data", &st) == 0 && st.st_nlink >= 3, "dir_nlink", "/data nlink %lu",
	      (unsigned long)st.st_nlink);
	n = readlinkat(dfd, "link", buf, sizeof(buf));
	printf("readlinkat %.*s\n", (int)(n > 0 ? n : 0), buf);
	CHECK(faccessat(dfd, "file.txt", R_OK, 0) == 0, "faccessat", "file.txt");
	FAILS(faccessat(dfd, "nope", R_OK, 0), ENOENT, "faccessat_enoent");
	FAILS(openat(fd, "x", O_RDONLY), ENOTDIR, "openat_notdir");
	FAILS(open("/data/link", O_RDONLY | O_NOFOLLOW), ELOOP, "o_nofollow");
	sub = openat(dfd, "sub", O_RDONLY | O_DIRECTORY);
	CHECK(sub >= 0, "openat_sub", "sub");
	CHECK(fstatat(sub, "../file.txt", &st, 0) == 0 && S_ISREG(st.st_mode), "fstatat_dotdot", "-");
	CHECK(fstatat(sub, "", &st, AT_EMPTY_PATH) == 0 && S_ISDIR(st.st_mode), "empty_path", "-");
	DIR *d = fdopendir(dup(dfd));
	CHECK(d, "fdopendir", "/data");
	if (d) {
		list_dir("readdir", d);
		closedir(d);
	}
	/* relative to the cwd */
	CHECK(chdir("/data/sub") == 0, "chdir", "-");
	CHECK(stat("../file.txt", &st) == 0, "stat_relative", "-");
	CHECK(getcwd(buf, sizeof(buf)) && !strcmp(buf, "/data/sub"), "getcwd", "%s", buf);

	/* FD_CLOEXEC */
	printf("cloexec_dir %d\n", cloexec(dfd));
	printf("cloexec_plain %d\n", cloexec(fd));
	CHECK(fcntl(dfd, F_SETFD, 0) == 0, "setfd", "-");
	printf("cloexec_cleared %d\n", cloexec(dfd));
	CHECK(ioctl(fd, FIOCLEX) == 0, "fioclex", "-");
	printf("cloexec_fioclex %d\n", cloexec(fd));
	int d1 = dup(fd), d2 = fcntl(fd, F_DUPFD_CLOEXEC, 10), d3 = dup3(fd, 20, O_CLOEXEC);
	printf("cloexec_dup %d %d %d %d\n", cloexec(d1), cloexec(d2), d2 >= 10, cloexec(d3));
	CHECK(ioctl(fd, FIONCLEX) == 0, "fionclex", "-");
	printf("cloexec_fionclex %d\n", cloexec(fd));
	struct termios t;
	struct winsize ws;
	FAILS(ioctl(fd, TCGETS, &t), ENOTTY, "tcgets");
	FAILS(ioctl(1, TIOCGWINSZ, &ws), ENOTTY, "tiocgwinsz");
	printf("isatty %d %d\n", isatty(0), isatty(1));
	FAILS(fcntl(99, F_GETFD), EBADF, "getfd_ebadf");

	/* signal dispositions: queries of every signal work */
	struct sigaction sa, old;
	int queried = 0;
	for (int s = 1; s < 65; s++)
		queried += sigaction(s, NULL, &old) == 0;
	printf("sigaction_queries %d\n", queried);
	CHECK(sigaction(SIGKILL, NULL, &old) == 0 && old.sa_handler == SIG_DFL, "sigkill_query", "-");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	FAILS(sigaction(SIGKILL, &sa, NULL), EINVAL, "sigkill_set");
	FAILS(sigaction(SIGSTOP, &sa, NULL), EINVAL, "sigstop_set");

	/* file systems */
	struct statfs sf;
	CHECK(statfs("/tmp", &sf) == 0, "statfs_tmp", "-");
	printf("statfs_tmp %#lx\n", (unsigned long)sf.f_type);
	CHECK(fstatfs(fd, &sf) == 0, "fstatfs", "-");
	printf("fstatfs_ro %d\n", (sf.f_flags & ST_RDONLY) != 0);
	struct sysinfo si;
	CHECK(sysinfo(&si) == 0, "sysinfo", "-");
	printf("sysinfo_free_sane %d\n", si.freeram > 0 && si.freeram < si.totalram);
	FAILS(syscall(SYS_getdents, dfd, buf, sizeof(buf)), ENOSYS, "getdents");
	FAILS(syscall(SYS_statx, AT_FDCWD, "/data", 0, 0x7ff, buf), ENOSYS, "statx");

	/* a shared map of a read-only file is a private copy */
	char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap_shared", "-");
	if (p != MAP_FAILED)
		printf("mmap_shared %.5s\n", p);
	close(fd);
	FAILS(close(fd), EBADF, "close_twice");
	return 0;
}

static int write_file(const char *path, const char *s, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static const char *read_file(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n < 0 ? "(error)" : buf;
}

static int mode_tmp(void)
{
	struct stat st;
	char buf[64];
	int fd;

	fd = open("/tmp/a", O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "create", "/tmp/a");
	CHECK(write(fd, "hello ", 6) == 6 && write(fd, "world", 5) == 5, "write", "-");
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek", "-");
	ssize_t n = read(fd, buf, sizeof(buf));
	printf("read_back %.*s\n", (int)(n > 0 ? n : 0), buf);
	CHECK(pwrite(fd, "W", 1, 6) == 1, "pwrite", "-");
	CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "fstat", "-");
	printf("size %lld mode %o\n", (long long)st.st_size, st.st_mode & 0777);
	CHECK(fsync(fd) == 0 && fdatasync(fd) == 0 && flock(fd, LOCK_EX) == 0, "fsync", "-");
	CHECK(ftruncate(fd, 5) == 0, "ftruncate", "-");
	close(fd);
	printf("after_pwrite_truncate %s\n", read_file("/tmp/a"));
	FAILS(open("/tmp/a", O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST, "excl");
	CHECK(write_file("/tmp/a", " more", O_APPEND) == 0, "append", "-");
	printf("appended %s\n", read_file("/tmp/a"));
	CHECK(rename("/tmp/a", "/tmp/b") == 0, "rename", "-");
	FAILS(stat("/tmp/a", &st), ENOENT, "renamed_away");
	printf("renamed %s\n", read_file("/tmp/b"));
	CHECK(write_file("/tmp/b", "new", O_TRUNC) == 0, "trunc", "-");
	printf("truncated %s\n", read_file("/tmp/b"));
	CHECK(mkdir("/tmp/d", 0755) == 0, "mkdir", "-");
	FAILS(mkdir("/tmp/d", 0755), EEXIST, "mkdir_exists");
	CHECK(write_file("/tmp/d/x", "in d", 0) == 0, "create_in_dir", "-");
	FAILS(rmdir("/tmp/d"), ENOTEMPTY, "rmdir_notempty");
	int dfd = open("/tmp/d", O_RDONLY | O_DIRECTORY);
	CHECK(renameat(dfd, "x", dfd, "y") == 0, "renameat", "-");
	FAILS(syscall(SYS_renameat2, AT_FDCWD, "/tmp/b", dfd, "y", 1 /* NOREPLACE */), EEXIST, "renameat2_noreplace");
	DIR *d = opendir("/tmp");
	if (d) {
		list_dir("tmp_listing", d);
		closedir(d);
	}
	d = fdopendir(dfd);
	if (d) {
		list_dir("d_listing", d);
		closedir(d);
	}
	CHECK(unlink("/tmp/d/y") == 0, "unlink", "-");
	FAILS(unlink("/tmp/d/y"), ENOENT, "unlink_again");
	CHECK(rmdir("/tmp/d") == 0, "rmdir", "-");
	FAILS(stat("/tmp/d", &st), ENOENT, "rmdir_gone");
	/* an unlinked open file keeps its data */
	fd = open("/tmp/b", O_RDONLY);
	CHECK(unlink("/tmp/b") == 0, "unlink_open", "-");
	n = read(fd, buf, sizeof(buf));
	printf("unlinked_read %.*s\n", (int)(n > 0 ? n : 0), buf);
	close(fd);
	/* private map of a tmp file */
	CHECK(write_file("/tmp/m", "mapped bytes", 0) == 0, "create_m", "-");
	fd = open("/tmp/m", O_RDWR);
	char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED, "mmap_tmp", "-");
	if (p != MAP_FAILED)
		printf("mmap_tmp %.12s\n", p);
	FAILS((long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), ENODEV, "mmap_shared_write");
	CHECK(fchmod(fd, 0600) == 0 && chmod("/tmp/m", 0640) == 0, "chmod", "-");
	CHECK(utimensat(AT_FDCWD, "/tmp/m", NULL, 0) == 0, "utimensat", "-");
	close(fd);
	unlink("/tmp/m");
	/* the layers are read-only; /tmp is another file system */
	FAILS(open("/data/new", O_WRONLY | O_CREAT, 0644), EROFS, "erofs_create");
	FAILS(open("/data/file.txt", O_WRONLY), EROFS, "erofs_write");
	FAILS(unlink("/data/file.txt"), EROFS, "erofs_unlink");
	FAILS(mkdir("/data/x", 0755), EROFS, "erofs_mkdir");
	FAILS(rename("/data/file.txt", "/data/f2"), EROFS, "erofs_rename");
	FAILS(rename("/data/file.txt", "/tmp/f"), EXDEV, "exdev");
	CHECK(open("/data/file.txt", O_RDONLY | O_CREAT, 0644) >= 0, "creat_existing_ro", "-");
	/* running out of room: a clean error, then everything works again */
	static char chunk[1 << 20];
	long total = 0;
	fd = open("/tmp/big", O_WRONLY | O_CREAT, 0644);
	for (;;) {
		ssize_t w = write(fd, chunk, sizeof(chunk));
		if (w <= 0)
			break;
		total += w;
	}
	printf("big_error %s\n", errno == ENOSPC ? "ENOSPC" : strerror(errno));
	printf("big_some %d\n", total >= (4 << 20));
	close(fd);
	CHECK(unlink("/tmp/big") == 0, "unlink_big", "-");
	int files = 0;
	for (;; files++) {
		snprintf(buf, sizeof(buf), "/tmp/f%d", files);
		fd = open(buf, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			break;
		close(fd);
	}
	printf("files_error %s\n", errno == ENOSPC ? "ENOSPC" : strerror(errno));
	printf("files_many %d\n", files >= 100);
	for (int i = 0; i < files; i++) {
		snprintf(buf, sizeof(buf), "/tmp/f%d", i);
		unlink(buf);
	}
	CHECK(write_file("/tmp/after", "still works", 0) == 0, "after", "-");
	printf("after %s\n", read_file("/tmp/after"));
	d = opendir("/tmp");
	if (d) {
		list_dir("tmp_final", d);
		closedir(d);
	}
	return 0;
}

static double now(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int mode_futex(int ms)
{
	uint32_t word = 0;
	struct timespec rel = { ms / 1000, (ms % 1000) * 1000000L }, abs;
	double t0 = now(CLOCK_MONOTONIC);
	long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &rel, NULL, 0);
	double t1 = now(CLOCK_MONOTONIC);
	printf("wait %s %.0f\n", r == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "other", (t1 - t0) * 1000);
	/* a value that differs: EAGAIN at once */
	FAILS(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, &rel, NULL, 0), EAGAIN, "eagain");
	/* absolute, on the monotonic clock (FUTEX_WAIT_BITSET) */
	clock_gettime(CLOCK_MONOTONIC, &abs);
	abs.tv_nsec += (ms % 1000) * 1000000L;
	abs.tv_sec += ms / 1000 + abs.tv_nsec / 1000000000L;
	abs.tv_nsec %= 1000000000L;
	t0 = now(CLOCK_MONOTONIC);
	r = syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 0, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
	t1 = now(CLOCK_MONOTONIC);
	printf("bitset %s %.0f\n", r == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "other", (t1 - t0) * 1000);
	/* what Python's lock.acquire(timeout=) does: a semaphore with a deadline */
	sem_t s;
	sem_init(&s, 0, 0);
	clock_gettime(CLOCK_REALTIME, &abs);
	abs.tv_nsec += (ms % 1000) * 1000000L;
	abs.tv_sec += ms / 1000 + abs.tv_nsec / 1000000000L;
	abs.tv_nsec %= 1000000000L;
	t0 = now(CLOCK_MONOTONIC);
	r = sem_timedwait(&s, &abs);
	t1 = now(CLOCK_MONOTONIC);
	printf("sem %s %.0f\n", r == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "other", (t1 - t0) * 1000);
	FAILS(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &(struct timespec){ 0, -1 }, NULL, 0), EINVAL, "einval");
	return 0;
}

static int64_t ns_of(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int mode_clock(int ms)
{
	int64_t m0 = ns_of(CLOCK_MONOTONIC), m = m0, r = ns_of(CLOCK_REALTIME), reads = 0, back = 0;

	while (m - m0 < ms * 1000000LL) {
		int64_t m2 = ns_of(CLOCK_MONOTONIC), r2 = ns_of(CLOCK_REALTIME);
		back += m2 < m || r2 < r;
		m = m2;
		r = r2;
		reads++;
	}
	printf("back %lld\n", (long long)back);
	printf("reads_many %d\n", reads > 100);
	printf("realtime_ns %lld\n", (long long)ns_of(CLOCK_REALTIME));
	m0 = ns_of(CLOCK_MONOTONIC);
	nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
	m = ns_of(CLOCK_MONOTONIC) - m0;
	printf("sleep_100ms_measured %d\n", m >= 100000000LL && m < 1000000000LL);
	return 0;
}

static int mode_clone(void)
{
	char in[64], path[128];
	ssize_t n;

	if (write_file("/tmp/boot.txt", "made at boot", 0))
		printf("FAIL boot.txt\n");
	n = read(0, in, sizeof(in) - 1); /* the ready point */
	in[n > 0 ? n : 0] = 0;
	in[strcspn(in, "\n/")] = 0;
	snprintf(path, sizeof(path), "/tmp/%s", in);
	CHECK(write_file(path, in, O_EXCL) == 0, "create", "%s", path);
	DIR *d = opendir("/tmp");
	if (d) {
		list_dir("tmp", d);
		closedir(d);
	}
	printf("boot.txt %s\n", read_file("/tmp/boot.txt"));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "basic"))
		mode_basic(argc, argv);
	else if (!strcmp(argv[1], "fs"))
		mode_fs();
	else if (!strcmp(argv[1], "tmp"))
		mode_tmp();
	else if (!strcmp(argv[1], "futex"))
		mode_futex(argc > 2 ? atoi(argv[2]) : 200);
	else if (!strcmp(argv[1], "clock"))
		mode_clock(argc > 2 ? atoi(argv[2]) : 300);
	else if (!strcmp(argv[1], "clone"))
		mode_clone();
	else
		return 2;
	return failed;
}
