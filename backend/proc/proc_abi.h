/* SPDX-License-Identifier: MIT */
/*
 * What the proc monitor and its sandbox stub (backend/proc/stub/) agree on,
 * beyond the guest ABI (snapbox_abi.h): the descriptors the stub inherits and
 * the one message it reads before it confines itself.  Nothing the stub says
 * after that is trusted: the guest can overwrite the stub's memory.
 */
#ifndef SB_PROC_ABI_H
#define SB_PROC_ABI_H
#include <stdint.h>

#include "snapbox_abi.h"

/* inherited across execve: SB_PROC_CHAN_FD (snapbox_abi.h) and the RAM */
#define SB_PROC_RAM_FD 1001

/* where the stub is linked (above every guest address, see PLATFORM.md) */
#define SB_PROC_STUB_BASE 0x7f0000000000ULL

/* monitor -> stub, first message on the channel */
struct sb_proc_start {
	uint64_t magic;        /* SB_PROC_MAGIC                               */
	uint64_t mem_size;     /* RAM: SB_PROC_RAM_FD mapped at [4 KiB, size)  */
	uint64_t entry;        /* guest kernel entry (%rdi = arg)             */
	uint64_t arg;          /* struct sb_boot_info                         */
	uint64_t ro_lo, ro_hi; /* made read-only before the guest runs        */
	uint64_t reserved[2];
};
_Static_assert(sizeof(struct sb_proc_start) == 64, "sb_proc_start size");
#endif
