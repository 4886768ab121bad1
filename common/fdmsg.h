/* SPDX-License-Identifier: MIT */
/* One message on a Unix socket with file descriptors riding along. */
#ifndef SB_FDMSG_H
#define SB_FDMSG_H
#include <stddef.h>

#define FDMSG_MAX_FDS 9 /* the proc start message: RAM + 8 layers */

/*
 * Send len bytes of m on sock with nfds (<= FDMSG_MAX_FDS) descriptors
 * attached (SCM_RIGHTS), retrying on EINTR, never raising SIGPIPE.
 * 0, or -errno (-EIO for a short send, -EINVAL for too many fds).
 */
int fdmsg__send(int sock, const void *m, size_t len, const int *fds, int nfds);
#endif
