/* SPDX-License-Identifier: MIT */
/*
 * escape [MODE]: a hostile guest program that tries to reach the host
 * directly with raw system calls (for the proc backend's seccomp sandbox;
 * harmless under KVM too).  Default mode: every attempt prints
 * "name: result" (a negative errno is a blocked attempt) and the program
 * exits 0.  Other modes end the sandbox in their own way:
 *   chan       junk on the monitor's channel (with the filter's magic)
 *   chanptr    a well-formed WRITE hypercall with a pointer outside RAM
 *   stubwrite  mprotect the stub RWX, then write into its code
 *   stubjump   jump into the stub's entry point
 *   syslayer   overwrite the guest syscall layer's entry, then syscall
 *   int80      the 32-bit system call instruction
 *   flood      10000 unknown system calls
 *   outfd      a one-way output message (ABI 4) for fd 3
 *   outlen     a one-way output message whose header says more bytes than
 *              it carries (an oversized length)
 *   outmax     the largest one-way output message (64 KiB of a pattern to
 *              fd 1, sent with the magic): the monitor takes it; exits 0
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHAN_FD 1000                      /* SB_PROC_CHAN_FD */
#define MAGIC 0x53427072436f6d6dULL       /* SB_PROC_MAGIC */
#define STUB 0x7f0000000000ULL            /* where the proc stub is linked */
#define SYS_ENTRY 0x201000ULL             /* sys_entry_user */
#define PROBE "/tmp/snapbox-escape-probe"
#define HC_OUTPUT 16                      /* SB_HC_OUTPUT */
#define OUT_MAX 65536                     /* SB_PROC_OUT_MAX */

/* struct sb_proc_out + room for one byte more than the largest message */
static struct {
	uint32_t nr, fd;
	uint64_t len;
	char b[OUT_MAX + 1];
} out;

static long raw(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static void try(const char *name, long r)
{
	printf("%s: %ld\n", name, r);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "all";
	static char buf[64];

	if (!strcmp(mode, "chan")) {
		memset(buf, 0xa5, 16);
		raw(1, CHAN_FD, (long)buf, 16, MAGIC, 0, 0);
		raw(0, CHAN_FD, (long)buf, 8, MAGIC, 0, 0);
		puts("chan: survived");
		return 0;
	}
	if (!strcmp(mode, "chanptr")) {
		uint64_t msg[2] = { 1 /* SB_HC_WRITE */, 0x7fff00000000ULL };
		raw(1, CHAN_FD, (long)msg, 16, MAGIC, 0, 0);
		raw(0, CHAN_FD, (long)buf, 8, MAGIC, 0, 0);
		puts("chanptr: survived");
		return 0;
	}
	if (!strcmp(mode, "stubwrite")) {
		try("mprotect(stub, rwx)", raw(10, STUB + 0x1000, 4096, 7, 0, 0, 0));
		*(volatile uint8_t *)(STUB + 0x1000) = 0xcc;
		puts("stubwrite: survived");
		return 0;
	}
	if (!strcmp(mode, "stubjump")) {
		((void (*)(void))(STUB + 0x1000))();
		puts("stubjump: survived");
		return 0;
	}
	if (!strcmp(mode, "syslayer")) {
		*(volatile uint16_t *)SYS_ENTRY = 0x0b0f; /* ud2 */
		raw(39, 0, 0, 0, 0, 0, 0);
		puts("syslayer: survived");
		return 0;
	}
	if (!strcmp(mode, "int80")) {
		__asm__ volatile("int $0x80" ::"a"(20L) : "memory");
		puts("int80: survived");
		return 0;
	}
	if (!strcmp(mode, "outfd") || !strcmp(mode, "outlen")) {
		out.nr = HC_OUTPUT;
		out.fd = !strcmp(mode, "outfd") ? 3 : 1;
		out.len = !strcmp(mode, "outfd") ? 5 : 100000;
		memcpy(out.b, "hello", 5);
		raw(1, CHAN_FD, (long)&out, 16 + 5, MAGIC, 0, 0);
		raw(0, CHAN_FD, (long)buf, 8, MAGIC, 0, 0);
		puts("out: survived");
		return 0;
	}
	if (!strcmp(mode, "outmax")) {
		out.nr = HC_OUTPUT;
		out.fd = 1;
		out.len = OUT_MAX;
		for (int i = 0; i < OUT_MAX; i++)
			out.b[i] = (char)('a' + i % 26);
		try("outmax", raw(1, CHAN_FD, (long)&out, 16 + OUT_MAX, MAGIC, 0, 0));
		return 0;
	}
	if (!strcmp(mode, "flood")) {
		for (int i = 0; i < 10000; i++)
			raw(1000 + i % 100, 0, 0, 0, 0, 0, 0);
		puts("flood: survived");
		return 0;
	}

	try("open", raw(2, (long)PROBE, 0101 /* O_CREAT|O_WRONLY */, 0644, 0, 0, 0));
	try("open+magic", raw(2, (long)PROBE, 0101, 0644, MAGIC, 0, 0));
	try("openat", raw(257, -100, (long)PROBE, 0101, 0644, 0, 0));
	try("mkdir", raw(83, (long)PROBE, 0755, 0, 0, 0, 0));
	try("socket", raw(41, 2, 1, 0, 0, 0, 0));
	try("socket+magic", raw(41, 2, 1, 0, MAGIC, 0, 0));
	try("execve", raw(59, (long)"/bin/sh", 0, 0, 0, 0, 0));
	try("fork", raw(57, 0, 0, 0, 0, 0, 0));
	try("clone", raw(56, 0x11, 0, 0, 0, 0, 0));
	try("ptrace", raw(101, 16 /* PTRACE_ATTACH */, 1, 0, 0, 0, 0));
	try("seccomp", raw(317, 0, 0, 0, 0, 0, 0));
	try("prctl", raw(157, 38, 0, 0, 0, 0, 0));
	try("getpid", raw(39, 0, 0, 0, 0, 0, 0));
	try("rt_sigaction(SIGSYS)", raw(13, 31, (long)buf, 0, 8, 0, 0));
	try("rt_sigprocmask(block all)", raw(14, 0, (long)"\xff\xff\xff\xff\xff\xff\xff\xff", 0, 8, 0, 0));
	try("mmap(stub, fixed)", raw(9, STUB, 4096, 7, 0x32 /* MAP_FIXED|ANON|PRIVATE */, -1, 0));
	try("munmap(stub)", raw(11, STUB, 0x3000, 0, 0, 0, 0));
	try("mprotect(stub, rwx)", raw(10, STUB + 0x1000, 4096, 7, 0, 0, 0));
	try("arch_prctl(SET_GS)+magic", raw(158, 0x1001, 0x1000, 0, MAGIC, 0, 0));
	try("read(chan)", raw(0, CHAN_FD, (long)buf, 8, 0, 0, 0));
	try("read(chan, 64)+magic", raw(0, CHAN_FD, (long)buf, 64, MAGIC, 0, 0));
	try("write(chan, 8)+magic", raw(1, CHAN_FD, (long)buf, 8, MAGIC, 0, 0));
	try("write(1000+2^32)+magic", raw(1, CHAN_FD + (1L << 32), (long)buf, 16, MAGIC, 0, 0));
	try("write(1)+magic", raw(1, 1, (long)"direct\n", 7, MAGIC, 0, 0));
	/* one byte over the largest output message: the filter traps it, so it
	 * is the guest kernel's write(1000), which has no such fd */
	try("write(chan, 16+65537)+magic", raw(1, CHAN_FD, (long)&out, 16 + OUT_MAX + 1, MAGIC, 0, 0));
	try("kill(host init)", raw(62, 1, 0, 0, 0, 0, 0));
	try("open(/proc/self/maps)", raw(2, (long)"/proc/self/maps", 0, 0, 0, 0, 0));
	puts("escape: done");
	return 0;
}
