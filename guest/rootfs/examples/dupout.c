/* SPDX-License-Identifier: MIT */
/*
 * dupout: stdout and stderr under other descriptor numbers.  dup(1), then
 * dup2(2, 7), writes through both, closes 1 and writes through the dup
 * again.  Prints (stdout) "to a dup of stdout\nafter close(1)\n" and
 * (stderr) "to fd 7, a dup of stderr\n"; exits 1 if a write fell short.
 */
#include <string.h>
#include <unistd.h>

static int put(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : 1;
}

int main(void)
{
	int out = dup(1), bad = 0;

	if (out < 0 || dup2(2, 7) != 7)
		return 1;
	bad |= put(out, "to a dup of stdout\n");
	bad |= put(7, "to fd 7, a dup of stderr\n");
	close(1);
	bad |= put(out, "after close(1)\n");
	return bad;
}
