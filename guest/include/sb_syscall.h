/* SPDX-License-Identifier: MIT */
/*
 * One raw x86-64 Linux system call, without libc: for code that must not
 * touch errno or TLS -- the proc backend's freestanding stub, and the
 * monitor's vfork-style child that shares the monitor's memory.  Returns
 * the kernel's value: >= 0, or -errno.
 */
#ifndef SB_SYSCALL_H
#define SB_SYSCALL_H

static inline long sb_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#endif
