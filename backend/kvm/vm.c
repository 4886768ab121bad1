/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "backend/kvm/kvm.h"
#include "backend/kvm/vm.h"
#include "snapshot/snapshot.h"
#include "snapbox_abi.h"

/* Three pages just below 4 GiB, the usual spot (needed by VMX only). */
#define VM_TSS_ADDR 0xfffbd000UL

static int vm__set_memory(struct vm *vm, struct sb_err *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->ram.size,
		.userspace_addr = (uint64_t)(uintptr_t)vm->ram.host,
	};
	int ret = KVM_IOCTL(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, err);

	return ret < 0 ? ret : 0;
}

static void vm__reset(struct vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->vcpu.fd = -1;
	vm->ram.fd = -1;
}

/* With vm->kvm_fd open and vm->ram mapped: the VM, its memory, its vCPU. */
static int vm__create_on_ram(struct vm *vm, struct sb_err *err)
{
	int ret = KVM_IOCTL(vm->kvm_fd, KVM_CREATE_VM, (void *)0, err);

	if (ret < 0)
		return ret;
	vm->vm_fd = ret;
	ret = vm__set_memory(vm, err); /* first, before anything else touches the VM */
	if (ret < 0)
		return ret;
	(void)kvm__ioctl_raw(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)VM_TSS_ADDR);
	ret = vcpu__create(&vm->vcpu, vm, 0, err);
	if (ret < 0)
		return ret;
	serial__init(&vm->serial, SB_COM1_PORT, 2);
	hypercall__init(&vm->hc, &vm->ram, &vm->timeout, NULL);
	vm->hc.vcpu_fd = vm->vcpu.fd;
	return 0;
}

int vm__create(struct vm *vm, uint64_t mem_size, enum ram_backend backend, struct sb_err *err)
{
	int ret;

	vm__reset(vm);
	ret = kvm__open(err);
	if (ret < 0)
		goto fail;
	vm->kvm_fd = ret;
	ret = ram__create(&vm->ram, backend, mem_size, err);
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
	int ret, fd;

	if (vm->ram.size != snap->hdr.mem_size)
		return err__set(err, -EINVAL, "VM shell has %llu MiB of RAM, the template %llu MiB",
				(unsigned long long)(vm->ram.size >> 20),
				(unsigned long long)(snap->hdr.mem_size >> 20));
	fd = snapshot__open_mem(snap, err);
	if (fd < 0)
		return fd;
	ret = ram__fill_from_file(&vm->ram, fd, err);
	close(fd);
	if (ret == 0)
		ret = snapshot__restore(snap, vm, err);
	return ret;
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
	if (!st || clone(vm__reaper, st + stack, CLONE_VM, vm) < 0) {
		vm__destroy(vm);
		free(vm);
		free(st);
	}
#endif
}

void vm__destroy(struct vm *vm)
{
	timeout__stop(&vm->timeout);
	vcpu__destroy(&vm->vcpu);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	ram__destroy(&vm->ram);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}
