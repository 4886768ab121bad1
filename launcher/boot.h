/* SPDX-License-Identifier: MIT */
/*
 * Building a fresh guest: the kernel ELF at 1 MiB, identity page tables
 * (RAM and the layer window), the layer table, argv/env, and struct
 * sb_boot_info at SB_BOOTINFO_GPA.  The layers themselves are mapped by the
 * backend (machine__map_layers).  Also the early checks that give a clear
 * one-line error before any VM exists.
 */
#ifndef SB_BOOT_H
#define SB_BOOT_H
#include <stdbool.h>
#include <stdint.h>

#include "elf64.h"
#include "common/err.h"
#include "memory/ram.h"
#include "sbfs/layers.h"

#define BOOT_STACK_RESERVE (8ULL << 20) /* the program's stack */
#define BOOT_SLACK         (4ULL << 20) /* heap and kernel bookkeeping, at least */
#define BOOT_DYN_SLACK     (16ULL << 20) /* a dynamic program: the libraries ld.so maps */

struct boot_params {
	uint64_t mem_size;        /* multiple of 2 MiB, SB_MIN_MEM..SB_MAX_MEM */
	const uint8_t *kernel;    /* kernel ELF image */
	uint64_t kernel_size;
	const char *kernel_path;  /* for messages */
	const struct layer_set *layers; /* the root file system, bottom first */
	char *const *argv;        /* argv[0]: program path in the rootfs */
	unsigned argc;
	char *const *envp;
	unsigned envc;
	uint32_t flags;           /* SB_BOOT_TRACE_SYSCALLS; SB_BOOT_USER_SYSCALLS from the
	                             backend (struct sandbox's boot_flags) */
};

/* Parse "512M", "1G", "268435456B", "256" (MiB); rounds up to 2 MiB. */
int boot__parse_mem(const char *s, uint64_t *out, struct sb_err *err);

/* "512M" / "1G" for messages. */
void boot__fmt_mem(uint64_t bytes, char *buf, size_t len);

/* Check the kernel ELF (PT_LOADs within [SB_KERNEL_GPA, SB_KERNEL_END), a
 * guest ABI this host boots: info->snapbox_abi, 3 for a kernel without
 * snapbox's note). */
int boot__check_kernel(const struct boot_params *p, struct sb_elf_info *info,
		       struct sb_err *err);

/*
 * Before creating a VM: the program exists in the layers (symlinks
 * followed), is an x86-64 ELF whose interpreter (if it has one: PT_INTERP,
 * ld.so) is a shared object in the layers too, argv/env fit, and mem_size
 * leaves room for the program, its interpreter and libraries.  -ENOENT/-EISDIR/-ENOEXEC/-ELOOP: the program cannot be executed
 * (exit 127); -ENOMEM/-E2BIG: not enough room (exit 125).
 */
int boot__check_program(const struct boot_params *p, struct sb_err *err);

/* Lay the guest out in RAM; *entry = kernel entry point, *abi = the guest
 * ABI the kernel speaks (and is told in the boot info). */
int boot__setup(struct guest_ram *ram, const struct boot_params *p, uint64_t *entry,
		uint32_t *abi, struct sb_err *err);
#endif
