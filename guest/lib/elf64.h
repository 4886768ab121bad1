/* SPDX-License-Identifier: MIT */
/*
 * ELF64 checks and load plan, shared by the host (the kernel image, and an
 * early check of the user program with a clear message) and the guest
 * kernel (loading the user program).  Freestanding: no libc.
 */
#ifndef SB_ELF64_H
#define SB_ELF64_H
#include "sbtypes.h"

#define SB_ELF_MAX_SEGS 16
/* snapbox's ELF note (snapbox_abi.h): name, and the type holding the guest
 * ABI version (a 32-bit word) */
#define SB_ELF_NOTE_NAME "snapbox"
#define SB_ELF_NOTE_ABI  1

struct sb_elf_seg {
	uint64_t vaddr;    /* where it goes (bias applied) */
	uint64_t memsz;
	uint64_t offset;   /* in the file */
	uint64_t filesz;
	uint32_t flags;    /* PF_X 1, PF_W 2, PF_R 4 */
	uint64_t paddr;    /* p_paddr (the kernel image is placed by it) */
};

struct sb_elf_info {
	uint64_t entry;      /* bias applied */
	uint64_t phdr_vaddr; /* program headers in memory (AT_PHDR), 0 if not loaded */
	uint16_t phnum, phentsize;
	uint16_t type;       /* 2 = EXEC, 3 = DYN (static-pie) */
	uint64_t bias;       /* added to every vaddr (0 for EXEC) */
	uint64_t lo, hi;     /* page-aligned span of all PT_LOADs, bias applied */
	uint64_t pvh_entry;  /* XEN_ELFNOTE_PHYS32_ENTRY, 0 if none */
	uint32_t snapbox_abi; /* the guest ABI a snapbox kernel speaks (its
				 SB_ELF_NOTE_ABI note), 0 if none */
	uint64_t interp_off;  /* PT_INTERP: the interpreter's path in the file */
	uint64_t interp_len;  /* its length without the NUL; 0: static program */
	unsigned nseg;
	struct sb_elf_seg seg[SB_ELF_MAX_SEGS];
};

enum sb_elf_err {
	SB_ELF_OK = 0,
	SB_ELF_ENOTELF = -1,   /* no ELF magic */
	SB_ELF_E32 = -2,       /* ELFCLASS32 */
	SB_ELF_EARCH = -3,     /* not little-endian x86-64 */
	SB_ELF_ETYPE = -4,     /* not EXEC or DYN */
	SB_ELF_EDYNAMIC = -5,  /* has PT_INTERP (sb_elf_parse reports it in
				  interp_*; for callers that want static only) */
	SB_ELF_EBADPH = -6,    /* program headers out of bounds / malformed */
	SB_ELF_ENOLOAD = -7,   /* no PT_LOAD */
	SB_ELF_ETOOMANY = -8,  /* more than SB_ELF_MAX_SEGS PT_LOADs */
};

/* Human-readable reason for an sb_elf_err. */
const char *sb_elf_strerror(int err);

/*
 * Check the image and compute its load plan.  A DYN (PIE or shared object)
 * image is biased so that its lowest page lands at pie_base.  A PT_INTERP
 * is reported (interp_off/len: a path of 1..SB_ELF_INTERP_MAX bytes, NUL-
 * terminated in the file), not refused: the caller loads the interpreter.
 */
#define SB_ELF_INTERP_MAX 255
int sb_elf_parse(const uint8_t *img, uint64_t size, uint64_t pie_base,
		 struct sb_elf_info *out);
#endif
