/* SPDX-License-Identifier: MIT */
/*
 * Error messages, passed explicitly: a function that fails returns -errno
 * and leaves a one-line reason (naming the failing ioctl or file) in the
 * caller's struct sb_err.  Only main() prints it.
 */
#ifndef SB_ERR_H
#define SB_ERR_H

struct sb_err {
	char msg[512];
};

/* Store a message (its arguments may include err->msg); returns ret (a -errno) so callers can `return err__set(...)`. */
int err__set(struct sb_err *err, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Store "<message>: strerror(errno)"; returns -errno (or -EIO if errno is 0). */
int err__errno(struct sb_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void err__clear(struct sb_err *err);
#endif
