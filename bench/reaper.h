/*
 * A reaper thread for benchmarks: machines are torn down off the measured
 * path.  reap_start() once, reap(m) per machine, reap_wait() between
 * phases (teardown would otherwise share the cores with the next
 * measurements), reap_drain() at the end.  Static: one per program.
 */
#ifndef SNAPBOX_BENCH_REAPER_H
#define SNAPBOX_BENCH_REAPER_H

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "backend/backend.h"

#ifndef REAP_MAX
#define REAP_MAX 4096 /* machines waiting; reap() waits beyond */
#endif

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct machine *q[REAP_MAX];
	int head, len;
	bool stop;
	pthread_t th;
} rp = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *reap_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&rp.mu);
	for (;;) {
		while (!rp.len && !rp.stop)
			pthread_cond_wait(&rp.cv, &rp.mu);
		if (!rp.len)
			break;
		struct machine *m = rp.q[rp.head];
		rp.head = (rp.head + 1) % REAP_MAX;
		rp.len--;
		pthread_mutex_unlock(&rp.mu);
		machine__free(m);
		pthread_mutex_lock(&rp.mu);
	}
	pthread_mutex_unlock(&rp.mu);
	return NULL;
}

/* 0, or the error number of pthread_create */
static inline int reap_start(void)
{
	return pthread_create(&rp.th, NULL, reap_main, NULL);
}

static inline void reap(struct machine *m)
{
	pthread_mutex_lock(&rp.mu);
	while (rp.len == REAP_MAX) {
		pthread_mutex_unlock(&rp.mu);
		usleep(1000);
		pthread_mutex_lock(&rp.mu);
	}
	rp.q[(rp.head + rp.len++) % REAP_MAX] = m;
	pthread_cond_signal(&rp.cv);
	pthread_mutex_unlock(&rp.mu);
}

/* until the reaper has nothing left */
static inline void reap_wait(void)
{
	for (;;) {
		pthread_mutex_lock(&rp.mu);
		int n = rp.len;
		pthread_mutex_unlock(&rp.mu);
		if (!n)
			return;
		usleep(2000);
	}
}

/* free what is left and end the thread */
static inline void reap_drain(void)
{
	pthread_mutex_lock(&rp.mu);
	rp.stop = true;
	pthread_cond_signal(&rp.cv);
	pthread_mutex_unlock(&rp.mu);
	pthread_join(rp.th, NULL);
}

#endif
