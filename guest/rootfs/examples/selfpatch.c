/* SPDX-License-Identifier: MIT */
/*
 * selfpatch: writes into its own text and read-only data after its ready
 * point, as a JIT or a hot-patcher would (mprotect first, as on Linux).  A
 * template keeps such pages as overlays (mapped from the root file system's
 * image, not stored), so this checks that a clone's writes there are its
 * own: the next clone, and the image, see the original bytes.  Reads stdin
 * to EOF (the ready point), then prints one line
 *   table <addr> <byte before> <byte after> answer <addr> <before> <after>
 * where the byte of a 16 KiB const table (0x5a everywhere) is set to the
 * request's first byte and the immediate of `mov $42, %eax; ret` to the
 * request's length.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define TABLE 16384
static const unsigned char table[TABLE] __attribute__((aligned(4096))) = { [0 ... TABLE - 1] = 0x5a };

/* its own page of text, so the patch touches nothing else */
__asm__(".text\n"
	".p2align 12\n"
	".globl sp_answer\n"
	"sp_answer:\n"
	"	movl $42, %eax\n"
	"	ret\n"
	".p2align 12\n");
int sp_answer(void);

int main(void)
{
	char req[4096];
	size_t len = 0;
	ssize_t n;
	volatile unsigned char *t = (volatile unsigned char *)(uintptr_t)table;
	unsigned char *code = (unsigned char *)(uintptr_t)sp_answer;
	unsigned before, after;
	int a0, a1;
	uint32_t imm;

	while ((n = read(0, req + len, sizeof(req) - len)) > 0 && len < sizeof(req))
		len += (size_t)n;
	before = t[TABLE / 2];
	a0 = sp_answer();
	if (mprotect((void *)((uintptr_t)table & ~4095UL), TABLE, PROT_READ | PROT_WRITE) ||
	    mprotect((void *)((uintptr_t)code & ~4095UL), 4096, PROT_READ | PROT_WRITE | PROT_EXEC)) {
		perror("selfpatch: mprotect");
		return 1;
	}
	t[TABLE / 2] = len ? (unsigned char)req[0] : 0;
	after = t[TABLE / 2];
	imm = (uint32_t)len;
	for (int i = 0; i < 4; i++) /* movl $imm32, %eax = b8 imm32 */
		((volatile unsigned char *)code)[1 + i] = (unsigned char)(imm >> (8 * i));
	__asm__ volatile("" ::: "memory");
	a1 = sp_answer();
	printf("table %#lx %u %u answer %#lx %d %d\n", (unsigned long)(uintptr_t)(table + TABLE / 2),
	       before, after, (unsigned long)(uintptr_t)code, a0, a1);
	return 0;
}
