/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a running sandbox (a worker's machine) to another
 * snapbox service: the sending side (send.c) and the receiving side
 * (recv.c) of the stream in stream.h.  Both run in the sandbox's worker
 * process (launcher/pool.c): the sender on a thread of its own while the
 * machine keeps running on the worker's main thread, the receiver before
 * the machine first runs.
 *
 * Which pages move: those the sandbox wrote, i.e. its private copies in
 * the MAP_PRIVATE mapping of the template's mem.img (memory/written.c:
 * PAGEMAP_SCAN, or pagemap entries) -- never the template's pages, which
 * the destination maps from its own copy of the template.  Pre-copy rounds
 * re-send a page when its content hash changed since it was last sent
 * (this kernel has no soft-dirty bits; hashing the private pages is cheap
 * next to sending them), until what is left fits the downtime budget at
 * the rate measured so far; then the machine pauses and the rest goes.
 */
#ifndef SB_MIGRATE_H
#define SB_MIGRATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "migrate/stream.h"

struct machine;
struct snapshot;

#define MIG_DEFAULT_DOWNTIME_MS 20
#define MIG_MAX_ROUNDS 30
#define MIG_ACK_TIMEOUT_MS 30000    /* the destination's READY */
#define MIG_READ_TIMEOUT_MS 30000   /* any read of the stream */

struct mig_stats {
	uint32_t rounds;            /* pre-copy rounds (the paused one not counted) */
	uint64_t pages_sent;        /* pages sent in all (a page may go twice) */
	uint64_t bytes_sent;        /* bytes on the connection */
	uint64_t private_pages;     /* the sandbox's own pages when it paused */
	uint64_t last_pages;        /* pages sent while paused */
	uint64_t template_bytes;    /* the template's, if the destination lacked it */
	double precopy_ms, downtime_ms, total_ms;
	/* the downtime's parts: pausing (and building the state), the last
	 * round, the destination's READY after END, its RESUMED after COMMIT */
	double pause_ms, last_round_ms, ready_ms, resumed_ms;
};

/* What the sender asks of its worker. */
struct mig_src_ops {
	/* Pause the machine (its main thread stops at MACHINE_PAUSED and
	 * builds the state): 0 + *state (malloc'd), or -errno (it ended). */
	int (*pause)(void *arg, uint8_t **state, size_t *len, struct sb_err *err);
	/* The service's part, once paused: the IO payload (malloc'd). */
	int (*io)(void *arg, uint8_t **io, size_t *len, struct sb_err *err);
	void *arg;
	/* its template (loaded, dirfd open): sent if the destination lacks it */
	const struct snapshot *tmpl;
};

/* Send m (running on another thread) over conn; the hello h has the id,
 * template and sizes.  0: the destination took it (COMMIT sent; the caller
 * ends its copy); -errno + message: the caller resumes it (if paused). */
int mig__send(struct machine *m, int conn, struct mig_hello *h, uint32_t downtime_ms,
	      const struct mig_src_ops *ops, struct mig_stats *st, struct sb_err *err);

/* The template (template_xfer.c), on NEED: the source's side. */
int mig__send_template(int conn, const struct snapshot *tmpl, uint64_t *bytes, struct sb_err *err);
/* The destination's: NEED, then the template into st (r positioned after
 * the hello; *name: where it went).  0, or -errno + message: nothing left. */
struct store;
int mig__fetch_template(struct mig_reader *r, int conn, const struct store *st,
			const struct mig_hello *h, char *name, size_t name_len, struct sb_err *err);

/* The receiving side's stream, read and checked (after the hello). */
struct mig_incoming {
	uint64_t mem_size;
	uint8_t **page;             /* [mem_size / 4096]: NULL, or the page's content */
	uint64_t n_pages;           /* pages present */
	uint64_t n_records;
	uint8_t *state;
	size_t state_len;
	uint8_t *io;
	size_t io_len;
	struct mig_machine machine;
	bool have_machine;
};

/* Read records up to END (r positioned after the hello). */
int mig__read_body(struct mig_reader *r, struct mig_incoming *in, struct sb_err *err);
void mig__incoming_free(struct mig_incoming *in);

/* The migrated state over the template's (tmpl, loaded): *out = tmpl with
 * the CPU, device and hypercall state of the stream's STATE (parsed and
 * checked: same backend, RAM, ABI and layers as the template). */
int mig__merge_state(const struct snapshot *tmpl, const uint8_t *state, size_t len,
		     struct snapshot *out, struct sb_err *err);

/* Clone m from the merged snapshot and put the migrated pages in. */
int mig__restore(struct machine *m, const struct snapshot *merged, const struct mig_incoming *in,
		 struct sb_err *err);
#endif
