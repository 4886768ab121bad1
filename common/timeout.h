/* SPDX-License-Identifier: MIT */
/*
 * Run deadline for one vCPU thread.  A POSIX timer sends SIGALRM to this
 * thread at the deadline and every 10 ms after it (so a signal that lands
 * just before KVM_RUN is not lost); the handler does nothing, it only makes
 * KVM_RUN / blocking reads return EINTR.  The run loop then asks
 * timeout__expired(), which compares CLOCK_MONOTONIC with the deadline.
 */
#ifndef SB_TIMEOUT_H
#define SB_TIMEOUT_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

struct timeout {
	uint64_t ns;              /* requested length, 0 = no timeout */
	struct timespec deadline; /* CLOCK_MONOTONIC */
	timer_t timer;
	bool armed;
};

/* Start the deadline now (ns == 0: no deadline); call on the vCPU thread. */
int timeout__start(struct timeout *t, uint64_t ns, struct sb_err *err);

bool timeout__expired(const struct timeout *t);

/* Nanoseconds left (0 if expired), UINT64_MAX when there is no deadline. */
uint64_t timeout__remaining_ns(const struct timeout *t);

/* Delete the timer; safe to call twice. */
void timeout__stop(struct timeout *t);
#endif
