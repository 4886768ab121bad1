/* SPDX-License-Identifier: MIT */
/* snapbox image build|inspect|verify: sbfs root file system layer images. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/cli.h"
#include "sbfs/sbfs_host.h"

#define EXIT_DAMAGED 1

/* Build DIR into FILE: a temporary file beside it, renamed over it when
 * complete (whoever maps the old FILE keeps it). */
static int image_build(const char *dir, const char *out, bool quiet)
{
	struct sb_err err = { "" };
	struct sbfs_build_stats st;
	char tmp[PATH_MAX], hex[33];
	uint8_t id[16];
	int fd, ret;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", out) >= sizeof(tmp))
		return usage_error("image build: path too long: %s", out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err__errno(&err, "image build: creating %s", tmp);
		return fail(&err, EXIT_SNAPBOX);
	}
	ret = sbfs__build_dir(dir, fd, id, &st, &err);
	if (ret == 0 && (fchmod(fd, 0444) < 0 || fsync(fd) < 0))
		ret = err__errno(&err, "image build: writing %s", tmp);
	close(fd);
	if (ret == 0 && rename(tmp, out) < 0)
		ret = err__errno(&err, "image build: rename %s to %s", tmp, out);
	if (ret < 0) {
		unlink(tmp);
		return fail(&err, EXIT_SNAPBOX);
	}
	sbfs__id_hex(id, hex);
	if (!quiet)
		printf("%s: id %s, %llu bytes: %llu inodes (%llu files, %llu directories, %llu symlinks; "
		       "%llu distinct contents), %llu bytes of files%s\n",
		       out, hex, (unsigned long long)st.image_size, (unsigned long long)st.inodes,
		       (unsigned long long)st.files, (unsigned long long)st.dirs,
		       (unsigned long long)st.links, (unsigned long long)st.unique_files,
		       (unsigned long long)st.file_bytes,
		       st.skipped ? " (devices, fifos and sockets skipped)" : "");
	return 0;
}

static void mode_str(uint32_t m, char s[11])
{
	static const char rwx[] = "rwxrwxrwx";
	uint32_t t = m & SBFS_S_IFMT;

	s[0] = t == SBFS_S_IFDIR ? 'd' : t == SBFS_S_IFLNK ? 'l' : '-';
	for (int i = 0; i < 9; i++)
		s[1 + i] = (m >> (8 - i)) & 1 ? rwx[i] : '-';
	s[10] = 0;
}

static int image_inspect(const char *path)
{
	struct sb_err err = { "" };
	struct sbfs_map m;
	const struct sbfs_header *h;
	char hex[33];

	if (sbfs_map__open(&m, path, NULL, &err) < 0)
		return fail(&err, EXIT_SNAPBOX);
	h = &m.fs.h;
	sbfs__id_hex(h->id, hex);
	printf("image      %s\nid         %s\nformat     sbfs %u.%u%s\n", path, hex, h->major, h->minor,
	       h->flags & SBFS_F_SYMLINKS ? ", has symlinks" : "");
	printf("size       %llu bytes: metadata %llu (inodes %u, entries %u, hash buckets %u, "
	       "names %llu), data %llu\n",
	       (unsigned long long)h->image_size, (unsigned long long)h->data_off, h->n_inodes,
	       h->n_dirents, h->hash_buckets, (unsigned long long)h->names_size,
	       (unsigned long long)(h->image_size - h->data_off));
	printf("(header checked; `snapbox image verify` checks everything)\n");
	for (uint32_t i = 0; i < h->n_inodes; i++) {
		struct sbfs_inode n;
		const char *p, *t = NULL;
		char mode[11];

		if (sbfs_inode(&m.fs, i, &n) || !(p = sbfs_name(&m.fs, n.path_off, n.path_len))) {
			printf("inode %u: damaged\n", i);
			continue;
		}
		mode_str(n.mode, mode);
		if ((n.mode & SBFS_S_IFMT) == SBFS_S_IFLNK && sbfs_link(&m.fs, &n, &t))
			t = NULL;
		printf("%s %10llu /%.*s%s%.*s\n", mode, (unsigned long long)n.size, (int)n.path_len, p,
		       t ? " -> " : "", t ? (int)n.size : 0, t ? t : "");
	}
	sbfs_map__close(&m);
	return 0;
}

static int image_verify(const char *path)
{
	struct sb_err err = { "" };
	struct sbfs_map m;
	char hex[33];
	int ret;

	ret = sbfs_map__open(&m, path, NULL, &err);
	if (ret == -ENOENT || ret == -EACCES)
		return fail(&err, EXIT_SNAPBOX);
	if (ret == 0)
		ret = sbfs__verify(m.map, m.size, &err);
	if (ret < 0) {
		struct sb_err e = err;

		if (strncmp(e.msg, path, strlen(path)))
			err__set(&err, ret, "%s: %s", path, e.msg);
		sbfs_map__close(&m);
		return fail(&err, EXIT_DAMAGED);
	}
	sbfs__id_hex(m.fs.h.id, hex);
	printf("%s: ok (id %s, %u inodes, %llu bytes)\n", path, hex, m.fs.h.n_inodes,
	       (unsigned long long)m.size);
	sbfs_map__close(&m);
	return 0;
}

int cmd_image(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (!strcmp(sub, "build")) {
		const char *dir = NULL, *out = NULL;
		bool quiet = false;

		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "-o") && i + 1 < argc)
				out = argv[++i];
			else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
				quiet = true;
			else if (argv[i][0] == '-')
				return usage_error("image build: unknown option %s", argv[i]);
			else if (!dir)
				dir = argv[i];
			else
				return usage_error("image build: unexpected argument %s", argv[i]);
		}
		if (!dir || !out)
			return usage_error("usage: snapbox image build DIR -o FILE%s", "");
		return image_build(dir, out, quiet);
	}
	if (!strcmp(sub, "inspect") || !strcmp(sub, "verify")) {
		if (argc != 3 || argv[2][0] == '-')
			return usage_error("usage: snapbox image %s FILE", sub);
		return sub[0] == 'i' ? image_inspect(argv[2]) : image_verify(argv[2]);
	}
	return usage_error("image: expected build, inspect or verify, not '%s'", sub);
}
