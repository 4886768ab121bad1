/* SPDX-License-Identifier: MIT */
/*
 * Python in the sandbox (issue 10), end to end and on the backend under test
 * ($SNAPBOX_TEST_BACKEND): Debian's CPython from the Python layer
 * (build/guest/python3.11.sbfs, mk/python.mk) runs /app/handler.py (the
 * base layer's, guest/rootfs/app/handler.py) or a user's program from a
 * --rootfs layer, from a template saved at its first read of stdin.  Every
 * answer is checked against values computed here (fib, sums, the regex's
 * words, SHA-256 by sha256sum, base64 by hand), never against a recorded
 * output.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "run.h"

extern char **environ;

static struct run_result R;
static char *STORE, *DIR_;

static void init(void)
{
	STORE = make_tempdir();
}

static void fini(void)
{
	run_result_free(&R);
	remove_tempdir(&STORE);
	remove_tempdir(&DIR_);
}

TestSuite(python, .init = init, .fini = fini, .timeout = 240);

#define ARGS(...) ((const char *const[]){ "snapbox", __VA_ARGS__, NULL })
#define HANDLER ((const char *const[]){ "/usr/bin/python3", "/app/handler.py", NULL })

/* ---- helpers ---------------------------------------------------------------- */

static void sb(const char *const *argv, const char *in, double limit)
{
	if (!test_on_proc())
		require_kvm();
	run_checked(argv, in, test_time(limit), &R);
}

/* template create NAME --mem 512M [--rootfs DIR] -- prog..., asserted to work */
static void create(const char *name, const char *rootfs, const char *const *prog)
{
	const char *av[24];
	int n = 0;

	av[n++] = "snapbox";
	av[n++] = "template";
	av[n++] = "create";
	av[n++] = name;
	av[n++] = "--store";
	av[n++] = STORE;
	av[n++] = "--mem";
	av[n++] = "512M";
	if (rootfs) {
		av[n++] = "--rootfs";
		av[n++] = rootfs;
	}
	av[n++] = "--";
	for (int i = 0; prog[i] && n < 23; i++)
		av[n++] = prog[i];
	av[n] = NULL;
	sb(av, NULL, 120);
	cr_assert_eq(R.status, 0, "template create %s: status %d, stderr: %s", name, R.status, R.err);
}

/* Template `name`: python3 running /app/<script> (text) from a fresh
 * directory DIR_, whose app/ also holds `lib` (lib_text) unless it is NULL. */
static void create_app(const char *name, const char *script, const char *text, const char *lib,
		       const char *lib_text)
{
	char app[1100], path[256];

	DIR_ = make_tempdir();
	cr_assert(DIR_);
	snprintf(app, sizeof(app), "%s/app", DIR_);
	cr_assert_eq(mkdir(app, 0755), 0);
	cr_assert_eq(write_file(app, script, text, strlen(text), 0644), 0);
	if (lib)
		cr_assert_eq(write_file(app, lib, lib_text, strlen(lib_text), 0644), 0);
	snprintf(path, sizeof(path), "/app/%s", script);
	create(name, DIR_, ((const char *const[]){ "/usr/bin/python3", path, NULL }));
}

static void run_clone(const char *name, const char *in)
{
	sb(ARGS("run", "--store", STORE, "--timeout", "30", name), in, 60);
}

static uint64_t fib(int n)
{
	uint64_t a = 0, b = 1;

	for (int i = 0; i < n; i++) {
		uint64_t t = a + b;
		a = b;
		b = t;
	}
	return a;
}

static uint64_t isqrt(uint64_t n)
{
	uint64_t r = 0;

	while ((r + 1) * (r + 1) <= n)
		r++;
	return r;
}

static void b64(const char *s, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)s[i + 2];
		out[o++] = al[v >> 18 & 63];
		out[o++] = al[v >> 12 & 63];
		out[o++] = i + 1 < n ? al[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? al[v & 63] : '=';
	}
	out[o] = 0;
}

/* SHA-256 of s as hex, by the host's sha256sum (coreutils) */
static void sha256_hex(const char *s, char out[65])
{
	char path[1200], cmd[1300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sha-input", STORE);
	cr_assert_eq(write_file(STORE, "sha-input", s, strlen(s), 0644), 0);
	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%64s", out), 1);
	pclose(f);
}

/* The words [a-z0-9]+ of lower(text), as a JSON array */
static json_t *words_of(const char *text)
{
	json_t *a = json_array();
	char w[256];
	size_t k = 0;

	for (const char *p = text;; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (k < sizeof(w) - 1)
				w[k++] = c;
			continue;
		}
		if (k) {
			w[k] = 0;
			json_array_append_new(a, json_string(w));
			k = 0;
		}
		if (!*p)
			break;
	}
	return a;
}

static json_int_t int_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
	return json_integer_value(v);
}

/*
 * out: what handler.py answered to {"n": n, "text": text}.  Check every
 * field; the token (16 hex digits) is returned in token[17] for the caller.
 */
static void check_answer(const char *out, int n, const char *text, char token[17])
{
	json_error_t je;
	json_t *j = json_loads(out, 0, &je), *want_words;
	char sha[65], b[512];
	const char *s;

	cr_assert_not_null(j, "not JSON: '%s' (%s)", out, je.text);
	cr_assert_eq(int_of(j, "n"), n, "%s", out);
	cr_assert_eq((uint64_t)int_of(j, "fib"), fib(n), "%s", out);
	cr_assert_eq(int_of(j, "sum"), (json_int_t)n * (n + 1) / 2, "%s", out);
	cr_assert_eq((uint64_t)int_of(j, "isqrt"), isqrt((uint64_t)n), "%s", out);
	cr_assert_eq(int_of(j, "pid"), 1, "%s", out);
	want_words = words_of(text);
	cr_assert(json_equal(json_object_get(j, "words"), want_words), "words of '%s': %s", text, out);
	json_decref(want_words);
	sha256_hex(text, sha);
	s = json_string_value(json_object_get(j, "sha256"));
	cr_assert(s && !strcmp(s, sha), "sha256 of '%s' is %s: %s", text, sha, out);
	b64(text, b);
	s = json_string_value(json_object_get(j, "b64"));
	cr_assert(s && !strcmp(s, b), "base64 of '%s' is %s: %s", text, b, out);
	s = json_string_value(json_object_get(j, "token"));
	cr_assert(s && strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16, "token: %s", out);
	if (token)
		memcpy(token, s, 17);
	json_decref(j);
}

/* A whole file as a string */
static char *slurp_str(const char *path)
{
	size_t n;
	uint8_t *b = slurp(path, &n);
	char *s = malloc(n + 1);

	memcpy(s, b, n);
	s[n] = 0;
	free(b);
	return s;
}

static void request(char *buf, size_t len, int n, const char *text)
{
	snprintf(buf, len, "{\"n\": %d, \"text\": \"%s\"}", n, text);
}

/* ---- 1. known requests --------------------------------------------------------- */

Test(python, the_handler_answers_known_requests)
{
	static const struct {
		int n;
		const char *text;
	} req[] = {
		{ 0, "" },
		{ 1, "x" },
		{ 30, "Hello, Snapbox 2026!" },
		{ 90, "The quick brown fox jumps over the lazy dog" },
		{ 77, "ab  CD--ef_9 z" },
	};
	char in[256];

	create("py", NULL, HANDLER);
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		request(in, sizeof(in), req[i].n, req[i].text);
		run_clone("py", in);
		cr_assert_eq(R.status, 0, "%s: status %d, stderr: %s", in, R.status, R.err);
		cr_assert_eq(R.err_len, 0, "%s: stderr: %s", in, R.err);
		cr_assert(R.out_len && R.out[R.out_len - 1] == '\n', "one line: %s", R.out);
		check_answer(R.out, req[i].n, req[i].text, NULL);
	}
	/* the defaults (an empty object) */
	run_clone("py", "{}");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	check_answer(R.out, 10, "hello snapbox", NULL);
	/* a bad request: the handler's own answer and status */
	run_clone("py", "not json");
	cr_assert_eq(R.status, 1, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "{\"error\": \"Expecting value"), "out: %s", R.out);
	run_clone("py", "{\"n\": -3}");
	cr_assert_eq(R.status, 1, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "n must be an integer"), "out: %s", R.out);
}

/* ---- 2. an exception ----------------------------------------------------------- */

Test(python, a_raising_handler_prints_its_traceback_and_exits_1)
{
	create("py", NULL, HANDLER);
	run_clone("py", "{\"raise\": \"boom 42\"}");
	cr_assert_eq(R.status, 1, "status %d, stderr: %s", R.status, R.err);
	cr_assert_eq(R.out_len, 0, "stdout: %s", R.out);
	cr_assert(!strncmp(R.err, "Traceback (most recent call last):\n", 35), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "File \"/app/handler.py\", line "), "stderr: %s", R.err);
	cr_assert(strstr(R.err, "in answer\n"), "stderr: %s", R.err);
	cr_assert(R.err_len > 22 && !strcmp(R.err + R.err_len - 22, "RuntimeError: boom 42\n"),
		  "stderr: %s", R.err);
	/* the template is unharmed: the next clone answers */
	run_clone("py", "{\"n\": 12}");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	check_answer(R.out, 12, "hello snapbox", NULL);
}

/* ---- 3. sockets and threads: CPython's own errors, no hang ---------------------- */

static const char MISUSE_PY[] =
	"import socket, sys, threading\n"
	"what = sys.stdin.read().strip()\n" /* the ready point */
	"print('start', what, flush=True)\n"
	"if what == 'socket':\n"
	"    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
	"elif what == 'connect':\n"
	"    socket.create_connection(('127.0.0.1', 80), timeout=1)\n"
	"elif what == 'thread':\n"
	"    t = threading.Thread(target=print, args=('in a thread',))\n"
	"    t.start()\n"
	"    t.join()\n"
	"print('not reached')\n";

Test(python, sockets_and_threads_fail_with_a_clear_error_and_no_hang)
{
	static const struct {
		const char *req, *says;
	} c[] = {
		{ "socket", "OSError: [Errno 38] Function not implemented\n" },
		{ "connect", "OSError: [Errno 38] Function not implemented\n" },
		{ "thread", "RuntimeError: can't start new thread\n" },
	};

	create_app("misuse", "misuse.py", MISUSE_PY, NULL, NULL);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char start[64];

		run_clone("misuse", c[i].req);
		cr_assert(!R.timed_out, "%s: hung", c[i].req);
		cr_assert_eq(R.status, 1, "%s: status %d, stderr: %s", c[i].req, R.status, R.err);
		snprintf(start, sizeof(start), "start %s\n", c[i].req);
		cr_assert_str_eq(R.out, start, "%s: stderr: %s", c[i].req, R.err);
		cr_assert(strstr(R.err, "Traceback (most recent call last):\n"), "%s: %s", c[i].req, R.err);
		cr_assert(R.err_len > strlen(c[i].says) &&
				  !strcmp(R.err + R.err_len - strlen(c[i].says), c[i].says),
			  "%s: want '%s' at the end of stderr: %s", c[i].req, c[i].says, R.err);
	}
}

/* ---- 4. 32 concurrent clones ---------------------------------------------------- */

Test(python, thirty_two_concurrent_clones_give_distinct_correct_answers)
{
	enum { N = 32 };
	pid_t pid[N];
	char path[N][3][1100], token[N][17];
	int status[N], left = N;
	double deadline;

	create("py", NULL, HANDLER);
	for (int i = 0; i < N; i++) {
		char req[128], text[64];
		posix_spawn_file_actions_t fa;
		const char *av[] = { snapbox_bin(), "run", "--store", STORE, "--timeout", "120", "py", NULL };

		snprintf(text, sizeof(text), "clone %d of %d", i, N);
		request(req, sizeof(req), 20 + i, text);
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
		status[i] = -1;
	}
	deadline = test_now() + test_time(120);
	while (left && test_now() < deadline) {
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
	cr_assert_eq(left, 0, "%d clones still running after %.0f s", left, test_time(120));
	for (int i = 0; i < N; i++) {
		char text[64];
		char *out = slurp_str(path[i][1]), *err = slurp_str(path[i][2]);

		cr_assert(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0,
			  "clone %d: wait status 0x%x, stderr: %s", i, status[i], err);
		snprintf(text, sizeof(text), "clone %d of %d", i, N);
		check_answer(out, 20 + i, text, token[i]);
		free(out);
		free(err);
	}
	/* random was reseeded after the ready point: 32 different draws (the
	 * template's own Mersenne Twister state would give 32 equal ones) */
	for (int i = 0; i < N; i++)
		for (int k = 0; k < i; k++)
			cr_assert_str_neq(token[i], token[k], "clones %d and %d drew the same token", k, i);
}

/* ---- 5. the standard library is not in the template ------------------------------ */

/* The integer at key ("a.b": member b of object a) in JSON file path. */
static uint64_t json_u64(const char *path, const char *key)
{
	char *s = slurp_str(path);
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);
	json_t *v;
	uint64_t r;

	cr_assert_not_null(j, "%s: %s", path, je.text);
	v = j;
	for (const char *k = key; v && *k;) { /* "a.b": member b of member a */
		const char *dot = strchr(k, '.');
		size_t n = dot ? (size_t)(dot - k) : strlen(k);
		v = json_object_getn(v, k, n);
		k += n + (dot != NULL);
	}
	cr_assert(json_is_integer(v), "%s: no %s", path, key);
	r = (uint64_t)json_integer_value(v);
	json_decref(j);
	free(s);
	return r;
}

Test(python, the_template_stores_little_and_the_layer_once)
{
	char path[1200], img[1400];
	struct stat layer, a, b;
	uint64_t stored;

	cr_assert_eq(stat(build_file("guest/python3.11.sbfs"), &layer), 0, "the Python layer is built");
	create("py", NULL, HANDLER);
	create("py2", NULL, HANDLER);
	snprintf(path, sizeof(path), "%s/templates/py/template.json", STORE);
	stored = json_u64(path, "stored_bytes");
	/* mem.img: the heap and the interpreter's state; neither the standard
	 * library nor the interpreter's and libraries' pages (overlays: ~12.7
	 * MiB mapped from the layer; 18.3 MiB stored without them) */
	cr_assert_lt(stored, 10ull << 20, "py stores %llu bytes", (unsigned long long)stored);
	cr_assert_geq(json_u64(path, "overlay.pages"), 2048, "py maps >= 8 MiB from its layers");
	cr_assert_lt(stored, (uint64_t)layer.st_size / 2, "py stores %llu bytes, the layer is %lld",
		     (unsigned long long)stored, (long long)layer.st_size);
	/* STORED in `template ls` says the same (MiB, one decimal) */
	sb(ARGS("template", "ls", "--store", STORE), NULL, 30);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert(strstr(R.out, "py "), "ls: %s", R.out);
	/* one image file for the layer, hard-linked into both templates */
	{
		char hex[64] = "";
		FILE *f;
		char cmd[1300];

		snprintf(cmd, sizeof(cmd), "%s image inspect '%s' | awk '$1 == \"id\" { print $2 }'",
			 snapbox_bin(), build_file("guest/python3.11.sbfs"));
		f = popen(cmd, "r");
		cr_assert_not_null(f);
		cr_assert_eq(fscanf(f, "%63s", hex), 1);
		pclose(f);
		snprintf(img, sizeof(img), "%s/images/%s.sbfs", STORE, hex);
		cr_assert_eq(stat(img, &a), 0, "%s", img);
		cr_assert_eq(a.st_size, layer.st_size);
		snprintf(path, sizeof(path), "%s/templates/py/layers/%s.sbfs", STORE, hex);
		cr_assert_eq(stat(path, &b), 0, "%s", path);
		cr_assert_eq(a.st_ino, b.st_ino, "py's layer is the store's image");
		snprintf(path, sizeof(path), "%s/templates/py2/layers/%s.sbfs", STORE, hex);
		cr_assert_eq(stat(path, &b), 0, "%s", path);
		cr_assert_eq(a.st_ino, b.st_ino, "py2's layer is the store's image");
	}
	run_clone("py2", "{\"n\": 5, \"text\": \"still here\"}");
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	check_answer(R.out, 5, "still here", NULL);
}

/* ---- 6. a user's program on top ----------------------------------------------- */

static const char MAIN_PY[] =
	"import json, sys\n"
	"import mylib\n" /* /app/mylib.py: sys.path[0] is the script's directory */
	"req = json.load(sys.stdin)\n"
	"print(json.dumps({'square': mylib.square(req['n']), 'shout': req['text'].upper(),\n"
	"                  'lib': mylib.__file__, 'handler_there': __import__('os').path.exists('/app/handler.py')}))\n";
static const char MYLIB_PY[] = "def square(n):\n    return n * n\n";

Test(python, a_users_main_py_runs_from_its_rootfs_layer)
{
	create_app("mypy", "main.py", MAIN_PY, "mylib.py", MYLIB_PY);
	for (int n = 3; n < 3000; n *= 7) {
		char in[128], want[256];

		snprintf(in, sizeof(in), "{\"n\": %d, \"text\": \"req %d\"}", n, n);
		snprintf(want, sizeof(want),
			 "{\"square\": %d, \"shout\": \"REQ %d\", \"lib\": \"/app/mylib.py\", "
			 "\"handler_there\": true}\n", n * n, n);
		run_clone("mypy", in);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
	}
}

/* ---- 7. boot runs python3 too; --no-python leaves the layer out ------------------- */

Test(python, boot_runs_python3_and_no_python_leaves_it_out)
{
	sb(ARGS("boot", "--", "/usr/bin/python3", "-c",
		"import sys, math; print(sys.version_info[:2], math.factorial(25))"), NULL, 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "(3, 11) 15511210043330985984000000\n", "stderr: %s", R.err);
	/* a bare name is found in PATH (/usr/bin), through the python3 link */
	sb(ARGS("boot", "--", "python3", "-c", "import sys; print(sys.executable)"), NULL, 60);
	cr_assert_eq(R.status, 0, "stderr: %s", R.err);
	cr_assert_str_eq(R.out, "/usr/bin/python3\n", "stderr: %s", R.err);
	sb(ARGS("boot", "--no-python", "--", "/usr/bin/python3", "-c", "pass"), NULL, 60);
	cr_assert_eq(R.status, 127, "stderr: %s", R.err);
	cr_assert_eq(strchr(R.err, '\n'), R.err + R.err_len - 1, "one line: %s", R.err);
}

/* ---- 8. /tmp: tempfile and sqlite3 on the clone's own tmpfs ----------------------- */

static const char TMP_PY[] =
	"import json, os, sqlite3, sys, tempfile\n"
	"db = sqlite3.connect('/tmp/warm.db')\n" /* made before the ready point */
	"db.execute('create table t (k text, v integer)')\n"
	"db.commit()\n"
	"req = json.load(sys.stdin)\n"
	"with tempfile.NamedTemporaryFile('w+', dir='/tmp', delete=False) as f:\n"
	"    f.write(req['k'] * 1000)\n"
	"    name = f.name\n"
	"size = os.path.getsize(name)\n"
	"db.executemany('insert into t values (?, ?)', [(req['k'], i) for i in range(req['n'])])\n"
	"db.commit()\n"
	"rows, total = db.execute('select count(*), sum(v) from t').fetchone()\n"
	"print(json.dumps({'size': size, 'rows': rows, 'total': total,\n"
	"                  'files': len(os.listdir('/tmp'))}))\n";

Test(python, tempfile_and_sqlite3_work_on_each_clones_own_tmp)
{
	create_app("tmp", "tmp.py", TMP_PY, NULL, NULL);
	for (int n = 1; n <= 200; n *= 5) {
		char in[64], want[128];

		snprintf(in, sizeof(in), "{\"k\": \"ab\", \"n\": %d}", n);
		/* every clone starts from the template's /tmp: the empty table
		 * and no temporary file of an earlier clone */
		snprintf(want, sizeof(want), "{\"size\": 2000, \"rows\": %d, \"total\": %d, \"files\": 2}\n",
			 n, n * (n - 1) / 2);
		run_clone("tmp", in);
		cr_assert_eq(R.status, 0, "stderr: %s", R.err);
		cr_assert_str_eq(R.out, want, "stderr: %s", R.err);
	}
}
