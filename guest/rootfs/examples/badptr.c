/* Hands the kernel bad pointers; every call must fail with EFAULT (-14)
 * and nothing may crash.  With argv[1] == "out", tries raw port I/O to the
 * hypercall port from user mode, which must kill the program (SIGSEGV). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "out")) {
		__asm__ volatile("outl %0, %1" ::"a"(0x1000), "Nd"(0x503));
		puts("port I/O from user mode went through");
		return 0;
	}
	struct iovec iov[2] = { { "ok\n", 3 }, { (void *)0x2000, 8 } };
	long r[7];
	r[0] = syscall(SYS_write, 1, (void *)0x100000, 16);
	if (r[0] == -1)
		r[0] = -errno;     /* kernel image */
	r[1] = syscall(SYS_write, 1, (void *)0x7f0000000000, 16);
	if (r[1] == -1)
		r[1] = -errno; /* beyond RAM */
	r[2] = syscall(SYS_read, 0, (void *)0x1000, 16);
	if (r[2] == -1)
		r[2] = -errno;        /* into boot info */
	r[3] = syscall(SYS_open, (void *)0x100000, 0);
	if (r[3] == -1)
		r[3] = -errno;
	r[4] = syscall(SYS_writev, 1, iov, 2);
	if (r[4] == -1)
		r[4] = -errno;
	r[5] = syscall(SYS_write, 1, (void *)-4096L, 4096);
	if (r[5] == -1)
		r[5] = -errno;     /* wraps around */
	r[6] = syscall(SYS_clock_gettime, 0, (void *)0x3000);
	if (r[6] == -1)
		r[6] = -errno;   /* page tables */
	for (int i = 0; i < 7; i++)
		printf("%ld%c", r[i], i == 6 ? '\n' : ' ');
	return 0;
}
