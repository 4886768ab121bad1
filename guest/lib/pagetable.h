/* SPDX-License-Identifier: MIT */
/*
 * Identity page tables with 2 MiB pages, built the same way by the host
 * (snapbox boot) and by the guest kernel (QEMU/PVH boot).  Every 2 MiB
 * chunk of RAM is mapped; a chunk overlapping a range takes that range's
 * kind (supervisor-only, or user read-only); the rest is user read-write.
 */
#ifndef SB_PAGETABLE_H
#define SB_PAGETABLE_H
#include "sbtypes.h"

#define SB_PTE_P   0x001ULL
#define SB_PTE_RW  0x002ULL
#define SB_PTE_US  0x004ULL
#define SB_PTE_PS  0x080ULL

enum sb_pt_kind {
	SB_PT_SUPERVISOR = 0,   /* kernel only */
	SB_PT_USER_RO = 1,      /* readable from user mode, writable by nobody */
};

struct sb_pt_range {
	uint64_t start, end;    /* [start, end) */
	uint32_t kind;          /* enum sb_pt_kind */
};

struct sb_pt_tables {
	uint64_t *pml4;     /* where the tables are, as the builder sees them */
	uint64_t *pdpt;
	uint64_t *pd;       /* n_pd consecutive 4 KiB page directories */
	uint64_t pml4_gpa;  /* ... and where the guest sees them */
	uint64_t pdpt_gpa;
	uint64_t pd_gpa;
	/* the root file system's layer window (img_size > 0 only): mapped at
	 * img_gpa (GiB-aligned, above RAM), read-only and user-readable, from
	 * consecutive page directories at pd_img / pd_img_gpa, one per GiB */
	uint64_t img_gpa;
	uint64_t *pd_img;
	uint64_t pd_img_gpa;
};

/* Number of page directories needed to map mem_size bytes (plus the 2 MiB
 * hypercall MMIO page right after RAM when mmio is set). */
uint64_t sb_pt_pd_count(uint64_t mem_size, int mmio);

/* Page directories for a layer window of img_size bytes. */
uint64_t sb_pt_img_pd_count(uint64_t img_size);

/*
 * Build the tables.  mem_size must be a non-zero multiple of 2 MiB and at
 * most 512 GiB.  With mmio set, the 2 MiB right after RAM is mapped too
 * (user-accessible; no memory behind it: stores there exit to the host).
 * img_size (a multiple of 2 MiB, 0: none) of the layer window at
 * t->img_gpa are mapped read-only for everyone; the window must lie above
 * RAM and the MMIO page, within the first 512 GiB.
 * Returns 0 or -22 (EINVAL).
 */
int sb_pt_build(const struct sb_pt_tables *t, uint64_t mem_size, int mmio,
		const struct sb_pt_range *ranges, unsigned n_ranges, uint64_t img_size);
#endif
