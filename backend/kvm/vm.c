/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend/kvm/kvm.h"
#include "backend/kvm/vcpu_state.h"
#include "backend/kvm/vm.h"
#include "backend/proc/jail.h"
#include "snapshot/snapshot.h"
#include "sbtypes.h"
#include "pagetable.h"
#include "snapbox_abi.h"

/* Three pages just below 4 GiB, the usual spot (needed by VMX only). */
#define VM_TSS_ADDR 0xfffbd000UL

static int vm__set_memory(struct vm *vm, struct sb_err *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->m.ram.size,
		.userspace_addr = (uint64_t)(uintptr_t)vm->m.ram.host,
	};
	int ret = KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, err);

	return ret < 0 ? ret : 0;
}

/* Slot 1, the layer window: window bytes at SB_IMG_GPA, read-only, over a
 * fresh PROT_READ reservation (the old one, if any, goes). */
static int vm__set_img_window(struct vm *vm, uint64_t window, struct sb_err *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = SB_IMG_GPA,
	};
	void *p;
	int ret;

	if (kvm__ioctl_raw(vm->kvm_fd, KVM_CHECK_EXTENSION, (void *)KVM_CAP_READONLY_MEM) <= 0)
		return err__set(err, -ENOTSUP, "this KVM has no read-only memory slots "
				"(KVM_CAP_READONLY_MEM), which the root file system's layers need");
	if (vm->img_host) { /* a size cannot change: delete the slot, then make it anew */
		region.memory_size = 0;
		ret = KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, err);
		if (ret < 0)
			return ret;
		munmap(vm->img_host, vm->img_window);
		vm->img_host = NULL;
		vm->img_window = 0;
	}
	p = mmap(NULL, window, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err__errno(err, "reserving %llu MiB for the layer window",
				  (unsigned long long)(window >> 20));
	vm->img_host = p;
	vm->img_window = window;
	region.memory_size = window;
	region.userspace_addr = (uint64_t)(uintptr_t)p;
	ret = KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, err);
	if (ret < 0)
		return ret;
	/* the hypercalls' MEMCPY may read it */
	vm->m.mem.ro_gpa = SB_IMG_GPA;
	vm->m.mem.ro_size = window;
	vm->m.mem.ro_host = p;
	return 0;
}

/* Map the layer images (fds) where l says, growing the window if needed. */
static int vm__map_layers(struct vm *vm, const int *fds, const struct machine_layer *l, unsigned n,
			  struct sb_err *err)
{
	uint64_t span = 0;
	int ret;

	for (unsigned i = 0; i < n; i++) {
		if (l[i].gpa < SB_IMG_GPA || l[i].gpa % SB_PAGE_2M || l[i].size % 4096 ||
		    !sb_range_in(l[i].gpa, l[i].size, SB_IMG_GPA, SB_IMG_GPA + SB_IMG_MAX))
			return err__set(err, -EINVAL, "layer %u at %#llx+%llu is outside the layer window", i,
					(unsigned long long)l[i].gpa, (unsigned long long)l[i].size);
		if (l[i].gpa + l[i].size - SB_IMG_GPA > span)
			span = l[i].gpa + l[i].size - SB_IMG_GPA;
	}
	if (span > vm->img_window) {
		uint64_t w = (span + VM_IMG_WINDOW_MIN - 1) & ~(VM_IMG_WINDOW_MIN - 1);

		ret = vm__set_img_window(vm, w, err);
		if (ret < 0)
			return ret;
	}
	for (unsigned i = 0; i < n; i++) {
		void *at = vm->img_host + (l[i].gpa - SB_IMG_GPA);

		if (mmap(at, l[i].size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fds[i], 0) != at)
			return err__errno(err, "mapping root file system layer %u into the VM", i);
	}
	return 0;
}

static void vm__zero(struct vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->m.be = &kvm_backend;
	vm->kvm_fd = vm->vm_fd = vm->vcpu.fd = -1;
	vm->m.ram.fd = -1;
	vm->written.fd = -1;
}

/* With vm->kvm_fd open and vm->m.ram mapped: the VM, its memory, its vCPU. */
static int vm__create_on_ram(struct vm *vm, struct sb_err *err)
{
	int ret = KVM_IOCTL(vm->kvm_fd, KVM_CREATE_VM, (void *)0, err);

	if (ret < 0)
		return ret;
	vm->vm_fd = ret;
	ret = vm__set_memory(vm, err); /* first, before anything else touches the VM */
	if (ret == 0)
		ret = vm__set_img_window(vm, VM_IMG_WINDOW_MIN, err);
	if (ret < 0)
		return ret;
	(void)kvm__ioctl_raw(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)VM_TSS_ADDR);
	ret = vcpu__create(&vm->vcpu, vm, 0, err);
	if (ret < 0)
		return ret;
	/* for recycling, off the request path; without it a clone still runs,
	 * only its reset is refused (vcpu_msrs__revert says why) */
	(void)vcpu_msrs__list(&vm->vcpu, &vm->vcpu.msrs.why);
	serial__init(&vm->m.serial, SB_COM1_PORT, 2);
	guest_mem__from_ram(&vm->m.mem, &vm->m.ram);
	vm->m.mem.ro_gpa = SB_IMG_GPA; /* the layer window: MEMCPY may read it */
	vm->m.mem.ro_size = vm->img_window;
	vm->m.mem.ro_host = vm->img_host;
	hypercall__init(&vm->m.hc, &vm->m.mem, &vm->m.timeout, NULL);
	vm->m.hc.set_base = vcpu__set_base;
	vm->m.hc.set_base_arg = &vm->vcpu;
	if (kvm__is_pvm())
		vm->m.boot_flags |= SB_BOOT_USER_SYSCALLS;
	return 0;
}

int vm__create(struct vm *vm, uint64_t mem_size, enum ram_backend backend, struct sb_err *err)
{
	int ret;

	vm__zero(vm);
	ret = kvm__open(err);
	if (ret < 0)
		goto fail;
	vm->kvm_fd = ret;
	ret = ram__create(&vm->m.ram, backend, mem_size, err);
	if (ret < 0)
		goto fail;
	ret = vm__create_on_ram(vm, err);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	vm__destroy(vm);
	return ret;
}

int vm__create_shell(struct vm *vm, uint64_t mem_size, struct sb_err *err)
{
	return vm__create(vm, mem_size, RAM_RESERVED, err);
}

int vm__clone_into(struct vm *vm, const struct snapshot *snap, struct sb_err *err)
{
	int ret, fd, layer_fd[SB_MAX_LAYERS];

	if (snap->hdr.backend != SNAP_BACKEND_KVM)
		return err__set(err, -EPROTOTYPE, "the template was made by the %s backend, not kvm",
				snapshot__backend_name(snap->hdr.backend));
	if (vm->m.ram.size != snap->hdr.mem_size)
		return err__set(err, -EINVAL, "VM shell has %llu MiB of RAM, the template %llu MiB",
				(unsigned long long)(vm->m.ram.size >> 20),
				(unsigned long long)(snap->hdr.mem_size >> 20));
	ret = machine__map_snapshot_layers(&vm->m, snap, layer_fd, err);
	if (ret < 0)
		return ret;
	fd = snapshot__open_mem(snap, err);
	ret = fd < 0 ? fd : ram__fill_from_file(&vm->m.ram, fd, err);
	if (fd >= 0)
		close(fd);
	/* the layers' pages over mem.img's holes, before the vCPU runs */
	if (ret == 0)
		ret = ram__map_overlays(&vm->m.ram, snap->runs, snap->n_runs, layer_fd,
					snap->layers.n_layers, err);
	for (unsigned i = 0; i < snap->layers.n_layers; i++)
		close(layer_fd[i]);
	if (ret == 0)
		ret = snap_vcpu__restore(&vm->vcpu, snap->cpuid, snap->nent, &snap->vcpu, err);
	if (ret < 0)
		return ret;
	if (vm->vcpu.msrs.n) /* what a recycled vCPU returns to (else no recycling) */
		(void)vcpu_msrs__note(&vm->vcpu, &vm->vcpu.msrs.why);
	vm->m.serial.st = snap->serial;
	vm->m.hc.st = snap->hc;
	memcpy(vm->snap_id, snap->id, sizeof(vm->snap_id));
	hypercall__draw_ahead(&vm->m.hc); /* before the request */
	return 0;
}

int vm__create_clone(struct vm *vm, const struct snapshot *snap, struct sb_err *err)
{
	int ret = vm__create_shell(vm, snap->hdr.mem_size, err);

	if (ret == 0)
		ret = vm__clone_into(vm, snap, err);
	if (ret < 0)
		vm__destroy(vm);
	return ret;
}

#if !defined(__SANITIZE_ADDRESS__)
static int vm__reaper(void *arg)
{
	/* our copies of the caller's stdio must not hold its pipes open */
	close(0);
	close(1);
	close(2);
	vm__destroy(arg);
	_exit(0);
}
#endif

void vm__destroy_detached(struct vm *vm)
{
#if defined(__SANITIZE_ADDRESS__)
	vm__destroy(vm); /* sanitizers do not follow raw clone(2) children */
	free(vm);
#else
	size_t stack = 64 << 10;
	char *st = malloc(stack);

	/* CLONE_VM: the child shares our address space, so our exit does not
	 * tear down the guest's mappings either; it does all of it and exits.
	 * It must not touch the heap (malloc does not expect another process
	 * in it while our exit runs destructors), so free what needs freeing
	 * here first; the rest is closing descriptors and unmapping. */
	free(vm->vcpu.cpuid);
	vm->vcpu.cpuid = NULL;
	written__close(&vm->written);
	if (vm->cpu_jail) { /* we leave the cgroup, not the reaper */
		jail__leave_self(vm->cpu_jail);
		free(vm->cpu_jail);
		vm->cpu_jail = NULL;
	}
	if (!st || clone(vm__reaper, st + stack, CLONE_VM, vm) < 0) {
		vm__destroy(vm);
		free(vm);
		free(st);
	}
#endif
}

void vm__destroy(struct vm *vm)
{
	timeout__stop(&vm->m.timeout);
	vcpu__destroy(&vm->vcpu);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	ram__destroy(&vm->m.ram);
	written__close(&vm->written);
	snap_pristine__close(&vm->pristine);
	if (vm->img_host)
		munmap(vm->img_host, vm->img_window);
	vm->img_host = NULL;
	if (vm->hot_host)
		munmap(vm->hot_host, SB_HOT_MAX);
	vm->hot_host = NULL;
	vm->hot_size = 0;
	if (vm->cpu_jail) {
		jail__leave_self(vm->cpu_jail);
		free(vm->cpu_jail);
		vm->cpu_jail = NULL;
	}
	vm->img_window = 0;
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

/* ---- memory hotplug (guest ABI 5) --------------------------------------- */

/* The first grow: slot 2 over the whole window, and the guest's page tables
 * (host-built, in its RAM) map the window user read-write with 2 MiB pages
 * from the page directories at SB_HOT_PD_GPA.  Entries go from not present
 * to present, so no guest TLB holds them. */
static int vm__hot_window(struct vm *vm, struct sb_err *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = 2, .guest_phys_addr = SB_HOT_GPA, .memory_size = SB_HOT_MAX,
	};
	uint64_t n_pd = SB_HOT_MAX >> 30, first = SB_HOT_GPA >> 30;
	uint64_t *pdpt = ram__gpa_to_host(&vm->m.ram, SB_PDPT_GPA, 4096);
	uint64_t *pd = ram__gpa_to_host(&vm->m.ram, SB_HOT_PD_GPA, n_pd * 4096);
	void *p;
	int ret;

	if (!pdpt || !pd)
		return err__set(err, -EINVAL, "the sandbox's RAM holds no page tables for the hot window");
	p = mmap(NULL, SB_HOT_MAX, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err__errno(err, "reserving %llu MiB for the hot window",
				  (unsigned long long)(SB_HOT_MAX >> 20));
	region.userspace_addr = (uint64_t)(uintptr_t)p;
	ret = KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, err);
	if (ret < 0) {
		munmap(p, SB_HOT_MAX);
		return ret;
	}
	vm->hot_host = p;
	for (uint64_t i = 0; i < n_pd * 512; i++)
		pd[i] = (SB_HOT_GPA + i * SB_PAGE_2M) | SB_PTE_P | SB_PTE_RW | SB_PTE_US | SB_PTE_PS;
	for (uint64_t i = 0; i < n_pd; i++)
		pdpt[first + i] = (SB_HOT_PD_GPA + i * 4096) | SB_PTE_P | SB_PTE_RW | SB_PTE_US;
	vm->m.mem.hot_host = p;
	return 0;
}

static int kvm_be__hot_set(struct machine *m, uint64_t size, struct sb_err *err)
{
	struct vm *vm = vm__of(m);
	int ret;

	if (size > SB_HOT_MAX || size % SB_PAGE_2M)
		return err__set(err, -EINVAL, "hot window of %llu bytes", (unsigned long long)size);
	if (!vm->hot_host && (ret = vm__hot_window(vm, err)) < 0)
		return ret;
	if (size > vm->hot_size &&
	    mprotect(vm->hot_host + vm->hot_size, size - vm->hot_size, PROT_READ | PROT_WRITE) < 0)
		return err__errno(err, "making %llu MiB of the hot window usable",
				  (unsigned long long)((size - vm->hot_size) >> 20));
	if (size < vm->hot_size) {
		/* the guest vacated it: its pages go, then the guest's access */
		m->mem.hot_size = size;
		if (madvise(vm->hot_host + size, vm->hot_size - size, MADV_DONTNEED) < 0 ||
		    mprotect(vm->hot_host + size, vm->hot_size - size, PROT_NONE) < 0)
			return err__errno(err, "taking back %llu MiB of the hot window",
					  (unsigned long long)((vm->hot_size - size) >> 20));
	}
	vm->hot_size = size;
	m->mem.hot_size = size;
	return 0;
}

/* RAM reverts to the template's page (MAP_PRIVATE of mem.img), the hot
 * window to zero. */
static uint64_t kvm_be__discard(struct machine *m, uint64_t gpa, uint64_t len)
{
	struct vm *vm = vm__of(m);
	void *p = gpa >= SB_HOT_GPA ? (vm->hot_host ? vm->hot_host + (gpa - SB_HOT_GPA) : NULL)
				    : ram__gpa_to_host(&m->ram, gpa, len);

	if (!p || (gpa >= SB_HOT_GPA && gpa - SB_HOT_GPA + len > vm->hot_size))
		return 0;
	return madvise(p, len, MADV_DONTNEED) == 0 ? SB_MEM_RANGE_DONE : 0;
}

/* The VM runs in this process (a pool worker serves one sandbox): the
 * process joins a cgroup of its own (root; cgroup v2 cpu.max or v1
 * cpu.cfs_quota_us, as the proc jail's) at the first change. */
static int kvm_be__set_cpu(struct machine *m, uint64_t quota_us, uint64_t period_us,
			   struct sb_err *err)
{
	struct vm *vm = vm__of(m);
	int ret;

	if (!vm->cpu_jail) {
		struct jail_config jc;
		struct jail *j = calloc(1, sizeof(*j));

		if (!j)
			return err__set(err, -ENOMEM, "out of memory");
		jail__default_config(&jc);
		jc.layers = JAIL_CGROUP;
		jc.cpu_max_pct = 100;
		ret = jail__prepare(j, &jc, err);
		if (ret == 0 && (!(j->layers & JAIL_CGROUP) || !j->cfg.cpu_max_pct))
			ret = err__set(err, -ENOTSUP, "no cgroup for this sandbox's CPU share: %s",
				       j->why_not[0] ? j->why_not : "no writable cpu controller here");
		if (ret == 0)
			ret = jail__enter_self(j, err);
		if (ret < 0) {
			jail__cleanup(j);
			free(j);
			return ret;
		}
		vm->cpu_jail = j;
	}
	return jail__set_cpu(vm->cpu_jail, quota_us, period_us, err);
}

/* ---- the kvm backend ---------------------------------------------------- */

static bool kvm_be__available(char *why, size_t len)
{
	struct sb_err err = { "" };
	int fd = kvm__open(&err);

	if (fd < 0) {
		snprintf(why, len, "%s", err.msg);
		return false;
	}
	close(fd);
	snprintf(why, len, "%s", kvm__is_pvm() ? "kvm_pvm (PVM, no hardware virtualization)"
				 : access("/sys/module/kvm_intel", F_OK) == 0 ? "vmx (kvm_intel)"
				 : access("/sys/module/kvm_amd", F_OK) == 0 ? "svm (kvm_amd)"
				 : "hardware virtualization");
	return true;
}

static int kvm_be__create(struct machine *m, uint64_t mem_size, enum ram_backend ram,
			  struct sb_err *err)
{
	return vm__create(vm__of(m), mem_size, ram, err);
}

static int kvm_be__map_layers(struct machine *m, const int *fds, const struct machine_layer *l,
			      unsigned n, struct sb_err *err)
{
	return vm__map_layers(vm__of(m), fds, l, n, err);
}

static int kvm_be__boot(struct machine *m, uint64_t entry, uint64_t arg, struct sb_err *err)
{
	return vcpu__setup_long_mode(&vm__of(m)->vcpu, entry, arg, err);
}

static int kvm_be__check(const struct snapshot *snap, struct sb_err *err)
{
	int ret, fd;

	/* Made on kvm_pvm, the guest serves system calls in a user-mode layer
	 * at LSTAR; under VMX/SVM `syscall` enters kernel mode there, and the
	 * layer would return to the program still in kernel mode.  (The other
	 * way round works: a VMX/SVM template's `ud2` trampoline takes the
	 * #UD path on kvm_pvm too.) */
	if (snap->hc.syscall_path == SB_SYSCALL_PATH_USER && !kvm__is_pvm())
		return err__set(err, -ENOTSUP,
				"template was made on kvm_pvm (its guest serves system calls in user "
				"mode) and this host's KVM is VMX/SVM: create the template again here");
	fd = kvm__open(err);
	if (fd < 0)
		return fd;
	ret = vm__check_cpuid(snap, fd, err);
	close(fd);
	return ret;
}

static int kvm_be__clone_into(struct machine *m, const struct snapshot *snap, struct sb_err *err)
{
	return vm__clone_into(vm__of(m), snap, err);
}

static int kvm_be__run(struct machine *m, struct sb_err *err)
{
	return vcpu__run(&vm__of(m)->vcpu, err);
}

/* CPUID, vCPU and VM sections; the pending I/O exit is completed first. */
static int kvm_be__save(struct machine *m, struct snap_writer *w, struct sb_err *err)
{
	struct vm *vm = vm__of(m);
	struct snap_vcpu *vcpu;
	struct snap_vm svm;
	struct snap_cpuid c = { 0 };
	size_t clen;
	int ret = vcpu__complete_exit(&vm->vcpu, err);

	if (ret < 0)
		return ret;
	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return err__set(err, -ENOMEM, "out of memory");
	ret = snap_vcpu__save(&vm->vcpu, vcpu, err);
	memset(&svm, 0, sizeof(svm));
	svm.n_vcpus = 1;
	if (!ret && kvm__ioctl_raw(vm->vm_fd, KVM_GET_CLOCK, &svm.clock) < 0)
		memset(&svm.clock, 0, sizeof(svm.clock)); /* optional: our guest reads the host clock */
	c.nent = vm->vcpu.cpuid ? vm->vcpu.cpuid->nent : 0;
	if (!ret && (c.nent == 0 || c.nent > SNAP_CPUID_MAX))
		ret = err__set(err, -EINVAL, "vCPU has %u CPUID entries", c.nent);
	clen = c.nent * sizeof(struct kvm_cpuid_entry2);
	if (!ret) {
		snap_writer__set_cpuid_hash(w, XXH3_64bits(vm->vcpu.cpuid->entries, clen));
		ret = snap_writer__add(w, SNAP_SEC_CPUID, SNAP_CPUID_VERSION, &c, sizeof(c),
				       vm->vcpu.cpuid->entries, clen);
	}
	if (!ret)
		ret = snap_writer__add(w, SNAP_SEC_VCPU, SNAP_VCPU_VERSION, vcpu, sizeof(*vcpu), NULL, 0);
	if (!ret)
		ret = snap_writer__add(w, SNAP_SEC_VM, SNAP_VM_VERSION, &svm, sizeof(svm), NULL, 0);
	free(vcpu);
	return ret;
}

static int kvm_be__reset(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
			 struct sb_err *err)
{
	return vm__recycle(vm__of(m), snap, st, err);
}

static void kvm_be__destroy(struct machine *m)
{
	vm__destroy(vm__of(m));
}

static void kvm_be__destroy_detached(struct machine *m)
{
	vm__destroy_detached(vm__of(m));
}

const struct backend kvm_backend = {
	.name = "kvm",
	.snap_backend = SNAP_BACKEND_KVM,
	.size = sizeof(struct vm),
	.available = kvm_be__available,
	.create = kvm_be__create,
	.map_layers = kvm_be__map_layers,
	.boot = kvm_be__boot,
	.check = kvm_be__check,
	.clone_into = kvm_be__clone_into,
	.run = kvm_be__run,
	.save = kvm_be__save,
	.reset = kvm_be__reset,
	.hot_set = kvm_be__hot_set,
	.discard = kvm_be__discard,
	.set_cpu = kvm_be__set_cpu,
	.destroy = kvm_be__destroy,
	.destroy_detached = kvm_be__destroy_detached,
};
