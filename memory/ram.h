/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one host mapping covering GPA [0, size).  Backends:
 *   RAM_ANON      private anonymous memory (fresh boot)
 *   RAM_MEMFD     memfd, MAP_SHARED (so a template's RAM can be saved/shared)
 *   RAM_FILE_PRIV MAP_PRIVATE mapping of a file (copy-on-write clone) - later
 */
#ifndef SB_RAM_H
#define SB_RAM_H
#include <stdint.h>

#include "common/err.h"

enum ram_backend {
	RAM_ANON = 0,
	RAM_MEMFD,
	RAM_FILE_PRIV,
	RAM_RESERVED,   /* address range only (PROT_NONE): a VM shell's, until
	                   ram__fill_from_file() maps a template over it */
	RAM_BACKEND_COUNT
};

struct guest_ram;

struct ram_ops {
	const char *name;
	int (*map)(struct guest_ram *ram, struct sb_err *err);
	void (*unmap)(struct guest_ram *ram);
};

struct guest_ram {
	void *host;               /* host address of GPA 0 */
	uint64_t size;            /* bytes, multiple of the page size */
	int fd;                   /* backing fd, -1 for RAM_ANON */
	enum ram_backend backend;
	const struct ram_ops *ops;
};

/* Map size bytes of guest RAM with the given backend. */
int ram__create(struct guest_ram *ram, enum ram_backend backend, uint64_t size,
		struct sb_err *err);

/* Unmap and close; safe on a zeroed or already destroyed ram. */
/*
 * Pools: RAM_RESERVED reserves the address range (PROT_NONE, nothing behind
 * it) so KVM's memory slot can be registered ahead of any request; later
 * ram__fill_from_file() maps a template's mem.img MAP_PRIVATE over it, in
 * place (KVM looks addresses up when the guest faults).
 */
int ram__fill_from_file(struct guest_ram *ram, int fd, struct sb_err *err);
/*
 * After ram__fill_from_file: map each overlay run (a template's, checked on
 * load) of its layer file (layer_fd[run.layer], n_layers of them) private
 * and writable over its range, so the pages come from the image's page
 * cache and a guest write copies them (the image is never written).  KVM
 * follows the new mappings (MMU notifiers), the memory slot stays.
 */
struct snap_overlay_run;
int ram__map_overlays(struct guest_ram *ram, const struct snap_overlay_run *runs, uint32_t n,
		      const int *layer_fd, unsigned n_layers, struct sb_err *err);
void ram__destroy(struct guest_ram *ram);

/* Host pointer for GPA [gpa, gpa + len), NULL unless wholly inside RAM. */
void *ram__gpa_to_host(const struct guest_ram *ram, uint64_t gpa, uint64_t len);
#endif
