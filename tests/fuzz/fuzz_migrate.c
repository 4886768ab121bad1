/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the live-migration stream reader (migrate/stream.c,
 * migrate/recv.c): what a destination service reads from the network
 * before anything of it runs.  Every input is parsed as a whole stream --
 * hello, records up to END, the IO and MACHINE payloads, the STATE through
 * snapshot__parse_state and merged over a template -- twice: as-is, and
 * with the hello's and every in-bounds record's hashes recomputed (so that
 * mutations reach the checks behind the hashes).  After a successful parse
 * the invariants the receiving worker relies on are checked.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "backend/backend.h"
#include "migrate/migrate.h"
#include "snapshot/snapshot.h"

#define FUZZ_MAX_MEM (64ULL << 20) /* RAM the harness allows a stream (the service: its template's) */

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "fuzz_migrate: invariant failed: %s\n", #c); \
			abort();                                                   \
		}                                                                  \
	} while (0)

static struct snapshot tmpl, merged;

static void parse(const uint8_t *data, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct sb_err err = { "" };
	struct mig_reader r;
	struct mig_hello h;
	struct mig_incoming in;
	int ret;

	memcpy(buf, data, len);
	mig_reader__buf(&r, buf, len);
	ret = mig__read_hello(&r, &h, &err);
	if (ret == 0 && h.mem_size > FUZZ_MAX_MEM)
		ret = -E2BIG;
	if (ret == 0) {
		ret = mig__read_body(&r, &in, &err);
		if (ret == 0) {
			struct mig_io io;
			const char *o, *e, *i;
			uint64_t n = 0;

			CHECK(in.state && in.state_len > 0 && in.state_len <= MIG_MAX_STATE);
			CHECK(in.io && in.have_machine);
			for (uint64_t pg = 0; pg < in.mem_size / MIG_PAGE; pg++)
				n += in.page[pg] != NULL;
			CHECK(n == in.n_pages);
			if (mig__parse_io(in.io, in.io_len, &io, &o, &e, &i, &err) == 0)
				CHECK(sizeof(io) + io.out_len + io.err_len + io.in_len == in.io_len);
			if (in.machine.flags & MACHINE_PAUSED_DEFERRED)
				CHECK(in.machine.nr < SB_HC_COUNT && in.machine.gpa < in.mem_size);
			tmpl.hdr.mem_size = in.mem_size;
			if (mig__merge_state(&tmpl, in.state, in.state_len, &merged, &err) == 0)
				CHECK(merged.hdr.mem_size == in.mem_size);
		}
		mig__incoming_free(&in);
	}
	if (ret < 0 && ret != -E2BIG)
		CHECK(err.msg[0] && memchr(err.msg, 0, sizeof(err.msg)));
	CHECK(r.off <= len);
	free(buf);
}

/* The hello's hash and every in-bounds record's two hashes, recomputed. */
static void fix_hashes(uint8_t *b, size_t len)
{
	size_t off = sizeof(struct mig_hello);
	struct mig_hello h;

	if (len < sizeof(h))
		return;
	memcpy(&h, b, sizeof(h));
	h.hash = 0;
	h.hash = XXH3_64bits(&h, sizeof(h));
	memcpy(b, &h, sizeof(h));
	while (len - off >= sizeof(struct mig_rec)) {
		struct mig_rec rec;

		memcpy(&rec, b + off, sizeof(rec));
		off += sizeof(rec);
		if (rec.len > len - off)
			rec.len = len - off;
		rec.payload_hash = XXH3_64bits(b + off, rec.len);
		rec.hash = 0;
		rec.hash = XXH3_64bits(&rec, sizeof(rec));
		memcpy(b + off - sizeof(rec), &rec, sizeof(rec));
		off += rec.len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t *fixed;

	tmpl.hdr.backend = SNAP_BACKEND_KVM;
	tmpl.hdr.abi_version = SB_ABI_VERSION;
	parse(data, len);
	fixed = malloc(len ? len : 1);
	memcpy(fixed, data, len);
	fix_hashes(fixed, len);
	parse(fixed, len);
	free(fixed);
	return 0;
}
