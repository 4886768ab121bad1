/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend/kvm/kvm.h"

int kvm__ioctl_raw(int fd, unsigned long req, void *arg)
{
	int ret = ioctl(fd, req, arg);

	return ret < 0 ? -errno : ret;
}

int kvm__ioctl(int fd, unsigned long req, void *arg, const char *name, struct sb_err *err)
{
	int ret = kvm__ioctl_raw(fd, req, arg);

	if (ret < 0)
		return err__set(err, ret, "%s: %s", name, strerror(-ret));
	return ret;
}

int kvm__open(struct sb_err *err)
{
	int fd, ver;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "open /dev/kvm");
	ver = kvm__ioctl(fd, KVM_GET_API_VERSION, NULL, "KVM_GET_API_VERSION", err);
	if (ver < 0) {
		close(fd);
		return ver;
	}
	if (ver != KVM_EXPECTED_API_VERSION) {
		close(fd);
		return err__set(err, -EINVAL, "KVM_GET_API_VERSION: got %d, expected %d",
				ver, KVM_EXPECTED_API_VERSION);
	}
	return fd;
}

int kvm__supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct sb_err *err)
{
	for (unsigned nent = 64; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c;
		int ret;

		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return err__set(err, -ENOMEM, "KVM_GET_SUPPORTED_CPUID: out of memory");
		c->nent = nent;
		ret = kvm__ioctl_raw(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (ret == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (ret != -E2BIG)
			return err__set(err, ret, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
	}
	return err__set(err, -E2BIG, "KVM_GET_SUPPORTED_CPUID: table too large");
}

struct kvm_cpuid_entry2 *kvm__cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

/* On kvm_pvm `syscall` stays in user mode, so the guest can serve system
 * calls there (natively) instead of in emulated kernel mode. */
bool kvm__is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}
