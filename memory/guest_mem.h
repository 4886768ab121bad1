/* SPDX-License-Identifier: MIT */
/*
 * How a device reaches guest memory.  In a KVM VM the monitor maps guest
 * RAM itself (ptr() gives a host pointer: zero copies); a sandbox running in
 * another process has no such mapping, and read()/write() copy (e.g. with
 * process_vm_readv/writev).  Callers check every range against size first
 * (sb_range_in); the ops may assume [gpa, gpa + len) lies in RAM.
 */
#ifndef SB_GUEST_MEM_H
#define SB_GUEST_MEM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbtypes.h"
#include "snapbox_abi.h"

struct guest_ram;

struct guest_mem {
	uint64_t size; /* GPA [0, size) is RAM */
	/* Host pointer for the range, or NULL: not directly mapped, copy. */
	void *(*ptr)(const struct guest_mem *m, uint64_t gpa, uint64_t len);
	/* Copy in / out: 0 or -errno. */
	int (*read)(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len);
	int (*write)(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len);
	void *opaque;
	/* a read-only region besides RAM, mapped here: the root file system's
	 * layer window [ro_gpa, + ro_size) at ro_host (SB_HC_MEMCPY's source
	 * may lie there); ro_host NULL: none */
	uint64_t ro_gpa, ro_size;
	const uint8_t *ro_host;
	/* memory hotplug (ABI 5): [SB_HOT_GPA, + hot_size) is guest memory too;
	 * hot_host maps it here (KVM), NULL: the ops reach it (proc) */
	uint64_t hot_size;
	uint8_t *hot_host;
};

/* Is [gpa, gpa + len) guest memory (RAM or the usable hot window)? */
static inline bool guest_mem__in(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return sb_range_in(gpa, len, 0, m->size) ||
	       (m->hot_size && sb_range_in(gpa, len, SB_HOT_GPA, SB_HOT_GPA + m->hot_size));
}

/* Guest memory that is ram (mapped here; ram->host may change later). */
void guest_mem__from_ram(struct guest_mem *m, struct guest_ram *ram);

/* Guest memory of size bytes at the same addresses in process *pid (read
 * when used: the pid may change), reached with process_vm_readv/writev:
 * the process's own view, private copy-on-write pages included. */
void guest_mem__from_process(struct guest_mem *m, uint64_t size, const int *pid);
#endif
