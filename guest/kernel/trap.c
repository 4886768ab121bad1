/* SPDX-License-Identifier: MIT */
/* Exceptions: a fault in the user program ends it with the signal Linux
 * would have sent; a fault in the kernel is a kernel bug. */
#include "kernel.h"

static uint32_t vector_signal(uint64_t v)
{
	switch (v) {
	case 0: case 16: case 19:
		return SB_SIGFPE;
	case 6:
		return SB_SIGILL;
	case 17:
		return SB_SIGBUS;
	case 1: case 3:
		return 5; /* SIGTRAP */
	default:
		return SB_SIGSEGV;
	}
}

void trap_handler(struct trap_frame *f)
{
	uint64_t cr2 = 0;
	if (f->vector == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	if ((f->cs & 3) != 3) {
		char d[64];
		size_t n = 0;
		const char *m = " vector ";
		while (*m)
			d[n++] = *m++;
		n += kfmt_dec(d + n, (int64_t)f->vector);
		d[n++] = ' ';
		d[n++] = 'r';
		d[n++] = 'i';
		d[n++] = 'p';
		d[n++] = ' ';
		n += kfmt_hex(d + n, f->rip);
		d[n] = 0;
		kpanic(SB_PANIC_KERNEL, "guest kernel fault:", d);
	}
	kfault(f->vector, f->error, f->rip, f->rsp, cr2, vector_signal(f->vector));
}
