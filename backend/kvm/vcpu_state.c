/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/kvm/kvm.h"
#include "backend/kvm/vm.h"
#include "backend/kvm/vcpu_state.h"
#include "snapshot/snapshot.h"

/* The MSRs a clone needs; KVM_GET_MSRS stops at the first it lacks, so the
 * ones every host has come first. */
static const uint32_t snap_msr_list[] = {
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR: the syscall trampoline */
	0xc0000084, /* SFMASK */
	0xc0000100, /* FS_BASE: the program's TLS */
	0xc0000101, /* GS_BASE */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000083, /* CSTAR */
	0x00000174, /* SYSENTER_CS */
	0x00000175, /* SYSENTER_ESP */
	0x00000176, /* SYSENTER_EIP */
	0x00000277, /* PAT */
	0x00000010, /* TSC */
};
_Static_assert(sizeof(snap_msr_list) / sizeof(snap_msr_list[0]) <= SNAP_MSRS_MAX, "msr list");

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[SNAP_MSRS_MAX];
};

static int vcpu_has(struct vcpu *vcpu, long cap)
{
	return kvm__ioctl_raw(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, (void *)cap) > 0;
}

static int snap_msrs__save(struct vcpu *vcpu, struct snap_vcpu *s, struct sb_err *err)
{
	struct msr_buf b;
	uint32_t n = sizeof(snap_msr_list) / sizeof(snap_msr_list[0]);
	int got;

	memset(&b, 0, sizeof(b));
	b.hdr.nmsrs = n;
	for (uint32_t i = 0; i < n; i++)
		b.e[i].index = snap_msr_list[i];
	got = KVM_IOCTL(vcpu->fd, KVM_GET_MSRS, &b, err);
	if (got < 0)
		return got;
	if (got < SNAP_MSRS_REQUIRED)
		return err__set(err, -EIO, "KVM_GET_MSRS: read only %d of the MSRs a clone needs", got);
	s->n_msrs = (uint32_t)got;
	for (int i = 0; i < got; i++)
		s->msrs[i] = (struct snap_msr){ .index = b.e[i].index, .data = b.e[i].data };
	return 0;
}

int snap_vcpu__save(struct vcpu *vcpu, struct snap_vcpu *s, struct sb_err *err)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->id = (uint32_t)vcpu->id;
	ret = KVM_IOCTL(vcpu->fd, KVM_GET_REGS, &s->regs, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_SREGS, &s->sregs, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_FPU, &s->fpu, err);
	if (ret >= 0 && vcpu_has(vcpu, KVM_CAP_XSAVE)) {
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_XSAVE, &s->xsave, err);
		s->flags |= SNAP_VCPU_HAS_XSAVE;
	}
	if (ret >= 0 && vcpu_has(vcpu, KVM_CAP_XCRS)) {
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_XCRS, &s->xcrs, err);
		s->flags |= SNAP_VCPU_HAS_XCRS;
	}
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_MP_STATE, &s->mp_state, err);
	if (ret >= 0)
		ret = snap_msrs__save(vcpu, s, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_VCPU_EVENTS, &s->events, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_DEBUGREGS, &s->debugregs, err);
	return ret < 0 ? ret : 0;
}

static int snap_cpuid__restore(struct vcpu *vcpu, const struct kvm_cpuid_entry2 *e, uint32_t n,
			       struct sb_err *err)
{
	struct kvm_cpuid2 *c = malloc(sizeof(*c) + n * sizeof(*e));
	int ret;

	if (!c)
		return err__set(err, -ENOMEM, "out of memory for CPUID");
	c->nent = n;
	c->padding = 0;
	memcpy(c->entries, e, n * sizeof(*e));
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_CPUID2, c, err);
	free(vcpu->cpuid);
	vcpu->cpuid = c;
	return ret < 0 ? ret : 0;
}

static int snap_msrs__restore(struct vcpu *vcpu, const struct snap_vcpu *s, struct sb_err *err)
{
	struct msr_buf b;
	int ret;

	memset(&b, 0, sizeof(b));
	b.hdr.nmsrs = s->n_msrs;
	for (uint32_t i = 0; i < s->n_msrs; i++) {
		b.e[i].index = s->msrs[i].index;
		b.e[i].data = s->msrs[i].data;
	}
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_MSRS, &b, err);
	if (ret >= 0 && (uint32_t)ret != s->n_msrs)
		return err__set(err, -EINVAL, "KVM_SET_MSRS: MSR 0x%x was refused",
				s->msrs[ret].index);
	return ret < 0 ? ret : 0;
}

int snap_vcpu__restore_state(struct vcpu *vcpu, const struct snap_vcpu *s, struct sb_err *err)
{
	struct kvm_mp_state mp = s->mp_state;
	struct kvm_regs regs = s->regs;
	struct kvm_sregs sregs = s->sregs;
	struct kvm_vcpu_events ev = s->events;
	struct kvm_debugregs dr = s->debugregs;
	int ret = KVM_IOCTL(vcpu->fd, KVM_SET_MP_STATE, &mp, err);

	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_REGS, &regs, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_SREGS, &sregs, err);
	if (ret >= 0 && (s->flags & SNAP_VCPU_HAS_XSAVE)) {
		struct kvm_xsave xs = s->xsave;
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_XSAVE, &xs, err);
	} else if (ret >= 0) {
		struct kvm_fpu fpu = s->fpu;
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_FPU, &fpu, err);
	}
	if (ret >= 0 && (s->flags & SNAP_VCPU_HAS_XCRS) && s->xcrs.nr_xcrs) {
		struct kvm_xcrs x = s->xcrs;
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_XCRS, &x, err);
	}
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_DEBUGREGS, &dr, err);
	if (ret >= 0)
		ret = snap_msrs__restore(vcpu, s, err);
	if (ret >= 0)
		ret = KVM_IOCTL(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev, err);
	return ret < 0 ? ret : 0;
}

int snap_vcpu__restore(struct vcpu *vcpu, const struct kvm_cpuid_entry2 *cpuid, uint32_t nent,
		       const struct snap_vcpu *s, struct sb_err *err)
{
	int ret = snap_cpuid__restore(vcpu, cpuid, nent, err);

	return ret < 0 ? ret : snap_vcpu__restore_state(vcpu, s, err);
}

/* Leaves and registers whose feature bits a template may rely on. */
static const struct { uint32_t fn, idx; int reg; const char *name; } cpuid_features[] = {
	{ 1, 0, 2, "1.ecx" }, { 1, 0, 3, "1.edx" },
	{ 7, 0, 1, "7.ebx" }, { 7, 0, 2, "7.ecx" }, { 7, 0, 3, "7.edx" },
	{ 0x80000001, 0, 2, "80000001.ecx" }, { 0x80000001, 0, 3, "80000001.edx" },
};

static uint32_t cpuid_reg(const struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid_entry2 *e, uint32_t n,
						uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

int vm__check_cpuid(const struct snapshot *s, int kvm_fd, struct sb_err *err)
{
	struct kvm_cpuid2 *host;
	int ret = kvm__supported_cpuid(kvm_fd, &host, err);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < sizeof(cpuid_features) / sizeof(cpuid_features[0]) && !ret; i++) {
		const struct kvm_cpuid_entry2 *t = find_leaf(s->cpuid, s->nent, cpuid_features[i].fn,
							     cpuid_features[i].idx);
		const struct kvm_cpuid_entry2 *h = find_leaf(host->entries, host->nent,
							     cpuid_features[i].fn, cpuid_features[i].idx);
		uint32_t need = t ? cpuid_reg(t, cpuid_features[i].reg) : 0;
		uint32_t have = h ? cpuid_reg(h, cpuid_features[i].reg) : 0;
		if (need & ~have)
			ret = err__set(err, -EOPNOTSUPP,
				       "template needs CPU features this host cannot provide (CPUID %s bits 0x%08x)",
				       cpuid_features[i].name, need & ~have);
	}
	free(host);
	return ret;
}

/* ---- every MSR, for recycling ---------------------------------------------- */

#define MSR_IA32_TSC 0x10

struct msr_all_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[VCPU_MSRS_MAX];
};

int vcpu_msrs__list(struct vcpu *vcpu, struct sb_err *err)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[VCPU_MSRS_MAX];
	} l;
	struct msr_all_buf b;
	struct vcpu_msrs *m = &vcpu->msrs;
	int ret;

	m->n = 0;
	m->noted = false;
	err__clear(&m->why);
	l.hdr.nmsrs = VCPU_MSRS_MAX;
	ret = kvm__ioctl_raw(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &l);
	if (ret == -E2BIG)
		return err__set(err, -E2BIG, "KVM lists %u MSRs, more than a vCPU keeps (%d)",
				l.hdr.nmsrs, VCPU_MSRS_MAX);
	if (ret < 0)
		return err__set(err, ret, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
	/* keep those KVM lets us read: KVM_GET_MSRS stops at the first it
	 * refuses, which is skipped; the TSC moves by itself (the template's
	 * own MSRs restore it) */
	for (uint32_t i = 0; i < l.hdr.nmsrs;) {
		memset(&b.hdr, 0, sizeof(b.hdr));
		b.hdr.nmsrs = l.hdr.nmsrs - i;
		for (uint32_t k = 0; k < b.hdr.nmsrs; k++)
			b.e[k] = (struct kvm_msr_entry){ .index = l.idx[i + k] };
		ret = KVM_IOCTL(vcpu->fd, KVM_GET_MSRS, &b, err);
		if (ret < 0) {
			m->n = 0;
			return ret;
		}
		for (int k = 0; k < ret; k++)
			if (b.e[k].index != MSR_IA32_TSC)
				m->index[m->n++] = b.e[k].index;
		i += (uint32_t)ret + 1;
	}
	return 0;
}

static int msrs_get(struct vcpu *vcpu, struct msr_all_buf *b, struct sb_err *err)
{
	const struct vcpu_msrs *m = &vcpu->msrs;
	int got;

	memset(&b->hdr, 0, sizeof(b->hdr));
	b->hdr.nmsrs = m->n;
	for (uint32_t i = 0; i < m->n; i++)
		b->e[i] = (struct kvm_msr_entry){ .index = m->index[i] };
	got = KVM_IOCTL(vcpu->fd, KVM_GET_MSRS, b, err);
	if (got >= 0 && (uint32_t)got != m->n)
		return err__set(err, -EIO, "KVM_GET_MSRS: MSR 0x%x could not be read",
				m->index[got]);
	return got < 0 ? got : 0;
}

int vcpu_msrs__note(struct vcpu *vcpu, struct sb_err *err)
{
	struct msr_all_buf b;
	int ret = msrs_get(vcpu, &b, err);

	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < vcpu->msrs.n; i++)
		vcpu->msrs.clone[i] = b.e[i].data;
	vcpu->msrs.noted = true;
	return 0;
}

int vcpu_msrs__revert(struct vcpu *vcpu, uint32_t *reverted, struct sb_err *err)
{
	struct msr_all_buf b;
	uint32_t n = 0;
	int ret;

	*reverted = 0;
	if (!vcpu->msrs.noted)
		return err__set(err, -EOPNOTSUPP, "this vCPU cannot be recycled: its MSRs were not "
				"read when it was cloned%s%s", vcpu->msrs.why.msg[0] ? ": " : "",
				vcpu->msrs.why.msg);
	ret = msrs_get(vcpu, &b, err);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < vcpu->msrs.n; i++)
		if (b.e[i].data != vcpu->msrs.clone[i])
			b.e[n++] = (struct kvm_msr_entry){ .index = b.e[i].index,
							   .data = vcpu->msrs.clone[i] };
	if (!n)
		return 0;
	b.hdr.nmsrs = n;
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_MSRS, &b, err);
	if (ret >= 0 && (uint32_t)ret != n)
		return err__set(err, -EINVAL, "KVM_SET_MSRS: MSR 0x%x could not be put back",
				b.e[ret].index);
	*reverted = n;
	return ret < 0 ? ret : 0;
}
