/* SPDX-License-Identifier: MIT */
/*
 * Live migration end to end: two `snapbox serve` of their own (stores of
 * their own; the template is created in A's and copied into B's, as an
 * operator would install it), a long-lived sandbox of /bin/counter (it
 * dirties memory and prints a counter) moved from A to B while the test
 * reads its output through the API, on the backend under test
 * (SNAPBOX_TEST_BACKEND).  Also: a destination that dies mid-way leaves the
 * sandbox running on A; a corrupt, truncated or foreign stream is refused
 * with a message; and the same between two network namespaces the test
 * makes itself (root and `ip` only; skipped otherwise).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <stdarg.h>
#include <unistd.h>
#include <poll.h>
#include <xxhash.h>

#include "launcher/client.h"
#include "common/file.h"
#include "migrate/stream.h"
#include "run.h"

extern char **environ;

#define ARGS(...) ((const char *const[]){ "snapbox", __VA_ARGS__, NULL })

struct svc {
	char store[512];
	char sock[600];
	char mig[600];           /* its --listen-migration address */
	char log[600];
	const char *netns;       /* run inside this network namespace (NULL: ours) */
	pid_t pid;
};

static char *DIR_;
static struct svc A, B;
static bool TCP_OK;          /* loopback TCP works here (not in the emulated KVM host) */

/* Counts of counter steps: fewer where everything runs slower (emulated). */
static uint64_t steps_of(uint64_t native)
{
	uint64_t n = (uint64_t)(native / test_time(1.0));
	return n < 20 ? 20 : n;
}

static bool loopback_tcp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		  listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&a, &al) == 0 &&
		  connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (l >= 0)
		close(l);
	if (c >= 0)
		close(c);
	return ok;
}

static int req(const struct svc *s, const char *method, const char *target, const char *body,
	       struct http_response *r)
{
	return serve_req(s->sock, 120, method, target, body, r);
}

static json_t *req_json(const struct svc *s, const char *method, const char *target,
			const char *body, int want)
{
	return serve_req_json(s->sock, 120, method, target, body, want);
}

static void svc_init(struct svc *s, const char *name, const char *mig)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->store, sizeof(s->store), "%s/%s", DIR_, name);
	snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", DIR_, name);
	snprintf(s->log, sizeof(s->log), "%s/%s.log", DIR_, name);
	snprintf(s->mig, sizeof(s->mig), "%s", mig);
	mkdir(s->store, 0755);
	s->pid = -1;
}

static void svc_start(struct svc *s)
{
	const char *av[] = { "ip", "netns", "exec", s->netns, snapbox_bin(), "serve", "--socket",
			     s->sock, "--store", s->store, "--listen-migration", s->mig,
			     "--log-level", "info", NULL };

	serve_start(s->netns ? av : av + 4, s->sock, s->log, &s->pid);
}

/* Under ASan/UBSan (SNAPBOX_BIN an instrumented build) a report in the
 * service's log, or its sanitizer exit status, fails the test. */
static void svc_check_log(const struct svc *s, int status)
{
	char line[1024];
	FILE *f = fopen(s->log, "r");

	while (f && fgets(line, sizeof(line), f))
		cr_expect(!strstr(line, "AddressSanitizer") && !strstr(line, "runtime error:") &&
			  !strstr(line, "LeakSanitizer"), "%s: %s", s->log, line);
	if (f)
		fclose(f);
	cr_expect(!WIFEXITED(status) || (WEXITSTATUS(status) != 99 && WEXITSTATUS(status) != 98),
		  "snapbox serve exited %d (a sanitizer's report): see %s", WEXITSTATUS(status), s->log);
}

static void svc_stop(struct svc *s)
{
	int st;

	if (s->pid > 0 && serve_stop(&s->pid, &st) == 0)
		svc_check_log(s, st);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The counter template in A's store, and a copy of it in B's. */
static void make_template(void)
{
	struct run_result r = { 0 };

	run_checked(ARGS("template", "create", "ctr", "--store", A.store, "--mem", "64M", "--",
			 "/bin/counter"), NULL, test_time(60), &r);
	cr_assert_eq(r.status, 0, "template create: %s", r.err);
	run_result_free(&r);
	sh("mkdir -p %s/templates && cp -a %s/templates/ctr %s/templates/", B.store, A.store, B.store);
}

static unsigned port_base(void)
{
	return 20000 + (unsigned)getpid() % 20000;
}

static void init(void)
{
	char a[64], b[64];

	if (!test_on_proc())
		require_kvm();
	DIR_ = make_tempdir();
	cr_assert(DIR_);
	TCP_OK = loopback_tcp();
	if (TCP_OK) {
		snprintf(a, sizeof(a), "tcp:127.0.0.1:%u", port_base());
		snprintf(b, sizeof(b), "tcp:127.0.0.1:%u", port_base() + 1);
	} else {
		/* no loopback network (the emulated KVM host): Unix sockets */
		cr_log_info("loopback TCP does not work here: Unix sockets instead");
		snprintf(a, sizeof(a), "unix:%.40s/a.mig", DIR_);
		snprintf(b, sizeof(b), "unix:%.40s/b.mig", DIR_);
	}
	svc_init(&A, "a", a);
	svc_init(&B, "b", b);
}

static void fini(void)
{
	svc_stop(&A);
	svc_stop(&B);
	remove_tempdir(&DIR_);
}

TestSuite(migrate, .init = init, .fini = fini, .timeout = 480);

/* ---- the sandbox's output, read as a client would ------------------------------- */

struct reader {
	char *text;              /* stdout so far, as clients saw it */
	size_t len;
};

/* Read sandbox id's stdout on s from r->len on; its JSON state out. */
static void read_more(const struct svc *s, uint64_t id, struct reader *r, char *state, size_t slen)
{
	char target[128];
	json_t *j;
	const char *b64;

	snprintf(target, sizeof(target), "/v1/sandboxes/%" PRIu64 "?stdout_offset=%zu", id, r->len);
	j = req_json(s, "GET", target, NULL, 200);
	snprintf(state, slen, "%s", json_string_value(json_object_get(j, "state")));
	b64 = json_string_value(json_object_get(j, "stdout"));
	if (b64 && *b64) {
		size_t n = strlen(b64);
		r->text = realloc(r->text, r->len + n + 1);
		memcpy(r->text + r->len, b64, n + 1);
		r->len += n;
	}
	json_decref(j);
}

/* "c N" lines: each of 1..*last exactly once, in order (asserts). */
static void check_counter(const struct reader *r, uint64_t *last)
{
	uint64_t want = 1;
	const char *p = r->text ? r->text : "";

	while (*p) {
		const char *nl = strchr(p, '\n');
		uint64_t c;

		if (!nl)
			break; /* a partial line: more to come */
		if (sscanf(p, "c %" SCNu64, &c) == 1) {
			cr_assert_eq(c, want, "counter line %" PRIu64 " where %" PRIu64 " was due "
				     "(a line lost or repeated)", c, want);
			want++;
		}
		p = nl + 1;
	}
	*last = want - 1;
}

/* What counter's "sum" prints after `steps` steps of kib KiB. */
static uint64_t expected_sum(uint64_t steps, uint64_t kib)
{
	const uint64_t words = (16u << 20) / 8, w = 128 * kib;
	uint64_t *a = calloc(words, 8), sum = 0;

	cr_assert(a);
	for (uint64_t c = 1; c <= steps; c++)
		for (uint64_t j = 0; j < w; j++) {
			uint64_t i = (c * w + j) % words;
			a[i] = c * 0x9e3779b97f4a7c15ULL ^ i;
		}
	for (uint64_t i = 0; i < words; i++)
		sum += a[i];
	free(a);
	return sum;
}

static uint64_t start_counter(const struct svc *s)
{
	json_t *j = req_json(s, "POST", "/v1/sandboxes", "{\"template\": \"ctr\"}", 201);
	uint64_t id = (uint64_t)json_integer_value(json_object_get(j, "id"));

	json_decref(j);
	return id;
}

static void send_stdin(const struct svc *s, uint64_t id, const char *text)
{
	char target[96];
	struct http_response r;
	int st;

	snprintf(target, sizeof(target), "/v1/sandboxes/%" PRIu64 "/stdin", id);
	st = req(s, "POST", target, text, &r);
	cr_assert_eq(st, 204, "stdin: %d %s", st, st > 0 ? r.body : "");
	http_response__free(&r);
}

/* Does text have a line starting with prefix? */
static bool has_line(const char *text, const char *prefix)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, prefix, strlen(prefix)))
			return true;
	}
	return false;
}

/* Wait until the output on s has a line starting with prefix. */
static void wait_for(const struct svc *s, uint64_t id, struct reader *r, const char *prefix)
{
	char state[32];

	for (double t0 = test_now(); test_now() - t0 < test_time(60); usleep(5000)) {
		read_more(s, id, r, state, sizeof(state));
		if (has_line(r->text, prefix))
			return;
		cr_assert(strcmp(state, "exited"), "the sandbox ended: %s", r->text);
	}
	cr_assert_fail("no \"%s\" within 60 s: %s", prefix, r->text);
}

/* `snapbox migrate` from s; its result. */
static void migrate(const struct svc *s, uint64_t id, const char *to, struct run_result *r)
{
	char ids[32];

	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	run_checked(ARGS("migrate", "--server", s->sock, "--downtime-ms", "20", ids, to), NULL,
		    test_time(120), r);
}

/* The counter template started on s, dirtying kib KiB a step for `steps`
 * steps (one every `us` microseconds), read up to its line `until`: its id. */
static uint64_t start_dirtying(const struct svc *s, struct reader *rd, uint64_t steps,
			       uint64_t kib, unsigned us, const char *until)
{
	char line[64];
	uint64_t id;

	make_template();
	id = start_counter(s);
	snprintf(line, sizeof(line), "dirty %" PRIu64 " %" PRIu64 " %u\n", steps, kib, us);
	send_stdin(s, id, line);
	wait_for(s, id, rd, until);
	return id;
}

/* Sandbox id on s is whole: its counter reaches `steps` with no line lost
 * (rd goes on from what it read) and its memory sums as it should. */
static void check_whole(const struct svc *s, uint64_t id, struct reader *rd, uint64_t steps,
			uint64_t kib)
{
	char line[64];
	uint64_t last = 0;

	snprintf(line, sizeof(line), "c %" PRIu64 "\n", steps);
	wait_for(s, id, rd, line);
	check_counter(rd, &last);
	cr_assert_eq(last, steps);
	send_stdin(s, id, "sum\n");
	wait_for(s, id, rd, "sum ");
	snprintf(line, sizeof(line), "sum %" PRIu64 " %016" PRIx64, steps, expected_sum(steps, kib));
	cr_assert(strstr(rd->text, line), "want \"%s\": %s", line,
		  rd->text + (rd->len > 200 ? rd->len - 200 : 0));
}

/* ---- tests ------------------------------------------------------------------------- */

/* A sandbox dirtying memory moves A -> B while its output is read; then,
 * idle (blocked reading stdin), back B -> A (over a Unix socket). */
static void migrate_there_and_back(void)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	char state[32], line[64], back[560];
	uint64_t id, last = 0;
	const uint64_t steps = steps_of(400), kib = 16;

	svc_start(&A);
	svc_start(&B);
	id = start_dirtying(&A, &rd, steps, kib, 2000, "c 20\n");
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate: %s%s", r.out, r.err);
	cr_assert(strstr(r.out, "migrated to"), "%s", r.out);
	/* A: it moved, and says where; its output up to then stays readable */
	read_more(&A, id, &rd, state, sizeof(state));
	cr_assert_str_eq(state, "migrated");
	{
		char t[64];
		snprintf(t, sizeof(t), "/v1/sandboxes/%" PRIu64, id);
		json_t *j = req_json(&A, "GET", t, NULL, 200);
		cr_assert_str_eq(json_string_value(json_object_get(j, "location")), B.mig);
		json_decref(j);
		struct http_response h;
		char target[96];
		snprintf(target, sizeof(target), "/v1/sandboxes/%" PRIu64 "/stdin", id);
		cr_assert_eq(req(&A, "POST", target, "x", &h), 409, "stdin on the source: %s", h.body);
		http_response__free(&h);
	}
	/* B: the same id, the same output offsets, the counter going on */
	check_whole(&B, id, &rd, steps, kib);
	/* idle now, waiting for stdin: back to A over a Unix socket */
	svc_stop(&A);
	snprintf(back, sizeof(back), "unix:%.500s/a.mig", DIR_);
	snprintf(A.mig, sizeof(A.mig), "%s", back);
	A.pid = -1;
	svc_start(&A);
	migrate(&B, id, A.mig, &r);
	cr_assert_eq(r.status, 0, "migrate back: %s%s", r.out, r.err);
	/* and, still idle (it has not run on A), to B again: B had it before */
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate again: %s%s", r.out, r.err);
	send_stdin(&B, id, "sum\ndirty 5 4 0\n");
	snprintf(line, sizeof(line), "c %" PRIu64 "\n", steps + 5);
	wait_for(&B, id, &rd, line);
	check_counter(&rd, &last);
	cr_assert_eq(last, steps + 5);
	{
		/* the same sum before and after the way back */
		snprintf(line, sizeof(line), "sum %" PRIu64 " %016" PRIx64 "\n", steps,
			 expected_sum(steps, kib));
		char *first = strstr(rd.text, line);
		cr_assert(first && strstr(first + 1, line), "the sum twice: %s", rd.text + rd.len - 300);
	}
	run_result_free(&r);
	free(rd.text);
}

Test(migrate, there_and_back)
{
	migrate_there_and_back();
}

/* ---- a destination that dies ------------------------------------------------------- */

struct fake_dest {
	int lfd;
	int mode;                /* 0: close after some bytes; 1: after END, no READY */
	size_t got;
};

/* The fake destination's address: TCP on loopback, else a Unix socket. */
static void fake_addr(char *addr, size_t len)
{
	if (TCP_OK)
		snprintf(addr, len, "tcp:127.0.0.1:%u", port_base() + 2);
	else
		snprintf(addr, len, "unix:%.40s/fake.mig", DIR_);
}

static int tcp_listen(void)
{
	char addr[64];
	struct sb_err err = { "" };
	int fd;

	fake_addr(addr, sizeof(addr));
	fd = mig__listen(addr, &err);
	cr_assert(fd >= 0, "%s", err.msg);
	return fd;
}

static void *fake_dest(void *arg)
{
	struct fake_dest *f = arg;
	int c = accept(f->lfd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (f->mode == 0) {
		char buf[8192];
		ssize_t n = read(c, buf, sizeof(buf));
		f->got = n > 0 ? (size_t)n : 0;
	} else {
		/* the whole stream, checked, up to its END; then it "dies" */
		struct mig_reader r;
		struct mig_hello h;
		struct mig_rec rec;
		uint8_t *p;
		struct sb_err err = { "" };

		mig_reader__fd(&r, c, 30000);
		if (mig__read_hello(&r, &h, &err) == 0 &&
		    mig__write_rec(c, MIG_REC_HAVE, 0, NULL, 0) == 0) /* "it has the template" */
			while (mig__read_rec(&r, &rec, &p, &err) == 0) {
				free(p);
				f->got++;
				if (rec.type == MIG_REC_END)
					break;
			}
	}
	close(c);
	return NULL;
}

/* The sandbox survives a destination that goes away, before the pause (the
 * pre-copy's send fails) and after it (no READY: it resumes), and is whole. */
static void migrate_dest_dies(void)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	char state[32], to[64];
	uint64_t id;
	const uint64_t steps = steps_of(300), kib = 64;

	svc_start(&A);
	id = start_dirtying(&A, &rd, steps, kib, 3000, "c 10\n");
	fake_addr(to, sizeof(to));
	for (int mode = 0; mode < 2; mode++) {
		struct fake_dest f = { tcp_listen(), mode, 0 };
		pthread_t t;

		cr_assert_eq(pthread_create(&t, NULL, fake_dest, &f), 0);
		migrate(&A, id, to, &r);
		pthread_join(t, NULL);
		close(f.lfd);
		cr_assert_neq(r.status, 0, "mode %d: the migration succeeded: %s", mode, r.out);
		cr_assert(strstr(r.err, "did not migrate (it runs on here)"), "mode %d: %s", mode, r.err);
		cr_assert(f.got > 0, "mode %d: the fake destination got nothing", mode);
		read_more(&A, id, &rd, state, sizeof(state));
		cr_assert_str_eq(state, "running", "mode %d", mode);
	}
	/* still whole: the counter goes on, nothing lost, its memory right */
	check_whole(&A, id, &rd, steps, kib);
	run_result_free(&r);
	free(rd.text);
}

/* ---- streams the destination refuses --------------------------------------------- */

/* Send raw bytes to B's listener (then shut down our side); the ERROR
 * message it answers with (asserting there is one). */
static char *refused(const void *buf, size_t len)
{
	struct sb_err err = { "" };
	struct mig_reader r;
	struct mig_rec rec;
	uint8_t *p = NULL;
	int fd = mig__connect(B.mig, &err);

	cr_assert(fd >= 0, "%s", err.msg);
	cr_assert_eq(file__write_all(fd, buf, len), 0);
	shutdown(fd, SHUT_WR);
	mig_reader__fd(&r, fd, 30000);
	r.mem_size = 1ULL << 30;
	do { /* its answer to the hello first (HAVE, or NEED: the template) */
		free(p);
		cr_assert_eq(mig__read_rec(&r, &rec, &p, &err), 0, "no answer: %s", err.msg);
	} while (rec.type == MIG_REC_HAVE || rec.type == MIG_REC_NEED);
	close(fd);
	cr_assert_eq(rec.type, MIG_REC_ERROR, "answered %s", mig__rec_name(rec.type));
	cr_assert(p);
	return (char *)p;
}

struct sbuf {
	uint8_t *p;
	size_t len;
};

static void sbuf_add(struct sbuf *b, const void *d, size_t n)
{
	b->p = realloc(b->p, b->len + n);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

/* A record as mig__write_rec makes it, into b (via a pipe). */
static void sbuf_rec(struct sbuf *b, uint32_t type, uint64_t arg, const void *pl, size_t n)
{
	int pp[2];
	uint8_t *tmp = malloc(n + sizeof(struct mig_rec));

	cr_assert_eq(pipe(pp), 0);
	fcntl(pp[1], F_SETPIPE_SZ, 1 << 20);
	cr_assert_eq(mig__write_rec(pp[1], type, arg, pl, n), 0);
	close(pp[1]);
	cr_assert_eq(read(pp[0], tmp, n + sizeof(struct mig_rec)), (ssize_t)(n + sizeof(struct mig_rec)));
	close(pp[0]);
	sbuf_add(b, tmp, n + sizeof(struct mig_rec));
	free(tmp);
}

static void sbuf_hello(struct sbuf *b, const char *tid)
{
	static uint64_t next_id = 77; /* each its own: a refused one's is freed a bit later */
	struct mig_hello h = { .backend = test_on_proc() ? 1 : 0, .mem_size = 64 << 20,
			       .sandbox_id = next_id++ };
	int pp[2];

	snprintf(h.template_id, sizeof(h.template_id), "%s", tid);
	snprintf(h.template_name, sizeof(h.template_name), "ctr");
	cr_assert_eq(pipe(pp), 0);
	cr_assert_eq(mig__write_hello(pp[1], &h), 0);
	close(pp[1]);
	b->p = realloc(b->p, b->len + sizeof(h));
	cr_assert_eq(read(pp[0], b->p + b->len, sizeof(h)), (ssize_t)sizeof(h));
	b->len += sizeof(h);
	close(pp[0]);
}

static void expect_refused(struct sbuf *b, const char *want)
{
	char *msg = refused(b->p, b->len);

	cr_assert(strstr(msg, want), "refused with \"%s\", not for \"%s\"", msg, want);
	free(msg);
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static void migrate_bad_streams(void)
{
	struct sbuf b = { 0 };
	uint8_t page[4096];
	char tid[40];
	json_t *j;

	svc_start(&A);
	svc_start(&B);
	make_template();
	j = req_json(&B, "GET", "/v1/templates/ctr", NULL, 200);
	snprintf(tid, sizeof(tid), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	memset(page, 0x5a, sizeof(page));

	{
		char junk[200];
		memset(junk, 'x', sizeof(junk));
		memcpy(junk, "GET / HTTP/1.0\r\n", 16);
		sbuf_add(&b, junk, sizeof(junk));
	}
	expect_refused(&b, "bad magic");

	sbuf_add(&b, "SBMIGR", 6);
	expect_refused(&b, "truncated in its header");

	/* a template B lacks: it asks for it (NEED), but pages come */
	sbuf_hello(&b, "0123456789abcdef0123456789abcdef");
	sbuf_rec(&b, MIG_REC_PAGES, 1 << 20, page, sizeof(page));
	expect_refused(&b, "where the template's layers were due");
	sh("test -z \"$(ls -A %s/tmp)\"", B.store); /* nothing left of it */

	/* an old (1.x) source: refused in one line */
	sbuf_hello(&b, tid);
	b.p[b.len - sizeof(struct mig_hello) + 8] = 1;
	{
		struct mig_hello *h = (struct mig_hello *)(b.p + b.len - sizeof(*h));
		h->hash = 0;
		h->hash = XXH3_64bits(h, sizeof(*h));
	}
	expect_refused(&b, "migration stream version 1.0 (this snapbox reads 2.x)");

	sbuf_hello(&b, tid);
	sbuf_rec(&b, MIG_REC_PAGES, 1 << 20, page, sizeof(page));
	b.p[b.len - 100] ^= 1; /* a bit flips in the page */
	expect_refused(&b, "damaged (hash mismatch)");

	sbuf_hello(&b, tid);
	sbuf_rec(&b, MIG_REC_PAGES, 1 << 20, page, sizeof(page));
	b.len -= 1000; /* cut short */
	expect_refused(&b, "truncated");

	sbuf_hello(&b, tid);
	sbuf_rec(&b, MIG_REC_PAGES, 64 << 20, page, sizeof(page)); /* past RAM */
	expect_refused(&b, "inside the sandbox's 64 MiB");

	sbuf_hello(&b, tid);
	sbuf_rec(&b, MIG_REC_STATE, 0, "not a state", 11);
	sbuf_rec(&b, MIG_REC_END, 0, NULL, 0);
	expect_refused(&b, "without the IO record");

	sbuf_hello(&b, tid);
	sbuf_rec(&b, MIG_REC_PAGES, 1 << 20, page, sizeof(page));
	sbuf_rec(&b, MIG_REC_STATE, 0, "not a state", 11);
	{
		struct mig_machine mm = { 0 };
		struct mig_io io = { .max_output = 1 << 20 };
		sbuf_rec(&b, MIG_REC_MACHINE, 0, &mm, sizeof(mm));
		sbuf_rec(&b, MIG_REC_IO, 0, &io, sizeof(io));
	}
	sbuf_rec(&b, MIG_REC_END, 1, NULL, 0);
	expect_refused(&b, "state.bin");

	/* nothing arrived (the refused ones' workers end), and B still takes
	 * a sandbox of its own */
	for (double t0 = test_now();; usleep(20000)) {
		j = req_json(&B, "GET", "/v1/sandboxes", NULL, 200);
		size_t n = json_array_size(json_object_get(j, "sandboxes"));
		json_decref(j);
		if (n == 0)
			break;
		cr_assert(test_now() - t0 < test_time(10), "%zu refused sandboxes are still there", n);
	}
	j = req_json(&B, "POST", "/v1/templates/ctr/run", "sum\n", 200);
	json_decref(j);
}

Test(migrate, dest_dies)
{
	migrate_dest_dies();
}

Test(migrate, bad_streams)
{
	migrate_bad_streams();
}

/* ---- resized sandboxes and overlays -------------------------------------------------- */

/* How many lines of text start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, prefix, strlen(prefix)))
			n++;
	}
	return n;
}

/* Wait until text on s has n lines starting with prefix; the last one. */
static const char *wait_n(const struct svc *s, uint64_t id, struct reader *r, const char *prefix, int n)
{
	char state[32];

	for (double t0 = test_now(); test_now() - t0 < test_time(60); usleep(5000)) {
		read_more(s, id, r, state, sizeof(state));
		if (count_lines(r->text, prefix) >= n) {
			const char *last = NULL;
			for (const char *p = r->text; (p = strstr(p, prefix)); p++)
				if (p == r->text || p[-1] == '\n')
					last = p;
			return last;
		}
		cr_assert(strcmp(state, "exited"), "the sandbox ended: %s", r->text);
	}
	cr_assert_fail("no %d \"%s\" within 60 s: %s", n, prefix, r->text);
	return NULL;
}

static json_t *patch_mem(const struct svc *s, uint64_t id, const char *mem, int want)
{
	char t[64], body[64];

	snprintf(t, sizeof(t), "/v1/sandboxes/%" PRIu64, id);
	snprintf(body, sizeof(body), "{\"mem\": \"%s\"}", mem);
	return req_json(s, "PATCH", t, body, want);
}

/* A sandbox with memory added (the hot window, in use) is refused in one
 * line and runs on, its memory intact; shrunk back, it moves, and is
 * resizable where it arrives.  memhog's template is of format 1.4: its
 * text is mapped from the layer (overlays), and only its own pages go. */
static void migrate_resized(void)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	const char *l;
	char want[64];
	uint64_t id;
	json_t *j;

	svc_start(&A);
	svc_start(&B);
	run_checked(ARGS("template", "create", "mh", "--store", A.store, "--mem", "32M", "--",
			 "/bin/memhog"), NULL, test_time(60), &r);
	cr_assert_eq(r.status, 0, "template create: %s", r.err);
	run_result_free(&r);
	sh("mkdir -p %s/templates && cp -a %s/templates/mh %s/templates/", B.store, A.store, B.store);
	j = req_json(&A, "GET", "/v1/templates/mh", NULL, 200);
	json_t *ov = json_object_get(j, "overlay");
	cr_assert(ov, "template mh has no overlays: %s", json_dumps(j, 0));
	uint64_t ov_pages = (uint64_t)json_integer_value(json_object_get(ov, "pages"));
	json_decref(j);

	j = req_json(&A, "POST", "/v1/sandboxes", "{\"template\": \"mh\"}", 201);
	id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	json_decref(patch_mem(&A, id, "96M", 200));
	send_stdin(&A, id, "alloc 40\n");
	l = wait_n(&A, id, &rd, "alloc 40 ", 1);
	cr_assert(!strncmp(l, "alloc 40 ok", 11), "%s", l);
	cr_assert_gt(atoi(strstr(l, "hot=") + 4), 0, "none of it in the hot window: %s", l);
	migrate(&A, id, B.mig, &r);
	cr_assert_neq(r.status, 0, "a sandbox with a hot window migrated: %s", r.out);
	cr_assert(strstr(r.err, "hot window does not migrate"), "%s", r.err);
	cr_assert(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "not one line: %s", r.err);
	run_result_free(&r);
	/* it runs on here, its memory as it was */
	send_stdin(&A, id, "check\n");
	l = wait_n(&A, id, &rd, "check ", 1);
	cr_assert(!strncmp(l, "check ok", 8), "%s", l);
	/* shrunk back (the guest gives the window back): it moves */
	send_stdin(&A, id, "free\n");
	wait_n(&A, id, &rd, "free ok", 1);
	json_decref(patch_mem(&A, id, "32M", 200));
	/* one overlay page written (its 256 KiB table is 64 overlay pages) */
	send_stdin(&A, id, "clock\n");
	l = wait_n(&A, id, &rd, "clock ", 1);
	cr_assert(strstr(l, " 0\n"), "clock epoch before a migration: %s", l);
	send_stdin(&A, id, "poke 7\n");
	l = wait_n(&A, id, &rd, "poke ", 1);
	cr_assert(!strncmp(l, "poke ok", 7), "%s", l);
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate after the shrink: %s%s", r.out, r.err);
	{
		/* "N pages (...; P private)": the template's overlay pages, which
		 * memhog only read, are not among them: fewer than the table's */
		const char *pp = strstr(r.out, "; ");
		unsigned long long priv = pp ? strtoull(pp + 2, NULL, 10) : 0;
		cr_assert(pp, "%s", r.out);
		cr_assert_geq(ov_pages, 64, "the table is not in the overlays: %llu pages",
			      (unsigned long long)ov_pages);
		cr_log_info("migrated: %s(template overlay pages: %llu)", r.out,
			    (unsigned long long)ov_pages);
		cr_assert_lt(priv, 64, "%llu private pages (overlay pages sent?): %s", priv, r.out);
	}
	/* the guest's clock: the host bumped the epoch, and the first reading
	 * there is the host's time (same host here: between our two readings) */
	{
		struct timespec t0, t1;
		long long g;
		unsigned e;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		send_stdin(&B, id, "clock\n");
		l = wait_n(&B, id, &rd, "clock ", 2);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		cr_assert_eq(sscanf(l, "clock %lld %u", &g, &e), 2, "%s", l);
		cr_assert_eq(e, 1, "clock epoch after one migration: %s", l);
		cr_assert(g >= t0.tv_sec * 1000000000LL + t0.tv_nsec - 2000000 &&
			  g <= t1.tv_sec * 1000000000LL + t1.tv_nsec + 2000000,
			  "guest monotonic %lld outside the host's [%lld, %lld]", g,
			  (long long)(t0.tv_sec * 1000000000LL + t0.tv_nsec),
			  (long long)(t1.tv_sec * 1000000000LL + t1.tv_nsec));
	}
	/* the written one went along, the others are the destination's layer's */
	send_stdin(&B, id, "peek\n");
	snprintf(want, sizeof(want), "peek 7 %llu", 0xa5ULL * (64 * 4096 - 1) + 7);
	l = wait_n(&B, id, &rd, "peek ", 1);
	cr_assert(!strncmp(l, want, strlen(want)), "want %s: %s", want, l);
	run_result_free(&r);
	/* resizable there, reporting as it was */
	{
		char t[64];
		snprintf(t, sizeof(t), "/v1/sandboxes/%" PRIu64, id);
		j = req_json(&B, "GET", t, NULL, 200);
		cr_assert(json_is_true(json_object_get(j, "free_page_reporting")), "%s", json_dumps(j, 0));
		json_decref(j);
	}
	json_decref(patch_mem(&B, id, "96M", 200));
	send_stdin(&B, id, "alloc 48\ncheck\n");
	l = wait_n(&B, id, &rd, "alloc 48 ", 1);
	cr_assert(!strncmp(l, "alloc 48 ok", 11), "%s", l);
	cr_assert_gt(atoi(strstr(l, "hot=") + 4), 0, "none of it in the hot window: %s", l);
	l = wait_n(&B, id, &rd, "check ", 2);
	cr_assert(!strncmp(l, "check ok", 8), "%s", l);
	snprintf(want, sizeof(want), "quit\n");
	send_stdin(&B, id, want);
	free(rd.text);
}

Test(migrate, resized)
{
	migrate_resized();
}

/* A Python handler's long-lived clone (the Python layer under it, its
 * overlays, the TSC clock CPython reads all the time) moves while it waits
 * for its request, then answers it at the destination. */
static void migrate_python(void)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	char state[32] = "", target[96];
	struct http_response h;
	uint64_t id;
	json_t *j;

	struct stat layer;

	cr_assert_eq(stat(build_file("guest/python3.11.sbfs"), &layer), 0, "the Python layer is built");
	svc_start(&A);
	svc_start(&B);
	run_checked(ARGS("template", "create", "py", "--store", A.store, "--mem", "512M", "--",
			 "/usr/bin/python3", "/app/handler.py"), NULL, test_time(120), &r);
	cr_assert_eq(r.status, 0, "template create: %s", r.err);
	run_result_free(&r);
	sh("mkdir -p %s/templates && cp -a %s/templates/py %s/templates/", B.store, A.store, B.store);
	j = req_json(&A, "POST", "/v1/sandboxes", "{\"template\": \"py\"}", 201);
	id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate: %s%s", r.out, r.err);
	cr_log_info("python: %s", r.out);
	run_result_free(&r);
	snprintf(target, sizeof(target), "/v1/sandboxes/%" PRIu64 "/stdin?eof=1", id);
	cr_assert_eq(req(&B, "POST", target, "{\"n\": 30, \"text\": \"moved along\"}", &h), 204,
		     "stdin: %s", h.body);
	http_response__free(&h);
	for (double t0 = test_now(); test_now() - t0 < test_time(60) && strcmp(state, "exited");
	     usleep(10000))
		read_more(&B, id, &rd, state, sizeof(state));
	cr_assert_str_eq(state, "exited", "%s", rd.text);
	j = json_loads(rd.text ? rd.text : "", 0, NULL);
	cr_assert(j, "not JSON: %s", rd.text);
	cr_assert_eq(json_integer_value(json_object_get(j, "n")), 30, "%s", rd.text);
	cr_assert_eq(json_integer_value(json_object_get(j, "fib")), 832040, "%s", rd.text);
	cr_assert_eq(json_integer_value(json_object_get(j, "sum")), 465, "%s", rd.text);
	json_decref(j);
	free(rd.text);
}

Test(migrate, python, .timeout = 600)
{
	migrate_python();
}

/* ---- between two network namespaces ------------------------------------------------ */

static char NS_A[32], NS_B[32];

static void netns_down(void)
{
	char cmd[128];

	if (NS_A[0]) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", NS_A);
		if (system(cmd)) {} /* the veth pair goes with it */
	}
	if (NS_B[0]) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", NS_B);
		if (system(cmd)) {}
	}
	NS_A[0] = NS_B[0] = 0;
}

static void netns_fini(void)
{
	fini();
	netns_down();
}

/* Two namespaces joined by a veth pair, 10.213.N.1 and .2, nothing else:
 * A in one, B in the other; the sandbox goes from A to B over the veth. */
Test(migrate, two_netns, .fini = netns_fini)
{
	unsigned n = (unsigned)getpid() % 250 + 1;
	char va[16], vb[16];
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	char line[64];
	uint64_t id, last = 0;

	if (geteuid() != 0 || system("command -v ip >/dev/null 2>&1") != 0)
		cr_skip_test("needs root and ip(8) for network namespaces");
	snprintf(NS_A, sizeof(NS_A), "sbmig-a-%d", (int)getpid());
	snprintf(NS_B, sizeof(NS_B), "sbmig-b-%d", (int)getpid());
	snprintf(va, sizeof(va), "sbma%u", n);
	snprintf(vb, sizeof(vb), "sbmb%u", n);
	sh("ip netns add %s && ip netns add %s", NS_A, NS_B);
	{
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "ip link add %s netns %s type veth peer name %s netns %s",
			 va, NS_A, vb, NS_B);
		if (system(cmd) != 0)
			cr_skip_test("no veth pairs here (%s failed)", cmd); /* fini removes the netns */
	}
	sh("ip -n %s addr add 10.213.%u.1/24 dev %s && ip -n %s link set %s up && ip -n %s link set lo up",
	   NS_A, n, va, NS_A, va, NS_A);
	sh("ip -n %s addr add 10.213.%u.2/24 dev %s && ip -n %s link set %s up && ip -n %s link set lo up",
	   NS_B, n, vb, NS_B, vb, NS_B);
	snprintf(A.mig, sizeof(A.mig), "tcp:10.213.%u.1:7000", n);
	snprintf(B.mig, sizeof(B.mig), "tcp:10.213.%u.2:7000", n);
	A.netns = NS_A;
	B.netns = NS_B;
	svc_start(&A);
	svc_start(&B);
	make_template();
	id = start_counter(&A);
	send_stdin(&A, id, "dirty 200 16 2000\n");
	wait_for(&A, id, &rd, "c 10\n");
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate: %s%s", r.out, r.err);
	wait_for(&B, id, &rd, "c 200\n");
	check_counter(&rd, &last);
	cr_assert_eq(last, 200);
	send_stdin(&B, id, "sum\n");
	snprintf(line, sizeof(line), "sum 200 %016" PRIx64, expected_sum(200, 16));
	wait_for(&B, id, &rd, "sum ");
	cr_assert(strstr(rd.text, line), "want \"%s\"", line);
	run_result_free(&r);
	free(rd.text);
}

/* Its limits go along: the time it has left (it times out at B when it
 * would have at A) and its output limit. */
Test(migrate, limits_go_along)
{
	struct run_result r = { 0 };
	char target[96];
	json_t *j;
	uint64_t id;
	double t0;

	svc_start(&A);
	svc_start(&B);
	make_template();
	j = req_json(&A, "POST", "/v1/sandboxes", "{\"template\": \"ctr\", \"timeout\": 3}", 201);
	id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	t0 = test_now();
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate: %s%s", r.out, r.err);
	snprintf(target, sizeof(target), "/v1/sandboxes/%" PRIu64, id);
	for (;; usleep(20000)) {
		j = req_json(&B, "GET", target, NULL, 200);
		if (!strcmp(json_string_value(json_object_get(j, "state")), "exited"))
			break;
		json_decref(j);
		cr_assert(test_now() - t0 < test_time(20), "it did not time out at B");
	}
	cr_assert(json_is_true(json_object_get(j, "timed_out")), "%s", json_dumps(j, 0));
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 124);
	json_decref(j);
	cr_assert_lt(test_now() - t0, test_time(3) + 2.5, "it ran past its 3 s (%.1f s)", test_now() - t0);
	run_result_free(&r);
}

/* ---- a destination without the template: it asks for it -------------------------- */

/* The counter template in A's store only; B's store empty. */
static void empty_b(void)
{
	sh("rm -rf %s/templates/* %s/images/* %s/tmp/*", B.store, B.store, B.store);
}

/* B's store holds nothing (no template, no image, nothing half-written). */
static void check_b_empty(void)
{
	sh("test -z \"$(ls -A %s/templates %s/images %s/tmp 2>/dev/null | grep -v ':$' | grep .)\"",
	   B.store, B.store, B.store);
}

/* A sandbox moves to a B that never had its template: B receives the
 * template with it (and its layer image), the sandbox goes on there, and
 * B then runs the template itself. */
Test(migrate, fetch_template)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	const uint64_t steps = steps_of(300), kib = 16;
	char line[80];
	uint64_t id;

	svc_start(&A);
	svc_start(&B);
	id = start_dirtying(&A, &rd, steps, kib, 2000, "c 10\n");
	empty_b();
	check_b_empty();
	migrate(&A, id, B.mig, &r);
	cr_assert_eq(r.status, 0, "migrate: %s%s", r.out, r.err);
	cr_assert(strstr(r.out, "the destination lacked its template"), "%s", r.out);
	cr_log_info("%s", r.out);
	check_whole(&B, id, &rd, steps, kib);
	/* the same template (by id), whole, in B's store under its name */
	run_checked(ARGS("template", "verify", "ctr", "--store", B.store), NULL, test_time(60), &r);
	cr_assert_eq(r.status, 0, "template verify at B: %s%s", r.out, r.err);
	sh("ls %s/images/*.sbfs >/dev/null", B.store); /* its layer, content-addressed */
	{
		json_t *a = req_json(&A, "GET", "/v1/templates/ctr", NULL, 200);
		json_t *b = req_json(&B, "GET", "/v1/templates/ctr", NULL, 200);
		cr_assert_str_eq(json_string_value(json_object_get(a, "id")),
				 json_string_value(json_object_get(b, "id")));
		json_decref(a);
		json_decref(b);
	}
	/* B runs it on its own: a fresh clone, its counter at 0 */
	run_checked(ARGS("run", "ctr", "--store", B.store), "sum\n", test_time(60), &r);
	cr_assert_eq(r.status, 0, "run at B: %s%s", r.out, r.err);
	snprintf(line, sizeof(line), "sum 0 %016" PRIx64, expected_sum(0, kib));
	cr_assert(strstr(r.out, line), "want \"%s\": %s", line, r.out);
	run_result_free(&r);
	free(rd.text);
}

/* A proxy between A and B that flips one byte of A's stream at offset at. */
struct flipper {
	int lfd;
	uint64_t at;
	uint64_t passed;
};

static void *flipper_run(void *arg)
{
	struct flipper *f = arg;
	struct sb_err err = { "" };
	int c = accept(f->lfd, NULL, NULL), d = c < 0 ? -1 : mig__connect(B.mig, &err);
	char buf[65536];

	while (c >= 0 && d >= 0) {
		struct pollfd pf[2] = { { c, POLLIN, 0 }, { d, POLLIN, 0 } };
		ssize_t n;

		if (poll(pf, 2, 60000) <= 0)
			break;
		if (pf[0].revents) {
			n = read(c, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (f->at >= f->passed && f->at < f->passed + (uint64_t)n)
				buf[f->at - f->passed] ^= 0x10;
			f->passed += (uint64_t)n;
			if (file__write_all(d, buf, (size_t)n) < 0)
				break;
		}
		if (pf[1].revents) {
			n = read(d, buf, sizeof(buf));
			if (n <= 0 || file__write_all(c, buf, (size_t)n) < 0)
				break;
		}
	}
	/* what B still said (its ERROR) goes to A */
	for (;;) {
		struct pollfd pd = { d, POLLIN, 0 };
		ssize_t n;

		if (c < 0 || d < 0 || poll(&pd, 1, 5000) <= 0 || (n = read(d, buf, sizeof(buf))) <= 0 ||
		    file__write_all(c, buf, (size_t)n) < 0)
			break;
	}
	if (d >= 0)
		close(d);
	if (c >= 0)
		close(c);
	return NULL;
}

/* The template damaged on its way: B refuses it, keeps nothing of it, and
 * the sandbox goes on at A. */
Test(migrate, fetch_template_damaged)
{
	struct reader rd = { 0 };
	struct run_result r = { 0 };
	const uint64_t steps = steps_of(300), kib = 64;
	struct sb_err err = { "" };
	char state[32], to[600];
	uint64_t id;

	svc_start(&A);
	svc_start(&B);
	id = start_dirtying(&A, &rd, steps, kib, 3000, "c 10\n");
	empty_b();
	snprintf(to, sizeof(to), "unix:%.500s/flip.mig", DIR_);
	/* past the hello and TLAYERS: inside the template's files */
	struct flipper f = { mig__listen(to, &err), 100000, 0 };
	pthread_t t;

	cr_assert(f.lfd >= 0, "%s", err.msg);
	cr_assert_eq(pthread_create(&t, NULL, flipper_run, &f), 0);
	migrate(&A, id, to, &r);
	pthread_join(t, NULL);
	close(f.lfd);
	cr_assert_neq(r.status, 0, "the migration succeeded: %s", r.out);
	cr_assert(strstr(r.err, "did not migrate (it runs on here)"), "%s", r.err);
	cr_assert(strstr(r.err, "damaged"), "%s", r.err);
	cr_assert_gt(f.passed, f.at, "the stream ended before the flipped byte");
	check_b_empty();
	read_more(&A, id, &rd, state, sizeof(state));
	cr_assert_str_eq(state, "running");
	check_whole(&A, id, &rd, steps, kib);
	run_result_free(&r);
	free(rd.text);
}
