/* SPDX-License-Identifier: MIT */
/*
 * randbytes: 16 bytes from getrandom(2) and 16 bytes from /dev/urandom,
 * printed as hex:
 *   getrandom: <32 hex digits>
 *   urandom: <32 hex digits>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static void hex(const char *label, const unsigned char *b, size_t n)
{
	printf("%s: ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	putchar('\n');
}

int main(void)
{
	unsigned char b[16];
	size_t got = 0;
	int fd, status = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "randbytes: getrandom: %s\n", strerror(errno));
			status = 1;
			break;
		}
		got += (size_t)r;
	}
	if (got == sizeof(b))
		hex("getrandom", b, sizeof(b));

	fd = open("/dev/urandom", O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "randbytes: /dev/urandom: %s\n", strerror(errno));
		return 1;
	}
	got = 0;
	while (got < sizeof(b)) {
		ssize_t r = read(fd, b + got, sizeof(b) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "randbytes: read /dev/urandom: %s\n",
				r ? strerror(errno) : "short read");
			close(fd);
			return 1;
		}
		got += (size_t)r;
	}
	close(fd);
	hex("urandom", b, sizeof(b));
	return status;
}
