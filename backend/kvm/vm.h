/* SPDX-License-Identifier: MIT */
/* A VM: KVM fds, guest RAM (one memslot), its vCPU and devices. */
#ifndef SB_VM_H
#define SB_VM_H
#include <stdint.h>

#include "devices/serial.h"
#include "common/err.h"
#include "devices/hypercall.h"
#include "common/timeout.h"
#include "backend/kvm/vcpu.h"
#include "memory/ram.h"

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_ram ram;
	struct vcpu vcpu;
	struct serial serial;
	struct hc_ctx hc;
	struct timeout timeout;
};

/*
 * Open /dev/kvm, map mem_size bytes of RAM, KVM_CREATE_VM, register RAM as
 * slot 0 at GPA 0 right away (cheap only before anything else), then
 * KVM_SET_TSS_ADDR (VMX only; failure tolerated) and the vCPU.  No irqchip,
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
#endif
