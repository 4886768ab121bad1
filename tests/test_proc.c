/* SPDX-License-Identifier: MIT */
/*
 * The proc backend end to end (`snapbox boot --backend proc`): real guests
 * in a seccomp-confined sandbox process.  None of these needs /dev/kvm, and
 * one test hides it to make sure.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include "run.h"

static struct run_result R;

static void boot(const char *const *argv, const char *in, double limit)
{
	run_checked(argv, in, limit, &R);
}

static void fini(void)
{
	run_result_free(&R);
}

TestSuite(proc, .fini = fini, .timeout = 60);

#define PROC(...) ((const char *const[]){ "snapbox", "boot", "--backend", "proc", __VA_ARGS__, NULL })

Test(proc, lua_prints_and_computes)
{
	boot(PROC("--", "/bin/lua", "-e", "print(1+1)"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2\n");

	run_result_free(&R);
	boot(PROC("--", "/bin/lua", "-e",
		  "local s = 0 for i = 1, 200000 do s = s + i * i end print(s, ('x'):rep(3), 2^10)"),
	     NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2666686666700000\txxx\t1024.0\n", "stderr: %s", R.err);
}

Test(proc, lua_handler_answers_request_on_stdin)
{
	char want[128];

	lua_answer(10, want, sizeof(want));
	boot(PROC("--", "/bin/lua", "/app/handler.lua"), "{\"n\": 10}", 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, want);
}

Test(proc, stdin_reaches_the_program_byte_for_byte)
{
	size_t n = 3 << 20;
	char *in = malloc(n + 1);

	for (size_t i = 0; i < n; i++)
		in[i] = 'a' + (char)((i * 7 + i / 4096) % 26);
	in[n] = 0;
	cr_assert_eq(run_snapbox(PROC("--", "/bin/cat"), in, n, 60, &R), 0);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, n);
	cr_assert(!memcmp(R.out, in, n), "cat changed the data");
	free(in);

	run_result_free(&R);
	boot(PROC("--", "/bin/cat"), "hi\n", 30);
	cr_assert_str_eq(R.out, "hi\n");
}

Test(proc, exit_codes_propagate)
{
	boot(PROC("--", "/bin/exitcode", "42"), NULL, 30);
	cr_assert_eq(R.status, 42, "stderr: %s", R.err);
	run_result_free(&R);
	boot(PROC("--", "/bin/false"), NULL, 30);
	cr_assert_eq(R.status, 1);
	run_result_free(&R);
	boot(PROC("--", "/bin/true"), NULL, 30);
	cr_assert_eq(R.status, 0);
	cr_assert_eq(R.err_len, 0, "stderr: %s", R.err);
}

Test(proc, faults_report_signal_rip_and_address)
{
	boot(PROC("--", "/bin/segv"), NULL, 30);
	cr_assert_eq(R.status, 139, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "killed by SIGSEGV (page fault, #PF, write to address 0x10"),
		  "stderr: %s", R.err);
	cr_assert(strstr(R.err, "at rip 0x4"), "stderr: %s", R.err);

	run_result_free(&R);
	boot(PROC("--", "/bin/divzero"), NULL, 30);
	cr_assert_eq(R.status, 136, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "killed by SIGFPE (divide error, #DE) at rip 0x4"), "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 0, "out: %s", R.out);
}

Test(proc, missing_program_and_timeout)
{
	boot(PROC("--", "/bin/nonexistent"), NULL, 30);
	cr_assert_eq(R.status, 127, "stderr: %s", R.err);

	run_result_free(&R);
	boot(PROC("--timeout", "0.5", "--", "/bin/spin"), NULL, 30);
	cr_assert_eq(R.status, 124, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "timed out"), "stderr: %s", R.err);
}

Test(proc, trace_syscalls)
{
	boot(PROC("--trace-syscalls", "--", "/bin/hello"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "hello from snapbox\n");
	cr_assert(strstr(R.err, "[syscall] arch_prctl(4098, "), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "[syscall] writev(1, "), "stderr: %s", R.err);
}

/* Live sandbox processes whose snapbox is gone (reparented to init): leaks. */
static int orphaned_sandboxes(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	cr_assert(d);
	while ((e = readdir(d))) {
		char path[300], buf[512];
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *c = strrchr(buf, ')');
			char state = 0;
			int ppid = 0;
			/* comm is the stub's file name; a zombie is already dead */
			if (strstr(buf, "(proc-stub)") && c && sscanf(c + 2, "%c %d", &state, &ppid) == 2 &&
			    ppid == 1 && state != 'Z')
				n++;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

Test(proc, hostile_program_is_contained)
{
	/* the probe's path is in /tmp: the guest kernel's own tmpfs (in the
	 * sandbox's RAM) creates it there, never the host's file */
	static const char *const want[] = {
		"open: 3", "open+magic: 4", "openat: 5", "mkdir: -17", "socket: -38",
		"socket+magic: -38", "execve: -38", "fork: -38", "clone: -38", "ptrace: -38",
		"seccomp: -38", "prctl: -38", "getpid: 1", "mmap(stub, fixed): -22",
		"munmap(stub): -22", "arch_prctl(SET_GS)+magic: -22", "read(chan): -9",
		"read(chan, 64)+magic: -9", "write(chan, 8)+magic: -9",
		"write(1000+2^32)+magic: -9", "write(chan, 16+65537)+magic: -9",
		"open(/proc/self/maps): -2", "escape: done",
	};

	unlink("/tmp/snapbox-escape-probe");
	boot(PROC("--", "/bin/escape"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "%s\n", want[i]);
		cr_assert(strstr(R.out, line), "missing '%s' in:\n%s", want[i], R.out);
	}
	cr_assert_neq(access("/tmp/snapbox-escape-probe", F_OK), 0, "the guest created a host file");
	cr_assert_eq(orphaned_sandboxes(), 0, "a sandbox process outlived its snapbox");
}

static void hostile(const char *mode, int status, const char *msg)
{
	run_result_free(&R);
	boot(PROC("--", "/bin/escape", mode), NULL, 30);
	cr_assert_eq(R.status, status, "%s: status %d, stderr: %s", mode, R.status, R.err);
	cr_assert(strstr(R.err, msg), "%s: stderr: %s", mode, R.err);
	cr_assert(!strstr(R.out, "survived"), "%s: out: %s", mode, R.out);
}

Test(proc, hostile_endings_are_reported)
{
	hostile("chan", 125, "the sandbox sent a malformed message");
	hostile("chanptr", 125, "bad pointer to hypercall WRITE");
	hostile("stubwrite", 139, "write to address 0x7f0000001000, protection violation");
	/* the stub's entry, run on the guest's stack: it reads its auxiliary
	 * vector from there, and either faults (reported as the guest's) or
	 * goes on until its first system call kills it */
	run_result_free(&R);
	boot(PROC("--", "/bin/escape", "stubjump"), NULL, 30);
	cr_assert((R.status == 139 && strstr(R.err, "at rip 0x7f00000")) ||
		  (R.status == 125 && strstr(R.err, "without a word from its guest kernel")),
		  "stubjump: status %d, stderr: %s", R.status, R.err);
	cr_assert(!strstr(R.out, "survived"), "stubjump: out: %s", R.out);
	hostile("syslayer", 132, "SIGILL (invalid opcode, #UD) at rip 0x201000");
	hostile("int80", 139, "SIGSEGV (general protection fault, #GP)");
	hostile("flood", 125, "10000 unsupported system calls");
	/* one-way output messages (ABI 4) are as untrusted as hypercalls */
	hostile("outfd", 125, "output for fd 3");
	cr_assert_str_eq(R.err, "snapbox: the guest sent output for fd 3 (only 1 and 2 are its "
		       "stdout and stderr)\n");
	hostile("outlen", 125, "output message");
	cr_assert_str_eq(R.err, "snapbox: the sandbox sent an output message of 21 bytes that says "
		       "it carries 100000\n");
	cr_assert(!strstr(R.out, "hello"), "the bad message was written: %s", R.out);
	cr_assert_eq(orphaned_sandboxes(), 0, "a sandbox process outlived its snapbox");
}

/* The largest one-way output message the filter lets through (one byte
 * more is trapped: see hostile_program_is_contained) is taken whole. */
Test(proc, the_largest_output_message_is_taken)
{
	char *want = malloc(65536 + 64);
	int n;

	for (n = 0; n < 65536; n++)
		want[n] = (char)('a' + n % 26);
	snprintf(want + n, 64, "outmax: %d\n", 16 + 65536);
	boot(PROC("--", "/bin/escape", "outmax"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, strlen(want), "out: %zu bytes", R.out_len);
	cr_assert(!memcmp(R.out, want, R.out_len), "the message's bytes changed");
	free(want);
}

/*
 * ABI 4: stdout/stderr go one way, inline on the channel, the guest not
 * waiting for the monitor.  Larger than one message (64 KiB) and than the
 * socket's buffer (~208 KiB, so the guest blocks on a full socket), it
 * arrives whole and in order, before the exit status; as many small writes
 * (stdio's buffer) and as one write of 1 MiB split into messages.
 */
Test(proc, one_way_output_arrives_whole_and_in_order)
{
	enum { LINES = 100000, WORDS = 131072 };
	char line[16];

	boot(PROC("--stats", "--", "/bin/lua", "-e",
		  "for i = 1, 100000 do io.write(string.format('%07d\\n', i)) end"), NULL, 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 8 * LINES, "%zu bytes of output", R.out_len);
	for (int i = 1; i <= LINES; i++) {
		snprintf(line, sizeof(line), "%07d\n", i);
		cr_assert(!memcmp(R.out + 8 * (i - 1), line, 8), "line %d is %.8s", i, R.out + 8 * (i - 1));
	}
	cr_assert_gt(stats_calls(R.err, "OUTPUT"), 1, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "WRITE"), 0, "synchronous writes on proc: %s", R.err);

	boot(PROC("--stats", "--", "/bin/lua", "-e",
		  "local t = {} for i = 1, 131072 do t[i] = string.format('%07x\\n', i) end "
		  "io.write(table.concat(t)) io.stdout:flush() io.stderr:write('after\\n') os.exit(7)"),
	     NULL, 60);
	cr_assert_eq(R.status, 7, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 8 * WORDS, "%zu bytes of output", R.out_len);
	for (int i = 1; i <= WORDS; i++) {
		snprintf(line, sizeof(line), "%07x\n", i);
		cr_assert(!memcmp(R.out + 8 * (i - 1), line, 8), "word %d is %.8s", i, R.out + 8 * (i - 1));
	}
	cr_assert(strstr(R.err, "after\n"), "stderr: %s", R.err);
	/* 1 MiB in one write: 16 messages of 64 KiB */
	cr_assert_geq(stats_calls(R.err, "OUTPUT"), 16, "stderr: %s", R.err);
}

/* A monitor killed outright takes its sandbox with it (PR_SET_PDEATHSIG). */
Test(proc, sandbox_dies_with_its_monitor)
{
	char cmd[512];
	int pid = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "%s boot --backend proc -- /bin/spin & m=$!; "
		 "for i in $(seq 100); do p=$(pgrep -P $m) && break; sleep 0.1; done; "
		 "echo $p; kill -9 $m",
		 snapbox_bin());
	f = popen(cmd, "r");
	cr_assert(f);
	cr_assert_eq(fscanf(f, "%d", &pid), 1, "no sandbox process under the monitor");
	pclose(f);
	for (int i = 0; i < 100; i++) {
		char path[64], st[256] = "";
		FILE *s;

		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		s = fopen(path, "r");
		if (!s || !fgets(st, sizeof(st), s) || strstr(st, ") Z ")) {
			if (s)
				fclose(s);
			return;
		}
		fclose(s);
		usleep(10000);
	}
	cr_assert_fail("sandbox %d still runs 1 s after its monitor was killed", pid);
}

/* Without /dev/kvm (hidden by an empty /dev in a mount namespace of our
 * own) the proc backend works the same. */
Test(proc, works_without_dev_kvm)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("none", "/dev", "tmpfs", 0, "size=64k") < 0)
		cr_skip_test("cannot hide /dev/kvm here (needs root and mount namespaces)");
	cr_assert_neq(access("/dev/kvm", F_OK), 0);
	boot(PROC("--", "/bin/lua", "-e", "print(6*7)"), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "42\n");
}

/* `snapbox info`: both backends, usable or not and why, and what auto picks. */
Test(proc, info_names_the_backends_and_the_default)
{
	boot(((const char *const[]){ "snapbox", "info", NULL }), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "backend proc  usable: "), "out: %s", R.out);
	cr_assert(strstr(R.out, "backend kvm   "), "out: %s", R.out);
	if (kvm_usable())
		cr_assert(strstr(R.out, "default (--backend auto): kvm\n"), "out: %s", R.out);
	else
		cr_assert(strstr(R.out, "backend kvm   not usable: ") &&
			  strstr(R.out, "default (--backend auto): proc\n"), "out: %s", R.out);
}
