/* SPDX-License-Identifier: MIT */
/*
 * Shared by the clone benchmarks (clone, clone_rate, density, snapshot,
 * qemu_restore).  A header of static functions because bench.mk builds every
 * bench/NAME.c into a program of its own; include it from ONE .c file.
 *
 *   - finding the CLI, temporary stores, spawning with a request on stdin
 *   - an in-process clone (snapshot__load once, then vm__create_clone,
 *     hypercall__complete_pending, vcpu__run) with its response read from a
 *     pipe, timed; the breakdown comes from an ioctl() interposer (below)
 *   - a reaper: background threads that vm__destroy() finished VMs, so that
 *     teardown (16-23 ms each here) stays off the measured path
 */
#ifndef BENCH_CLONEKIT_H
#define BENCH_CLONEKIT_H
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/common.h"
#include "backend/kvm/kvm.h"
#include "backend/kvm/vm.h"
#include "snapshot/snapshot.h"

#define CK_UNUSED __attribute__((unused))

/* ---- ioctl() interposer ----------------------------------------------------
 * libsnapbox.a calls ioctl() through the PLT; this program's own definition
 * wins, so we can timestamp each KVM ioctl on the real vm__create_clone()
 * and vcpu__run() paths without copying their code.  Off unless ck_trace.on.
 */
#define CK_TRACE_MAX 512
struct ck_ev {
	unsigned long req;
	double t0, t1;
};
struct ck_trace {
	bool on;
	int n;
	struct ck_ev ev[CK_TRACE_MAX];
};
static __thread struct ck_trace ck_trace;

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	double t0 = 0;
	long r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (ck_trace.on && ck_trace.n < CK_TRACE_MAX)
		t0 = bench_now_us();
	r = syscall(SYS_ioctl, fd, req, arg);
	if (ck_trace.on && ck_trace.n < CK_TRACE_MAX) {
		int e = errno;
		struct ck_ev *ev = &ck_trace.ev[ck_trace.n++];
		ev->req = req;
		ev->t0 = t0;
		ev->t1 = bench_now_us();
		errno = e;
	}
	return (int)r;
}

static CK_UNUSED const struct ck_ev *ck_trace_find(unsigned long req)
{
	for (int i = 0; i < ck_trace.n; i++)
		if (ck_trace.ev[i].req == req)
			return &ck_trace.ev[i];
	return NULL;
}

/* ---- files, CLI ------------------------------------------------------------ */

/* The CLI built from the same tree as libsnapbox.a: $SNAPBOX, else
 * build/snapbox (run from the repository root, like the other benches). */
static CK_UNUSED const char *ck_snapbox(void)
{
	const char *e = getenv("SNAPBOX");
	if (e && *e)
		return e;
	return "build/snapbox";
}

static int ck_rm_cb(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb, (void)type, (void)f;
	remove(p);
	return 0;
}

static CK_UNUSED void ck_rmtree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, ck_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdtemp under base (default /tmp); path in out[PATH_MAX]. */
static CK_UNUSED int ck_mktemp_in(char *out, const char *base, const char *tag)
{
	snprintf(out, PATH_MAX, "%s/sbbench-%s.XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(out)) {
		fprintf(stderr, "mkdtemp %s: %s\n", out, strerror(errno));
		return -errno;
	}
	return 0;
}

static CK_UNUSED int ck_mktemp(char *out, const char *tag)
{
	return ck_mktemp_in(out, NULL, tag);
}

/* The bench's temporary directory: removed at exit and on SIGINT/SIGTERM,
 * after the optional extra clean-up (e.g. killing a peer process). */
static char ck_tmpdir[PATH_MAX];
static void (*ck_extra_cleanup)(void);

static void ck_cleanup(void)
{
	if (ck_extra_cleanup)
		ck_extra_cleanup();
	ck_rmtree(ck_tmpdir);
}

static void ck_on_signal(int sig)
{
	ck_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static CK_UNUSED int ck_tmpdir_create(const char *base, const char *tag, void (*extra)(void))
{
	int ret = ck_mktemp_in(ck_tmpdir, base, tag);
	if (ret < 0)
		return ret;
	ck_extra_cleanup = extra;
	atexit(ck_cleanup);
	signal(SIGINT, ck_on_signal);
	signal(SIGTERM, ck_on_signal);
	return 0;
}

/* A run of argv with `in` on its stdin (then EOF), stdout/stderr captured. */
struct ck_spawn {
	int status;            /* exit status, 128+sig */
	double total_us;       /* spawn to exit (and EOF on both pipes) */
	double out_eof_us;     /* spawn to EOF on stdout */
	char out[4096], err[4096];
};

static CK_UNUSED int ck_spawn(char *const argv[], const char *in, size_t inlen, double timeout_s,
			      struct ck_spawn *r)
{
	int pi[2], po[2], pe[2];
	pid_t pid;
	size_t no = 0, ne = 0, wi = 0;

	memset(r, 0, sizeof(*r));
	r->out_eof_us = -1;
	if (pipe2(pi, O_CLOEXEC) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		return -errno;
	double t0 = bench_now_us();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	fcntl(pi[1], F_SETFL, O_NONBLOCK);
	if (!inlen) {
		close(pi[1]);
		pi[1] = -1;
	}
	struct pollfd p[3] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 }, { pi[1], POLLOUT, 0 } };
	int open_n = 2;
	bool killed = false;
	while (open_n) {
		double left_ms = timeout_s * 1e3 - (bench_now_us() - t0) / 1e3;
		if (left_ms <= 0 && !killed) {
			kill(pid, SIGKILL);
			killed = true;
		}
		int k = poll(p, 3, left_ms > 0 ? (int)left_ms + 1 : 100);
		if (k < 0 && errno != EINTR)
			break;
		if (p[2].fd >= 0 && p[2].revents) {
			ssize_t w = write(p[2].fd, in + wi, inlen - wi);
			if (w > 0)
				wi += (size_t)w;
			if (w < 0 || wi == inlen) {
				close(p[2].fd);
				p[2].fd = -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			char buf[4096];
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_n--;
				if (i == 0)
					r->out_eof_us = bench_now_us() - t0;
				continue;
			}
			char *dst = i ? r->err : r->out;
			size_t *len = i ? &ne : &no;
			size_t room = sizeof(r->out) - 1 - *len;
			size_t c = (size_t)n < room ? (size_t)n : room;
			memcpy(dst + *len, buf, c);
			*len += c;
			dst[*len] = 0;
		}
	}
	if (p[2].fd >= 0)
		close(p[2].fd);
	int st;
	waitpid(pid, &st, 0);
	r->total_us = bench_now_us() - t0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (killed)
		snprintf(r->err + strlen(r->err), sizeof(r->err) - strlen(r->err),
			 "[killed after %.0f s]", timeout_s);
	return 0;
}

/* `snapbox template create NAME --store STORE [extra...] -- prog...`;
 * prints the CLI's report lines indented when verbose. */
static CK_UNUSED int ck_template_create(const char *store, const char *name, char *const extra[],
					char *const prog[], bool verbose, struct ck_spawn *r)
{
	char *argv[64];
	int n = 0;

	argv[n++] = (char *)ck_snapbox();
	argv[n++] = "template";
	argv[n++] = "create";
	argv[n++] = (char *)name;
	argv[n++] = "--store";
	argv[n++] = (char *)store;
	argv[n++] = "--force";
	for (int i = 0; extra && extra[i] && n < 40; i++)
		argv[n++] = extra[i];
	argv[n++] = "--";
	for (int i = 0; prog[i] && n < 62; i++)
		argv[n++] = prog[i];
	argv[n] = NULL;
	int ret = ck_spawn(argv, NULL, 0, 120, r);
	if (ret < 0 || r->status != 0) {
		fprintf(stderr, "template create %s failed (status %d): %s%s\n", name, r->status, r->out,
			r->err);
		return -1;
	}
	if (verbose) {
		char *s = r->out, *nl;
		while (*s && (nl = strchr(s, '\n'))) {
			printf("#   %.*s\n", (int)(nl - s), s);
			s = nl + 1;
		}
	}
	return 0;
}

/* Load template STORE/templates/NAME (once) and check its CPUID here. */
static CK_UNUSED int ck_load(const char *store, const char *name, struct snapshot *snap)
{
	char dir[PATH_MAX + 300];
	struct sb_err err = { "" };
	int ret, kfd;

	snprintf(dir, sizeof(dir), "%s/templates/%s", store, name);
	ret = snapshot__load(dir, snap, &err);
	if (ret == 0) {
		kfd = kvm__open(&err);
		ret = kfd < 0 ? kfd : vm__check_cpuid(snap, kfd, &err);
		if (kfd >= 0)
			close(kfd);
	}
	if (ret < 0)
		fprintf(stderr, "load template %s: %s\n", dir, err.msg);
	return ret;
}

static CK_UNUSED void ck_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- reaper ------------------------------------------------------------------ */

struct ck_reaper {
	pthread_mutex_t mu;
	pthread_cond_t cv, idle;
	struct vm **q;
	size_t cap, head, len;
	int busy, nthreads;
	bool stop;
	pthread_t th[32];
	double destroy_us_sum, destroy_cpu_us_sum; /* wall, and CPU time of the reaper thread */
	uint64_t destroyed;
};

static void *ck_reaper_main(void *p)
{
	struct ck_reaper *r = p;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->len && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->len && r->stop)
			break;
		struct vm *vm = r->q[r->head];
		r->head = (r->head + 1) % r->cap;
		r->len--;
		r->busy++;
		pthread_mutex_unlock(&r->mu);
		struct timespec c0, c1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		double t0 = bench_now_us();
		vm__destroy(vm);
		free(vm);
		double dt = bench_now_us() - t0;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		pthread_mutex_lock(&r->mu);
		r->destroy_us_sum += dt;
		r->destroy_cpu_us_sum += (c1.tv_sec - c0.tv_sec) * 1e6 + (c1.tv_nsec - c0.tv_nsec) / 1e3;
		r->destroyed++;
		r->busy--;
		if (!r->len && !r->busy)
			pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static CK_UNUSED int ck_reaper_start(struct ck_reaper *r, int nthreads, size_t cap)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_cond_init(&r->idle, NULL);
	r->cap = cap;
	r->q = calloc(cap, sizeof(*r->q));
	if (!r->q)
		return -ENOMEM;
	if (nthreads > 32)
		nthreads = 32;
	for (int i = 0; i < nthreads; i++) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 256 << 10);
		if (pthread_create(&r->th[i], &a, ck_reaper_main, r) == 0)
			r->nthreads++;
		pthread_attr_destroy(&a);
	}
	return r->nthreads ? 0 : -EAGAIN;
}

/* Hand over a finished VM (blocks only if the queue is full). */
static CK_UNUSED void ck_reaper_put(struct ck_reaper *r, struct vm *vm)
{
	pthread_mutex_lock(&r->mu);
	while (r->len == r->cap) {
		pthread_mutex_unlock(&r->mu);
		usleep(1000);
		pthread_mutex_lock(&r->mu);
	}
	r->q[(r->head + r->len) % r->cap] = vm;
	r->len++;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static CK_UNUSED size_t ck_reaper_backlog(struct ck_reaper *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->len + (size_t)r->busy;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* Wait until every VM handed over is destroyed. */
static CK_UNUSED void ck_reaper_drain(struct ck_reaper *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->len || r->busy)
		pthread_cond_wait(&r->idle, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

static CK_UNUSED void ck_reaper_stop(struct ck_reaper *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < r->nthreads; i++)
		pthread_join(r->th[i], NULL);
	free(r->q);
	r->q = NULL;
}

/* ---- one in-process clone ------------------------------------------------------ */

struct ck_clone {
	/* from the start of the clone ("request arrives"), microseconds */
	double a_us;          /* to just before the first KVM_RUN (first guest instruction) */
	double exit1_us;      /* to the return of that KVM_RUN (first VM exit) */
	double b_us;          /* to the complete response (EOF on the stdout pipe) */
	/* breakdown of a_us */
	double open_kvm, map_mem, create_vm, memslot, vcpu, restore, pending_read;
	/* the run (b - a) */
	uint64_t exits;       /* KVM_RUN exits */
	double in_kvm_run_us; /* time inside KVM_RUN (guest + PVM emulation + faults) */
	long minflt;          /* host page faults of this thread during the clone and run */
	int status;
	char out[256];
};

/*
 * Clone snap, feed it req, run it to exit, read its stdout until EOF.  The VM
 * goes to the reaper, or to *keep when keep != NULL (the caller owns it).
 * run == false: stop after vm__create_clone() (an idle clone: its pending
 * stdin read still waits for a request).
 */
static CK_UNUSED int ck_clone_impl(const struct snapshot *snap, const char *req, struct ck_reaper *rp,
				   bool run, struct vm **keep, struct vm *shell, struct ck_clone *c)
{
	struct sb_err err = { "" };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 };
	size_t rl = strlen(req), no = 0;
	struct vm *vm;
	int ret;

	memset(c, 0, sizeof(*c));
	c->status = -1;
	/* the request is already in an fd when it "arrives" (like a socket) */
	if (run) {
		if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC)) {
			fprintf(stderr, "pipe: %s\n", strerror(errno));
			return -errno;
		}
		if (write(pin[1], req, rl) != (ssize_t)rl) {
			fprintf(stderr, "write request: %s\n", strerror(errno));
			return -EIO;
		}
		close(pin[1]);
	}
	ck_trace.n = 0;
	ck_trace.on = true;
	struct rusage ru0, ru1;
	getrusage(RUSAGE_THREAD, &ru0);
	double t0 = bench_now_us();
	vm = shell ? shell : calloc(1, sizeof(*vm));
	if (!vm) {
		ck_trace.on = false;
		return -ENOMEM;
	}
	/* with a pre-created shell (a pool), only memory + state are on the path */
	ret = shell ? vm__clone_into(vm, snap, &err) : vm__create_clone(vm, snap, &err);
	double t_clone = bench_now_us();
	if (ret < 0) {
		ck_trace.on = false;
		fprintf(stderr, "vm__create_clone: %s\n", err.msg);
		if (shell)
			vm__destroy(vm);
		free(vm);
		goto out;
	}
	if (run) {
		vm->m.hc.stdin_fd = pin[0];
		vm->m.hc.stdout_fd = pout[1];
		vm->m.hc.program = "bench";
		ret = hypercall__complete_pending(&vm->m.hc, &err);
		double t_pend = bench_now_us();
		if (ret == HC_CONTINUE)
			ret = vcpu__run(&vm->vcpu, &err);
		double t_run = bench_now_us();
		ck_trace.on = false;
		getrusage(RUSAGE_THREAD, &ru1);
		c->minflt = ru1.ru_minflt - ru0.ru_minflt;
		c->exits = vm->vcpu.exits;
		for (int i = 0; i < ck_trace.n; i++)
			if (ck_trace.ev[i].req == KVM_RUN)
				c->in_kvm_run_us += ck_trace.ev[i].t1 - ck_trace.ev[i].t0;
		if (ret < 0) {
			fprintf(stderr, "clone run: %s\n", err.msg);
		} else {
			c->status = ret;
			close(pout[1]);
			pout[1] = -1;
			for (;;) {
				ssize_t k = read(pout[0], c->out + no, sizeof(c->out) - 1 - no);
				if (k <= 0)
					break;
				no += (size_t)k;
				if (no == sizeof(c->out) - 1) {
					char sink[4096];
					while (read(pout[0], sink, sizeof(sink)) > 0)
						;
					break;
				}
			}
			c->out[no] = 0;
			c->b_us = bench_now_us() - t0;
			ret = 0;
		}
		const struct ck_ev *kr = ck_trace_find(KVM_RUN);
		c->a_us = (kr ? kr->t0 : t_run) - t0;
		c->exit1_us = kr ? kr->t1 - t0 : -1;
		c->pending_read = t_pend - t_clone;
	} else {
		ck_trace.on = false;
		c->a_us = t_clone - t0;
	}
	/* breakdown from the ioctl trace of vm__create_clone() */
	{
		const struct ck_ev *ver = ck_trace_find(KVM_GET_API_VERSION);
		const struct ck_ev *cvm = ck_trace_find(KVM_CREATE_VM);
		const struct ck_ev *mem = ck_trace_find(KVM_SET_USER_MEMORY_REGION);
		const struct ck_ev *vc = ck_trace_find(KVM_CREATE_VCPU);
		/* durations of the ioctls themselves; "restore" is everything after
		 * the last of them (mapping mem.img over the slot + state ioctls).
		 * A pooled clone has none of the first three. */
		double last = t0;
		if (ver)
			c->open_kvm = ver->t1 - t0;
		if (cvm)
			c->create_vm = cvm->t1 - cvm->t0, last = cvm->t1;
		if (mem)
			c->memslot = mem->t1 - mem->t0, last = mem->t1 > last ? mem->t1 : last;
		if (vc)
			c->vcpu = vc->t1 - vc->t0, last = vc->t1 > last ? vc->t1 : last;
		c->restore = t_clone - last;
	}
	if (keep)
		*keep = vm;
	else if (rp)
		ck_reaper_put(rp, vm);
	else {
		vm__destroy(vm);
		free(vm);
	}
out:
	if (pin[0] >= 0)
		close(pin[0]);
	if (pout[0] >= 0)
		close(pout[0]);
	if (pout[1] >= 0)
		close(pout[1]);
	return ret;
}

static CK_UNUSED int ck_clone_once(const struct snapshot *snap, const char *req, struct ck_reaper *rp,
				   bool run, struct vm **keep, struct ck_clone *c)
{
	return ck_clone_impl(snap, req, rp, run, keep, NULL, c);
}

/* The same into a VM shell created beforehand (vm__create_shell), off the clock. */
static CK_UNUSED int ck_clone_pooled(const struct snapshot *snap, const char *req, struct ck_reaper *rp,
				     struct vm *shell, struct ck_clone *c)
{
	return ck_clone_impl(snap, req, rp, true, NULL, shell, c);
}
/* The proc backend finds its stub next to the running program
 * (file__exe_relative): build/bench/guest -> build/guest. */
static CK_UNUSED void ck_link_guest(void)
{
	char exe[PATH_MAX], link[PATH_MAX + 16];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (k <= 0)
		return;
	exe[k] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(link, sizeof(link), "%s/guest", exe);
	if (access(link, F_OK) && symlink("../guest", link))
		fprintf(stderr, "symlink %s: %s\n", link, strerror(errno));
}

#endif
