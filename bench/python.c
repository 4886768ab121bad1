/* SPDX-License-Identifier: MIT */
/*
 * Python in the sandbox (issue 10): the handler template
 * `/usr/bin/python3 /app/handler.py` (--mem 512M, the Python layer of
 * mk/python.mk) on each backend usable here, against its peers, in one run:
 *
 *   - fresh clone from a shell: the shell (machine__new RAM_RESERVED, what
 *     the pool keeps ready) made before the clock starts; clone_into,
 *     hypercall__complete_pending, run();
 *   - pre-cloned: the same, but clone_into (and, "pre-faulted", the
 *     template's write set made the clone's own: machine__prefault, what
 *     the service's pre-cloned workers do) before the clock starts; the
 *     template is made with --warmup-request (a training request that is
 *     not the measured one);
 *   - recycled: one machine, reset (machine__reset) after each request,
 *     the reset timed apart;
 *   - `snapbox run` from the shell's point of view (spawn to exit: the CLI
 *     loads the template, clones, answers, tears down);
 *   - the floor: a warm fork of the same native python3 process (the Python
 *     layer's python3.11, run through the layer's own ld.so with
 *     bench/preload/py_zygote.c preloaded: the handler's set-up runs once,
 *     natively; each request is a fork at its first read of stdin);
 *   - a cold `python3 /app/handler.py` (the same interpreter, started per
 *     request);
 *   - and the template's stored size (mem.img: what `template ls` calls
 *     STORED) against the Python layer's.
 *
 * request -> response: from the start (clone / fork / spawn) to the
 * response's newline on the read end of stdout (a reader thread started
 * before the clock; for a sandbox at the latest when run() returned, which
 * it does after the write, should the reader wake later); "exit" to the
 * program's exit (run() returned, or EOF).
 * Every response is checked against the native interpreter's answer to the
 * same request (all but the random token).  Prints median / p90 / p99
 * (bench/common.c); never asserts.
 *
 * Usage: build/bench/python [--backend kvm|proc] [rounds] [cold rounds]
 * (default: every usable backend, 100 rounds, 20 cold).  Run from the
 * repository root after make; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"

#include <sys/mman.h>
#include <sys/socket.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"

#define REQ "{\"n\": 30, \"text\": \"Hello, Snapbox! Python in a sandbox.\"}"
#define TRAIN_REQ "{\"n\": 12, \"text\": \"a training request\"}\n"
#define HANDLER_SRC "guest/rootfs/app/handler.py"
#define PYROOT "build/python/root"
#define PYLAYER "build/guest/python3.11.sbfs"
#define PRELOAD "build/bench/py_zygote.so"

static const struct backend *be;
static char want_prefix[1024]; /* the native answer up to the token */

/* ---- checking an answer ---------------------------------------------------- */

static int answer_ok(const char *out)
{
	return !strncmp(out, want_prefix, strlen(want_prefix)) && strchr(out, '\n');
}

/* ---- the native interpreter: argv for ld.so + python3.11 -------------------- */

static char ldso[PATH_MAX + 64], libpath[2 * PATH_MAX + 64], python[PATH_MAX + 64],
	handler[PATH_MAX], preload[PATH_MAX];

static int native_paths(void)
{
	char root[PATH_MAX];

	if (!realpath(PYROOT, root) || !realpath(HANDLER_SRC, handler)) {
		fprintf(stderr, "%s or %s missing: run make first\n", PYROOT, HANDLER_SRC);
		return -1;
	}
	snprintf(ldso, sizeof(ldso), "%s/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", root);
	snprintf(libpath, sizeof(libpath), "%s/lib/x86_64-linux-gnu:%s/usr/lib/x86_64-linux-gnu", root,
		 root);
	snprintf(python, sizeof(python), "%s/usr/bin/python3.11", root);
	if (!realpath(PRELOAD, preload))
		preload[0] = 0;
	return 0;
}

/* ---- reading a response: a thread started before the clock ----------------- */

struct reader {
	pthread_t th;
	int fd;
	double resp_at, eof_at; /* bench_now_us() of the newline, of EOF */
	char out[4096];
};

static void *reader_main(void *p)
{
	struct reader *r = p;
	size_t n = 0;

	r->resp_at = -1;
	for (ssize_t k; (k = read(r->fd, r->out + n, sizeof(r->out) - 1 - n)) > 0;) {
		n += (size_t)k;
		r->out[n] = 0;
		if (r->resp_at < 0 && strchr(r->out, '\n'))
			r->resp_at = bench_now_us();
		if (n == sizeof(r->out) - 1)
			n = 0; /* keep reading to EOF */
	}
	r->out[n] = 0;
	r->eof_at = bench_now_us();
	return NULL;
}

static int reader_start(struct reader *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	return pthread_create(&r->th, NULL, reader_main, r) ? -1 : 0;
}

/* ---- one request on a machine ------------------------------------------------ */

struct req {
	int in, out[2];
	struct reader rd;
};

/* stdin: a memfd holding the request (as the service hands it); stdout: a
 * pipe read by a reader thread; stderr: ours. */
static int req_open(struct machine *m, struct req *q)
{
	q->in = memfd_create("bench-request", MFD_CLOEXEC);
	if (q->in < 0 || pipe2(q->out, O_CLOEXEC))
		return -1;
	if (write(q->in, REQ, strlen(REQ)) != (ssize_t)strlen(REQ) || lseek(q->in, 0, SEEK_SET))
		return -1;
	m->hc.stdin_fd = q->in;
	m->hc.stdout_fd = q->out[1];
	m->hc.stderr_fd = 2;
	m->hc.trace_fd = 2;
	m->hc.program = "bench";
	return reader_start(&q->rd, q->out[0]);
}

/* After the run: close our write end, wait for the reader. */
static void req_close(struct req *q)
{
	close(q->out[1]);
	pthread_join(q->rd.th, NULL);
	close(q->out[0]);
	close(q->in);
}

static int req_run(struct machine *m, struct sb_err *err)
{
	int ret = timeout__start(&m->timeout, 30000000000ULL, err);

	if (ret == 0)
		ret = hypercall__complete_pending(&m->hc, err);
	if (ret == HC_CONTINUE)
		ret = m->be->run(m, err);
	timeout__stop(&m->timeout);
	return ret;
}

/* ---- a reaper thread: machine teardown off the measured path ------------------ */

#define REAP_MAX 1024
#include "reaper.h"

/* ---- the sandboxes ------------------------------------------------------------ */

struct series {
	double *v;
	int n;
};

static void series_add(struct series *s, double x)
{
	s->v[s->n++] = x;
}

static void print_series(const char *label, struct series *s)
{
	struct stats st;

	if (!s->n) {
		printf("%-58s (no successful rounds)\n", label);
		return;
	}
	bench_stats(s->v, s->n, &st);
	bench_print(label, "us", &st);
}

static double median_of(struct series *s)
{
	struct stats st;

	if (!s->n)
		return -1;
	bench_stats(s->v, s->n, &st);
	return st.median;
}

/* The end of a request on shell s that run() finished now (the clock
 * started at t0): close, reap, check the answer; response and exit times. */
static int shell_done(struct machine *s, struct req *q, int ret, const struct sb_err *err,
		      const char *what, double t0, double *resp, double *exit_us)
{
	double t1 = bench_now_us();

	req_close(q);
	reap(s);
	if (ret != 0 || !answer_ok(q->rd.out) || q->rd.resp_at < 0) {
		fprintf(stderr, "%s: status %d (%s): %s\n", what, ret, err->msg, q->rd.out);
		return -1;
	}
	/* written before run() returned: the reader may just be late */
	*resp = (q->rd.resp_at < t1 ? q->rd.resp_at : t1) - t0;
	*exit_us = t1 - t0;
	return 0;
}

/* A fresh clone from a ready shell: response, exit */
static int fresh(const struct snapshot *snap, double *resp, double *exit_us)
{
	struct sb_err err = { "" };
	struct machine *s = machine__new(be, snap->hdr.mem_size, RAM_RESERVED, &err);
	struct req q;
	double t0;
	int ret;

	if (!s || req_open(s, &q) < 0) {
		fprintf(stderr, "shell: %s\n", err.msg);
		if (s)
			reap(s);
		return -1;
	}
	t0 = bench_now_us();
	ret = s->be->clone_into(s, snap, &err);
	if (ret == 0)
		ret = req_run(s, &err);
	return shell_done(s, &q, ret, &err, "fresh clone", t0, resp, exit_us);
}

/* A pre-cloned shell (clone_into before the clock), its write set
 * pre-faulted or not: response, exit; the pre-fault: its time, its pages */
static int precloned(const struct snapshot *snap, bool prefault, double *resp, double *exit_us,
		     double *pf_us, uint64_t *pages)
{
	struct sb_err err = { "" };
	struct machine *s = machine__new(be, snap->hdr.mem_size, RAM_RESERVED, &err);
	struct req q;
	double t0;
	int ret;

	if (!s || req_open(s, &q) < 0) {
		fprintf(stderr, "shell: %s\n", err.msg);
		if (s)
			reap(s);
		return -1;
	}
	*pages = 0;
	ret = s->be->clone_into(s, snap, &err);
	t0 = bench_now_us();
	if (ret == 0 && prefault)
		ret = machine__prefault(s, snap, pages, &err);
	*pf_us = bench_now_us() - t0;
	t0 = bench_now_us();
	if (ret == 0)
		ret = req_run(s, &err);
	return shell_done(s, &q, ret, &err, "pre-cloned", t0, resp, exit_us);
}

/* A request on a machine that is reset right after */
static int recycled(struct machine *m, const struct snapshot *snap, double *resp, double *exit_us,
		    struct reset_stats *st)
{
	struct sb_err err = { "" };
	struct req q;
	double t0, t1;
	int ret;

	if (req_open(m, &q) < 0)
		return -1;
	t0 = bench_now_us();
	ret = req_run(m, &err);
	t1 = bench_now_us();
	req_close(&q);
	if (ret != 0 || !answer_ok(q.rd.out) || q.rd.resp_at < 0) {
		fprintf(stderr, "recycled: status %d (%s): %s\n", ret, err.msg, q.rd.out);
		return -1;
	}
	/* written before run() returned: the reader may just be late */
	*resp = (q.rd.resp_at < t1 ? q.rd.resp_at : t1) - t0;
	*exit_us = t1 - t0;
	if (machine__reset(m, snap, st, &err) < 0) {
		fprintf(stderr, "reset: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* `snapbox run --store S py` as a user runs it: spawn to exit */
static int cli_run(const char *store, double *total)
{
	struct ck_spawn sp;
	char *argv[] = { (char *)ck_snapbox(), "run", "--store", (char *)store, "py", NULL };

	if (ck_spawn(argv, REQ, strlen(REQ), 60, &sp) < 0 || sp.status || !answer_ok(sp.out)) {
		fprintf(stderr, "snapbox run: status %d: %s%s\n", sp.status, sp.out, sp.err);
		return -1;
	}
	*total = sp.total_us;
	return 0;
}

/* ---- the native peers ---------------------------------------------------------- */

static int zy_ctl = -1;
static pid_t zy_pid;

static void zy_kill(void)
{
	if (zy_pid > 0)
		kill(zy_pid, SIGKILL);
}

static int zy_start(void)
{
	int sv[2];
	char b;

	if (!preload[0]) {
		fprintf(stderr, "warm fork peer: %s missing (make %s)\n", PRELOAD, PRELOAD);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -1;
	zy_pid = fork();
	if (zy_pid == 0) {
		int dn = open("/dev/null", O_RDWR);
		char *envp[] = { "PZ_CTL=3", NULL };

		dup2(dn, 0);
		dup2(dn, 1);
		dup2(sv[1], 3);
		execle(ldso, ldso, "--library-path", libpath, "--preload", preload, python, handler,
		       (char *)NULL, envp);
		_exit(127);
	}
	close(sv[1]);
	zy_ctl = sv[0];
	if (read(zy_ctl, &b, 1) != 1 || b != 'R') {
		fprintf(stderr, "warm fork peer: the zygote did not start\n");
		zy_ctl = -1;
		return -1;
	}
	return 0;
}

static int zy_send(int in, int out)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	int fd[2] = { in, out };
	char op = 'x';
	struct iovec iov = { &op, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fd));
	memcpy(CMSG_DATA(c), fd, sizeof(fd));
	return sendmsg(zy_ctl, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* One request to a fork of the zygote: response, exit (EOF) */
static int warm_fork(double *resp, double *exit_us)
{
	int pin[2], pout[2];
	struct reader rd;
	double t0;
	int ret;

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
		return -1;
	if (write(pin[1], REQ, strlen(REQ)) != (ssize_t)strlen(REQ))
		return -1;
	close(pin[1]);
	if (reader_start(&rd, pout[0]) < 0)
		return -1;
	t0 = bench_now_us();
	ret = zy_send(pin[0], pout[1]);
	close(pin[0]);
	close(pout[1]);
	pthread_join(rd.th, NULL);
	close(pout[0]);
	if (ret < 0 || !answer_ok(rd.out) || rd.resp_at < 0) {
		fprintf(stderr, "warm fork: %s\n", rd.out);
		return -1;
	}
	*resp = rd.resp_at - t0;
	*exit_us = rd.eof_at - t0;
	return 0;
}

/* A cold `python3 handler.py`: spawn to response, to exit */
static int cold(double *resp, double *exit_us, char *out, size_t len)
{
	int pin[2], pout[2];
	struct reader rd;
	double t0;
	pid_t pid;
	int st;

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
		return -1;
	if (reader_start(&rd, pout[0]) < 0)
		return -1;
	t0 = bench_now_us();
	pid = fork();
	if (pid == 0) {
		char *envp[] = { NULL };

		dup2(pin[0], 0);
		dup2(pout[1], 1);
		execle(ldso, ldso, "--library-path", libpath, python, handler, (char *)NULL, envp);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	if (write(pin[1], REQ, strlen(REQ)) != (ssize_t)strlen(REQ))
		return -1;
	close(pin[1]);
	pthread_join(rd.th, NULL);
	waitpid(pid, &st, 0);
	close(pout[0]);
	if (out)
		snprintf(out, len, "%s", rd.out);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || rd.resp_at < 0) {
		fprintf(stderr, "cold python3: status 0x%x: %s\n", st, rd.out);
		return -1;
	}
	*resp = rd.resp_at - t0;
	*exit_us = rd.eof_at - t0;
	return 0;
}

/* ---- one backend ----------------------------------------------------------------- */

struct figures {
	double fresh, pre, prefaulted, recycled, cli, stored_mib;
	bool ok;
};

static long long json_int(const char *path, const char *key)
{
	char buf[8192], pat[64];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	const char *p;

	if (f)
		fclose(f);
	buf[n] = 0;
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(buf, pat);
	return p ? atoll(p + strlen(pat)) : -1;
}

static void one_backend(const char *name, int n, struct figures *fig)
{
	struct sb_err err = { "" };
	static struct snapshot snap;
	struct ck_spawn sp;
	char why[256], dir[PATH_MAX + 64], store[PATH_MAX + 16];
	struct series fr = { calloc(n, 8), 0 }, fre = { calloc(n, 8), 0 }, rc = { calloc(n, 8), 0 },
		      rce = { calloc(n, 8), 0 }, rs = { calloc(n, 8), 0 }, rpg = { calloc(n, 8), 0 },
		      cl = { calloc(n, 8), 0 }, pc = { calloc(n, 8), 0 }, pce = { calloc(n, 8), 0 },
		      pf = { calloc(n, 8), 0 }, pfe = { calloc(n, 8), 0 }, pft = { calloc(n, 8), 0 };
	struct machine *m;
	uint64_t pf_pages = 0;
	struct stat stl;

	memset(fig, 0, sizeof(*fig));
	be = backend__pick(name, &err);
	if (!be || !be->available(why, sizeof(why))) {
		printf("\n# %s backend: not usable here (%s)\n", name, be ? why : err.msg);
		return;
	}
	snprintf(store, sizeof(store), "%s/%s", ck_tmpdir, name);
	char train[PATH_MAX + 32];
	snprintf(train, sizeof(train), "%s/train.json", ck_tmpdir);
	{
		FILE *tf = fopen(train, "w");
		if (!tf || fputs(TRAIN_REQ, tf) < 0 || fclose(tf)) {
			perror(train);
			return;
		}
	}
	char *xb[] = { "--mem", "512M", "--backend", (char *)be->name, "--warmup-request", train,
		       NULL };
	char *prog[] = { "/usr/bin/python3", "/app/handler.py", NULL };
	double t0 = bench_now_us();
	if (ck_template_create(store, "py", xb, prog, false, &sp) < 0)
		return;
	double create_ms = (bench_now_us() - t0) / 1000;
	snprintf(dir, sizeof(dir), "%s/templates/py", store);
	if (snapshot__load(dir, &snap, &err) < 0 || be->check(&snap, &err) < 0) {
		fprintf(stderr, "py template: %s\n", err.msg);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/templates/py/template.json", store);
	long long stored = json_int(dir, "stored_bytes");
	fig->stored_mib = stored / 1048576.0;
	stat(PYLAYER, &stl);
	printf("\n## %s backend (%s): template py, 512 MiB, `template create` %.0f ms\n", be->name,
	       why, create_ms);
	printf("template stored (mem.img, STORED in `template ls`): %.1f MiB; the Python layer "
	       "(stored once per store, shared): %.1f MiB\n", stored / 1048576.0,
	       stl.st_size / 1048576.0);

	m = machine__new_clone_opts(be, &snap, &(struct machine_opts){ .recycle = true }, &err);
	if (!m)
		fprintf(stderr, "clone: %s\n", err.msg);
	for (int i = -5; i < n; i++) { /* 5 warm-up rounds, interleaved */
		double a, b;
		struct reset_stats st;

		double c;
		uint64_t pg;

		if (fresh(&snap, &a, &b) == 0 && i >= 0)
			series_add(&fr, a), series_add(&fre, b);
		if (precloned(&snap, false, &a, &b, &c, &pg) == 0 && i >= 0)
			series_add(&pc, a), series_add(&pce, b);
		if (precloned(&snap, true, &a, &b, &c, &pg) == 0 && i >= 0)
			series_add(&pf, a), series_add(&pfe, b), series_add(&pft, c), pf_pages = pg;
		if (m && recycled(m, &snap, &a, &b, &st) == 0 && i >= 0) {
			series_add(&rc, a), series_add(&rce, b);
			series_add(&rs, st.total_us), series_add(&rpg, (double)st.pages);
		} else if (m && i >= 0 && !rc.n) {
			reap(m);
			m = NULL;
		}
	}
	if (m)
		reap(m);
	reap_wait();
	for (int i = -2; i < n / 3; i++) {
		double a;

		if (cli_run(store, &a) == 0 && i >= 0)
			series_add(&cl, a);
	}
	printf("request %s, %d interleaved rounds (response: its newline on our pipe; exit: the "
	       "program's)\n", REQ, n);
	print_series("fresh clone from a shell: request -> response", &fr);
	print_series("fresh clone from a shell: request -> exit", &fre);
	print_series("pre-cloned shell: request -> response", &pc);
	print_series("pre-cloned shell: request -> exit", &pce);
	print_series("pre-cloned, write set pre-faulted: request -> response", &pf);
	print_series("pre-cloned, write set pre-faulted: request -> exit", &pfe);
	print_series("  the pre-fault, before the request", &pft);
	printf("  pages pre-faulted: %llu (the template's write set: %u ranges, %llu pages)\n",
	       (unsigned long long)pf_pages, snap.hotset.n_ranges,
	       (unsigned long long)snap.hotset.pages);
	print_series("recycled machine: request -> response", &rc);
	print_series("recycled machine: request -> exit", &rce);
	print_series("  its reset after the request", &rs);
	{
		struct stats st;

		if (rpg.n) {
			bench_stats(rpg.v, rpg.n, &st);
			printf("  pages the reset put back (written by a request): median %.0f\n",
			       st.median);
		}
	}
	print_series("`snapbox run` (spawn to exit, template load included)", &cl);
	fig->fresh = median_of(&fr);
	fig->recycled = median_of(&rc);
	fig->pre = median_of(&pc);
	fig->prefaulted = median_of(&pf);
	fig->cli = median_of(&cl);
	fig->ok = true;
	snapshot__close(&snap);
	free(fr.v), free(fre.v), free(rc.v), free(rce.v), free(rs.v), free(rpg.v), free(cl.v);
	free(pc.v), free(pce.v), free(pf.v), free(pfe.v), free(pft.v);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int a = 1, n, ncold;
	struct figures fig[2];
	const char *names[2] = { "kvm", "proc" };
	char native[4096];
	double r, e;

	if (argc > 2 && !strcmp(argv[1], "--backend"))
		only = argv[2], a = 3;
	n = argc > a ? atoi(argv[a]) : 100;
	ncold = argc > a + 1 ? atoi(argv[a + 1]) : 20;
	if (n < 10)
		n = 10;
	if (ncold < 3)
		ncold = 3;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	ck_link_guest();
	ck_raise_nofile();
	if (native_paths() < 0)
		return 1;
	if (ck_tmpdir_create(NULL, "python", zy_kill) < 0)
		return 1;
	/* the expected answer: the native interpreter's, up to the token */
	if (cold(&r, &e, native, sizeof(native)) < 0)
		return 1;
	{
		char *t = strstr(native, "\"token\": \"");
		if (!t) {
			fprintf(stderr, "the native handler answered %s\n", native);
			return 1;
		}
		snprintf(want_prefix, sizeof(want_prefix), "%.*s", (int)(t - native + 10), native);
	}
	printf("# Python handler (%s) request -> response: sandboxes against native python3.11 "
	       "(the Python layer's, through its own ld.so), one run\n", HANDLER_SRC);
	printf("# answer checked every time: %s...\n", want_prefix);
	if (reap_start())
		return 1;

	/* the native peers first (nothing else running) */
	struct series wf = { calloc(n, 8), 0 }, wfe = { calloc(n, 8), 0 }, cd = { calloc(ncold, 8), 0 },
		      cde = { calloc(ncold, 8), 0 };
	if (zy_start() == 0)
		for (int i = -5; i < n; i++)
			if (warm_fork(&r, &e) == 0 && i >= 0)
				series_add(&wf, r), series_add(&wfe, e);
	for (int i = -1; i < ncold; i++)
		if (cold(&r, &e, NULL, 0) == 0 && i >= 0)
			series_add(&cd, r), series_add(&cde, e);
	printf("\n## native python3.11, %d rounds (warm fork), %d (cold)\n", n, ncold);
	print_series("warm fork of python3 at its ready point: -> response", &wf);
	print_series("warm fork of python3 at its ready point: -> exit", &wfe);
	print_series("cold `python3 handler.py`: spawn -> response", &cd);
	print_series("cold `python3 handler.py`: spawn -> exit", &cde);

	for (int b = 0; b < 2; b++) {
		fig[b].ok = false;
		if (only && strcmp(only, names[b]))
			continue;
		one_backend(names[b], n, &fig[b]);
	}

	double mwf = median_of(&wf), mcd = median_of(&cd);
	printf("\n## summary (medians, request -> response)\n");
	printf("%-6s %10s %10s %10s %11s %10s %11s %11s %10s\n", "", "fresh us", "pre us",
	       "prefltd us", "recycled us", "cli us", "cold/fresh", "cold/prefl", "stored MiB");
	for (int b = 0; b < 2; b++)
		if (fig[b].ok)
			printf("%-6s %10.0f %10.0f %10.0f %11.0f %10.0f %10.1fx %10.1fx %10.1f\n", names[b],
			       fig[b].fresh, fig[b].pre, fig[b].prefaulted, fig[b].recycled, fig[b].cli,
			       mcd / fig[b].fresh, mcd / fig[b].prefaulted, fig[b].stored_mib);
	printf("%-6s %12.0f (warm fork)  %12.0f (cold python3)\n", "native", mwf, mcd);
	zy_kill();
	reap_drain();
	return 0;
}
