/* SPDX-License-Identifier: MIT */
/*
 * sbfs layer images: the builder (sbfs/build.c), the full check
 * (sbfs/check.c) and the reader the guest kernel shares (guest/lib/sbfs.c).
 * A tree with every kind of entry goes through a round trip; the same tree
 * gives the same bytes; every kind of damage is refused with a message, and
 * the reader survives it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

#include "run.h"
#include "sbfs/sbfs_host.h"

#define BIG (5u << 20) /* a big file: several chunks of the builder's copy */

static char *tree;

static void put(const char *name, const void *data, size_t len, int mode, time_t mtime)
{
	char p[4096];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

	cr_assert_eq(write_file(tree, name, data, len, mode), 0, "writing %s", name);
	snprintf(p, sizeof(p), "%s/%s", tree, name);
	cr_assert_eq(chmod(p, (mode_t)mode), 0);
	cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void dir(const char *name, int mode)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", tree, name);
	cr_assert_eq(mkdir(p, (mode_t)mode), 0, "mkdir %s", p);
	chmod(p, (mode_t)mode);
}

static void link_to(const char *name, const char *target)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", tree, name);
	cr_assert_eq(symlink(target, p), 0, "symlink %s", p);
}

static uint8_t *big_data(void)
{
	uint8_t *b = malloc(BIG);
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (size_t i = 0; i < BIG; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	return b;
}

/* A tree with files (empty, small, exactly a page, a page and a byte, big,
 * identical twice), directories (nested, empty), symlinks (absolute,
 * relative, to a directory, dangling, a loop) and a fifo (skipped). */
static void make_tree(void)
{
	uint8_t *big = big_data(), page[4097];
	char p[4096];

	memset(page, 'p', sizeof(page));
	tree = make_tempdir();
	chmod(tree, 0755);
	dir("bin", 0755);
	dir("etc", 0755);
	dir("etc/deep", 0700);
	dir("etc/deep/er", 0755);
	dir("empty", 0755);
	dir("lib", 0755);
	put("bin/tool", "#!tool\n", 7, 0755, 1000);
	put("etc/motd", "hello sbfs\n", 11, 0644, 2000);
	put("etc/empty", "", 0, 0600, 3000);
	put("etc/page", page, 4096, 0644, 4000);
	put("etc/page1", page, 4097, 0644, 5000);
	put("etc/deep/er/leaf", "leaf", 4, 0444, 6000);
	put("lib/big", big, BIG, 0644, 7000);
	put("lib/same1", "identical contents\n", 19, 0644, 8000);
	put("lib/same2", "identical contents\n", 19, 0755, 9000);
	link_to("bin/abs", "/etc/motd");
	link_to("bin/rel", "../etc/motd");
	link_to("etcdir", "etc/deep");
	link_to("bin/dangling", "/nowhere");
	link_to("loop1", "loop2");
	link_to("loop2", "loop1");
	snprintf(p, sizeof(p), "%s/fifo", tree);
	cr_assert_eq(mkfifo(p, 0644), 0);
	free(big);
}

static void fini(void)
{
	remove_tempdir(&tree);
}

/* Build d into a memfd; the image, malloc'd, in *img. */
static int build(const char *d, uint8_t **img, uint64_t *size, struct sbfs_build_stats *st,
		 struct sb_err *err)
{
	int fd = memfd_create("sbfs-test", MFD_CLOEXEC);
	uint8_t id[16];
	struct stat sb;
	int ret;

	cr_assert_geq(fd, 0);
	ret = sbfs__build_dir(d, fd, id, st, err);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	cr_assert_eq(fstat(fd, &sb), 0);
	*size = (uint64_t)sb.st_size;
	*img = malloc(*size);
	cr_assert_eq(pread(fd, *img, *size, 0), (ssize_t)*size);
	close(fd);
	cr_assert_eq(memcmp(id, ((struct sbfs_header *)*img)->id, 16), 0, "the id returned is the header's");
	return 0;
}

static void build_ok(const char *d, uint8_t **img, uint64_t *size)
{
	struct sb_err err = { "" };
	cr_assert_eq(build(d, img, size, NULL, &err), 0, "build: %s", err.msg);
}

static uint8_t *slurp_path(const char *rel, size_t *len)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	return slurp(p, len);
}

/* Look p up in one image, following links or not. */
static int resolve1(const struct sbfs *fs, const char *p, int follow, struct sbfs_hit *h)
{
	char path[512], tmp[512];

	cr_assert_eq(sbfs_normalize(p, strlen(p), path, sizeof(path)), 0);
	return sbfs_resolve(fs, 1, path, tmp, sizeof(path), follow, h);
}

static void expect_file(const struct sbfs *fs, const char *p, uint32_t mode, int64_t mtime)
{
	struct sbfs_hit h;
	const uint8_t *data;
	size_t n;
	uint8_t *want = slurp_path(p, &n);

	cr_assert_eq(resolve1(fs, p, 1, &h), 0, "%s not found", p);
	cr_assert_eq(h.n.mode, SBFS_S_IFREG | mode, "%s: mode %o", p, h.n.mode);
	cr_assert_eq(h.n.size, n, "%s: size", p);
	cr_assert_eq(h.n.mtime, mtime, "%s: mtime", p);
	cr_assert_eq(sbfs_file(fs, &h.n, &data), 0);
	cr_assert_eq(h.n.data_off % SBFS_PAGE, 0, "%s is page-aligned", p);
	cr_assert(n == 0 || !memcmp(data, want, n), "%s: contents", p);
	cr_assert_eq(h.n.xxh3, XXH3_64bits(want, n), "%s: content hash", p);
	for (size_t i = n; i % SBFS_PAGE; i++)
		cr_assert_eq(data[i], 0, "%s: padded with zeros", p);
	free(want);
}

TestSuite(sbfs, .init = make_tree, .fini = fini, .timeout = 60);

Test(sbfs, round_trip_of_every_kind_of_entry)
{
	struct sb_err err = { "" };
	struct sbfs_build_stats st;
	struct sbfs fs;
	struct sbfs_hit h, h2;
	const char *t;
	uint8_t *img;
	uint64_t size;

	cr_assert_eq(build(tree, &img, &size, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(sbfs__verify(img, size, &err), 0, "verify: %s", err.msg);
	cr_assert_eq(sbfs_open(&fs, img, size), 0);
	cr_assert_eq(st.skipped, 1, "the fifo is skipped");
	cr_assert_eq(st.dirs, 7);     /* /, bin, etc, etc/deep, etc/deep/er, empty, lib */
	cr_assert_eq(st.files, 9);
	cr_assert_eq(st.links, 6);
	cr_assert_eq(st.unique_files, 7, "two identical files and the empty one share");
	cr_assert(fs.h.flags & SBFS_F_SYMLINKS);
	cr_assert_eq(size % SBFS_PAGE, 0);

	expect_file(&fs, "bin/tool", 0755, 1000);
	expect_file(&fs, "etc/motd", 0644, 2000);
	expect_file(&fs, "etc/empty", 0600, 3000);
	expect_file(&fs, "etc/page", 0644, 4000);
	expect_file(&fs, "etc/page1", 0644, 5000);
	expect_file(&fs, "etc/deep/er/leaf", 0444, 6000);
	expect_file(&fs, "lib/big", 0644, 7000);
	expect_file(&fs, "lib/same1", 0644, 8000);
	expect_file(&fs, "lib/same2", 0755, 9000);

	/* identical contents are stored once */
	cr_assert_eq(resolve1(&fs, "lib/same1", 1, &h), 0);
	cr_assert_eq(resolve1(&fs, "lib/same2", 1, &h2), 0);
	cr_assert_eq(h.n.data_off, h2.n.data_off);
	cr_assert_neq(h.ino, h2.ino);

	/* directories */
	cr_assert_eq(resolve1(&fs, "etc/deep", 1, &h), 0);
	cr_assert_eq(h.n.mode, SBFS_S_IFDIR | 0700);
	cr_assert_eq(h.n.nlink, 3);
	cr_assert_eq(resolve1(&fs, "empty", 1, &h), 0);
	cr_assert_eq(h.n.size, 0, "an empty directory has no entries");
	cr_assert_eq(resolve1(&fs, "/", 1, &h), 0);
	cr_assert_eq(h.ino, 0);

	/* symlinks: kept as such, followed when asked */
	cr_assert_eq(resolve1(&fs, "bin/abs", 0, &h), 0);
	cr_assert_eq(h.n.mode & SBFS_S_IFMT, SBFS_S_IFLNK);
	cr_assert_eq(sbfs_link(&fs, &h.n, &t), 0);
	cr_assert_eq(h.n.size, 9);
	cr_assert_eq(memcmp(t, "/etc/motd", 9), 0);
	cr_assert_eq(resolve1(&fs, "bin/abs", 1, &h), 0);
	cr_assert_eq(h.n.size, 11, "absolute link to /etc/motd");
	cr_assert_eq(resolve1(&fs, "bin/rel", 1, &h2), 0);
	cr_assert_eq(h2.ino, h.ino, "relative link ../etc/motd");
	cr_assert_eq(resolve1(&fs, "etcdir/er/leaf", 1, &h), 0, "a symlinked directory mid-path");
	cr_assert_eq(h.n.size, 4);
	cr_assert_eq(resolve1(&fs, "etcdir", 0, &h), 0);
	cr_assert_eq(h.n.mode & SBFS_S_IFMT, SBFS_S_IFLNK);
	cr_assert_eq(resolve1(&fs, "bin/dangling", 1, &h), -ENOENT);
	cr_assert_eq(resolve1(&fs, "bin/dangling", 0, &h), 0, "lstat of a dangling link");
	cr_assert_eq(resolve1(&fs, "loop1", 1, &h), -ELOOP);
	cr_assert_eq(resolve1(&fs, "loop1/x", 1, &h), -ELOOP);
	cr_assert_eq(resolve1(&fs, "etc/motd/x", 1, &h), -ENOTDIR);
	cr_assert_eq(resolve1(&fs, "nope", 1, &h), -ENOENT);
	cr_assert_eq(resolve1(&fs, "fifo", 1, &h), -ENOENT);
	cr_assert_eq(resolve1(&fs, "etc/../bin/./tool", 1, &h), 0, "lexical . and ..");
	free(img);
}

Test(sbfs, directory_entries_are_complete_and_sorted)
{
	static const char *const want[] = { "abs", "dangling", "rel", "tool" };
	struct sbfs fs;
	struct sbfs_hit h;
	uint8_t *img;
	uint64_t size;

	build_ok(tree, &img, &size);
	cr_assert_eq(sbfs_open(&fs, img, size), 0);
	cr_assert_eq(resolve1(&fs, "bin", 1, &h), 0);
	cr_assert_eq(h.n.size, 4);
	for (uint64_t i = 0; i < h.n.size; i++) {
		struct sbfs_dirent e;
		struct sbfs_inode c;
		const char *name;

		cr_assert_eq(sbfs_dirent(&fs, &h.n, i, &e, &name), 0);
		cr_assert_eq(e.name_len, strlen(want[i]));
		cr_assert_eq(memcmp(name, want[i], e.name_len), 0, "entry %lu", (unsigned long)i);
		cr_assert_eq(sbfs_inode(&fs, e.inode, &c), 0);
		cr_assert_eq(c.parent, h.ino);
		cr_assert_eq(e.d_type, i == 3 ? SBFS_DT_REG : SBFS_DT_LNK);
	}
	cr_assert_neq(sbfs_dirent(&fs, &h.n, 4, &(struct sbfs_dirent){ 0 }, &(const char *){ 0 }), 0,
		      "no entry past the end");
	cr_assert_eq(resolve1(&fs, "", 1, &h), 0);
	cr_assert_eq(h.n.size, 7, "/: bin empty etc etcdir lib loop1 loop2");
	free(img);
}

Test(sbfs, layers_resolve_top_down)
{
	char *up = make_tempdir(), p[4096];
	struct sbfs fs[2];
	struct sbfs_hit h;
	char path[512], tmp[512];
	uint8_t *lo_img, *up_img;
	uint64_t lo_size, up_size;
	const uint8_t *data;

	snprintf(p, sizeof(p), "%s/etc", up);
	cr_assert_eq(mkdir(p, 0755), 0);
	cr_assert_eq(write_file(up, "etc/motd", "upper\n", 6, 0644), 0);
	cr_assert_eq(write_file(up, "extra", "x", 1, 0644), 0);
	snprintf(p, sizeof(p), "%s/tolower", up);
	cr_assert_eq(symlink("/lib/same1", p), 0);
	build_ok(tree, &lo_img, &lo_size);
	build_ok(up, &up_img, &up_size);
	cr_assert_eq(sbfs_open(&fs[0], lo_img, lo_size), 0);
	cr_assert_eq(sbfs_open(&fs[1], up_img, up_size), 0);

#define RES(s, follow) (strcpy(path, s), sbfs_resolve(fs, 2, path, tmp, sizeof(path), follow, &h))
	cr_assert_eq(RES("etc/motd", 1), 0);
	cr_assert_eq(h.layer, 1, "the upper layer's file wins");
	cr_assert_eq(sbfs_file(&fs[1], &h.n, &data), 0);
	cr_assert_eq(memcmp(data, "upper\n", 6), 0);
	cr_assert_eq(RES("etc/page", 1), 0);
	cr_assert_eq(h.layer, 0, "a file only the lower layer has");
	cr_assert_eq(RES("extra", 1), 0);
	cr_assert_eq(h.layer, 1);
	cr_assert_eq(RES("tolower", 1), 0, "a link in the upper layer into the lower");
	cr_assert_eq(h.layer, 0);
	cr_assert_str_eq(path, "lib/same1", "the resolved path");
	cr_assert_eq(RES("bin/abs", 1), 0, "a lower link to a file the upper layer replaces");
	cr_assert_eq(h.layer, 1);
#undef RES
	free(lo_img);
	free(up_img);
	remove_tempdir(&up);
}

Test(sbfs, the_same_tree_gives_the_same_bytes)
{
	char *copy = make_tempdir(), cmd[8192];
	uint8_t *a, *b, *c;
	uint64_t as, bs, cs;
	struct timespec ts[2] = { { 4242, 0 }, { 4242, 0 } };

	build_ok(tree, &a, &as);
	build_ok(tree, &b, &bs);
	cr_assert_eq(as, bs);
	cr_assert_eq(memcmp(a, b, as), 0, "two builds of one tree");
	/* a copy elsewhere, made in another order, with the same modes and times */
	snprintf(cmd, sizeof(cmd), "cd %s && find . -mindepth 1 | sort -r | cpio -pdm --quiet %s 2>/dev/null; "
		 "chmod --reference=%s %s; touch -h -r %s %s; for f in $(cd %s && find . -mindepth 1); do touch -h -r %s/$f %s/$f; done",
		 tree, copy, tree, copy, tree, copy, tree, tree, copy);
	cr_assert_eq(system(cmd), 0);
	build_ok(copy, &c, &cs);
	cr_assert_eq(cs, as);
	cr_assert_eq(memcmp(a, c, as), 0, "the same tree elsewhere");
	free(c);
	/* a different mtime is a different tree */
	snprintf(cmd, sizeof(cmd), "%s/etc/motd", copy);
	cr_assert_eq(utimensat(AT_FDCWD, cmd, ts, 0), 0);
	build_ok(copy, &c, &cs);
	cr_assert_neq(memcmp(((struct sbfs_header *)a)->id, ((struct sbfs_header *)c)->id, 16), 0);
	free(a);
	free(b);
	free(c);
	remove_tempdir(&copy);
}

Test(sbfs, the_cli_builds_and_verifies_atomically)
{
	char out[4096], hex[33];
	struct run_result r = { 0 };
	uint8_t *img, *file;
	uint64_t size;
	size_t flen;

	snprintf(out, sizeof(out), "%s/../sbfs-cli-%d.sbfs", tree, (int)getpid());
	run_checked((const char *const[]){ "snapbox", "image", "build", tree, "-o", out, NULL }, NULL, 30, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	build_ok(tree, &img, &size);
	sbfs__id_hex(((struct sbfs_header *)img)->id, hex);
	cr_assert(strstr(r.out, hex), "prints the id: %s", r.out);
	file = slurp(out, &flen);
	cr_assert_eq(flen, size);
	cr_assert_eq(memcmp(file, img, size), 0, "the CLI's image is the library's");
	run_checked((const char *const[]){ "snapbox", "image", "verify", out, NULL }, NULL, 30, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "ok"));
	/* a flipped byte in the data: exit 1, one line naming the file */
	{
		int fd;
		chmod(out, 0644);
		fd = open(out, O_WRONLY);
		cr_assert_geq(fd, 0);
		cr_assert_eq(pwrite(fd, "X", 1, (off_t)size - 1), 1);
		close(fd);
	}
	run_checked((const char *const[]){ "snapbox", "image", "verify", out, NULL }, NULL, 30, &r);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, out) && strstr(r.err, "not zero"), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "one line: %s", r.err);
	run_checked((const char *const[]){ "snapbox", "image", "build", "/nonexistent", "-o", out, NULL },
		    NULL, 30, &r);
	cr_assert_eq(r.status, 125);
	cr_assert(strstr(r.err, "/nonexistent"), "%s", r.err);
	cr_assert_eq(access(out, F_OK), 0, "a failed build leaves the old file");
	unlink(out);
	run_result_free(&r);
	free(file);
	free(img);
}

Test(sbfs, paths_too_long_are_refused)
{
	char name[241];
	struct sb_err err = { "" };
	uint8_t *img;
	uint64_t size;
	int fd = open(tree, O_RDONLY | O_DIRECTORY);

	/* 18 levels of 240 bytes: a path over SBFS_PATH_MAX (made with *at
	 * calls: longer than the kernel's PATH_MAX too) */
	memset(name, 'n', 240);
	name[240] = 0;
	for (int i = 0; i < 18; i++) {
		int next;
		cr_assert_eq(mkdirat(fd, name, 0755), 0);
		next = openat(fd, name, O_RDONLY | O_DIRECTORY);
		cr_assert_geq(next, 0);
		close(fd);
		fd = next;
	}
	close(fd);
	cr_assert_lt(build(tree, &img, &size, NULL, &err), 0);
	cr_assert(strstr(err.msg, "too long"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));
}

/* ---- damage ----------------------------------------------------------------- */

static uint8_t *good;
static uint64_t good_size;

static struct sbfs_header *H(uint8_t *img)
{
	return (struct sbfs_header *)img;
}

static struct sbfs_inode *INODE(uint8_t *img, uint32_t i)
{
	return (struct sbfs_inode *)(img + H(img)->inodes_off) + i;
}

static struct sbfs_dirent *DIRENT(uint8_t *img, uint32_t i)
{
	return (struct sbfs_dirent *)(img + H(img)->dirents_off) + i;
}

static uint32_t ino_of(uint8_t *img, const char *p)
{
	struct sbfs fs;
	struct sbfs_inode n;
	uint32_t i;

	cr_assert_eq(sbfs_open(&fs, img, good_size), 0);
	i = sbfs_lookup(&fs, p, strlen(p), &n);
	cr_assert_neq(i, SBFS_NONE, "%s", p);
	return i;
}

/* Use the reader the way the guest kernel does, over everything: it must
 * not crash on damage (ASan/UBSan: the fuzz target does the same). */
static void read_everything(const uint8_t *img, uint64_t size)
{
	struct sbfs fs;

	if (sbfs_open(&fs, img, size))
		return;
	for (uint32_t i = 0; i < fs.h.n_inodes && i < 4096; i++) {
		struct sbfs_inode n;
		struct sbfs_hit h;
		const char *p, *t;
		const uint8_t *d;
		char path[512], tmp[512];

		if (sbfs_inode(&fs, i, &n) || !(p = sbfs_name(&fs, n.path_off, n.path_len)))
			continue;
		if (sbfs_file(&fs, &n, &d) == 0 && n.size)
			(void)XXH3_64bits(d, n.size);
		if (sbfs_link(&fs, &n, &t) == 0)
			(void)t[n.size - 1];
		for (uint64_t k = 0; k < n.size && k < 4096; k++) {
			struct sbfs_dirent e;
			const char *name;
			if (sbfs_dirent(&fs, &n, k, &e, &name))
				break;
		}
		if (n.path_len < 400 && sbfs_normalize(p, n.path_len, path, sizeof(path)) == 0)
			(void)sbfs_resolve(&fs, 1, path, tmp, sizeof(path), 1, &h);
	}
}

static void fix_id(uint8_t *img, uint64_t size)
{
	sbfs__compute_id(img, size, H(img)->id);
}

/* Damage a copy of the good image with f (then recompute the id unless
 * keep_id), expect sbfs__verify to refuse it naming `why`. */
static void expect_refused(void (*f)(uint8_t *img, uint64_t *size), bool keep_id, const char *why)
{
	uint64_t size = good_size;
	uint8_t *img = malloc(good_size);
	struct sb_err err = { "" };
	int ret;

	memcpy(img, good, good_size);
	f(img, &size);
	if (!keep_id && size >= sizeof(struct sbfs_header))
		fix_id(img, size);
	ret = sbfs__verify(img, size, &err);
	cr_assert_lt(ret, 0, "damage (%s) accepted", why);
	cr_assert(strstr(err.msg, why), "damage refused, but not for '%s': %s", why, err.msg);
	cr_assert_null(strchr(err.msg, '\n'), "one line: %s", err.msg);
	read_everything(img, size);
	free(img);
}

static void load_good(void)
{
	make_tree();
	build_ok(tree, &good, &good_size);
}

static void free_good(void)
{
	free(good);
	good = NULL;
	fini();
}

TestSuite(sbfs_damage, .init = load_good, .fini = free_good, .timeout = 60);

static void d_trunc_half(uint8_t *img, uint64_t *size) { (void)img; *size /= 2; }
static void d_trunc_header(uint8_t *img, uint64_t *size) { (void)img; *size = 100; }
static void d_trunc_page(uint8_t *img, uint64_t *size) { (void)img; *size -= SBFS_PAGE; }
static void d_magic(uint8_t *img, uint64_t *size) { (void)size; img[0] = 'X'; }
static void d_major(uint8_t *img, uint64_t *size) { (void)size; H(img)->major = 2; }
static void d_flags(uint8_t *img, uint64_t *size) { (void)size; H(img)->flags |= 0x80; }
static void d_reserved(uint8_t *img, uint64_t *size) { (void)size; H(img)->reserved[3] = 1; }
static void d_inode_size(uint8_t *img, uint64_t *size) { (void)size; H(img)->inode_size = 32; }
static void d_buckets(uint8_t *img, uint64_t *size) { (void)size; H(img)->hash_buckets -= 1; }
static void d_inodes_off(uint8_t *img, uint64_t *size) { (void)size; H(img)->inodes_off = H(img)->data_off; }
static void d_names_overlap(uint8_t *img, uint64_t *size) { (void)size; H(img)->names_off = H(img)->hash_off + 4; }
static void d_names_huge(uint8_t *img, uint64_t *size) { (void)size; H(img)->names_size = ~0ULL >> 1; }
static void d_data_off(uint8_t *img, uint64_t *size) { (void)size; H(img)->data_off += 100; }
static void d_count(uint8_t *img, uint64_t *size) { (void)size; H(img)->n_inodes = ~0u; }

static void d_file_past_end(uint8_t *img, uint64_t *size)
{
	INODE(img, ino_of(img, "etc/motd"))->data_off = *size;
}

static void d_file_unaligned(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "etc/motd"))->data_off += 8;
}

static void d_file_in_meta(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "etc/motd"))->data_off = SBFS_PAGE;
}

static void d_overlap(uint8_t *img, uint64_t *size)
{
	/* page1 takes two pages, its second holds one byte: motd starts there
	 * (its own page cleared: no stray bytes are left behind) */
	(void)size;
	memset(img + INODE(img, ino_of(img, "etc/motd"))->data_off, 0, SBFS_PAGE);
	INODE(img, ino_of(img, "etc/motd"))->data_off = INODE(img, ino_of(img, "etc/page1"))->data_off + SBFS_PAGE;
	INODE(img, ino_of(img, "etc/motd"))->xxh3 =
		XXH3_64bits(img + INODE(img, ino_of(img, "etc/motd"))->data_off, 11);
}

static void d_size_huge(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "lib/big"))->size = ~0ULL - 10;
}

static void d_content(uint8_t *img, uint64_t *size)
{
	(void)size;
	img[INODE(img, ino_of(img, "etc/motd"))->data_off] ^= 1;
}

static void d_padding(uint8_t *img, uint64_t *size)
{
	(void)size;
	img[INODE(img, ino_of(img, "etc/motd"))->data_off + 100] = 1;
}

static void d_loop(uint8_t *img, uint64_t *size)
{
	/* the entry for etc/deep/er names etc instead: a cycle etc -> deep -> etc */
	struct sbfs_inode *er = INODE(img, ino_of(img, "etc/deep/er"));
	uint32_t deep = ino_of(img, "etc/deep");
	(void)size;
	for (uint32_t k = 0; k < H(img)->n_dirents; k++)
		if (DIRENT(img, k)->inode == (uint32_t)(er - INODE(img, 0)))
			DIRENT(img, k)->inode = ino_of(img, "etc");
	(void)deep;
}

static void d_parent_loop(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "etc"))->parent = ino_of(img, "etc/deep");
}

static void d_dir_range(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "etc"))->data_off = H(img)->n_dirents;
}

static void d_dir_overlap(uint8_t *img, uint64_t *size)
{
	/* bin's entries also cover etc's first */
	(void)size;
	INODE(img, ino_of(img, "bin"))->size += 1;
}

static void d_unsorted(uint8_t *img, uint64_t *size)
{
	struct sbfs_inode *bin = INODE(img, ino_of(img, "bin"));
	struct sbfs_dirent t = *DIRENT(img, (uint32_t)bin->data_off);
	(void)size;
	*DIRENT(img, (uint32_t)bin->data_off) = *DIRENT(img, (uint32_t)bin->data_off + 1);
	*DIRENT(img, (uint32_t)bin->data_off + 1) = t;
}

static void d_name_slash(uint8_t *img, uint64_t *size)
{
	struct sbfs_inode *n = INODE(img, ino_of(img, "bin/tool"));
	(void)size;
	img[H(img)->names_off + n->path_off + n->path_len - 1] = '/';
}

static void d_bucket_range(uint8_t *img, uint64_t *size)
{
	uint32_t *ht = (uint32_t *)(img + H(img)->hash_off);
	(void)size;
	for (uint32_t j = 0; j < H(img)->hash_buckets; j++)
		if (ht[j]) {
			ht[j] = H(img)->n_inodes + 5;
			break;
		}
}

static void d_bucket_lost(uint8_t *img, uint64_t *size)
{
	uint32_t *ht = (uint32_t *)(img + H(img)->hash_off), big = ino_of(img, "lib/big");
	(void)size;
	for (uint32_t j = 0; j < H(img)->hash_buckets; j++)
		if (ht[j] == big + 1)
			ht[j] = 0;
}

static void d_mode(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "etc/motd"))->mode = 0020644; /* a char device */
}

static void d_link_target(uint8_t *img, uint64_t *size)
{
	(void)size;
	INODE(img, ino_of(img, "bin/abs"))->data_off = H(img)->names_size;
}

static void d_id(uint8_t *img, uint64_t *size)
{
	(void)size;
	H(img)->id[0] ^= 1;
}

Test(sbfs_damage, truncation) {
	expect_refused(d_trunc_half, true, "truncated");
	expect_refused(d_trunc_header, true, "truncated");
	expect_refused(d_trunc_page, true, "truncated");
}
Test(sbfs_damage, bad_magic_and_version) {
	expect_refused(d_magic, false, "bad magic");
	expect_refused(d_major, false, "version");
	expect_refused(d_flags, false, "flags");
	expect_refused(d_reserved, false, "bad header");
	expect_refused(d_inode_size, false, "bad header");
	expect_refused(d_buckets, false, "bad header");
	expect_refused(d_count, false, "bad header");
}
Test(sbfs, sbfs_open_reports_a_short_header)
{
	struct sbfs fs;
	uint8_t small[64] = { 0 };
	cr_assert_eq(sbfs_open(&fs, small, sizeof(small)), SBFS_ESHORT);
}
Test(sbfs_damage, bad_table_offsets) {
	expect_refused(d_inodes_off, false, "table");
	expect_refused(d_names_overlap, false, "overlaps");
	expect_refused(d_names_huge, false, "bad header");
	expect_refused(d_data_off, false, "bad header");
}
Test(sbfs_damage, bad_file_offsets_and_sizes) {
	expect_refused(d_file_past_end, false, "etc/motd");
	expect_refused(d_file_unaligned, false, "not on a page");
	expect_refused(d_file_in_meta, false, "outside the data area");
	expect_refused(d_size_huge, false, "lib/big");
}
Test(sbfs_damage, overlapping_files) {
	expect_refused(d_overlap, false, "overlap");
}
Test(sbfs_damage, damaged_contents_and_padding) {
	expect_refused(d_content, false, "hash mismatch");
	expect_refused(d_padding, false, "not zero");
	expect_refused(d_id, true, "content hash does not match");
}
Test(sbfs_damage, loops_and_broken_trees) {
	expect_refused(d_loop, false, "etc");
	expect_refused(d_parent_loop, false, "parent");
	expect_refused(d_dir_range, false, "outside the entry table");
	expect_refused(d_dir_overlap, false, "");
	expect_refused(d_unsorted, false, "out of order");
	expect_refused(d_name_slash, false, "");
}
Test(sbfs_damage, bad_hash_table) {
	expect_refused(d_bucket_range, false, "hash bucket");
	expect_refused(d_bucket_lost, false, "hash table");
}
Test(sbfs_damage, bad_modes_and_links) {
	expect_refused(d_mode, false, "not a file, directory or symlink");
	expect_refused(d_link_target, false, "bad target");
}

Test(sbfs_damage, the_guest_reader_stays_in_bounds_of_a_damaged_table)
{
	/* a hash table whose every bucket is full: a lookup must end */
	uint8_t *img = malloc(good_size);
	uint32_t *ht;
	struct sbfs fs;
	struct sbfs_inode n;

	memcpy(img, good, good_size);
	ht = (uint32_t *)(img + H(img)->hash_off);
	for (uint32_t j = 0; j < H(img)->hash_buckets; j++)
		ht[j] = 1 + j % H(img)->n_inodes;
	cr_assert_eq(sbfs_open(&fs, img, good_size), 0);
	cr_assert_eq(sbfs_lookup(&fs, "no/such/path", 12, &n), SBFS_NONE);
	read_everything(img, good_size);
	free(img);
}
