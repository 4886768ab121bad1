/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD for Debian's /usr/bin/lua5.4 (bench/proc.c's "warm fork" peer):
 * the floor a prefork server gets.  The handler runs its set-up natively;
 * its first fread() of stdin (io.read("a"), the same ready point as a
 * template's) turns the process into a zygote serving fd $LZ_CTL (a unix
 * SOCK_SEQPACKET socket): it says "R" once, then for each message (one byte,
 * two fds attached: the request's stdin and the response's stdout) forks; the
 * child takes them as fd 0/1 and returns into the handler, which reads the
 * request and answers.  Byte 'p': also send the child's pid back.  The
 * loop is bench/preload/zygote.h, shared with py_zygote.c.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zygote.h"

size_t fread(void *p, size_t size, size_t n, FILE *f)
{
	static size_t (*real)(void *, size_t, size_t, FILE *);
	static int done;

	if (!real)
		real = (size_t(*)(void *, size_t, size_t, FILE *))dlsym(RTLD_NEXT, "fread");
	if (f == stdin && !done) {
		const char *e = getenv("LZ_CTL");
		done = 1;
		if (e && *e)
			zygote__serve(atoi(e));
	}
	return real(p, size, n, f);
}
