/* SPDX-License-Identifier: MIT */
/* enosys_storm: call an unknown system call (999) forever. */
#define _GNU_SOURCE
#include <unistd.h>

int main(void)
{
	for (;;)
		syscall(999);
}
