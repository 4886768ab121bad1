/* SPDX-License-Identifier: MIT */
/* Small file helpers for the launcher. */
#ifndef SB_FILE_H
#define SB_FILE_H
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* pwrite/pread all of len bytes at off (retrying short and interrupted
 * calls): 0, or -errno (-EIO: the file ended first). */
int file__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int file__pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Write all of len bytes to fd (a socket: send() with MSG_NOSIGNAL, so a
 * gone peer is -EPIPE, not SIGPIPE; else write()), retrying short and
 * interrupted calls: 0 or -errno. */
int file__write_all(int fd, const void *buf, size_t len);

/* Read a whole regular file into a malloc'd buffer (*buf, *size; free() it). */
int file__read_all(const char *path, uint8_t **buf, uint64_t *size, struct sb_err *err);

/* "<directory of the snapbox executable>/<rel>" into out. */
int file__exe_relative(const char *rel, char *out, size_t outlen, struct sb_err *err);
#endif
