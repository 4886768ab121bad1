/* SPDX-License-Identifier: MIT */
/*
 * hostile_reset: a guest that tries to carry data from one request to the
 * next through a recycled proc sandbox (tests/test_recycle.c).  Its ready
 * point is its first read of stdin; the request is one line:
 *   stub LO HI SECRET  write SECRET all over the proc stub's writable memory
 *                      [LO, HI) (hex; the test reads them off the stub's ELF),
 *                      and into this program's heap and stack; exit 0
 *   check LO HI SECRET print "stub: clean|FOUND", "heap: clean|FOUND",
 *                      "stack: clean|FOUND" (searching those places); exit 0
 *   exitspin SECRET    tell the monitor "exit 0" with a raw hypercall message,
 *                      then keep writing SECRET into the heap, never stopping
 *   exitjunk N         the same "exit 0", then N junk messages on the channel,
 *                      then wait
 *   sigblock           rt_sigreturn into a frame that blocks every signal
 *                      but SIGSYS and SIGKILL (the reset's SIGUSR2 among them);
 *                      then exit 0: a reset must fail, not hang
 *   altstub LO HI      rt_sigreturn into a frame whose alternate signal stack is
 *                      the stub's memory [LO, HI), then exit 0: the reset's
 *                      handler then runs on the guest's stack and must fail
 *   altram             the same with the first 64 KiB of the heap as the
 *                      alternate stack: a reset must put the stub's back
 *   altcheck           make system calls, then say whether signal frames
 *                      landed in that heap range ("altstack: clean|LEAKED")
 *   sum A B            print A+B (a request whose answer we check)
 *   crash              write through a null pointer
 *   spin               loop forever (a request that times out)
 *   big N              print N bytes (a request over an output limit)
 *   fail N             print to stderr, exit N
 * Anything found is a secret that survived a reset.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAN_FD 1000                      /* SB_PROC_CHAN_FD */
#define MAGIC 0x53427072436f6d6dULL       /* SB_PROC_MAGIC */
#define HC_EXIT 3                         /* SB_HC_EXIT */
#define HEAP_BYTES (256 * 1024)

static long raw(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static char *heap;   /* allocated before the ready point: in the template */

static int found(const unsigned char *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	for (size_t i = 0; k && i + k <= n; i++)
		if (!memcmp(p + i, s, k))
			return 1;
	return 0;
}

static void fill(unsigned char *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	for (size_t i = 0; k && i + k <= n; i += k)
		memcpy(p + i, s, k);
}

static void fake_exit(void)
{
	static int64_t status; /* struct sb_hc_exit */
	uint64_t msg[2] = { HC_EXIT, (uint64_t)&status };
	raw(1, CHAN_FD, (long)msg, 16, (long)MAGIC);
}

/* SECRET written into, or searched for in, the 16 KiB of stack below us. */
static __attribute__((noinline)) int stack_op(const char *s, int write)
{
	unsigned char *below = (unsigned char *)__builtin_frame_address(0) - 512 - 16384;
	if (write) {
		fill(below, 16384, s);
		__asm__ volatile("" : : "r"(below) : "memory");
		return 0;
	}
	return found(below, 16384, s);
}

static uint8_t alt_stack[65536] __attribute__((aligned(16)));

/* Where a forged frame resumes. */
static __attribute__((noreturn, used)) void blocked_exit(void)
{
	puts("forged: resumed");
	exit(0);
}

/* rt_sigreturn into a frame of ours (struct rt_sigframe: pretcode, then
 * struct ucontext: flags, link, stack {sp, flags, size}, sigcontext (r8-r15,
 * rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, cs|gs|fs|ss, ...: 32
 * words), then the signal mask), resuming in blocked_exit. */
static __attribute__((noreturn)) void forged_sigreturn(uint64_t mask, uint64_t ss_sp,
							uint64_t ss_size)
{
	static uint64_t frame[64] __attribute__((aligned(64)));
	uint64_t *uc = frame + 1;

	uc[2] = ss_sp;
	uc[4] = ss_size;
	uc[5 + 16] = (uint64_t)blocked_exit;                        /* rip */
	uc[5 + 15] = (uint64_t)(uintptr_t)(alt_stack + sizeof(alt_stack)) - 8; /* rsp */
	uc[5 + 17] = 0x202;                                         /* eflags */
	uc[5 + 18] = 0x33 | (0x2bULL << 48);                        /* cs, ss */
	uc[5 + 32] = mask;
	fflush(stdout);
	__asm__ volatile("mov %0, %%rsp; mov $15, %%eax; movabs %1, %%r10; syscall"
			 : : "r"(uc), "i"(MAGIC) : "memory");
	__builtin_unreachable();
}

int main(void)
{
	char line[512], cmd[16], secret[128] = "";
	unsigned long long lo = 0, hi = 0;
	long a = 0, b = 0;

	heap = malloc(HEAP_BYTES);
	if (!heap)
		return 2;
	memset(heap, 0, HEAP_BYTES);
	if (!fgets(line, sizeof(line), stdin)) /* the ready point */
		return 3;
	if (sscanf(line, "%15s", cmd) != 1)
		return 4;
	if (!strcmp(cmd, "stub") && sscanf(line, "%*s %llx %llx %127s", &lo, &hi, secret) == 3) {
		fill((unsigned char *)(uintptr_t)lo, hi - lo, secret);
		fill((unsigned char *)heap, HEAP_BYTES, secret);
		stack_op(secret, 1);
		puts("stub: written");
		return 0;
	}
	if (!strcmp(cmd, "check") && sscanf(line, "%*s %llx %llx %127s", &lo, &hi, secret) == 3) {
		printf("stub: %s\n", found((void *)(uintptr_t)lo, hi - lo, secret) ? "FOUND" : "clean");
		printf("heap: %s\n", found((void *)heap, HEAP_BYTES, secret) ? "FOUND" : "clean");
		printf("stack: %s\n", stack_op(secret, 0) ? "FOUND" : "clean");
		return 0;
	}
	if (!strcmp(cmd, "exitspin") && sscanf(line, "%*s %127s", secret) == 1) {
		fflush(stdout);
		fake_exit();
		for (;;)
			fill((unsigned char *)heap, HEAP_BYTES, secret);
	}
	if (!strcmp(cmd, "exitjunk") && sscanf(line, "%*s %ld", &a) == 1) {
		uint64_t junk[2] = { 0xdeadbeef, 0 };
		fake_exit();
		for (long i = 0; i < a; i++)
			raw(1, CHAN_FD, (long)junk, 16, (long)MAGIC);
		for (;;)
			raw(0, CHAN_FD, (long)junk, 8, (long)MAGIC);
	}
	if (!strcmp(cmd, "sigblock"))
		forged_sigreturn(~((1ULL << (SIGSYS - 1)) | (1ULL << (SIGKILL - 1))), 0, 0);
	if (!strcmp(cmd, "altstub") && sscanf(line, "%*s %llx %llx", &lo, &hi) == 2)
		forged_sigreturn(0, lo, hi - lo);
	if (!strcmp(cmd, "altram"))
		forged_sigreturn(0, (uint64_t)(uintptr_t)heap, 65536);
	if (!strcmp(cmd, "altcheck")) {
		for (int i = 0; i < 10; i++)
			printf("call %d\n", i), fflush(stdout);
		int dirty = 0;
		for (int i = 0; i < 65536; i++)
			dirty |= heap[i];
		printf("altstack: %s\n", dirty ? "LEAKED" : "clean");
		return 0;
	}
	if (!strcmp(cmd, "sum") && sscanf(line, "%*s %ld %ld", &a, &b) == 2) {
		printf("%ld\n", a + b);
		return 0;
	}
	if (!strcmp(cmd, "crash")) {
		*(volatile int *)(uintptr_t)(a * 8) = 1;
		return 0;
	}
	if (!strcmp(cmd, "spin"))
		for (;;)
			__asm__ volatile("" ::: "memory");
	if (!strcmp(cmd, "big") && sscanf(line, "%*s %ld", &a) == 1) {
		for (long i = 0; i < a; i++)
			putchar('a' + (int)(i % 26));
		return 0;
	}
	if (!strcmp(cmd, "fail") && sscanf(line, "%*s %ld", &a) == 1) {
		fprintf(stderr, "failing with %ld\n", a);
		return (int)a;
	}
	puts("unknown request");
	return 1;
}
