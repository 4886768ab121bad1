/* SPDX-License-Identifier: MIT */
/* The kvm backend's sandbox, a VM: KVM fds, guest RAM (one memslot), its
 * vCPU; RAM, devices and deadline are in the embedded struct machine. */
#ifndef SB_VM_H
#define SB_VM_H
#include <stdint.h>

#include "backend/backend.h"
#include "backend/kvm/vcpu.h"
#include "common/err.h"
#include "memory/ram.h"
#include "memory/written.h"
#include "snapshot/pristine.h"

/* Page-table pages of a template a recycled VM checks (a 2 MiB-page identity
 * map of 64 GiB has 66). */
#define VM_PT_PAGES_MAX 128

struct jail;

struct vm {
	struct machine m;         /* first: vm__of() casts */
	int kvm_fd;
	int vm_fd;
	struct vcpu vcpu;
	char snap_id[33];         /* the template clone_into restored ("": none) */
	/* recycling (vm__recycle): opened at the first reset, closed by destroy */
	struct written_scan written;   /* our /proc/self/pagemap */
	struct snap_pristine pristine; /* the template's pages as saved */
	uint32_t n_pt_pages;           /* the template's page-table pages */
	uint64_t pt_pages[VM_PT_PAGES_MAX]; /* their GPAs, sorted */
	/* the layer window: memory slot 1 at SB_IMG_GPA, read-only
	 * (KVM_MEM_READONLY), over img_window bytes reserved here (anonymous,
	 * PROT_READ: zeros) that the layer images are mapped over */
	uint8_t *img_host;
	uint64_t img_window;
	/* memory hotplug (guest ABI 5): memory slot 2 over the whole hot window
	 * [SB_HOT_GPA, + SB_HOT_MAX), registered at the first grow, over an
	 * anonymous reservation here: [0, hot_size) read-write, the rest
	 * PROT_NONE (a guest touching it makes KVM_RUN fail: it ends) */
	uint8_t *hot_host;
	uint64_t hot_size;
	/* CPU share: a cgroup the process running the VM joins at the first
	 * change (kvm_be__set_cpu; backend/proc/jail.h), NULL: none */
	struct jail *cpu_jail;
};

/* The layer window a VM registers when it is made (slot cost grows with
 * its size: ~0.1 ms and ~60 KiB of kernel memory for 64 MiB here); a boot or
 * template whose layers span more registers a bigger one. */
#define VM_IMG_WINDOW_MIN (64ULL << 20)

/* The backend (ops on struct vm through its struct machine). */
extern const struct backend kvm_backend;

static inline struct vm *vm__of(struct machine *m)
{
	return (struct vm *)m;
}

/*
 * Open /dev/kvm, map mem_size bytes of RAM, KVM_CREATE_VM, register RAM as
 * slot 0 at GPA 0 and the layer window as slot 1 right away (cheap only
 * before anything else), then KVM_SET_TSS_ADDR (VMX only; failure
 * tolerated) and the vCPU.  No irqchip,
 * no PIT.  Devices get defaults: serial -> stderr, hypercalls on our stdio.
 */
int vm__create(struct vm *vm, uint64_t mem_size, enum ram_backend backend, struct sb_err *err);

/* Close everything; safe on a partially created VM (fds -1). */
/* A clone: RAM is the template's mem.img mapped MAP_PRIVATE, vCPU and
 * devices restored from it. */
struct snapshot;
int vm__create_clone(struct vm *vm, const struct snapshot *snap, struct sb_err *err);

/*
 * The same in two steps, so that the first can run ahead of requests (a
 * pool): a shell is a KVM VM with its vCPU and a memory slot over an
 * address range reserved for mem_size bytes of RAM; cloning into it maps the
 * template's mem.img over that range and restores the state, so no VM, vCPU
 * or memory-slot ioctl is left on the request path.  On failure of
 * vm__clone_into, vm__destroy() the shell.
 */
int vm__create_shell(struct vm *vm, uint64_t mem_size, struct sb_err *err);
int vm__clone_into(struct vm *vm, const struct snapshot *snap, struct sb_err *err);
void vm__destroy(struct vm *vm);

/*
 * For a process about to exit (the CLI): tearing a VM down takes
 * milliseconds, so leave it to a child sharing our memory and return at
 * once; the caller of snapbox gets its answer and exit status sooner.  Takes
 * the heap-allocated vm: freed here when torn down synchronously, left to
 * the process's exit otherwise (the child still uses it).
 */
void vm__destroy_detached(struct vm *vm);

/*
 * Recycle (the backend's reset): put a VM that vm__clone_into(snap) made,
 * and whose program has exited, back to exactly that state without a new
 * VM, vCPU or memory slot.  Guest RAM: every page that is now our own
 * anonymous copy in the MAP_PRIVATE mapping (the guest, or we for it, wrote
 * it; found in /proc/self/pagemap) gets the template's content copied back
 * in place, so it stays mapped (host and KVM) and the next run takes no
 * fault for it; pages only read stay the template's.  A page-table page may
 * differ only in accessed/dirty bits (else the VM is not recycled: KVM's
 * shadow MMU would not see the copy).  vCPU: the template's state but
 * CPUID (which KVM refuses after KVM_RUN, and which cannot have changed),
 * and every other MSR as clone_into left it.  0 or -errno; after a failure
 * only vm__destroy().
 */
int vm__recycle(struct vm *vm, const struct snapshot *snap, struct reset_stats *st,
		struct sb_err *err);

/* Refuse a template whose CPUID features this host's KVM cannot provide. */
int vm__check_cpuid(const struct snapshot *s, int kvm_fd, struct sb_err *err);
#endif
