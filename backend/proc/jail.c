/* SPDX-License-Identifier: MIT */
/* Per-sandbox confinement for the proc backend: see jail.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/proc/jail.h"

#define NOBODY 65534

/* exit codes of a child whose setup failed (jail__exit_reason) */
enum {
	EX_CGROUP = JAIL_EXIT_BASE, EX_NETNS, EX_OPEN, EX_MOUNT, EX_PIVOT, EX_IDS,
	EX_PARENT, EX_USERNS, EX_EXEC, EX_LAST
};

static const char *const exit_reasons[EX_LAST - JAIL_EXIT_BASE] = {
	"could not join its cgroup",
	"could not join the shared network namespace",
	"could not open the stub",
	"could not build its empty root (tmpfs, procfs)",
	"could not pivot_root into its empty root",
	"could not drop to its unprivileged uid/gid",
	"its monitor died while it started",
	"could not enter a user namespace of its own",
	"could not execute the stub (are it and its directory executable by the sandbox's uid?)",
};

const char *jail__exit_reason(int code)
{
	if (code < JAIL_EXIT_BASE || code >= EX_LAST)
		return NULL;
	return exit_reasons[code - JAIL_EXIT_BASE];
}

void jail__default_config(struct jail_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->layers = JAIL_ALL; /* jail__prepare drops what is not available */
	cfg->netns_fd = -1;
}

/* ---- small file helpers (parent side) ------------------------------------ */

static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = 0;
	close(fd);
	return n;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

static int write_at(const char *dir, const char *file, const char *s)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return write_str(path, s);
}

/* `word` is one of the separated tokens of `list` */
static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t n = strlen(word);

	for (const char *p = list; *p;) {
		size_t k = strcspn(p, seps);

		if (k == n && !strncmp(p, word, n))
			return true;
		p += k;
		if (*p)
			p++;
	}
	return false;
}

static void note(struct jail *j, const char *fmt, const char *arg)
{
	size_t n = strlen(j->why_not);

	snprintf(j->why_not + n, sizeof(j->why_not) - n, "%s", n ? "; " : "");
	n = strlen(j->why_not);
	snprintf(j->why_not + n, sizeof(j->why_not) - n, fmt, arg);
}

/* ---- cgroups -------------------------------------------------------------- */

/* Mount point of the cgroup2 fs (fstype "cgroup2") or of the v1 hierarchy
 * carrying controller `ctl` (fstype "cgroup", super option ctl), with the
 * mount's root within the hierarchy. */
static bool find_cgroup_mount(const char *ctl, char *mnt, size_t len, char *root, size_t rlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char r[256], m[256], fstype[64], src[64], opts[512];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %255s %255s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %63s %511s", fstype, src, opts) != 3)
			continue;
		if (ctl ? strcmp(fstype, "cgroup") || !has_word(opts, ctl, ",")
			: strcmp(fstype, "cgroup2"))
			continue;
		snprintf(mnt, len, "%s", m);
		snprintf(root, rlen, "%s", r);
		found = true;
	}
	fclose(f);
	return found;
}

/* Our own cgroup in the v1 hierarchy of `ctl`, or in v2 (ctl NULL). */
static bool own_cgroup(const char *ctl, char *path, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		*c2 = 0;
		if (ctl ? !has_word(c1 + 1, ctl, ",") : (c1 != line + 1 || line[0] != '0' || c1[1]))
			continue;
		c2[strcspn(c2 + 1, "\n") + 1] = 0;
		snprintf(path, len, "%s", c2 + 1);
		found = true;
	}
	fclose(f);
	return found;
}

static int mkdir_ok(const char *path)
{
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* A cgroup fs we may not write to (read-only, not ours): unavailable, not
 * an error. */
static bool not_writable(int e)
{
	return e == -EROFS || e == -EACCES || e == -EPERM;
}

/* Leaves of monitors that died without jail__cleanup (SIGKILL, SIGTERM):
 * sb-<pid>-* with no such pid; their sandbox died with its monitor
 * (PR_SET_PDEATHSIG), so the directory is empty and goes. */
static void sweep(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[600];
		int pid;

		if (sscanf(e->d_name, "sb-%d-", &pid) != 1 || pid <= 0 || pid == getpid() ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		rmdir(path);
	}
	closedir(d);
}

/* A unique leaf name: monitor pid and the time. */
static void leaf_name(char *buf, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, len, "sb-%d-%llx", (int)getpid(),
		 (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
}

/* cgroup v2: every controller we need is in the root's cgroup.controllers;
 * the parent (default <mount>/snapbox) delegates them; a leaf per sandbox. */
static int cgroup_v2(struct jail *j, const char *leaf, struct sb_err *err)
{
	char mnt[256], root[256], parent[300], buf[512], want[32] = "";
	const struct jail_config *c = &j->cfg;
	ssize_t n;
	int ret;

	if (!find_cgroup_mount(NULL, mnt, sizeof(mnt), root, sizeof(root)))
		return 1;
	snprintf(buf, sizeof(buf), "%s/cgroup.controllers", mnt);
	if ((n = read_small(buf, buf, sizeof(buf))) < 0)
		return 1;
	if ((c->mem_max && !has_word(buf, "memory", " \n")) ||
	    (c->cpu_max_pct && !has_word(buf, "cpu", " \n")))
		return 1; /* e.g. a hybrid host: memory and cpu are bound to v1 */
	if (c->mem_max)
		strcat(want, "+memory ");
	if (c->cpu_max_pct)
		strcat(want, "+cpu");
	if (snprintf(parent, sizeof(parent), "%s%s", c->cgroup_parent ? c->cgroup_parent : mnt,
		     c->cgroup_parent ? "" : "/snapbox") >= (int)sizeof(parent))
		return err__set(err, -ENAMETOOLONG, "cgroup parent path too long");
	if ((ret = mkdir_ok(parent)) < 0) {
		if (not_writable(ret)) {
			note(j, "cgroup v2 not writable here (%s)", parent);
			return 1;
		}
		return err__errno(err, "mkdir %s (the sandboxes' cgroup)", parent);
	}
	sweep(parent);
	if (want[0] && !c->cgroup_parent && write_at(mnt, "cgroup.subtree_control", want) < 0)
		return err__errno(err, "enabling %s in %s/cgroup.subtree_control", want, mnt);
	if (want[0] && write_at(parent, "cgroup.subtree_control", want) < 0)
		return err__errno(err, "enabling %s in %s/cgroup.subtree_control", want, parent);
	snprintf(j->cg_dir[0], sizeof(j->cg_dir[0]), "%s/%s", parent, leaf);
	if (mkdir(j->cg_dir[0], 0755) < 0) {
		ret = -errno;
		if (not_writable(ret))
			note(j, "cgroup v2 not writable here (%s)", parent);
		else
			err__errno(err, "mkdir %s", j->cg_dir[0]);
		j->cg_dir[0][0] = 0;
		return not_writable(ret) ? 1 : ret;
	}
	j->cg = JAIL_CG_V2;
	if (c->mem_max) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)c->mem_max);
		if (write_at(j->cg_dir[0], "memory.max", buf) < 0)
			return err__errno(err, "writing memory.max in %s", j->cg_dir[0]);
		write_at(j->cg_dir[0], "memory.swap.max", "0"); /* absent without swap */
	}
	if (c->cpu_max_pct) {
		snprintf(buf, sizeof(buf), "%u 100000", c->cpu_max_pct * 1000);
		if (write_at(j->cg_dir[0], "cpu.max", buf) < 0)
			return err__errno(err, "writing cpu.max in %s", j->cg_dir[0]);
	}
	return 0;
}

/* cgroup v1: <hierarchy>/<our cgroup>/snapbox/<leaf> in the memory and the
 * cpu hierarchy (nested in our own cgroup: still counted where we are). */
static bool cgroup_v1_parent(const char *ctl, char *dir, size_t len)
{
	char mnt[256], root[256], own[256];
	size_t rl;

	if (!find_cgroup_mount(ctl, mnt, sizeof(mnt), root, sizeof(root)) ||
	    !own_cgroup(ctl, own, sizeof(own)))
		return false;
	rl = strlen(root);
	if (strcmp(root, "/") && !strncmp(own, root, rl))
		memmove(own, own + rl, strlen(own + rl) + 1);
	snprintf(dir, len, "%s%s/snapbox", mnt, strcmp(own, "/") ? own : "");
	return true;
}

static int cgroup_v1_one(struct jail *j, int i, const char *ctl, const char *leaf,
			 struct sb_err *err)
{
	char dir[600];
	int ret;

	if (!cgroup_v1_parent(ctl, dir, sizeof(dir)))
		return 1;
	if ((ret = mkdir_ok(dir)) < 0) {
		if (not_writable(ret)) {
			note(j, "cgroup v1 not writable here (%s)", dir);
			return 1;
		}
		return err__errno(err, "mkdir %s (the sandboxes' %s cgroup)", dir, ctl);
	}
	sweep(dir);
	if (snprintf(j->cg_dir[i], sizeof(j->cg_dir[i]), "%s/%s", dir, leaf) >=
	    (int)sizeof(j->cg_dir[i]))
		return err__set(err, -ENAMETOOLONG, "cgroup path too long: %s/%s", dir, leaf);
	if (mkdir(j->cg_dir[i], 0755) < 0) {
		ret = -errno;
		if (not_writable(ret))
			note(j, "cgroup v1 not writable here (%s)", dir);
		else
			err__errno(err, "mkdir %s", j->cg_dir[i]);
		j->cg_dir[i][0] = 0;
		return not_writable(ret) ? 1 : ret;
	}
	return 0;
}

static int cgroup_v1(struct jail *j, const char *leaf, struct sb_err *err)
{
	struct jail_config *c = &j->cfg;
	char buf[64];
	int ret;

	/* each limit where its hierarchy works; the other one is noted off */
	if (c->mem_max) {
		ret = cgroup_v1_one(j, 0, "memory", leaf, err);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			note(j, "%s", "no memory limit: no writable v1 memory hierarchy");
			c->mem_max = 0;
		} else {
			j->cg = JAIL_CG_V1;
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)c->mem_max);
			if (write_at(j->cg_dir[0], "memory.limit_in_bytes", buf) < 0)
				return err__errno(err, "writing memory.limit_in_bytes in %s", j->cg_dir[0]);
			/* memory+swap too, where swap accounting exists */
			write_at(j->cg_dir[0], "memory.memsw.limit_in_bytes", buf);
		}
	}
	if (c->cpu_max_pct) {
		ret = cgroup_v1_one(j, 1, "cpu", leaf, err);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			note(j, "%s", "no CPU limit: no writable v1 cpu hierarchy");
			c->cpu_max_pct = 0;
		} else {
			j->cg = JAIL_CG_V1;
			snprintf(buf, sizeof(buf), "%u", c->cpu_max_pct * 1000);
			if (write_at(j->cg_dir[1], "cpu.cfs_period_us", "100000") < 0 ||
			    write_at(j->cg_dir[1], "cpu.cfs_quota_us", buf) < 0)
				return err__errno(err, "writing cpu.cfs_quota_us in %s", j->cg_dir[1]);
		}
	}
	if (j->cg == JAIL_CG_NONE && !c->mem_max && !c->cpu_max_pct) {
		/* no limit asked for (or none possible): a memory cgroup all the same */
		ret = cgroup_v1_one(j, 0, "memory", leaf, err);
		if (ret)
			return ret;
		j->cg = JAIL_CG_V1;
	}
	return 0;
}

static int cgroup_open_procs(struct jail *j, struct sb_err *err)
{
	for (int i = 0; i < 2; i++) {
		char path[600];

		if (!j->cg_dir[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", j->cg_dir[i]);
		j->cg_procs[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (j->cg_procs[i] < 0)
			return err__errno(err, "open %s", path);
	}
	return 0;
}

/* ---- the parent ----------------------------------------------------------- */

static void cgroup_remove(struct jail *j);

static bool userns_allowed(void)
{
	char buf[32];

	if (read_small("/proc/sys/user/max_user_namespaces", buf, sizeof(buf)) > 0 && atol(buf) == 0)
		return false;
	/* Debian/Ubuntu knob, absent upstream */
	if (read_small("/proc/sys/kernel/unprivileged_userns_clone", buf, sizeof(buf)) > 0 &&
	    atol(buf) == 0)
		return false;
	if (read_small("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", buf, sizeof(buf)) > 0 &&
	    atol(buf) != 0)
		return false;
	return true;
}

int jail__prepare(struct jail *j, const struct jail_config *cfg, struct sb_err *err)
{
	char leaf[64];
	int ret;

	memset(j, 0, sizeof(*j));
	j->cfg = *cfg;
	j->cg_procs[0] = j->cg_procs[1] = -1;
	j->parent = getpid();
	j->prepared = true;
	if (!j->cfg.uid)
		j->cfg.uid = NOBODY;
	if (!j->cfg.gid)
		j->cfg.gid = NOBODY;
	j->layers = cfg->layers & JAIL_ALL;
	if (!j->layers)
		return 0;
	if (geteuid() != 0) {
		note(j, "%s", "not root: no namespaces, no cgroup (seccomp and the lone channel fd only)");
		j->layers = 0;
		return 0;
	}
	if ((j->layers & JAIL_USER) && !userns_allowed()) {
		note(j, "%s", "user namespaces disabled here (the uid/gid drop still applies)");
		j->layers &= ~JAIL_USER;
		j->layers |= 1u << 8; /* ids only */
	}
	if (!(j->layers & JAIL_CGROUP))
		return 0;
	leaf_name(leaf, sizeof(leaf));
	ret = cgroup_v2(j, leaf, err);
	if (ret == 1)
		ret = cgroup_v1(j, leaf, err);
	if (ret == 1) {
		cgroup_remove(j); /* v1: memory may have worked and cpu not */
		note(j, "%s", j->cfg.mem_max || j->cfg.cpu_max_pct
			? "no cgroup: neither cgroup v2 nor v1 offers writable memory/cpu controllers here"
			: "no cgroup: no writable cgroup fs mounted");
		j->layers &= ~JAIL_CGROUP;
		return 0;
	}
	if (ret == 0)
		ret = cgroup_open_procs(j, err);
	if (ret < 0)
		jail__cleanup(j);
	return ret;
}

static bool drop_ids(const struct jail *j)
{
	return j->layers & (JAIL_USER | (1u << 8));
}

/* ---- the child ------------------------------------------------------------ */

pid_t jail__fork(struct jail *j)
{
	unsigned long flags = SIGCHLD;
	pid_t pid;

	if (!j->prepared || !j->layers)
		return j->pid = fork();
	if (j->layers & JAIL_PID)
		flags |= CLONE_NEWPID;
	if ((j->layers & JAIL_NET) && j->cfg.netns_fd < 0)
		flags |= CLONE_NEWNET;
	if (j->layers & JAIL_MNT)
		flags |= CLONE_NEWNS;
	/* fork() with namespaces: the child continues here on a copy of our
	 * stack, like fork(); it only makes system calls until it execs */
	pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid != 0)
		return j->pid = pid;
	for (int i = 0; i < 2; i++)
		if (j->cg_procs[i] >= 0 && write(j->cg_procs[i], "0", 1) != 1)
			_exit(EX_CGROUP);
	if ((j->layers & JAIL_NET) && j->cfg.netns_fd >= 0 && setns(j->cfg.netns_fd, CLONE_NEWNET) < 0)
		_exit(EX_NETNS);
	return 0;
}

static int write_self(const char *file, const char *s)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/%s", file);
	return write_str(path, s);
}

/* An empty read-only tmpfs as / (mounted over /proc, which always exists),
 * with a procfs of our PID namespace (own pid directories only) at /proc for
 * the stub's one read of /proc/self/maps. */
static int empty_root(void)
{
	const unsigned long nodev = MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("snapbox", "/proc", "tmpfs", nodev, "size=4k,nr_inodes=4,mode=0555") < 0 ||
	    mkdir("/proc/proc", 0555) < 0 ||
	    mount("proc", "/proc/proc", "proc", nodev, "subset=pid") < 0 ||
	    mount(NULL, "/proc", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | nodev, NULL) < 0)
		return EX_MOUNT;
	if (chdir("/proc") < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return EX_PIVOT;
	return 0;
}

int jail__exec(struct jail *j, const char *path, char *const argv[], char *const envp[],
	       int alive_fd)
{
	struct pollfd pf = { .fd = alive_fd, .events = POLLRDHUP };
	const char *base;
	char map[64];
	int fd, ret;

	if (!j->prepared || !j->layers) {
		execve(path, argv, envp);
		return 126; /* as without a jail */
	}
	/* the stub is executed from its directory's fd, by name (so that it
	 * keeps its name in ps, unlike with AT_EMPTY_PATH): only that
	 * directory stays reachable, and only until the exec (O_CLOEXEC) */
	base = strrchr(path, '/');
	if (base) {
		char dir[4096];
		size_t n = (size_t)(base - path);

		if (n >= sizeof(dir))
			return EX_OPEN;
		memcpy(dir, path, n);
		dir[n] = 0;
		fd = open(n ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		base++;
	} else {
		fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		base = path;
	}
	if (fd < 0)
		return EX_OPEN;
	if ((j->layers & JAIL_MNT) && (ret = empty_root()))
		return ret;
	if (drop_ids(j)) {
		gid_t g = j->cfg.gid;
		uid_t u = j->cfg.uid;

		/* all capabilities go with uid 0; so does the parent-death
		 * signal and dumpability (which /proc/self/uid_map needs).
		 * Raw calls: glibc's wrappers change the ids of every thread
		 * it knows of, and a child of a raw clone() in a threaded
		 * process still "knows" its parent's threads -- it would wait
		 * for them forever */
		if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, g, g, g) < 0 ||
		    syscall(SYS_setresuid, u, u, u) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0)
			return EX_IDS;
	}
	/* PR_SET_PDEATHSIG again (cleared by the id change, and not inherited
	 * through clone) and then make sure the parent has not died meanwhile:
	 * in a PID namespace getppid() is 0, so ask its end of the channel */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return EX_PARENT;
	if (alive_fd >= 0 && (poll(&pf, 1, 0) < 0 || (pf.revents & (POLLRDHUP | POLLHUP | POLLERR))))
		return EX_PARENT;
	if (j->layers & JAIL_USER) {
		/* the unprivileged single-id map: our own ids, nothing else */
		if (unshare(CLONE_NEWUSER) < 0 || write_self("setgroups", "deny") < 0)
			return EX_USERNS;
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)j->cfg.uid, (unsigned)j->cfg.uid);
		if (write_self("uid_map", map) < 0)
			return EX_USERNS;
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)j->cfg.gid, (unsigned)j->cfg.gid);
		if (write_self("gid_map", map) < 0)
			return EX_USERNS;
	}
	syscall(SYS_execveat, fd, base, argv, envp, 0);
	return EX_EXEC;
}

/* ---- after the sandbox ---------------------------------------------------- */

bool jail__oom_killed(const struct jail *j)
{
	char buf[1024], path[600];
	const char *p;

	if (!j->cg_dir[0][0])
		return false;
	snprintf(path, sizeof(path), "%s/%s", j->cg_dir[0],
		 j->cg == JAIL_CG_V2 ? "memory.events" : "memory.oom_control");
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	p = strstr(buf, "oom_kill ");
	return p && atol(p + 9) > 0;
}

static void mib(char *buf, size_t len, uint64_t bytes)
{
	if (bytes % (1 << 20))
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
}

void jail__describe(const struct jail *j, char *buf, size_t len)
{
	static const char *const names[] = { "user", "pid", "mnt", "net", "cgroup" };
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; i < 5; i++) {
		if (!(j->layers & (1u << i)))
			continue;
		if (i == 4) {
			char m[32] = "none", c[32] = "none";

			if (j->cfg.mem_max)
				mib(m, sizeof(m), j->cfg.mem_max);
			if (j->cfg.cpu_max_pct)
				snprintf(c, sizeof(c), "%u%%", j->cfg.cpu_max_pct);
			n += (size_t)snprintf(buf + n, len - n, "%scgroup-%s(memory %s, cpu %s)",
					      n ? " " : "", j->cg == JAIL_CG_V2 ? "v2" : "v1", m, c);
		} else {
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "", names[i]);
		}
		if (i == 0 || (i == 3 && j->cfg.netns_fd >= 0))
			n += (size_t)snprintf(buf + n, len - n, i ? "(shared)" : "(%u:%u)",
					      (unsigned)j->cfg.uid, (unsigned)j->cfg.gid);
		if (n >= len)
			return;
	}
	if (j->layers & (1u << 8))
		n += (size_t)snprintf(buf + n, len - n, "%sids(%u:%u)", n ? " " : "",
				      (unsigned)j->cfg.uid, (unsigned)j->cfg.gid);
	if (n < len && !n)
		n += (size_t)snprintf(buf + n, len - n, "none");
	if (n < len && j->why_not[0])
		snprintf(buf + n, len - n, "; off: %s", j->why_not);
}

static void cgroup_remove(struct jail *j)
{
	for (int i = 0; i < 2; i++) {
		if (j->cg_procs[i] >= 0)
			close(j->cg_procs[i]);
		j->cg_procs[i] = -1;
		/* the sandbox is reaped: the cgroup is empty (EBUSY otherwise) */
		if (j->cg_dir[i][0] && rmdir(j->cg_dir[i]) < 0 && errno == EBUSY) {
			for (int k = 0; k < 100 && rmdir(j->cg_dir[i]) < 0 && errno == EBUSY; k++)
				usleep(1000);
		}
		j->cg_dir[i][0] = 0;
	}
	j->cg = JAIL_CG_NONE;
}

void jail__cleanup(struct jail *j)
{
	if (!j->prepared)
		return;
	cgroup_remove(j);
	j->prepared = false;
}

void jail__probe(char *buf, size_t len)
{
	struct sb_err err = { "" };
	struct jail_config cfg;
	struct jail j;

	jail__default_config(&cfg);
	cfg.mem_max = 64ULL << 20;
	cfg.cpu_max_pct = 100;
	if (jail__prepare(&j, &cfg, &err) < 0) {
		snprintf(buf, len, "none: %s", err.msg);
		return;
	}
	jail__describe(&j, buf, len);
	jail__cleanup(&j);
	/* the limit is per sandbox: say the default, not the probe's */
	{
		static const char from[] = "memory 64 MiB", to[] = "memory guest RAM + 64 MiB";
		char *p = strstr(buf, from);
		size_t n = strlen(buf), d = sizeof(to) - sizeof(from);

		if (p && n + d < len) {
			memmove(p + sizeof(to) - 1, p + sizeof(from) - 1,
				n - (size_t)(p - buf) - (sizeof(from) - 1) + 1);
			memcpy(p, to, sizeof(to) - 1);
		}
	}
}

int jail__make_netns(struct sb_err *err)
{
	char path[64], c;
	int p[2], fd;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err__errno(err, "pipe");
	pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) == 0)
			(void)!write(p[1], "x", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return err__errno(err, "fork");
	}
	fd = read(p[0], &c, 1) == 1 ? 0 : -1;
	close(p[0]);
	if (fd == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fd = err__errno(err, "open %s", path);
	} else {
		fd = err__set(err, -EPERM, "unshare(CLONE_NEWNET) failed");
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return fd;
}

void jail__sweep(const char *cgroup_parent)
{
	char mnt[256], root[256], dir[600];

	if (geteuid() != 0)
		return;
	if (cgroup_parent)
		sweep(cgroup_parent);
	else if (find_cgroup_mount(NULL, mnt, sizeof(mnt), root, sizeof(root)) &&
		 snprintf(dir, sizeof(dir), "%s/snapbox", mnt) < (int)sizeof(dir))
		sweep(dir);
	for (int i = 0; i < 2; i++)
		if (cgroup_v1_parent(i ? "cpu" : "memory", dir, sizeof(dir)))
			sweep(dir);
}

/* ---- limits of a running sandbox (PATCH /v1/sandboxes/{id}) -------------- */

int jail__set_mem(struct jail *j, uint64_t bytes, struct sb_err *err)
{
	char buf[32];
	int ret;

	if (!j->prepared || !j->cfg.mem_max || j->cg == JAIL_CG_NONE)
		return 0; /* no memory limit to move */
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bytes);
	if (j->cg == JAIL_CG_V2) {
		ret = write_at(j->cg_dir[0], "memory.max", buf);
	} else if (bytes > j->cfg.mem_max) {
		/* v1: memory <= memory+swap at every step */
		write_at(j->cg_dir[0], "memory.memsw.limit_in_bytes", buf);
		ret = write_at(j->cg_dir[0], "memory.limit_in_bytes", buf);
	} else {
		ret = write_at(j->cg_dir[0], "memory.limit_in_bytes", buf);
		if (ret == 0)
			write_at(j->cg_dir[0], "memory.memsw.limit_in_bytes", buf);
	}
	if (ret < 0)
		return err__set(err, ret, "setting the sandbox's memory limit to %llu MiB in %s: %s",
				(unsigned long long)(bytes >> 20), j->cg_dir[0], strerror(-ret));
	j->cfg.mem_max = bytes;
	return 0;
}

int jail__set_cpu(struct jail *j, uint64_t quota_us, uint64_t period_us, struct sb_err *err)
{
	char buf[64];
	int ret;

	if (!j->prepared || j->cg == JAIL_CG_NONE || !j->cfg.cpu_max_pct)
		return err__set(err, -ENOTSUP, "this sandbox has no CPU cgroup (%s)",
				j->why_not[0] ? j->why_not : "the jail has no cgroup layer here");
	if (j->cg == JAIL_CG_V2) {
		snprintf(buf, sizeof(buf), "%llu %llu", (unsigned long long)quota_us,
			 (unsigned long long)period_us);
		ret = write_at(j->cg_dir[0], "cpu.max", buf);
	} else {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)period_us);
		ret = write_at(j->cg_dir[1], "cpu.cfs_period_us", buf);
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)quota_us);
		if (ret == 0)
			ret = write_at(j->cg_dir[1], "cpu.cfs_quota_us", buf);
	}
	if (ret < 0)
		return err__set(err, ret, "setting the sandbox's CPU share in %s: %s",
				j->cg_dir[j->cg == JAIL_CG_V2 ? 0 : 1], strerror(-ret));
	j->cfg.cpu_max_pct = (uint32_t)(quota_us * 100 / period_us) ? (uint32_t)(quota_us * 100 / period_us) : 1;
	return 0;
}

const char *jail__cpu_file(const struct jail *j, char *buf, size_t len)
{
	if (!j->prepared || j->cg == JAIL_CG_NONE || !j->cfg.cpu_max_pct)
		return NULL;
	snprintf(buf, len, "%s/%s", j->cg_dir[j->cg == JAIL_CG_V2 ? 0 : 1],
		 j->cg == JAIL_CG_V2 ? "cpu.max" : "cpu.cfs_quota_us");
	return buf;
}

/* A process that is its own sandbox (the kvm backend's worker): into the
 * cgroup, and out again (to its parent cgroup, so that it can go). */
int jail__enter_self(struct jail *j, struct sb_err *err)
{
	for (int i = 0; i < 2; i++)
		if (j->cg_procs[i] >= 0 && write(j->cg_procs[i], "0", 1) != 1)
			return err__errno(err, "joining the cgroup %s", j->cg_dir[i]);
	return 0;
}

void jail__leave_self(struct jail *j)
{
	char path[600];

	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(j->cg_dir[i], '/');

		if (!j->cg_dir[i][0] || !slash)
			continue;
		snprintf(path, sizeof(path), "%.*s/cgroup.procs", (int)(slash - j->cg_dir[i]), j->cg_dir[i]);
		write_str(path, "0");
	}
	jail__cleanup(j);
}
