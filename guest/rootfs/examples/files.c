/* SPDX-License-Identifier: MIT */
/*
 * files [FILE [DIR]]: exercise the file system calls.
 * FILE (default /etc/motd): open, fstat, lseek (end/set/cur), read, print:
 *   file: FILE
 *   size: N                  (fstat st_size)
 *   lseek end: N             (lseek(fd, 0, SEEK_END))
 *   lseek set: 0             (lseek(fd, 0, SEEK_SET))
 *   read: N bytes
 *   lseek cur: N             (lseek(fd, 0, SEEK_CUR) after reading)
 *   contents:
 *   ...the file...
 * DIR (default /): opendir/readdir (getdents64), names sorted, "." and ".."
 * left out:
 *   dir: DIR (K entries)
 *   name1
 *   ...
 * Exits 1 if anything failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "files: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

static int show_file(const char *path)
{
	struct stat st;
	char *buf;
	size_t cap, len = 0;
	off_t end, pos;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return fail("open", path);
	if (fstat(fd, &st)) {
		close(fd);
		return fail("fstat", path);
	}
	printf("file: %s\n", path);
	printf("size: %lld\n", (long long)st.st_size);
	end = lseek(fd, 0, SEEK_END);
	printf("lseek end: %lld\n", (long long)end);
	pos = lseek(fd, 0, SEEK_SET);
	printf("lseek set: %lld\n", (long long)pos);
	if (end < 0 || pos != 0) {
		close(fd);
		return fail("lseek", path);
	}

	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return fail("malloc for", path);
	}
	for (;;) {
		ssize_t r;
		if (len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return fail("realloc for", path);
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			close(fd);
			return fail("read", path);
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	printf("read: %zu bytes\n", len);
	printf("lseek cur: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
	close(fd);
	printf("contents:\n");
	fwrite(buf, 1, len, stdout);
	if (len && buf[len - 1] != '\n')
		putchar('\n');
	free(buf);
	return (off_t)len == st.st_size ? 0 : 1;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int status = 0;

	if (!d)
		return fail("opendir", path);
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
			if (!nn) {
				status = 1;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			status = 1;
			break;
		}
		n++;
	}
	if (errno)
		status = fail("readdir", path);
	closedir(d);
	qsort(names, n, sizeof(*names), cmp);
	printf("dir: %s (%zu entries)\n", path, n);
	for (size_t i = 0; i < n; i++) {
		printf("%s\n", names[i]);
		free(names[i]);
	}
	free(names);
	return status;
}

int main(int argc, char **argv)
{
	int status = 0;

	status |= show_file(argc > 1 ? argv[1] : "/etc/motd");
	fflush(stdout);
	status |= list_dir(argc > 2 ? argv[2] : "/");
	return status;
}
