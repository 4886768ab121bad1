/* SPDX-License-Identifier: MIT */
/*
 * Templates and clones end to end: `snapbox template create|ls|inspect|
 * verify|rm` and `snapbox run`, against real guests, run as a user would.
 *
 * Guest programs used (all in the built-in rootfs): /bin/lua
 * /app/handler.lua, /bin/true, and three that exist for these tests
 * (guest/rootfs/examples/): /bin/dirty, /bin/readyrand, /bin/readyfault.
 * $SNAPBOX_TEST_ROOTFS, when set, is passed as `--rootfs` to every
 * `template create` (to try programs not yet in the built rootfs).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "devices/hypercall.h"
#include "run.h"
#include "snapbox_abi.h"
#include "snapshot/format.h"

extern char **environ;

static struct run_result R;
static char *STORE;

static void init(void)
{
	STORE = make_tempdir();
}

static void fini(void)
{
	run_result_free(&R);
	remove_tempdir(&STORE);
}

TestSuite(template, .init = init, .fini = fini, .timeout = 120);

#define ARGS(...) ((const char *const[]){ "snapbox", __VA_ARGS__, NULL })
#define PROG(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- helpers ---------------------------------------------------------------- */

/* Run snapbox with argv into R (freeing the previous R), stdin = in. */
static void sb(const char *const *argv, const char *in, double limit)
{
	if (!test_on_proc())
		require_kvm();
	run_checked(argv, in, limit, &R);
}

/* Templates here leave the Python layer out (--no-python): none of these
 * programs needs it, and every create would hash its 45 MB for overlays and
 * every copy_template copy it (too slow and too big in the emulated KVM
 * host's RAM-backed /tmp).  test_python and test_serve cover the default
 * stack with it.  Not for create_old: that snapbox predates the option. */
static bool old_host;

/* template create NAME --store STORE [--force] [--kernel K] [--rootfs $SNAPBOX_TEST_ROOTFS] -- prog... */
static void create_k(const char *name, bool force, const char *kernel, const char *const *prog)
{
	const char *av[32];
	const char *extra = getenv("SNAPBOX_TEST_ROOTFS");
	int n = 0;

	av[n++] = "snapbox";
	av[n++] = "template";
	av[n++] = "create";
	av[n++] = name;
	av[n++] = "--store";
	av[n++] = STORE;
	if (force)
		av[n++] = "--force";
	if (!old_host)
		av[n++] = "--no-python";
	if (kernel) {
		av[n++] = "--kernel";
		av[n++] = kernel;
	}
	if (extra && *extra) {
		av[n++] = "--rootfs";
		av[n++] = extra;
	}
	av[n++] = "--";
	for (int i = 0; prog[i] && n < 31; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	sb(av, NULL, 60);
}

static void create_(const char *name, bool force, const char *const *prog)
{
	create_k(name, force, NULL, prog);
}

/* template create with the snapbox from before the layers (run.h:
 * old_snapbox), as a template made before an upgrade. */
static void create_old(const char *name, const char *kernel, const char *const *prog)
{
	const char *was = getenv("SNAPBOX_BIN");
	char *keep = was ? strdup(was) : NULL;

	setenv("SNAPBOX_BIN", old_snapbox(), 1);
	old_host = true;
	create_k(name, false, kernel, prog);
	old_host = false;
	if (keep)
		setenv("SNAPBOX_BIN", keep, 1);
	else
		unsetenv("SNAPBOX_BIN");
	free(keep);
}

/* Create a template that must succeed. */
static void create(const char *name, const char *const *prog)
{
	create_(name, false, prog);
	cr_assert_eq(R.status, 0, "template create %s: status %d, stderr: %s", name, R.status, R.err);
}

/* snapbox run --store STORE --timeout 60 NAME < in */
static void run_clone(const char *name, const char *in)
{
	sb(ARGS("run", "--store", STORE, "--timeout", "60", name), in, 90);
}

/* run --stats --store STORE NAME, the request in a file (a memfd, as the
 * service hands it: the guest gets the EOF hint) or, file false, a pipe */
static void run_stats(const char *name, const void *in, size_t len, bool file)
{
	if (!test_on_proc())
		require_kvm();
	if (file) {
		run_checked_file(ARGS("run", "--stats", "--store", STORE, "--timeout", "60", name), in,
				 len, 90, &R);
	} else {
		run_result_free(&R);
		cr_assert_eq(run_snapbox(ARGS("run", "--stats", "--store", STORE, "--timeout", "60", name),
					 in, len, 90, &R), 0);
	}
}

/* snapbox template SUB --store STORE [NAME] */
static void tcmd(const char *sub, const char *name)
{
	if (name)
		sb(ARGS("template", sub, "--store", STORE, name), NULL, 60);
	else
		sb(ARGS("template", sub, "--store", STORE), NULL, 60);
}

static char *tpath(const char *name, const char *file)
{
	static char p[4][1024];
	static int k;
	char *out = p[k++ % 4];
	snprintf(out, sizeof(p[0]), "%s/templates/%s%s%s", STORE, name, file ? "/" : "", file ? file : "");
	return out;
}

static int one_line(const char *s, size_t len)
{
	return len > 0 && strchr(s, '\n') == s + len - 1;
}

/* xxh3-64 of a whole file (mmap'd; mem.img is sparse) and its size. */
static uint64_t file_hash(const char *path, off_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(fstat(fd, &st), 0);
	*size = st.st_size;
	if (st.st_size == 0) {
		close(fd);
		return XXH3_64bits("", 0);
	}
	void *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert_neq(m, MAP_FAILED, "mmap %s", path);
	uint64_t h = XXH3_64bits(m, st.st_size);
	munmap(m, st.st_size);
	close(fd);
	return h;
}

struct tsum {
	uint64_t h[3];
	off_t size[3];
};
static const char *const TFILES[3] = { SNAP_MEM_FILE, SNAP_PAGES_FILE, SNAP_STATE_FILE };

static void tsum(const char *name, struct tsum *s)
{
	for (int i = 0; i < 3; i++)
		s->h[i] = file_hash(tpath(name, TFILES[i]), &s->size[i]);
}

static void assert_unchanged(const char *name, const struct tsum *before)
{
	struct tsum after;
	tsum(name, &after);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(after.size[i], before->size[i], "%s of %s changed size", TFILES[i], name);
		cr_assert_eq(after.h[i], before->h[i], "%s of %s changed", TFILES[i], name);
	}
}

static void read_file(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(pread(fd, buf, len, off), (ssize_t)len, "read %s", path);
	close(fd);
}

static void patch_file(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY);
	cr_assert(fd >= 0, "open %s for writing", path);
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len, "write %s", path);
	close(fd);
}

static void flip(const char *path, off_t off, uint8_t mask)
{
	uint8_t b;
	read_file(path, &b, 1, off);
	b ^= mask;
	patch_file(path, &b, 1, off);
}

/* cp -r templates/src templates/dst (sparse), made writable. */
static void copy_template(const char *src, const char *dst)
{
	char cmd[3000];
	snprintf(cmd, sizeof(cmd), "cp -r --sparse=always '%s' '%s' && chmod -R u+w '%s'",
		 tpath(src, NULL), tpath(dst, NULL), tpath(dst, NULL));
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}


#define LUA PROG("/bin/lua", "/app/handler.lua")

static void lua_clone_answers(const char *name, int n)
{
	char req[64], want[128];
	snprintf(req, sizeof(req), "{\"n\": %d}", n);
	lua_answer(n, want, sizeof(want));
	run_clone(name, req);
	cr_assert_eq(R.status, 0, "n=%d: status %d, stderr: %s", n, R.status, R.err);
	cr_assert_str_eq(R.out, want, "n=%d, stderr: %s", n, R.err);
}

/* ---- 1. Lua template, 100 sequential clones (SNAPBOX_SEQ_CLONES) ---------- */

Test(template, lua_template_and_sequential_clones)
{
	create("lua", LUA);
	cr_assert(strstr(R.out, "template lua: id "), "create says what it made: %s", R.out);
	for (long n = 0, runs = test_count("SNAPBOX_SEQ_CLONES", 100); n < runs; n++)
		lua_clone_answers("lua", (int)(n % 100));
	/* a request the handler refuses: its own exit status and answer */
	run_clone("lua", "garbage");
	cr_assert_eq(R.status, 1, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "{\"error\": \"bad request\"}\n");
}

/* ---- 2. 16 concurrent clones -------------------------------------------------- */

Test(template, sixteen_concurrent_clones)
{
	enum { N = 16 };
	pid_t pid[N];
	char path[N][3][1100];

	create("lua", LUA);
	for (int i = 0; i < N; i++) {
		char req[64];
		int n = 10 + 5 * i;
		posix_spawn_file_actions_t fa;
		const char *av[] = { snapbox_bin(), "run", "--store", STORE, "--timeout", "60", "lua", NULL };

		snprintf(req, sizeof(req), "{\"n\": %d}", n);
		for (int k = 0; k < 3; k++)
			snprintf(path[i][k], sizeof(path[i][k]), "%s/c%d.%s", STORE, i,
				 k == 0 ? "in" : k == 1 ? "out" : "err");
		cr_assert_eq(write_file(STORE, strrchr(path[i][0], '/') + 1, req, strlen(req), 0644), 0);
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 0, path[i][0], O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, path[i][1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		posix_spawn_file_actions_addopen(&fa, 2, path[i][2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		cr_assert_eq(posix_spawn(&pid[i], av[0], &fa, NULL, (char *const *)av, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
	}
	/* all 16 run at once; reap them within 90 s */
	int status[N], left = N;
	time_t deadline = time(NULL) + (time_t)test_time(90);
	for (int i = 0; i < N; i++)
		status[i] = -1;
	while (left && time(NULL) < deadline) {
		for (int i = 0; i < N; i++) {
			int st;
			if (status[i] == -1 && waitpid(pid[i], &st, WNOHANG) == pid[i]) {
				status[i] = st;
				left--;
			}
		}
		usleep(10000);
	}
	for (int i = 0; i < N; i++)
		if (status[i] == -1) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], NULL, 0);
		}
	cr_assert_eq(left, 0, "%d clones still running after 90 s", left);
	for (int i = 0; i < N; i++) {
		char out[256] = "", err[512] = "", want[128];
		FILE *f = fopen(path[i][1], "r");
		size_t k = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
		out[k] = 0;
		if (f)
			fclose(f);
		f = fopen(path[i][2], "r");
		k = f ? fread(err, 1, sizeof(err) - 1, f) : 0;
		err[k] = 0;
		if (f)
			fclose(f);
		lua_answer(10 + 5 * i, want, sizeof(want));
		cr_assert(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0,
			  "clone %d: wait status 0x%x, stderr: %s", i, status[i], err);
		cr_assert_str_eq(out, want, "clone %d, stderr: %s", i, err);
	}
}

/* ---- 3. a clone's writes never reach the template ---------------------------- */

static uint64_t dirty_sum(uint64_t mib, uint64_t seed)
{
	uint64_t sum = 0, words = (mib << 20) / 8;
	for (uint64_t i = 0; i < words; i++)
		sum += i * 0x9e3779b97f4a7c15ULL ^ seed;
	return sum;
}

static void dirty_clone(const char *name, uint64_t mib, uint64_t seed)
{
	char req[64], want[96];
	snprintf(req, sizeof(req), "%" PRIu64 " %" PRIu64 "\n", mib, seed);
	snprintf(want, sizeof(want), "dirty %" PRIu64 " MiB sum %016" PRIx64 "\n", mib,
		 dirty_sum(mib, seed));
	run_clone(name, req);
	cr_assert_eq(R.status, 0, "status %d, stderr: %s", R.status, R.err);
	cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
}

Test(template, clone_writing_100_mib_leaves_template_unchanged)
{
	struct tsum before;

	create("dirty", PROG("/bin/dirty"));
	tsum("dirty", &before);
	dirty_clone("dirty", 100, 0x1234567);
	assert_unchanged("dirty", &before);
	tcmd("verify", "dirty");
	cr_assert_eq(R.status, 0, "verify after a dirtying clone: %s", R.err);
	/* the next clone starts from the template's memory, not the last clone's */
	dirty_clone("dirty", 3, 99);
	assert_unchanged("dirty", &before);
}

/* ---- 4. randomness and clock are fresh in every clone ------------------------ */

struct rr {
	char getrandom[40], urandom[40];
	long long realtime;
};

static void readyrand_clone(struct rr *o)
{
	time_t t0 = time(NULL);
	run_clone("rr", NULL);
	time_t t1 = time(NULL);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(sscanf(R.out, "getrandom: %39s\nurandom: %39s\nrealtime: %lld\n", o->getrandom,
			    o->urandom, &o->realtime), 3, "out: %s", R.out);
	cr_assert_eq(strlen(o->getrandom), 32, "out: %s", R.out);
	cr_assert_eq(strlen(o->urandom), 32, "out: %s", R.out);
	cr_assert_str_neq(o->getrandom, o->urandom, "out: %s", R.out);
	cr_assert_geq(o->realtime, (long long)t0, "guest clock %lld is behind the host's %lld: the "
		      "template's clock?", o->realtime, (long long)t0);
	cr_assert_leq(o->realtime, (long long)t1, "guest clock %lld ahead of the host's %lld",
		      o->realtime, (long long)t1);
}

Test(template, clones_draw_fresh_randomness_and_see_current_time)
{
	struct rr a, b;
	time_t created = time(NULL);

	create("rr", PROG("/bin/readyrand"));
	sleep(2);
	readyrand_clone(&a);
	cr_assert_geq(a.realtime, (long long)created + 2);
	readyrand_clone(&b);
	cr_assert_str_neq(a.getrandom, b.getrandom, "two clones drew the same getrandom bytes");
	cr_assert_str_neq(a.urandom, b.urandom, "two clones read the same /dev/urandom bytes");
	/* guest ABI 4: those bytes came from the pool the clone's completion of
	 * the pending stdin call filled, not from RANDOM hypercalls */
	run_stats("rr", "", 0, true);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "RANDOM"), 0, "not served from the pool: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "STDIN"), 1, "stderr: %s", R.err);
	cr_assert(strstr(R.out, a.getrandom) == NULL && strstr(R.out, b.getrandom) == NULL &&
		  strstr(R.out, a.urandom) == NULL && strstr(R.out, b.urandom) == NULL,
		  "a third clone repeats bytes: %s", R.out);
}

/* More randomness than the pool holds (2 KiB): the rest from RANDOM, and
 * still a clone's own.  A 5000-byte read of /dev/urandom shows (nearly)
 * every byte value; two clones differ. */
Test(template, randomness_beyond_the_pool_comes_from_the_host)
{
	char first[128];

	create("big", PROG("/bin/lua", "-e",
			   "io.read('a') local s = io.open('/dev/urandom', 'rb'):read(5000) "
			   "local seen, n = {}, 0 for i = 1, #s do local b = s:byte(i) "
			   "if not seen[b] then seen[b] = true n = n + 1 end end "
			   "print(#s, n, (s:sub(1, 8):gsub('.', function(c) return ('%02x'):format(c:byte()) end)), "
			   "(s:sub(-8):gsub('.', function(c) return ('%02x'):format(c:byte()) end)))"));
	for (int k = 0; k < 2; k++) {
		int len = 0, distinct = 0;
		char head[32], tail[32];

		run_stats("big", "x", 1, true);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		cr_assert_eq(sscanf(R.out, "%d %d %31s %31s", &len, &distinct, head, tail), 4, "out: %s",
			     R.out);
		cr_assert_eq(len, 5000);
		cr_assert_geq(distinct, 250, "5000 random bytes with %d distinct values", distinct);
		cr_assert_str_neq(head, tail);
		cr_assert_geq(stats_calls(R.err, "RANDOM"), 1, "stderr: %s", R.err);
		if (k)
			cr_assert_str_neq(R.out, first, "two clones read the same bytes");
		else
			snprintf(first, sizeof(first), "%s", R.out);
	}
}

/* ---- guest ABI 4 on the request's path --------------------------------------- */

/* The Lua handler's request, handed as a file: the clone's pending stdin
 * call is the only one it waits on (on proc; kvm adds its WRITE); its
 * reseed comes from the pool, its last read of stdin from the EOF hint,
 * and EXIT (and on proc its output) go one way.  On a pipe the guest asks
 * once more for the EOF. */
Test(template, a_lua_request_waits_on_the_host_once)
{
	char want[128];

	create("lua", LUA);
	lua_answer(30, want, sizeof(want));
	run_stats("lua", "{\"n\": 30}", 9, true);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "STDIN"), 1, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "RANDOM"), 0, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "READ"), 0, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "EXIT"), 1, "stderr: %s", R.err);
	if (test_on_proc()) {
		cr_assert_eq(stats_calls(R.err, "OUTPUT"), 1, "stderr: %s", R.err);
		cr_assert_eq(stats_calls(R.err, "WRITE"), 0, "stderr: %s", R.err);
		cr_assert_eq(stats_waited(R.err), 1, "stderr: %s", R.err);
	} else {
		cr_assert_eq(stats_calls(R.err, "WRITE"), 1, "stderr: %s", R.err);
		cr_assert_eq(stats_waited(R.err), 2, "stderr: %s", R.err);
	}
	run_stats("lua", "{\"n\": 30}", 9, false);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
	cr_assert_eq(stats_calls(R.err, "STDIN"), 2, "stderr: %s", R.err);
}

/* A clone reading its whole request (150,000 bytes, 64 KiB at a time) gets
 * every byte, from a file (the last read answered in the guest) and from a
 * pipe; and its output, larger than a proc output message (64 KiB) and
 * than the channel's buffer, arrives whole and in order. */
Test(template, a_clone_reads_its_request_to_eof_and_writes_it_back)
{
	size_t n = 150000;
	char *in = malloc(n);

	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + (i * 7 + i / 997) % 26);
	create("cat", PROG("/bin/cat"));
	for (int file = 1; file >= 0; file--) {
		run_stats("cat", in, n, file);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		cr_assert_eq(R.out_len, n, "%s: %zu bytes back", file ? "file" : "pipe", R.out_len);
		cr_assert(!memcmp(R.out, in, n), "%s: the bytes changed", file ? "file" : "pipe");
		if (file)
			cr_assert_eq(stats_calls(R.err, "STDIN"), 3, "stderr: %s", R.err);
		else
			cr_assert_geq(stats_calls(R.err, "STDIN"), 4, "stderr: %s", R.err);
	}
	free(in);

	/* 20,000 copies of a 16-byte request: 320,000 bytes out */
	create("rep", PROG("/bin/lua", "-e", "local r = io.read('a') for i = 1, 20000 do io.write(r) end"));
	run_stats("rep", "0123456789abcdef", 16, true);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 320000, "%zu bytes", R.out_len);
	for (size_t i = 0; i < R.out_len; i += 16)
		cr_assert(!memcmp(R.out + i, "0123456789abcdef", 16), "at %zu: %.16s", i, R.out + i);
}

/* ---- 5. damage is refused, never run ---------------------------------------- */

/* run the (damaged) template: 125, nothing on stdout, one line naming it */
static void refused(const char *name, const char *what, const char *a, const char *b)
{
	run_clone(name, "{\"n\": 5}");
	cr_assert_eq(R.status, 125, "%s: status %d, stderr: %s", what, R.status, R.err);
	cr_assert_eq(R.out_len, 0, "%s: the guest ran and printed: %s", what, R.out);
	cr_assert(one_line(R.err, R.err_len), "%s: not one line: %s", what, R.err);
	cr_assert(strstr(R.err, a) || (b && strstr(R.err, b)), "%s: message should say '%s'%s%s: %s",
		  what, a, b ? " or " : "", b ? b : "", R.err);
}

static void damaged(const char *name, const char *what, const char *mention)
{
	refused(name, what, "damaged", "hash");
	if (mention)
		cr_assert(strstr(R.err, mention), "%s: message should name '%s': %s", what, mention, R.err);
}

static const char *secname(uint32_t type)
{
	static const char *const n[] = { "?", "cpuid", "vcpu", "vm", "memmap", "serial", "hypercall",
					 "proc-cpu", "policy", "layers", "overlay", "hotset" };
	return type < sizeof(n) / sizeof(n[0]) ? n[type] : "?";
}

Test(template, damaged_templates_are_refused)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct stat st;
	char name[64], what[128];
	int k = 0;

	create("lua", LUA);
	read_file(tpath("lua", SNAP_STATE_FILE), &h, sizeof(h), 0);
	cr_assert_eq(memcmp(h.magic, SNAP_MAGIC, 8), 0);
	/* kvm: cpuid, vcpu, vm, memmap, serial, hypercall; proc: proc-cpu and the last three */
	cr_assert(h.n_sections >= (test_on_proc() ? 4u : 6u) && h.n_sections <= SNAP_MAX_SECTIONS,
		  "%u sections", h.n_sections);
	read_file(tpath("lua", SNAP_STATE_FILE), t, h.n_sections * sizeof(t[0]), sizeof(h));
	cr_assert_eq(stat(tpath("lua", SNAP_STATE_FILE), &st), 0);

	/* an intact copy runs: the copying itself does no harm */
	copy_template("lua", "copy");
	lua_clone_answers("copy", 5);

	/* one byte inside each section */
	for (uint32_t i = 0; i < h.n_sections; i++) {
		cr_assert(t[i].length > 0 && t[i].offset + t[i].length <= (uint64_t)st.st_size);
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		flip(tpath(name, SNAP_STATE_FILE), (off_t)(t[i].offset + t[i].length / 2), 0x01);
		snprintf(what, sizeof(what), "byte flipped in section %s", secname(t[i].type));
		damaged(name, what, secname(t[i].type));
	}
	/* the header: arch, n_sections, mem_size, pages_hash, header_hash, reserved */
	static const off_t hdr_off[] = { 12, 20, 25, 40, 56, 64 };
	for (size_t i = 0; i < sizeof(hdr_off) / sizeof(hdr_off[0]); i++) {
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		flip(tpath(name, SNAP_STATE_FILE), hdr_off[i], 0x10);
		snprintf(what, sizeof(what), "header byte %lld flipped", (long long)hdr_off[i]);
		damaged(name, what, "header");
	}
	/* the section table: a type, an offset, the last hash */
	const off_t tab_off[] = { 0, 32 + 8, (off_t)(h.n_sections - 1) * 32 + 24 };
	for (size_t i = 0; i < sizeof(tab_off) / sizeof(tab_off[0]); i++) {
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		flip(tpath(name, SNAP_STATE_FILE), (off_t)sizeof(h) + tab_off[i], 0x02);
		snprintf(what, sizeof(what), "section table byte %lld flipped", (long long)tab_off[i]);
		damaged(name, what, "table");
	}
	/* pages.idx: a counter in its header, and a page hash */
	static const off_t idx_off[] = { 24, sizeof(struct snap_pages_header) + 8 * 300 + 3 };
	for (size_t i = 0; i < sizeof(idx_off) / sizeof(idx_off[0]); i++) {
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		flip(tpath(name, SNAP_PAGES_FILE), idx_off[i], 0x80);
		snprintf(what, sizeof(what), "pages.idx byte %lld flipped", (long long)idx_off[i]);
		damaged(name, what, SNAP_PAGES_FILE);
	}
	/* state.bin truncated: inside the last section, and inside the table */
	static const off_t cut[] = { -1, sizeof(struct snap_header) + 40, 30 };
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		off_t len = cut[i] < 0 ? st.st_size - 4 : cut[i];
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		cr_assert_eq(truncate(tpath(name, SNAP_STATE_FILE), len), 0);
		snprintf(what, sizeof(what), "state.bin truncated to %lld bytes", (long long)len);
		refused(name, what, "truncated", "outside");
		cr_assert(strstr(R.err, "state.bin"), "%s: names the file: %s", what, R.err);
	}
	/* mem.img truncated: mapping it would SIGBUS the clone */
	snprintf(name, sizeof(name), "bad%d", k++);
	copy_template("lua", name);
	cr_assert_eq(truncate(tpath(name, SNAP_MEM_FILE), (off_t)(h.mem_size / 2)), 0);
	refused(name, "mem.img truncated", "shorter", NULL);
	/* mem.img missing */
	snprintf(name, sizeof(name), "bad%d", k++);
	copy_template("lua", name);
	cr_assert_eq(unlink(tpath(name, SNAP_MEM_FILE)), 0);
	refused(name, "mem.img missing", SNAP_MEM_FILE, NULL);
	/* a newer major format, with a correct header hash: the version check trips */
	{
		struct snap_header v2 = h;
		snprintf(name, sizeof(name), "bad%d", k++);
		copy_template("lua", name);
		v2.major = 2;
		v2.header_hash = 0;
		v2.header_hash = XXH3_64bits(&v2, sizeof(v2));
		patch_file(tpath(name, SNAP_STATE_FILE), &v2, sizeof(v2), 0);
		refused(name, "format 2.x", "newer", NULL);
		cr_assert_null(strstr(R.err, "damaged"), "the header is intact, it is newer: %s", R.err);
	}
	/* bad magic */
	snprintf(name, sizeof(name), "bad%d", k++);
	copy_template("lua", name);
	patch_file(tpath(name, SNAP_STATE_FILE), "SNAPBOy", 7, 0);
	refused(name, "bad magic", "magic", "not a snapbox template");

	/* and the original is untouched by all this */
	lua_clone_answers("lua", 12);
}

/* ---- 6. template verify -------------------------------------------------------- */

/* index of the first page whose pages.idx hash is (non-)zero */
static uint64_t find_page(const char *name, bool zero, uint64_t n_pages)
{
	uint64_t *hs = malloc(n_pages * 8);
	uint64_t i;
	read_file(tpath(name, SNAP_PAGES_FILE), hs, n_pages * 8, sizeof(struct snap_pages_header));
	/* skip the low 2 MiB (kernel) so the page is the program's */
	for (i = 512; i < n_pages && (hs[i] == 0) != zero; i++)
		;
	free(hs);
	cr_assert_lt(i, n_pages, "no %s page in the template", zero ? "zero" : "non-zero");
	return i;
}

Test(template, verify_finds_a_flipped_bit_in_memory)
{
	struct snap_header h;
	char want[64];

	create("lua", LUA);
	tcmd("verify", "lua");
	cr_assert_eq(R.status, 0, "intact template: %s", R.err);
	cr_assert(strstr(R.out, "ok"), "out: %s", R.out);
	read_file(tpath("lua", SNAP_STATE_FILE), &h, sizeof(h), 0);

	for (int zero = 0; zero < 2; zero++) {
		const char *name = zero ? "holey" : "flipped";
		uint64_t page = find_page("lua", zero, h.mem_size / SNAP_PAGE);
		copy_template("lua", name);
		flip(tpath(name, SNAP_MEM_FILE), (off_t)(page * SNAP_PAGE + 777), 0x04);
		tcmd("verify", name);
		cr_assert_eq(R.status, 1, "bit flipped in %s page %" PRIu64 ": status %d, stderr: %s",
			     zero ? "zero" : "data", page, R.status, R.err);
		snprintf(want, sizeof(want), "page %" PRIu64 " ", page);
		cr_assert(strstr(R.err, want), "the message names %s: %s", want, R.err);
		cr_assert(strstr(R.err, "damaged"), "stderr: %s", R.err);
	}
	tcmd("verify", "lua");
	cr_assert_eq(R.status, 0, "the original still verifies: %s", R.err);
}

/* ---- 7. ls, inspect, rm, --force, no template from an early exit ------------ */

static char *ls_row(const char *name)
{
	static char row[512];
	tcmd("ls", NULL);
	cr_assert_eq(R.status, 0, "ls: %s", R.err);
	for (char *l = R.out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t n = strlen(name);
		if (!strncmp(l, name, n) && (l[n] == ' ' || l[n] == '\t')) {
			size_t len = strcspn(l, "\n");
			snprintf(row, sizeof(row), "%.*s", (int)len, l);
			return row;
		}
	}
	return NULL;
}

static void inspect_id(const char *name, char id[33])
{
	tcmd("inspect", name);
	cr_assert_eq(R.status, 0, "inspect: %s", R.err);
	const char *l = strstr(R.out, "\nid ");
	cr_assert_not_null(l, "no id line: %s", R.out);
	cr_assert_eq(sscanf(l, " id %32s", id), 1);
	cr_assert_eq(strlen(id), 32, "id %s", id);
}

static int has_entries(const char *path)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", path);
	return system(cmd) != 0;
}

Test(template, ls_inspect_rm_force_and_early_exit)
{
	char id[33], id2[33], created[64], tmpdir[700];

	create("lua", LUA);
	cr_assert_eq(sscanf(R.out, "template lua: id %32s", created), 1, "out: %s", R.out);
	inspect_id("lua", id);
	cr_assert_str_eq(id, created, "create and inspect disagree on the id");
	static const char *const kvm_secs[] = { "cpuid", "vcpu", "vm", "memmap", "serial", "hypercall" };
	static const char *const proc_secs[] = { "proc-cpu", "memmap", "serial", "hypercall" };
	const char *const *secs = test_on_proc() ? proc_secs : kvm_secs;
	cr_assert(strstr(R.out, "sections"), "inspect: %s", R.out);
	for (int i = 0; i < (test_on_proc() ? 4 : 6); i++) {
		char w[32];
		snprintf(w, sizeof(w), " %s ", secs[i]);
		cr_assert(strstr(R.out, w), "inspect lists section %s: %s", secs[i], R.out);
	}
	char *row = ls_row("lua");
	cr_assert_not_null(row, "ls does not list lua: %s", R.out);
	char prefix[17];
	snprintf(prefix, sizeof(prefix), "%.16s", id);
	cr_assert(strstr(row, prefix), "ls row '%s' lacks id %s", row, prefix);

	/* an existing name: refused without --force, replaced with it */
	create_("lua", false, LUA);
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "already exists"), "stderr: %s", R.err);
	inspect_id("lua", id2);
	cr_assert_str_eq(id2, id, "a refused create changed the template");
	create_("lua", true, LUA);
	cr_assert_eq(R.status, 0, "--force: %s", R.err);
	lua_clone_answers("lua", 20);

	/* rm */
	tcmd("rm", "lua");
	cr_assert_eq(R.status, 0, "rm: %s", R.err);
	cr_assert_null(ls_row("lua"), "still listed after rm: %s", R.out);
	run_clone("lua", "{\"n\": 3}");
	cr_assert_eq(R.status, 125);
	cr_assert(strstr(R.err, "no template named"), "stderr: %s", R.err);
	cr_assert_eq(R.out_len, 0);
	tcmd("rm", "lua");
	cr_assert_neq(R.status, 0, "removing a missing template succeeded");

	/* a program that exits before its ready point leaves nothing behind */
	create_("early", false, PROG("/bin/true"));
	cr_assert_eq(R.status, 125, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "ready point"), "stderr: %s", R.err);
	cr_assert_null(ls_row("early"), "listed: %s", R.out);
	cr_assert_neq(access(tpath("early", NULL), F_OK), 0, "templates/early exists");
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", STORE);
	cr_assert_eq(has_entries(tmpdir), 0, "leftovers in %s", tmpdir);
	tcmd("ls", NULL);
	cr_assert_eq(strchr(R.out, '\n'), R.out + R.out_len - 1, "ls lists templates: %s", R.out);
}

/* Options anywhere before the program, as for run/inspect/verify; the
 * program's own options are its own. */
Test(template, create_takes_options_before_and_after_the_name)
{
	char out[128];

	sb(ARGS("template", "create", "--store", STORE, "--mem", "64M", "before", "--",
		"/bin/lua", "/app/handler.lua"), NULL, 60);
	cr_assert_eq(R.status, 0, "options before the name: status %d, stderr: %s", R.status, R.err);
	cr_assert(strstr(R.out, "template before: id "), "out: %s", R.out);
	lua_answer(5, out, sizeof(out));
	run_clone("before", "{\"n\": 5}");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, out);

	/* options on both sides, no "--": the first word after the name is the
	 * program, and what follows it (-e ...) is the program's */
	sb(ARGS("template", "create", "--mem", "64M", "both", "--store", STORE,
		"/bin/lua", "-e", "io.read(); print('late')"), NULL, 60);
	cr_assert_eq(R.status, 0, "status %d, stderr: %s", R.status, R.err);
	run_clone("both", "x\n");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "late\n");

	/* still an error: no name at all, or no program */
	sb(ARGS("template", "create", "--store", STORE, "--", "/bin/true"), NULL, 60);
	cr_assert_eq(R.status, 2, "status %d", R.status);
	cr_assert(strstr(R.err, "no name given"), "stderr: %s", R.err);
	sb(ARGS("template", "create", "--store", STORE, "noprog"), NULL, 60);
	cr_assert_eq(R.status, 2, "status %d", R.status);
	cr_assert(strstr(R.err, "no program given"), "stderr: %s", R.err);
}

/* ---- 8. a fault after the ready point --------------------------------------- */

/* what readyfault prints when its set-up state is intact */
static void readyfault_ok(char *out, size_t len)
{
	uint32_t sum = 0;
	for (uint32_t i = 0; i < (1u << 18); i++)
		sum += i * 2654435761u ^ i;
	snprintf(out, len, "readyfault ok %08x\n", sum);
}

Test(template, clone_fault_is_reported_and_template_survives)
{
	struct tsum before;
	char ok[64];

	readyfault_ok(ok, sizeof(ok));

	create("rf", PROG("/bin/readyfault"));
	tsum("rf", &before);
	run_clone("rf", "ok");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, ok, "stderr: %s", R.err);

	run_clone("rf", "segv");
	cr_assert_eq(R.status, 128 + 11, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "SIGSEGV"), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "0x10"), "names the address: %s", R.err);
	cr_assert_null(strstr(R.out, "readyfault ok"), "survived the fault: %s", R.out);
	run_clone("rf", "fpe");
	cr_assert_eq(R.status, 128 + 8, "stderr: %s", R.err);
	cr_assert(strstr(R.err, "SIGFPE"), "stderr: %s", R.err);

	assert_unchanged("rf", &before);
	run_clone("rf", "ok");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, ok, "the next clone after faults");
	tcmd("verify", "rf");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
}

/* ---- 9. a template from a CPU with features this host lacks ------------------ */

Test(template, cpuid_the_host_cannot_provide_is_refused)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	const char *st;
	int found = 0;

	if (test_on_proc())
		cr_skip_test("KVM only: a proc template has no CPUID (see proc_xsave_...)");

	create("lua", LUA);
	copy_template("lua", "cpu");
	st = tpath("cpu", SNAP_STATE_FILE);
	read_file(st, &h, sizeof(h), 0);
	cr_assert_leq(h.n_sections, SNAP_MAX_SECTIONS);
	read_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	for (uint32_t i = 0; i < h.n_sections; i++) {
		if (t[i].type != SNAP_SEC_CPUID)
			continue;
		uint8_t *sec = malloc(t[i].length);
		struct snap_cpuid c;
		read_file(st, sec, t[i].length, (off_t)t[i].offset);
		memcpy(&c, sec, sizeof(c));
		struct kvm_cpuid_entry2 *e = (struct kvm_cpuid_entry2 *)(sec + sizeof(c));
		for (uint32_t j = 0; j < c.nent; j++) {
			if (e[j].function == 7 && e[j].index == 0) {
				e[j].ebx = 0xffffffff; /* every structured extended feature */
				found = 1;
			}
		}
		/* re-sign everything, so that only the CPUID check can refuse it */
		h.cpuid_hash = XXH3_64bits(e, c.nent * sizeof(*e));
		t[i].hash = XXH3_64bits(sec, t[i].length);
		patch_file(st, sec, t[i].length, (off_t)t[i].offset);
		free(sec);
	}
	cr_assert(found, "the template has no CPUID leaf 7");
	h.table_hash = XXH3_64bits(t, h.n_sections * sizeof(t[0]));
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	patch_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	patch_file(st, &h, sizeof(h), 0);
	refused("cpu", "CPUID leaf 7 with every feature", "CPU features", NULL);
	cr_assert_null(strstr(R.err, "damaged"), "the file is intact: %s", R.err);
	lua_clone_answers("lua", 3);
}

/* ---- 10. the guest's system-call path, saved with the template ------------- */

Test(template, inspect_shows_the_syscall_path_saved_at_create)
{
	const char *why, *want = expected_syscall_path(&why), *got;
	char line[64];
	uint8_t *json;
	size_t jlen;

	if (test_on_proc())
		cr_skip_test("KVM only: the VMX/SVM/kvm_pvm syscall path");

	create("lua", LUA);
	tcmd("inspect", "lua");
	cr_assert_eq(R.status, 0, "inspect: %s", R.err);
	got = syscall_path_after(R.out, "\nsyscalls   ");
	cr_assert_not_null(got, "inspect has no syscalls line: %s", R.out);
	cr_assert_str_eq(got, want, "inspect: path %s, expected %s (%s): %s", got, want, why, R.out);

	json = slurp(tpath("lua", SNAP_MANIFEST_FILE), &jlen);
	snprintf(line, sizeof(line), "\"syscall_path\": \"%s\"", want);
	cr_assert(memmem(json, jlen, line, strlen(line)), "template.json lacks %s: %.*s", line,
		  (int)jlen, (const char *)json);
	free(json);

	/* a clone shows the template's path (it does not boot, so it does not report) */
	sb(ARGS("run", "--stats", "--store", STORE, "lua"), "{\"n\": 4}", 90);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	got = syscall_path_after(R.err, "stats: syscall_path=");
	cr_assert(got && !strcmp(got, want), "run --stats: %s", R.err);
}

/* Rewrite a copy's guest ABI, hypercall section version and syscall path,
 * with every hash made right again: what an older snapbox would have saved. */
static void restamp(const char *name, uint32_t abi, uint32_t hc_version, uint32_t path)
{
	const char *st = tpath(name, SNAP_STATE_FILE);
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_header h;
	struct hc_state hc;
	int found = 0;

	read_file(st, &h, sizeof(h), 0);
	cr_assert_leq(h.n_sections, SNAP_MAX_SECTIONS);
	read_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	for (uint32_t i = 0; i < h.n_sections; i++) {
		if (t[i].type != SNAP_SEC_HYPERCALL)
			continue;
		cr_assert_eq(t[i].length, sizeof(hc));
		read_file(st, &hc, sizeof(hc), (off_t)t[i].offset);
		if (path != UINT32_MAX)
			hc.syscall_path = path;
		t[i].version = hc_version;
		t[i].hash = XXH3_64bits(&hc, sizeof(hc));
		patch_file(st, &hc, sizeof(hc), (off_t)t[i].offset);
		found = 1;
	}
	cr_assert(found, "no hypercall section");
	h.abi_version = abi;
	h.table_hash = XXH3_64bits(t, h.n_sections * sizeof(t[0]));
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	patch_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	patch_file(st, &h, sizeof(h), 0);
}

/*
 * Templates of older guest kernels run unchanged: their clones complete a
 * pending READ and make ABI 3's synchronous calls (READ, WRITE, RANDOM),
 * which this snapbox still serves.  An ABI 3 kernel (tests/tests.mk builds
 * it from git) in the snapbox from before the layers (built from git too:
 * this one refuses to boot it) makes a genuine ABI 3 template, of format
 * 1.2 with its rootfs in RAM and no layers; stamped ABI 2 with the
 * hypercall section of version 1 it is what snapbox of ABI 2 saved.
 */
Test(template, templates_from_guest_abi_2_and_3_still_run)
{
	char want[128];
	size_t n = 100000;
	char *in = malloc(n);

	create_old("abi3", abi3_kernel(), LUA);
	cr_assert_eq(R.status, 0, "template create with the ABI 3 kernel: %s", R.err);
	tcmd("inspect", "abi3");
	cr_assert_eq(R.status, 0, "inspect: %s", R.err);
	cr_assert(strstr(R.out, "guest ABI 3"), "inspect: %s", R.out);
	cr_assert(strstr(R.out, "stdin read pending (READ, "), "inspect: %s", R.out);
	cr_assert(strstr(R.out, "layers     none: the root file system is in RAM"), "inspect: %s", R.out);
	lua_answer(30, want, sizeof(want));
	for (int file = 1; file >= 0; file--) {
		run_stats("abi3", "{\"n\": 30}", 9, file);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
		/* the pending READ, the read of EOF, the reseed's two RANDOMs, WRITE */
		cr_assert_eq(stats_calls(R.err, "READ"), 2, "stderr: %s", R.err);
		cr_assert_eq(stats_calls(R.err, "RANDOM"), 2, "stderr: %s", R.err);
		cr_assert_eq(stats_calls(R.err, "WRITE"), 1, "stderr: %s", R.err);
		cr_assert_eq(stats_calls(R.err, "STDIN") + stats_calls(R.err, "OUTPUT"), 0, "%s", R.err);
	}
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('0' + i % 10);
	create_old("cat3", abi3_kernel(), PROG("/bin/cat"));
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	run_stats("cat3", in, n, true);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_eq(R.out_len, n);
	cr_assert(!memcmp(R.out, in, n), "the bytes changed");
	free(in);

	/* ABI 2, hypercall section 1 (no path): runs, the path reads "none" */
	copy_template("abi3", "abi2");
	restamp("abi2", 2, 1, 0);
	lua_clone_answers("abi2", 9);
	tcmd("inspect", "abi2");
	cr_assert_eq(R.status, 0, "inspect: %s", R.err);
	cr_assert(strstr(R.out, "guest ABI 2"), "inspect: %s", R.out);
	cr_assert(strstr(R.out, "syscalls   path not reported (template made before guest ABI 3)"),
		  "inspect: %s", R.out);

	/* ...but its reserved field must still be zero */
	copy_template("abi3", "v1path");
	restamp("v1path", 2, 1, SB_SYSCALL_PATH_UD_KERNEL);
	refused("v1path", "hypercall section 1 with a path", "reserved", NULL);

	/* a path this snapbox does not know */
	create("lua", LUA);
	copy_template("lua", "badpath");
	restamp("badpath", SB_ABI_VERSION, HC_STATE_VERSION, SB_SYSCALL_PATH_MAX + 1);
	refused("badpath", "unknown syscall path", "system-call path", NULL);

	/* a newer guest ABI, and one older than the oldest still served */
	copy_template("lua", "abi5");
	restamp("abi5", SB_ABI_VERSION + 1, HC_STATE_VERSION, UINT32_MAX);
	snprintf(want, sizeof(want), "speaks ABI %d", SB_ABI_VERSION + 1);
	refused("abi5", "a newer guest ABI", want, NULL);
	copy_template("abi3", "abi1");
	restamp("abi1", SB_ABI_VERSION_MIN - 1, 1, 0);
	refused("abi1", "guest ABI 1", "speaks ABI 1", NULL);

	/* an ABI 4 template waits in a STDIN call, which no older kernel
	 * makes and no older hypercall section can say */
	copy_template("lua", "stdin3");
	restamp("stdin3", 3, HC_STATE_VERSION, UINT32_MAX);
	refused("stdin3", "STDIN pending in ABI 3", "a STDIN call pending in a template of guest ABI 3",
		NULL);
	copy_template("lua", "stdinv2");
	restamp("stdinv2", SB_ABI_VERSION, 2, UINT32_MAX);
	refused("stdinv2", "STDIN pending in hypercall section 2", "unknown flags", NULL);

	lua_clone_answers("lua", 3);
	lua_clone_answers("abi3", 4);
}

/* A kvm_pvm template (user-mode syscall layer) cannot run under VMX/SVM;
 * a VMX/SVM one (the `ud2` trampoline) runs on kvm_pvm too.  The record of
 * the path decides, so a copy says the path the other kind of host gives. */
Test(template, a_kvm_pvm_template_is_refused_under_vmx_svm)
{
	if (test_on_proc())
		cr_skip_test("KVM only: which KVM made the template");
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	create("lua", LUA);
	copy_template("lua", "other");
	if (pvm) {
		/* recorded as made under VMX/SVM: still served here */
		restamp("other", SB_ABI_VERSION, HC_STATE_VERSION, SB_SYSCALL_PATH_UD_KERNEL);
		lua_clone_answers("other", 11);
	} else {
		restamp("other", SB_ABI_VERSION, HC_STATE_VERSION, SB_SYSCALL_PATH_USER);
		refused("other", "a kvm_pvm template under VMX/SVM", "made on kvm_pvm", NULL);
		cr_assert(strstr(R.err, "create the template again"), "%s", R.err);
	}
	lua_clone_answers("lua", 12);
}

/* ---- 12. both backends: vector state, the template's own backend ------------- */

/* avxstate fills ymm (and zmm/k where there is AVX-512) right before its
 * ready point and checks them right after: a clone resumes every bit. */
Test(template, avx_register_state_survives_the_clone)
{
	create("avx", PROG("/bin/avxstate"));
	for (int i = 0; i < 3; i++) {
		run_clone("avx", "hi\n");
		cr_assert_eq(R.status, 0, "status %d, out: %s, stderr: %s", R.status, R.out, R.err);
		cr_assert(strstr(R.out, "zmm ok\n") || strstr(R.out, "ymm ok\n"), "out: %s", R.out);
		cr_assert(strstr(R.out, "request: hi\n"), "out: %s", R.out);
	}
}

/* A template records its backend; run uses it, and refuses another one
 * asked for with one clear line. */
Test(template, a_template_runs_only_on_its_own_backend)
{
	const char *mine = test_on_proc() ? "proc" : "kvm", *other = test_on_proc() ? "kvm" : "proc";
	char want[200], out[128];

	create("lua", LUA);
	tcmd("inspect", "lua");
	snprintf(want, sizeof(want), "backend    %s\n", mine);
	cr_assert(strstr(R.out, want), "inspect: %s", R.out);
	sb(ARGS("run", "--store", STORE, "--backend", other, "lua"), "{\"n\": 3}", 60);
	cr_assert_eq(R.status, 125, "status %d, stderr: %s", R.status, R.err);
	snprintf(want, sizeof(want),
		 "snapbox: template lua was made by the %s backend and runs only there, not on %s\n",
		 mine, other);
	cr_assert_str_eq(R.err, want);
	cr_assert_eq(R.out_len, 0, "out: %s", R.out);
	sb(ARGS("run", "--store", STORE, "--backend", mine, "lua"), "{\"n\": 3}", 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	lua_answer(3, out, sizeof(out));
	cr_assert_str_eq(R.out, out);
}

/* proc: a template whose XSAVE state this host cannot restore (a feature
 * it lacks) is refused, like a KVM template with CPUID the host lacks. */
Test(template, proc_xsave_features_the_host_lacks_are_refused)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_proc_cpu *c = malloc(sizeof(*c));
	const char *st;
	int found = 0;

	if (!test_on_proc())
		cr_skip_test("proc backend only (SNAPBOX_TEST_BACKEND=proc)");
	create("lua", LUA);
	copy_template("lua", "xs");
	st = tpath("xs", SNAP_STATE_FILE);
	read_file(st, &h, sizeof(h), 0);
	cr_assert_eq(h.backend, SNAP_BACKEND_PROC);
	read_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	for (uint32_t i = 0; i < h.n_sections; i++) {
		if (t[i].type != SNAP_SEC_PROC_CPU)
			continue;
		cr_assert_eq(t[i].length, sizeof(*c));
		read_file(st, c, sizeof(*c), (off_t)t[i].offset);
		c->cpu.xfeatures |= 1ULL << 60; /* no CPU has it */
		c->xcomp[60] = (struct snap_xcomp){ 576, 64 };
		t[i].hash = XXH3_64bits(c, sizeof(*c));
		patch_file(st, c, sizeof(*c), (off_t)t[i].offset);
		found = 1;
	}
	cr_assert(found, "no proc-cpu section");
	h.table_hash = XXH3_64bits(t, h.n_sections * sizeof(t[0]));
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	patch_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	patch_file(st, &h, sizeof(h), 0);
	refused("xs", "XSAVE feature 60", "XSAVE features", "not all on this host");
	cr_assert_null(strstr(R.err, "damaged"), "the file is intact: %s", R.err);
	lua_clone_answers("lua", 3);
	free(c);
}

/* ---- 13. the recycle policy, fixed at create ------------------------------------ */

/* template create NAME --store STORE --recycle POLICY [--rootfs ...] -- LUA
 * (POLICY NULL: no --recycle; before: --recycle ahead of the name) */
static void create_policy(const char *name, const char *policy, bool before)
{
	const char *av[32];
	const char *extra = getenv("SNAPBOX_TEST_ROOTFS");
	int n = 0;

	av[n++] = "snapbox";
	av[n++] = "template";
	av[n++] = "create";
	if (policy && before) {
		av[n++] = "--recycle";
		av[n++] = policy;
	}
	av[n++] = name;
	av[n++] = "--store";
	av[n++] = STORE;
	if (policy && !before) {
		av[n++] = "--recycle";
		av[n++] = policy;
	}
	if (extra && *extra) {
		av[n++] = "--rootfs";
		av[n++] = extra;
	}
	av[n++] = "--";
	av[n++] = "/bin/lua";
	av[n++] = "/app/handler.lua";
	av[n] = NULL;
	sb(av, NULL, 60);
}

/* inspect's "recycle" line (without the label), asserting there is one */
static const char *inspect_recycle(const char *name)
{
	static char line[256];
	const char *l;

	tcmd("inspect", name);
	cr_assert_eq(R.status, 0, "inspect %s: %s", name, R.err);
	l = strstr(R.out, "\nrecycle    ");
	cr_assert_not_null(l, "inspect %s has no recycle line: %s", name, R.out);
	l += strlen("\nrecycle    ");
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
	return line;
}

static void assert_manifest_recycle(const char *name, const char *want)
{
	char line[128];
	size_t jlen;
	uint8_t *json = slurp(tpath(name, SNAP_MANIFEST_FILE), &jlen);

	snprintf(line, sizeof(line), "\"recycle\": \"%s\"", want);
	cr_assert(memmem(json, jlen, line, strlen(line)), "%s: template.json lacks %s: %.*s", name,
		  line, (int)jlen, (const char *)json);
	free(json);
}

Test(template, create_with_each_recycle_policy_form)
{
	static const struct {
		const char *name, *arg;   /* arg NULL: no --recycle */
		bool before;              /* --recycle before the name */
		const char *inspect, *manifest;
	} c[] = {
		{ "none", NULL, false, "service default", "default" },
		{ "dflt", "default", false, "service default", "default" },
		{ "off", "off", true, "off", "off" },
		{ "on", "on", false, "on (no reuse limit, idle 60 s by default)", "on" },
		{ "full", "on,max=1000,idle=60s", false, "on (max 1000 reuses, idle 60 s)",
		  "on,max=1000,idle=60s" },
		{ "ms", "on,idle=500ms,max=1", true, "on (max 1 reuse, idle 500 ms)", "on,max=1,idle=500ms" },
		{ "min", "on,idle=5m", false, "on (no reuse limit, idle 300 s)", "on,idle=300s" },
	};
	uint64_t h;
	struct snap_policy pol;
	char want[64], id0[33], id1[33];

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		create_policy(c[i].name, c[i].arg, c[i].before);
		cr_assert_eq(R.status, 0, "--recycle %s: status %d, stderr: %s", c[i].arg, R.status, R.err);
		cr_assert_str_eq(inspect_recycle(c[i].name), c[i].inspect, "--recycle %s", c[i].arg);
		snprintf(want, sizeof(want), "format     %d.%d,", SNAP_MAJOR, SNAP_MINOR);
		cr_assert(strstr(R.out, want), "inspect: %s", R.out);
		cr_assert(strstr(R.out, " policy "), "inspect lists the policy section: %s", R.out);
		assert_manifest_recycle(c[i].name, c[i].manifest);
	}
	/* the policy is in state.bin (so in the id), as written */
	{
		struct snap_header hd;
		struct snap_section t[SNAP_MAX_SECTIONS];
		uint32_t i;

		read_file(tpath("full", SNAP_STATE_FILE), &hd, sizeof(hd), 0);
		cr_assert_eq(hd.minor, SNAP_MINOR);
		read_file(tpath("full", SNAP_STATE_FILE), t, hd.n_sections * sizeof(t[0]), sizeof(hd));
		for (i = 0; i < hd.n_sections && t[i].type != SNAP_SEC_POLICY; i++)
			;
		cr_assert_lt(i, hd.n_sections, "a policy section");
		cr_assert_eq(t[i].length, sizeof(pol));
		read_file(tpath("full", SNAP_STATE_FILE), &pol, sizeof(pol), (off_t)t[i].offset);
		cr_assert_eq(pol.recycle, SNAP_RECYCLE_ON);
		cr_assert_eq(pol.max_reuses, 1000);
		cr_assert_eq(pol.idle_ms, 60000);
		h = XXH3_64bits(&pol, sizeof(pol));
		cr_assert_eq(h, t[i].hash);
	}
	inspect_id("none", id0);
	inspect_id("off", id1);
	cr_assert_str_neq(id0, id1, "the policy is not part of the template's id");
	/* a template with a policy runs as any other */
	lua_clone_answers("full", 7);
	lua_clone_answers("none", 8);
}

Test(template, junk_recycle_values_are_refused_in_one_line)
{
	static const char *const junk[] = {
		"", "yes", "ON", "on ", " on", "on,", "on,,max=2", ",on", "off,max=3", "default,idle=1s",
		"on,max=0", "on,max=-1", "on,max=+1", "on,max=1x", "on,max=1000000001",
		"on,max=99999999999999999999999", "on,max=1,max=2", "on,idle=0s", "on,idle=5",
		"on,idle=5x", "on,idle=1.5s", "on,idle=25h", "on,idle=86400001ms", "on,idle=-1s",
		"on,idle=1s,idle=2s", "on,color=red", "on;max=1", "on,max=",
	};
	char tmpdir[700];

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		create_policy("junk", junk[i], i % 2);
		cr_assert_eq(R.status, 2, "--recycle '%s': status %d, stderr: %s", junk[i], R.status, R.err);
		cr_assert(one_line(R.err, R.err_len), "--recycle '%s': not one line: %s", junk[i], R.err);
		cr_assert(!strncmp(R.err, "snapbox: --recycle ", 19), "--recycle '%s': %s", junk[i], R.err);
		cr_assert_eq(R.out_len, 0, "--recycle '%s': out: %s", junk[i], R.out);
	}
	cr_assert_neq(access(tpath("junk", NULL), F_OK), 0, "a template was made from junk");
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", STORE);
	cr_assert(access(tmpdir, F_OK) < 0 || !has_entries(tmpdir), "leftovers in %s", tmpdir);
	/* no value at all; and boot has no policy */
	sb(ARGS("template", "create", "junk", "--store", STORE, "--recycle"), NULL, 60);
	cr_assert_eq(R.status, 2, "stderr: %s", R.err);
	cr_assert(one_line(R.err, R.err_len) && strstr(R.err, "--recycle"), "stderr: %s", R.err);
	sb(ARGS("boot", "--recycle", "on", "--", "/bin/true"), NULL, 60);
	cr_assert_eq(R.status, 2, "stderr: %s", R.err);
	cr_assert_str_eq(R.err, "snapbox: unknown option --recycle (see 'snapbox --help')\n");
}

/* Recompute every hash of state.bin (sections, table, header) from the file:
 * after an edit, only the checks behind the hashes can refuse it. */
static void resign(const char *name)
{
	const char *st = tpath(name, SNAP_STATE_FILE);
	size_t len;
	uint8_t *b = slurp(st, &len);
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_header h;

	cr_assert_geq(len, sizeof(h));
	memcpy(&h, b, sizeof(h));
	cr_assert_leq(h.n_sections, SNAP_MAX_SECTIONS);
	memcpy(t, b + sizeof(h), h.n_sections * sizeof(t[0]));
	for (uint32_t i = 0; i < h.n_sections; i++) {
		cr_assert_leq(t[i].offset + t[i].length, len);
		t[i].hash = XXH3_64bits(b + t[i].offset, t[i].length);
	}
	h.table_hash = XXH3_64bits(t, h.n_sections * sizeof(t[0]));
	h.header_hash = 0;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	patch_file(st, t, h.n_sections * sizeof(t[0]), sizeof(h));
	patch_file(st, &h, sizeof(h), 0);
	free(b);
}

/* The policy section of template name: its table index and offset. */
static void policy_section(const char *name, struct snap_header *h, struct snap_section *t,
			   uint32_t *idx)
{
	read_file(tpath(name, SNAP_STATE_FILE), h, sizeof(*h), 0);
	cr_assert_leq(h->n_sections, SNAP_MAX_SECTIONS);
	read_file(tpath(name, SNAP_STATE_FILE), t, h->n_sections * sizeof(t[0]), sizeof(*h));
	for (*idx = 0; *idx < h->n_sections && t[*idx].type != SNAP_SEC_POLICY; (*idx)++)
		;
	cr_assert_lt(*idx, h->n_sections, "%s has no policy section", name);
}

/* Take the sections of the types in `drop` (a bit per type) out of the
 * table (their bytes stay, unreferenced) and stamp the header minor: what
 * an older snapbox wrote (1.1: no policy, no layers; 1.2: no layers). */
static void fill_overlays(const char *name);

static void strip_sections(const char *name, uint32_t drop, uint16_t minor)
{
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_header h;
	uint32_t n = 0;

	if (minor < 4) { /* an older template has its overlay pages in mem.img */
		fill_overlays(name);
		drop |= 1u << SNAP_SEC_OVERLAY;
	}
	if (minor < 5) /* nor a write set */
		drop |= 1u << SNAP_SEC_HOTSET;
	read_file(tpath(name, SNAP_STATE_FILE), &h, sizeof(h), 0);
	cr_assert_leq(h.n_sections, SNAP_MAX_SECTIONS);
	read_file(tpath(name, SNAP_STATE_FILE), t, h.n_sections * sizeof(t[0]), sizeof(h));
	for (uint32_t i = 0; i < h.n_sections; i++)
		if (!(drop & (1u << t[i].type)))
			t[n++] = t[i];
	cr_assert_lt(n, h.n_sections, "%s: nothing to strip", name);
	h.n_sections = n;
	h.minor = minor;
	patch_file(tpath(name, SNAP_STATE_FILE), t, n * sizeof(t[0]), sizeof(h));
	patch_file(tpath(name, SNAP_STATE_FILE), &h, sizeof(h), 0);
	resign(name);
}
#define POLICY (1u << SNAP_SEC_POLICY)
#define LAYERS (1u << SNAP_SEC_LAYERS)

static void set_policy(const char *name, struct snap_policy pol)
{
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_header h;
	uint32_t i;

	policy_section(name, &h, t, &i);
	patch_file(tpath(name, SNAP_STATE_FILE), &pol, sizeof(pol), (off_t)t[i].offset);
	resign(name);
}

Test(template, a_template_from_before_format_1_2_has_the_service_default)
{
	create_policy("lua", "on,max=5", false);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);

	/* 1.1, no policy section (nor layers): loads, runs, and says "service
	 * default".  (A real 1.1 template has its root file system in its RAM;
	 * this one's guest kernel is today's, left without layers: it runs
	 * because the handler opens only /dev/urandom after its ready point.) */
	copy_template("lua", "old");
	strip_sections("old", POLICY | LAYERS, 1);
	lua_clone_answers("old", 9);
	cr_assert_str_eq(inspect_recycle("old"),
			 "service default (template made before format 1.2: no policy)");
	cr_assert(strstr(R.out, "format     1.1,"), "inspect: %s", R.out);
	cr_assert_null(strstr(R.out, " policy "), "inspect: %s", R.out);
	tcmd("verify", "old");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);

	/* 1.2 without it: refused; 1.1 with one: refused */
	copy_template("lua", "nopol");
	strip_sections("nopol", POLICY | LAYERS, 2);
	refused("nopol", "a 1.2 template without its policy", "section policy is missing", NULL);
	copy_template("lua", "oldpol");
	strip_sections("oldpol", LAYERS, 1);
	refused("oldpol", "a 1.1 template with a policy", "section policy in a 1.1 template", NULL);

	/* what the section says is checked, not only its hash */
	static const struct {
		struct snap_policy p;
		const char *what, *says;
	} bad[] = {
		{ { .recycle = 3 }, "an unknown mode", "unknown recycle mode 3" },
		{ { .recycle = 0xffffffff }, "mode ~0", "unknown recycle mode" },
		{ { .recycle = SNAP_RECYCLE_OFF, .max_reuses = 3 }, "off with a limit", "recycling off with" },
		{ { .recycle = SNAP_RECYCLE_DEFAULT, .idle_ms = 5 }, "unset with an idle time",
		  "recycling not set with" },
		{ { .recycle = SNAP_RECYCLE_ON, .max_reuses = SNAP_POLICY_MAX_REUSES + 1 }, "too many reuses",
		  "reuses (at most" },
		{ { .recycle = SNAP_RECYCLE_ON, .idle_ms = 0xffffffff }, "an idle time of 49 days",
		  "idle time 4294967295 ms" },
		{ { .recycle = SNAP_RECYCLE_ON, .reserved = { 0, 0, 1 } }, "reserved bytes", "reserved" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "pol%zu", i);
		copy_template("lua", name);
		set_policy(name, bad[i].p);
		refused(name, bad[i].what, bad[i].says, NULL);
		cr_assert(strstr(R.err, "policy section"), "%s: %s", bad[i].what, R.err);
		cr_assert_null(strstr(R.err, "hash"), "%s: the file's hashes are right: %s", bad[i].what,
			       R.err);
		tcmd("inspect", name);
		cr_assert_eq(R.status, 1, "inspect %s: status %d", bad[i].what, R.status);
		cr_assert(one_line(R.err, R.err_len), "inspect %s: %s", bad[i].what, R.err);
	}
	/* a valid one written the same way loads */
	copy_template("lua", "good");
	set_policy("good", (struct snap_policy){ .recycle = SNAP_RECYCLE_ON, .max_reuses = 2,
						 .idle_ms = 1500 });
	cr_assert_str_eq(inspect_recycle("good"), "on (max 2 reuses, idle 1500 ms)");
	lua_clone_answers("good", 4);
	lua_clone_answers("lua", 3);
}

/* ---- root file system layers (format 1.3) ------------------------------------ */

#define ALL(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* template create NAME --store STORE --rootfs DIR -- prog... */
static void create_layered(const char *name, const char *dir, const char *const *prog)
{
	const char *av[32] = { "snapbox", "template", "create", name, "--store", STORE,
			       "--no-python", "--rootfs", dir, "--" };
	int n = 10;

	for (int i = 0; prog[i] && n < 31; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	sb(av, NULL, 60);
	cr_assert_eq(R.status, 0, "template create %s: status %d, stderr: %s", name, R.status, R.err);
}

static void mkdirs(const char *dir, const char *sub)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s", p);
}

/* A handler that reads a file of its layer before its ready point and,
 * after it, a file its layer puts over the base's, one only its layer has
 * and one only the base has. */
static const char LAYER_LUA[] =
	"local function slurp(p) local f = assert(io.open(p)) local s = f:read('a') f:close() return s end\n"
	"local before = slurp('/app/data.txt')\n"
	"local req = io.read('a')\n"
	"io.write(before, '|', slurp('/etc/motd'), '|', slurp('/app/late.txt'), '|',\n"
	"         slurp('/app/hello.lua'), '|', slurp('/app/link'), '|', req)\n";

static char *layer_tree(void)
{
	char *dir = make_tempdir(), p[1024];

	chmod(dir, 0755);
	mkdirs(dir, "app");
	mkdirs(dir, "etc");
	cr_assert_eq(write_file(dir, "app/main.lua", LAYER_LUA, strlen(LAYER_LUA), 0644), 0);
	cr_assert_eq(write_file(dir, "app/data.txt", "data", 4, 0644), 0);
	cr_assert_eq(write_file(dir, "app/late.txt", "late", 4, 0644), 0);
	cr_assert_eq(write_file(dir, "etc/motd", "layer motd\n", 11, 0644), 0);
	snprintf(p, sizeof(p), "%s/app/link", dir);
	cr_assert_eq(symlink("../etc/motd", p), 0);
	return dir;
}

static int count_dir(const char *path)
{
	char cmd[1200];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -1 '%s' | wc -l", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

/* The path of the template's layer i (its layers/ directory, sorted). */
static const char *layer_file(const char *name, int i)
{
	static char out[2400];
	char cmd[1200];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls -1 '%s' | sed -n %dp", tpath(name, "layers"), i + 1);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(cmd, sizeof(cmd), f), "%s has no layer %d", name, i);
	pclose(f);
	cmd[strcspn(cmd, "\n")] = 0;
	snprintf(out, sizeof(out), "%s/%s", tpath(name, "layers"), cmd);
	return out;
}

Test(template, a_rootfs_layer_is_in_the_template_and_its_clones)
{
	char *dir = layer_tree(), want[1500], p[1200];
	struct stat a, b;

	create_layered("lay", dir, ALL("/bin/lua", "/app/main.lua"));
	/* in a clone: the layer's files, over the base's where both have one,
	 * the base's where only it has one, a symlink followed */
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "request %d", i);
		run_clone("lay", p);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		snprintf(want, sizeof(want), "data|layer motd\n|late|print(\"hello from lua\")\n|layer motd\n|%s", p);
		cr_assert_str_eq(R.out, want);
	}
	/* the template names both layers and has them; the store has them once */
	cr_assert_eq(count_dir(tpath("lay", "layers")), 2, "base and the --rootfs layer (--no-python)");
	snprintf(p, sizeof(p), "%s/images", STORE);
	cr_assert_eq(count_dir(p), 2);
	tcmd("inspect", "lay");
	cr_assert(strstr(R.out, "(bottom)") && strstr(R.out, "(top)"), "inspect: %s", R.out);
	tcmd("verify", "lay");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	cr_assert(strstr(R.out, "2 layer images"), "verify: %s", R.out);
	{
		size_t n;
		char *j = (char *)slurp(tpath("lay", SNAP_MANIFEST_FILE), &n);
		snprintf(want, sizeof(want), "\"source\": \"--rootfs %s\"", dir);
		cr_assert(strstr(j, want) && strstr(j, "\"source\": \"base\""), "template.json: %s", j);
		free(j);
	}
	/* a second template of the same tree shares the images (the same files) */
	create_layered("lay2", dir, ALL("/bin/lua", "/app/main.lua"));
	cr_assert_eq(count_dir(p), 2, "no new image for the same content");
	cr_assert_eq(stat(layer_file("lay", 0), &a), 0);
	cr_assert_eq(stat(layer_file("lay2", 0), &b), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "one file for both templates");
	cr_assert_geq(a.st_nlink, 3, "images/, lay, lay2");
	/* removing a template leaves the images: the other one still runs */
	tcmd("rm", "lay");
	cr_assert_eq(R.status, 0, "rm: %s", R.err);
	cr_assert_eq(count_dir(p), 2);
	run_clone("lay2", "x");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "|layer motd\n|late|"), "out: %s", R.out);
	remove_tempdir(&dir);
}

/* Where mem.img has data (SEEK_DATA/SEEK_HOLE), does it hold `what`? */
static bool mem_holds(const char *name, const void *what, size_t len, uint64_t *stored)
{
	int fd = open(tpath(name, SNAP_MEM_FILE), O_RDONLY);
	struct stat st;
	bool found = false;
	off_t off = 0;

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	*stored = (uint64_t)st.st_blocks * 512;
	while (!found && off < st.st_size) {
		off_t d = lseek(fd, off, SEEK_DATA), h;
		char *buf;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		buf = malloc((size_t)(h - d));
		cr_assert_eq(pread(fd, buf, (size_t)(h - d), d), h - d);
		found = memmem(buf, (size_t)(h - d), what, len) != NULL;
		free(buf);
		off = h;
	}
	close(fd);
	return found;
}

Test(template, the_template_holds_no_root_file_system)
{
	enum { BLOB = 2 << 20 };
	char *dir = make_tempdir();
	uint8_t *blob = malloc(BLOB);
	uint64_t x = 0x853c49e6748fea9bULL ^ (uint64_t)getpid(), stored;
	char motd[128];
	size_t n;
	uint8_t *base_motd = slurp("guest/rootfs/etc/motd", &n);

	/* 2 MiB nobody reads, in a layer; the base's /etc/motd, nobody reads */
	for (size_t i = 0; i < BLOB; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		blob[i] = (uint8_t)x;
	}
	cr_assert_eq(write_file(dir, "blob.bin", blob, BLOB, 0644), 0);
	create_layered("lua", dir, LUA);
	lua_clone_answers("lua", 6);
	/* with the root file system in RAM, mem.img held all of it */
	cr_assert(!mem_holds("lua", blob + BLOB / 2, 256, &stored), "the layer's file is in mem.img");
	cr_assert_lt(stored, (uint64_t)BLOB, "mem.img stores %llu bytes", (unsigned long long)stored);
	snprintf(motd, sizeof(motd), "%.*s", (int)(n < 60 ? n : 60), (const char *)base_motd);
	cr_assert(!mem_holds("lua", motd, strlen(motd), &stored), "the base layer's /etc/motd is in mem.img");
	free(base_motd);
	free(blob);
	remove_tempdir(&dir);
}

Test(template, a_missing_or_damaged_layer_is_refused_in_one_line)
{
	char *dir = make_tempdir(), cmd[3000], other[1100];
	const char *lf;

	create("lua", LUA);
	/* missing */
	copy_template("lua", "gone");
	lf = layer_file("gone", 0);
	cr_assert_eq(unlink(lf), 0);
	refused("gone", "a missing layer", "No such file", NULL);
	cr_assert(strstr(R.err, "layers/"), "names the file: %s", R.err);
	tcmd("inspect", "gone");
	cr_assert_neq(R.status, 0);
	cr_assert(one_line(R.err, R.err_len), "inspect: %s", R.err);
	/* shorter */
	copy_template("lua", "short");
	lf = layer_file("short", 0);
	{
		struct stat st;
		cr_assert_eq(stat(lf, &st), 0);
		cr_assert_eq(truncate(lf, st.st_size - 4096), 0);
	}
	refused("short", "a truncated layer", "is not the image", NULL);
	/* another image in its place, under its name */
	cr_assert_eq(write_file(dir, "x", "another tree", 12, 0644), 0);
	snprintf(other, sizeof(other), "%s.sbfs", dir);
	sb(ARGS("image", "build", dir, "-o", other), NULL, 30);
	cr_assert_eq(R.status, 0, "%s", R.err);
	copy_template("lua", "other");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", other, layer_file("other", 0));
	cr_assert_eq(system(cmd), 0);
	refused("other", "another image in the layer's place", "is not the image", NULL);
	unlink(other);
	/* its header damaged (the id) */
	copy_template("lua", "hdr");
	flip(layer_file("hdr", 0), 96, 0x04);
	refused("hdr", "a layer whose header is damaged", "its header differs", NULL);
	/* a byte of a file damaged: not looked for per clone; verify finds it */
	copy_template("lua", "data");
	{
		struct stat st;
		cr_assert_eq(stat(layer_file("data", 0), &st), 0);
		flip(layer_file("data", 0), st.st_size - 1, 0x01);
	}
	tcmd("verify", "data");
	cr_assert_eq(R.status, 1, "verify: %d %s", R.status, R.err);
	cr_assert(one_line(R.err, R.err_len) && strstr(R.err, "layers/"), "verify: %s", R.err);
	/* and the template itself was never touched */
	lua_clone_answers("lua", 3);
	tcmd("verify", "lua");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	remove_tempdir(&dir);
}

/* The section of a type in template name: its table index. */
static uint32_t find_section(const char *name, uint32_t type, struct snap_header *h,
			     struct snap_section *t)
{
	uint32_t i;

	read_file(tpath(name, SNAP_STATE_FILE), h, sizeof(*h), 0);
	cr_assert_leq(h->n_sections, SNAP_MAX_SECTIONS);
	read_file(tpath(name, SNAP_STATE_FILE), t, h->n_sections * sizeof(t[0]), sizeof(*h));
	for (i = 0; i < h->n_sections && t[i].type != type; i++)
		;
	cr_assert_lt(i, h->n_sections, "%s has no section %u", name, type);
	return i;
}

Test(template, the_layers_section_is_checked)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_layers ly;
	uint32_t i;

	create("lua", LUA);
	i = find_section("lua", SNAP_SEC_LAYERS, &h, t);
	cr_assert_eq(h.minor, SNAP_MINOR);
	cr_assert_eq(t[i].length, sizeof(ly));
	read_file(tpath("lua", SNAP_STATE_FILE), &ly, sizeof(ly), (off_t)t[i].offset);
	cr_assert_eq(ly.n_layers, 1, "the base layer (--no-python)");
	cr_assert_eq(ly.layers[0].gpa, SB_IMG_GPA);

	/* 1.3 without it, 1.2 with it */
	copy_template("lua", "nolayers");
	strip_sections("nolayers", LAYERS, 3);
	refused("nolayers", "a 1.3 template without its layers", "section layers is missing", NULL);
	copy_template("lua", "old");
	{
		read_file(tpath("old", SNAP_STATE_FILE), &h, sizeof(h), 0);
		h.minor = 2;
		patch_file(tpath("old", SNAP_STATE_FILE), &h, sizeof(h), 0);
		resign("old");
	}
	refused("old", "a 1.2 template with layers", "section layers in a 1.2 template", NULL);

	/* what it says, with every hash right */
	static const struct {
		const char *what, *says;
		int field; /* 0: gpa + 2 MiB, 1: 9 layers, 2: no id, 3: odd size, 4: an entry past the last */
	} bad[] = {
		{ "a layer elsewhere", "layers section: layer 0 at", 0 },
		{ "nine layers", "layers section: 9 layers", 1 },
		{ "a layer without an id", "an id", 2 },
		{ "half a page", "whole pages", 3 },
		{ "an entry past the last layer", "past the last layer", 4 },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char name[32];
		struct snap_layers l = ly;

		snprintf(name, sizeof(name), "ly%zu", k);
		copy_template("lua", name);
		switch (bad[k].field) {
		case 0: l.layers[0].gpa += SB_PAGE_2M; break;
		case 1: l.n_layers = 9; break;
		case 2: memset(l.layers[0].id, 0, 16); break;
		case 3: l.layers[0].size -= 2048; break;
		case 4: l.layers[ly.n_layers].size = 4096; break;
		}
		patch_file(tpath(name, SNAP_STATE_FILE), &l, sizeof(l), (off_t)t[i].offset);
		resign(name);
		refused(name, bad[k].what, bad[k].says, NULL);
		cr_assert_null(strstr(R.err, "hash"), "%s: the hashes are right: %s", bad[k].what, R.err);
	}
	lua_clone_answers("lua", 4);
}

/* ---- overlays (format 1.4) ------------------------------------------------------ */

/* The overlay section of template name: its header and runs (runs: room
 * for SNAP_OVERLAY_MAX), and its table index in t. */
static uint32_t read_overlay(const char *name, struct snap_overlay *o, struct snap_overlay_run *runs,
			     struct snap_header *h, struct snap_section *t)
{
	uint32_t i = find_section(name, SNAP_SEC_OVERLAY, h, t);

	cr_assert_geq(t[i].length, sizeof(*o));
	read_file(tpath(name, SNAP_STATE_FILE), o, sizeof(*o), (off_t)t[i].offset);
	cr_assert_leq(o->n_runs, SNAP_OVERLAY_MAX);
	cr_assert_eq(t[i].length, sizeof(*o) + o->n_runs * sizeof(runs[0]));
	if (o->n_runs)
		read_file(tpath(name, SNAP_STATE_FILE), runs, o->n_runs * sizeof(runs[0]),
			  (off_t)(t[i].offset + sizeof(*o)));
	return i;
}

/* layers/<id>.sbfs of layer l of template name (its layers section). */
static const char *layer_of(const char *name, unsigned l)
{
	static char out[1400];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_layers ly;
	uint32_t i = find_section(name, SNAP_SEC_LAYERS, &h, t);
	char rel[64] = "layers/";

	read_file(tpath(name, SNAP_STATE_FILE), &ly, sizeof(ly), (off_t)t[i].offset);
	cr_assert_lt(l, ly.n_layers);
	for (int k = 0; k < 16; k++)
		snprintf(rel + 7 + 2 * k, 3, "%02x", ly.layers[l].id[k]);
	strcat(rel, ".sbfs");
	snprintf(out, sizeof(out), "%s", tpath(name, rel));
	return out;
}

/* How many layers template name has (its layers section). */
static uint32_t layer_count(const char *name)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_layers ly;
	uint32_t i = find_section(name, SNAP_SEC_LAYERS, &h, t);

	read_file(tpath(name, SNAP_STATE_FILE), &ly, sizeof(ly), (off_t)t[i].offset);
	return ly.n_layers;
}

static uint64_t overlay_pages(const struct snap_overlay *o, const struct snap_overlay_run *runs)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < o->n_runs; i++)
		n += runs[i].npages;
	return n;
}

static bool overlay_covers(const struct snap_overlay *o, const struct snap_overlay_run *runs,
			   uint64_t gpa)
{
	for (uint32_t i = 0; i < o->n_runs; i++)
		if (gpa >= runs[i].gpa && gpa - runs[i].gpa < (uint64_t)runs[i].npages * SNAP_PAGE)
			return true;
	return false;
}

/* What a template of format 1.3 holds: the overlay pages written into its
 * mem.img from its layers (the section itself is the caller's to drop). */
static void fill_overlays(const char *name)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;

	read_overlay(name, &o, runs, &h, t);
	for (uint32_t i = 0; i < o.n_runs; i++) {
		size_t len = (size_t)runs[i].npages * SNAP_PAGE;
		uint8_t *buf = malloc(len);

		cr_assert_not_null(buf);
		read_file(layer_of(name, runs[i].layer), buf, len, (off_t)runs[i].img_off);
		patch_file(tpath(name, SNAP_MEM_FILE), buf, len, (off_t)runs[i].gpa);
		free(buf);
	}
}

/* Bytes of the PT_LOAD segments of ELF file path that are not writable. */
static uint64_t elf_ro_bytes(const char *path)
{
	size_t len;
	uint8_t *b = slurp(path, &len);
	uint64_t phoff, sum = 0;
	uint16_t phentsize, phnum;

	cr_assert_geq(len, 64, "%s", path);
	memcpy(&phoff, b + 32, 8);
	memcpy(&phentsize, b + 54, 2);
	memcpy(&phnum, b + 56, 2);
	cr_assert_leq(phoff + (uint64_t)phnum * phentsize, len);
	for (uint16_t i = 0; i < phnum; i++) {
		const uint8_t *ph = b + phoff + (uint64_t)i * phentsize;
		uint32_t type, flags;
		uint64_t filesz;

		memcpy(&type, ph, 4);
		memcpy(&flags, ph + 4, 4);
		memcpy(&filesz, ph + 32, 8);
		if (type == 1 && !(flags & 2))
			sum += filesz;
	}
	free(b);
	return sum;
}

Test(template, the_lua_binary_is_mapped_from_its_layer_not_stored)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;
	struct snap_pages_header ph;
	const char *lua = build_file("guest/rootfs/bin/lua");
	uint64_t ro = elf_ro_bytes(lua), pages, stored, nonzero;
	size_t n;
	uint8_t *bin = slurp(lua, &n);
	char want[96];

	create("lua", LUA);
	read_overlay("lua", &o, runs, &h, t);
	cr_assert_eq(h.minor, SNAP_MINOR);
	pages = overlay_pages(&o, runs);
	/* the text and read-only data of /bin/lua (all but partial end pages) */
	cr_assert_geq(o.n_runs, 1, "no overlay run");
	cr_assert_geq(pages * SNAP_PAGE + 2 * SNAP_PAGE, ro, "%llu overlay pages, lua has %llu "
		      "read-only bytes", (unsigned long long)pages, (unsigned long long)ro);
	/* not in mem.img: a piece of its text, and the pages stored shrank by them */
	cr_assert(!mem_holds("lua", bin + 0x2000, 256, &stored), "lua's text is in mem.img");
	read_file(tpath("lua", SNAP_PAGES_FILE), &ph, sizeof(ph), 0);
	nonzero = ph.n_pages - ph.zero_pages;
	cr_assert_leq(stored, (nonzero - pages) * SNAP_PAGE + 16384,
		      "mem.img stores %llu bytes for %llu non-zero pages, %llu of them overlays",
		      (unsigned long long)stored, (unsigned long long)nonzero, (unsigned long long)pages);
	/* clones run it from there; verify checks those pages in the image */
	for (int k = 0; k < 3; k++)
		lua_clone_answers("lua", 5 + k);
	tcmd("verify", "lua");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	snprintf(want, sizeof(want), "(%llu of them in the layers)", (unsigned long long)pages);
	cr_assert(strstr(R.out, want), "verify: %s", R.out);
	tcmd("inspect", "lua");
	snprintf(want, sizeof(want), "overlay    %u runs, %llu pages", o.n_runs, (unsigned long long)pages);
	cr_assert(strstr(R.out, want), "inspect: %s", R.out);
	{
		char *j = (char *)slurp(tpath("lua", SNAP_MANIFEST_FILE), &n);

		snprintf(want, sizeof(want), "\"overlay\": {\"runs\": %u, \"pages\": %llu,", o.n_runs,
			 (unsigned long long)pages);
		cr_assert(strstr(j, want), "template.json: %s", j);
		free(j);
	}
	free(bin);
}

/* selfpatch's line: table <addr> <before> <after> answer <addr> <before> <after> */
static void selfpatch_clone(const char *name, const char *req, uint64_t *taddr, uint64_t *caddr)
{
	unsigned tb, ta;
	int a0, a1;

	run_clone(name, req);
	cr_assert_eq(R.status, 0, "selfpatch: status %d, stderr: %s", R.status, R.err);
	cr_assert_eq(sscanf(R.out, "table %" SCNx64 " %u %u answer %" SCNx64 " %d %d", taddr, &tb, &ta,
			    caddr, &a0, &a1), 6, "selfpatch said: %s", R.out);
	/* what the template holds, then the clone's own writes */
	cr_assert_eq(tb, 0x5a, "the table's byte before the write: %u (%s)", tb, R.out);
	cr_assert_eq(a0, 42, "the code before the patch returned %d (%s)", a0, R.out);
	cr_assert_eq(ta, (unsigned char)req[0], "%s", R.out);
	cr_assert_eq(a1, (int)strlen(req), "the patched code returned %d (%s)", a1, R.out);
}

Test(template, a_clone_writing_overlay_pages_gets_its_own_copy)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;
	struct tsum before;
	uint64_t taddr, caddr;
	off_t lsize, lsize2;
	uint64_t lhash, lhash2;
	const char *lf;

	create("sp", PROG("/bin/selfpatch"));
	read_overlay("sp", &o, runs, &h, t);
	tsum("sp", &before);
	lf = layer_of("sp", 0);
	lhash = file_hash(lf, &lsize);
	selfpatch_clone("sp", "A", &taddr, &caddr);
	/* both writes went to pages the template maps from its layer */
	cr_assert(overlay_covers(&o, runs, taddr & ~(SNAP_PAGE - 1)), "table at %#" PRIx64
		  " is not in an overlay run", taddr);
	cr_assert(overlay_covers(&o, runs, caddr & ~(SNAP_PAGE - 1)), "code at %#" PRIx64
		  " is not in an overlay run", caddr);
	/* the next clones see the original bytes */
	selfpatch_clone("sp", "BB", &taddr, &caddr);
	selfpatch_clone("sp", "hello", &taddr, &caddr);
	/* nothing was written: the template, its image, the store's image */
	assert_unchanged("sp", &before);
	lhash2 = file_hash(lf, &lsize2);
	cr_assert(lhash2 == lhash && lsize2 == lsize, "the layer image changed");
	tcmd("verify", "sp");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
}

Test(template, a_damaged_short_or_missing_image_under_overlays_is_refused)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;
	char want[64];
	uint64_t pg;

	create("lua", LUA);
	read_overlay("lua", &o, runs, &h, t);
	cr_assert_geq(o.n_runs, 1);
	pg = runs[0].gpa / SNAP_PAGE + 1;
	/* a byte of an overlay page damaged in the image: verify names the page */
	copy_template("lua", "img");
	flip(layer_of("img", runs[0].layer), (off_t)(runs[0].img_off + SNAP_PAGE + 123), 0x08);
	tcmd("verify", "img");
	cr_assert_eq(R.status, 1, "verify: %d %s", R.status, R.err);
	snprintf(want, sizeof(want), "page %" PRIu64 " (an overlay page)", pg);
	cr_assert(one_line(R.err, R.err_len) && strstr(R.err, want) && strstr(R.err, "layers/") &&
		  strstr(R.err, "damaged"), "verify: %s", R.err);
	/* data in mem.img where an overlay maps the layer */
	copy_template("lua", "memdata");
	flip(tpath("memdata", SNAP_MEM_FILE), (off_t)(pg * SNAP_PAGE + 9), 0x01);
	tcmd("verify", "memdata");
	cr_assert_eq(R.status, 1, "verify: %d %s", R.status, R.err);
	snprintf(want, sizeof(want), "page %" PRIu64 " ", pg);
	cr_assert(one_line(R.err, R.err_len) && strstr(R.err, want) && strstr(R.err, "holds data"),
		  "verify: %s", R.err);
	/* the image cut inside a run, or gone: no clone starts, one line */
	copy_template("lua", "cut");
	cr_assert_eq(truncate(layer_of("cut", runs[0].layer), (off_t)(runs[0].img_off + SNAP_PAGE)), 0);
	refused("cut", "the image cut inside an overlay run", "is not the image", NULL);
	copy_template("lua", "gone");
	cr_assert_eq(unlink(layer_of("gone", runs[0].layer)), 0);
	refused("gone", "the image missing", "No such file", NULL);
	/* the original still runs and verifies */
	lua_clone_answers("lua", 8);
	tcmd("verify", "lua");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
}

/* Rewrite template name's overlay section (the last one in state.bin) with
 * o and n runs, the file cut or grown to fit, every hash recomputed. */
static void set_overlay(const char *name, const struct snap_overlay *o,
			const struct snap_overlay_run *runs, uint32_t n)
{
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	uint32_t i;

	/* a 1.4 template (no write set after the overlay section): the
	 * overlay section is the last one, cut or grown here */
	strip_sections(name, 1u << SNAP_SEC_HOTSET, 4);
	i = find_section(name, SNAP_SEC_OVERLAY, &h, t);
	cr_assert_eq(i, h.n_sections - 1, "overlay is not the last section");
	t[i].length = sizeof(*o) + n * sizeof(runs[0]);
	cr_assert_eq(truncate(tpath(name, SNAP_STATE_FILE), (off_t)(t[i].offset + t[i].length)), 0);
	patch_file(tpath(name, SNAP_STATE_FILE), o, sizeof(*o), (off_t)t[i].offset);
	if (n)
		patch_file(tpath(name, SNAP_STATE_FILE), runs, n * sizeof(runs[0]),
			   (off_t)(t[i].offset + sizeof(*o)));
	patch_file(tpath(name, SNAP_STATE_FILE), t, h.n_sections * sizeof(t[0]), sizeof(h));
	resign(name);
}

#define OVERLAY (1u << SNAP_SEC_OVERLAY)

Test(template, the_overlay_section_is_checked)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX], r[4];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;
	struct stat st, st0;
	uint64_t lsize;

	create("lua", LUA);
	read_overlay("lua", &o, runs, &h, t);
	cr_assert_geq(o.n_runs, 1);
	cr_assert_geq(runs[0].npages, 4);
	cr_assert_eq(stat(layer_of("lua", 0), &st), 0);
	lsize = (uint64_t)st.st_size;

	/* 1.4 without it; 1.3 with it */
	copy_template("lua", "none");
	strip_sections("none", OVERLAY, 4);
	refused("none", "a 1.4 template without its overlay section", "section overlay is missing", NULL);
	copy_template("lua", "v13");
	read_file(tpath("v13", SNAP_STATE_FILE), &h, sizeof(h), 0);
	h.minor = 3;
	patch_file(tpath("v13", SNAP_STATE_FILE), &h, sizeof(h), 0);
	resign("v13");
	refused("v13", "a 1.3 template with overlays", "section overlay in a 1.3 template", NULL);

	/* a template of format 1.3 (its overlay pages in mem.img) still runs */
	copy_template("lua", "old");
	strip_sections("old", OVERLAY, 3);
	lua_clone_answers("old", 11);
	tcmd("verify", "old");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	tcmd("inspect", "old");
	cr_assert(strstr(R.out, "overlay    none (template made before format 1.4)"), "%s", R.out);
	cr_assert_eq(stat(tpath("old", SNAP_MEM_FILE), &st), 0);
	cr_assert_eq(stat(tpath("lua", SNAP_MEM_FILE), &st0), 0);
	cr_assert_gt(st.st_blocks, st0.st_blocks, "the 1.3 template stores more");

	/* what the runs say, every hash right */
	const uint64_t mem = h.mem_size;
	struct {
		const char *what, *says;
		struct snap_overlay o;
		uint32_t n;
		struct snap_overlay_run r[2];
	} bad[] = {
		{ "too many runs", "runs in", { SNAP_OVERLAY_MAX + 1, 0 }, 1, { runs[0] } },
		{ "a count beyond the section", "runs in", { 2, 0 }, 1, { runs[0] } },
		{ "reserved bytes", "reserved", { 1, 7 }, 1, { runs[0] } },
		{ "no pages", "whole pages", { 1, 0 }, 1, { { runs[0].gpa, runs[0].img_off, 0, 0, 0 } } },
		{ "an unaligned gpa", "whole pages", { 1, 0 }, 1,
		  { { runs[0].gpa + 8, runs[0].img_off, 4, 0, 0 } } },
		{ "an unaligned image offset", "whole pages", { 1, 0 }, 1,
		  { { runs[0].gpa, runs[0].img_off + 512, 4, 0, 0 } } },
		{ "flags", "whole pages", { 1, 0 }, 1, { { runs[0].gpa, runs[0].img_off, 4, 0, 1 } } },
		{ "below 64 KiB", "below the lowest RAM", { 1, 0 }, 1, { { 0, runs[0].img_off, 4, 0, 0 } } },
		{ "past the end of RAM", "outside RAM", { 1, 0 }, 1,
		  { { mem - 2 * SNAP_PAGE, runs[0].img_off, 4, 0, 0 } } },
		{ "a huge run", "outside RAM", { 1, 0 }, 1,
		  { { runs[0].gpa, runs[0].img_off, UINT32_MAX, 0, 0 } } },
		{ "past the end of the image", "outside the template's layers", { 1, 0 }, 1,
		  { { runs[0].gpa, lsize - 2 * SNAP_PAGE, 4, 0, 0 } } },
		{ "a layer the template lacks", "outside the template's layers", { 1, 0 }, 1,
		  { { runs[0].gpa, runs[0].img_off, 4, SB_MAX_LAYERS - 1, 0 } } },
		{ "overlapping runs", "overlaps the one before", { 2, 0 }, 2,
		  { { runs[0].gpa, runs[0].img_off, 4, 0, 0 },
		    { runs[0].gpa + 3 * SNAP_PAGE, runs[0].img_off, 4, 0, 0 } } },
		{ "runs out of order", "out of order", { 2, 0 }, 2,
		  { { runs[0].gpa + 8 * SNAP_PAGE, runs[0].img_off, 4, 0, 0 },
		    { runs[0].gpa, runs[0].img_off, 4, 0, 0 } } },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char name[32];

		snprintf(name, sizeof(name), "ov%zu", k);
		copy_template("lua", name);
		memcpy(r, bad[k].r, sizeof(bad[k].r));
		set_overlay(name, &bad[k].o, r, bad[k].n);
		refused(name, bad[k].what, bad[k].says, NULL);
		cr_assert(strstr(R.err, "overlay section"), "%s: %s", bad[k].what, R.err);
		cr_assert_null(strstr(R.err, "hash"), "%s: the hashes are right: %s", bad[k].what, R.err);
	}
	/* and rewritten as it was, it loads and runs */
	copy_template("lua", "same");
	set_overlay("same", &o, runs, o.n_runs);
	lua_clone_answers("same", 6);
	lua_clone_answers("lua", 4);
}

Test(template, overlays_come_from_the_layer_that_holds_the_program)
{
	static struct snap_overlay_run runs[SNAP_OVERLAY_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_overlay o;
	char *dir = make_tempdir();
	uint64_t taddr, caddr;
	size_t n;
	uint8_t *bin = slurp(build_file("guest/rootfs/bin/selfpatch"), &n);

	/* the same program in a layer over the base: a lookup finds this copy */
	chmod(dir, 0755);
	mkdirs(dir, "bin");
	cr_assert_eq(write_file(dir, "bin/selfpatch", bin, n, 0755), 0);
	create_layered("top", dir, PROG("/bin/selfpatch"));
	read_overlay("top", &o, runs, &h, t);
	cr_assert_geq(o.n_runs, 1);
	for (uint32_t i = 0; i < o.n_runs; i++)
		cr_assert_eq(runs[i].layer, layer_count("top") - 1, "run %u maps layer %u, not the top one",
			     i, runs[i].layer);
	selfpatch_clone("top", "x", &taddr, &caddr);
	cr_assert(overlay_covers(&o, runs, caddr & ~(SNAP_PAGE - 1)));
	selfpatch_clone("top", "yz", &taddr, &caddr);
	tcmd("verify", "top");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	free(bin);
	remove_tempdir(&dir);
}

/* ---- dynamic programs and /tmp ------------------------------------------------ */

/* A glibc program under its ld.so (tests/tests.mk: dynroot) makes a template
 * like a static one.  /tmp lives in the sandbox's RAM: what the boot wrote
 * is in every clone; what a clone writes is its own, and gone in the next. */
Test(template, dynamic_program_clones_each_have_their_own_tmp)
{
	const char *names[] = { "first", "second", "third" };
	char want[256];

	create_layered("dyn", build_file("tests/dynroot"), ALL("/bin/dyncheck", "clone"));
	for (int i = 0; i < 3; i++) {
		char in[32];
		snprintf(in, sizeof(in), "%s\n", names[i]);
		run_clone("dyn", in);
		cr_assert_eq(R.status, 0, "clone %d: stdout %s stderr %s", i, R.out, R.err);
		/* sorted like the program sorts: boot.txt < first < second < third */
		snprintf(want, sizeof(want), "tmp ../ ./ boot.txt %s\nboot.txt made at boot\n", names[i]);
		cr_assert_str_eq(R.out, want, "clone %d: stderr %s", i, R.err);
	}
}

/* ---- the write set (format 1.5) ------------------------------------------------ */

/* template create NAME --warmup-request FILE -- prog (FILE under STORE) */
static void create_trained(const char *name, const char *file, const char *const *prog)
{
	char path[4200];
	const char *av[32] = { "snapbox", "template", "create", name, "--store", STORE,
			       "--no-python", "--warmup-request", path, "--" };
	int n = 10;

	snprintf(path, sizeof(path), "%s/%s", STORE, file);
	for (int i = 0; prog[i] && n < 31; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	sb(av, NULL, 60);
}

/* The write set of template name: header, ranges (room for SNAP_HOTSET_MAX),
 * its table index in t. */
static uint32_t read_hotset(const char *name, struct snap_hotset *hs, struct snap_hot_range *r,
			    struct snap_header *h, struct snap_section *t)
{
	uint32_t i = find_section(name, SNAP_SEC_HOTSET, h, t);

	cr_assert_geq(t[i].length, sizeof(*hs));
	read_file(tpath(name, SNAP_STATE_FILE), hs, sizeof(*hs), (off_t)t[i].offset);
	cr_assert_leq(hs->n_ranges, SNAP_HOTSET_MAX);
	cr_assert_eq(t[i].length, sizeof(*hs) + hs->n_ranges * sizeof(r[0]));
	if (hs->n_ranges)
		read_file(tpath(name, SNAP_STATE_FILE), r, hs->n_ranges * sizeof(r[0]),
			  (off_t)(t[i].offset + sizeof(*hs)));
	return i;
}

Test(template, the_write_set_is_recorded_by_a_training_request_and_checked)
{
	static struct snap_hot_range r[SNAP_HOTSET_MAX], bad[SNAP_HOTSET_MAX];
	struct snap_header h;
	struct snap_section t[SNAP_MAX_SECTIONS];
	struct snap_hotset hs, hs0;
	uint64_t pages = 0;
	uint32_t i;

	/* without training: an empty write set */
	create("lua", LUA);
	read_hotset("lua", &hs0, r, &h, t);
	cr_assert_eq(h.minor, SNAP_MINOR);
	cr_assert_eq(hs0.n_ranges, 0);
	cr_assert_eq(hs0.flags, 0);
	tcmd("inspect", "lua");
	cr_assert(strstr(R.out, "hotset     none (made without --warmup-request)"), "%s", R.out);

	/* a missing training request: one line, no template */
	create_trained("nofile", "no-such-request.json", LUA);
	cr_assert_neq(R.status, 0);
	cr_assert(one_line(R.err, R.err_len) && strstr(R.err, "no-such-request.json"), "%s", R.err);
	cr_assert_neq(access(tpath("nofile", NULL), F_OK), 0, "a template was left");

	/* trained: the pages the request wrote, coalesced, sorted, in RAM */
	cr_assert_eq(write_file(STORE, "train.json", "{\"n\": 21}", 9, 0644), 0);
	create_trained("hot", "train.json", LUA);
	cr_assert_eq(R.status, 0, "create: %s", R.err);
	cr_assert(strstr(R.out, "write set: "), "%s", R.out);
	i = read_hotset("hot", &hs, r, &h, t);
	cr_assert_eq(i, h.n_sections - 1, "the write set is the last section");
	cr_assert_eq(hs.flags, SNAP_HOTSET_TRAINED);
	cr_assert_geq(hs.n_ranges, 1);
	for (uint32_t k = 0; k < hs.n_ranges; k++) {
		cr_assert(r[k].npages >= 1 && r[k].gpa % SNAP_PAGE == 0 && !r[k].flags);
		cr_assert_leq(r[k].gpa + r[k].npages * SNAP_PAGE, h.mem_size);
		if (k)
			cr_assert_gt(r[k].gpa, r[k - 1].gpa + r[k - 1].npages * SNAP_PAGE,
				     "range %u: not sorted, or not coalesced", k);
		pages += r[k].npages;
	}
	cr_assert_eq(pages, hs.pages);
	/* a Lua request writes pages (its heap, the kernel's buffers), not many */
	cr_assert(pages >= 4 && pages < 4096, "%llu pages", (unsigned long long)pages);
	tcmd("inspect", "hot");
	{
		char want[96];

		snprintf(want, sizeof(want), "hotset     %u ranges, %llu pages", hs.n_ranges,
			 (unsigned long long)hs.pages);
		cr_assert(strstr(R.out, want), "inspect: %s", R.out);
	}
	{
		size_t n;
		uint8_t *raw = slurp(tpath("hot", SNAP_MANIFEST_FILE), &n);
		char *js = calloc(1, n + 1);
		char want[128], id[40];

		memcpy(js, raw, n);
		free(raw);

		snprintf(want, sizeof(want), "\"hotset\": {\"trained\": true, \"ranges\": %u, \"pages\": %llu}",
			 hs.n_ranges, (unsigned long long)hs.pages);
		cr_assert(strstr(js, want), "template.json: %s", js);
		/* the manifest names the template's final id (state.bin rewritten) */
		tcmd("inspect", "hot");
		cr_assert(sscanf(strstr(R.out, "id         ") + 11, "%32s", id) == 1);
		cr_assert(strstr(js, id), "template.json has not the id %s: %s", id, js);
		free(js);
	}
	tcmd("verify", "hot");
	cr_assert_eq(R.status, 0, "verify: %s", R.err);
	lua_clone_answers("hot", 9);
	lua_clone_answers("hot", 33);

	/* damaged ranges, every hash right: refused in one line */
	static const struct {
		const char *what, *says;
		int how; /* 0: zero pages, 1: wrong sum, 2: outside RAM, 3: out of order, 4: flags, 5: count */
	} cases[] = {
		{ "an empty range", "hotset section: range 0", 0 },
		{ "a wrong page count", "pages in its ranges", 1 },
		{ "a range outside RAM", "hotset section: range", 2 },
		{ "ranges out of order", "hotset section: range", 3 },
		{ "unknown flags", "hotset section: unknown flags", 4 },
		{ "more ranges than bytes", "hotset section:", 5 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char name[32];
		struct snap_hotset x = hs;

		memcpy(bad, r, hs.n_ranges * sizeof(r[0]));
		switch (cases[k].how) {
		case 0: x.pages -= bad[0].npages; bad[0].npages = 0; break;
		case 1: x.pages++; break;
		case 2: bad[hs.n_ranges - 1].gpa = h.mem_size; break;
		case 3: bad[0].gpa = bad[hs.n_ranges - 1].gpa + bad[hs.n_ranges - 1].npages * SNAP_PAGE;
			x.n_ranges = hs.n_ranges >= 2 ? hs.n_ranges : 1;
			if (hs.n_ranges < 2) /* one range: make it two, the second below the first */
				bad[0].gpa = h.mem_size - SNAP_PAGE, bad[0].npages = 1;
			break;
		case 4: x.flags = 0x80; break;
		case 5: x.n_ranges++; break;
		}
		snprintf(name, sizeof(name), "hs%zu", k);
		copy_template("hot", name);
		patch_file(tpath(name, SNAP_STATE_FILE), &x, sizeof(x), (off_t)t[i].offset);
		patch_file(tpath(name, SNAP_STATE_FILE), bad, hs.n_ranges * sizeof(bad[0]),
			   (off_t)(t[i].offset + sizeof(x)));
		resign(name);
		if (cases[k].how == 3 && hs.n_ranges < 2)
			continue; /* nothing out of order to make */
		refused(name, cases[k].what, cases[k].says, NULL);
		cr_assert_null(strstr(R.err, "hash"), "%s: the hashes are right: %s", cases[k].what, R.err);
	}

	/* 1.5 without it, 1.4 with it; a 1.4 template (none) still runs */
	copy_template("hot", "none");
	{
		struct snap_header hh;
		struct snap_section tt[SNAP_MAX_SECTIONS];
		uint32_t n = 0;

		read_file(tpath("none", SNAP_STATE_FILE), &hh, sizeof(hh), 0);
		read_file(tpath("none", SNAP_STATE_FILE), tt, hh.n_sections * sizeof(tt[0]), sizeof(hh));
		for (uint32_t k = 0; k < hh.n_sections; k++)
			if (tt[k].type != SNAP_SEC_HOTSET)
				tt[n++] = tt[k];
		hh.n_sections = n;
		patch_file(tpath("none", SNAP_STATE_FILE), tt, n * sizeof(tt[0]), sizeof(hh));
		patch_file(tpath("none", SNAP_STATE_FILE), &hh, sizeof(hh), 0);
		resign("none");
	}
	refused("none", "a 1.5 template without its write set", "section hotset is missing", NULL);
	copy_template("hot", "v14");
	read_file(tpath("v14", SNAP_STATE_FILE), &h, sizeof(h), 0);
	h.minor = 4;
	patch_file(tpath("v14", SNAP_STATE_FILE), &h, sizeof(h), 0);
	resign("v14");
	refused("v14", "a 1.4 template with a write set", "section hotset in a 1.4 template", NULL);
	copy_template("hot", "old");
	strip_sections("old", 0, 4);
	lua_clone_answers("old", 12);
	tcmd("inspect", "old");
	cr_assert(strstr(R.out, "hotset     none (template made before format 1.5)"), "%s", R.out);
}
