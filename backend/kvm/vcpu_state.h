/* SPDX-License-Identifier: MIT */
/* The vCPU and CPUID sections: KVM vCPU state <-> struct snap_vcpu. */
#ifndef SNAP_VCPU_STATE_H
#define SNAP_VCPU_STATE_H
#include "common/err.h"
#include "backend/kvm/vcpu.h"
#include "snapshot/format.h"

/* Read everything a clone needs from a stopped vCPU (no I/O exit pending). */
int snap_vcpu__save(struct vcpu *vcpu, struct snap_vcpu *s, struct sb_err *err);

/*
 * Restore into a fresh vCPU in the order KVM needs (Firecracker documents
 * why): CPUID, MP_STATE, REGS, SREGS, XSAVE/FPU, XCRS, DEBUGREGS, MSRS,
 * VCPU_EVENTS.
 */
int snap_vcpu__restore(struct vcpu *vcpu, const struct kvm_cpuid_entry2 *cpuid, uint32_t nent,
		       const struct snap_vcpu *s, struct sb_err *err);

/*
 * The same without CPUID, for a vCPU that has run (KVM refuses
 * KVM_SET_CPUID2 after KVM_RUN, and a recycled vCPU keeps the template's
 * CPUID anyway): MP_STATE, REGS, SREGS, XSAVE/FPU, XCRS, DEBUGREGS, MSRS,
 * VCPU_EVENTS.
 */
int snap_vcpu__restore_state(struct vcpu *vcpu, const struct snap_vcpu *s, struct sb_err *err);

/*
 * Every MSR of a recycled vCPU (struct vcpu_msrs): vcpu_msrs__list() finds
 * the ones KVM lists and lets us read (on a new vCPU, off the request path);
 * vcpu_msrs__note() reads their values once clone_into has restored the
 * template; vcpu_msrs__revert() reads them again and writes back any that
 * differ, but the TSC (the template's own MSRs are restored with it).
 */
int vcpu_msrs__list(struct vcpu *vcpu, struct sb_err *err);
int vcpu_msrs__note(struct vcpu *vcpu, struct sb_err *err);
int vcpu_msrs__revert(struct vcpu *vcpu, uint32_t *reverted, struct sb_err *err);
#endif
