/* SPDX-License-Identifier: MIT */
/* hello: the smallest guest program. */
#include <stdio.h>

int main(void)
{
	puts("hello from snapbox");
	return 0;
}
