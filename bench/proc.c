/* SPDX-License-Identifier: MIT */
/*
 * The proc backend's figures (issue 8, "Benchmarks"), in one run, interleaved
 * with its peers:
 *   - template create (proc, kvm);
 *   - clone latency of the Lua handler template (256 MiB) in-process through
 *     backend/backend.h, as `snapbox run` and the pool use it: the shell
 *     (machine__new RAM_RESERVED: for proc the forked+exec'd stub) is made
 *     before the clock starts; then clone_into, hypercall__complete_pending,
 *     run.  Also "pre-cloned": clone_into done ahead of the request too (it
 *     does not depend on the request), leaving complete_pending + run.
 *       (a) request -> first guest instruction: proc: the reply to the
 *           guest's pending READ is sent (the guest is runnable with its
 *           request in memory); kvm: the first KVM_RUN is entered;
 *       (b) request -> the response written to the stdout pipe (the guest's
 *           WRITE hypercall done); "end": run() returned (proc: includes
 *           the sandbox's kill + reap, i.e. teardown);
 *     with a per-phase breakdown for proc (send/recv/writev interposed);
 *   - peers in the same rounds: a warm fork of Debian's lua5.4 that has run
 *     the handler's set-up and forks at its first read of stdin
 *     (bench/preload/lua_zygote.c), fork+exec of the static musl Lua
 *     (build/guest/rootfs/bin/lua, native) running the handler cold, and
 *     the kvm backend where /dev/kvm is usable;
 *   - clones/s on 2 cores including teardown (proc, warm fork, kvm);
 *   - idle clone memory: N proc clones parked at their pending READ (and N
 *     warm-fork children parked in read(0)): smaps_rollup of each process;
 *   - a trapped system call: /bin/getpid_bench native, proc, kvm.
 * Prints targets met/missed; never asserts.
 * Usage: build/bench/proc [rounds] [rate seconds] [parked]  (300, 4, 100).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox.
 * BENCH_JAIL=off: the proc sandboxes without the jail (as where not root).
 * BENCH_STDIN=pipe: the clones' request on a pipe (default: a memfd, as the
 * service hands it).
 * BENCH_PIN=CPU (an experiment): the monitor thread and every proc sandbox
 * of the latency rounds on that one CPU.  The proc backend looks for its
 * stub next to the running program, so this makes build/bench/guest a
 * symlink to ../guest (copy the binary elsewhere, with a guest/proc-stub
 * beside it, to try another stub).
 */
#include "common.h"
#include "clonekit.h"
#include "warmfork.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"

#define SLUA "build/guest/rootfs/bin/lua"
#define MEM "256M"

static char *const store = ck_tmpdir;

/* ---- send/recv/sendmsg/writev interposer (as clonekit does for ioctl) ---- */
enum { EV_SEND, EV_RECV, EV_SENDMSG, EV_WRITEV };
struct ev {
	int kind, fd;
	long len;
	uint32_t nr; /* recv: the message's call number */
	double t0, t1;
};
#define TR_MAX 256
static __thread struct {
	bool on;
	int n;
	struct ev ev[TR_MAX];
} tr;

static void tr_add(int kind, int fd, long len, double t0)
{
	if (tr.n < TR_MAX)
		tr.ev[tr.n++] = (struct ev){ .kind = kind, .fd = fd, .len = len, .t0 = t0, .t1 = bench_now_us() };
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	double t0 = tr.on ? bench_now_us() : 0;
	long r = syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
	int e = errno;
	if (tr.on)
		tr_add(EV_SEND, fd, r, t0);
	errno = e;
	return r;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	double t0 = tr.on ? bench_now_us() : 0;
	long r = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
	int e = errno;
	if (tr.on) {
		tr_add(EV_RECV, fd, r, t0);
		if (r >= 4 && tr.n)
			memcpy(&tr.ev[tr.n - 1].nr, buf, 4);
	}
	errno = e;
	return r;
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
	double t0 = tr.on ? bench_now_us() : 0;
	long r = syscall(SYS_sendmsg, fd, mh, flags);
	int e = errno;
	if (tr.on)
		tr_add(EV_SENDMSG, fd, r, t0);
	errno = e;
	return r;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	double t0 = tr.on ? bench_now_us() : 0;
	long r = syscall(SYS_write, fd, buf, len);
	int e = errno;
	if (tr.on)
		tr_add(EV_WRITEV, fd, r, t0);
	errno = e;
	return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	double t0 = tr.on ? bench_now_us() : 0;
	long r = syscall(SYS_writev, fd, iov, cnt);
	int e = errno;
	if (tr.on)
		tr_add(EV_WRITEV, fd, r, t0);
	errno = e;
	return r;
}

/* ---- one clone through the backend interface ----------------------------- */

enum { PH_SENDSTART, PH_SENDCPU, PH_STUB, PH_PENDING, PH_REPLY, PH_FIRSTHC, PH_HCWAIT, PH_HCMON,
       PH_RESP2EXIT, PH_KILL, PH_N };
static const char *const ph_name[PH_N] = {
	"open mem.img + sendmsg(start, fd)",
	"send saved CPU (4288 B)",
	"stub: map, mprotect, vDSO, handlers, filter -> RESUMED",
	"complete_pending (process_vm_writev of request)",
	"send reply (guest runnable)",
	"reply -> first hypercall (wake-up + guest)",
	"later hypercalls: waiting on the guest",
	"later hypercalls: monitor work",
	"response written -> EXIT received",
	"EXIT -> run() returns (kill + waitpid)",
};

struct cl {
	double a, b, end;      /* us from the request */
	double ph[PH_N];
	int nhc;               /* hypercall messages after the reply */
	char hcs[128];         /* their names */
	double mon_cpu_us;     /* the monitor thread's CPU, request -> end */
	long flt;              /* sandbox page faults from clone_into to reap (proc) */
	double cpu_us;         /* sandbox CPU, its whole life (proc) */
	int status;
	char out[256];
};

static long proc_minflt(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	long v = -1;
	/* after ')': state ppid pgrp session tty tpgid flags minflt */
	if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %ld", &v) != 1)
		v = -1;
	return v;
}

/* A shell: for proc, wait (untimed) until its stub is exec'd and blocked on
 * the channel, as a pool's shell would be long before a request. */
/* the last proc shell: machine__new (fork) in the monitor; until its stub
 * waits on the channel; the sandbox's CPU by then (exec + stub start) */
static double sh_new_us, sh_ready_us, sh_cpu_us;
static int pin_cpu = -1; /* BENCH_PIN=CPU: monitor and sandboxes on one CPU (experiment) */

static double schedstat_us(pid_t pid)
{
	char p[64];
	double ns = -1000;
	snprintf(p, sizeof(p), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(p, "re");
	if (f) {
		if (fscanf(f, "%lf", &ns) != 1)
			ns = -1000;
		fclose(f);
	}
	return ns / 1e3;
}

/* BENCH_JAIL=off: proc sandboxes without the jail, as where not root */
static struct machine *mnew(const struct backend *be, uint64_t size, struct sb_err *err)
{
	static struct jail_config off;
	static struct machine_opts o = { .jail = &off };
	const char *j = getenv("BENCH_JAIL");

	if (be == &proc_backend && j && !strcmp(j, "off")) {
		jail__default_config(&off);
		off.layers = 0;
		return machine__new_opts(be, size, RAM_RESERVED, &o, err);
	}
	return machine__new(be, size, RAM_RESERVED, err);
}

static struct machine *shell_new(const struct backend *be, uint64_t size)
{
	struct sb_err err = { "" };
	double t0 = bench_now_us();
	struct machine *m = mnew(be, size, &err);
	sh_new_us = bench_now_us() - t0;
	if (!m) {
		fprintf(stderr, "%s shell: %s\n", be->name, err.msg);
		return NULL;
	}
	if (be == &proc_backend) {
		char p[64], buf[512];
		snprintf(p, sizeof(p), "/proc/%d/stat", (int)((struct proc_machine *)m)->pid);
		for (int i = 0; i < 2000; i++) {
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			if (fd >= 0)
				close(fd);
			buf[n > 0 ? n : 0] = 0;
			char *s = strrchr(buf, ')');
			if (strstr(buf, "(proc-stub)") && s && s[2] == 'S')
				break;
			usleep(20);
		}
		sh_ready_us = bench_now_us() - t0;
		sh_cpu_us = schedstat_us(((struct proc_machine *)m)->pid);
		if (pin_cpu >= 0) {
			cpu_set_t cs;
			CPU_ZERO(&cs);
			CPU_SET(pin_cpu, &cs);
			sched_setaffinity(((struct proc_machine *)m)->pid, sizeof(cs), &cs);
		}
	}
	return m;
}

static int clone_into(struct machine *m, const struct snapshot *snap)
{
	struct sb_err err = { "" };
	int ret = m->be->clone_into(m, snap, &err);
	if (ret < 0)
		fprintf(stderr, "%s clone_into: %s\n", m->be->name, err.msg);
	return ret;
}

/* BENCH_STDIN=pipe: the request on a pipe; else in a memfd, as the
 * service (launcher/pool.c) hands it */
static bool stdin_pipe;

/* m: a shell (precloned false) or a clone made ahead (true).  Consumes m:
 * proc machines are freed here (run() already reaped the sandbox), kvm ones
 * go to the reaper (VM teardown: 16-23 ms, off the path as in bench/clone). */
static int one_clone(struct machine *m, const struct snapshot *snap, bool precloned,
		     struct ck_reaper *rp, struct cl *c)
{
	struct sb_err err = { "" };
	int pin[2], pout[2], ret = 0;
	bool proc = m->be == &proc_backend;
	pid_t pid = proc ? ((struct proc_machine *)m)->pid : 0;
	long flt0 = proc && !precloned ? proc_minflt(pid) : -1;
	struct rusage ru0, ru1;
	size_t no = 0;

	memset(c, 0, sizeof(*c));
	c->status = -1;
	if (stdin_pipe) {
		if (pipe2(pin, O_CLOEXEC))
			return -errno;
	} else { /* as the service hands a request: a memfd */
		pin[0] = memfd_create("bench-request", MFD_CLOEXEC);
		pin[1] = dup(pin[0]);
		if (pin[0] < 0 || pin[1] < 0)
			return -errno;
	}
	if (pipe2(pout, O_CLOEXEC))
		return -errno;
	if (write(pin[1], REQ, strlen(REQ)) != (ssize_t)strlen(REQ))
		return -EIO;
	close(pin[1]);
	if (!stdin_pipe && lseek(pin[0], 0, SEEK_SET) < 0)
		return -errno;
	getrusage(RUSAGE_CHILDREN, &ru0);
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	tr.n = 0;
	tr.on = true;
	ck_trace.n = 0;
	ck_trace.on = true;
	double t0 = bench_now_us(), t_c = t0, t_p = t0, t_r = t0;
	if (!precloned)
		ret = clone_into(m, snap);
	t_c = bench_now_us();
	if (ret == 0) {
		m->hc.stdin_fd = pin[0];
		m->hc.stdout_fd = pout[1];
		m->hc.program = "bench";
		ret = hypercall__complete_pending(&m->hc, &err);
		t_p = bench_now_us();
		if (ret == HC_CONTINUE)
			ret = m->be->run(m, &err);
		t_r = bench_now_us();
		tr.on = false;
		ck_trace.on = false;
		if (ret < 0)
			fprintf(stderr, "%s run: %s\n", m->be->name, err.msg);
	}
	tr.on = false;
	ck_trace.on = false;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	c->mon_cpu_us = (c1.tv_sec - c0.tv_sec) * 1e6 + (c1.tv_nsec - c0.tv_nsec) / 1e3;
	close(pin[0]);
	close(pout[1]);
	for (ssize_t k; (k = read(pout[0], c->out + no, sizeof(c->out) - 1 - no)) > 0;)
		if ((no += (size_t)k) == sizeof(c->out) - 1)
			break;
	c->out[no] = 0;
	close(pout[0]);
	if (ret < 0)
		goto done;
	c->status = ret;
	c->end = t_r - t0;
	c->b = -1;
	for (int i = 0; i < tr.n; i++)
		if (tr.ev[i].kind == EV_WRITEV && tr.ev[i].fd == pout[1])
			c->b = tr.ev[i].t1 - t0;
	if (!proc) {
		const struct ck_ev *kr = ck_trace_find(KVM_RUN);
		c->a = (kr ? kr->t0 : t_p) - t0;
		goto done;
	}
	getrusage(RUSAGE_CHILDREN, &ru1);
	c->cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
		     ru0.ru_stime.tv_sec) * 1e6 +
		    (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
		     ru0.ru_stime.tv_usec);
	c->flt = flt0 >= 0 ? ru1.ru_minflt - ru0.ru_minflt - flt0 : -1;
	/* proc breakdown from the channel trace */
	{
		int i = 0, last_recv = -1;
		double prev = t0;
		if (!precloned) {
			for (; i < tr.n && tr.ev[i].kind != EV_SENDMSG; i++)
				;
			if (i < tr.n)
				c->ph[PH_SENDSTART] = tr.ev[i].t1 - t0, prev = tr.ev[i].t1, i++;
			for (; i < tr.n && tr.ev[i].kind != EV_SEND; i++)
				;
			if (i < tr.n)
				c->ph[PH_SENDCPU] = tr.ev[i].t1 - prev, prev = tr.ev[i].t1, i++;
			for (; i < tr.n && tr.ev[i].kind != EV_RECV; i++)
				;
			if (i < tr.n)
				c->ph[PH_STUB] = tr.ev[i].t1 - prev, i++;
		}
		c->ph[PH_PENDING] = t_p - t_c;
		for (; i < tr.n && tr.ev[i].kind != EV_SEND; i++)
			;
		if (i < tr.n) {
			c->ph[PH_REPLY] = tr.ev[i].t1 - t_p;
			c->a = tr.ev[i].t1 - t0;
			prev = tr.ev[i].t1;
			i++;
		}
		double resp_t = c->b >= 0 ? c->b + t0 : 0;
		for (; i < tr.n; i++) {
			struct ev *e = &tr.ev[i];
			if (e->kind == EV_RECV) {
				if (last_recv < 0)
					c->ph[PH_FIRSTHC] = e->t1 - prev;
				else if (resp_t && e->t0 >= resp_t)
					c->ph[PH_RESP2EXIT] += e->t1 - prev;
				else
					c->ph[PH_HCWAIT] += e->t1 - prev;
				last_recv = i;
				c->nhc++;
				size_t l = strlen(c->hcs);
				snprintf(c->hcs + l, sizeof(c->hcs) - l, "%s ", hypercall__name(e->nr));
				prev = e->t1;
			} else if (e->kind == EV_SEND) {
				c->ph[PH_HCMON] += e->t1 - prev;
				prev = e->t1;
			}
		}
		if (last_recv >= 0)
			c->ph[PH_KILL] = t_r - tr.ev[last_recv].t1;
	}
done:
	if (proc || !rp)
		machine__free(m);
	else
		ck_reaper_put(rp, (struct vm *)m);
	return ret < 0 ? ret : 0;
}

/* fork+exec of the static musl Lua, cold, request on stdin */
static int cold_exec(double *resp, double *eof)
{
	int pin[2], pout[2];
	char out[256];

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
		return -1;
	if (write(pin[1], REQ, strlen(REQ)) != (ssize_t)strlen(REQ))
		return -1;
	close(pin[1]);
	double t0 = bench_now_us();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		execl(SLUA, "lua", HANDLER, (char *)NULL);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	int ret = read_resp(pout[0], t0, resp, eof, out, sizeof(out));
	close(pout[0]);
	waitpid(pid, NULL, 0);
	return ret;
}

/* ---- memory of parked processes --------------------------------------------- */

struct pmem {
	double pss, priv, rss, pte; /* KiB */
};

static int pmem_of(pid_t pid, struct pmem *m)
{
	char p[64], line[256];
	FILE *f;

	memset(m, 0, sizeof(*m));
	snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", (int)pid);
	if (!(f = fopen(p, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		double v;
		if (sscanf(line, "Pss: %lf", &v) == 1)
			m->pss = v;
		else if (sscanf(line, "Rss: %lf", &v) == 1)
			m->rss = v;
		else if (sscanf(line, "Private_Clean: %lf", &v) == 1 ||
			 sscanf(line, "Private_Dirty: %lf", &v) == 1)
			m->priv += v;
	}
	fclose(f);
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (!(f = fopen(p, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "VmPTE: %lf", &m->pte);
	fclose(f);
	return 0;
}

static void pmem_print(const char *what, struct pmem *v, int n)
{
	double *x = calloc(n, sizeof(double));
	struct stats s;
	const char *name[4] = { "PSS", "private", "RSS", "page tables (VmPTE)" };
	for (int k = 0; k < 4; k++) {
		char label[128];
		for (int i = 0; i < n; i++)
			x[i] = k == 0 ? v[i].pss : k == 1 ? v[i].priv : k == 2 ? v[i].rss : v[i].pte;
		bench_stats(x, n, &s);
		snprintf(label, sizeof(label), "%s: %s", what, name[k]);
		bench_print(label, "KiB", &s);
	}
	free(x);
}

/* ---- clones/s ------------------------------------------------------------------ */

enum { R_PROC, R_FORK, R_KVM, R_N };
static const char *const r_name[R_N] = { "proc clone (shell+clone+run+teardown)",
					 "warm fork of lua5.4 (to EOF)",
					 "kvm clone (shell+clone+run; reaper)" };
static struct snapshot snap_p, snap_k;
static struct ck_reaper rp;
static atomic_bool r_go, r_stop;
static int r_kind;

struct rworker {
	pthread_t th;
	long done, bad;
};

static void *rwork(void *p)
{
	struct rworker *w = p;
	struct cl c;

	while (!atomic_load(&r_go))
		usleep(50);
	while (!atomic_load(&r_stop)) {
		int ok;
		if (r_kind == R_FORK) {
			double r1, r2;
			ok = warm_fork(&r1, &r2) == 0;
		} else {
			const struct snapshot *s = r_kind == R_PROC ? &snap_p : &snap_k;
			struct machine *m = mnew(r_kind == R_PROC ? &proc_backend : &kvm_backend,
						 s->hdr.mem_size, &(struct sb_err){ "" });
			if (!m) {
				w->bad++;
				usleep(1000);
				continue;
			}
			ok = one_clone(m, s, false, &rp, &c) == 0 && !strcmp(c.out, WANT);
		}
		if (atomic_load(&r_stop))
			break; /* finished after the window */
		if (ok)
			w->done++;
		else
			w->bad++;
	}
	return NULL;
}

static double rate(int kind, int nworkers, double secs, long *bad)
{
	struct rworker w[8];
	r_kind = kind;
	atomic_store(&r_go, false);
	atomic_store(&r_stop, false);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < nworkers; i++)
		pthread_create(&w[i].th, NULL, rwork, &w[i]);
	double t0 = bench_now_us();
	atomic_store(&r_go, true);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&r_stop, true);
	double dt = bench_now_us() - t0;
	long done = 0;
	*bad = 0;
	for (int i = 0; i < nworkers; i++) {
		pthread_join(w[i].th, NULL);
		done += w[i].done;
		*bad += w[i].bad;
	}
	ck_reaper_drain(&rp);
	return done / (dt / 1e6);
}

/* ---- getpid ---------------------------------------------------------------------- */

static double getpid_ns(char *const argv[])
{
	struct ck_spawn sp;
	if (ck_spawn(argv, NULL, 0, 60, &sp) < 0 || sp.status != 0) {
		fprintf(stderr, "%s: status %d: %s%s\n", argv[0], sp.status, sp.out, sp.err);
		return -1;
	}
	char *s = strstr(sp.out, "getpid: ");
	return s ? atof(s + 8) : -1;
}

static void verdict(const char *what, bool met, const char *detail)
{
	printf("target %-52s %s  (%s)\n", what, met ? "MET   " : "MISSED", detail);
}

/* ---- main ---------------------------------------------------------------------------- */

enum { V_PSHELL, V_PPRE, V_KSHELL, V_KPRE, V_N };
static const char *const v_name[V_N] = { "proc, from a shell", "proc, pre-cloned",
					 "kvm, from a VM shell", "kvm, pre-cloned" };

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 300;
	double secs = argc > 2 ? atof(argv[2]) : 4;
	int npark = argc > 3 ? atoi(argv[3]) : 100;
	char why[256];
	bool kvm = kvm_backend.available(why, sizeof(why));
	struct ck_spawn sp;
	struct sb_err err = { "" };

	if (n < 10)
		n = 10;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_raise_nofile();
	if (ck_tmpdir_create(NULL, "proc", zy_kill) < 0)
		return 1;
	/* the proc backend finds its stub next to the running program
	 * (file__exe_relative): build/bench/guest -> build/guest */
	ck_link_guest();
	printf("# proc backend figures: template = /bin/lua /app/handler.lua at its ready point, %s "
	       "RAM; request %s; kvm %s\n", MEM, REQ, kvm ? "usable" : "not usable here");

	/* 1. template create, interleaved */
	char *prog[] = { "/bin/lua", "/app/handler.lua", NULL };
	char *xp[] = { "--mem", MEM, "--backend", "proc", NULL };
	char *xk[] = { "--mem", MEM, "--backend", "kvm", NULL };
	double tc_p[8], tc_k[8];
	int ntc = 5, ntk = 0;
	for (int i = 0; i < ntc; i++) {
		if (ck_template_create(store, "hp", xp, prog, i == 0, &sp) < 0)
			return 1;
		tc_p[i] = sp.total_us / 1e3;
		if (kvm && ck_template_create(store, "hk", xk, prog, i == 0, &sp) == 0)
			tc_k[ntk++] = sp.total_us / 1e3;
	}
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s/templates/hp", store);
	if (snapshot__load(dir, &snap_p, &err) < 0 || proc_backend.check(&snap_p, &err) < 0) {
		fprintf(stderr, "proc template: %s\n", err.msg);
		return 1;
	}
	if (kvm && (ntk < ntc || ck_load(store, "hk", &snap_k) < 0))
		kvm = false;
	if (zy_start() < 0)
		return 1;
	if (ck_reaper_start(&rp, 2, 4096) < 0)
		return 1;

	/* 2. latency, interleaved per round */
	double *va[V_N], *vb[V_N], *ve[V_N], *ph[PH_N], *wf_r = calloc(n, 8), *wf_e = calloc(n, 8),
	       *ce_r = calloc(n, 8), *ce_e = calloc(n, 8), *flt = calloc(n, 8), *cpu = calloc(n, 8),
	       *nhc = calloc(n, 8), *phpre[PH_N], *shn = calloc(n, 8), *shr = calloc(n, 8),
	       *shc = calloc(n, 8), *mcpu = calloc(n, 8), *mcpupre = calloc(n, 8);
	char hcs[128] = "";
	const char *pin = getenv("BENCH_PIN"), *sin = getenv("BENCH_STDIN");
	stdin_pipe = sin && !strcmp(sin, "pipe");
	printf("# the clones' stdin: %s\n", stdin_pipe ? "a pipe (BENCH_STDIN=pipe)" : "a memfd, as the service hands a request");
	if (pin && *pin) {
		cpu_set_t cs;
		pin_cpu = atoi(pin);
		CPU_ZERO(&cs);
		CPU_SET(pin_cpu, &cs);
		sched_setaffinity(0, sizeof(cs), &cs);
		printf("# EXPERIMENT: monitor thread and proc sandboxes pinned to CPU %d\n", pin_cpu);
	}
	int nv[V_N] = { 0 }, nwf = 0, nce = 0, bad = 0;
	for (int k = 0; k < V_N; k++)
		va[k] = calloc(n, 8), vb[k] = calloc(n, 8), ve[k] = calloc(n, 8);
	for (int k = 0; k < PH_N; k++)
		ph[k] = calloc(n, 8), phpre[k] = calloc(n, 8);
	for (int i = -10; i < n; i++) { /* 10 warm-up rounds */
		struct machine *m[V_N] = { NULL };
		struct cl c;
		double r1, r2;
		m[V_PSHELL] = shell_new(&proc_backend, snap_p.hdr.mem_size);
		if (i >= 0)
			shn[i] = sh_new_us, shr[i] = sh_ready_us, shc[i] = sh_cpu_us;
		m[V_PPRE] = shell_new(&proc_backend, snap_p.hdr.mem_size);
		if (!m[V_PSHELL] || !m[V_PPRE] || clone_into(m[V_PPRE], &snap_p) < 0)
			return 1;
		if (kvm) {
			m[V_KSHELL] = shell_new(&kvm_backend, snap_k.hdr.mem_size);
			m[V_KPRE] = shell_new(&kvm_backend, snap_k.hdr.mem_size);
			if (!m[V_KSHELL] || !m[V_KPRE] || clone_into(m[V_KPRE], &snap_k) < 0)
				return 1;
		}
		if (warm_fork(&r1, &r2) == 0 && i >= 0)
			wf_r[nwf] = r1, wf_e[nwf++] = r2;
		else if (i >= 0)
			bad++;
		for (int k = 0; k < V_N; k++) {
			int v = (i & 1) ? V_N - 1 - k : k; /* alternate the order */
			if (!m[v])
				continue;
			const struct snapshot *s = v < V_KSHELL ? &snap_p : &snap_k;
			bool pre = v == V_PPRE || v == V_KPRE;
			if (one_clone(m[v], s, pre, &rp, &c) < 0 || strcmp(c.out, WANT)) {
				bad++;
				continue;
			}
			if (i < 0)
				continue;
			va[v][nv[v]] = c.a, vb[v][nv[v]] = c.b, ve[v][nv[v]] = c.end;
			if (v == V_PSHELL) {
				for (int p = 0; p < PH_N; p++)
					ph[p][nv[v]] = c.ph[p];
				flt[nv[v]] = c.flt, cpu[nv[v]] = c.cpu_us, nhc[nv[v]] = c.nhc;
				mcpu[nv[v]] = c.mon_cpu_us;
				if (!hcs[0])
					snprintf(hcs, sizeof(hcs), "%s", c.hcs);
			} else if (v == V_PPRE) {
				mcpupre[nv[v]] = c.mon_cpu_us;
				for (int p = 0; p < PH_N; p++)
					phpre[p][nv[v]] = c.ph[p];
			}
			nv[v]++;
		}
		if (cold_exec(&r1, &r2) == 0 && i >= 0)
			ce_r[nce] = r1, ce_e[nce++] = r2;
		ck_reaper_drain(&rp);
	}
	printf("\n## latency: %d interleaved rounds (+10 warm-up), %d failures/wrong answers\n", n, bad);
	printf("# (a) = request -> first guest instruction; (b) = request -> response written; "
	       "end = run() returned (proc: incl. kill+reap)\n");
	struct stats s = { 0 }, s_pa = { 0 }, s_pb = { 0 }, s_ppa = { 0 }, s_ppb = { 0 }, s_wf = { 0 },
		     s_ce = { 0 };
	for (int v = 0; v < V_N; v++) {
		char label[128];
		if (!nv[v])
			continue;
		snprintf(label, sizeof(label), "(a) %s", v_name[v]);
		bench_stats(va[v], nv[v], &s);
		bench_print(label, "us", &s);
		if (v == V_PSHELL)
			s_pa = s;
		if (v == V_PPRE)
			s_ppa = s;
		snprintf(label, sizeof(label), "(b) %s", v_name[v]);
		bench_stats(vb[v], nv[v], &s);
		bench_print(label, "us", &s);
		if (v == V_PSHELL)
			s_pb = s;
		if (v == V_PPRE)
			s_ppb = s;
		snprintf(label, sizeof(label), "end %s", v_name[v]);
		bench_stats(ve[v], nv[v], &s);
		bench_print(label, "us", &s);
	}
	bench_stats(wf_r, nwf, &s_wf);
	bench_print("warm fork lua5.4: response", "us", &s_wf);
	bench_stats(wf_e, nwf, &s);
	bench_print("warm fork lua5.4: EOF (child exited)", "us", &s);
	bench_stats(ce_r, nce, &s_ce);
	bench_print("fork+exec static Lua, cold: response", "us", &s_ce);
	bench_stats(ce_e, nce, &s);
	bench_print("fork+exec static Lua, cold: EOF", "us", &s);
	printf("# ratios of medians: warm fork / proc (b) from a shell %.2fx, pre-cloned %.2fx; "
	       "cold exec / proc (b) %.2fx\n",
	       s_wf.median / s_pb.median, s_wf.median / s_ppb.median, s_ce.median / s_pb.median);

	printf("\n## proc (b) from a shell, per phase (median us of each; they add up to ~end)\n");
	for (int p = 0; p < PH_N; p++) {
		bench_stats(ph[p], nv[V_PSHELL], &s);
		bench_print(ph_name[p], "us", &s);
	}
	bench_stats(nhc, nv[V_PSHELL], &s);
	bench_print("hypercall messages after the reply", "", &s);
	printf("# they are: %s\n", hcs);
	bench_stats(flt, nv[V_PSHELL], &s);
	bench_print("sandbox page faults, clone_into -> reap", "", &s);
	bench_stats(cpu, nv[V_PSHELL], &s);
	bench_print("sandbox CPU time, its whole life (exec too)", "us", &s);
	bench_stats(shc, n, &s);
	bench_print("  of which the shell: exec + stub start", "us", &s);
	bench_stats(mcpu, nv[V_PSHELL], &s);
	bench_print("monitor thread CPU, request -> end", "us", &s);
	bench_stats(shn, n, &s);
	bench_print("shell: machine__new (fork, in the monitor)", "us", &s);
	bench_stats(shr, n, &s);
	bench_print("shell: until its stub waits (off the path)", "us", &s);
	printf("## proc pre-cloned, per phase\n");
	for (int p = PH_PENDING; p < PH_N; p++) {
		bench_stats(phpre[p], nv[V_PPRE], &s);
		bench_print(ph_name[p], "us", &s);
	}
	bench_stats(mcpupre, nv[V_PPRE], &s);
	bench_print("monitor thread CPU, request -> end", "us", &s);

	/* 3. memory of parked clones (and parked warm-fork children) */
	struct machine **pk = calloc(npark, sizeof(*pk));
	struct pmem *pm = calloc(npark, sizeof(*pm)), *pf = calloc(npark, sizeof(*pf));
	int *hold = calloc(npark, sizeof(int)), np = 0, nf = 0;
	for (int i = 0; i < npark; i++) {
		if (!(pk[i] = shell_new(&proc_backend, snap_p.hdr.mem_size)) ||
		    clone_into(pk[i], &snap_p) < 0)
			break;
		np++;
	}
	usleep(100000);
	int nm = 0;
	for (int i = 0; i < np; i++)
		if (pmem_of(((struct proc_machine *)pk[i])->pid, &pm[nm]) == 0)
			nm++;
	for (int i = 0; i < npark; i++) {
		int pin[2], pout[2];
		pid_t pid;
		if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
			break;
		if (zy_send('p', pin[0], pout[1]) < 0 || read(zy_ctl, &pid, sizeof(pid)) != sizeof(pid))
			break;
		close(pin[0]);
		close(pout[1]);
		close(pout[0]);
		hold[nf++] = pin[1]; /* no EOF: the child waits in read(0) */
		usleep(2000);
		pmem_of(pid, &pf[nf - 1]);
	}
	usleep(100000);
	printf("\n## idle memory: %d proc clones parked at their pending READ; %d warm-fork children in "
	       "read(0)\n", nm, nf);
	pmem_print("proc clone", pm, nm);
	pmem_print("warm fork child", pf, nf);
	for (int i = 0; i < np; i++)
		machine__free(pk[i]);
	for (int i = 0; i < nf; i++)
		close(hold[i]);
	double priv_med;
	{
		double *x = calloc(nm + 1, 8);
		for (int i = 0; i < nm; i++)
			x[i] = pm[i].priv;
		bench_stats(x, nm, &s);
		priv_med = s.median;
		free(x);
	}

	/* 4. clones/s on 2 cores, interleaved kinds, 2 rounds */
	double rt[R_N][2] = { { 0 } };
	long rbad = 0;
	for (int r = 0; r < 2; r++)
		for (int k = 0; k < R_N; k++) {
			long b;
			if (k == R_KVM && !kvm)
				continue;
			rt[k][r] = rate(k, 2, secs, &b);
			rbad += b;
		}
	printf("\n## clones/s, 2 worker threads, %.0f s windows, 2 interleaved rounds (%ld failures)\n",
	       secs, rbad);
	for (int k = 0; k < R_N; k++)
		if (rt[k][0] > 0)
			printf("%-44s %7.0f /s  (rounds %.0f, %.0f)\n", r_name[k], (rt[k][0] + rt[k][1]) / 2,
			       rt[k][0], rt[k][1]);
	double prate = (rt[R_PROC][0] + rt[R_PROC][1]) / 2;

	/* 5. trapped getpid, interleaved */
	double gn[5], gp[5], gk[5];
	int ng = 0;
	for (int i = 0; i < 5; i++) {
		char *an[] = { "build/guest/rootfs/bin/getpid_bench", "50000", NULL };
		char *ap[] = { (char *)ck_snapbox(), "boot", "--backend", "proc", "--",
			       "/bin/getpid_bench", "50000", NULL };
		char *ak[] = { (char *)ck_snapbox(), "boot", "--backend", "kvm", "--",
			       "/bin/getpid_bench", "50000", NULL };
		gn[ng] = getpid_ns(an);
		gp[ng] = getpid_ns(ap);
		gk[ng] = kvm ? getpid_ns(ak) : -1;
		ng++;
	}
	printf("\n## one system call (getpid, 50,000 in a loop), 5 interleaved runs\n");
	bench_stats(gn, ng, &s);
	double gnm = s.median;
	bench_print("native (static musl, host kernel)", "ns", &s);
	bench_stats(gp, ng, &s);
	double gpm = s.median;
	bench_print("proc (seccomp trap -> SIGSYS -> guest layer)", "ns", &s);
	if (kvm) {
		bench_stats(gk, ng, &s);
		bench_print("kvm (user-mode syscall layer, kvm_pvm)", "ns", &s);
	}
	printf("# proc / native %.1fx\n", gpm / gnm);

	printf("\n## template create (CLI, to exit), %d interleaved\n", ntc);
	bench_stats(tc_p, ntc, &s);
	bench_print("proc", "ms", &s);
	if (ntk) {
		bench_stats(tc_k, ntk, &s);
		bench_print("kvm", "ms", &s);
	}

	printf("\n## targets (proc)\n");
	char d[160];
	snprintf(d, sizeof(d), "from a shell %.0f us; pre-cloned %.0f us", s_pb.median, s_ppb.median);
	verdict("(b) <= 0.4 ms median, from a shell", s_pb.median <= 400, d);
	verdict("(b) <= 0.4 ms median, pre-cloned", s_ppb.median <= 400, d);
	snprintf(d, sizeof(d), "warm fork %.0f us: %.2fx from a shell, %.2fx pre-cloned", s_wf.median,
		 s_wf.median / s_pb.median, s_wf.median / s_ppb.median);
	verdict("(b) >= 3x faster than the warm fork, from a shell", s_wf.median >= 3 * s_pb.median, d);
	verdict("(b) >= 3x faster than the warm fork, pre-cloned", s_wf.median >= 3 * s_ppb.median, d);
	snprintf(d, sizeof(d), "from a shell %.0f us; pre-cloned %.0f us", s_pa.median, s_ppa.median);
	verdict("(a) <= 0.1 ms, from a shell", s_pa.median <= 100, d);
	verdict("(a) <= 0.1 ms, pre-cloned", s_ppa.median <= 100, d);
	snprintf(d, sizeof(d), "%.0f/s", prate);
	verdict(">= 2,000 clones/s on 2 cores", prate >= 2000, d);
	snprintf(d, sizeof(d), "%.1f KiB private (median)", priv_med);
	verdict("idle clone <= 64 KiB private", priv_med <= 64, d);
	ck_reaper_stop(&rp);
	return 0;
}
