/* SPDX-License-Identifier: MIT */
#ifndef SB_SYSCALL_NAMES_H
#define SB_SYSCALL_NAMES_H
#include <stdint.h>

struct syscall_desc {
	const char *name;
	unsigned nargs;
};

/* Name and argument count of an x86-64 Linux syscall, NULL if unknown. */
const struct syscall_desc *syscall_names__lookup(uint64_t nr);
#endif
