/* SPDX-License-Identifier: MIT */
/* Templates: save a sandbox stopped at its ready point; load and validate
 * one (restoring it is the backend's clone_into). */
#ifndef SNAP_SNAPSHOT_H
#define SNAP_SNAPSHOT_H
#include <limits.h>
#include <stdint.h>

#include "devices/serial.h"
#include "common/err.h"
#include "devices/hypercall.h"
#include "snapshot/format.h"
#include "snapshot/image.h"

struct machine;

/* A loaded, fully validated template (state.bin and pages.idx; the page
 * contents are checked by `template verify`, not on every clone). */
struct snapshot {
	int dirfd;
	struct snap_header hdr;
	struct snap_pages_header pages;
	uint32_t nent;
	struct kvm_cpuid_entry2 cpuid[SNAP_CPUID_MAX];
	struct snap_vcpu vcpu;
	struct snap_vm vm;
	struct snap_memmap memmap;
	struct serial_state serial;
	struct snap_proc_cpu proc; /* proc backend */
	struct hc_state hc;
	uint32_t hc_version;    /* its section's version (1: no syscall_path) */
	struct snap_policy policy; /* all zero (recycle "not set") before format 1.2 */
	struct snap_layers layers; /* 1.3; none (n_layers 0) before: the rootfs is in RAM */
	uint32_t n_runs;        /* 1.4: overlay runs (none before), sorted by gpa */
	uint64_t overlay_pages; /* pages in them */
	struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_hotset hotset; /* 1.5: the write set (none before) */
	struct snap_hot_range hot[SNAP_HOTSET_MAX];
	char id[33];            /* xxh3-128 of state.bin (which covers pages.idx) */
	uint64_t state_bytes;
};

/*
 * Save sb (stopped at its ready point) into the empty directory dirfd:
 * mem.img, pages.idx, state.bin (the backend's sections from its save(),
 * then the memory map, the devices, the template's policy, its layers and
 * its overlay runs, last).  layer_img[i] is sb's layer i's image mapped
 * here (sb->layers[i].size bytes), for finding the RAM pages that are
 * image pages (overlays); NULL: no overlays.  The layer images themselves
 * are the caller's to link in.  Writes the id.
 */
int snapshot__save(struct machine *sb, const struct snap_policy *policy,
		   const uint8_t *const *layer_img, int dirfd, char id[33],
		   struct snap_image_stats *st, struct sb_err *err);

/* state.bin's bytes for m (stopped at its ready point, or paused: a
 * migration's state), as snapshot__save writes them: *out malloc'd.  ov:
 * the overlay runs found by snap_image__write; NULL: none (a migration's
 * state, merged over its template, keeps the template's runs). */
struct snap_overlay_set;
int snapshot__build_state(struct machine *m, const struct snap_policy *policy, uint64_t pages_hash,
			  const struct snap_overlay_set *ov, uint8_t **out, size_t *out_len,
			  struct sb_err *err);
/*
 * Replace the (last, empty) HOTSET section of the template being written
 * in dirfd (not yet committed: nothing maps it) by hs and its ranges:
 * state.bin is rewritten into a temporary file and renamed over the old
 * one.  Writes the new id.  0 or -errno + message.
 */
int snapshot__set_hotset(int dirfd, const struct snap_hotset *hs, const struct snap_hot_range *r,
			 char id[33], struct sb_err *err);
/* Written ranges (addresses - base = gpa, sorted) into at most
 * SNAP_HOTSET_MAX coalesced ranges: gaps are closed, smallest first, while
 * there are too many.  Returns the count; hs->pages is set. */
uint32_t snapshot__hotset_build(const uint64_t (*ranges)[2], size_t n, uint64_t base,
				struct snap_hotset *hs, struct snap_hot_range *out);

/* state.bin being built, for a backend's save(). */
struct snap_writer;
/* Append a section: a (alen bytes) followed by c (clen bytes, may be 0). */
int snap_writer__add(struct snap_writer *w, uint32_t type, uint32_t version, const void *a,
		     size_t alen, const void *c, size_t clen);
/* The header's CPUID fingerprint (xxh3-64 of the CPUID section's entries). */
void snap_writer__set_cpuid_hash(struct snap_writer *w, uint64_t hash);

/*
 * Load and validate the template in directory dir: state.bin completely
 * (every hash, size, version), mem.img's size, pages.idx's header and its
 * hash against state.bin, each layer image's presence, size and header.
 * Page and image contents are checked by `template verify`.
 * 0 or -errno + message.
 */
int snapshot__load(const char *dir, struct snapshot *s, struct sb_err *err);
void snapshot__close(struct snapshot *s);

/* Open mem.img read-only for mapping: fd or -errno. */
int snapshot__open_mem(const struct snapshot *s, struct sb_err *err);

/* Open the template's layer i (layers/<id>.sbfs) read-only for mapping, after
 * checking that it is that image (its size, and the id and sizes in its
 * header): fd, or -errno with a one-line message naming the file. */
int snapshot__open_layer(const struct snapshot *s, unsigned i, struct sb_err *err);
/* "layers/<id>.sbfs" of layer i, relative to the template's directory. */
void snapshot__layer_path(const struct snapshot *s, unsigned i, char *out, size_t len);

/* A policy section's contents: a known mode, max_reuses and idle_ms only
 * for "on" and within their limits, reserved fields zero.  0 or -EBADMSG. */
int snapshot__validate_policy(const struct snap_policy *p, struct sb_err *err);

/* The run of runs[n] (sorted, disjoint) covering gpa, or NULL. */
const struct snap_overlay_run *snapshot__overlay_find(const struct snap_overlay_run *runs,
						      uint32_t n, uint64_t gpa);

/* "kvm" or "proc" (enum snap_backend), for messages and inspect. */
const char *snapshot__backend_name(uint32_t backend);

/* Name of a section type, for messages and `template inspect`. */
const char *snapshot__section_name(uint32_t type);

/*
 * Parse state.bin from memory (the fuzzing entry point too): fills s except
 * dirfd and pages.  0 or -EBADMSG/-EPROTONOSUPPORT with a message.
 */
int snapshot__parse_state(const uint8_t *buf, size_t len, struct snapshot *s, struct sb_err *err);
#endif
