/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/timeout.h"

#define TIMEOUT_SIGNAL SIGALRM
#define TIMEOUT_REPEAT_NS (10 * 1000 * 1000)
#define NS_PER_S 1000000000ULL

static void timeout__on_signal(int sig)
{
	(void)sig; /* only interrupts KVM_RUN and blocking calls */
}

static int timeout__install_handler(struct sb_err *err)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = timeout__on_signal; /* no SA_RESTART: we want EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(TIMEOUT_SIGNAL, &sa, NULL) < 0)
		return err__errno(err, "sigaction(SIGALRM)");
	sigemptyset(&set);
	sigaddset(&set, TIMEOUT_SIGNAL);
	errno = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (errno)
		return err__errno(err, "pthread_sigmask");
	return 0;
}

static uint64_t ts_to_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * NS_PER_S + (uint64_t)ts->tv_nsec;
}

int timeout__start(struct timeout *t, uint64_t ns, struct sb_err *err)
{
	struct sigevent sev;
	struct itimerspec its;
	struct timespec now;
	uint64_t end;
	int ret;

	memset(t, 0, sizeof(*t));
	t->ns = ns;
	if (!ns)
		return 0;
	ret = timeout__install_handler(err);
	if (ret < 0)
		return ret;
	clock_gettime(CLOCK_MONOTONIC, &now);
	end = ts_to_ns(&now) + ns;
	t->deadline.tv_sec = (time_t)(end / NS_PER_S);
	t->deadline.tv_nsec = (long)(end % NS_PER_S);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = TIMEOUT_SIGNAL;
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &t->timer) < 0)
		return err__errno(err, "timer_create");
	its.it_value = t->deadline;
	its.it_interval.tv_sec = 0;
	its.it_interval.tv_nsec = TIMEOUT_REPEAT_NS;
	if (timer_settime(t->timer, TIMER_ABSTIME, &its, NULL) < 0) {
		ret = err__errno(err, "timer_settime");
		timer_delete(t->timer);
		return ret;
	}
	t->armed = true;
	return 0;
}

uint64_t timeout__remaining_ns(const struct timeout *t)
{
	struct timespec now;
	uint64_t n, d;

	if (!t->ns)
		return UINT64_MAX;
	clock_gettime(CLOCK_MONOTONIC, &now);
	n = ts_to_ns(&now);
	d = ts_to_ns(&t->deadline);
	return n >= d ? 0 : d - n;
}

bool timeout__expired(const struct timeout *t)
{
	return timeout__remaining_ns(t) == 0;
}

void timeout__stop(struct timeout *t)
{
	if (t->armed)
		timer_delete(t->timer);
	t->armed = false;
}
