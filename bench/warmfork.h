/* SPDX-License-Identifier: MIT */
/*
 * The warm fork peer of the Lua handler benchmarks (bench/proc.c,
 * bench/recycle.c): Debian's lua5.4 running /app/handler.lua natively with
 * bench/preload/lua_zygote.c preloaded turns into a zygote at its first
 * read of stdin (the same ready point as a template's); each request is a
 * fork of it, given the request's stdin and the response's stdout.  The
 * floor a prefork server gets.  Header of static functions: include it from
 * ONE .c file (bench.mk builds each bench/NAME.c alone), after clonekit.h.
 */
#ifndef BENCH_WARMFORK_H
#define BENCH_WARMFORK_H
#include <pthread.h>
#include <sys/socket.h>

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"
#define HANDLER "guest/rootfs/app/handler.lua"
#define LUA "/usr/bin/lua5.4"
#define PRELOAD "build/bench/lua_zygote.so"

static int zy_ctl = -1;
static pid_t zy_pid;

static void zy_kill(void)
{
	if (zy_pid > 0)
		kill(zy_pid, SIGKILL);
}

static int zy_start(void)
{
	int sv[2];
	char b;

	if (access(LUA, X_OK) || access(PRELOAD, R_OK)) {
		fprintf(stderr, "warm fork peer: %s or %s missing\n", LUA, PRELOAD);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -1;
	zy_pid = fork();
	if (zy_pid == 0) {
		char fdbuf[16], pre[PATH_MAX];
		int dn = open("/dev/null", O_RDWR);
		dup2(dn, 0);
		dup2(dn, 1);
		dup2(sv[1], 3);
		snprintf(fdbuf, sizeof(fdbuf), "3");
		if (!realpath(PRELOAD, pre))
			_exit(127);
		setenv("LZ_CTL", fdbuf, 1);
		setenv("LD_PRELOAD", pre, 1);
		execl(LUA, LUA, HANDLER, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	zy_ctl = sv[0];
	if (read(zy_ctl, &b, 1) != 1 || b != 'R') {
		fprintf(stderr, "warm fork peer: the zygote did not start\n");
		return -1;
	}
	return 0;
}

static int zy_send(char op, int in, int out)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	int fd[2] = { in, out };
	struct iovec iov = { &op, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fd));
	memcpy(CMSG_DATA(c), fd, sizeof(fd));
	return syscall(SYS_sendmsg, zy_ctl, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* resp: to the response's newline; eof: to EOF (the child exited) */
static int read_resp(int fd, double t0, double *resp, double *eof, char *out, size_t cap)
{
	size_t no = 0;
	*resp = -1;
	for (ssize_t k; (k = read(fd, out + no, cap - 1 - no)) > 0;) {
		no += (size_t)k;
		out[no] = 0;
		if (*resp < 0 && strchr(out, '\n'))
			*resp = bench_now_us() - t0;
		if (no == cap - 1)
			break;
	}
	out[no] = 0;
	*eof = bench_now_us() - t0;
	return strcmp(out, WANT) ? -1 : 0;
}

static int warm_fork(double *resp, double *eof)
{
	int pin[2], pout[2];
	char out[256];

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
		return -1;
	if (write(pin[1], REQ, strlen(REQ)) != (ssize_t)strlen(REQ))
		return -1;
	close(pin[1]);
	double t0 = bench_now_us();
	int ret = zy_send('x', pin[0], pout[1]);
	close(pin[0]);
	close(pout[1]);
	if (ret == 0)
		ret = read_resp(pout[0], t0, resp, eof, out, sizeof(out));
	close(pout[0]);
	return ret;
}

#endif
