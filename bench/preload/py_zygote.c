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
 * for lua5.4 at its first fread.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
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
	}
}

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
			zygote(atoi(e));
	}
	return real(fd, p, n);
}
