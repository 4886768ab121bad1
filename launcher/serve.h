/* SPDX-License-Identifier: MIT */
/*
 * `snapbox serve`: the launcher service.  An HTTP/1.1 + JSON API on a Unix
 * socket (GNU libmicrohttpd, Jansson), in front of the sandbox pool
 * (launcher/pool.h) and the template store.  The API is docs/API.md.
 */
#ifndef SB_SERVE_H
#define SB_SERVE_H
#include <stdint.h>

#include "common/err.h"
#include "snapshot/format.h"

#define SERVE_MAX_BODY       (8u << 20)   /* request bodies */
#define SERVE_MAX_CONNS      256          /* concurrent connections */
#define SERVE_DEFAULT_SOCKET "/run/snapbox.sock"

enum serve_log_level { SERVE_LOG_ERROR, SERVE_LOG_INFO, SERVE_LOG_DEBUG };

struct serve_opts {
	const char *socket_path;
	const char *store;         /* NULL: the default store (store__open) */
	unsigned pool;             /* ready workers per RAM size */
	unsigned max_live;         /* sandboxes at once */
	int log_level;             /* enum serve_log_level */
	struct snap_policy recycle; /* --recycle: the policy of runs of templates
	                               whose own is "not set" (not set here: off) */
	const char *listen_migration; /* --listen-migration tcp:HOST:PORT|unix:PATH:
	                                 sandboxes arrive here (NULL: none) */
	int precloned;             /* --pre-cloned N: pre-cloned sandboxes per
	                              template in use (pool_opts.precloned; < 0: none) */
};

/* "error" / "info" / "debug" -> level, or -EINVAL. */
int serve__parse_log_level(const char *s);

/*
 * Run the service in the foreground until SIGINT or SIGTERM: the pool is
 * created first (it forks), then the socket, then the HTTP threads.  On a
 * signal: stop accepting, end the running sandboxes, destroy the pool,
 * unlink the socket.  Must be called while the process has no other thread.
 * 0, or -errno with a message (nothing left behind).
 */
int serve__run(const struct serve_opts *o, struct sb_err *err);
#endif
