/* SPDX-License-Identifier: MIT */
/* The proc backend behind backend/backend.h (see proc.h and README.md). */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/proc/proc.h"
#include "common/fdmsg.h"
#include "sb_syscall.h"
#include "common/file.h"
#include "snapshot/snapshot.h"

/* How long set-up steps may take the sandbox (mapping, filter, a save). */
#define PROC_SETUP_MS 10000

static struct proc_machine *pm_of(struct machine *m)
{
	return (struct proc_machine *)m;
}

/* ---- XSAVE: what this host's signal frames hold ---------------------------- */

/* Features a signal frame carries: XCR0 minus AMX tile data, which Linux
 * only puts there for processes that asked for it (the sandbox never does). */
#define XFEATURE_AMX (3ULL << 17)

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

int proc__host_xstate(uint64_t *xfeatures, uint32_t *xstate_size, struct sb_err *err)
{
	unsigned a, b, c, d;
	uint64_t feat;
	uint32_t end = 512 + 64;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return err__set(err, -ENOTSUP, "this CPU or kernel has no XSAVE (CPUID.1:ECX.OSXSAVE)");
	feat = xgetbv0() & ~XFEATURE_AMX;
	for (unsigned i = 2; i < 64; i++) {
		if (!(feat >> i & 1))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if (b + a > end)
			end = b + a;
	}
	*xfeatures = feat;
	*xstate_size = end;
	return 0;
}

/* ---- the sandbox process -------------------------------------------------- */

/* The child: only the channel at its agreed number, no core dumps, dies
 * with us; then the stub. */
static __attribute__((noreturn)) void proc__child(int chan, const char *stub, pid_t parent,
						  struct jail *jail)
{
	static char *const argv[] = { "snapbox-sandbox", NULL };
	static char *const envp[] = { NULL };
	struct rlimit no_core = { 0, 0 };
	sigset_t none;

	/* in a PID namespace getppid() is 0: jail__exec checks the channel */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
	    (getppid() != parent && !(jail->layers & JAIL_PID)))
		_exit(126);
	setrlimit(RLIMIT_CORE, &no_core);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(chan, SB_PROC_CHAN_FD) < 0)
		_exit(126);
	syscall(SYS_close_range, 0, SB_PROC_CHAN_FD - 1, 0);
	syscall(SYS_close_range, SB_PROC_CHAN_FD + 1, ~0U, 0);
	_exit(jail__exec(jail, stub, argv, envp, SB_PROC_CHAN_FD));
}

/* ---- without a jail: posix_spawn's way (CLONE_VM | CLONE_VFORK) ------------ *
 * The child runs in our memory on a stack of its own while this thread waits
 * for its execve: no copy of our page tables, no copy-on-write faults left
 * behind in a large or multi-threaded monitor.  So the child writes nothing
 * but its own stack: raw system calls only (libc's wrappers set errno, in our
 * TLS), no malloc, no stdio; all signals are blocked across the clone and the
 * child resets every handled signal to SIG_DFL before it unblocks them (a
 * handler would run on our data).  Failure before the exec: exit 126, as the
 * fork child did.  The jailed child (jail__fork/jail__exec) does much more
 * through libc (setresuid's all-threads broadcast among it), so it forks. */

#define raw4(n, a, b, c, d) sb_syscall6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

struct vchild_arg {
	int chan;
	pid_t parent;
	const char *stub;
};

struct k_sigaction { /* the kernel's, for rt_sigaction with an 8-byte set */
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static __attribute__((noreturn)) void vchild_exit(int code)
{
	for (;;)
		raw4(SYS_exit_group, code, 0, 0, 0);
}

static int proc__vchild(void *p)
{
	static char *const argv[] = { "snapbox-sandbox", NULL };
	static char *const envp[] = { NULL };
	const struct vchild_arg *a = p;
	struct rlimit no_core = { 0, 0 };
	struct k_sigaction dfl = { .handler = SIG_DFL }, old;
	uint64_t none = 0;

	if (raw4(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0) < 0 ||
	    raw4(SYS_getppid, 0, 0, 0, 0) != a->parent)
		vchild_exit(126);
	raw4(SYS_prlimit64, 0, RLIMIT_CORE, &no_core, NULL);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (raw4(SYS_rt_sigaction, sig, NULL, &old, 8) < 0)
			continue;
		if (sig == SIGPIPE || (old.handler != SIG_DFL && old.handler != SIG_IGN))
			raw4(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	}
	raw4(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
	if (a->chan == SB_PROC_CHAN_FD) { /* dup2 would keep its FD_CLOEXEC */
		if (raw4(SYS_fcntl, a->chan, F_SETFD, 0, 0) < 0)
			vchild_exit(126);
	} else if (raw4(SYS_dup2, a->chan, SB_PROC_CHAN_FD, 0, 0) < 0) {
		vchild_exit(126);
	}
	raw4(SYS_close_range, 0, SB_PROC_CHAN_FD - 1, 0, 0);
	raw4(SYS_close_range, SB_PROC_CHAN_FD + 1, ~0U, 0, 0);
	raw4(SYS_execve, a->stub, argv, envp, 0);
	vchild_exit(126);
}

static pid_t proc__vfork(int chan, const char *stub)
{
	/* the child's own stack, in this (waiting) thread's frame: it needs a
	 * few hundred bytes */
	enum { size = 16384 };
	char stack[size] __attribute__((aligned(64)));
	struct vchild_arg a = { chan, getpid(), stub };
	sigset_t all, old;
	pid_t pid;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(proc__vchild, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

static int proc__spawn(struct proc_machine *pm, const char *stub, struct sb_err *err)
{
	pid_t parent = getpid();
	int sv[2], ret;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err__errno(err, "socketpair for the sandbox channel");
	/* one output message must fit the sandbox's send buffer (a larger
	 * SOCK_SEQPACKET message is EMSGSIZE), with room for one more queued:
	 * the default (net.core.wmem_default, 208 KiB) has it */
	{
		int have = 0, want = 2 * (int)PROC_RX_MAX;
		socklen_t l = sizeof(have);

		if (getsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &have, &l) == 0 && have < want)
			setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	}
	if (!pm->jail.prepared || !pm->jail.layers) {
		pm->pid = pm->jail.pid = proc__vfork(sv[1], stub);
		if (pm->pid < 0)
			pm->jail.pid = 0;
	} else {
		pm->pid = jail__fork(&pm->jail);
	}
	if (pm->pid < 0) {
		ret = err__errno(err, "fork of the sandbox process");
		pm->pid = 0;
		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (pm->pid == 0)
		proc__child(sv[1], stub, parent, &pm->jail);
	close(sv[1]);
	pm->chan = sv[0];
	return 0;
}

static void proc__drop_layers(struct proc_machine *pm)
{
	for (unsigned i = 0; i < pm->n_layers; i++)
		close(pm->layer_fd[i]);
	pm->n_layers = 0;
}

/* The first message, with the RAM's fd and the layers' (map_layers) attached. */
static int proc__send_start(struct proc_machine *pm, struct sb_proc_start *st, int fd,
			    struct sb_err *err)
{
	int fds[2 + SB_MAX_LAYERS] = { fd };
	int ret, n;

	st->n_layers = pm->n_layers;
	for (unsigned i = 0; i < pm->n_layers; i++) {
		fds[1 + i] = pm->layer_fd[i];
		st->layers[i] = pm->layer[i];
	}
	n = 1 + (int)pm->n_layers;
	if (pm->hot_fd >= 0) { /* memory hotplug: the hot window's memfd */
		st->flags |= SB_PROC_START_HOT;
		fds[n++] = pm->hot_fd;
	}
	ret = fdmsg__send(pm->chan, st, sizeof(*st), fds, n);
	proc__drop_layers(pm);
	if (ret < 0)
		return err__set(err, ret, "starting the sandbox process (pid %d): %s", (int)pm->pid,
				strerror(-ret));
	return 0;
}

/* A clone's overlay runs, the message after the start message: the stub
 * maps them over RAM from the layers' fds before its filter. */
static int proc__send_overlays(struct proc_machine *pm, const struct snapshot *snap,
			       struct sb_err *err)
{
	struct sb_proc_overlay *o = malloc(snap->n_runs * sizeof(*o));
	size_t len = snap->n_runs * sizeof(*o);
	int ret = 0;

	if (!o)
		return err__set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < snap->n_runs; i++)
		o[i] = (struct sb_proc_overlay){ snap->runs[i].gpa, snap->runs[i].img_off,
						 snap->runs[i].npages, snap->runs[i].layer };
	if (send(pm->chan, o, len, MSG_NOSIGNAL) != (ssize_t)len)
		ret = err__errno(err, "sending the overlay runs to the sandbox (pid %d)", (int)pm->pid);
	free(o);
	return ret;
}

/* Until the start message: the sandbox maps them before its filter. */
static int proc_be__map_layers(struct machine *m, const int *fds, const struct machine_layer *l,
			       unsigned n, struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);

	proc__drop_layers(pm);
	if (n > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "%u root file system layers", n);
	for (unsigned i = 0; i < n; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (fd < 0) {
			int ret = err__errno(err, "dup of root file system layer %u", i);
			proc__drop_layers(pm);
			return ret;
		}
		pm->layer_fd[pm->n_layers] = fd;
		pm->layer[pm->n_layers++] = (struct sb_layer){ l[i].gpa, l[i].size };
	}
	return 0;
}

static void proc__kill(struct proc_machine *pm)
{
	if (pm->pid <= 0)
		return;
	kill(pm->pid, SIGKILL);
	while (waitpid(pm->pid, &pm->wait_status, 0) < 0 && errno == EINTR)
		;
	pm->pid = 0;
}

/* The channel closed without a final hypercall: how did the process end? */
int proc__died(struct proc_machine *pm, struct sb_err *err)
{
	int st;

	while (waitpid(pm->pid, &st, 0) < 0) {
		if (errno != EINTR)
			return err__errno(err, "waitpid for the sandbox process");
	}
	pm->pid = 0;
	pm->wait_status = st;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && jail__oom_killed(&pm->jail)) {
		char lim[32] = "its limit";

		if (pm->jail.cfg.mem_max)
			snprintf(lim, sizeof(lim), "%llu MiB",
				 (unsigned long long)(pm->jail.cfg.mem_max >> 20));
		err__set(err, 0, "the sandbox ran out of memory: its cgroup's limit (%s) was "
			 "reached and the kernel's OOM killer ended it", lim);
		return 128 + SIGKILL;
	}
	if (WIFEXITED(st) && jail__exit_reason(WEXITSTATUS(st)))
		return err__set(err, -EIO, "the sandbox process %s (jail: exit %d)",
				jail__exit_reason(WEXITSTATUS(st)), WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return err__set(err, -EIO,
				"the sandbox process was killed by signal %d (%s) without a word from "
				"its guest kernel (after %llu hypercalls)",
				WTERMSIG(st), strsignal(WTERMSIG(st)), (unsigned long long)pm->msgs);
	if (WEXITSTATUS(st) == 126)
		return err__set(err, -EIO, "could not start the sandbox stub");
	if (pm->msgs == 0 && WEXITSTATUS(st) == 111)
		return err__set(err, -EIO, "the sandbox stub could not map guest RAM at %#llx "
				"(check vm.mmap_min_addr: it must be at most %llu)",
				(unsigned long long)SB_PROC_RAM_BASE, (unsigned long long)SB_PROC_RAM_BASE);
	if (pm->msgs == 0 && WEXITSTATUS(st) == 108) /* map_overlays */
		return err__set(err, -EIO, "the sandbox stub could not map the template's overlay "
				"runs (its layer images' pages) over guest RAM");
	if (pm->msgs == 0 && WEXITSTATUS(st) == 124)
		return err__set(err, -EIO, "the sandbox stub could not map the hot window at %#llx",
				(unsigned long long)SB_HOT_GPA);
	if (pm->msgs == 0 && WEXITSTATUS(st) == 109) /* map_layers */
		return err__set(err, -EIO, "the sandbox stub could not map the root file system's "
				"layers at %#llx", (unsigned long long)SB_IMG_GPA);
	if (pm->msgs == 0)
		return err__set(err, -EIO, "the sandbox stub failed to set up (code %d)",
				WEXITSTATUS(st));
	return err__set(err, -EIO, "the sandbox process exited (status %d) without a word "
			"from its guest kernel", WEXITSTATUS(st));
}

/* One stub message of its own (SAVED, RESUMED) within PROC_SETUP_MS. */
static int proc__expect(struct proc_machine *pm, uint32_t nr, const char *what,
			struct sb_proc_msg *msg, struct sb_err *err)
{
	struct pollfd p = { pm->chan, POLLIN, 0 };
	ssize_t n;
	int ret;

	do
		ret = poll(&p, 1, PROC_SETUP_MS);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return err__errno(err, "poll on the sandbox channel (%s)", what);
	if (ret == 0)
		return err__set(err, -ETIMEDOUT, "the sandbox did not answer within %d ms (%s)",
				PROC_SETUP_MS, what);
	n = recv(pm->chan, msg, sizeof(*msg), MSG_TRUNC);
	if (n < 0)
		return err__errno(err, "reading the sandbox channel (%s)", what);
	if (n == 0) {
		proc__died(pm, err);
		return err__set(err, -EIO, "%s: %s", what, err->msg);
	}
	if (n != (ssize_t)sizeof(*msg) || msg->nr != nr || msg->reserved)
		return err__set(err, -EPROTO, "%s: the sandbox sent something else (%zd bytes, call %u)",
				what, n, msg->nr);
	return 0;
}

/* The jail of the process create() forks (jail.h): m->opts' config, else
 * every layer that works here with memory RAM + 64 MiB and one CPU. */
void proc__default_jail(struct jail_config *jc, uint64_t mem_size)
{
	jail__default_config(jc);
	jc->mem_max = mem_size + (64ULL << 20);
	jc->cpu_max_pct = 100;
}

static int proc__jail(struct proc_machine *pm, uint64_t mem_size, struct sb_err *err)
{
	struct jail_config jc;

	if (pm->m.opts && pm->m.opts->jail)
		return jail__prepare(&pm->jail, pm->m.opts->jail, err);
	proc__default_jail(&jc, mem_size);
	return jail__prepare(&pm->jail, &jc, err);
}

void proc__describe_jail(const struct machine *m, char *buf, size_t len)
{
	jail__describe(&((const struct proc_machine *)m)->jail, buf, len);
}

/* ---- the backend ------------------------------------------------------------ */

static bool proc_be__available(char *why, size_t len)
{
	struct sb_err err = { "" };
	char stub[PATH_MAX];

	if (file__exe_relative("guest/proc-stub", stub, sizeof(stub), &err) < 0 ||
	    access(stub, X_OK) < 0) {
		snprintf(why, len, "no sandbox stub (%s)", err.msg[0] ? err.msg : stub);
		return false;
	}
	snprintf(why, len, "seccomp-confined processes (no virtualization needed)");
	return true;
}

static int proc_be__create(struct machine *m, uint64_t mem_size, enum ram_backend ram,
			   struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);
	char stub[PATH_MAX];
	int ret;

	pm->chan = -1;
	pm->ws.fd = -1;
	pm->hot_fd = -1;
	m->ram.fd = -1;
	pm->rx = malloc(PROC_RX_MAX);
	if (!pm->rx)
		return err__set(err, -ENOMEM, "out of memory for the sandbox channel's buffer");
	serial__init(&m->serial, SB_COM1_PORT, 2);
	if (ram == RAM_RESERVED) {
		/* a clone shell: its RAM will be the sandbox's private mapping,
		 * which we reach only by copies */
		m->ram.size = mem_size;
		guest_mem__from_process(&m->mem, mem_size, &pm->pid);
	} else {
		ret = ram__create(&m->ram, RAM_MEMFD, mem_size, err);
		if (ret < 0)
			return ret;
		guest_mem__from_ram(&m->mem, &m->ram);
	}
	hypercall__init(&m->hc, &m->mem, &m->timeout, NULL);
	m->boot_flags = SB_BOOT_PROC;
	ret = file__exe_relative("guest/proc-stub", stub, sizeof(stub), err);
	if (ret < 0)
		return ret;
	if (access(stub, X_OK) < 0)
		return err__errno(err, "%s (the proc backend's sandbox stub; build it with make)", stub);
	ret = proc__jail(pm, mem_size, err);
	return ret < 0 ? ret : proc__spawn(pm, stub, err);
}

static int proc_be__boot(struct machine *m, uint64_t entry, uint64_t arg, struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);
	struct sb_boot_info *vm_bi = ram__gpa_to_host(&m->ram, arg, sizeof(*vm_bi));
	struct sb_boot_info *bi = ram__gpa_to_host(&m->ram, SB_PROC_BOOTINFO_GPA, sizeof(*bi));
	struct sb_proc_start st;

	if (!bi || !vm_bi)
		return err__set(err, -EINVAL, "proc boot: no boot info in RAM");
	/* the sandbox maps RAM from SB_PROC_RAM_BASE only: move the boot info up */
	memcpy(bi, vm_bi, sizeof(*bi));
	memset(vm_bi, 0, sizeof(*vm_bi));
	arg = SB_PROC_BOOTINFO_GPA;
	/* the same boot info, told it is a process: no MMIO, no page tables,
	 * no privileged instruction, hypercalls on the channel */
	bi->flags = (bi->flags & ~SB_BOOT_USER_SYSCALLS) | SB_BOOT_PROC;
	bi->mmio_gpa = 0;
	pm->ro_lo = pm->ro_hi = 0; /* the rootfs is in the layers, not in RAM */
	memset(&st, 0, sizeof(st));
	st.magic = SB_PROC_MAGIC;
	st.mem_size = m->ram.size;
	st.entry = entry;
	st.arg = arg;
	st.ro_lo = pm->ro_lo;
	st.ro_hi = pm->ro_hi;
	st.mode = SB_PROC_MODE_BOOT;
	return proc__send_start(pm, &st, m->ram.fd, err);
}

static int proc_be__check(const struct snapshot *snap, struct sb_err *err)
{
	const struct sb_proc_cpu *c = &snap->proc.cpu;
	uint64_t feat;
	uint32_t size;
	int ret;

	if (snap->hdr.backend != SNAP_BACKEND_PROC)
		return err__set(err, -EPROTOTYPE, "the template was made by the %s backend, not proc",
				snapshot__backend_name(snap->hdr.backend));
	ret = proc__host_xstate(&feat, &size, err);
	if (ret < 0)
		return ret;
	if (c->xfeatures & ~feat)
		return err__set(err, -ENOTSUP,
				"the template's XSAVE features 0x%llx are not all on this host (0x%llx): "
				"its register state cannot be restored here",
				(unsigned long long)c->xfeatures, (unsigned long long)feat);
	for (unsigned i = 2; i < 64; i++) {
		unsigned a, b, cc, d;

		if (!(c->xfeatures >> i & 1))
			continue;
		__cpuid_count(0xd, i, a, b, cc, d);
		if (snap->proc.xcomp[i].offset != b || snap->proc.xcomp[i].size != a)
			return err__set(err, -ENOTSUP,
					"XSAVE feature %u lies at %u+%u on this host, at %u+%u in the template",
					i, b, a, snap->proc.xcomp[i].offset, snap->proc.xcomp[i].size);
	}
	return 0;
}

static int proc_be__clone_into(struct machine *m, const struct snapshot *snap, struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);
	struct sb_proc_start st;
	struct sb_proc_msg msg;
	int ret, fd;

	if (m->ram.size != snap->hdr.mem_size)
		return err__set(err, -EINVAL, "sandbox shell has %llu MiB of RAM, the template %llu MiB",
				(unsigned long long)(m->ram.size >> 20),
				(unsigned long long)(snap->hdr.mem_size >> 20));
	ret = proc_be__check(snap, err); /* the backend, XSAVE features: cheap (CPUID) */
	if (ret == 0)
		ret = machine__map_snapshot_layers(m, snap, NULL, err); /* for the start message */
	if (ret < 0)
		return ret;
	if (m->resizable && pm->hot_fd < 0) {
		pm->hot_fd = memfd_create("snapbox-hot", MFD_CLOEXEC);
		if (pm->hot_fd < 0)
			return err__errno(err, "memfd for the sandbox's hot window");
	}
	fd = snapshot__open_mem(snap, err);
	if (fd < 0)
		return fd;
	memset(&st, 0, sizeof(st));
	st.magic = SB_PROC_MAGIC;
	st.mem_size = m->ram.size;
	st.ro_lo = pm->ro_lo = snap->proc.ro_lo;
	st.ro_hi = pm->ro_hi = snap->proc.ro_hi;
	st.mode = m->mig_hold ? SB_PROC_MODE_MIGRATE : SB_PROC_MODE_CLONE;
	st.n_overlays = snap->n_runs;
	ret = proc__send_start(pm, &st, fd, err);
	close(fd);
	if (ret == 0 && snap->n_runs)
		ret = proc__send_overlays(pm, snap, err);
	if (ret < 0)
		return ret;
	if (send(pm->chan, &snap->proc.cpu, sizeof(snap->proc.cpu), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(snap->proc.cpu))
		return err__errno(err, "sending the saved CPU to the sandbox (pid %d)", (int)pm->pid);
	/* mapped and confined: its memory is there for complete_pending */
	ret = proc__expect(pm, SB_PROC_MSG_RESUMED, "clone set-up", &msg, err);
	if (ret == 0 && m->recycle)
		ret = proc__recycle_prepare(pm, snap, msg.gpa, err);
	if (ret < 0)
		return ret;
	m->serial.st = snap->serial;
	m->hc.st = snap->hc;
	hypercall__draw_ahead(&m->hc); /* before the request */
	pm->reply_pending = true;
	if (m->mig_hold) {
		/* a migrated sandbox: it goes on as it was paused */
		pm->go_pending = true;
		pm->reply_pending = m->paused.flags & MACHINE_PAUSED_REPLY;
		pm->deferred = m->paused.flags & MACHINE_PAUSED_DEFERRED;
		pm->deferred_msg = (struct sb_proc_msg){ .nr = m->paused.nr, .gpa = m->paused.gpa };
		memset(&m->paused, 0, sizeof(m->paused));
		m->mig_hold = false;
	}
	return 0;
}

void proc__migrate_go(struct proc_machine *pm)
{
	static const struct sb_proc_reply go = { 0 };

	if (!pm->go_pending)
		return;
	/* a migrated-in sandbox: its pages are in, its stub may resume it
	 * (its calls wait in the channel until run() serves them) */
	pm->go_pending = false;
	send(pm->chan, &go, sizeof(go), MSG_NOSIGNAL);
}

/* The sandbox's frame (at gpa in the stub) into a PROC_CPU section's
 * struct, checked: nothing the sandbox says is trusted. */
static int proc__read_frame(struct proc_machine *pm, uint64_t gpa, struct snap_proc_cpu *sec,
			    struct sb_err *err)
{
	struct guest_mem seam;
	uint32_t magic1, magic2;
	int ret;

	if (!gpa)
		return err__set(err, -E2BIG, "the sandbox's XSAVE state does not fit in %d bytes",
				SB_PROC_XSAVE_MAX);
	memset(sec, 0, sizeof(*sec));
	/* the stub's memory, not guest RAM: the same copy, any address */
	guest_mem__from_process(&seam, UINT64_MAX, &pm->pid);
	ret = seam.read(&seam, gpa, &sec->cpu, sizeof(sec->cpu));
	if (ret < 0)
		return err__set(err, ret, "process_vm_readv of the saved registers: %s", strerror(-ret));
	sec->cpu.reserved = 0;
	memset(sec->cpu.pad, 0, sizeof(sec->cpu.pad));
	memcpy(&magic1, sec->cpu.xsave + 464, 4);
	if (sec->cpu.xstate_size < 576 || sec->cpu.xstate_size > SB_PROC_XSAVE_MAX - 4 ||
	    magic1 != 0x46505853U ||
	    (memcpy(&magic2, sec->cpu.xsave + sec->cpu.xstate_size, 4), magic2 != 0x46505845U))
		return err__set(err, -EINVAL, "the sandbox's signal frame has no usable XSAVE state "
				"(%u bytes)", sec->cpu.xstate_size);
	sec->ro_lo = pm->ro_lo;
	sec->ro_hi = pm->ro_hi;
	for (unsigned i = 2; i < 64; i++) {
		unsigned a, b, c, d;

		if (!(sec->cpu.xfeatures >> i & 1))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		sec->xcomp[i] = (struct snap_xcomp){ b, a };
	}
	return 0;
}

/* Is the frame the guest's (in its RAM), not the stub's? */
static bool proc__frame_in_guest(const struct proc_machine *pm, const struct snap_proc_cpu *c)
{
	return c->cpu.gpr[SB_PROC_RIP] < pm->m.ram.size && c->cpu.gpr[SB_PROC_RSP] < pm->m.ram.size;
}

/*
 * Pause the sandbox for a live migration: SB_PROC_SIG_PAUSE makes its stub
 * report the guest's frame (PAUSED) and wait.  Until then, output is
 * written as usual; a hypercall that comes meanwhile is kept, not performed
 * (deferred).  A reply the guest has not read yet is still in its socket
 * (SIOCOUTQ): a destination must send it again.  stdin_call: the run was in
 * the guest's stdin call, left pending (hc.st): its reply is owed.
 */
static int proc__pause(struct proc_machine *pm, bool stdin_call, struct sb_err *err)
{
	struct machine *m = &pm->m;
	struct sb_proc_msg msg;
	struct timespec t0, t;
	int queued = 0, ret, tries = 0;

again:
	if (kill(pm->pid, SB_PROC_SIG_PAUSE) < 0)
		return err__errno(err, "pausing the sandbox (pid %d)", (int)pm->pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		const struct sb_proc_out *out = (const struct sb_proc_out *)pm->rx;
		struct pollfd pf = { pm->chan, POLLIN, 0 };
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > PROC_SETUP_MS)
			return err__set(err, -ETIMEDOUT, "the sandbox did not pause");
		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = recv(pm->chan, pm->rx, PROC_RX_MAX, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err__errno(err, "reading the sandbox channel");
		if (n == 0)
			return proc__died(pm, err);
		if (n >= (ssize_t)sizeof(*out) && out->nr == SB_HC_OUTPUT) {
			if ((size_t)n > PROC_RX_MAX || out->len != (uint64_t)n - sizeof(*out))
				return err__set(err, -EPROTO, "the sandbox sent a malformed output message");
			ret = hypercall__output(&m->hc, out->fd, out + 1, out->len, err);
			if (ret != HC_CONTINUE)
				return ret < 0 ? ret : -EIO;
			continue;
		}
		if (n != (ssize_t)sizeof(msg))
			return err__set(err, -EPROTO, "the sandbox sent a malformed message (%zd bytes)", n);
		memcpy(&msg, pm->rx, sizeof(msg));
		if (msg.nr == SB_PROC_MSG_PAUSED)
			break;
		if (msg.reserved || msg.nr >= SB_HC_COUNT || pm->deferred || stdin_call)
			return err__set(err, -EPROTO, "the sandbox sent an unexpected message while "
					"pausing (%u)", msg.nr);
		pm->deferred = true;
		pm->deferred_msg = msg;
	}
	free(pm->pause_cpu);
	pm->pause_cpu = calloc(1, sizeof(*pm->pause_cpu));
	if (!pm->pause_cpu)
		return err__set(err, -ENOMEM, "out of memory");
	ret = proc__read_frame(pm, msg.gpa, pm->pause_cpu, err);
	if (ret < 0)
		return ret;
	if (!proc__frame_in_guest(pm, pm->pause_cpu)) {
		/* a fresh clone's stub not yet in the guest (between RESUMED and
		 * its rt_sigreturn): let it go on and ask again */
		if (++tries > 100)
			return err__set(err, -EAGAIN, "the sandbox's guest did not start running");
		kill(pm->pid, SB_PROC_SIG_RESUME);
		usleep(200);
		goto again;
	}
	if (ioctl(pm->chan, SIOCOUTQ, &queued) < 0)
		return err__errno(err, "SIOCOUTQ on the sandbox channel");
	m->paused.flags = (queued > 0 || stdin_call ? MACHINE_PAUSED_REPLY : 0) |
			  (pm->deferred ? MACHINE_PAUSED_DEFERRED : 0);
	m->paused.nr = pm->deferred ? pm->deferred_msg.nr : 0;
	m->paused.gpa = pm->deferred ? pm->deferred_msg.gpa : 0;
	/* here, on resume: the queued reply is read where it is; the stdin
	 * call's comes after complete_pending */
	pm->reply_pending = stdin_call;
	pm->paused = true;
	return 0;
}

static int proc__timed_out(struct proc_machine *pm, struct sb_err *err)
{
	uint64_t ns = pm->m.timeout.ns;

	proc__kill(pm);
	if (ns % 1000000000ULL)
		err__set(err, 0, "timed out after %.3g s", (double)ns / 1e9);
	else
		err__set(err, 0, "timed out after %llu s", (unsigned long long)(ns / 1000000000ULL));
	return 124;
}

static int proc_be__run(struct machine *m, struct sb_err *err)
{
	static const struct sb_proc_reply done = { 0 };
	struct proc_machine *pm = pm_of(m);
	int ret;

	err__clear(err);
	if (pm->pid <= 0 || pm->chan < 0)
		return err__set(err, -ESRCH, "the sandbox is not running");
	if (pm->paused) {
		/* a migration that did not happen: on where it was */
		pm->paused = false;
		memset(&m->paused, 0, sizeof(m->paused));
		free(pm->pause_cpu);
		pm->pause_cpu = NULL;
		kill(pm->pid, SB_PROC_SIG_RESUME);
	}
	memset(&m->paused, 0, sizeof(m->paused)); /* taken in (clone_into) or done with */
	proc__migrate_go(pm);
	if (pm->reply_pending) {
		/* a clone: its ready-point stdin call is complete (complete_pending) */
		pm->reply_pending = false;
		send(pm->chan, &done, sizeof(done), MSG_NOSIGNAL);
	}
	for (;;) {
		const struct sb_proc_out *out = (const struct sb_proc_out *)pm->rx;
		struct sb_proc_msg msg;
		ssize_t n;

		if (pm->deferred) {
			/* the call that came while it paused */
			pm->deferred = false;
			memcpy(pm->rx, &pm->deferred_msg, sizeof(msg));
			n = sizeof(msg);
		} else {
			/* MSG_TRUNC: n is the message's real length, even beyond rx */
			n = recv(pm->chan, pm->rx, PROC_RX_MAX, MSG_TRUNC);
		}
		if (n < 0) {
			if (errno == EINTR) {
				if (timeout__expired(&m->timeout)) {
					ret = proc__timed_out(pm, err);
					break;
				}
				if (__atomic_load_n(&m->pause, __ATOMIC_ACQUIRE)) {
					ret = proc__pause(pm, false, err);
					if (ret == 0)
						return MACHINE_PAUSED;
					break;
				}
				if (m->hc.ctl_poll) /* a resize request (resize.h) */
					m->hc.ctl_poll(m->hc.ctl_arg);
				continue;
			}
			ret = err__errno(err, "reading the sandbox channel");
			break;
		}
		if (n == 0) {
			ret = proc__died(pm, err);
			break;
		}
		pm->msgs++;
		if (n >= (ssize_t)sizeof(*out) && out->nr == SB_HC_OUTPUT) {
			/* one-way output (ABI 4): as untrusted as the rest, no reply */
			if ((size_t)n > PROC_RX_MAX)
				ret = err__set(err, -EPROTO, "the sandbox sent an output message of %zd "
					       "bytes (at most %zu)", n, PROC_RX_MAX);
			else if (out->len != (uint64_t)n - sizeof(*out))
				ret = err__set(err, -EPROTO, "the sandbox sent an output message of %zd "
					       "bytes that says it carries %llu", n,
					       (unsigned long long)out->len);
			else
				ret = hypercall__output(&m->hc, out->fd, out + 1, out->len, err);
			if (ret == HC_CONTINUE)
				continue;
			if (ret == -ETIMEDOUT)
				ret = proc__timed_out(pm, err);
			break;
		}
		memcpy(&msg, pm->rx, sizeof(msg) < (size_t)n ? sizeof(msg) : (size_t)n);
		if (n != (ssize_t)sizeof(msg) || msg.reserved) {
			ret = err__set(err, -EPROTO, "the sandbox sent a malformed message (%zd bytes)", n);
			break;
		}
		ret = hypercall__handle(&m->hc, msg.nr, msg.gpa, err);
		if (ret == HC_CONTINUE) {
			/* a sandbox gone meanwhile shows as EOF on the next recv */
			send(pm->chan, &done, sizeof(done), MSG_NOSIGNAL);
			continue;
		}
		if (ret == HC_READY)
			return MACHINE_READY; /* the sandbox waits for its reply: save() */
		if (ret == HC_PAUSED) {
			/* paused in its stdin call (left pending), or in another
			 * (SLEEP) that it does again first when it goes on */
			bool stdin_call = !m->hc.deferred_nr;

			if (!stdin_call) {
				m->hc.deferred_nr = 0;
				pm->deferred = true;
				pm->deferred_msg = msg;
			}
			ret = proc__pause(pm, stdin_call, err);
			if (ret == 0)
				return MACHINE_PAUSED;
			break;
		}
		if (ret == HC_STOP && m->hc.exited && m->recycle)
			return m->hc.status; /* it waits (for a reply, never sent): reset() */
		if (ret == HC_STOP)
			ret = m->hc.status;
		else if (ret == -ETIMEDOUT)
			ret = proc__timed_out(pm, err);
		break;
	}
	proc__kill(pm);
	return ret;
}

/* At the ready point the guest waits for the reply to its stdin call (STDIN,
 * or READ from an ABI 3 kernel).  SIGUSR1
 * makes the stub copy its signal frame (that wait, to be restarted) into a
 * struct sb_proc_cpu and say where; we read it out of the sandbox. */
static int proc_be__save(struct machine *m, struct snap_writer *w, struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);
	struct snap_proc_cpu *sec;
	struct sb_proc_msg msg;
	int ret;

	if (pm->paused && pm->pause_cpu) /* a migration: its frame is read already */
		return snap_writer__add(w, SNAP_SEC_PROC_CPU, SNAP_PROC_CPU_VERSION, pm->pause_cpu,
					sizeof(*pm->pause_cpu), NULL, 0);
	if (m->pause && (m->hc.st.flags & HC_STATE_PENDING_READ) && pm->reply_pending)
		/* a migration paused before the clone first ran, in its stdin
		 * call: wherever it goes on, that call's reply is owed */
		m->paused.flags |= MACHINE_PAUSED_REPLY;
	sec = calloc(1, sizeof(*sec));
	if (!sec)
		return err__set(err, -ENOMEM, "out of memory");
	for (int tries = 0;; tries++) {
		if (pm->pid <= 0 || kill(pm->pid, SIGUSR1) < 0) {
			free(sec);
			return err__errno(err, "asking the sandbox (pid %d) for its registers", (int)pm->pid);
		}
		ret = proc__expect(pm, SB_PROC_MSG_SAVED, "saving the registers", &msg, err);
		if (ret == 0)
			ret = proc__read_frame(pm, msg.gpa, sec, err);
		/* a migration of a fresh clone may catch its stub before it
		 * entered the guest: again, a moment later */
		if (ret < 0 || !m->pause || proc__frame_in_guest(pm, sec) || tries == 100)
			break;
		usleep(200);
	}
	if (ret == 0) {
		ret = snap_writer__add(w, SNAP_SEC_PROC_CPU, SNAP_PROC_CPU_VERSION, sec, sizeof(*sec),
				       NULL, 0);
		if (ret < 0)
			err__set(err, ret, "building state.bin: %s", strerror(-ret));
	}
	free(sec);
	return ret;
}

/* ---- memory hotplug, free-page reporting, CPU share (guest ABI 5) -------- */

/* The memfd's size is what the guest may use: beyond it the sandbox's
 * shared mapping is SIGBUS.  The jail's memory limit moves with it. */
static int proc_be__hot_set(struct machine *m, uint64_t size, struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);
	uint64_t lim = pm->jail.cfg.mem_max;
	int ret;

	if (pm->hot_fd < 0)
		return err__set(err, -ENOTSUP, "this sandbox was started without a hot window");
	if (size > pm->hot_size && lim) {
		ret = jail__set_mem(&pm->jail, lim + (size - pm->hot_size), err);
		if (ret < 0)
			return ret;
	}
	if (ftruncate(pm->hot_fd, (off_t)size) < 0)
		return err__errno(err, "sizing the hot window to %llu MiB",
				  (unsigned long long)(size >> 20));
	if (size < pm->hot_size && lim) /* its pages are gone: lower the limit */
		jail__set_mem(&pm->jail, lim - (pm->hot_size - size), err);
	pm->hot_size = size;
	m->mem.hot_size = size;
	return 0;
}

/* The hot window: punched out of the memfd here (zero after).  RAM is the
 * sandbox's private mapping, which only it can discard: it does, with
 * madvise (the filter allows MADV_DONTNEED). */
static uint64_t proc_be__discard(struct machine *m, uint64_t gpa, uint64_t len)
{
	struct proc_machine *pm = pm_of(m);

	if (gpa < SB_HOT_GPA)
		return SB_MEM_RANGE_SELF;
	if (pm->hot_fd < 0 || gpa - SB_HOT_GPA + len > pm->hot_size)
		return 0;
	return fallocate(pm->hot_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)(gpa - SB_HOT_GPA), (off_t)len) == 0 ? SB_MEM_RANGE_DONE : 0;
}

static int proc_be__set_cpu(struct machine *m, uint64_t quota_us, uint64_t period_us,
			    struct sb_err *err)
{
	struct proc_machine *pm = pm_of(m);

	if (!(pm->jail.layers & JAIL_CGROUP))
		return err__set(err, -ENOTSUP, "this sandbox has no cgroup to take a CPU share (%s)",
				pm->jail.why_not[0] ? pm->jail.why_not : "its jail has no cgroup layer");
	return jail__set_cpu(&pm->jail, quota_us, period_us, err);
}

static void proc_be__destroy(struct machine *m)
{
	struct proc_machine *pm = pm_of(m);

	timeout__stop(&m->timeout);
	proc__kill(pm);
	proc__recycle_release(pm);
	free(pm->pause_cpu);
	pm->pause_cpu = NULL;
	jail__cleanup(&pm->jail);
	proc__drop_layers(pm);
	if (pm->hot_fd >= 0)
		close(pm->hot_fd);
	pm->hot_fd = -1;
	if (pm->chan >= 0)
		close(pm->chan);
	pm->chan = -1;
	free(pm->rx);
	pm->rx = NULL;
	ram__destroy(&m->ram);
}

/* The caller is about to exit: kill, and let init reap (a process exit
 * costs ~1 ms here, PLATFORM.md). */
static void proc_be__destroy_detached(struct machine *m)
{
	struct proc_machine *pm = pm_of(m);

	/* a cgroup goes only once its process is reaped: then wait */
	if (pm->pid > 0 && !(pm->jail.layers & JAIL_CGROUP)) {
		kill(pm->pid, SIGKILL);
		pm->pid = 0;
	}
	proc_be__destroy(m);
	free(m);
}

const struct backend proc_backend = {
	.name = "proc",
	.snap_backend = SNAP_BACKEND_PROC,
	.size = sizeof(struct proc_machine),
	.available = proc_be__available,
	.create = proc_be__create,
	.map_layers = proc_be__map_layers,
	.boot = proc_be__boot,
	.check = proc_be__check,
	.clone_into = proc_be__clone_into,
	.run = proc_be__run,
	.save = proc_be__save,
	.reset = proc_be__reset,
	.hot_set = proc_be__hot_set,
	.discard = proc_be__discard,
	.set_cpu = proc_be__set_cpu,
	.destroy = proc_be__destroy,
	.destroy_detached = proc_be__destroy_detached,
};
