/* SPDX-License-Identifier: MIT */
/*
 * The peer: QEMU restoring a saved state of the same guest kernel + rootfs,
 * against snapbox's clone, interleaved in the same run.
 *
 * QEMU 7.2, -M microvm, 256 MiB, guest kernel build/guest/kernel.elf booted
 * through its PVH note with -append /bin/spin (under QEMU the guest has no
 * stdin -- reads get EOF -- so the Lua handler cannot wait at its ready
 * point there; /bin/spin is a user-mode busy loop: any running guest will
 * do, since with x-ignore-shared the RAM is not in the state stream).
 *   save:    RAM = memory-backend-file share=on on a file; boot, wait, QMP:
 *            stop, x-ignore-shared on, migrate "exec:cat > state", quit.
 *   restore: same command line with the RAM file share=off (private COW
 *            mapping) and -incoming defer; QMP: x-ignore-shared on,
 *            migrate-incoming "exec:cat state"; until the RESUME event.
 *            Timed from fork+exec of QEMU (the whole restore, as for
 *            `snapbox run`); also split into process start -> QMP ready
 *            and migrate-incoming -> RESUME.
 * If the x-ignore-shared path fails, the error is printed and a plain
 * migration (all RAM in the stream, anonymous RAM) is used instead, and the
 * output says so.
 * snapbox side, in-process (same code as bench/clone): template of
 * /bin/lua /app/handler.lua, clone (a) to the first guest instruction and
 * (b) to the complete response; and `snapbox run` via the CLI (fork+exec).
 * Usage: build/bench/qemu_restore [runs] (default 20).  Run from the
 * repository root; SNAPBOX=path overrides build/snapbox; QEMU=path.
 */
#include "common.h"
#include "clonekit.h"

#include <sys/socket.h>
#include <sys/un.h>

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"
#define KERNEL "build/guest/kernel.elf"
#define INITRD "build/guest/base.sbfs"
#define MAXRUNS 200

static char *const tmp = ck_tmpdir;
static char ramf[PATH_MAX + 32], statef[PATH_MAX + 32], sock[PATH_MAX + 32];
static char logf[PATH_MAX + 32], store[PATH_MAX + 32];
static pid_t qpid = -1;

static void kill_qemu(void)
{
	if (qpid > 0) {
		kill(qpid, SIGKILL);
		waitpid(qpid, NULL, 0);
		qpid = -1;
	}
}


static const char *qemu_bin(void)
{
	const char *q = getenv("QEMU");
	return q && *q ? q : "qemu-system-x86_64";
}

/* Start QEMU; share: 1 share=on, 0 share=off, -1 no file backend. */
static int start_qemu(int share, bool incoming)
{
	char memobj[PATH_MAX + 128];
	char *argv[64];
	int n = 0;

	unlink(sock);
	snprintf(memobj, sizeof(memobj), "memory-backend-file,id=mem,size=256M,mem-path=%s,share=%s",
		 ramf, share ? "on" : "off");
	char qmp[PATH_MAX + 64];
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
	argv[n++] = (char *)qemu_bin();
	argv[n++] = "-M";
	argv[n++] = share >= 0 ? "microvm,memory-backend=mem" : "microvm";
	argv[n++] = "-accel";
	argv[n++] = "kvm";
	argv[n++] = "-cpu";
	argv[n++] = "host,-arch-capabilities";
	argv[n++] = "-m";
	argv[n++] = "256M";
	if (share >= 0) {
		argv[n++] = "-object";
		argv[n++] = memobj;
	}
	argv[n++] = "-kernel";
	argv[n++] = KERNEL;
	argv[n++] = "-initrd";
	argv[n++] = INITRD;
	argv[n++] = "-append";
	argv[n++] = "/bin/spin";
	argv[n++] = "-nographic";
	argv[n++] = "-no-reboot";
	argv[n++] = "-nodefaults";
	argv[n++] = "-serial";
	argv[n++] = "stdio";
	argv[n++] = "-device";
	argv[n++] = "isa-debug-exit,iobase=0xf4,iosize=4";
	argv[n++] = "-qmp";
	argv[n++] = qmp;
	if (incoming) {
		argv[n++] = "-incoming";
		argv[n++] = "defer";
	}
	argv[n] = NULL;
	qpid = fork();
	if (qpid < 0)
		return -errno;
	if (qpid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return 0;
}

static void show_log(void)
{
	char b[2048];
	int fd = open(logf, O_RDONLY);
	ssize_t k = fd < 0 ? 0 : read(fd, b, sizeof(b) - 1);
	if (fd >= 0)
		close(fd);
	b[k > 0 ? k : 0] = 0;
	if (k > 0)
		fprintf(stderr, "qemu output: %s\n", b);
}

/* ---- a minimal QMP client ---------------------------------------------------- */

struct qmp {
	int fd;
	char buf[65536];
	size_t len;
	bool resumed, completed;
};

/* Connect (retrying while QEMU starts), read the greeting, negotiate. */
static int qmp_open(struct qmp *q, double timeout_ms);
static int qmp_line(struct qmp *q, char *line, size_t cap, double deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t l = (size_t)(nl - q->buf);
			size_t c = l < cap - 1 ? l : cap - 1;
			memcpy(line, q->buf, c);
			line[c] = 0;
			memmove(q->buf, nl + 1, q->len - l - 1);
			q->len -= l + 1;
			if (strstr(line, "\"event\"") && strstr(line, "\"RESUME\""))
				q->resumed = true;
			if (strstr(line, "\"event\"") && strstr(line, "\"MIGRATION\"") &&
			    strstr(line, "\"completed\""))
				q->completed = true;
			return 0;
		}
		double left = deadline - bench_now_us();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { q->fd, POLLIN, 0 };
		int k = poll(&p, 1, (int)(left / 1e3) + 1);
		if (k < 0 && errno != EINTR)
			return -errno;
		if (k <= 0)
			continue;
		if (q->len == sizeof(q->buf))
			return -EMSGSIZE;
		ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (r <= 0)
			return -EPIPE;
		q->len += (size_t)r;
	}
}

/* Send one command; wait for its return (0) or error (-1, text in reply). */
static int qmp_cmd(struct qmp *q, const char *json, char *reply, size_t cap, double timeout_ms)
{
	double deadline = bench_now_us() + timeout_ms * 1e3;
	size_t l = strlen(json);
	if (write(q->fd, json, l) != (ssize_t)l || write(q->fd, "\n", 1) != 1)
		return -errno;
	for (;;) {
		int r = qmp_line(q, reply, cap, deadline);
		if (r < 0) {
			snprintf(reply, cap, "no reply (%s)", strerror(-r));
			return r;
		}
		if (!strncmp(reply, "{\"return\"", 9))
			return 0;
		if (!strncmp(reply, "{\"error\"", 8))
			return -1;
	}
}

static int qmp_open(struct qmp *q, double timeout_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	double deadline = bench_now_us() + timeout_ms * 1e3;
	char line[4096];

	memset(q, 0, sizeof(*q));
	if (strlen(sock) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, sock, strlen(sock) + 1);
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0)
			return -errno;
		if (connect(q->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(q->fd);
		q->fd = -1;
		if (bench_now_us() > deadline || waitpid(qpid, NULL, WNOHANG) == qpid) {
			qpid = -1;
			return -ECONNREFUSED;
		}
		usleep(200);
	}
	if (qmp_line(q, line, sizeof(line), deadline) < 0 || !strstr(line, "\"QMP\""))
		return -EPROTO;
	return qmp_cmd(q, "{\"execute\": \"qmp_capabilities\"}", line, sizeof(line), timeout_ms) ? -EPROTO
												 : 0;
}

static void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

/* ---- save once --------------------------------------------------------------- */

static int save_state(bool ignore_shared, char *why, size_t cap)
{
	struct qmp q = { .fd = -1 };
	char r[4096], cmd[PATH_MAX + 256];
	int ret = -1;

	if (start_qemu(ignore_shared ? 1 : -1, false) < 0) {
		snprintf(why, cap, "cannot start %s", qemu_bin());
		return -1;
	}
	if (qmp_open(&q, 10000) < 0) {
		snprintf(why, cap, "QEMU did not start (see its output)");
		show_log();
		goto out;
	}
	usleep(500000); /* let the guest boot and reach its user-mode loop */
	/* no "stop" first: a stopped source leaves the destination paused after
	 * the migration (its run state travels with it); migrate stops it at
	 * the end by itself */
	if (ignore_shared &&
	    qmp_cmd(&q, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
			"[{\"capability\": \"x-ignore-shared\", \"state\": true}]}}",
		    r, sizeof(r), 5000) < 0) {
		snprintf(why, cap, "migrate-set-capabilities x-ignore-shared (save): %.1000s", r);
		goto out;
	}
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > %s\"}}", statef);
	if (qmp_cmd(&q, cmd, r, sizeof(r), 5000) < 0) {
		snprintf(why, cap, "migrate: %.1000s", r);
		goto out;
	}
	double deadline = bench_now_us() + 60e6;
	for (;;) {
		if (qmp_cmd(&q, "{\"execute\": \"query-migrate\"}", r, sizeof(r), 5000) < 0) {
			snprintf(why, cap, "query-migrate: %.1000s", r);
			goto out;
		}
		if (strstr(r, "\"completed\""))
			break;
		if (strstr(r, "\"failed\"") || bench_now_us() > deadline) {
			snprintf(why, cap, "migration to file failed: %.1000s", r);
			goto out;
		}
		usleep(2000);
	}
	ret = 0;
out:
	qmp_close(&q);
	kill_qemu();
	return ret;
}

/* ---- restore ----------------------------------------------------------------- */

struct restore_t {
	double total, start, incoming;
	bool cont_needed;
};

static int restore_once(bool ignore_shared, struct restore_t *t, char *why, size_t cap)
{
	struct qmp q = { .fd = -1 };
	char r[4096], cmd[PATH_MAX + 256];
	int ret = -1;

	memset(t, 0, sizeof(*t));
	double t0 = bench_now_us();
	if (start_qemu(ignore_shared ? 0 : -1, true) < 0) {
		snprintf(why, cap, "cannot start %s", qemu_bin());
		return -1;
	}
	if (qmp_open(&q, 10000) < 0) {
		snprintf(why, cap, "QEMU -incoming defer did not start (see its output)");
		show_log();
		goto out;
	}
	double t1 = bench_now_us();
	if (ignore_shared &&
	    qmp_cmd(&q, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "
			"[{\"capability\": \"x-ignore-shared\", \"state\": true}]}}",
		    r, sizeof(r), 5000) < 0) {
		snprintf(why, cap, "migrate-set-capabilities x-ignore-shared (restore): %.1000s", r);
		goto out;
	}
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"exec:cat %s\"}}", statef);
	if (qmp_cmd(&q, cmd, r, sizeof(r), 5000) < 0) {
		snprintf(why, cap, "migrate-incoming: %.1000s", r);
		goto out;
	}
	double deadline = bench_now_us() + 20e6;
	while (!q.resumed) {
		if (qmp_line(&q, r, sizeof(r), deadline) < 0) {
			/* no event: ask */
			if (qmp_cmd(&q, "{\"execute\": \"query-status\"}", r, sizeof(r), 5000) == 0 &&
			    strstr(r, "\"running\""))
				break;
			snprintf(why, cap, "no RESUME within 20 s: %.1000s", r);
			show_log();
			goto out;
		}
		if (strstr(r, "\"MIGRATION\"") && strstr(r, "\"failed\"")) {
			snprintf(why, cap, "incoming migration failed: %.1000s", r);
			show_log();
			goto out;
		}
		if (q.completed && !q.resumed && !t->cont_needed) {
			/* a source saved while paused leaves us paused: continue it */
			if (qmp_cmd(&q, "{\"execute\": \"query-status\"}", r, sizeof(r), 5000) == 0 &&
			    strstr(r, "\"paused\"")) {
				t->cont_needed = true;
				if (qmp_cmd(&q, "{\"execute\": \"cont\"}", r, sizeof(r), 5000) < 0) {
					snprintf(why, cap, "cont: %.1000s", r);
					goto out;
				}
			}
		}
	}
	double t2 = bench_now_us();
	t->total = t2 - t0;
	t->start = t1 - t0;
	t->incoming = t2 - t1;
	/* check it really runs */
	if (qmp_cmd(&q, "{\"execute\": \"query-status\"}", r, sizeof(r), 5000) < 0 ||
	    !strstr(r, "\"running\"")) {
		snprintf(why, cap, "after RESUME, query-status: %.1000s", r);
		goto out;
	}
	ret = 0;
out:
	qmp_close(&q);
	kill_qemu(); /* teardown not measured */
	return ret;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;
	char why[4096] = "";
	bool ign = true;
	struct snapshot *snap = malloc(sizeof(*snap));
	struct ck_reaper rp;
	struct ck_spawn sp;
	static double q_tot[MAXRUNS], q_start[MAXRUNS], q_inc[MAXRUNS];
	static double c_a[MAXRUNS * 5], c_b[MAXRUNS * 5], cli[MAXRUNS];
	int nc = 0, ncli = 0, n_cont = 0;

	if (n < 1 || n > MAXRUNS)
		n = 20;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("QEMU") && access("/usr/bin/qemu-system-x86_64", X_OK)) {
		printf("qemu-system-x86_64 not installed (apt-get install qemu-system-x86): no peer figures\n");
		return 0;
	}
	if (access(KERNEL, R_OK) || access(INITRD, R_OK)) {
		fprintf(stderr, "%s / %s missing: run from the repository root after make\n", KERNEL,
			INITRD);
		return 1;
	}
	if (!snap || ck_tmpdir_create(NULL, "qemu", kill_qemu) < 0)
		return 1;
	snprintf(ramf, sizeof(ramf), "%s/ram", tmp);
	snprintf(statef, sizeof(statef), "%s/state", tmp);
	snprintf(sock, sizeof(sock), "%s/qmp.sock", tmp);
	snprintf(logf, sizeof(logf), "%s/qemu.log", tmp);
	snprintf(store, sizeof(store), "%s/store", tmp);
	if (mkdir(store, 0755) < 0)
		return 1;

	/* snapbox side */
	char *prog[] = { "/bin/lua", "/app/handler.lua", NULL };
	if (ck_template_create(store, "h", NULL, prog, false, &sp) < 0 || ck_load(store, "h", snap) < 0)
		return 1;
	if (ck_reaper_start(&rp, 4, 4096) < 0)
		return 1;

	/* QEMU: save once */
	printf("# QEMU restore vs snapbox clone; %s, -M microvm, 256 MiB, guest %s + %s, -append "
	       "/bin/spin; %d runs, interleaved\n", qemu_bin(), KERNEL, INITRD, n);
	double ts = bench_now_us();
	if (save_state(true, why, sizeof(why)) < 0) {
		printf("x-ignore-shared save FAILED: %s\n", why);
		printf("FALLBACK: plain migration (all RAM in the state stream, anonymous RAM)\n");
		ign = false;
		if (save_state(false, why, sizeof(why)) < 0) {
			printf("plain migration save FAILED too: %s; no QEMU figures\n", why);
			return 1;
		}
	}
	struct stat sb;
	stat(statef, &sb);
	printf("# saved state: %lld bytes (%s), save took %.0f ms incl. 500 ms boot wait\n",
	       (long long)sb.st_size, ign ? "x-ignore-shared: RAM stays in the shared file" : "RAM in stream",
	       (bench_now_us() - ts) / 1e3);

	struct ck_clone c;
	for (int i = 0; i < 10; i++) /* warm-up */
		if (ck_clone_once(snap, REQ, &rp, true, NULL, &c) < 0)
			return 1;
	int nq = 0;
	for (int i = 0; i < n; i++) {
		struct restore_t t;
		if (restore_once(ign, &t, why, sizeof(why)) < 0) {
			printf("QEMU restore FAILED (%s): %s\n", ign ? "x-ignore-shared" : "plain", why);
			if (ign && nq == 0) {
				printf("FALLBACK: plain migration (all RAM in the state stream)\n");
				ign = false;
				if (save_state(false, why, sizeof(why)) < 0) {
					printf("plain migration save FAILED too: %s\n", why);
					return 1;
				}
				i--;
				continue;
			}
			return 1;
		}
		q_tot[nq] = t.total, q_start[nq] = t.start, q_inc[nq++] = t.incoming;
		n_cont += t.cont_needed;
		for (int k = 0; k < 5; k++) {
			if (ck_clone_once(snap, REQ, &rp, true, NULL, &c) < 0)
				return 1;
			c_a[nc] = c.a_us;
			c_b[nc++] = c.b_us;
		}
		char *av[] = { (char *)ck_snapbox(), "run", "--store", store, "h", NULL };
		if (ck_spawn(av, REQ, strlen(REQ), 30, &sp) == 0 && sp.status == 0 && !strcmp(sp.out, WANT))
			cli[ncli++] = sp.out_eof_us;
	}
	ck_reaper_drain(&rp);

	struct stats sq, s1, s2, sa, sbb, sc;
	bench_stats(q_tot, nq, &sq);
	bench_stats(q_start, nq, &s1);
	bench_stats(q_inc, nq, &s2);
	bench_stats(c_a, nc, &sa);
	bench_stats(c_b, nc, &sbb);
	printf("QEMU restore mode: %s\n", ign ? "x-ignore-shared, RAM file share=off (as PLATFORM.md)"
					      : "FALLBACK plain migration (RAM in stream)");
	if (n_cont)
		printf("note: %d of %d restores came up paused and needed a QMP \"cont\" (included)\n",
		       n_cont, nq);
	bench_print("QEMU restore: exec -> running (RESUME)", "us", &sq);
	bench_print("    exec -> QMP ready", "us", &s1);
	bench_print("    migrate-incoming -> RESUME", "us", &s2);
	bench_print("snapbox clone (a) -> first instruction", "us", &sa);
	bench_print("snapbox clone (b) -> complete response", "us", &sbb);
	if (ncli) {
		bench_stats(cli, ncli, &sc);
		bench_print("snapbox run via CLI (fork+exec, to EOF)", "us", &sc);
	}
	printf("ratio QEMU restore / snapbox clone (a), medians: %.0fx\n", sq.median / sa.median);
	printf("ratio QEMU restore / snapbox clone (b) incl. the request, medians: %.1fx\n",
	       sq.median / sbb.median);
	if (ncli)
		printf("ratio QEMU restore / snapbox run CLI (both with process start), medians: %.1fx\n",
		       sq.median / sc.median);
	ck_reaper_stop(&rp);
	snapshot__close(snap);
	return 0;
}
