/* SPDX-License-Identifier: MIT */
/*
 * cat [FILE|-]...: copy the named files (or stdin) to stdout with plain
 * read(2)/write(2).  Keeps going after an unreadable file, exits 1 then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[65536];

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 0 ok, 1 read error, 2 write error */
static int copy(int fd)
{
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (write_all(1, buf, (size_t)r))
			return 2;
	}
}

static int cat_one(const char *name)
{
	int fd = 0, rc;

	if (strcmp(name, "-") != 0) {
		fd = open(name, O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "cat: %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	rc = copy(fd);
	if (rc)
		fprintf(stderr, "cat: %s: %s\n", rc == 2 ? "write error" : name,
			strerror(errno));
	if (fd != 0)
		close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	int status = 0;

	if (argc < 2)
		return cat_one("-") ? 1 : 0;
	for (int i = 1; i < argc; i++) {
		int rc = cat_one(argv[i]);
		if (rc == 2)
			return 1;
		if (rc)
			status = 1;
	}
	return status;
}
