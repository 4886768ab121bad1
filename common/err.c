/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

int err__set(struct sb_err *err, int ret, const char *fmt, ...)
{
	char buf[sizeof(err->msg)];
	va_list ap;

	/* through a copy: callers may pass err->msg itself ("%s: %s", what, err->msg) */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(err->msg, buf, sizeof(buf));
	return ret;
}

int err__errno(struct sb_err *err, const char *fmt, ...)
{
	int e = errno ? errno : EIO;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(e));
	return -e;
}

void err__clear(struct sb_err *err)
{
	err->msg[0] = '\0';
}
