/* SPDX-License-Identifier: MIT */
/*
 * A small HTTP/1.1 client over a Unix socket, for talking to `snapbox serve`
 * (one request per connection, `Connection: close`, bodies by
 * Content-Length, every size bounded), and the CLI commands built on it:
 * `snapbox ps`, `snapbox kill`, `snapbox run --server`.
 */
#ifndef SB_CLIENT_H
#define SB_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CLIENT_MAX_HEADERS (64u << 10)
#define CLIENT_MAX_BODY    (256ULL << 20)

struct http_response {
	int status;                /* e.g. 200 */
	char *body;                /* malloc'd, NUL-terminated (may hold NULs) */
	size_t len;
};

/*
 * Send `method target` (target: path and query, already escaped) with body
 * (len bytes, may be 0) to the service listening on the Unix socket `path`,
 * and read its answer: the body at most max_body bytes.  timeout_s bounds
 * every wait for the service (0: none).  0, or -errno with a one-line
 * message in err ("cannot reach the snapbox service at PATH: ..." when it
 * could not connect).
 */
int client__request(const char *path, const char *method, const char *target, const void *body,
		    size_t len, uint64_t max_body, unsigned timeout_s, struct http_response *r,
		    struct sb_err *err);
void http_response__free(struct http_response *r);

/* opt, else $SNAPBOX_SOCKET, else /run/snapbox.sock. */
const char *client__socket_path(const char *opt);

/* Percent-encode s for a URL path segment into out[len]: 0 or -ENAMETOOLONG. */
int client__escape(const char *s, char *out, size_t len);

/* The CLI commands: each returns an exit status (messages printed). */
int cmd_ps(int argc, char **argv);
int cmd_kill(int argc, char **argv);
/* `snapbox migrate [--server SOCKET] [--downtime-ms N] ID tcp:HOST:PORT|unix:PATH` */
int cmd_migrate(int argc, char **argv);
int cmd_resize(int argc, char **argv);
/* `snapbox run --server PATH [--timeout S] NAME < request` (timeout_ns 0:
 * the service's default). */
int cmd_run_remote(const char *sock, const char *name, uint64_t timeout_ns);
#endif
