/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/kvm/kvm.h"
#include "backend/kvm/vcpu.h"
#include "backend/kvm/vm.h"
#include "snapbox_abi.h"

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define CR4_OSXSAVE (1ULL << 18)
#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define CPUID_1_ECX_XSAVE (1U << 26)
#define CPUID_1_ECX_AVX (1U << 28)
#define XCR0_X87 (1ULL << 0)
#define XCR0_SSE (1ULL << 1)
#define XCR0_AVX (1ULL << 2)

/* Internal run-loop results (>= 0: the run is over with that status). */
#define VCPU_CONTINUE (-1000)

int vcpu__create(struct vcpu *vcpu, struct vm *vm, int id, struct sb_err *err)
{
	int ret, size;
	void *run;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->fd = -1;
	vcpu->vm = vm;
	vcpu->id = id;
	size = KVM_IOCTL(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, (void *)0, err);
	if (size < 0)
		return size;
	ret = KVM_IOCTL(vm->vm_fd, KVM_CREATE_VCPU, (void *)(long)id, err);
	if (ret < 0)
		return ret;
	vcpu->fd = ret;
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		ret = err__errno(err, "mmap of kvm_run (vCPU %d)", id);
		close(vcpu->fd);
		vcpu->fd = -1;
		return ret;
	}
	vcpu->run = run;
	vcpu->run_size = (size_t)size;
	return 0;
}

void vcpu__destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	free(vcpu->cpuid);
	vcpu->cpuid = NULL;
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/* ---- initial state ------------------------------------------------------ */

/* KVM_SET_CPUID2 with what KVM supports; returns the XCR0 to use (0: no xsave). */
static int vcpu__set_cpuid(struct vcpu *vcpu, uint64_t *xcr0, struct sb_err *err)
{
	struct kvm_cpuid2 *cpuid;
	struct kvm_cpuid_entry2 *leaf1, *leafd;
	int ret;

	ret = kvm__supported_cpuid(vcpu->vm->kvm_fd, &cpuid, err);
	if (ret < 0)
		return ret;
	*xcr0 = 0;
	leaf1 = kvm__cpuid_find(cpuid, 1, 0);
	leafd = kvm__cpuid_find(cpuid, 0xd, 0);
	if (leaf1 && (leaf1->ecx & CPUID_1_ECX_XSAVE)) {
		*xcr0 = XCR0_X87 | XCR0_SSE;
		if ((leaf1->ecx & CPUID_1_ECX_AVX) && leafd && (leafd->eax & XCR0_AVX))
			*xcr0 |= XCR0_AVX;
	}
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_CPUID2, cpuid, err);
	free(vcpu->cpuid);
	vcpu->cpuid = cpuid;
	return ret < 0 ? ret : 0;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static int vcpu__set_sregs(struct vcpu *vcpu, bool xsave, struct sb_err *err)
{
	struct kvm_sregs s;
	int ret;

	ret = KVM_IOCTL(vcpu->fd, KVM_GET_SREGS, &s, err);
	if (ret < 0)
		return ret;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = SB_PML4_GPA;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (xsave ? CR4_OSXSAVE : 0);
	s.efer = EFER_LME | EFER_LMA | EFER_SCE;
	seg_flat(&s.cs, SB_SEL_KCODE, 0xb, true);
	seg_flat(&s.ds, SB_SEL_KDATA, 0x3, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = 0;
	s.gdt.limit = 0;
	s.idt.base = 0;
	s.idt.limit = 0;
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_SREGS, &s, err);
	return ret < 0 ? ret : 0;
}

static int vcpu__set_xcr0(struct vcpu *vcpu, uint64_t xcr0, struct sb_err *err)
{
	struct kvm_xcrs xcrs;
	int ret;

	memset(&xcrs, 0, sizeof(xcrs));
	xcrs.nr_xcrs = 1;
	xcrs.xcrs[0].xcr = 0;
	xcrs.xcrs[0].value = xcr0;
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_XCRS, &xcrs, err);
	return ret < 0 ? ret : 0;
}

static int vcpu__set_regs(struct vcpu *vcpu, uint64_t entry, uint64_t arg, struct sb_err *err)
{
	struct kvm_regs r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.rip = entry;
	r.rdi = arg;
	r.rsp = 0;
	r.rflags = 2;
	ret = KVM_IOCTL(vcpu->fd, KVM_SET_REGS, &r, err);
	return ret < 0 ? ret : 0;
}

int vcpu__setup_long_mode(struct vcpu *vcpu, uint64_t entry, uint64_t arg, struct sb_err *err)
{
	uint64_t xcr0;
	int ret;

	ret = vcpu__set_cpuid(vcpu, &xcr0, err);
	if (!ret)
		ret = vcpu__set_sregs(vcpu, xcr0 != 0, err);
	if (!ret && xcr0)
		ret = vcpu__set_xcr0(vcpu, xcr0, err);
	if (!ret)
		ret = vcpu__set_regs(vcpu, entry, arg, err);
	return ret;
}

/* ---- exits -------------------------------------------------------------- */

/* Paused in a call: a stdin read is pending (hc.st); another call (SLEEP)
 * is the machine's to do again first (machine.paused, DEFERRED). */
static int vcpu__paused(struct vm *vm)
{
	struct hc_ctx *hc = &vm->m.hc;

	if (hc->deferred_nr) {
		vm->m.paused = (struct machine_paused){ MACHINE_PAUSED_DEFERRED, hc->deferred_nr,
							hc->deferred_gpa };
		hc->deferred_nr = 0;
	}
	return MACHINE_PAUSED;
}

static int vcpu__io_hypercall(struct vcpu *vcpu, unsigned nr, struct sb_err *err)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;
	uint32_t gpa;
	int ret;

	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 || run->io.count != 1)
		return err__set(err, -EINVAL,
				"guest misused hypercall port 0x%x (%s of %u x %u bytes; expected one 4-byte out)",
				run->io.port, run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
				run->io.count, run->io.size);
	memcpy(&gpa, (uint8_t *)run + run->io.data_offset, sizeof(gpa));
	ret = hypercall__handle(&vm->m.hc, nr, gpa, err);
	if (ret == HC_CONTINUE)
		return VCPU_CONTINUE;
	if (ret == HC_STOP)
		return vm->m.hc.status;
	if (ret == HC_READY)
		return VCPU_READY;
	if (ret == HC_PAUSED)
		return vcpu__paused(vm);
	return ret;
}

static uint64_t vcpu__rip(struct vcpu *vcpu)
{
	struct kvm_regs r;

	return kvm__ioctl_raw(vcpu->fd, KVM_GET_REGS, &r) < 0 ? 0 : r.rip;
}

/* A store to a hypercall MMIO slot is a hypercall (from user or kernel
 * mode); anything else is a guest touching memory that is not there. */
static int vcpu__mmio(struct vcpu *vcpu, struct sb_err *err)
{
	struct kvm_run *run = vcpu->run;
	uint64_t gpa = 0;
	unsigned nr;

	if (run->mmio.is_write && (run->mmio.len == 8 || run->mmio.len == 4) &&
	    hypercall__mmio(vcpu->vm->m.ram.size, run->mmio.phys_addr, &nr)) {
		int ret;
		memcpy(&gpa, run->mmio.data, run->mmio.len);
		ret = hypercall__handle(&vcpu->vm->m.hc, nr, gpa, err);
		if (ret == HC_CONTINUE)
			return VCPU_CONTINUE;
		if (ret == HC_STOP)
			return vcpu->vm->m.hc.status;
		if (ret == HC_READY)
			return VCPU_READY;
		if (ret == HC_PAUSED)
			return vcpu__paused(vcpu->vm);
		return ret;
	}
	return err__set(err, -EFAULT,
			"guest touched unmapped memory: %s of %u bytes at gpa 0x%llx (rip 0x%llx)",
			run->mmio.is_write ? "write" : "read", run->mmio.len,
			(unsigned long long)run->mmio.phys_addr,
			(unsigned long long)vcpu__rip(vcpu));
}

static int vcpu__io(struct vcpu *vcpu, struct sb_err *err)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	uint16_t port = run->io.port;
	unsigned nr;

	if (hypercall__port(port, &nr))
		return vcpu__io_hypercall(vcpu, nr, err);
	if (serial__owns(&vm->m.serial, port) && run->io.size == 1) {
		for (uint32_t i = 0; i < run->io.count; i++)
			serial__io(&vm->m.serial, port, out, data + i);
		return VCPU_CONTINUE;
	}
	vcpu->io_ignored++;
	if (!out)
		memset(data, 0xff, (size_t)run->io.size * run->io.count);
	return VCPU_CONTINUE;
}

/* Registers for a crash report. */
static void vcpu__dump(struct vcpu *vcpu, char *buf, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (kvm__ioctl_raw(vcpu->fd, KVM_GET_REGS, &r) < 0 ||
	    kvm__ioctl_raw(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(buf, len, "registers unavailable");
		return;
	}
	snprintf(buf, len, "rip 0x%llx rsp 0x%llx cr2 0x%llx cr3 0x%llx cs 0x%x",
		 (unsigned long long)r.rip, (unsigned long long)r.rsp,
		 (unsigned long long)s.cr2, (unsigned long long)s.cr3, s.cs.selector);
}


static int vcpu__internal_error(struct vcpu *vcpu, struct sb_err *err)
{
	struct kvm_run *run = vcpu->run;
	unsigned long long rip = vcpu__rip(vcpu);

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
		return err__set(err, -EIO,
				"KVM could not emulate a guest kernel instruction at rip 0x%llx "
				"(KVM_EXIT_INTERNAL_ERROR, emulation failure, suberror 1): the guest "
				"kernel must not use SSE/AVX, popcnt, xsave, int3 or clac/stac", rip);
	return err__set(err, -EIO, "KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror %u) at rip 0x%llx",
			run->internal.suberror, rip);
}

static int vcpu__exit(struct vcpu *vcpu, struct sb_err *err)
{
	struct kvm_run *run = vcpu->run;
	char regs[160];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return vcpu__io(vcpu, err);
	case KVM_EXIT_HLT:
		return err__set(err, -EIO, "guest halted (hlt at rip 0x%llx)",
				(unsigned long long)vcpu__rip(vcpu));
	case KVM_EXIT_SHUTDOWN:
		vcpu__dump(vcpu, regs, sizeof(regs));
		return err__set(err, -EIO, "guest kernel crashed (triple fault): %s", regs);
	case KVM_EXIT_INTERNAL_ERROR:
		return vcpu__internal_error(vcpu, err);
	case KVM_EXIT_FAIL_ENTRY:
		return err__set(err, -EIO, "KVM_RUN failed to enter the guest (KVM_EXIT_FAIL_ENTRY, reason 0x%llx)",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_MMIO:
		return vcpu__mmio(vcpu, err);
	case KVM_EXIT_INTR:
		return VCPU_CONTINUE;
	}
	return err__set(err, -EIO, "unexpected KVM exit reason %u", run->exit_reason);
}

static int vcpu__timed_out(struct vcpu *vcpu, struct sb_err *err)
{
	uint64_t ns = vcpu->vm->m.timeout.ns;

	if (ns % 1000000000ULL)
		err__set(err, 0, "timed out after %.3g s", (double)ns / 1e9);
	else
		err__set(err, 0, "timed out after %llu s", (unsigned long long)(ns / 1000000000ULL));
	return 124;
}

int vcpu__run(struct vcpu *vcpu, struct sb_err *err)
{
	struct timeout *t = &vcpu->vm->m.timeout;
	struct machine *m = &vcpu->vm->m;

	err__clear(err);
	if (m->paused.flags & MACHINE_PAUSED_DEFERRED) {
		/* the call it was paused in (here, or at a migration's source):
		 * its I/O exit is complete, the guest reads its result next */
		struct machine_paused p = m->paused;
		int ret;

		memset(&m->paused, 0, sizeof(m->paused));
		ret = hypercall__handle(&m->hc, p.nr, p.gpa, err);
		if (ret == HC_PAUSED)
			return vcpu__paused(vcpu->vm);
		if (ret == -ETIMEDOUT)
			return vcpu__timed_out(vcpu, err);
		if (ret == HC_STOP)
			return m->hc.status;
		if (ret != HC_CONTINUE)
			return ret < 0 ? ret : err__set(err, -EPROTO, "a deferred call %u ended with %d",
							p.nr, ret);
	}
	for (;;) {
		int ret = kvm__ioctl_raw(vcpu->fd, KVM_RUN, NULL);

		if (ret < 0) {
			if (ret != -EINTR && ret != -EAGAIN)
				return err__set(err, ret, "KVM_RUN: %s", strerror(-ret));
			if (timeout__expired(t))
				return vcpu__timed_out(vcpu, err);
			if (__atomic_load_n(&vcpu->vm->m.pause, __ATOMIC_ACQUIRE))
				return MACHINE_PAUSED; /* between two exits: nothing pending */
			if (vcpu->vm->m.hc.ctl_poll) /* a resize request (resize.h) */
				vcpu->vm->m.hc.ctl_poll(vcpu->vm->m.hc.ctl_arg);
			continue;
		}
		vcpu->exits++;
		ret = vcpu__exit(vcpu, err);
		if (ret == -ETIMEDOUT)
			return vcpu__timed_out(vcpu, err);
		if (ret != VCPU_CONTINUE)
			return ret;
	}
}

int vcpu__complete_exit(struct vcpu *vcpu, struct sb_err *err)
{
	int ret;

	vcpu->run->immediate_exit = 1;
	ret = kvm__ioctl_raw(vcpu->fd, KVM_RUN, NULL);
	vcpu->run->immediate_exit = 0;
	if (ret == -EINTR)
		return 0;
	return err__set(err, ret < 0 ? ret : -EIO,
			"KVM_RUN with immediate_exit: expected EINTR, got %d", ret);
}

int vcpu__set_base(void *arg, unsigned which, uint64_t base)
{
	struct vcpu *vcpu = arg;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = which ? 0xc0000101 : 0xc0000100; /* GS_BASE / FS_BASE */
	m.e.data = base;
	return kvm__ioctl_raw(vcpu->fd, KVM_SET_MSRS, &m) == 1 ? 0 : -EINVAL;
}
