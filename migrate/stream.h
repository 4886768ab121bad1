/* SPDX-License-Identifier: MIT */
/*
 * The live-migration stream (snapbox migrate): one connection from the
 * source service's worker to the destination's, carrying a running
 * sandbox.  A clone is its template plus the pages it wrote; the
 * destination has the template (content-addressed: the stream names it by
 * its id) and receives only those pages, then the CPU/device state, then
 * what the service buffered (its output so far, stdin not yet read).
 *
 *   source -> destination
 *     struct mig_hello                      versioned, hashed
 *     records: struct mig_rec + payload     each hashed (header and payload)
 *       PAGES  arg = gpa of the first page; payload: whole pages, in a row
 *       STATE  payload: a state.bin (snapshot__build_state) of the paused
 *              sandbox: parsed and checked by snapshot__parse_state
 *       MACHINE payload: struct mig_machine: how the paused guest goes on
 *              (a reply it waits for, a call that came while it paused)
 *       IO     payload: struct mig_io + stdout + stderr + unread stdin
 *       END    arg = PAGES records sent (a count the reader checks)
 *   destination -> source (the same records, no payload but a message)
 *       READY  everything checked and in place, waiting for COMMIT
 *       ERROR  payload: a one-line message (why it refused)
 *
 *   2.0: the destination answers the hello before anything else comes:
 *       HAVE   the template (by its id) is in its store: go on as above
 *       NEED   it is not: the source sends it first (template_xfer.c):
 *              TLAYERS (its layer images' ids and sizes), the destination
 *              answers NEED arg = the layers it lacks (bitmap), then
 *              TFILE/TDATA... for state.bin, pages.idx, template.json,
 *              mem.img and those layers, TEND; the destination checks the
 *              whole template (as `template verify`), puts it in its store
 *              and answers HAVE (or ERROR); then the pages etc. as above
 *       ERROR  refused (e.g. another version: one line saying which)
 *   source -> destination: COMMIT (the source's copy ends: resume there)
 *   destination -> source: RESUMED (informational: the downtime's end)
 *
 * The reader trusts nothing: magic, version, every length against a limit
 * and against what remains, every gpa against RAM, every hash; any doubt is
 * -EBADMSG with one line saying what.  mig_reader works on a descriptor or
 * on a buffer (the fuzz target, tests/fuzz/fuzz_migrate.c).
 */
#ifndef SB_MIG_STREAM_H
#define SB_MIG_STREAM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define MIG_MAGIC "SBMIGR\0\0"
#define MIG_MAJOR 2                     /* 2: the destination answers the hello */
#define MIG_MINOR 0
#define MIG_PAGE 4096ULL
#define MIG_MAX_RUN 256                 /* pages in one PAGES record */
#define MIG_MAX_STATE (1u << 20)        /* bytes of a STATE record */
#define MIG_MAX_IO (40u << 20)          /* bytes of an IO record */
#define MIG_MAX_MSG 512                 /* bytes of an ERROR record */
#define MIG_MAX_MEM (64ULL << 30)

struct mig_hello {
	char magic[8];                  /* MIG_MAGIC */
	uint16_t major, minor;
	uint32_t backend;               /* enum snap_backend */
	uint64_t mem_size;              /* bytes of guest RAM */
	uint64_t sandbox_id;            /* it keeps its id */
	char template_id[33];           /* the template's content id (hex) */
	char template_name[72];         /* where the source found it (a hint) */
	uint8_t reserved[15];
	uint64_t hash;                  /* xxh3 of this struct with hash = 0 */
};
_Static_assert(sizeof(struct mig_hello) == 160, "mig_hello size");

enum mig_rec_type {
	MIG_REC_PAGES = 1,
	MIG_REC_STATE = 2,
	MIG_REC_IO = 3,
	MIG_REC_END = 4,
	MIG_REC_READY = 5,
	MIG_REC_ERROR = 6,
	MIG_REC_COMMIT = 7,
	MIG_REC_RESUMED = 8,
	MIG_REC_MACHINE = 9,
	/* 2.0: the template (template_xfer.c) */
	MIG_REC_HAVE = 10,              /* dest: the template is here: go on */
	MIG_REC_NEED = 11,              /* dest: send it (arg 0), then (answer to
					 * TLAYERS) arg = bitmap of layers to send */
	MIG_REC_TLAYERS = 12,           /* src: struct mig_tlayer[n_layers] */
	MIG_REC_TFILE = 13,             /* src: struct mig_tfile: a file begins */
	MIG_REC_TDATA = 14,             /* src: arg = offset in that file; its bytes */
	MIG_REC_TEND = 15,              /* src: arg = files sent; the template is whole */
	MIG_REC_TYPE_MAX
};

struct mig_rec {
	uint32_t type;                  /* enum mig_rec_type */
	uint32_t reserved;              /* 0 */
	uint64_t len;                   /* payload bytes that follow */
	uint64_t arg;                   /* PAGES: gpa; END: PAGES records */
	uint64_t payload_hash;          /* xxh3 of the payload (0 bytes: of nothing) */
	uint64_t hash;                  /* xxh3 of this struct with hash = 0 */
};
_Static_assert(sizeof(struct mig_rec) == 40, "mig_rec size");

/* The template's files (template_xfer.c). */
enum mig_tfile_kind {
	MIG_TFILE_STATE = 1,            /* state.bin */
	MIG_TFILE_PAGES = 2,            /* pages.idx */
	MIG_TFILE_MANIFEST = 3,         /* template.json */
	MIG_TFILE_MEM = 4,              /* mem.img (sparse: zero chunks are not sent) */
	MIG_TFILE_LAYER = 5,            /* a layer image (id), only if NEED asked for it */
	MIG_TFILE_KIND_MAX
};
struct mig_tfile {
	uint32_t kind;                  /* enum mig_tfile_kind */
	uint32_t reserved;              /* 0 */
	uint64_t size;                  /* the file's bytes */
	uint8_t id[16];                 /* LAYER: the image's id */
};
_Static_assert(sizeof(struct mig_tfile) == 32, "mig_tfile size");
struct mig_tlayer {
	uint8_t id[16];
	uint64_t size;
};
_Static_assert(sizeof(struct mig_tlayer) == 24, "mig_tlayer size");
#define MIG_MAX_TLAYERS 16              /* >= SB_MAX_LAYERS (checked in template_xfer.c) */
#define MIG_MAX_TDATA (1u << 20)        /* bytes of a TDATA record */

/* IO: what the source service held for the sandbox. */
#define MIG_IO_STDIN_EOF (1u << 0)      /* its stdin was closed (eof=1) */
struct mig_io {
	uint64_t out_len, err_len;      /* its output so far (all of it: offsets go on) */
	uint64_t in_len;                /* stdin written but not read yet */
	uint32_t flags;                 /* MIG_IO_* */
	uint32_t reserved;
	/* its limits go along: output (stdout + stderr, all of it, 1..2^40),
	 * and the time it has left (0: none; else 1 ns..1 day) */
	uint64_t max_output;
	uint64_t timeout_left_ns;
};
_Static_assert(sizeof(struct mig_io) == 48, "mig_io size");

/* MACHINE: struct machine_paused (backend.h), checked. */
struct mig_machine {
	uint32_t flags;                 /* MACHINE_PAUSED_* */
	uint32_t nr;                    /* DEFERRED: the call (< SB_HC_COUNT) */
	uint64_t gpa;                   /* ... its struct, inside RAM */
	uint64_t reserved[2];           /* 0 */
};
_Static_assert(sizeof(struct mig_machine) == 32, "mig_machine size");
int mig__parse_machine(const uint8_t *payload, size_t len, uint64_t mem_size,
		       struct mig_machine *mm, struct sb_err *err);

/* Reading: from fd (timeout_ms per read, 0: none), or from a buffer. */
struct mig_reader {
	int fd;
	int timeout_ms;
	const uint8_t *buf;             /* fd < 0: read from here */
	size_t len, off;
	uint64_t mem_size;              /* after the hello: PAGES bounds */
};

void mig_reader__fd(struct mig_reader *r, int fd, int timeout_ms);
void mig_reader__buf(struct mig_reader *r, const void *buf, size_t len);

/* The hello, checked (magic, version, hash, sizes, backend, the id's form). */
int mig__read_hello(struct mig_reader *r, struct mig_hello *h, struct sb_err *err);
/* One record: its header checked (type, length limit for its type, gpa
 * bounds for PAGES), its payload read into *payload (malloc'd, NUL after it;
 * NULL for none) and its hash checked. */
int mig__read_rec(struct mig_reader *r, struct mig_rec *rec, uint8_t **payload, struct sb_err *err);

/* Writing (to a descriptor; all or -errno). */
int mig__write_hello(int fd, struct mig_hello *h);
int mig__write_rec(int fd, uint32_t type, uint64_t arg, const void *payload, size_t len);
int mig__write_rec2(int fd, uint32_t type, uint64_t arg, const void *a, size_t alen,
		    const void *b, size_t blen);

/* IO payload: checked split into its parts (pointers into payload). */
int mig__parse_io(const uint8_t *payload, size_t len, struct mig_io *io, const char **out,
		  const char **errb, const char **in, struct sb_err *err);

/* "tcp:HOST:PORT" or "unix:PATH": a connected (connect) or listening
 * (listen) socket, or -errno + message. */
int mig__connect(const char *addr, struct sb_err *err);
int mig__listen(const char *addr, struct sb_err *err);
const char *mig__rec_name(uint32_t type);
#endif
