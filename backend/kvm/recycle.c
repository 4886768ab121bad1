/* SPDX-License-Identifier: MIT */
/*
 * Recycling a KVM sandbox: back to where vm__clone_into() left it, in the
 * same VM, vCPU and memory slot (vm.h, vm__recycle).
 *
 * Why pagemap and copies: a clone's RAM is mem.img mapped MAP_PRIVATE, so
 * every page written since -- by the guest through KVM, or by us serving a
 * hypercall (stdin, randomness, MEMSET/MEMCPY) -- is an anonymous page of
 * ours, and /proc/self/pagemap lists exactly those.  KVM's dirty log would
 * see only the guest's own writes, and write-protects every page it
 * reports, so each first write of the next run faults.  Copying the
 * template's bytes into those pages (instead of dropping them) keeps them
 * mapped and writable, in our page tables and in KVM's shadow or nested
 * ones: the next run takes no fault for them.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "backend/kvm/kvm.h"
#include "backend/kvm/vcpu_state.h"
#include "backend/kvm/vm.h"
#include "snapshot/snapshot.h"

#define PAGE 4096ULL
#define PTE_P (1ULL << 0)
#define PTE_PS (1ULL << 7)
#define PTE_AD ((1ULL << 5) | (1ULL << 6)) /* accessed, dirty */
#define PTE_ADDR 0x000ffffffffff000ULL

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int pt_add(struct vm *vm, uint64_t gpa, struct sb_err *err)
{
	uint32_t i = vm->n_pt_pages;

	if (i == VM_PT_PAGES_MAX)
		return err__set(err, -E2BIG, "the template has more than %d page-table pages",
				VM_PT_PAGES_MAX);
	while (i > 0 && vm->pt_pages[i - 1] > gpa) {
		vm->pt_pages[i] = vm->pt_pages[i - 1];
		i--;
	}
	vm->pt_pages[i] = gpa;
	vm->n_pt_pages++;
	return 0;
}

/* Walk the template's 4-level page tables from its CR3, in the saved
 * image, and note every table page (the guest's identity map: a handful). */
static int pt_walk(struct vm *vm, uint64_t table, int level, struct sb_err *err)
{
	const uint64_t *e;
	int ret;

	if (table % PAGE || table >= vm->pristine.mem_size)
		return err__set(err, -EINVAL, "the template's page tables lie outside its RAM (0x%llx)",
				(unsigned long long)table);
	ret = pt_add(vm, table, err);
	e = snap_pristine__page(&vm->pristine, table);
	for (int i = 0; e && ret == 0 && i < 512; i++) {
		if (!(e[i] & PTE_P) || level == 1 || (level < 4 && (e[i] & PTE_PS)))
			continue; /* absent, or a page (not a table) */
		ret = pt_walk(vm, e[i] & PTE_ADDR, level - 1, err);
	}
	return ret;
}

static bool is_pt_page(const struct vm *vm, uint64_t gpa)
{
	for (uint32_t i = 0; i < vm->n_pt_pages && vm->pt_pages[i] <= gpa; i++)
		if (vm->pt_pages[i] == gpa)
			return true;
	return false;
}

/* The first time: our pagemap, the template's pages, its page tables. */
static int recycle__open(struct vm *vm, const struct snapshot *snap, struct sb_err *err)
{
	int ret;

	if (vm->written.fd < 0) {
		ret = written__open(&vm->written, 0, err);
		if (ret < 0)
			return ret;
	}
	if (vm->pristine.img)
		return 0;
	ret = snap_pristine__open(&vm->pristine, snap, err);
	if (ret < 0)
		return ret;
	vm->n_pt_pages = 0;
	ret = pt_walk(vm, snap->vcpu.sregs.cr3 & PTE_ADDR, 4, err);
	if (ret < 0)
		snap_pristine__close(&vm->pristine); /* walked again next time */
	return ret;
}

/* The guest's page tables are written by the CPU (or KVM's walker) setting
 * accessed and dirty bits; anything else means they were changed, and KVM's
 * shadow MMU, which follows the guest's writes, would not follow our copy. */
static int pt_check(const uint64_t *now, const uint64_t *saved, uint64_t gpa, struct sb_err *err)
{
	for (int i = 0; i < 512; i++) {
		uint64_t s = saved ? saved[i] : 0;
		if ((now[i] ^ s) & ~PTE_AD)
			return err__set(err, -EPERM,
					"the sandbox changed its page tables (gpa 0x%llx entry %d): "
					"not recycled", (unsigned long long)gpa, i);
	}
	return 0;
}

/* Every written page back to the template's content. */
static int recycle__memory(struct vm *vm, struct reset_stats *st, struct sb_err *err)
{
	uint8_t *host = vm->m.ram.host;
	double t0 = now_us(), t1;
	int ret = written__scan(&vm->written, (uint64_t)(uintptr_t)host,
				(uint64_t)(uintptr_t)host + vm->m.ram.size, err);

	t1 = now_us();
	st->scan_us = t1 - t0;
	if (ret < 0)
		return ret;
	for (size_t r = 0; r < vm->written.n; r++) {
		uint64_t lo = vm->written.r[r].start - (uint64_t)(uintptr_t)host;
		uint64_t hi = vm->written.r[r].end - (uint64_t)(uintptr_t)host;

		if (hi > vm->m.ram.size || lo > hi)
			return err__set(err, -EIO, "page scan returned a range outside guest RAM");
		for (uint64_t gpa = lo; gpa < hi; gpa += PAGE) {
			const void *src = snap_pristine__page(&vm->pristine, gpa);

			if (is_pt_page(vm, gpa) && (ret = pt_check((const uint64_t *)(host + gpa),
								   src, gpa, err)) < 0)
				return ret;
			if (src)
				memcpy(host + gpa, src, PAGE);
			else
				memset(host + gpa, 0, PAGE);
		}
		st->pages += (hi - lo) / PAGE;
	}
	st->ranges = vm->written.n;
	st->copy_us = now_us() - t1;
	return 0;
}

/* What the run left in kvm_run and our own counters, as a new vCPU has it. */
static void recycle__run_page(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	memset(run, 0, offsetof(struct kvm_run, kvm_valid_regs));
	run->kvm_valid_regs = 0;
	run->kvm_dirty_regs = 0;
	vcpu->exits = 0;
	vcpu->io_ignored = 0;
}

int vm__recycle(struct vm *vm, const struct snapshot *snap, struct reset_stats *st,
		struct sb_err *err)
{
	uint32_t reverted;
	int ret;

	if (!vm->snap_id[0] || strcmp(vm->snap_id, snap->id))
		return err__set(err, -EINVAL,
				"a VM is recycled only for the template it was cloned from");
	ret = recycle__open(vm, snap, err);
	/* the exit hypercall's MMIO exit is still open in KVM: finish it
	 * before its registers are replaced */
	if (ret == 0)
		ret = vcpu__complete_exit(&vm->vcpu, err);
	if (ret == 0)
		ret = recycle__memory(vm, st, err);
	if (ret == 0)
		ret = snap_vcpu__restore_state(&vm->vcpu, &snap->vcpu, err);
	if (ret == 0)
		ret = vcpu_msrs__revert(&vm->vcpu, &reverted, err);
	if (ret < 0)
		return ret;
	recycle__run_page(&vm->vcpu);
	return 0;
}
