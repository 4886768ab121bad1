/* SPDX-License-Identifier: MIT */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

double bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int bench_spawn(char *const argv[], struct spawn_result *r)
{
	int po[2], pe[2], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	posix_spawn_file_actions_t fa;
	size_t no = 0, ne = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->first_out_us = -1;
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	double t0 = bench_now_us();
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	close(devnull);
	if (rc)
		return -rc;
	struct pollfd p[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
	int open_n = 2;
	while (open_n) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			char buf[4096];
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t k = read(p[i].fd, buf, sizeof(buf));
			if (k <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_n--;
				continue;
			}
			if (i == 0 && r->first_out_us < 0)
				r->first_out_us = bench_now_us() - t0;
			char *dst = i ? r->err : r->out;
			size_t *n = i ? &ne : &no;
			size_t room = sizeof(r->out) - 1 - *n;
			size_t c = (size_t)k < room ? (size_t)k : room;
			memcpy(dst + *n, buf, c);
			*n += c;
			dst[*n] = 0;
		}
	}
	int st;
	waitpid(pid, &st, 0);
	r->total_us = bench_now_us() - t0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

void bench_stats(double *v, int n, struct stats *s)
{
	qsort(v, n, sizeof(*v), cmp);
	s->n = n;
	s->median = pct(v, n, 0.5);
	s->p90 = pct(v, n, 0.9);
	s->p99 = pct(v, n, 0.99);
	s->min = v[0];
	s->max = v[n - 1];
}

void bench_print(const char *label, const char *unit, const struct stats *s)
{
	printf("%-44s n=%-5d median %9.1f %s  p90 %9.1f  p99 %9.1f  min %9.1f\n", label, s->n,
	       s->median, unit, s->p90, s->p99, s->min);
}
