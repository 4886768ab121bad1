/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "launcher/progress.h"

static void *progress__thread(void *arg)
{
	struct progress *pg = arg;
	struct timespec t0, until;
	int secs = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&pg->lock);
	while (!pg->done) {
		until = t0;
		until.tv_sec += ++secs;
		while (!pg->done &&
		       pthread_cond_timedwait(&pg->cond, &pg->lock, &until) != ETIMEDOUT)
			;
		if (pg->done)
			break;
		char line[320];
		int n = snprintf(line, sizeof(line), "snapbox: %s... %d s\n", pg->what, secs);
		if (n > 0 && write(pg->fd, line, (size_t)n) < 0)
			break;
	}
	pthread_mutex_unlock(&pg->lock);
	return NULL;
}

void progress__start(struct progress *pg, int fd, const char *what)
{
	pthread_condattr_t ca;

	memset(pg, 0, sizeof(*pg));
	pg->fd = fd;
	snprintf(pg->what, sizeof(pg->what), "%s", what);
	pthread_mutex_init(&pg->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pg->cond, &ca);
	pthread_condattr_destroy(&ca);
	pg->started = pthread_create(&pg->thread, NULL, progress__thread, pg) == 0;
}

void progress__stop(struct progress *pg)
{
	if (!pg->started)
		return;
	pthread_mutex_lock(&pg->lock);
	pg->done = true;
	pthread_cond_signal(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
	pthread_join(pg->thread, NULL);
	pthread_mutex_destroy(&pg->lock);
	pthread_cond_destroy(&pg->cond);
	pg->started = false;
}
