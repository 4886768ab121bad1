/* SPDX-License-Identifier: MIT */
/* badaddr: load from 0x7f0000000000, far beyond guest RAM -> SIGSEGV. */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
	volatile int *volatile p = (volatile int *)(uintptr_t)0x7f0000000000ULL;
	int v = *p;

	printf("badaddr: survived, read %d\n", v);
	return 0;
}
