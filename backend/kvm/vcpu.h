/* SPDX-License-Identifier: MIT */
/* One vCPU: creation, 64-bit long-mode entry state, and the run loop. */
#ifndef SB_VCPU_H
#define SB_VCPU_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "backend/backend.h"
#include "common/err.h"

struct vm;

/* Every MSR KVM lists (KVM_GET_MSR_INDEX_LIST, those it lets us read), and
 * their values as clone_into left them: what a recycled vCPU is put back to
 * beyond the template's own MSRs (kvmclock, steal time, async PF, debug
 * control ... which only a guest kernel writes, but which outlive a run). */
#define VCPU_MSRS_MAX 512
struct vcpu_msrs {
	uint32_t n;           /* 0: not listed (yet) */
	bool noted;           /* clone[] holds clone_into's values */
	struct sb_err why;    /* why not, if listing or noting failed */
	uint32_t index[VCPU_MSRS_MAX];
	uint64_t clone[VCPU_MSRS_MAX];
};

struct vcpu {
	struct vm *vm;        /* owner: devices, hypercall context, deadline */
	int fd;
	int id;
	struct kvm_run *run;
	size_t run_size;
	uint64_t exits;       /* KVM_RUN exits seen */
	uint64_t io_ignored;  /* port accesses nobody owns (outs dropped, ins read 0xff) */
	struct kvm_cpuid2 *cpuid; /* what KVM_SET_CPUID2 was given (saved in templates) */
	struct vcpu_msrs msrs;
};

/* vcpu__run() result: the guest reached its ready point (template create). */
#define VCPU_READY MACHINE_READY

/* Finish the pending I/O exit (KVM_RUN with immediate_exit) so that the
 * vCPU state can be saved. */
int vcpu__complete_exit(struct vcpu *vcpu, struct sb_err *err);

/* KVM_CREATE_VCPU + mmap of kvm_run. */
int vcpu__create(struct vcpu *vcpu, struct vm *vm, int id, struct sb_err *err);

/*
 * CPUID (host-supported), then 64-bit long mode with paging at SB_PML4_GPA:
 * rip = entry, rdi = arg, rflags = 2, rsp = 0.
 */
int vcpu__setup_long_mode(struct vcpu *vcpu, uint64_t entry, uint64_t arg, struct sb_err *err);

/*
 * Run until the guest program ends.  Returns the exit status for snapbox
 * (guest exit status, 124 timeout, 127 exec failure, 128+N fault, 125 guest
 * kernel panic) with an optional message in err (empty if none), or -errno
 * for a VM failure (triple fault, emulation failure, ...) with the reason.
 */
int vcpu__run(struct vcpu *vcpu, struct sb_err *err);

/* The hypercall device's SET_FS: FS (which 0) or GS base, by KVM_SET_MSRS. */
int vcpu__set_base(void *vcpu, unsigned which, uint64_t base);

void vcpu__destroy(struct vcpu *vcpu);
#endif
