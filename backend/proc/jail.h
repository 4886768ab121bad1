/* SPDX-License-Identifier: MIT */
/*
 * Per-sandbox confinement for the proc backend, on top of what the stub
 * does itself (seccomp filter, no_new_privs, only the channel fd): where the
 * monitor runs as root, the sandbox process gets
 *
 *   pid   its own PID namespace: it is PID 1 there, sees no other process;
 *   net   its own network namespace (only a downed lo), or one shared,
 *         pre-made empty one (jail_config.netns_fd, see jail__make_netns);
 *   mnt   its own mount namespace whose root is an empty read-only tmpfs
 *         holding only /proc (procfs of its own PID namespace, subset=pid:
 *         the stub reads /proc/self/maps once to find the vDSO); nothing of
 *         the host file system; the stub is executed by name from a file
 *         descriptor of its directory, opened before the pivot;
 *   user  an unprivileged uid/gid (65534 unless configured) and its own user
 *         namespace, so it holds no capability anywhere;
 *   cgroup a cgroup of its own with a memory and a CPU limit: cgroup v2
 *         (memory.max, cpu.max) where its controllers are available, else
 *         the v1 memory and cpu hierarchies (memory.limit_in_bytes,
 *         cpu.cfs_quota_us); removed by jail__cleanup.
 *
 * Not root, or a layer not available here: that layer is off, the rest
 * still applies, and jail__describe() says which are on and why not.
 *
 * Use (the monitor, i.e. the parent):
 *   jail__prepare(&j, &cfg, err)  once per sandbox, before the request if it
 *                                 can be (creates the cgroup)
 *   pid = jail__fork(&j)          instead of fork(): the child starts in its
 *                                 PID/net/mount namespaces and its cgroup
 *   child: ... jail__exec(&j, stub, argv, envp, chan) instead of execve()
 *   jail__oom_killed(&j)          after reaping: was it the memory limit?
 *   jail__cleanup(&j)             after reaping: removes the cgroup
 * No globals: everything lives in struct jail.
 */
#ifndef SB_JAIL_H
#define SB_JAIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

enum {
	JAIL_USER = 1u << 0,
	JAIL_PID = 1u << 1,
	JAIL_MNT = 1u << 2,
	JAIL_NET = 1u << 3,
	JAIL_CGROUP = 1u << 4,
	JAIL_ALL = 0x1f,
};

struct jail_config {
	unsigned layers;           /* JAIL_* wanted; 0: none (plain fork/execve) */
	uint64_t mem_max;          /* bytes, 0: no memory limit */
	uint32_t cpu_max_pct;      /* % of one CPU, 0: no CPU limit */
	const char *cgroup_parent; /* v2: a directory in the cgroup2 fs; NULL:
				    * <cgroup2 mount>/snapbox.  v1: ignored,
				    * <hierarchy>/<our cgroup>/snapbox */
	uid_t uid;                 /* the sandbox's uid/gid on the host; 0: 65534 */
	gid_t gid;
	int netns_fd;              /* >= 0: join this network namespace instead
				    * of creating one per sandbox; -1: create */
};

/* The defaults: every layer (jail__prepare keeps what works here), no limits. */
void jail__default_config(struct jail_config *cfg);

enum jail_cg { JAIL_CG_NONE, JAIL_CG_V2, JAIL_CG_V1 };

struct jail {
	struct jail_config cfg;
	unsigned layers;           /* JAIL_* that will be applied (after checks) */
	char why_not[512];         /* why wanted layers are off ("" if none) */
	pid_t parent;              /* the monitor */
	pid_t pid;                 /* the sandbox, once forked */
	enum jail_cg cg;
	char cg_dir[2][512];       /* v2: [0]; v1: [0] memory, [1] cpu */
	int cg_procs[2];           /* their cgroup.procs, open O_WRONLY */
	bool prepared;
};

/* Decide the layers, create the cgroup.  Never fails for a layer that is
 * merely unavailable (it is switched off and noted in why_not); fails (with
 * err) only when something that should have worked did not. */
int jail__prepare(struct jail *j, const struct jail_config *cfg, struct sb_err *err);

/* fork() with the PID and network namespaces (and the mount namespace the
 * child sets up in jail__exec); in the child, returns 0 after joining the
 * cgroup and, if configured, the shared network namespace. */
pid_t jail__fork(struct jail *j);

/* The child's last step, instead of execve(path, argv, envp): empty root,
 * unprivileged ids, user namespace, parent-death signal re-armed (changing
 * ids clears it), then the program from a file descriptor.  `alive_fd` is
 * a socket whose peer the parent holds: if it is closed already, the parent
 * died before the parent-death signal was armed again, and we exit.
 * Returns only on failure, with the exit code the child should use
 * (JAIL_EXIT_*; jail__exit_reason explains it). */
int jail__exec(struct jail *j, const char *path, char *const argv[], char *const envp[],
	       int alive_fd);

/* Exit codes of a child whose jail__exec failed, and what they mean
 * (NULL: not one of ours). */
#define JAIL_EXIT_BASE 96 /* 96-104; the stub uses 110-123 */
const char *jail__exit_reason(int code);

/* After the sandbox was reaped: did the cgroup's OOM killer end it? */
bool jail__oom_killed(const struct jail *j);

/* "pid mnt net user cgroup-v1(memory 64 MiB, cpu 100%)" and, if some are off,
 * "; off: ...": for `snapbox info`, --stats and messages. */
void jail__describe(const struct jail *j, char *buf, size_t len);

/* What a default jail would get here (for `snapbox info`): prepares one
 * with a memory and a CPU limit, describes it, removes it again. */
void jail__probe(char *buf, size_t len);

/* A running sandbox's limits (PATCH /v1/sandboxes/{id}): the memory limit
 * (only where the jail has one: 0 done, nothing to move) and the CPU share
 * (quota per period; -ENOTSUP with a message without a CPU cgroup). */
int jail__set_mem(struct jail *j, uint64_t bytes, struct sb_err *err);
int jail__set_cpu(struct jail *j, uint64_t quota_us, uint64_t period_us, struct sb_err *err);
/* The file that holds the CPU share (cpu.max or cpu.cfs_quota_us), or NULL. */
const char *jail__cpu_file(const struct jail *j, char *buf, size_t len);

/* The calling process joins the cgroup (a kvm worker is its own sandbox),
 * and leaves it for its parent cgroup, removing it (jail__cleanup). */
int jail__enter_self(struct jail *j, struct sb_err *err);
void jail__leave_self(struct jail *j);

/* Remove the cgroup (the sandbox must be reaped), close fds; idempotent. */
void jail__cleanup(struct jail *j);

/* Remove the cgroups of monitors that are gone (sb-<pid>-* whose pid no
 * longer exists and whose sandbox has been reaped), as every jail__prepare
 * does: for a process whose monitors it reaps itself (the pool's zygote),
 * so that none outlives it.  cgroup_parent as in jail_config (NULL: the
 * default); v1: our own cgroup's snapbox/ in the memory and cpu hierarchies. */
void jail__sweep(const char *cgroup_parent);

/* An empty network namespace to share between sandboxes (a fd for
 * jail_config.netns_fd), made once, e.g. by the zygote: ~1 fork. */
int jail__make_netns(struct sb_err *err);
#endif
