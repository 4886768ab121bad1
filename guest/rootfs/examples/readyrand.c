/* SPDX-License-Identifier: MIT */
/*
 * readyrand: randomness and the clock AFTER the ready point.  Reads stdin to
 * EOF first (the ready point: a template snapshots here), then prints
 *   getrandom: <32 hex digits>     16 bytes from getrandom(2)
 *   urandom: <32 hex digits>       16 bytes read from /dev/urandom
 *   realtime: <seconds>            CLOCK_REALTIME, whole seconds
 * so every clone of one template must print different random bytes and the
 * current time, not the template's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int fill(int fd, unsigned char *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = fd < 0 ? getrandom(b + got, n - got, 0) : read(fd, b + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void hex(const char *label, const unsigned char *b, size_t n)
{
	printf("%s: ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	putchar('\n');
}

int main(void)
{
	char sink[4096];
	unsigned char b[16];
	struct timespec ts;
	int fd;

	while (read(0, sink, sizeof(sink)) > 0)
		;
	if (fill(-1, b, sizeof(b))) {
		fprintf(stderr, "readyrand: getrandom: %s\n", strerror(errno));
		return 1;
	}
	hex("getrandom", b, sizeof(b));
	fd = open("/dev/urandom", O_RDONLY);
	if (fd < 0 || fill(fd, b, sizeof(b))) {
		fprintf(stderr, "readyrand: /dev/urandom: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	hex("urandom", b, sizeof(b));
	if (clock_gettime(CLOCK_REALTIME, &ts)) {
		fprintf(stderr, "readyrand: clock_gettime: %s\n", strerror(errno));
		return 1;
	}
	printf("realtime: %lld\n", (long long)ts.tv_sec);
	return 0;
}
