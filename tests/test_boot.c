/* SPDX-License-Identifier: MIT */
/* `snapbox boot` end to end: real guests, run as a user would run them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "run.h"
#include "snapbox_abi.h"

static struct run_result R;

static void boot(const char *const *argv, const char *in, double limit)
{
	if (!test_on_proc())
		require_kvm();
	run_checked(argv, in, limit, &R);
}

static void fini(void)
{
	run_result_free(&R);
}

TestSuite(boot, .fini = fini, .timeout = 60);

#define ARGS(...) ((const char *const[]){ "snapbox", __VA_ARGS__, NULL })

Test(boot, lua_prints_and_computes)
{
	boot(ARGS("boot", "--", "/bin/lua", "-e", "print((\"x\"):rep(3), 2^10)"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "xxx\t1024.0\n");

	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/lua", "-e",
		  "local s = 0 for i = 1, 200000 do s = s + i * i end print(s)"), NULL, 30);
	cr_assert_str_eq(R.out, "2666686666700000\n", "stderr: %s", R.err);
}

Test(boot, lua_handler_answers_request_on_stdin)
{
	boot(ARGS("boot", "--", "/bin/lua", "/app/handler.lua"), "{\"n\": 10}", 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "\"fib\": 55"), "out: %s", R.out);
	cr_assert(strstr(R.out, "\"prime\": 29"), "out: %s", R.out);

	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/lua", "/app/handler.lua"), "garbage", 30);
	cr_assert_eq(R.status, 1);
	cr_assert(strstr(R.out, "bad request"), "out: %s", R.out);
}

Test(boot, stdin_reaches_the_program_byte_for_byte)
{
	size_t n = 3 << 20;
	char *in = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		in[i] = 'a' + (char)((i * 7 + i / 4096) % 26);
	in[n] = 0;
	if (!test_on_proc())
		require_kvm();
	cr_assert_eq(run_snapbox(ARGS("boot", "--", "/bin/cat"), in, n, 60, &R), 0);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, n);
	cr_assert(!memcmp(R.out, in, n), "cat changed the data");
	free(in);

	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/cat"), "hello\n", 30);
	cr_assert_str_eq(R.out, "hello\n");
}

/* Guest ABI 4: when stdin is a regular file (a memfd here, as the service
 * hands a request) the host says when it is all read, and the guest's last
 * read (the one that returns 0) needs no hypercall; a pipe gets no hint. */
Test(boot, stdin_from_a_file_ends_without_asking_the_host)
{
	size_t n = 150000; /* cat reads 64 KiB at a time: 3 reads, then EOF */
	char *in = malloc(n);

	for (size_t i = 0; i < n; i++)
		in[i] = (char)('A' + (i * 13 + i / 1000) % 26);
	if (!test_on_proc())
		require_kvm();
	run_checked_file(ARGS("boot", "--stats", "--", "/bin/cat"), in, n, 60, &R);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, n);
	cr_assert(!memcmp(R.out, in, n), "cat changed the data");
	cr_assert_eq(stats_calls(R.err, "STDIN"), 3, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "READ"), 0, "stderr: %s", R.err);

	/* a pipe: the same bytes, and the guest asks until the host says 0 */
	cr_assert_eq(run_snapbox(ARGS("boot", "--stats", "--", "/bin/cat"), in, n, 60, &R), 0);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, n);
	cr_assert(!memcmp(R.out, in, n), "cat changed the data");
	cr_assert_geq(stats_calls(R.err, "STDIN"), 4, "stderr: %s", R.err);

	/* an empty file: one call, which says EOF */
	run_checked_file(ARGS("boot", "--stats", "--", "/bin/cat"), "", 0, 60, &R);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 0);
	cr_assert_eq(stats_calls(R.err, "STDIN"), 1, "stderr: %s", R.err);
	free(in);
}

/* A guest kernel of ABI 3 (no ABI note; tests/tests.mk builds it from
 * git) expects its root file system as a cpio in RAM, which this snapbox
 * no longer builds (the root file system is layers): booting it is refused
 * in one line, as is a kernel whose note says an ABI this snapbox does not
 * speak.  (Templates made with an ABI 3 kernel still run: test_template.) */
Test(boot, an_abi_3_kernel_is_refused)
{
	const char *k3 = abi3_kernel();
	char *dir = make_tempdir(), path[4200];
	uint8_t *elf;
	size_t len;
	int patched = 0;

	boot(ARGS("boot", "--kernel", k3, "--", "/bin/lua", "/app/handler.lua"), "{\"n\": 10}", 30);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	snprintf(path, sizeof(path), "the guest kernel speaks ABI 3, which expects its root file system "
		 "as a cpio in RAM; this snapbox boots kernels of ABI %d to %d", SB_ABI_BOOT_MIN,
		 SB_ABI_VERSION);
	cr_assert(strstr(R.err, path) && !strchr(R.err, '\n')[1], "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 0, "out: %s", R.out);

	/* this build's kernel, its note saying ABI 5 */
	elf = slurp(build_file("guest/kernel.elf"), &len);
	for (size_t i = 0; i + 12 <= len; i++) {
		if (!memcmp(elf + i, "snapbox\0", 8) && elf[i + 8] == SB_ABI_VERSION) {
			elf[i + 8] = SB_ABI_VERSION + 1;
			patched++;
		}
	}
	cr_assert_eq(patched, 1, "the kernel's ABI note: %d found", patched);
	cr_assert_eq(write_file(dir, "k5.elf", elf, len, 0644), 0);
	snprintf(path, sizeof(path), "%s/k5.elf", dir);
	boot(ARGS("boot", "--kernel", path, "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	snprintf(path, sizeof(path), "the guest kernel speaks ABI %d; this snapbox boots kernels of "
		 "ABI %d to %d\n", SB_ABI_VERSION + 1, SB_ABI_BOOT_MIN, SB_ABI_VERSION);
	cr_assert(strstr(R.err, path) && !strchr(R.err, '\n')[1], "stderr: %s", R.err);
	free(elf);
	remove_tempdir(&dir);
}

/* Output through a dup of stdout or stderr goes where the original goes
 * (the kernel keeps which console an fd writes to, whatever its number). */
Test(boot, dups_of_stdout_and_stderr_write_there)
{
	boot(ARGS("boot", "--", "/bin/dupout"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "to a dup of stdout\nafter close(1)\n", "stderr: %s", R.err);
	cr_assert(strstr(R.err, "to fd 7, a dup of stderr\n"), "stderr: %s", R.err);
}

Test(boot, exit_codes_propagate)
{
	boot(ARGS("boot", "--", "/bin/exitcode", "42"), NULL, 30);
	cr_assert_eq(R.status, 42);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/false"), NULL, 30);
	cr_assert_eq(R.status, 1);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 0);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/lua", "-e", "os.exit(7)"), NULL, 30);
	cr_assert_eq(R.status, 7);
}

Test(boot, args_and_environment_reach_the_program)
{
	boot(ARGS("boot", "--env", "GREETING=hi there", "--", "/bin/args", "one", "two words"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "3\n/bin/args\none\ntwo words\n") == R.out, "out: %s", R.out);
	cr_assert(strstr(R.out, "env: GREETING=hi there\n"), "out: %s", R.out);
	cr_assert(strstr(R.out, "env: PATH="), "out: %s", R.out);
}

Test(boot, divide_by_zero_is_a_guest_fault_with_rip)
{
	boot(ARGS("boot", "--", "/bin/divzero"), NULL, 30);
	cr_assert_eq(R.status, 128 + 8, "status %d, stderr: %s", R.status, R.err);
	cr_assert(strstr(R.err, "SIGFPE"), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "rip 0x4"), "the fault names the program's RIP: %s", R.err);
}

Test(boot, bad_memory_access_is_a_guest_fault)
{
	boot(ARGS("boot", "--", "/bin/segv"), NULL, 30);
	cr_assert_eq(R.status, 128 + 11, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "SIGSEGV"), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "0x10"), "the faulting address is named: %s", R.err);
	run_result_free(&R);
	/* KVM only: on proc the sandbox's stub lives at 0x7f0000000000 and the
	 * guest can read it (README: what isolation holds) */
	if (test_on_proc())
		return;
	boot(ARGS("boot", "--", "/bin/badaddr"), NULL, 30);
	cr_assert_eq(R.status, 128 + 11, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "0x7f0000000000"), "stderr: %s", R.err);
}

Test(boot, bad_pointers_in_syscalls_get_efault)
{
	boot(ARGS("boot", "--", "/bin/badptr"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "-14 -14 -14 -14 -14 -14 -14\n", "stderr: %s", R.err);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/badptr", "out"), NULL, 30);
	cr_assert_eq(R.status, 128 + 11, "user-mode port I/O must fault: %s%s", R.out, R.err);
	cr_assert_null(strstr(R.out, "went through"));
}

Test(boot, missing_or_unrunnable_programs_are_clear_errors)
{
	boot(ARGS("boot", "--", "/bin/nope"), NULL, 30);
	cr_assert_eq(R.status, 127);
	cr_assert(strstr(R.err, "/bin/nope") && strstr(R.err, "no such file"), "stderr: %s", R.err);
	cr_assert_eq(strchr(R.err, '\n'), R.err + R.err_len - 1, "one line: %s", R.err);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/etc/motd"), NULL, 30);
	cr_assert_eq(R.status, 127);
	cr_assert(strstr(R.err, "not an ELF"), "stderr: %s", R.err);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin"), NULL, 30);
	cr_assert_eq(R.status, 127, "a directory: %s", R.err);
}

Test(boot, foreign_elfs_are_refused)
{
	char *dir = make_tempdir();
	char path[512];
	uint8_t elf32[64] = { 0x7f, 'E', 'L', 'F', 1, 1, 1 };
	cr_assert_eq(write_file(dir, "prog32", elf32, sizeof(elf32), 0755), 0);
	snprintf(path, sizeof(path), "cp /bin/true %s/dyn", dir); /* the host's: dynamic */
	cr_assert_eq(system(path), 0);

	boot(ARGS("boot", "--rootfs", dir, "--", "/prog32"), NULL, 30);
	cr_assert_eq(R.status, 127);
	cr_assert(strstr(R.err, "32-bit"), "stderr: %s", R.err);
	run_result_free(&R);
	/* dynamic, but no ld.so in this root file system (the Python layer
	 * has one: left out) */
	boot(ARGS("boot", "--no-python", "--rootfs", dir, "--", "/dyn"), NULL, 30);
	cr_assert_eq(R.status, 127);
	cr_assert_str_eq(R.err, "snapbox: interpreter /lib64/ld-linux-x86-64.so.2 not in the root file system\n");
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	system(path);
	free(dir);
}

/* The dynamically linked test program's layer (tests/tests.mk). */
static const char *dynroot(void)
{
	return build_file("tests/dynroot");
}

/* A line "key value" of the output: the value, in a static buffer. */
static const char *value_of(const char *out, const char *key)
{
	static char v[512];
	size_t kl = strlen(key);
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			size_t n = strcspn(p + kl + 1, "\n");
			snprintf(v, sizeof(v), "%.*s", (int)n, p + kl + 1);
			return v;
		}
	}
	return "(missing)";
}

#define ASSERT_VALUE(key, want) \
	cr_assert_str_eq(value_of(R.out, key), want, "%s; stdout:\n%s\nstderr: %s", key, R.out, R.err)

/* PT_INTERP: the host's gcc-built program runs under its own ld.so (an
 * absolute symlink to follow), which loads libc; the auxiliary vector is
 * what ld.so and glibc need; dlopen() loads libm from the layer. */
Test(boot, dynamic_glibc_program_runs_under_its_interpreter)
{
	char want[64];
	boot(ARGS("boot", "--rootfs", dynroot(), "--", "/bin/dyncheck", "basic", "0.3"), NULL, 30);
	cr_assert_eq(R.status, 0, "stdout: %s\nstderr: %s", R.out, R.err);
	cr_assert_null(strstr(R.out, "FAIL"), "%s", R.out);
	ASSERT_VALUE("argc", "3");
	ASSERT_VALUE("base_nonzero", "1");
	ASSERT_VALUE("entry_is_start", "1");
	ASSERT_VALUE("pagesz", "4096");
	ASSERT_VALUE("secure", "0");
	ASSERT_VALUE("random_nonzero", "1");
	ASSERT_VALUE("execfn", "/bin/dyncheck");
	ASSERT_VALUE("platform", "x86_64");
	ASSERT_VALUE("vdso", "0");
	ASSERT_VALUE("exe", "/bin/dyncheck");
	snprintf(want, sizeof(want), "%.17g", cos(0.3));
	ASSERT_VALUE("cos", want);
}

/* dirfd-relative calls, lstat vs stat on a relative symlink, FD_CLOEXEC
 * per fd, the ioctls and signal queries CPython makes, statfs, a merged
 * getdents64 with . and .. (the layer is tests/tests.mk's dynroot). */
Test(boot, dynamic_program_file_system_calls)
{
	char path[1024], want[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data/file.txt", dynroot());
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	boot(ARGS("boot", "--rootfs", dynroot(), "--", "/bin/dyncheck", "fs"), NULL, 30);
	cr_assert_eq(R.status, 0, "stdout: %s\nstderr: %s", R.out, R.err);
	cr_assert_null(strstr(R.out, "FAIL"), "%s", R.out);
	ASSERT_VALUE("openat_read", "layered file");
	snprintf(want, sizeof(want), "lnk %zu", strlen("file.txt"));
	ASSERT_VALUE("link_lstat", want);
	snprintf(want, sizeof(want), "reg %lld", (long long)st.st_size);
	ASSERT_VALUE("link_stat", want);
	snprintf(want, sizeof(want), "%lld", (long long)st.st_mtime);
	ASSERT_VALUE("mtime", want);
	snprintf(want, sizeof(want), "%lld nlink 1", (long long)(st.st_size + 4095) / 4096 * 8);
	ASSERT_VALUE("blocks", want);
	ASSERT_VALUE("readlinkat", "file.txt");
	ASSERT_VALUE("readdir", "../ ./ file.txt link@ sub/");
	ASSERT_VALUE("cloexec_dir", "1");
	ASSERT_VALUE("cloexec_plain", "0");
	ASSERT_VALUE("cloexec_cleared", "0");
	ASSERT_VALUE("cloexec_fioclex", "1");
	ASSERT_VALUE("cloexec_dup", "0 1 1 1"); /* dup, F_DUPFD_CLOEXEC (>= 10), dup3(O_CLOEXEC) */
	ASSERT_VALUE("cloexec_fionclex", "0");
	ASSERT_VALUE("isatty", "0 0");
	/* 1..64 less glibc's own two (SIGCANCEL, SIGSETXID), which it refuses itself */
	ASSERT_VALUE("sigaction_queries", "62");
	ASSERT_VALUE("statfs_tmp", "0x1021994");
	ASSERT_VALUE("fstatfs_ro", "1");
	ASSERT_VALUE("sysinfo_free_sane", "1");
	ASSERT_VALUE("mmap_shared", "layer");
}

/* /tmp: a writable file system in the sandbox's RAM; EROFS on the layers,
 * EXDEV across; running out of memory or nodes is ENOSPC, after which it
 * works again. */
Test(boot, tmp_is_writable_in_guest_memory)
{
	boot(ARGS("boot", "--mem", "64M", "--rootfs", dynroot(), "--", "/bin/dyncheck", "tmp"), NULL, 60);
	cr_assert_eq(R.status, 0, "stdout: %s\nstderr: %s", R.out, R.err);
	cr_assert_null(strstr(R.out, "FAIL"), "%s", R.out);
	ASSERT_VALUE("read_back", "hello world");
	ASSERT_VALUE("size", "11 mode 600");
	ASSERT_VALUE("after_pwrite_truncate", "hello");
	ASSERT_VALUE("appended", "hello more");
	ASSERT_VALUE("renamed", "hello more");
	ASSERT_VALUE("truncated", "new");
	ASSERT_VALUE("tmp_listing", "../ ./ b d/");
	ASSERT_VALUE("d_listing", "../ ./ y");
	ASSERT_VALUE("unlinked_read", "new");
	ASSERT_VALUE("mmap_tmp", "mapped bytes");
	ASSERT_VALUE("big_error", "ENOSPC");
	ASSERT_VALUE("big_some", "1");
	ASSERT_VALUE("files_error", "ENOSPC");
	ASSERT_VALUE("files_many", "1");
	ASSERT_VALUE("after", "still works");
	ASSERT_VALUE("tmp_final", "../ ./ after");
}

/* A futex wait with a timeout sleeps it out (one thread: nothing else can
 * wake it), relative and absolute, as sem_timedwait() and Python's
 * lock.acquire(timeout=) use them. */
Test(boot, futex_waits_with_a_timeout_sleep_then_time_out)
{
	const int ms = 300;
	char arg[16];
	const char *keys[] = { "wait", "bitset", "sem" };

	snprintf(arg, sizeof(arg), "%d", ms);
	boot(ARGS("boot", "--rootfs", dynroot(), "--", "/bin/dyncheck", "futex", arg), NULL, 30);
	cr_assert_eq(R.status, 0, "stdout: %s\nstderr: %s", R.out, R.err);
	cr_assert_null(strstr(R.out, "FAIL"), "%s", R.out);
	for (int i = 0; i < 3; i++) {
		char how[16];
		int took = -1;
		cr_assert_eq(sscanf(value_of(R.out, keys[i]), "%15s %d", how, &took), 2, "%s", R.out);
		cr_assert_str_eq(how, "ETIMEDOUT", "%s: %s", keys[i], R.out);
		/* at least the timeout (1 ms of rounding) */
		cr_assert_geq(took, ms - 1, "%s took %d ms of %d", keys[i], took, ms);
	}
	cr_assert_geq(R.secs, 3 * ms / 1000.0, "the run took %.3f s", R.secs);
}

/* CLOCK_REALTIME and CLOCK_MONOTONIC between host readings come from the
 * TSC (guest/kernel/console.c): busy reads for 400 ms never go back and
 * end within the host's own time around the run; a sleep measures right. */
Test(boot, clocks_read_between_host_readings_stay_right)
{
	struct timespec t0, t1;
	long long guest = 0;

	clock_gettime(CLOCK_REALTIME, &t0);
	boot(ARGS("boot", "--rootfs", dynroot(), "--", "/bin/dyncheck", "clock", "400"), NULL, 30);
	clock_gettime(CLOCK_REALTIME, &t1);
	cr_assert_eq(R.status, 0, "stdout: %s\nstderr: %s", R.out, R.err);
	ASSERT_VALUE("back", "0");
	ASSERT_VALUE("reads_many", "1");
	ASSERT_VALUE("sleep_100ms_measured", "1");
	cr_assert_eq(sscanf(value_of(R.out, "realtime_ns"), "%lld", &guest), 1, "%s", R.out);
	/* 2 ms of slack: the guest's reading is the host's plus TSC ticks */
	cr_assert_geq(guest, t0.tv_sec * 1000000000LL + t0.tv_nsec - 2000000, "guest %lld", guest);
	cr_assert_leq(guest, t1.tv_sec * 1000000000LL + t1.tv_nsec + 2000000, "guest %lld", guest);
}

Test(boot, rootfs_overlay_adds_user_files)
{
	char *dir = make_tempdir();
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/app", dir);
	mkdir(sub, 0755);
	const char *src = "local f = assert(io.open('/app/data.txt')) "
			  "print(f:read('a'):upper()) print(#arg, arg[1])";
	cr_assert_eq(write_file(dir, "app/main.lua", src, strlen(src), 0644), 0);
	cr_assert_eq(write_file(dir, "app/data.txt", "overlay works", 13, 0644), 0);

	boot(ARGS("boot", "--rootfs", dir, "--", "/bin/lua", "/app/main.lua", "arg1"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "OVERLAY WORKS\n1\targ1\n");
	run_result_free(&R);
	boot(ARGS("boot", "--rootfs", dir, "--", "/bin/files", "/app/data.txt", "/app"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "overlay works"), "out: %s", R.out);
	cr_assert(strstr(R.out, "data.txt") && strstr(R.out, "main.lua"), "listing: %s", R.out);
	snprintf(sub, sizeof(sub), "rm -rf %s", dir);
	system(sub);
	free(dir);
}

static void mkdir_in(const char *dir, const char *sub)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s", p);
}

static void link_in(const char *dir, const char *name, const char *target)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	cr_assert_eq(symlink(target, p), 0, "symlink %s", p);
}

/* Two --rootfs layers over the base: the upper one wins, directories list
 * the union once, symlinks (absolute, relative, to a directory) resolve
 * across the layers, and the program itself may be a symlink. */
Test(boot, rootfs_layers_stack_and_follow_symlinks)
{
	char *l1 = make_tempdir(), *l2 = make_tempdir(), cmd[2200];
	const char *lua = "local function r(p) local f = assert(io.open(p)) local s = f:read('a') f:close() return s end "
			  "io.write(r('/etc/motd'), r('/app/a.txt'), r('/app/link'), r('/app/abs'), "
			  "tostring(io.open('/bin2/hello') ~= nil), '\\n')";

	mkdir_in(l1, "etc");
	mkdir_in(l1, "app");
	cr_assert_eq(write_file(l1, "etc/motd", "first layer\n", 12, 0644), 0);
	cr_assert_eq(write_file(l1, "app/a.txt", "a1\n", 3, 0644), 0);
	link_in(l1, "bin2", "/bin");
	mkdir_in(l2, "app");
	cr_assert_eq(write_file(l2, "app/a.txt", "a2\n", 3, 0644), 0);
	link_in(l2, "app/link", "../etc/motd");
	link_in(l2, "app/abs", "/app/a.txt");
	link_in(l2, "app/prog", "/bin2/hello");

	boot(ARGS("boot", "--rootfs", l1, "--rootfs", l2, "--", "/bin/lua", "-e", lua), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "first layer\na2\nfirst layer\na2\ntrue\n");
	run_result_free(&R);
	boot(ARGS("boot", "--rootfs", l1, "--rootfs", l2, "--", "/bin/files", "/app/link", "/app"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "dir: /app (7 entries)\na.txt\nabs\nhandler.lua\nhandler.py\nhello.lua\nlink\nprog\n"),
		  "the union of three layers' /app, each name once: %s", R.out);
	cr_assert(strstr(R.out, "first layer"), "out: %s", R.out);
	run_result_free(&R);
	/* the program is a link to a link to the base's /bin/hello */
	boot(ARGS("boot", "--rootfs", l1, "--rootfs", l2, "--", "/app/prog"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "hello from snapbox\n");
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", l1, l2);
	system(cmd);
	free(l1);
	free(l2);
}

Test(boot, a_missing_or_bad_base_layer_is_one_line)
{
	boot(ARGS("boot", "--base", "/nonexistent.sbfs", "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "/nonexistent.sbfs"), "stderr: %s", R.err);
	cr_assert_eq(strchr(R.err, '\n'), R.err + R.err_len - 1, "one line: %s", R.err);
	run_result_free(&R);
	boot(ARGS("boot", "--base", "build/guest/kernel.elf", "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "not an sbfs image"), "stderr: %s", R.err);
	cr_assert_eq(strchr(R.err, '\n'), R.err + R.err_len - 1, "one line: %s", R.err);
	run_result_free(&R);
	boot(ARGS("boot", "--rootfs", "/", "--rootfs", "/", "--rootfs", "/", "--rootfs", "/",
		  "--rootfs", "/", "--rootfs", "/", "--rootfs", "/", "--rootfs", "/", "--", "/bin/true"),
	     NULL, 30);
	cr_assert_eq(R.status, 2, "eight --rootfs: stderr: %s", R.err);
	cr_assert(strstr(R.err, "at most 7"), "stderr: %s", R.err);
}

Test(boot, file_syscalls_on_the_builtin_rootfs)
{
	boot(ARGS("boot", "--", "/bin/files", "/etc/motd", "/bin"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "lua"), "listing of /bin: %s", R.out);
	cr_assert(strstr(R.out, "cat"), "listing of /bin: %s", R.out);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/lua", "-e",
		  "print(io.open('/nonexistent') == nil, io.open('/etc/x', 'w') == nil)"), NULL, 30);
	cr_assert_str_eq(R.out, "true\ttrue\n", "stderr: %s", R.err);
}

Test(boot, memory_grows_and_shrinks)
{
	boot(ARGS("boot", "--mem", "256M", "--", "/bin/memtest", "100"), NULL, 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "memtest ok 100 MiB"), "out: %s", R.out);
	run_result_free(&R);
	/* more than the guest has: malloc fails inside, no crash of anything */
	boot(ARGS("boot", "--mem", "64M", "--", "/bin/lua", "-e",
		  "local ok = pcall(function() local t = {} for i = 1, 1e8 do t[i] = i end end) print(ok)"),
	     NULL, 60);
	cr_assert_str_eq(R.out, "false\n", "status %d stderr: %s", R.status, R.err);
}

Test(boot, too_little_memory_is_refused_clearly)
{
	boot(ARGS("boot", "--mem", "4M", "--", "/bin/true"), NULL, 30);
	cr_assert_neq(R.status, 0);
	cr_assert(strstr(R.err, "--mem") || strstr(R.err, "memory"), "stderr: %s", R.err);
	cr_assert_eq(strchr(R.err, '\n'), R.err + R.err_len - 1, "one line: %s", R.err);
}

Test(boot, hung_guest_times_out)
{
	boot(ARGS("boot", "--timeout", "1", "--", "/bin/spin"), NULL, 20);
	cr_assert_eq(R.status, 124, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "timed out"), "stderr: %s", R.err);
	cr_assert_lt(R.secs, test_time(5.0), "took %.1f s", R.secs);
}

Test(boot, unknown_syscall_storm_is_stopped)
{
	boot(ARGS("boot", "--timeout", "30", "--", "/bin/enosys_storm"), NULL, 40);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "unsupported system calls"), "stderr: %s", R.err);
}

Test(boot, randomness_differs_between_boots)
{
	char first[256];
	boot(ARGS("boot", "--", "/bin/randbytes"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	snprintf(first, sizeof(first), "%s", R.out);
	char *nl = strchr(first, '\n');
	cr_assert_not_null(nl);
	cr_assert(strcmp(nl + 1, first) != 0);
	run_result_free(&R);
	boot(ARGS("boot", "--", "/bin/randbytes"), NULL, 30);
	cr_assert_str_neq(R.out, first, "two boots drew the same random bytes");
}

Test(boot, trace_syscalls_names_them)
{
	boot(ARGS("boot", "--trace-syscalls", "--", "/bin/hello"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "write") || strstr(R.err, "writev"), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "[syscall]"), "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "hello from snapbox\n");
}

/* The guest reports, once, the path its system calls took; it must be the
 * one this kind of host provides (run.h: expected_syscall_path). */
Test(boot, stats_report_the_syscall_path_this_host_provides)
{
	const char *why, *want = expected_syscall_path(&why), *got;

	if (test_on_proc())
		cr_skip_test("KVM only: the VMX/SVM/kvm_pvm syscall path");

	boot(ARGS("boot", "--stats", "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	got = syscall_path_after(R.err, "stats: syscall_path=");
	cr_assert_not_null(got, "no syscall_path line in --stats: %s", R.err);
	cr_assert_str_eq(got, want, "system calls took the %s path, expected %s (%s): %s", got, want,
			 why, R.err);
	cr_assert(strstr(R.err, !strcmp(want, "user") ? "user-mode syscall layer (kvm_pvm" :
				!strcmp(want, "ud-kernel") ? "ud2 -> #UD in kernel mode (VMX/SVM)" :
				"ud2 -> #UD from user mode"), "description: %s", R.err);

	/* many system calls, one report: Lua makes dozens */
	run_result_free(&R);
	boot(ARGS("boot", "--stats", "--", "/bin/lua", "-e", "io.write(('y'):rep(5), '\\n')"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "yyyyy\n");
	got = syscall_path_after(R.err, "stats: syscall_path=");
	cr_assert(got && !strcmp(got, want), "lua: %s", R.err);
	cr_assert_null(strstr(strstr(R.err, "syscall_path=") + 1, "syscall_path="), "two reports: %s",
		       R.err);
}

Test(boot, usage_errors)
{
	boot(ARGS("boot"), NULL, 30);
	cr_assert_eq(R.status, 2, "no program: %s", R.err);
	run_result_free(&R);
	boot(ARGS("frobnicate"), NULL, 30);
	cr_assert_eq(R.status, 2);
	run_result_free(&R);
	boot(ARGS("boot", "--mem", "lots", "--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 2, "stderr: %s", R.err);
}
