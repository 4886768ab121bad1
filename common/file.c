/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"

#define FILE_MAX_SIZE (64ULL << 30)

static int file__read_fd(int fd, const char *path, uint8_t *buf, uint64_t size,
			 struct sb_err *err)
{
	uint64_t done = 0;

	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err__errno(err, "read %s", path);
		if (n == 0)
			return err__set(err, -EIO, "read %s: file shrank while reading", path);
		done += (uint64_t)n;
	}
	return 0;
}

int file__read_all(const char *path, uint8_t **buf, uint64_t *size, struct sb_err *err)
{
	struct stat st;
	uint8_t *p;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "open %s", path);
	if (fstat(fd, &st) < 0) {
		ret = err__errno(err, "stat %s", path);
		goto out;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		err__set(err, ret, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > FILE_MAX_SIZE) {
		err__set(err, ret, "%s: too large", path);
		goto out;
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		ret = err__set(err, -ENOMEM, "%s: out of memory reading it", path);
		goto out;
	}
	ret = file__read_fd(fd, path, p, (uint64_t)st.st_size, err);
	if (ret < 0) {
		free(p);
		goto out;
	}
	*buf = p;
	*size = (uint64_t)st.st_size;
out:
	close(fd);
	return ret;
}

int file__exe_relative(const char *rel, char *out, size_t outlen, struct sb_err *err)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n < 0)
		return err__errno(err, "readlink /proc/self/exe");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(out, outlen, "%s/%s", exe, rel) >= outlen)
		return err__set(err, -ENAMETOOLONG, "%s/%s: path too long", exe, rel);
	return 0;
}

int file__pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file__write_all(int fd, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = send(fd, (const uint8_t *)buf + done, len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, (const uint8_t *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

int file__pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}
