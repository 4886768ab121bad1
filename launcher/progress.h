/* SPDX-License-Identifier: MIT */
/* "Still working" lines for long operations (template create's boot). */
#ifndef SB_PROGRESS_H
#define SB_PROGRESS_H
#include <pthread.h>
#include <stdbool.h>

struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, started;
	int fd;                 /* where the lines go */
	char what[256];         /* "template lua-fn: booting /bin/lua" */
};

/* After 1 s, then every second until progress__stop(): "snapbox: WHAT... N s". */
void progress__start(struct progress *pg, int fd, const char *what);
void progress__stop(struct progress *pg);
#endif
