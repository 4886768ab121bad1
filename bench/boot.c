/* SPDX-License-Identifier: MIT */
/*
 * Boot latency: snapbox vs QEMU microvm on the same guest kernel and rootfs.
 *   - snapbox boot to the first instruction of the user program (--stats)
 *   - `snapbox boot -- /bin/true` end to end
 *   - `snapbox boot -- /bin/hello` to its first byte of output
 *   - the same kernel + program booted by qemu-system-x86_64 -M microvm
 * Usage: bench/boot [runs] (default 30).  Prints figures; asserts nothing.
 */
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXN 1000

static const char *qemu_argv_fmt[] = {
	"qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
	"-m", "256M", "-kernel", "build/guest/kernel.elf", "-initrd", "build/guest/base.sbfs",
	"-append", NULL, "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
	"-device", "isa-debug-exit,iobase=0xf4,iosize=4", NULL,
};

static int run_qemu(const char *cmdline, struct spawn_result *r)
{
	char *argv[sizeof(qemu_argv_fmt) / sizeof(*qemu_argv_fmt)];
	for (size_t i = 0; i < sizeof(argv) / sizeof(*argv); i++)
		argv[i] = (char *)qemu_argv_fmt[i];
	argv[14] = (char *)cmdline;
	return bench_spawn(argv, r);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 30;
	static double to_user[MAXN], sb_true[MAXN], sb_hello[MAXN], q_true[MAXN], q_hello[MAXN];
	struct spawn_result r;
	struct stats s_user, s_true, s_hello, sq_true, sq_hello;
	int qemu_ok = access("/usr/bin/qemu-system-x86_64", X_OK) == 0;

	if (n < 1 || n > MAXN)
		n = 30;
	for (int i = 0; i < n; i++) {
		char *a1[] = { "build/snapbox", "boot", "--stats", "--", "/bin/true", NULL };
		if (bench_spawn(a1, &r) || r.status != 0) {
			fprintf(stderr, "snapbox boot failed (%d): %s\n", r.status, r.err);
			return 1;
		}
		char *st = strstr(r.err, "boot_to_user_us=");
		to_user[i] = st ? atof(st + 16) : -1;
		sb_true[i] = r.total_us;
		char *a2[] = { "build/snapbox", "boot", "--", "/bin/hello", NULL };
		bench_spawn(a2, &r);
		sb_hello[i] = r.first_out_us;
		if (qemu_ok) {
			if (run_qemu("/bin/true", &r) || r.status != 1) { /* debug-exit: (0<<1)|1 */
				fprintf(stderr, "qemu failed (%d): %s\n", r.status, r.err);
				qemu_ok = 0;
			}
			q_true[i] = r.total_us;
			run_qemu("/bin/hello", &r);
			q_hello[i] = r.first_out_us;
		}
	}
	bench_stats(to_user, n, &s_user);
	bench_stats(sb_true, n, &s_true);
	bench_stats(sb_hello, n, &s_hello);
	printf("# boot latency, %d runs each, interleaved (us)\n", n);
	bench_print("snapbox: VM create -> first user instruction", "us", &s_user);
	bench_print("snapbox boot -- /bin/true (end to end)", "us", &s_true);
	bench_print("snapbox boot -- /bin/hello (first output)", "us", &s_hello);
	if (qemu_ok) {
		bench_stats(q_true, n, &sq_true);
		bench_stats(q_hello, n, &sq_hello);
		bench_print("qemu microvm -- /bin/true (end to end)", "us", &sq_true);
		bench_print("qemu microvm -- /bin/hello (first output)", "us", &sq_hello);
		printf("ratio qemu/snapbox, /bin/true end to end (median): %.1fx\n",
		       sq_true.median / s_true.median);
		printf("ratio qemu/snapbox, /bin/hello first output (median): %.1fx\n",
		       sq_hello.median / s_hello.median);
	} else {
		printf("qemu-system-x86_64 not usable: no peer figures\n");
	}
	return 0;
}
