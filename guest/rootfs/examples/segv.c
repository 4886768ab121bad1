/* SPDX-License-Identifier: MIT */
/* segv: store to address 0x10 -> page fault -> SIGSEGV. */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
	/* The pointer itself is volatile: the compiler can neither see its
	 * value (no -Warray-bounds on a constant address) nor drop the store. */
	volatile int *volatile p = (volatile int *)(uintptr_t)0x10;

	*p = 1;
	puts("segv: survived");
	return 0;
}
