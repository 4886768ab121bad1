/* SPDX-License-Identifier: MIT */
/* exitcode N: exit with status atoi(N) (0 without an argument). */
#include <stdlib.h>

int main(int argc, char **argv)
{
	exit(argc > 1 ? atoi(argv[1]) : 0);
}
