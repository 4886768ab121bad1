/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the template state-file reader,
 * snapshot__parse_state() (snapshot/load.c).  Every input is parsed
 *
 *   1. as-is: header parsing and hash rejection;
 *   2. "fixed up", three times (see fix_hashes): the input is taken as a
 *      state.bin and the xxh3 hashes in it are recomputed where the input
 *      allows: the header hash only, then also the table hash (these two
 *      reach the table and section hash checks), then also every in-bounds
 *      section's hash and the header's CPUID hash, so that mutations reach
 *      the structural checks behind the hashes.  An older guest ABI number
 *      is replaced by this build's so that seeds outlive ABI bumps.
 *
 * Corpus files are plain state.bin images (tests/fuzz/corpus/).  Each parse
 * works on an exactly-sized heap copy so ASan sees any read past the end.
 * After a successful parse the harness checks the invariants the rest of
 * snapbox relies on and aborts if one does not hold.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sbtypes.h"
#include "snapbox_abi.h"
#include "snapshot/snapshot.h"

static struct snapshot snap;
static int verbose = -1;  /* FUZZ_STATE_VERBOSE=1: print each parse's result */

#define CHECK(c)                                                                 \
	do {                                                                     \
		if (!(c)) {                                                      \
			fprintf(stderr, "fuzz_state: invariant failed: %s\n", #c); \
			abort();                                                 \
		}                                                                \
	} while (0)

static void check_result(int ret, const struct sb_err *err)
{
	const struct snap_memslot *m = &snap.memmap.slots[0];

	if (ret < 0) {
		/* a failure always leaves a one-line, terminated message */
		CHECK(memchr(err->msg, 0, sizeof(err->msg)) != NULL);
		CHECK(err->msg[0] != 0);
		return;
	}
	CHECK(ret == 0);
	CHECK(!memcmp(snap.hdr.magic, SNAP_MAGIC, 8));
	CHECK(snap.hdr.major == SNAP_MAJOR);
	CHECK(snap.hdr.arch == SNAP_ARCH_X86_64);
	CHECK(snap.hdr.mem_size >= SB_MIN_MEM && snap.hdr.mem_size <= SB_MAX_MEM);
	CHECK(snap.hdr.mem_size % SB_PAGE_2M == 0);
	CHECK(snap.hdr.backend < SNAP_BACKEND_COUNT);
	CHECK(snap.hdr.minor >= 1 || snap.hdr.backend == SNAP_BACKEND_KVM);
	if (snap.hdr.backend == SNAP_BACKEND_PROC) {
		const struct sb_proc_cpu *c = &snap.proc.cpu;
		/* what a clone hands to rt_sigreturn: in RAM, with its XSAVE magic in bounds */
		CHECK(snap.nent == 0 && snap.hdr.cpuid_hash == 0);
		CHECK(c->gpr[SB_PROC_RIP] < snap.hdr.mem_size && c->gpr[SB_PROC_RSP] < snap.hdr.mem_size);
		CHECK(c->xstate_size >= 576 && c->xstate_size <= SB_PROC_XSAVE_MAX - 4);
		CHECK((c->xfeatures & 3) == 3);
		CHECK(snap.proc.ro_lo <= snap.proc.ro_hi && snap.proc.ro_hi <= snap.hdr.mem_size);
	} else {
		CHECK(snap.nent >= 1 && snap.nent <= SNAP_CPUID_MAX);
		CHECK(XXH3_64bits(snap.cpuid, snap.nent * sizeof(snap.cpuid[0])) == snap.hdr.cpuid_hash);
		CHECK(snap.vcpu.n_msrs <= SNAP_MSRS_MAX);
		CHECK(!(snap.vcpu.flags & SNAP_VCPU_HAS_XCRS) || snap.vcpu.xcrs.nr_xcrs <= KVM_MAX_XCRS);
		CHECK(snap.vm.n_vcpus == 1);
	}
	CHECK(snap.memmap.n_slots == 1 && m->gpa == 0 && m->size == snap.hdr.mem_size);
	CHECK(!(snap.hc.flags & ~(HC_STATE_PENDING_READ | HC_STATE_PENDING_STDIN)));
	CHECK(snap.hc_version >= 3 || !(snap.hc.flags & HC_STATE_PENDING_STDIN));
	CHECK(snap.hdr.abi_version >= 4 || !(snap.hc.flags & HC_STATE_PENDING_STDIN));
	CHECK(snap.hdr.abi_version >= SB_ABI_VERSION_MIN && snap.hdr.abi_version <= SB_ABI_VERSION);
	CHECK(snap.hc_version >= HC_STATE_VERSION_MIN && snap.hc_version <= HC_STATE_VERSION);
	CHECK(snap.hc.syscall_path <= SB_SYSCALL_PATH_MAX);
	CHECK(snap.hc_version >= 2 || snap.hc.syscall_path == 0);
	/* the policy: a known mode, settings only when on and within bounds; none before 1.2 */
	CHECK(snap.policy.recycle < SNAP_RECYCLE_MODE_COUNT);
	CHECK(snap.policy.recycle == SNAP_RECYCLE_ON ||
	      (snap.policy.max_reuses == 0 && snap.policy.idle_ms == 0));
	CHECK(snap.policy.max_reuses <= SNAP_POLICY_MAX_REUSES);
	CHECK(snap.policy.idle_ms <= SNAP_POLICY_MAX_IDLE_MS);
	CHECK(snap.hdr.minor >= 2 || snap.policy.recycle == SNAP_RECYCLE_DEFAULT);
	/* the layers (1.3): 1..8, laid out from SB_IMG_GPA, whole pages; none before */
	CHECK((snap.hdr.minor >= 3) == (snap.layers.n_layers >= 1));
	CHECK(snap.layers.n_layers <= SB_MAX_LAYERS);
	CHECK(snap.layers.n_layers == 0 || snap.hdr.abi_version >= 4); /* no older kernel reads them */
	for (unsigned i = 0; i < snap.layers.n_layers; i++) {
		const struct snap_layer *l = &snap.layers.layers[i];
		CHECK(l->gpa >= SB_IMG_GPA && l->gpa % SB_PAGE_2M == 0 && l->size % 4096 == 0 && l->size);
		CHECK(l->gpa + l->size <= SB_IMG_GPA + SB_IMG_MAX);
	}
	/* the overlay runs (1.4): whole pages from 64 KiB, in RAM and in their
	 * layer, sorted, disjoint; none before */
	CHECK(snap.hdr.minor >= 4 || snap.n_runs == 0);
	CHECK(snap.n_runs <= SNAP_OVERLAY_MAX);
	{
		uint64_t next = SNAP_OVERLAY_MIN_GPA, pages = 0;

		for (uint32_t i = 0; i < snap.n_runs; i++) {
			const struct snap_overlay_run *r = &snap.runs[i];
			uint64_t len = (uint64_t)r->npages * 4096;

			CHECK(r->npages && r->gpa % 4096 == 0 && r->img_off % 4096 == 0 && !r->flags);
			CHECK(r->gpa >= next && sb_range_in(r->gpa, len, 0, snap.hdr.mem_size));
			CHECK(r->layer < snap.layers.n_layers &&
			      sb_range_in(r->img_off, len, 0, snap.layers.layers[r->layer].size));
			CHECK(snapshot__overlay_find(snap.runs, snap.n_runs, r->gpa + len - 4096) == r);
			next = r->gpa + len;
			pages += r->npages;
		}
		CHECK(pages == snap.overlay_pages);
	}
	/* the write set (1.5): whole pages in RAM, sorted, apart, summed; none before */
	CHECK(snap.hdr.minor >= 5 || (snap.hotset.n_ranges == 0 && snap.hotset.flags == 0));
	CHECK(snap.hotset.n_ranges <= SNAP_HOTSET_MAX && !(snap.hotset.flags & ~SNAP_HOTSET_TRAINED));
	{
		uint64_t end = 0, pages = 0;

		for (uint32_t i = 0; i < snap.hotset.n_ranges; i++) {
			const struct snap_hot_range *r = &snap.hot[i];
			uint64_t len = (uint64_t)r->npages * 4096;

			CHECK(r->npages && r->gpa % 4096 == 0 && !r->flags);
			CHECK((i == 0 || r->gpa > end) && sb_range_in(r->gpa, len, 0, snap.hdr.mem_size));
			end = r->gpa + len;
			pages += r->npages;
		}
		CHECK(pages == snap.hotset.pages);
	}
	CHECK(!(snap.hc.flags & HC_STATE_PENDING_READ) ||
	      sb_range_in(snap.hc.pending_read_gpa, snap.hc.flags & HC_STATE_PENDING_STDIN ?
			  sizeof(struct sb_hc_stdin) : sizeof(struct sb_hc_io), 0, snap.hdr.mem_size));
	CHECK(!(snap.hc.flags & HC_STATE_PENDING_STDIN) || (snap.hc.flags & HC_STATE_PENDING_READ));
}

static void parse(const char *mode, const uint8_t *buf, size_t len)
{
	struct sb_err err;
	int ret;

	memset(&snap, 0, sizeof(snap));
	snap.dirfd = -1;
	memset(&err, 0, sizeof(err));
	ret = snapshot__parse_state(buf, len, &snap, &err);
	if (verbose < 0)
		verbose = getenv("FUZZ_STATE_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "fuzz_state: %s: %d %s\n", mode, ret, ret < 0 ? err.msg : "ok");
	check_result(ret, &err);
}

/*
 * Recompute the hashes a parse checks, where the input allows it, up to
 * level: FIX_HEADER the header hash only (so a damaged table is refused by
 * its hash), FIX_TABLE also the table hash (so a damaged section is refused
 * by its hash), FIX_ALL also every in-bounds section's hash and the header's
 * CPUID hash first (the structural checks behind the hashes).
 */
enum { FIX_HEADER = 1, FIX_TABLE, FIX_ALL };

static void fix_hashes(uint8_t *buf, size_t len, int level)
{
	struct snap_header h;
	struct snap_section table[SNAP_MAX_SECTIONS];
	size_t tlen;
	uint32_t n;

	if (len < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	/* Seeds made by an older snapbox carry an older guest ABI, which the
	 * header check refuses before anything else: stamp the current one so
	 * they stay useful across ABI bumps.  (The as-is parse still covers
	 * that refusal; a newer ABI is left alone.) */
	if (h.abi_version >= 1 && h.abi_version < SB_ABI_VERSION)
		h.abi_version = SB_ABI_VERSION;
	n = h.n_sections;
	tlen = (size_t)n * sizeof(struct snap_section);
	if (level >= FIX_TABLE && n >= 1 && n <= SNAP_MAX_SECTIONS &&
	    sb_range_in(sizeof(h), tlen, 0, len)) {
		memcpy(table, buf + sizeof(h), tlen);
		for (uint32_t i = 0; i < n && level >= FIX_ALL; i++) {
			struct snap_section *sec = &table[i];
			struct snap_cpuid c;

			if (!sb_range_in(sec->offset, sec->length, 0, len))
				continue;
			sec->hash = XXH3_64bits(buf + sec->offset, sec->length);
			if (sec->type != SNAP_SEC_CPUID || sec->length < sizeof(c))
				continue;
			memcpy(&c, buf + sec->offset, sizeof(c));
			if (c.nent <= SNAP_CPUID_MAX &&
			    sizeof(c) + (uint64_t)c.nent * sizeof(struct kvm_cpuid_entry2) <= sec->length)
				h.cpuid_hash = XXH3_64bits(buf + sec->offset + sizeof(c),
							   c.nent * sizeof(struct kvm_cpuid_entry2));
		}
		memcpy(buf + sizeof(h), table, tlen);
		h.table_hash = XXH3_64bits(table, tlen);
	}
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	memcpy(buf, &h, sizeof(h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mode[] = { "as-is", "header fixed", "table fixed", "all fixed" };
	uint8_t *buf;

	if (size > (4U << 20))  /* load.c's STATE_MAX: bigger files never reach the parser */
		return -1;
	parse(mode[0], data, size);
	if (size < sizeof(struct snap_header))
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	for (int level = FIX_HEADER; level <= FIX_ALL; level++) {
		memcpy(buf, data, size);
		fix_hashes(buf, size, level);
		parse(mode[level], buf, size);
	}
	free(buf);
	return 0;
}
