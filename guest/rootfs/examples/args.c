/* SPDX-License-Identifier: MIT */
/* args: print argc, then each argv[i] on its own line, then "env: " lines. */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv)
{
	printf("%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("%s\n", argv[i]);
	for (char **e = environ; e && *e; e++)
		printf("env: %s\n", *e);
	return 0;
}
