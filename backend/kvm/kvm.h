/* SPDX-License-Identifier: MIT */
/* /dev/kvm and ioctl wrappers (selftests style: raw and checked). */
#ifndef SB_KVM_H
#define SB_KVM_H
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "common/err.h"

#define KVM_EXPECTED_API_VERSION 12

/* ioctl(); returns its result (>= 0) or -errno. */
int kvm__ioctl_raw(int fd, unsigned long req, void *arg);

/* Same, but on failure stores "<name>: <strerror>" in err. */
int kvm__ioctl(int fd, unsigned long req, void *arg, const char *name, struct sb_err *err);

/* kvm__ioctl() naming the request after its macro. */
#define KVM_IOCTL(fd, req, arg, err) kvm__ioctl((fd), (req), (arg), #req, (err))

/* Open /dev/kvm (O_CLOEXEC) and check the API version: fd or -errno. */
int kvm__open(struct sb_err *err);

/* KVM_GET_SUPPORTED_CPUID into a malloc'd table (*out; free() it). */
int kvm__supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, struct sb_err *err);

/* Is /dev/kvm kvm_pvm (guest `syscall` stays in user mode)? */
bool kvm__is_pvm(void);

/* Entry for function/index in a CPUID table, NULL if absent. */
struct kvm_cpuid_entry2 *kvm__cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);
#endif
