/* SPDX-License-Identifier: MIT */
/*
 * tests/kvmhost/run, the emulated KVM host the KVM suites run in where
 * /dev/kvm is missing: it gives a working /dev/kvm with AMD SVM, passes the
 * command's exit status and environment through, shares the work tree, and
 * tells a crashed or hung emulated machine apart (252, 253).  Needs no KVM
 * on this machine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

TestSuite(kvmhost, .timeout = 300);

/* A shell command line's exit status, its output in out. */
static int sh(const char *line, char *out, size_t len)
{
	FILE *p = popen(line, "r");
	cr_assert_not_null(p, "popen: %s", strerror(errno));
	size_t n = fread(out, 1, len - 1, p), k = 0;
	for (size_t i = 0; i < n; i++) /* the emulated machine's serial port says \r\n */
		if (out[i] != '\r')
			out[k++] = out[i];
	out[k] = 0;
	int st = pclose(p);
	cr_assert(WIFEXITED(st), "%s died: %#x", line, st);
	return WEXITSTATUS(st);
}

/* Run tests/kvmhost/run with a shell command; its exit status, output in out. */
static int kvmhost(const char *timeout, const char *label, const char *cmd, char *out, size_t len)
{
	char line[4096];
	snprintf(line, sizeof(line),
		 "KVMHOST_LABEL=%s tests/kvmhost/run %s%s sh -c '%s' 2>&1 </dev/null", label,
		 timeout ? "--timeout " : "", timeout ? timeout : "", cmd);
	return sh(line, out, len);
}

Test(kvmhost, has_a_kvm_with_svm_and_passes_status_and_environment)
{
	char out[8192];
	setenv("KVMHOST_PROBE", "it came through", 1);
	int st = kvmhost(NULL, "probe",
			 "test -c /dev/kvm && echo kvm-ok; grep -qw svm /proc/cpuinfo && echo svm-ok; "
			 "test -d /sys/module/kvm_amd && echo kvm_amd-ok; echo \"$KVMHOST_PROBE\"; "
			 "pwd; echo shared > build/kvmhost/probe.txt; exit 7",
			 out, sizeof(out));
	cr_assert_eq(st, 7, "status %d; output: %s", st, out);
	cr_assert(strstr(out, "kvm-ok"), "no /dev/kvm inside: %s", out);
	cr_assert(strstr(out, "svm-ok"), "no SVM inside: %s", out);
	cr_assert(strstr(out, "kvm_amd-ok"), "kvm_amd not loaded: %s", out);
	cr_assert(strstr(out, "it came through"), "environment lost: %s", out);
	char cwd[4096];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert(strstr(out, cwd), "not run in %s: %s", cwd, out);
	size_t n;
	uint8_t *f = slurp("build/kvmhost/probe.txt", &n);
	cr_assert(n == 7 && !memcmp(f, "shared\n", 7), "the work tree is not shared read-write");
	free(f);
	unlink("build/kvmhost/probe.txt");
}

Test(kvmhost, the_host_file_system_is_read_only_for_it)
{
	char out[8192];
	char path[] = "/var/tmp/snapbox-kvmhost-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cat %s && echo visible; echo changed > %s; rm -f /etc/hostname; exit 0",
		 path, path);
	int st = kvmhost(NULL, "rofs", cmd, out, sizeof(out));
	cr_assert_eq(st, 0, "%s", out);
	cr_assert(strstr(out, "visible"), "the host's files are not visible: %s", out);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_size, 0, "a write inside reached the host's file");
	cr_assert_eq(access("/etc/hostname", F_OK), 0, "a removal inside reached the host");
	unlink(path);
}

Test(kvmhost, a_hung_machine_is_stopped_with_253)
{
	char out[8192];
	int st = kvmhost("20", "hang", "sleep 600", out, sizeof(out));
	cr_assert_eq(st, 253, "status %d: %s", st, out);
	cr_assert(strstr(out, "did not finish within 20 s"), "%s", out);
}

Test(kvmhost, a_crashed_machine_is_reported_with_252)
{
	char out[8192];
	int st = kvmhost(NULL, "crash", "echo c > /proc/sysrq-trigger; sleep 600", out, sizeof(out));
	cr_assert_eq(st, 252, "status %d: %s", st, out);
	cr_assert(strstr(out, "without an exit status"), "%s", out);
}

/* CI clones the project anywhere, /tmp included (which the emulated machine
 * mounts a tmpfs of its own on): the work tree must still be the shared one. */
Test(kvmhost, a_work_tree_under_tmp_is_shared_too)
{
	char here[1024], line[8192], out[4096];
	char *dir = make_tempdir();
	cr_assert_not_null(dir);
	cr_assert_not_null(getcwd(here, sizeof(here)));
	snprintf(line, sizeof(line),
		 "cd %s && KVMHOST_LABEL=tmp KVMHOST_DIR=%s/build/kvmhost %s/tests/kvmhost/run "
		 "sh -c 'pwd; echo from-inside > made-inside' 2>&1 </dev/null",
		 dir, here, here);
	int st = sh(line, out, sizeof(out));
	cr_assert_eq(st, 0, "status %d: %s", st, out);
	cr_assert(strstr(out, dir), "not run in %s: %s", dir, out);
	char path[4200];
	size_t n;
	snprintf(path, sizeof(path), "%s/made-inside", dir);
	uint8_t *f = slurp(path, &n);
	cr_assert(n == 12 && !memcmp(f, "from-inside\n", 12));
	free(f);
	remove_tempdir(&dir);
}

/* The emulated host runs Debian's stock kernel, whose vm.mmap_min_addr is
 * 64 KiB (ours: 4 KiB): the proc backend, jailed as root, must work there
 * too (a stock kernel is what users have). */
Test(kvmhost, the_proc_backend_runs_jailed_on_a_stock_debian_kernel)
{
	char out[8192];
	int st = kvmhost(NULL, "proc",
			 "sysctl -n vm.mmap_min_addr; "
			 "build/snapbox boot --backend proc --stats -- /bin/lua -e \"print(6*7)\" 2>&1",
			 out, sizeof(out));
	cr_assert_eq(st, 0, "status %d: %s", st, out);
	cr_assert(strstr(out, "65536\n"), "not a stock mmap_min_addr: %s", out);
	cr_assert(strstr(out, "\n42\n"), "no answer: %s", out);
	cr_assert(strstr(out, "stats: jail: user(65534:65534) pid mnt net"), "not jailed: %s", out);
}
