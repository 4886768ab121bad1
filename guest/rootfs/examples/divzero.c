/* SPDX-License-Identifier: MIT */
/* divzero: integer division by zero at run time -> #DE -> SIGFPE. */
#include <stdio.h>

static volatile int numerator = 42;
static volatile int zero;

int main(void)
{
	int q = numerator / zero;

	printf("divzero: survived, got %d\n", q);
	return 0;
}
