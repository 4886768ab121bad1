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
};

/* Number of page directories needed to map mem_size bytes (plus the 2 MiB
 * hypercall MMIO page right after RAM when mmio is set). */
uint64_t sb_pt_pd_count(uint64_t mem_size, int mmio);

/*
 * Build the tables.  mem_size must be a non-zero multiple of 2 MiB and at
 * most 512 GiB.  With mmio set, the 2 MiB right after RAM is mapped too
 * (user-accessible; no memory behind it: stores there exit to the host).
 * Returns 0 or -22 (EINVAL).
 */
int sb_pt_build(const struct sb_pt_tables *t, uint64_t mem_size, int mmio,
		const struct sb_pt_range *ranges, unsigned n_ranges);
#endif
