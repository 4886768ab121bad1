#include <stdbool.h>
/* SPDX-License-Identifier: MIT */
#include "run.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/kvm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launcher/client.h"

extern char **environ;

const char *snapbox_bin(void)
{
	const char *b = getenv("SNAPBOX_BIN");
	return b && *b ? b : "build/snapbox";
}

const char *test_backend(void)
{
	const char *b = getenv("SNAPBOX_TEST_BACKEND");

	return b && *b ? b : NULL;
}

bool test_on_proc(void)
{
	const char *b = test_backend();

	return b && !strcmp(b, "proc");
}

bool kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool ok = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;

	if (fd >= 0)
		close(fd);
	return ok;
}

void require_kvm(void)
{
	if (kvm_usable())
		return;
	if (getenv("CI") && !strcmp(getenv("CI"), "true"))
		cr_assert_fail("/dev/kvm is not usable and CI=true: failing, not skipping");
	cr_skip_test("/dev/kvm is not usable");
}

long test_count(const char *env, long native)
{
	const char *v = getenv(env);
	char *end;
	long n = v && *v ? strtol(v, &end, 10) : 0;
	return v && *v && !*end && n > 0 ? n : native;
}

double test_time(double secs)
{
	const char *v = getenv("SNAPBOX_TIME_SCALE");
	char *end;
	double k = v && *v ? strtod(v, &end) : 1;
	return v && *v && !*end && k >= 1 ? secs * k : secs;
}

double test_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int append(char **buf, size_t *len, size_t *cap, const char *d, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*cap ? *cap * 2 : 4096);
		while (nc < *len + n + 1)
			nc *= 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, d, n);
	*len += n;
	(*buf)[*len] = 0;
	return 0;
}

/* in_file: stdin is a memfd holding in (a regular file), else a pipe */
static int run_snapbox_(const char *const *argv, const char *in, size_t in_len, bool in_file,
			double limit_s, struct run_result *r)
{
	int pin[2], pout[2], perr[2];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	size_t n = 0, ocap = 0, ecap = 0, in_off = 0;
	const char **av;
	int rc;

	memset(r, 0, sizeof(*r));
	while (argv[n])
		n++;
	av = calloc(n + 3, sizeof(*av));
	av[0] = snapbox_bin();
	{
		/* SNAPBOX_TEST_BACKEND: boot and template create get --backend
		 * (run takes the template's own) */
		size_t at = 0, j = 1;
		const char *be = test_backend();

		if (be && n > 1 && !strcmp(argv[1], "boot"))
			at = 2;
		else if (be && n > 2 && !strcmp(argv[1], "template") && !strcmp(argv[2], "create"))
			at = 3;
		for (size_t i = 1; i < n; i++) {
			if (i == at) {
				av[j++] = "--backend";
				av[j++] = be;
			}
			av[j++] = argv[i];
		}
	}
	if (in_file) {
		pin[0] = memfd_create("snapbox-test-stdin", MFD_CLOEXEC);
		pin[1] = -1;
		if (pin[0] < 0 || (in_len && write(pin[0], in, in_len) != (ssize_t)in_len) ||
		    lseek(pin[0], 0, SEEK_SET) < 0)
			return -EIO;
	} else if (pipe2(pin, O_CLOEXEC)) {
		return -errno;
	}
	if (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	double t0 = test_now();
	limit_s = test_time(limit_s);
	rc = posix_spawn(&pid, av[0], &fa, NULL, (char *const *)av, environ);
	posix_spawn_file_actions_destroy(&fa);
	free(av);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	if (rc)
		return -rc;
	signal(SIGPIPE, SIG_IGN);
	if ((!in || !in_len) && pin[1] >= 0) {
		close(pin[1]);
		pin[1] = -1;
	}
	fcntl(pout[0], F_SETFL, O_NONBLOCK);
	fcntl(perr[0], F_SETFL, O_NONBLOCK);
	if (pin[1] >= 0)
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	append(&r->out, &r->out_len, &ocap, "", 0);
	append(&r->err, &r->err_len, &ecap, "", 0);

	int open_fds = 2;
	while (open_fds) {
		struct pollfd p[3] = { { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 },
				       { pin[1], POLLOUT, 0 } };
		double left = limit_s - (test_now() - t0);
		if (left <= 0) {
			kill(pid, SIGKILL);
			r->timed_out = 1;
			break;
		}
		if (poll(p, 3, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			break;
		char buf[65536];
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t k = read(p[i].fd, buf, sizeof(buf));
			if (k > 0) {
				if (i == 0)
					append(&r->out, &r->out_len, &ocap, buf, k);
				else
					append(&r->err, &r->err_len, &ecap, buf, k);
			} else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(p[i].fd);
				if (i == 0)
					pout[0] = -1;
				else
					perr[0] = -1;
				open_fds--;
			}
		}
		if (pin[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t k = write(pin[1], in + in_off, in_len - in_off);
			if (k > 0)
				in_off += k;
			if (k < 0 && errno != EAGAIN) {
				close(pin[1]);
				pin[1] = -1;
			} else if (in_off == in_len) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
	}
	if (pin[1] >= 0)
		close(pin[1]);
	if (pout[0] >= 0)
		close(pout[0]);
	if (perr[0] >= 0)
		close(perr[0]);
	int st;
	waitpid(pid, &st, 0);
	r->secs = test_now() - t0;
	if (WIFEXITED(st)) {
		r->status = WEXITSTATUS(st);
	} else {
		r->signaled = 1;
		r->status = 128 + WTERMSIG(st);
	}
	return 0;
}

int run_snapbox(const char *const *argv, const char *in, size_t in_len, double limit_s,
		struct run_result *r)
{
	return run_snapbox_(argv, in, in_len, false, limit_s, r);
}

static void run_checked_(const char *const *argv, const char *in, size_t in_len, bool in_file,
			 double limit_s, struct run_result *r)
{
	run_result_free(r);
	int rc = run_snapbox_(argv, in, in_len, in_file, limit_s, r);
	cr_assert_eq(rc, 0, "could not start %s", snapbox_bin());
	cr_assert(!r->timed_out, "snapbox hung (killed after %.0f s); stderr: %s", test_time(limit_s),
		  r->err);
	cr_assert(!r->signaled, "snapbox itself died of a signal (%d); stderr: %s", r->status - 128,
		  r->err);
}

void run_checked(const char *const *argv, const char *in, double limit_s, struct run_result *r)
{
	run_checked_(argv, in, in ? strlen(in) : 0, false, limit_s, r);
}

void run_checked_file(const char *const *argv, const void *in, size_t in_len, double limit_s,
		      struct run_result *r)
{
	run_checked_(argv, in, in_len, true, limit_s, r);
}

void template_create(const char *store, const char *name, const char *const *prog,
		     double limit_s)
{
	const char *argv[32] = { "snapbox", "template", "create", name, "--store", store, "--" };
	struct run_result r = { 0 };
	int n = 7;

	for (int i = 0; prog[i] && n < 31; i++)
		argv[n++] = prog[i];
	argv[n] = NULL;
	run_checked(argv, NULL, limit_s, &r);
	cr_assert_eq(r.status, 0, "template create %s: %s", name, r.err);
	run_result_free(&r);
}

const char *build_file(const char *rel)
{
	static char path[4][4096];
	static int k;
	char exe[4000], *out = path[k++ % 4];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert_gt(n, 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0; /* BUILD/tests */
	snprintf(out, sizeof(path[0]), "%s/../%s", exe, rel);
	return out;
}

const char *abi3_kernel(void)
{
	const char *e = getenv("SNAPBOX_ABI3_KERNEL"), *path;

	if (e && *e)
		return e;
	path = build_file("fixtures/abi3-kernel.elf");
	cr_assert_eq(access(path, R_OK), 0, "%s is missing: make test-bins builds it (from git)", path);
	return path;
}

const char *old_snapbox(void)
{
	const char *e = getenv("SNAPBOX_OLD_BIN"), *path;

	if (e && *e)
		return e;
	path = build_file("fixtures/old-host/build/snapbox");
	cr_assert_eq(access(path, X_OK), 0, "%s is missing: make test-bins builds it (from git)", path);
	return path;
}

long stats_calls(const char *err, const char *name)
{
	const char *l = strstr(err, "stats: hypercalls:");
	char line[512], key[40], *p;

	if (!l)
		return -1;
	l += strlen("stats: hypercalls:"); /* " EXIT=1 STDIN=1; the guest waited on ..." */
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, ";\n"), l);
	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(line, key);
	return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

long stats_waited(const char *err)
{
	const char *l = strstr(err, "stats: hypercalls: "), *p;
	long n;

	if (!l || !(p = strstr(l, "the guest waited on ")) || sscanf(p, "the guest waited on %ld", &n) != 1)
		return -1;
	return n;
}

void run_result_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

char *make_tempdir(void)
{
	char tmpl[] = "/tmp/snapbox-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

int write_file(const char *dir, const char *name, const void *data, size_t len, int mode)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, data, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -EIO;
}

void lua_answer(int n, char *out, size_t len)
{
	static int primes[1001];
	char fib[32] = "null", prime[32] = "null";

	if (!primes[1])
		for (int c = 2, k = 0; k < 1000; c++) {
			int is = 1;
			for (int d = 2; d * d <= c; d++)
				if (c % d == 0) {
					is = 0;
					break;
				}
			if (is)
				primes[++k] = c;
		}
	if (n >= 0 && n <= 92) {
		uint64_t a = 0, b = 1;
		for (int i = 0; i < n; i++) {
			uint64_t t = a + b;
			a = b;
			b = t;
		}
		snprintf(fib, sizeof(fib), "%" PRIu64, a);
	}
	if (n >= 1 && n <= 1000)
		snprintf(prime, sizeof(prime), "%d", primes[n]);
	snprintf(out, len, "{\"n\": %d, \"fib\": %s, \"prime\": %s}\n", n, fib, prime);
}

uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s (run make first)", path);
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len ? *len : 1);
	cr_assert_eq(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

void remove_tempdir(char **dir)
{
	char cmd[4200];

	if (!*dir)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", *dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", *dir);
	free(*dir);
	*dir = NULL;
}

const char *expected_syscall_path(const char **why)
{
	static const char *const known[] = { "user", "ud-kernel", "ud-user" };
	const char *env = getenv("SNAPBOX_EXPECT_SYSCALL_PATH");

	if (env && *env) {
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(env, known[i])) {
				*why = "SNAPBOX_EXPECT_SYSCALL_PATH";
				return known[i];
			}
		cr_assert_fail("SNAPBOX_EXPECT_SYSCALL_PATH=%s: expected user, ud-kernel or ud-user", env);
	}
	if (access("/sys/module/kvm_pvm", F_OK) == 0) {
		*why = "kvm_pvm is loaded";
		return "user";
	}
	*why = "no kvm_pvm: a VMX/SVM host";
	return "ud-kernel";
}

const char *syscall_path_after(const char *s, const char *key)
{
	static char tok[32];
	const char *p = strstr(s, key);
	size_t n = 0;

	if (!p)
		return NULL;
	for (p += strlen(key); n + 1 < sizeof(tok) && ((*p >= 'a' && *p <= 'z') || *p == '-'); p++)
		tok[n++] = *p;
	tok[n] = 0;
	return tok;
}

/* ---- a snapbox service under test ---- */

int serve_req(const char *sock, unsigned timeout_s, const char *method, const char *target,
	      const char *body, struct http_response *r)
{
	struct sb_err err = { "" };
	int ret = client__request(sock, method, target, body, body ? strlen(body) : 0, 64 << 20,
				  timeout_s, r, &err);
	return ret < 0 ? ret : r->status;
}

json_t *serve_req_json(const char *sock, unsigned timeout_s, const char *method,
		       const char *target, const char *body, int want)
{
	struct http_response r;
	json_error_t jerr;
	int st = serve_req(sock, timeout_s, method, target, body, &r);
	cr_assert_eq(st, want, "%s %s %s: status %d (want %d): %s", method, target, body ? body : "",
		     st, want, st > 0 ? r.body : strerror(-st));
	json_t *j = json_loadb(r.body, r.len, 0, &jerr);
	cr_assert(j, "%s %s: not JSON (%s): %s", method, target, jerr.text, r.body);
	http_response__free(&r);
	return j;
}

void serve_start(const char *const *argv, const char *sock, const char *log, pid_t *pid)
{
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	cr_assert_eq(posix_spawnp(pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (double t0 = test_now(); test_now() - t0 < test_time(15); usleep(20000)) {
		struct http_response r;
		int st = serve_req(sock, 60, "GET", "/v1/health", NULL, &r);
		if (st > 0)
			http_response__free(&r);
		if (st == 200)
			return;
		cr_assert_eq(waitpid(*pid, NULL, WNOHANG), 0, "snapbox serve exited; see %s", log);
	}
	cr_assert_fail("snapbox serve did not answer /v1/health within 15 s");
}

int serve_stop(pid_t *pid, int *status)
{
	*status = 0;
	if (*pid <= 0)
		return 0;
	kill(*pid, SIGTERM);
	for (double t0 = test_now(); test_now() - t0 < test_time(20); usleep(20000)) {
		if (waitpid(*pid, status, WNOHANG) == *pid) {
			*pid = -1;
			return 0;
		}
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = -1;
	return -1;
}
