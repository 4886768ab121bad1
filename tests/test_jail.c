/* SPDX-License-Identifier: MIT */
/*
 * The proc backend's jail (backend/proc/jail.h) end to end, through the
 * snapbox binary: namespaces, the cgroup and its limits, its removal, an
 * out-of-memory guest, and the fallback without root.  No /dev/kvm needed.
 * The namespace and cgroup tests need root (they skip otherwise).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"
#include "snapshot/snapshot.h"
#include "run.h"

static struct run_result R;

static void boot(const char *const *argv, double limit)
{
	run_checked(argv, NULL, limit, &R);
}

static void fini(void)
{
	run_result_free(&R);
}

TestSuite(jail, .fini = fini, .timeout = 60);

#define PROC(...) ((const char *const[]){ "snapbox", "boot", "--backend", "proc", __VA_ARGS__, NULL })

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (namespaces, cgroups)");
}

/* ---- cgroups, seen from here ---------------------------------------------- */

/* Mount point of the cgroup2 fs (ctl NULL) or the v1 hierarchy of ctl. */
static int cgroup_mount(const char *ctl, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024];
	int found = 0;

	cr_assert(f);
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[256], fstype[64], opts[512];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %*s %511s", fstype, opts) != 2)
			continue;
		if (ctl) {
			char pat[80];

			snprintf(pat, sizeof(pat), ",%s,", ctl);
			memmove(opts + 1, opts, strlen(opts) + 1);
			opts[0] = ',';
			strcat(opts, ",");
			if (strcmp(fstype, "cgroup") || !strstr(opts, pat))
				continue;
		} else if (strcmp(fstype, "cgroup2")) {
			continue;
		}
		snprintf(out, len, "%s", mnt);
		found = 1;
	}
	fclose(f);
	return found;
}

/* The directory of pid's per-sandbox cgroup (.../snapbox/sb-...) holding the
 * memory limit, and which file has it; 0 if it is in none. */
static int sandbox_memcg(int pid, char *dir, size_t len, const char **limit_file)
{
	char path[64], line[1024], mnt[256];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2 || !strstr(c2, "/snapbox/sb-"))
			continue;
		*c2++ = 0;
		c2[strcspn(c2, "\n")] = 0;
		if (!strcmp(line, "0") && !c1[1] && cgroup_mount(NULL, mnt, sizeof(mnt))) {
			*limit_file = "memory.max";
		} else if (strstr(c1 + 1, "memory") && cgroup_mount("memory", mnt, sizeof(mnt))) {
			*limit_file = "memory.limit_in_bytes";
		} else {
			continue;
		}
		snprintf(dir, len, "%s%s", mnt, c2);
		found = 1;
	}
	fclose(f);
	return found;
}

/* Our own cgroup of the v1 hierarchy of ctl (NULL: the cgroup2 one), as
 * /proc/self/cgroup says: "/" or "/a/b". */
static void own_cgroup(const char *ctl, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[1024];

	snprintf(out, len, "/");
	while (f && fgets(line, sizeof(line), f)) {
		/* "N:ctl[,ctl...]:/path" (v1) or "0::/path" (v2) */
		char *ctls = strchr(line, ':'), *path = ctls ? strchr(ctls + 1, ':') : NULL;
		bool match = false;

		if (!path)
			continue;
		*ctls++ = 0;
		*path++ = 0;
		path[strcspn(path, "\n")] = 0;
		if (!ctl)
			match = !*ctls;
		for (char *t = ctls, *save = NULL; ctl && !match && (t = strtok_r(t, ",", &save));
		     t = NULL)
			match = !strcmp(t, ctl);
		if (match) {
			snprintf(out, len, "%s", path);
			break;
		}
	}
	if (f)
		fclose(f);
}

/* Per-sandbox cgroups whose monitor (sb-<pid>-...) is gone, under our own
 * cgroup (where our jails make theirs: another session's on this machine
 * are not ours to judge, and their pids may not even be visible here). */
static int dead_monitor_cgroups(int verbose)
{
	const char *ctls[] = { NULL, "memory", "cpu" };
	int n = 0;

	for (size_t i = 0; i < 3; i++) {
		char mnt[256], own[512], cmd[1000];
		FILE *f;

		if (!cgroup_mount(ctls[i], mnt, sizeof(mnt)))
			continue;
		own_cgroup(ctls[i], own, sizeof(own));
		snprintf(cmd, sizeof(cmd), "find '%s%s' -maxdepth 6 -type d -name 'sb-*' 2>/dev/null",
			 mnt, strcmp(own, "/") ? own : "");
		f = popen(cmd, "r");
		cr_assert(f);
		for (char line[1024]; fgets(line, sizeof(line), f);) {
			char *b = strrchr(line, '/');
			int pid;

			if (b && sscanf(b, "/sb-%d-", &pid) == 1 && kill(pid, 0) < 0 && errno == ESRCH) {
				if (verbose)
					fprintf(stderr, "leaked cgroup: %s", line);
				n++;
			}
		}
		pclose(f);
	}
	return n;
}

/* Leaks: cgroups of dead monitors that the next sandbox's start does not
 * sweep.  A monitor killed outright (test_proc does it) cannot remove its
 * cgroup; the next jail__prepare does, once the orphaned sandbox has been
 * reaped by the host's init (a zombie keeps a cgroup busy; this machine's
 * init reaps after ~2 s, later when loaded), hence rounds for up to 15 s. */
static int leaked_cgroups(void)
{
	double t0 = test_now();
	int n;

	/* a cgroup a `snapbox run` that just exited is still removing is not
	 * a leak: only what is still there after the rounds counts */
	while ((n = dead_monitor_cgroups(0)) && test_now() - t0 < test_time(15)) {
		struct run_result r;

		cr_assert_eq(run_snapbox(PROC("--", "/bin/true"), NULL, 0, 30, &r), 0);
		run_result_free(&r);
		usleep(500000);
	}
	if (n)
		dead_monitor_cgroups(1);
	return n;
}

/* ---- tests ---------------------------------------------------------------- */

Test(jail, lua_runs_in_the_jail_and_stats_name_the_layers)
{
	boot(PROC("--jail", "on", "--stats", "--", "/bin/lua", "-e", "print(1+1)"), 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2\n");
	if (geteuid() == 0)
		cr_assert(strstr(R.err, "stats: jail: user(65534:65534) pid mnt net cgroup-"),
			  "stderr: %s", R.err);
	else
		cr_assert(strstr(R.err, "stats: jail: none; off: not root"), "stderr: %s", R.err);

	/* faults and the exit status still arrive through the stub's handlers,
	 * with the stub as PID 1 of its namespace */
	run_result_free(&R);
	boot(PROC("--", "/bin/segv"), 30);
	cr_assert_eq(R.status, 139, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "killed by SIGSEGV (page fault, #PF, write to address 0x10"),
		  "stderr: %s", R.err);
	run_result_free(&R);
	boot(PROC("--", "/bin/exitcode", "42"), 30);
	cr_assert_eq(R.status, 42, "stderr: %s", R.err);
}

Test(jail, off_is_the_prototype_as_it_was)
{
	boot(PROC("--jail", "off", "--stats", "--", "/bin/lua", "-e", "print(1+1)"), 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2\n");
	cr_assert(strstr(R.err, "stats: jail: none\n"), "stderr: %s", R.err);
}

/* Not root: seccomp and the lone fd only, said so, and the guest runs. */
Test(jail, without_root_it_falls_back_and_says_so)
{
	char cmd[8192], out[4096] = "", bin[4096];
	size_t n;
	FILE *f;
	int st;

	need_root(); /* to become someone else */
	if (system("command -v setpriv >/dev/null 2>&1") != 0)
		cr_skip_test("no setpriv(1) to drop root with");
	snprintf(cmd, sizeof(cmd),
		 "cd / && setpriv --reuid=65534 --regid=65534 --clear-groups -- %s boot --backend proc "
		 "--stats -- /bin/lua -e 'print(1+1)' 2>&1", realpath(snapbox_bin(), bin) ? bin : "?");
	f = popen(cmd, "r");
	cr_assert(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	st = pclose(f);
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0 && strstr(out, "ermission denied"))
		cr_skip_test("snapbox is not reachable by uid 65534 here: %s", out);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, out);
	cr_assert(strstr(out, "2\n"), "%s", out);
	cr_assert(strstr(out, "stats: jail: none; off: not root"), "%s", out);
}

static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
	return (int)n;
}

/* The sandbox of a monitor (comm proc-stub, parent monitor), waited for. */
/* The monitor's sandbox process (proc-stub), once it runs the guest: the
 * shell is forked and exec'd before its filter goes on. */
static int find_sandbox(int monitor)
{
	for (double t0 = test_now(); test_now() - t0 < test_time(5);) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		int found = 0;

		cr_assert(d);
		while (!found && (e = readdir(d))) {
			char path[300], buf[512];
			int ppid;
			char *c;

			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
			if (read_file(path, buf, sizeof(buf)) <= 0 || !strstr(buf, "(proc-stub)"))
				continue;
			c = strrchr(buf, ')');
			if (c && sscanf(c + 2, "%*c %d", &ppid) == 1 && ppid == monitor)
				found = atoi(e->d_name);
		}
		closedir(d);
		if (found) {
			char path[64], buf[4096];
			snprintf(path, sizeof(path), "/proc/%d/status", found);
			if (read_file(path, buf, sizeof(buf)) > 0 && strstr(buf, "Seccomp:\t2"))
				return found;
		}
		usleep(10000);
	}
	return 0;
}

static void same_ns(int pid, const char *ns, int want_same)
{
	char a[64], b[64], la[128] = "", lb[128] = "";

	snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, ns);
	snprintf(b, sizeof(b), "/proc/self/ns/%s", ns);
	cr_assert(readlink(a, la, sizeof(la) - 1) > 0, "readlink %s", a);
	cr_assert(readlink(b, lb, sizeof(lb) - 1) > 0, "readlink %s", b);
	if (want_same)
		cr_assert_str_eq(la, lb, "%s", ns);
	else
		cr_assert_str_neq(la, lb, "the sandbox shares our %s namespace (%s)", ns, la);
}

/* The monitor's sandbox process (or the monitor killed and the test failed),
 * checked to be jailed: its own pid (as PID 1), mnt, net and user
 * namespaces, uid/gid 65534, no capabilities, its filter on. */
static int jailed_sandbox(int monitor)
{
	char path[64], buf[4096], *line;
	int sb = find_sandbox(monitor);

	if (!sb) {
		kill(monitor, SIGKILL);
		waitpid(monitor, NULL, 0);
		cr_assert_fail("no sandbox process (proc-stub) under snapbox %d", monitor);
	}
	same_ns(sb, "pid", 0);
	same_ns(sb, "mnt", 0);
	same_ns(sb, "net", 0);
	same_ns(sb, "user", 0);
	snprintf(path, sizeof(path), "/proc/%d/status", sb);
	cr_assert(read_file(path, buf, sizeof(buf)) > 0);
	cr_assert((line = strstr(buf, "NSpid:")), "%s", buf);
	cr_assert(strstr(line, "\t1\n"), "not PID 1 of its namespace: %.40s", line);
	cr_assert(strstr(buf, "Uid:\t65534\t65534\t65534\t65534"), "%s", buf);
	cr_assert(strstr(buf, "Gid:\t65534\t65534\t65534\t65534"), "%s", buf);
	cr_assert(strstr(buf, "CapEff:\t0000000000000000"), "%s", buf);
	cr_assert(strstr(buf, "Seccomp:\t2"), "%s", buf);
	return sb;
}

Test(jail, sandbox_has_its_namespaces_ids_and_cgroup_and_the_cgroup_goes)
{
	char dir[600], path[700], buf[4096], *line;
	const char *limit_file = NULL;
	int monitor, sb, st, devnull;

	need_root();
	monitor = fork();
	cr_assert(monitor >= 0);
	if (monitor == 0) {
		const char *bin = snapbox_bin();

		devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2); /* "timed out after 3 s": expected */
		execl(bin, bin, "boot", "--backend", "proc", "--mem-max", "96M", "--cpu-max", "50",
		      "--timeout", "3", "--", "/bin/spin", (char *)NULL);
		_exit(127);
	}
	sb = jailed_sandbox(monitor);

	/* nothing of the host file system: its root is an empty tmpfs + /proc */
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", sb);
	cr_assert(read_file(path, buf, sizeof(buf)) > 0);
	cr_assert(strstr(buf, " / / ro,") && strstr(buf, " - tmpfs "), "%s", buf);
	cr_assert(strstr(buf, " /proc ") && strstr(buf, "subset=pid"), "%s", buf);
	cr_assert_eq(strchr(strchr(strchr(buf, '\n') + 1, '\n') + 1, '\n'), NULL,
		     "more than two mounts:\n%s", buf);

	/* a cgroup of its own with the limits asked for */
	cr_assert(sandbox_memcg(sb, dir, sizeof(dir), &limit_file), "not in a snapbox cgroup");
	snprintf(path, sizeof(path), "%s/%s", dir, limit_file);
	cr_assert(read_file(path, buf, sizeof(buf)) > 0, "%s", path);
	cr_assert_eq(strtoull(buf, NULL, 10), 96ULL << 20, "%s: %s", path, buf);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", sb);
	cr_assert(read_file(path, buf, sizeof(buf)) > 0);
	if (!strcmp(limit_file, "memory.max")) {
		snprintf(path, sizeof(path), "%s/cpu.max", dir);
		cr_assert(read_file(path, buf, sizeof(buf)) > 0);
		cr_assert_str_eq(buf, "50000 100000\n");
	} else if ((line = strstr(buf, ":cpu:/"))) {
		char mnt[256];

		cr_assert(cgroup_mount("cpu", mnt, sizeof(mnt)));
		line[strcspn(line, "\n")] = 0;
		snprintf(path, sizeof(path), "%s%s/cpu.cfs_quota_us", mnt, line + 5);
		cr_assert(read_file(path, buf, sizeof(buf)) > 0, "%s", path);
		cr_assert_eq(atoi(buf), 50000, "%s: %s", path, buf);
	}

	/* the monitor kills it (SIGKILL reaches PID 1 of a namespace from
	 * outside) at the timeout, and removes the cgroup */
	cr_assert_eq(waitpid(monitor, &st, 0), monitor);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 124, "snapbox status %d", st);
	cr_assert_neq(access(dir, F_OK), 0, "%s is still there", dir);
	cr_assert_eq(kill(sb, 0), -1, "the sandbox %d outlived its monitor", sb);
	cr_assert_eq(leaked_cgroups(), 0);
}

Test(jail, a_guest_beyond_its_memory_limit_is_killed_and_reported)
{
	need_root();
	boot(PROC("--mem-max", "48M", "--", "/bin/memtest", "200"), 60);
	if (strstr(R.err, "off: no cgroup"))
		cr_skip_test("no memory cgroup here");
	cr_assert_eq(R.status, 137, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "snapbox: the sandbox ran out of memory: its cgroup's limit (48 MiB) "
			 "was reached and the kernel's OOM killer ended it\n"),
		  "stderr: %s", R.err);
	cr_assert_eq(leaked_cgroups(), 0);

	/* the next sandbox is fine */
	run_result_free(&R);
	boot(PROC("--mem-max", "48M", "--", "/bin/lua", "-e", "print(1+1)"), 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2\n");
}

/* A cgroup fs we cannot write (remounted read-only in a mount namespace of
 * this test's own): the cgroup layer is off, said so, the rest holds. */
Test(jail, unwritable_cgroup_fs_turns_the_cgroup_layer_off)
{
	FILE *f;
	char line[1024];
	int n = 0;

	need_root();
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_skip_test("no mount namespace here");
	f = fopen("/proc/self/mountinfo", "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		char mnt[256], fstype[64];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s", fstype) != 1 || strncmp(fstype, "cgroup", 6))
			continue;
		cr_assert_eq(mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0,
			     "remount %s read-only: %s", mnt, strerror(errno));
		n++;
	}
	fclose(f);
	if (!n)
		cr_skip_test("no cgroup fs mounted");
	boot(PROC("--stats", "--", "/bin/lua", "-e", "print(1+1)"), 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "2\n");
	cr_assert(strstr(R.err, "stats: jail: user(65534:65534) pid mnt net; off: "), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "not writable"), "stderr: %s", R.err);
}

/* ---- clones ------------------------------------------------------------- */

#define TEMPLATE(store, ...) ((const char *const[]){ "snapbox", "template", "create", "fn", \
	"--store", store, "--backend", "proc", __VA_ARGS__, "--", "/bin/lua", "/app/handler.lua", NULL })

/* A clone's sandbox process (the shell forked before the request, then
 * given mem.img) gets the same jail as a boot: its own namespaces, ids and
 * a cgroup with the default limits (guest RAM + 64 MiB, one CPU), made
 * before the request and removed after; and the answer is right. */
Test(jail, a_jailed_clone_has_its_namespaces_and_cgroup_and_answers_right)
{
	char *store = make_tempdir();
	char dir[600], path[700], buf[4096], want[128], out[4096] = "";
	const char *limit_file = NULL;
	int in[2], outp[2], monitor, sb, st;
	size_t n = 0;
	ssize_t k;

	need_root();
	boot(TEMPLATE(store, "--jail", "on"), 60);
	cr_assert_eq(R.status, 0, "template create: %s", R.err);

	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(outp), 0);
	monitor = fork();
	cr_assert(monitor >= 0);
	if (monitor == 0) {
		const char *bin = snapbox_bin();

		dup2(in[0], 0);
		dup2(outp[1], 1);
		close(in[1]);
		close(outp[0]);
		execl(bin, bin, "run", "--store", store, "--timeout", "20", "fn",
		      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	sb = jailed_sandbox(monitor);
	cr_assert(sandbox_memcg(sb, dir, sizeof(dir), &limit_file), "the clone is in no snapbox cgroup");
	snprintf(path, sizeof(path), "%s/%s", dir, limit_file);
	cr_assert(read_file(path, buf, sizeof(buf)) > 0, "%s", path);
	cr_assert_eq(strtoull(buf, NULL, 10), (256ULL + 64) << 20, "%s: %s", path, buf);

	/* the request; the answer */
	cr_assert_eq(write(in[1], "{\"n\": 23}", 9), 9);
	close(in[1]);
	while ((k = read(outp[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	close(outp[0]);
	cr_assert_eq(waitpid(monitor, &st, 0), monitor);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "snapbox run status %d", st);
	lua_answer(23, want, sizeof(want));
	cr_assert_str_eq(out, want);
	cr_assert_neq(access(dir, F_OK), 0, "%s is still there after the clone", dir);
	cr_assert_eq(kill(sb, 0), -1, "the clone %d outlived its monitor", sb);
	cr_assert_eq(leaked_cgroups(), 0);
	remove_tempdir(&store);
}

/* Clones in a row, jailed (stats name the layers), with --mem-max and
 * --cpu-max on run: right answers, no cgroup left behind. */
Test(jail, jailed_clones_in_a_row_leave_no_cgroup)
{
	char *store = make_tempdir();
	const char *const tmpl[] = { "snapbox", "template", "create", "fn", "--store", store,
				     "--backend", "proc", "--", "/bin/lua", "/app/handler.lua", NULL };
	const char *const run[] = { "snapbox", "run", "--store", store, "--stats", "--mem-max",
				    "300M", "--cpu-max", "80", "fn", NULL };
	long runs = test_count("SNAPBOX_SEQ_CLONES", 20);

	boot(tmpl, 60);
	cr_assert_eq(R.status, 0, "template create: %s", R.err);
	for (long i = 0; i < runs; i++) {
		char req[64], want[128];

		run_result_free(&R);
		snprintf(req, sizeof(req), "{\"n\": %ld}", i % 40);
		cr_assert_eq(run_snapbox(run, req, strlen(req), test_time(30), &R), 0);
		cr_assert_eq(R.status, 0, "clone %ld: %s", i, R.err);
		lua_answer((int)(i % 40), want, sizeof(want));
		cr_assert_str_eq(R.out, want, "clone %ld", i);
		if (geteuid() == 0)
			cr_assert(strstr(R.err, "stats: jail: user(65534:65534) pid mnt net cgroup-") &&
				  strstr(R.err, "(memory 300 MiB, cpu 80%)"), "stderr: %s", R.err);
		else
			cr_assert(strstr(R.err, "stats: jail: none; off: not root"), "stderr: %s", R.err);
	}
	if (geteuid() == 0)
		cr_assert_eq(leaked_cgroups(), 0);
	remove_tempdir(&store);
}

Test(jail, jail_options_are_for_proc_only)
{
	boot(((const char *const[]){ "snapbox", "boot", "--backend", "kvm", "--jail", "off", "--",
				     "/bin/true", NULL }), 30);
	cr_assert_eq(R.status, 2, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "are for the proc backend, not kvm"), "stderr: %s", R.err);
	run_result_free(&R);
	boot(PROC("--jail", "pid,bogus", "--", "/bin/true"), 30);
	cr_assert_eq(R.status, 2, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "expected on, off or layers from user,pid,mnt,net,cgroup"), "stderr: %s",
		  R.err);
}

/* A threaded process (a library user, a benchmark) makes jailed sandboxes
 * too: the child of the jail's raw clone() must not wait for threads that
 * only its parent has (glibc's setresuid broadcasts to every thread). */
static void *parked(void *arg)
{
	char c;
	(void)!read(*(int *)arg, &c, 1);
	return NULL;
}

Test(jail, a_threaded_monitor_makes_jailed_sandboxes)
{
	char *store = make_tempdir();
	char dir[700];
	struct snapshot snap;
	struct sb_err err = { "" };
	int park[2], out[2], in;
	pthread_t th;
	char buf[256] = "";

	need_root();
	boot(TEMPLATE(store, "--jail", "on"), 60);
	cr_assert_eq(R.status, 0, "template create: %s", R.err);
	snprintf(dir, sizeof(dir), "%s/templates/fn", store);
	cr_assert_eq(snapshot__load(dir, &snap, &err), 0, "%s", err.msg);
	cr_assert_eq(pipe(park), 0);
	cr_assert_eq(pthread_create(&th, NULL, parked, &park[0]), 0);
	double t0 = test_now();
	struct machine *m = machine__new_clone(&proc_backend, &snap, &err);
	cr_assert(m, "a jailed clone from a threaded process: %s", err.msg);
	cr_assert_lt(test_now() - t0, test_time(5));
	cr_assert_eq(pipe(out), 0);
	in = memfd_create("req", 0);
	cr_assert(write(in, "{\"n\": 10}", 9) == 9 && lseek(in, 0, SEEK_SET) == 0);
	m->hc.stdin_fd = in;
	m->hc.stdout_fd = out[1];
	cr_assert_eq(hypercall__complete_pending(&m->hc, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(m->be->run(m, &err), 0, "%s", err.msg);
	close(out[1]);
	cr_assert_gt(read(out[0], buf, sizeof(buf) - 1), 0);
	cr_assert_str_eq(buf, "{\"n\": 10, \"fib\": 55, \"prime\": 29}\n");
	machine__free(m);
	snapshot__close(&snap);
	cr_assert_eq(write(park[1], "x", 1), 1);
	pthread_join(th, NULL);
	remove_tempdir(&store);
}
