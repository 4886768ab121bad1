/* SPDX-License-Identifier: MIT */
/*
 * ld.so --preload for the Python layer's python3.11 (bench/python.c's "warm
 * fork" peer): the floor a prefork server gets.  The handler runs its set-up
 * natively; its first read() of fd 0 (sys.stdin.read(), the same ready point
 * as a template's) turns the process into a zygote serving fd $PZ_CTL (a
 * unix SOCK_SEQPACKET socket): it says "R" once, then for each message (one
 * byte, two fds attached: the request's stdin and the response's stdout)
 * forks; the child takes them as fd 0/1 and returns into the read, which now
 * reads the request.  CPython is single-threaded here, so returning into it
 * after a bare fork() is safe.  (bench/preload/lua_zygote.c does the same
 * for lua5.4 at its first fread; the loop is bench/preload/zygote.h.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "zygote.h"

ssize_t read(int fd, void *p, size_t n)
{
	static ssize_t (*real)(int, void *, size_t);
	static int done;

	if (!real)
		real = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	if (fd == 0 && !done) {
		const char *e = getenv("PZ_CTL");
		done = 1;
		if (e && *e)
			zygote__serve(atoi(e));
	}
	return real(fd, p, n);
}
