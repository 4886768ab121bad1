/* SPDX-License-Identifier: MIT */
/*
 * The zygote loop both warm-fork preloads share (bench/preload/py_zygote.c,
 * lua_zygote.c): say "R" once on the unix SOCK_SEQPACKET socket ctl, then
 * for each message (one byte, two fds attached: the request's stdin and the
 * response's stdout) fork; the child takes them as fd 0/1 and returns to the
 * caller (the interpreter's first read of stdin), the zygote loops.  Byte
 * 'p': also send the child's pid back (bench/proc.c asks for it).
 * Header-only: each preload is built as one .so from one .c.
 */
#ifndef SNAPBOX_BENCH_PRELOAD_ZYGOTE_H
#define SNAPBOX_BENCH_PRELOAD_ZYGOTE_H

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void zygote__serve(int ctl)
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

#endif
