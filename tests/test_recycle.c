/* SPDX-License-Identifier: MIT */
/*
 * Recycled sandboxes: machine__reset() puts a clone whose program exited
 * back to where clone_into() left it, and the next request must not be able
 * to tell it from a fresh clone.  Tested at the machine API level, as the
 * pool's worker uses it (machine__new_clone, stdio fds, timeout__start,
 * hypercall__complete_pending, be->run, then machine__reset and again), on
 * the backend under test (SNAPBOX_TEST_BACKEND=kvm|proc; the template is
 * made with it).
 *
 * The guest is /bin/secret (guest/rootfs/examples/secret.c): `put S` leaves
 * S in its heap, mmap'd memory, stack, data and syscall layer and changes
 * the state its syscall layer keeps; `check S` reports that state and
 * whether S is anywhere it can see.  A recycled `check S` must print byte
 * for byte what a fresh clone prints.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/kvm/vm.h"
#include "backend/proc/proc.h"
#include "memory/written.h"
#include "run.h"
#include "snapbox_abi.h"
#include "snapshot/snapshot.h"

static char *STORE;
static struct snapshot SNAP, SNAP2;
static const struct backend *BE;

static void fini(void)
{
	if (SNAP.dirfd > 0)
		snapshot__close(&SNAP);
	if (SNAP2.dirfd > 0)
		snapshot__close(&SNAP2);
	remove_tempdir(&STORE);
}

TestSuite(recycle, .fini = fini, .timeout = 300);

/* ---- helpers ------------------------------------------------------------- */

/* template create NAME (with the backend under test) -- PROG..., loaded */
static void make_template(const char *name, const char *const *prog, struct snapshot *snap)
{
	struct sb_err err = { "" };
	char dir[4096];

	if (!STORE)
		STORE = make_tempdir();
	template_create(STORE, name, prog, 120);
	snprintf(dir, sizeof(dir), "%s/templates/%s", STORE, name);
	cr_assert_eq(snapshot__load(dir, snap, &err), 0, "load %s: %s", name, err.msg);
}

/* The backend under test, the secret template. */
static void setup(void)
{
	static const char *const prog[] = { "/bin/secret", NULL };
	struct sb_err err = { "" };

	if (!test_on_proc())
		require_kvm();
	make_template("secret", prog, &SNAP);
	BE = backend__of_snapshot(&SNAP, &err);
	cr_assert(BE, "%s", err.msg);
	cr_assert_str_eq(BE->name, test_on_proc() ? "proc" : "kvm");
	cr_assert(BE->reset, "the %s backend has no reset()", BE->name);
}

struct res {
	int status;       /* run()'s result: exit status, 124, or -errno */
	bool exited;      /* the program's own exit */
	char *out;        /* stdout, NUL-terminated (malloc'd) */
	size_t out_len;
	char err[4096];   /* stderr, head */
	char msg[512];    /* run()'s message */
};

static void res_free(struct res *r)
{
	free(r->out);
	memset(r, 0, sizeof(*r));
}

static int memfd_with(const char *data, size_t len)
{
	int fd = memfd_create("recycle-io", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	if (len)
		cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static char *memfd_read(int fd, size_t *len)
{
	off_t n = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)n + 1);

	cr_assert(buf && n >= 0);
	cr_assert_eq(pread(fd, buf, (size_t)n, 0), n);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

/* One request, as the pool's worker serves it: stdio fds, deadline, the
 * pending stdin read, run. */
static void request(struct machine *m, const char *in, double timeout_s, struct res *r)
{
	struct sb_err err = { "" };
	int in_fd = memfd_with(in, strlen(in)), out_fd = memfd_with(NULL, 0);
	int err_fd = memfd_with(NULL, 0);
	size_t elen;
	char *e;
	int ret;

	memset(r, 0, sizeof(*r));
	m->hc.stdin_fd = in_fd;
	m->hc.stdout_fd = out_fd;
	m->hc.stderr_fd = err_fd;
	m->hc.trace_fd = err_fd;
	m->hc.program = "/bin/secret";
	ret = timeout__start(&m->timeout, (uint64_t)(test_time(timeout_s) * 1e9), &err);
	cr_assert_eq(ret, 0, "timeout__start: %s", err.msg);
	ret = hypercall__complete_pending(&m->hc, &err);
	if (ret == HC_CONTINUE)
		ret = m->be->run(m, &err);
	else if (ret == -ETIMEDOUT)
		ret = 124;
	timeout__stop(&m->timeout);
	r->status = ret;
	r->exited = m->hc.exited;
	snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	r->out = memfd_read(out_fd, &r->out_len);
	e = memfd_read(err_fd, &elen);
	snprintf(r->err, sizeof(r->err), "%s", e);
	free(e);
	close(in_fd);
	close(out_fd);
	close(err_fd);
}

static struct machine *clone_of(const struct snapshot *snap)
{
	struct sb_err err = { "" };
	struct machine_opts o = { .recycle = true };
	struct machine *m = machine__new_clone_opts(BE, snap, &o, &err);

	cr_assert(m, "clone: %s", err.msg);
	return m;
}

/* A request on a fresh clone (then torn down). */
static void fresh(const char *in, struct res *r)
{
	struct machine *m = clone_of(&SNAP);

	request(m, in, 60, r);
	machine__free(m);
}

static void reset(struct machine *m, struct reset_stats *st)
{
	struct sb_err err = { "" };

	cr_assert(machine__recyclable(m), "not recyclable after a run that exited");
	cr_assert_eq(machine__reset(m, &SNAP, st, &err), 0, "machine__reset: %s", err.msg);
	cr_assert_geq(st->total_us, st->scan_us + st->copy_us - 1);
}

static void assert_same(const struct res *got, const struct res *want, const char *in)
{
	cr_assert_eq(got->status, want->status, "[%s] status %d, fresh %d (%s / %s)", in,
		     got->status, want->status, got->msg, got->err);
	cr_assert_eq(got->out_len, want->out_len, "[%s] %zu bytes of output, fresh %zu:\n%.300s\n"
		     "fresh:\n%.300s", in, got->out_len, want->out_len, got->out, want->out);
	cr_assert(!memcmp(got->out, want->out, got->out_len), "[%s] output differs:\n%.300s\n"
		  "fresh:\n%.300s", in, got->out, want->out);
	cr_assert_str_eq(got->err, want->err, "[%s] stderr differs", in);
}

/* compute N's answer, computed here (secret.c) */
static uint64_t compute_sum(unsigned long pages)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < pages * 4096 / 8; i++)
		sum += i * 0x9e3779b97f4a7c15ULL;
	return sum;
}

#define NOT_FOUND "secret=not found\n"
#define FOUND_ALL "secret=found:image,brk,mmap,stack"

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);
	return a >= b && !strcmp(s + a - b, tail);
}

/* ---- tests ---------------------------------------------------------------- */

Test(recycle, a_put_secret_is_gone_after_a_reset)
{
	const char *s = "s3cret-7f3a9c-recycle-one";
	char put[128], check[128], putcheck[128];
	struct res f, r;
	struct reset_stats st;
	struct machine *m;

	setup();
	snprintf(put, sizeof(put), "put %s", s);
	snprintf(check, sizeof(check), "check %s", s);
	snprintf(putcheck, sizeof(putcheck), "putcheck %s", s);
	fresh(check, &f);
	cr_assert_eq(f.status, 0, "fresh check: %s / %s", f.msg, f.err);
	cr_assert(ends_with(f.out, NOT_FOUND), "fresh clone: %s", f.out);
	cr_assert(strstr(f.out, "fds=0,1,2 brk=+0 cwd=/ sigusr1=default blocked= "), "%s", f.out);

	m = clone_of(&SNAP);
	request(m, put, 60, &r);
	cr_assert_eq(r.status, 0, "put: %s / %s", r.msg, r.err);
	cr_assert_str_eq(r.out, "put ok\n");
	res_free(&r);
	reset(m, &st);
	/* put wrote at least: its small malloc, both ends of a 256 KiB one, both
	 * ends of 64 KiB past the break, an mmap, a global, a stack array */
	cr_assert_geq(st.pages, 8, "the reset put back %" PRIu64 " pages", st.pages);
	cr_assert(st.ranges >= 1 && st.ranges <= st.pages, "%" PRIu64 " ranges", st.ranges);
	request(m, check, 60, &r);
	assert_same(&r, &f, check);
	res_free(&r);

	/* the check itself is able to see a secret that is there */
	reset(m, &st);
	request(m, putcheck, 60, &r);
	cr_assert_eq(r.status, 0);
	/* the syscall layer's memory is the program's to see only where that
	 * layer runs in user mode (kvm_pvm, proc); under VMX/SVM its stack is
	 * the kernel's */
	cr_assert(ends_with(r.out, SNAP.hc.syscall_path == SB_SYSCALL_PATH_USER ? FOUND_ALL ",sys\n"
										: FOUND_ALL "\n"),
		  "putcheck (system-call path %s): %s",
		  hypercall__syscall_path_token(SNAP.hc.syscall_path), r.out);
	cr_assert(strstr(r.out, "fds=0,1,2,3@7 brk=+"), "%s", r.out);
	cr_assert(strstr(r.out, " cwd=/tmp sigusr1=handler blocked=12 "), "%s", r.out);
	res_free(&r);
	reset(m, &st);
	request(m, check, 60, &r);
	assert_same(&r, &f, check);
	res_free(&r);
	res_free(&f);
	machine__free(m);
}

/* The pages the guest writes are found and put back: on kvm, they are our
 * own anonymous copies in the MAP_PRIVATE mapping (checked here page by
 * page, under kvm_pvm's shadow paging and a VMX/SVM host's nested paging). */
Test(recycle, the_pages_the_guest_wrote_are_found)
{
	struct reset_stats st;
	struct res r;
	struct machine *m;
	unsigned long n = 200;
	char req[64];

	setup();
	m = clone_of(&SNAP);
	snprintf(req, sizeof(req), "dirty %lu", n);
	for (int round = 0; round < 3; round++) {
		request(m, req, 60, &r);
		cr_assert_eq(r.status, 0, "%s / %s", r.msg, r.err);
		cr_assert_str_eq(r.out, "dirty 200\n");
		res_free(&r);
		if (BE == &kvm_backend) {
			struct written_scan ws;
			struct sb_err err = { "" };
			uint64_t lo = (uint64_t)(uintptr_t)m->ram.host, pages = 0;

			cr_assert_eq(written__open(&ws, 0, &err), 0, "%s", err.msg);
			cr_assert_eq(written__scan(&ws, lo, lo + m->ram.size, &err), 0, "%s", err.msg);
			for (size_t i = 0; i < ws.n; i++)
				pages += (ws.r[i].end - ws.r[i].start) / 4096;
			/* dirty's pages are contiguous (one mmap): one run of >= n */
			bool run = false;
			for (size_t i = 0; i < ws.n; i++)
				run |= ws.r[i].end - ws.r[i].start >= n * 4096;
			cr_assert(run, "no run of %lu written pages among %zu ranges (%" PRIu64 " pages)",
				  n, ws.n, pages);
			if (round == 0)
				cr_log_info("pagemap read with %s: %zu ranges, %" PRIu64 " pages",
					    ws.no_ioctl ? "one entry per page (no PAGEMAP_SCAN: Linux < 6.7)"
							: "PAGEMAP_SCAN", ws.n, pages);
			written__close(&ws);
		}
		reset(m, &st);
		cr_assert_geq(st.pages, n, "round %d: the reset put back %" PRIu64 " pages", round,
			      st.pages);
	}
	if (BE == &kvm_backend) {
		/* put back by copying: still mapped, still ours; and the pages a
		 * request only reads (check reads megabytes) are not listed */
		struct written_scan ws;
		struct sb_err err = { "" };
		uint64_t lo = (uint64_t)(uintptr_t)m->ram.host, before = 0, after = 0;
		size_t np = m->ram.size / 4096, resident = 0;
		unsigned char *vec = malloc(np);

		cr_assert_eq(written__open(&ws, 0, &err), 0, "%s", err.msg);
		cr_assert_eq(written__scan(&ws, lo, lo + m->ram.size, &err), 0, "%s", err.msg);
		for (size_t i = 0; i < ws.n; i++)
			before += (ws.r[i].end - ws.r[i].start) / 4096;
		cr_assert_geq(before, n, "after the reset only %" PRIu64 " written pages are mapped",
			      before);
		request(m, "check read-only-pages-secret", 60, &r);
		cr_assert_eq(r.status, 0);
		res_free(&r);
		cr_assert_eq(written__scan(&ws, lo, lo + m->ram.size, &err), 0, "%s", err.msg);
		for (size_t i = 0; i < ws.n; i++)
			after += (ws.r[i].end - ws.r[i].start) / 4096;
		cr_assert(vec && mincore(m->ram.host, m->ram.size, vec) == 0);
		for (size_t i = 0; i < np; i++)
			resident += vec[i] & 1;
		cr_assert_lt(after - before, 64, "check wrote %" PRIu64 " pages", after - before);
		cr_assert_gt(resident, after + 1000, "%zu pages resident, %" PRIu64 " written",
			     resident, after);
		free(vec);
		written__close(&ws);
		reset(m, &st);
	}
	machine__free(m);
}

/* What we write into guest memory for the guest (stdin, hypercall results)
 * is put back too; on kvm, a change to the guest's page tables other than
 * accessed/dirty bits is refused (KVM's shadow MMU would not follow it). */
Test(recycle, host_writes_are_put_back_and_page_table_changes_refused)
{
	const char *s = "hostwritten-19d2e4-secret";
	char check[128];
	struct reset_stats st;
	struct sb_err err = { "" };
	struct res f, r;
	struct machine *m;

	setup();
	snprintf(check, sizeof(check), "check %s", s);
	fresh(check, &f);
	m = clone_of(&SNAP);
	request(m, "compute 3", 60, &r);
	res_free(&r);
	/* into the syscall layer's region and the program's image, which check
	 * searches */
	cr_assert_eq(m->mem.write(&m->mem, 0x3f0000, s, strlen(s)), 0);
	cr_assert_eq(m->mem.write(&m->mem, SB_USER_LOAD + 0x800, s, strlen(s)), 0);
	reset(m, &st);
	request(m, check, 60, &r);
	assert_same(&r, &f, check);
	res_free(&r);
	res_free(&f);
	if (BE == &kvm_backend) {
		uint64_t *pd = (uint64_t *)((uint8_t *)m->ram.host + SB_PD_GPA), e;

		reset(m, &st);
		request(m, "compute 1", 60, &r);
		res_free(&r);
		pd[3] ^= 1ULL << 5; /* accessed: the CPU's to set */
		reset(m, &st);
		request(m, "compute 1", 60, &r);
		cr_assert_eq(r.status, 0);
		res_free(&r);
		e = pd[3];
		pd[3] = e ^ 2; /* writable */
		cr_assert(machine__recyclable(m));
		cr_assert_eq(machine__reset(m, &SNAP, &st, &err), -EPERM, "reset: %s", err.msg);
		cr_assert(strstr(err.msg, "page tables"), "%s", err.msg);
	}
	machine__free(m);
}

/* A long sequence of mixed requests on one recycled sandbox prints, byte for
 * byte, what fresh clones print. */
Test(recycle, a_long_sequence_matches_fresh_clones)
{
	static const char *const secrets[] = { "alpha-5e1f0c", "bravo-77a3d9", "charlie-0b6e42" };
	static const unsigned long sizes[] = { 1, 7, 64, 300 };
	enum { MAXREQ = 32 };
	struct { char in[96]; struct res r; } ref[MAXREQ];
	long n = test_count("SNAPBOX_RECYCLE_SEQ", 200);
	int nref = 0, counts[6] = { 0 };
	uint64_t seed = 0x2545f4914f6cdd1dULL, pages = 0;
	struct reset_stats st;
	struct machine *m;

	setup();
	m = clone_of(&SNAP);
	for (long i = 0; i < n; i++) {
		char in[96];
		struct res r, *want = NULL;
		int kind;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		kind = (int)((seed >> 33) % 6);
		const char *sec = secrets[(seed >> 40) % 3];
		unsigned long k = sizes[(seed >> 45) % 4];
		switch (kind) {
		case 0: snprintf(in, sizeof(in), "put %s", sec); break;
		case 1: case 2: snprintf(in, sizeof(in), "check %s", sec); break;
		case 3: snprintf(in, sizeof(in), "compute %lu", k); break;
		case 4: snprintf(in, sizeof(in), "dirty %lu", k); break;
		default: snprintf(in, sizeof(in), "big %lu", k * 1000); break;
		}
		counts[kind]++;
		for (int j = 0; j < nref; j++)
			if (!strcmp(ref[j].in, in))
				want = &ref[j].r;
		if (!want) { /* a fresh clone's answer, once per distinct request */
			cr_assert_lt(nref, MAXREQ);
			snprintf(ref[nref].in, sizeof(ref[nref].in), "%s", in);
			fresh(in, &ref[nref].r);
			want = &ref[nref++].r;
		}
		request(m, in, 60, &r);
		assert_same(&r, want, in);
		if (kind == 1 || kind == 2)
			cr_assert(ends_with(r.out, NOT_FOUND), "request %ld [%s]: %s", i, in, r.out);
		if (kind == 3) {
			char w[96];
			snprintf(w, sizeof(w), "compute %lu sum %016" PRIx64 "\n", k, compute_sum(k));
			cr_assert_str_eq(r.out, w);
		}
		res_free(&r);
		reset(m, &st);
		cr_assert_gt(st.pages, 0, "request %ld [%s]: nothing was put back", i, in);
		pages += st.pages;
	}
	cr_assert(counts[0] && counts[1] + counts[2] && counts[3] && counts[4] && counts[5]);
	cr_log_info("%ld requests on one sandbox, %d fresh clones to compare; %.1f pages put back "
		    "per reset", n, nref, (double)pages / n);
	for (int j = 0; j < nref; j++)
		res_free(&ref[j].r);
	machine__free(m);
}

/* in ends the program as want_status says, within timeout_s (a spin: the
 * time limit itself; else a bound, generous for loaded machines). */
static void not_recyclable(struct machine *m, const char *in, int want_status, const char *why,
			   double timeout_s)
{
	struct reset_stats st;
	struct sb_err err = { "" };
	struct res r;

	request(m, in, timeout_s, &r);
	cr_assert_eq(r.status, want_status, "[%s] status %d (%s / %s)", in, r.status, r.msg, r.err);
	cr_assert(!r.exited);
	cr_assert(!machine__recyclable(m), "recyclable after %s", why);
	cr_assert_lt(machine__reset(m, &SNAP, &st, &err), 0, "reset after %s", why);
	res_free(&r);
}

/* Only a program's own exit makes a sandbox recyclable: not a fault, a
 * timeout or the guest kernel stopping it; more output than any limit is
 * fine for the machine (the pool stops such a sandbox itself). */
Test(recycle, only_an_exit_by_itself_is_recyclable)
{
	struct reset_stats st;
	struct res f, r;
	struct machine *m;

	setup();
	fresh("check crash-test-secret-4411", &f);
	m = clone_of(&SNAP);
	request(m, "put crash-test-secret-4411", 60, &r);
	res_free(&r);
	reset(m, &st);
	not_recyclable(m, "crash", 128 + 11, "a fault", 30);
	machine__free(m);

	m = clone_of(&SNAP);
	not_recyclable(m, "spin", 124, "a timeout", 2);
	machine__free(m);

	m = clone_of(&SNAP);
	request(m, "compute 2", 60, &r);
	res_free(&r);
	reset(m, &st);
	not_recyclable(m, "panic", 125, "the guest kernel stopping the program", 30);
	machine__free(m);

	m = clone_of(&SNAP);
	request(m, "big 17000000", 120, &r);
	cr_assert_eq(r.status, 0, "%s", r.msg);
	cr_assert_eq(r.out_len, 17000000);
	res_free(&r);
	reset(m, &st);
	request(m, "check crash-test-secret-4411", 60, &r);
	assert_same(&r, &f, "check");
	res_free(&r);
	res_free(&f);
	machine__free(m);
}

/* A recycled sandbox is the template's: another template is refused. */
Test(recycle, a_reset_to_another_template_is_refused)
{
	static const char *const prog[] = { "/bin/cat", NULL };
	struct reset_stats st;
	struct sb_err err = { "" };
	struct res r;
	struct machine *m;

	setup();
	make_template("cat", prog, &SNAP2);
	cr_assert_eq(SNAP2.hdr.mem_size, SNAP.hdr.mem_size);
	m = clone_of(&SNAP);
	request(m, "compute 1", 60, &r);
	res_free(&r);
	cr_assert_lt(machine__reset(m, &SNAP2, &st, &err), 0, "reset to another template");
	cr_assert(err.msg[0]);
	machine__free(m);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size, res;

	cr_assert(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &size, &res), 2);
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(recycle, fds_and_rss_stay_flat_over_many_resets, .timeout = 900)
{
	long n = test_count("SNAPBOX_RECYCLE_RUNS", 2000);
	static const char *const reqs[] = { "put flat-secret-a1", "check flat-secret-a1",
					    "compute 16", "dirty 32" };
	struct reset_stats st;
	struct machine *m;
	struct res r;
	int fds0;
	long rss0;

	setup();
	m = clone_of(&SNAP);
	for (int i = 0; i < 40; i++) { /* warm: the pages every request touches */
		request(m, reqs[i % 4], 60, &r);
		res_free(&r);
		reset(m, &st);
	}
	fds0 = count_fds();
	rss0 = rss_kib();
	for (long i = 0; i < n; i++) {
		request(m, reqs[i % 4], 60, &r);
		cr_assert_eq(r.status, 0, "request %ld: %s / %s", i, r.msg, r.err);
		res_free(&r);
		reset(m, &st);
	}
	cr_assert_eq(count_fds(), fds0, "fds: %d before, %d after %ld resets", fds0, count_fds(), n);
	cr_assert_lt(rss_kib() - rss0, 4096, "RSS grew from %ld to %ld KiB over %ld resets", rss0,
		     rss_kib(), n);
	cr_log_info("%ld resets: fds %d, RSS %ld -> %ld KiB", n, fds0, rss0, rss_kib());
	machine__free(m);
}

/* Overlay pages (format 1.4: a template's pages mapped from its layer
 * image) that a recycled sandbox wrote are put back from the image:
 * /bin/selfpatch writes a byte of its read-only data and patches its own
 * code after its ready point; after a reset the next request sees both as
 * the template has them, and prints what a fresh clone prints. */
Test(recycle, overlay_pages_the_guest_wrote_are_put_back)
{
	static const char *const prog[] = { "/bin/selfpatch", NULL };
	struct sb_err err = { "" };
	struct machine_opts o = { .recycle = true };
	struct reset_stats st;
	struct res f, r;
	struct machine *m;
	const char *tail;

	if (!test_on_proc())
		require_kvm();
	make_template("selfpatch", prog, &SNAP2);
	BE = backend__of_snapshot(&SNAP2, &err);
	cr_assert(BE, "%s", err.msg);
	cr_assert_geq(SNAP2.n_runs, 1, "selfpatch's template has no overlay run");
	m = machine__new_clone_opts(BE, &SNAP2, &o, &err);
	cr_assert(m, "clone: %s", err.msg);
	for (int i = 0; i < 3; i++) {
		const char *in = i == 1 ? "BB" : "A";

		request(m, in, 60, &r);
		cr_assert_eq(r.status, 0, "run %d: %s / %s", i, r.msg, r.err);
		/* before: the template's byte (0x5a) and code (42); after: ours */
		tail = strstr(r.out, " answer ");
		cr_assert(tail && strstr(r.out, i == 1 ? " 90 66 answer " : " 90 65 answer ") &&
			  strstr(tail, i == 1 ? " 42 2\n" : " 42 1\n"), "run %d: %s", i, r.out);
		if (i == 2) { /* byte for byte a fresh clone's */
			struct machine *fm = machine__new_clone_opts(BE, &SNAP2, &o, &err);

			cr_assert(fm, "clone: %s", err.msg);
			request(fm, in, 60, &f);
			machine__free(fm);
			assert_same(&r, &f, in);
			res_free(&f);
		}
		res_free(&r);
		cr_assert(machine__recyclable(m));
		cr_assert_eq(machine__reset(m, &SNAP2, &st, &err), 0, "reset: %s", err.msg);
		/* at least the table's page and the code's, both overlay pages */
		cr_assert_geq(st.pages, 2, "the reset put back %" PRIu64 " pages", st.pages);
	}
	machine__free(m);
}
