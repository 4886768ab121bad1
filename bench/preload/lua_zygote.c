/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD for Debian's /usr/bin/lua5.4 (bench/proc.c's "warm fork" peer):
 * the floor a prefork server gets.  The handler runs its set-up natively;
 * its first fread() of stdin (io.read("a"), the same ready point as a
 * template's) turns the process into a zygote serving fd $LZ_CTL (a unix
 * SOCK_SEQPACKET socket): it says "R" once, then for each message (one byte,
 * two fds attached: the request's stdin and the response's stdout) forks; the
 * child takes them as fd 0/1 and returns into the handler, which reads the
 * request and answers.  Byte 'p': also send the child's pid back.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void zygote(int ctl)
{
	signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
	if (write(ctl, "R", 1) != 1)
		_exit(1);
	for (;;) {
		char b;
		union {
			char buf[CMSG_SPACE(2 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { &b, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c;
		int fd[2];

		if (recvmsg(ctl, &mh, 0) <= 0)
			_exit(0);
		c = CMSG_FIRSTHDR(&mh);
		if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fd)))
			continue;
		memcpy(fd, CMSG_DATA(c), sizeof(fd));
		pid_t pid = fork();
		if (pid == 0) {
			dup2(fd[0], 0);
			dup2(fd[1], 1);
			close(fd[0]);
			close(fd[1]);
			close(ctl);
			signal(SIGCHLD, SIG_DFL);
			return;
		}
		close(fd[0]);
		close(fd[1]);
		if (b == 'p' && write(ctl, &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
	}
}

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
			zygote(atoi(e));
	}
	return real(p, size, n, f);
}
