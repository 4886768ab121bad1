/* SPDX-License-Identifier: MIT */
/*
 * readyfault: faults AFTER its ready point.  Set-up: fills a 1 MiB table.
 * Ready point: reads stdin to EOF, then acts on the request:
 *   "segv" -> stores to address 0x10 (SIGSEGV)
 *   "fpe"  -> divides by zero (SIGFPE)
 *   anything else -> prints "readyfault ok <checksum of the table>"
 * so a template of it shows a clone dying of a signal and the next clone
 * still finding the set-up state intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uint32_t table[1 << 18];
static volatile int zero;

int main(void)
{
	char req[64];
	size_t len = 0;
	ssize_t r;
	uint32_t sum = 0;

	for (uint32_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		table[i] = i * 2654435761u;
	while (len < sizeof(req) - 1 && (r = read(0, req + len, sizeof(req) - 1 - len)) > 0)
		len += (size_t)r;
	req[len] = 0;
	if (!strncmp(req, "segv", 4)) {
		volatile int *volatile p = (volatile int *)(uintptr_t)0x10;
		*p = 1;
	} else if (!strncmp(req, "fpe", 3)) {
		printf("readyfault: %d\n", 42 / zero);
	}
	for (uint32_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		sum += table[i] ^ i;
	printf("readyfault ok %08x\n", sum);
	return 0;
}
