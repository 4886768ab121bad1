/* SPDX-License-Identifier: MIT */
/*
 * `snapbox serve`: HTTP/1.1 + JSON on a Unix socket, in front of the sandbox
 * pool and the template store.  docs/API.md is the contract.
 *
 * libmicrohttpd parses HTTP (one thread per connection, so 64 requests each
 * waiting for a sandbox are served at once); Jansson parses and prints JSON.
 * Every value a client sends is checked here before it reaches the pool,
 * the store or a child process.  Templates are created by a child process
 * (posix_spawn of /proc/self/exe `template create`): this process has
 * threads, so it never forks.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/resize.h"
#include "launcher/boot.h"
#include "launcher/cli.h"
#include "launcher/pool.h"
#include "launcher/serve.h"
#include "migrate/migrate.h"
#include "snapshot/policy.h"
#include "snapshot/snapshot.h"
#include "snapshot/store.h"

extern char **environ;

#define RUN_DEFAULT_TIMEOUT_S  30
#define RUN_MAX_TIMEOUT_S      86400
#define RUN_DEFAULT_MAX_OUTPUT (16ULL << 20)
#define RUN_MAX_MAX_OUTPUT     (64ULL << 20)
#define CREATE_DEFAULT_TIMEOUT_S 60
#define CREATE_MAX_TIMEOUT_S   3600
#define CREATE_GRACE_S         30      /* child's own start-up and save, on top */
#define CREATE_MAX_ITEMS       256     /* program arguments, env entries */
#define CREATE_MAX_STR         4096
#define CREATE_ARGV_MAX        (20 + 3 * CREATE_MAX_ITEMS)
#define MSG_MAX                1024
#define DRAIN_MAX_NS           (10ULL * 1000000000ULL)
#define POLICY_CACHE_SIZE      16

/* A template's policy, as its state.bin said when it had this identity. */
struct policy_cache {
	char dir[PATH_MAX];            /* "": unused */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct snap_policy policy;
	uint64_t used;
};

struct serve {
	const struct serve_opts *o;
	struct store store;
	struct pool *pool;
	struct MHD_Daemon *mhd;
	int listen_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	pthread_mutex_t mu;            /* guards inflight, stopping */
	pthread_cond_t idle;
	unsigned inflight;             /* runs and creates under way */
	bool stopping;
	int mig_fd;                    /* --listen-migration's socket, -1: none */
	pthread_t mig_thread;
	bool mig_started;
	pthread_mutex_t plock;         /* guards pcache, ptick */
	struct policy_cache pcache[POLICY_CACHE_SIZE];
	uint64_t ptick;
};

/* One HTTP request: MHD's per-request pointer. */
struct req {
	char *body;
	size_t len, cap;
	bool too_large;
	bool answered;
	uint64_t t0;
};

struct reply {
	unsigned status;
	char *body;                    /* malloc'd, or NULL (empty) */
	size_t len;
	const char *ctype;
	char allow[48];                /* for 405 */
};

/* What an API handler gets. */
struct call {
	struct serve *s;
	struct MHD_Connection *conn;
	struct req *rq;
	const char *arg;               /* the {name} or {id} path segment */
	struct reply *r;
};

/* ---- small helpers ---------------------------------------------------------- */

int serve__parse_log_level(const char *s)
{
	if (!strcmp(s, "error"))
		return SERVE_LOG_ERROR;
	if (!strcmp(s, "info"))
		return SERVE_LOG_INFO;
	if (!strcmp(s, "debug"))
		return SERVE_LOG_DEBUG;
	return -EINVAL;
}

static uint64_t serve__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Printable ASCII only: client-supplied text never breaks a log line. */
static void text__sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* One line per event on stderr, like the pool's: "snapbox serve: ...". */
static void serve__vlog(const struct serve *s, int level, const char *fmt, va_list ap)
{
	static const char prefix[] = "snapbox serve: ";
	char line[MSG_MAX + 32];
	size_t n = sizeof(prefix) - 1;

	if (level > s->o->log_level)
		return;
	memcpy(line, prefix, n);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	text__sanitize(line + n);
	n = strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return; /* nowhere else to say it */
}

__attribute__((format(printf, 3, 4)))
static void serve__log(const struct serve *s, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	serve__vlog(s, level, fmt, ap);
	va_end(ap);
}

static void serve__mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[MSG_MAX];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	serve__log(cls, SERVE_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* A JSON string from text that may not be UTF-8 (then made printable ASCII). */
static json_t *json__text(const char *s)
{
	json_t *j = json_string(s);
	char buf[MSG_MAX];

	if (j)
		return j;
	snprintf(buf, sizeof(buf), "%s", s);
	text__sanitize(buf);
	return json_string(buf);
}

/* A non-negative measurement as a whole number (no libm). */
static json_int_t json__round(double v)
{
	return v > 0 && v < 9e18 ? (json_int_t)(v + 0.5) : 0;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; malloc'd, NUL-terminated. */
static char *base64__encode(const unsigned char *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t k = len - i;

		if (k > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (k > 2)
			v |= in[i + 2];
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = k > 1 ? b64_alphabet[v >> 6 & 63] : '=';
		*o++ = k > 2 ? b64_alphabet[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* key: the bytes as a JSON string when UTF-8, else key_base64. */
static int json__set_bytes(json_t *obj, const char *key, const char *data, size_t len)
{
	json_t *v = json_stringn(data ? data : "", data ? len : 0);
	char k[32];
	char *b;

	if (v)
		return json_object_set_new(obj, key, v) ? -ENOMEM : 0;
	b = base64__encode((const unsigned char *)data, len);
	snprintf(k, sizeof(k), "%s_base64", key);
	v = b ? json_string(b) : NULL;
	free(b);
	return v && json_object_set_new(obj, k, v) == 0 ? 0 : -ENOMEM;
}

static void rfc3339(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- replies ------------------------------------------------------------------ */

static int reply__json(struct reply *r, unsigned status, json_t *j)
{
	size_t n;

	if (!j)
		return -ENOMEM;
	n = json_dumpb(j, NULL, 0, 0);
	r->body = n ? malloc(n + 1) : NULL;
	if (r->body)
		json_dumpb(j, r->body, n, 0);
	json_decref(j);
	if (!r->body)
		return -ENOMEM;
	r->body[n] = '\n';
	r->len = n + 1;
	r->status = status;
	r->ctype = "application/json";
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int reply__error(struct reply *r, unsigned status, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_object();
	if (j && json_object_set_new(j, "error", json__text(msg)) < 0) {
		json_decref(j);
		j = NULL;
	}
	return reply__json(r, status, j);
}

static int reply__empty(struct reply *r, unsigned status)
{
	r->status = status;
	r->body = NULL;
	r->len = 0;
	r->ctype = NULL;
	return 0;
}

static enum MHD_Result reply__send(struct MHD_Connection *conn, struct reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (r->body)
		resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(r->body);
		return MHD_NO;
	}
	r->body = NULL; /* the response owns it */
	if (r->ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	if (r->allow[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- in-flight work (runs, creates) and shutdown --------------------------------- */

static int serve__enter(struct serve *s)
{
	int ret = 0;

	pthread_mutex_lock(&s->mu);
	if (s->stopping)
		ret = -ESHUTDOWN;
	else
		s->inflight++;
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static void serve__leave(struct serve *s)
{
	pthread_mutex_lock(&s->mu);
	if (--s->inflight == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
}

static bool serve__stopping(struct serve *s)
{
	bool v;

	pthread_mutex_lock(&s->mu);
	v = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void serve__kill_all(struct serve *s)
{
	struct sandbox_info *v;
	size_t n;

	if (pool__list(s->pool, &v, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		pool__kill(s->pool, v[i].id);
	free(v);
}

/* No new work; kill running sandboxes (creates see `stopping` and kill
 * their child) until nothing is in flight, for at most DRAIN_MAX_NS. */
static void serve__drain(struct serve *s)
{
	uint64_t deadline = serve__now_ns() + DRAIN_MAX_NS;

	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	while (s->inflight && serve__now_ns() < deadline) {
		struct timespec ts;

		pthread_mutex_unlock(&s->mu);
		serve__kill_all(s);
		pthread_mutex_lock(&s->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->idle, &s->mu, &ts);
	}
	if (s->inflight)
		serve__log(s, SERVE_LOG_ERROR, "%u requests still under way after 10 s; stopping anyway",
			   s->inflight);
	pthread_mutex_unlock(&s->mu);
}

/* ---- query and path values ---------------------------------------------------------- */

/* Decimal digits only, min <= v <= max. */
static int parse__u64(const char *str, uint64_t min, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (!str || !*str || strlen(str) > 20)
		return -EINVAL;
	for (const char *p = str; *p; p++) {
		if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (x < min || x > max)
		return -ERANGE;
	*v = x;
	return 0;
}

/* Seconds: a finite number, 0 < v <= max. */
static int parse__seconds(const char *str, double max, double *v)
{
	char *end;
	double x;

	if (!str || !*str || strlen(str) > 32)
		return -EINVAL;
	errno = 0;
	x = strtod(str, &end);
	if (errno || *end || !isfinite(x) || x <= 0 || x > max)
		return -EINVAL;
	*v = x;
	return 0;
}

struct run_query {
	struct sandbox_limits lim;
	char bad[MSG_MAX];
};

static enum MHD_Result run_query__arg(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	struct run_query *q = cls;
	double secs;
	uint64_t bytes;

	(void)kind;
	if (!strcmp(key, "timeout")) {
		if (parse__seconds(value, RUN_MAX_TIMEOUT_S, &secs) < 0) {
			snprintf(q->bad, sizeof(q->bad), "timeout=%.64s: expected seconds, 0 < timeout <= %d",
				 value ? value : "", RUN_MAX_TIMEOUT_S);
			return MHD_NO;
		}
		q->lim.timeout_ns = (uint64_t)(secs * 1e9);
	} else if (!strcmp(key, "max_output")) {
		if (parse__u64(value, 1, RUN_MAX_MAX_OUTPUT, &bytes) < 0) {
			snprintf(q->bad, sizeof(q->bad), "max_output=%.64s: expected bytes, 1 to %llu",
				 value ? value : "", RUN_MAX_MAX_OUTPUT);
			return MHD_NO;
		}
		q->lim.max_output = bytes;
	} else {
		snprintf(q->bad, sizeof(q->bad), "unknown query parameter '%.64s' (timeout, max_output)",
			 key);
		return MHD_NO;
	}
	return MHD_YES;
}

/* ---- templates -------------------------------------------------------------------------- */

static uint64_t file__blocks(int dirfd, const char *name)
{
	struct stat sb;

	return fstatat(dirfd, name, &sb, 0) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

/* The policy runs of a template with policy tmpl get here: its own if set,
 * else the service's default (--recycle, else off). */
static struct snap_policy serve__effective(const struct serve *s, const struct snap_policy *tmpl)
{
	return snap_policy__effective(tmpl, &s->o->recycle);
}

static json_t *policy__json(const struct snap_policy *p)
{
	char buf[64];

	snap_policy__format(p, buf, sizeof(buf));
	return json_string(buf);
}

static int template__summary(const struct serve *s, const struct snapshot *snap, const char *name,
			     json_t *j)
{
	struct snap_policy eff = serve__effective(s, &snap->policy);
	char created[32] = "";
	struct stat sb;
	uint64_t stored = file__blocks(snap->dirfd, SNAP_MEM_FILE) +
			  file__blocks(snap->dirfd, SNAP_PAGES_FILE) +
			  file__blocks(snap->dirfd, SNAP_STATE_FILE);

	if (fstatat(snap->dirfd, SNAP_STATE_FILE, &sb, 0) == 0)
		rfc3339(sb.st_mtime, created, sizeof(created));
	return json_object_set_new(j, "name", json_string(name)) |
	       json_object_set_new(j, "id", json_string(snap->id)) |
	       json_object_set_new(j, "mem_bytes", json_integer((json_int_t)snap->hdr.mem_size)) |
	       json_object_set_new(j, "stored_bytes", json_integer((json_int_t)stored)) |
	       json_object_set_new(j, "created", json_string(created)) |
	       json_object_set_new(j, "recycle", policy__json(&snap->policy)) |
	       json_object_set_new(j, "recycle_effective", policy__json(&eff)) ? -ENOMEM : 0;
}

static json_t *template__hex(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return json_string(buf);
}

static json_t *template__sections(const struct snapshot *snap)
{
	struct snap_section t[SNAP_MAX_SECTIONS];
	size_t tl = snap->hdr.n_sections * sizeof(t[0]);
	json_t *a = json_array();
	int fd;

	if (!a || snap->hdr.n_sections > SNAP_MAX_SECTIONS)
		return a;
	fd = openat(snap->dirfd, SNAP_STATE_FILE, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && pread(fd, t, tl, sizeof(snap->hdr)) == (ssize_t)tl) {
		for (uint32_t i = 0; i < snap->hdr.n_sections; i++) {
			char hash[20];

			snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)t[i].hash);
			json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I, s:s}",
				"type", snapshot__section_name(t[i].type),
				"version", (json_int_t)t[i].version, "offset", (json_int_t)t[i].offset,
				"length", (json_int_t)t[i].length, "hash", hash));
		}
	}
	if (fd >= 0)
		close(fd);
	return a;
}

/* The template's root file system layers, bottom first ([] before format 1.3). */
static json_t *template__layers(const struct snapshot *snap)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < snap->layers.n_layers; i++) {
		char hex[33];

		for (int k = 0; k < 16; k++)
			snprintf(hex + 2 * k, 3, "%02x", snap->layers.layers[i].id[k]);
		json_array_append_new(a, json_pack("{s:s, s:I, s:o}", "id", hex,
			"bytes", (json_int_t)snap->layers.layers[i].size,
			"gpa", template__hex(snap->layers.layers[i].gpa)));
	}
	return a;
}

static int template__details(const struct snapshot *snap, json_t *j)
{
	char format[16];

	snprintf(format, sizeof(format), "%u.%u", snap->hdr.major, snap->hdr.minor);
	return json_object_set_new(j, "format", json_string(format)) |
	       json_object_set_new(j, "backend", json_string(snapshot__backend_name(snap->hdr.backend))) |
	       json_object_set_new(j, "abi", json_integer(snap->hdr.abi_version)) |
	       json_object_set_new(j, "syscall_path",
			json_string(hypercall__syscall_path_token(snap->hc.syscall_path))) |
	       json_object_set_new(j, "pages", json_pack("{s:I, s:I, s:I, s:I}",
			"total", (json_int_t)snap->pages.n_pages, "zero", (json_int_t)snap->pages.zero_pages,
			"unique", (json_int_t)snap->pages.unique_pages, "dup", (json_int_t)snap->pages.dup_pages)) |
	       json_object_set_new(j, "sections", template__sections(snap)) |
	       json_object_set_new(j, "layers", template__layers(snap)) |
	       json_object_set_new(j, "overlay", json_pack("{s:I, s:I, s:I}",
			"runs", (json_int_t)snap->n_runs, "pages", (json_int_t)snap->overlay_pages,
			"bytes", (json_int_t)(snap->overlay_pages * SNAP_PAGE))) |
	       json_object_set_new(j, "vcpu", json_pack("{s:o, s:o, s:o}",
			"rip", template__hex(snap->vcpu.regs.rip), "rsp", template__hex(snap->vcpu.regs.rsp),
			"cr3", template__hex(snap->vcpu.sregs.cr3))) ? -ENOMEM : 0;
}

/* Template `name` (checked) as JSON: summary, or everything GET shows.
 * -ENOENT: no such template; other -errno: damaged (message in err). */
static int template__json(struct serve *s, const char *name, bool detail, json_t **out,
			  struct sb_err *err)
{
	struct snapshot *snap = malloc(sizeof(*snap));
	char dir[PATH_MAX];
	json_t *j = json_object();
	int ret;

	ret = !snap || !j ? -ENOMEM : store__path(&s->store, name, dir, sizeof(dir), err);
	if (ret == 0)
		ret = snapshot__load(dir, snap, err);
	if (ret == -ENOENT && access(dir, F_OK) < 0)
		err__set(err, -ENOENT, "no template named %s", name);
	if (ret == 0) {
		ret = template__summary(s, snap, name, j);
		if (ret == 0 && detail)
			ret = template__details(snap, j);
		snapshot__close(snap);
	}
	free(snap);
	if (ret < 0) {
		json_decref(j);
		return ret;
	}
	*out = j;
	return 0;
}

/* The status for a template that could not be loaded. */
static int reply__template_error(struct reply *r, int ret, const char *name, const struct sb_err *err)
{
	if (ret == -ENOENT)
		return reply__error(r, MHD_HTTP_NOT_FOUND, "no template named %s", name);
	if (ret == -ENOMEM)
		return ret;
	return reply__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "template %s: %s", name, err->msg);
}

static int api__template_get(struct call *c)
{
	struct sb_err err = { "" };
	json_t *j;
	int ret;

	if (store__check_name(c->arg, &err) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	ret = template__json(c->s, c->arg, true, &j, &err);
	if (ret < 0)
		return reply__template_error(c->r, ret, c->arg, &err);
	return reply__json(c->r, MHD_HTTP_OK, j);
}

static int api__templates(struct call *c)
{
	struct sb_err err = { "" };
	json_t *a = json_array(), *j;
	char **names = NULL;
	size_t n = 0;
	int ret;

	if (!a)
		return -ENOMEM;
	if (store__list(&c->s->store, &names, &n, &err) < 0) {
		json_decref(a);
		serve__log(c->s, SERVE_LOG_ERROR, "list templates: %s", err.msg);
		return reply__error(c->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
	}
	for (size_t i = 0; i < n; i++) {
		j = NULL;
		ret = template__json(c->s, names[i], false, &j, &err);
		if (ret < 0 && ret != -ENOMEM)
			j = json_pack("{s:s, s:o}", "name", names[i], "error", json__text(err.msg));
		if (j)
			json_array_append_new(a, j);
		free(names[i]);
	}
	free(names);
	return reply__json(c->r, MHD_HTTP_OK, json_pack("{s:o}", "templates", a));
}

static int api__template_delete(struct call *c)
{
	struct sb_err err = { "" };
	int ret;

	if (store__check_name(c->arg, &err) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	ret = store__remove(&c->s->store, c->arg, &err);
	if (ret == -ENOENT)
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no template named %s", c->arg);
	if (ret < 0) {
		serve__log(c->s, SERVE_LOG_ERROR, "remove template %s: %s", c->arg, err.msg);
		return reply__error(c->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
	}
	serve__log(c->s, SERVE_LOG_INFO, "template %s removed", c->arg);
	return reply__empty(c->r, MHD_HTTP_NO_CONTENT);
}

/* ---- POST /v1/templates/{name}: `snapbox template create` in a child --------------------- */

struct create_req {
	const char *argv[CREATE_ARGV_MAX];
	unsigned argc;
	char timeout[32];
	double timeout_s;
	bool force;
};

static int create__push(struct create_req *cr, const char *arg)
{
	if (cr->argc + 2 > CREATE_ARGV_MAX)
		return -E2BIG;
	cr->argv[cr->argc++] = arg;
	cr->argv[cr->argc] = NULL;
	return 0;
}

/* A JSON string of 1..CREATE_MAX_STR bytes without NUL, or NULL. */
static const char *create__str(json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || !*s || json_string_length(v) != strlen(s) || strlen(s) > CREATE_MAX_STR)
		return NULL;
	return s;
}

/* "program" or "env": an array of such strings; env entries are KEY=VALUE. */
static int create__strings(json_t *a, const char *field, const char *flag, struct create_req *cr,
			   struct sb_err *err)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) > CREATE_MAX_ITEMS ||
	    (!flag && json_array_size(a) == 0))
		return err__set(err, -EINVAL, "\"%s\" must be an array of %s1 to %d strings", field,
				flag ? "0 or " : "", CREATE_MAX_ITEMS);
	json_array_foreach(a, i, v) {
		const char *s = create__str(v);

		if (!s)
			return err__set(err, -EINVAL, "\"%s\"[%zu]: expected a non-empty string of at most "
					"%d bytes", field, i, CREATE_MAX_STR);
		if (flag && (s[0] == '=' || !strchr(s, '=')))
			return err__set(err, -EINVAL, "\"%s\"[%zu]: expected KEY=VALUE", field, i);
		if ((flag && create__push(cr, flag) < 0) || create__push(cr, s) < 0)
			return err__set(err, -E2BIG, "too many arguments");
	}
	return 0;
}

static int create__mem(json_t *v, struct create_req *cr, struct sb_err *err)
{
	const char *s = create__str(v);
	uint64_t mem;

	if (!s || strlen(s) > 32)
		return err__set(err, -EINVAL, "\"mem\" must be a size string such as \"256M\"");
	if (boot__parse_mem(s, &mem, err) < 0)
		return -EINVAL;
	return create__push(cr, "--mem") | create__push(cr, s);
}

static int create__rootfs(json_t *v, struct create_req *cr, struct sb_err *err)
{
	const char *s = create__str(v);
	struct stat sb;

	if (!s || s[0] != '/')
		return err__set(err, -EINVAL, "\"rootfs\" must be an absolute directory path");
	if (stat(s, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return err__set(err, -EINVAL, "\"rootfs\": %s is not a directory", s);
	return create__push(cr, "--rootfs") | create__push(cr, s);
}

/* "backend": "kvm", "proc" or "auto" (the child's --backend; default auto). */
static int create__backend(json_t *v, struct create_req *cr, struct sb_err *err)
{
	const char *s = create__str(v);

	if (!s || (strcmp(s, "auto") && !backend__find(s)))
		return err__set(err, -EINVAL, "\"backend\" must be \"kvm\", \"proc\" or \"auto\"");
	return create__push(cr, "--backend") | create__push(cr, s);
}

/* "recycle": the template's policy, as --recycle takes it: "off",
 * "on,max=100,idle=5s", "default" (the child's --recycle). */
static int create__recycle(json_t *v, struct create_req *cr, struct sb_err *err)
{
	const char *s = json_string_value(v);
	struct sb_err why = { "" };
	struct snap_policy p;

	if (!s || json_string_length(v) != strlen(s) || strlen(s) > 128)
		return err__set(err, -EINVAL, "\"recycle\" must be a string: %s, or default "
				"(e.g. \"on,max=100,idle=5s\")", SNAP_POLICY_SYNTAX);
	if (snap_policy__parse(s, true, &p, &why) < 0)
		return err__set(err, -EINVAL, "\"recycle\": \"%.64s\": %s", s, why.msg);
	return create__push(cr, "--recycle") | create__push(cr, s);
}

static int create__scalars(json_t *body, struct create_req *cr, struct sb_err *err)
{
	json_t *v = json_object_get(body, "timeout");

	cr->timeout_s = CREATE_DEFAULT_TIMEOUT_S;
	if (v) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0 ||
		    json_number_value(v) > CREATE_MAX_TIMEOUT_S)
			return err__set(err, -EINVAL, "\"timeout\" must be seconds, 0 < timeout <= %d",
					CREATE_MAX_TIMEOUT_S);
		cr->timeout_s = json_number_value(v);
	}
	v = json_object_get(body, "force");
	if (v && !json_is_boolean(v))
		return err__set(err, -EINVAL, "\"force\" must be true or false");
	cr->force = v && json_is_true(v);
	snprintf(cr->timeout, sizeof(cr->timeout), "%.3f", cr->timeout_s);
	return 0;
}

/* The child's argv from the body; -EINVAL with the reason in err. */
static int create__parse(json_t *body, const char *name, const char *store, struct create_req *cr,
			 struct sb_err *err)
{
	static const char *const known[] = { "program", "mem", "env", "timeout", "force", "rootfs",
					     "backend", "recycle" };
	const char *key;
	json_t *v;
	int ret;

	if (!json_is_object(body))
		return err__set(err, -EINVAL, "the body must be a JSON object");
	json_object_foreach(body, key, v) {
		size_t k = 0;

		while (k < sizeof(known) / sizeof(known[0]) && strcmp(key, known[k]))
			k++;
		if (k == sizeof(known) / sizeof(known[0]))
			return err__set(err, -EINVAL, "unknown field \"%.64s\" (program, mem, env, timeout, "
					"force, rootfs, backend, recycle)", key);
	}
	if (!json_object_get(body, "program"))
		return err__set(err, -EINVAL, "\"program\" is required, e.g. [\"/bin/lua\", \"/app/handler.lua\"]");
	ret = create__scalars(body, cr, err);
	if (ret < 0)
		return ret;
	cr->argc = 0;
	ret = create__push(cr, "snapbox") | create__push(cr, "template") | create__push(cr, "create") |
	      create__push(cr, name) | create__push(cr, "--store") | create__push(cr, store) |
	      create__push(cr, "--timeout") | create__push(cr, cr->timeout);
	if (cr->force)
		ret |= create__push(cr, "--force");
	if (ret == 0 && (v = json_object_get(body, "backend")))
		ret = create__backend(v, cr, err);
	if (ret == 0 && (v = json_object_get(body, "mem")))
		ret = create__mem(v, cr, err);
	if (ret == 0 && (v = json_object_get(body, "env")))
		ret = create__strings(v, "env", "--env", cr, err);
	if (ret == 0 && (v = json_object_get(body, "rootfs")))
		ret = create__rootfs(v, cr, err);
	if (ret == 0 && (v = json_object_get(body, "recycle")))
		ret = create__recycle(v, cr, err);
	if (ret == 0)
		ret = create__push(cr, "--");
	if (ret == 0)
		ret = create__strings(json_object_get(body, "program"), "program", NULL, cr, err);
	return ret;
}

/* posix_spawn /proc/self/exe with the child's stderr on a pipe (*errfd). */
static int create__spawn(const struct create_req *cr, pid_t *pid, int *errfd, struct sb_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	int p[2], ret;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err__errno(err, "pipe");
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	ret = posix_spawn(pid, "/proc/self/exe", &fa, &at, (char *const *)cr->argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (ret) {
		close(p[0]);
		errno = ret;
		return err__errno(err, "start snapbox template create");
	}
	*errfd = p[0];
	return 0;
}

/* Read what fd says (keeping the first len-1 bytes) until EOF. */
static void create__read(int *fd, char *buf, size_t len, size_t *n)
{
	char sink[4096];
	ssize_t k;

	if (*fd < 0)
		return;
	if (*n + 1 < len)
		k = read(*fd, buf + *n, len - 1 - *n);
	else
		k = read(*fd, sink, sizeof(sink));
	if (k > 0 && *n + 1 < len)
		*n += (size_t)k;
	buf[*n] = 0;
	if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

enum create_end { CREATE_EXITED, CREATE_TIMED_OUT, CREATE_STOPPED };

/* Collect the child's stderr and status; kill it at the deadline or on shutdown. */
static enum create_end create__wait(struct serve *s, pid_t pid, int fd, uint64_t deadline,
				    char *msg, size_t len, int *status)
{
	enum create_end end = CREATE_EXITED;
	size_t n = 0;
	int st;

	msg[0] = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (fd >= 0 && poll(&p, 1, 100) > 0)
			create__read(&fd, msg, len, &n);
		else if (fd < 0)
			usleep(20000);
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (end == CREATE_EXITED && (serve__now_ns() > deadline || serve__stopping(s))) {
			end = serve__now_ns() > deadline ? CREATE_TIMED_OUT : CREATE_STOPPED;
			kill(pid, SIGKILL);
		}
	}
	while (fd >= 0)
		create__read(&fd, msg, len, &n);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return end;
}

/* The child's stderr as one line: "snapbox: " prefixes dropped, lines joined by "; ". */
static void create__one_line(char *msg)
{
	char *o = msg, *line = msg;

	while (*line) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (!strncmp(line, "snapbox: ", 9)) {
			line += 9;
			n -= 9;
		}
		if (n) {
			if (o != msg) {
				*o++ = ';';
				*o++ = ' ';
			}
			memmove(o, line, n);
			o += n;
		}
		line += n + (nl ? 1 : 0);
	}
	*o = 0;
}

static int create__reply(struct call *c, const struct create_req *cr, enum create_end end,
			 int status, const char *msg)
{
	struct sb_err err = { "" };
	json_t *j;
	int ret;

	if (end == CREATE_STOPPED)
		return reply__error(c->r, MHD_HTTP_SERVICE_UNAVAILABLE, "the service is stopping");
	if (end == CREATE_TIMED_OUT)
		return reply__error(c->r, MHD_HTTP_UNPROCESSABLE_CONTENT,
				    "template create did not finish within %.0f s", cr->timeout_s + CREATE_GRACE_S);
	if (status == EXIT_USAGE)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", msg);
	if (status != 0 && !cr->force && strstr(msg, "already exists"))
		return reply__error(c->r, MHD_HTTP_CONFLICT, "%s", msg);
	if (status != 0)
		return reply__error(c->r, MHD_HTTP_UNPROCESSABLE_CONTENT, "%s",
				    *msg ? msg : "template create failed");
	ret = template__json(c->s, c->arg, true, &j, &err);
	if (ret < 0)
		return reply__template_error(c->r, ret, c->arg, &err);
	serve__log(c->s, SERVE_LOG_INFO, "template %s created", c->arg);
	return reply__json(c->r, MHD_HTTP_CREATED, j);
}

static int api__template_create(struct call *c)
{
	struct create_req *cr = calloc(1, sizeof(*cr));
	struct sb_err err = { "" };
	char dir[PATH_MAX], msg[MSG_MAX];
	enum create_end end;
	json_error_t jerr;
	json_t *body = NULL;
	struct stat sb;
	int ret, fd = -1, status;
	pid_t pid;

	if (!cr)
		return -ENOMEM;
	if (store__check_name(c->arg, &err) < 0) {
		ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
		goto out;
	}
	body = json_loadb(c->rq->body ? c->rq->body : "", c->rq->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST, "line %d column %d: %s", jerr.line,
				   jerr.column, jerr.text);
		goto out;
	}
	if (create__parse(body, c->arg, c->s->store.root, cr, &err) < 0) {
		ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
		goto out;
	}
	store__path(&c->s->store, c->arg, dir, sizeof(dir), &err);
	if (!cr->force && stat(dir, &sb) == 0) {
		ret = reply__error(c->r, MHD_HTTP_CONFLICT, "template %s already exists (set \"force\": "
				   "true to replace it)", c->arg);
		goto out;
	}
	if (serve__enter(c->s) < 0) {
		ret = reply__error(c->r, MHD_HTTP_SERVICE_UNAVAILABLE, "the service is stopping");
		goto out;
	}
	ret = create__spawn(cr, &pid, &fd, &err);
	if (ret == 0) {
		uint64_t deadline = serve__now_ns() + (uint64_t)((cr->timeout_s + CREATE_GRACE_S) * 1e9);

		end = create__wait(c->s, pid, fd, deadline, msg, sizeof(msg), &status);
		create__one_line(msg);
		ret = create__reply(c, cr, end, status, msg);
	} else {
		serve__log(c->s, SERVE_LOG_ERROR, "%s", err.msg);
		ret = reply__error(c->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
	}
	serve__leave(c->s);
out:
	json_decref(body);
	free(cr);
	return ret;
}

/* ---- POST /v1/templates/{name}/run ----------------------------------------------------------- */

static json_t *run__json(const struct sandbox_result *res)
{
	json_t *j = json_pack("{s:I, s:i}", "id", (json_int_t)res->id, "exit_code", res->status);

	if (!j || json__set_bytes(j, "stdout", res->out, res->out_len) < 0 ||
	    json__set_bytes(j, "stderr", res->err, res->err_len) < 0 ||
	    json_object_set_new(j, "timed_out", json_boolean(res->timed_out)) < 0 ||
	    json_object_set_new(j, "killed", json_boolean(res->killed)) < 0 ||
	    json_object_set_new(j, "output_limited", json_boolean(res->output_limited)) < 0 ||
	    json_object_set_new(j, "message", json__text(res->message)) < 0 ||
	    json_object_set_new(j, "recycled", json_boolean(res->recycled)) < 0 ||
	    json_object_set_new(j, "reuse", json_integer(res->reuse)) < 0 ||
	    json_object_set_new(j, "precloned", json_boolean(res->precloned)) < 0 ||
	    json_object_set_new(j, "timings_us", json_pack("{s:I, s:I, s:I, s:I}",
			"wait", json__round(res->wait_us), "clone", json__round(res->clone_us),
			"run", json__round(res->run_us), "total", json__round(res->total_us))) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int run__error(struct call *c, int ret, const struct sb_err *err)
{
	switch (ret) {
	case -ENOENT:
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no template named %s", c->arg);
	case -EBADMSG: case -EPROTONOSUPPORT: case -ENOTSUP: case -ENOEXEC: case -EINVAL:
		return reply__error(c->r, MHD_HTTP_UNPROCESSABLE_CONTENT, "template %s: %s", c->arg, err->msg);
	case -EAGAIN: case -ESHUTDOWN:
		return reply__error(c->r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err->msg);
	case -ENOMEM:
		return ret;
	}
	serve__log(c->s, SERVE_LOG_ERROR, "run %s: %s", c->arg, err->msg);
	return reply__error(c->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err->msg);
}

/*
 * The policy of the template in dir (its state.bin), for resolving a run's
 * recycle policy.  Loaded and checked once per version of the template (a
 * replaced template is a new file), as the pool does.  0 or -errno + message
 * (-ENOENT: no such template).
 */
static int serve__template_policy(struct serve *s, const char *dir, struct snap_policy *pol,
				  struct sb_err *err)
{
	char path[PATH_MAX + 16];
	struct policy_cache *e = NULL;
	struct snapshot *snap;
	struct stat sb;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_STATE_FILE);
	if (stat(path, &sb) < 0)
		return err__errno(err, "template %s", dir);
	pthread_mutex_lock(&s->plock);
	for (int i = 0; i < POLICY_CACHE_SIZE; i++) {
		struct policy_cache *c = &s->pcache[i];

		if (c->dir[0] && !strcmp(c->dir, dir) && c->dev == sb.st_dev && c->ino == sb.st_ino &&
		    c->size == sb.st_size && c->mtime.tv_sec == sb.st_mtim.tv_sec &&
		    c->mtime.tv_nsec == sb.st_mtim.tv_nsec) {
			c->used = ++s->ptick;
			*pol = c->policy;
			pthread_mutex_unlock(&s->plock);
			return 0;
		}
	}
	pthread_mutex_unlock(&s->plock);
	snap = malloc(sizeof(*snap));
	if (!snap)
		return err__set(err, -ENOMEM, "out of memory");
	ret = snapshot__load(dir, snap, err);
	if (ret == 0) {
		*pol = snap->policy;
		snapshot__close(snap);
		pthread_mutex_lock(&s->plock);
		for (int i = 0; i < POLICY_CACHE_SIZE; i++)
			if (!e || s->pcache[i].used < e->used)
				e = &s->pcache[i];
		snprintf(e->dir, sizeof(e->dir), "%s", dir);
		e->dev = sb.st_dev;
		e->ino = sb.st_ino;
		e->size = sb.st_size;
		e->mtime = sb.st_mtim;
		e->policy = *pol;
		e->used = ++s->ptick;
		pthread_mutex_unlock(&s->plock);
	}
	free(snap);
	return ret;
}

static int api__run(struct call *c)
{
	struct run_query q = { { (uint64_t)RUN_DEFAULT_TIMEOUT_S * 1000000000ULL, RUN_DEFAULT_MAX_OUTPUT, { false, 0, 0 }, 0 }, "" };
	struct sandbox_result res;
	struct sb_err err = { "" };
	struct snap_policy pol;
	char dir[PATH_MAX];
	int ret;

	if (store__check_name(c->arg, &err) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, run_query__arg, &q);
	if (q.bad[0])
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", q.bad);
	if (store__path(&c->s->store, c->arg, dir, sizeof(dir), &err) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	/* the template's recycle policy if it has one, else the service's */
	ret = serve__template_policy(c->s, dir, &pol, &err);
	if (ret < 0)
		return run__error(c, ret, &err);
	pol = serve__effective(c->s, &pol);
	q.lim.recycle = (struct recycle_policy){ pol.recycle == SNAP_RECYCLE_ON, pol.max_reuses,
						 pol.idle_ms };
	if (serve__enter(c->s) < 0)
		return reply__error(c->r, MHD_HTTP_SERVICE_UNAVAILABLE, "the service is stopping");
	memset(&res, 0, sizeof(res));
	ret = pool__run(c->s->pool, c->arg, dir, c->rq->body, c->rq->len, &q.lim, &res, &err);
	serve__leave(c->s);
	if (ret < 0)
		return run__error(c, ret, &err);
	ret = reply__json(c->r, MHD_HTTP_OK, run__json(&res));
	sandbox_result__free(&res);
	return ret;
}

/* ---- sandboxes, health, metrics ------------------------------------------------------------ */

static int api__sandboxes(struct call *c)
{
	struct sandbox_info *v;
	json_t *a = json_array();
	size_t n;
	int ret;

	if (!a)
		return -ENOMEM;
	ret = pool__list(c->s->pool, &v, &n);
	if (ret < 0) {
		json_decref(a);
		return ret;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].template_name[sizeof(v[i].template_name) - 1] = 0;
		v[i].state[sizeof(v[i].state) - 1] = 0;
		json_array_append_new(a, json_pack("{s:I, s:o, s:o, s:I, s:I, s:i}", "id",
			(json_int_t)v[i].id, "template", json__text(v[i].template_name), "state",
			json__text(v[i].state), "age_ms", json__round(v[i].age_ms), "rss_bytes", (json_int_t)v[i].rss_bytes,
			"pid", (int)v[i].pid));
	}
	free(v);
	return reply__json(c->r, MHD_HTTP_OK, json_pack("{s:o}", "sandboxes", a));
}

static int api__sandbox_kill(struct call *c)
{
	uint64_t id;

	if (parse__u64(c->arg, 1, INT64_MAX, &id) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "sandbox id %.32s: expected a number", c->arg);
	/* a long-lived sandbox is released (killed if it runs); a run is killed */
	if (pool__release(c->s->pool, id) < 0 && pool__kill(c->s->pool, id) < 0)
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no live sandbox %llu", (unsigned long long)id);
	serve__log(c->s, SERVE_LOG_DEBUG, "sandbox %llu killed on request", (unsigned long long)id);
	return reply__empty(c->r, MHD_HTTP_NO_CONTENT);
}

/* ---- long-lived sandboxes ---------------------------------------------------------------------- */

static int sandbox__id(struct call *c, uint64_t *id)
{
	if (parse__u64(c->arg, 1, INT64_MAX, id) < 0)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "sandbox id %.32s: expected a number", c->arg);
	return 0;
}

/* POST /v1/sandboxes {"template": NAME, "timeout": S, "max_output": N} */
static int api__sandbox_start(struct call *c)
{
	struct sandbox_limits lim = { 0, RUN_DEFAULT_MAX_OUTPUT, { false, 0, 0 }, RESIZE_REPORT_DEFAULT };
	struct sb_err err = { "" };
	json_error_t je;
	json_t *body, *v;
	const char *name;
	char dir[PATH_MAX];
	uint64_t id;
	int ret;

	body = json_loadb(c->rq->body ? c->rq->body : "", c->rq->len, JSON_REJECT_DUPLICATES, &je);
	if (!body)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "line %d column %d: %s", je.line,
				    je.column, je.text);
	name = json_string_value(json_object_get(body, "template"));
	if (!json_is_object(body) || !name || store__check_name(name, &err) < 0) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s",
				    err.msg[0] ? err.msg : "expected {\"template\": NAME, ...}");
	}
	v = json_object_get(body, "timeout");
	if (v && (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400)) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "timeout: expected 0..86400 seconds");
	}
	if (v)
		lim.timeout_ns = (uint64_t)(json_number_value(v) * 1e9);
	v = json_object_get(body, "max_output");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1)) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "max_output: expected a positive integer");
	}
	if (v)
		lim.max_output = (uint64_t)json_integer_value(v);
	v = json_object_get(body, "free_page_reporting");
	if (v && !json_is_boolean(v)) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "free_page_reporting: expected true or false");
	}
	if (v && !json_is_true(v))
		lim.report_min = 0;
	if (store__path(&c->s->store, name, dir, sizeof(dir), &err) < 0) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	}
	if (serve__enter(c->s) < 0) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_SERVICE_UNAVAILABLE, "the service is stopping");
	}
	ret = pool__start(c->s->pool, name, dir, &lim, &id, &err);
	serve__leave(c->s);
	c->arg = name; /* for run__error's messages */
	if (ret < 0) {
		ret = run__error(c, ret, &err);
		json_decref(body);
		return ret;
	}
	json_decref(body);
	return reply__json(c->r, MHD_HTTP_CREATED, json_pack("{s:I}", "id", (json_int_t)id));
}

/* POST /v1/sandboxes/{id}/stdin[?eof=1]: the body is appended to its stdin */
static int api__sandbox_stdin(struct call *c)
{
	const char *eof = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "eof");
	uint64_t id;
	int ret = sandbox__id(c, &id);

	if (ret)
		return ret;
	if (eof && strcmp(eof, "0") && strcmp(eof, "1"))
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "eof: expected 0 or 1");
	ret = pool__write_stdin(c->s->pool, id, c->rq->body, c->rq->len, eof && !strcmp(eof, "1"));
	if (ret == -ENOENT)
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no long-lived sandbox %llu",
				    (unsigned long long)id);
	if (ret == -EPIPE)
		return reply__error(c->r, MHD_HTTP_CONFLICT, "sandbox %llu: stdin is closed, or it has ended",
				    (unsigned long long)id);
	if (ret == -EXDEV)
		return reply__error(c->r, MHD_HTTP_CONFLICT, "sandbox %llu has migrated to another "
				    "service (GET /v1/sandboxes/%llu says where)", (unsigned long long)id,
				    (unsigned long long)id);
	if (ret < 0)
		return reply__error(c->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "stdin: %s", strerror(-ret));
	return reply__empty(c->r, MHD_HTTP_NO_CONTENT);
}

/* {"mem": .., "cpu": .., "free_page_reporting": ..} of a resize's result */
static json_t *resize__json(uint64_t id, const struct sandbox_resize_result *r)
{
	json_t *j = json_pack("{s:I, s:I, s:b, s:I, s:I}", "id", (json_int_t)id, "mem_bytes",
			      (json_int_t)r->mem, "free_page_reporting", r->report, "reports",
			      (json_int_t)r->reports, "reported_bytes", (json_int_t)r->reported_bytes);

	if (j) {
		json_object_set_new(j, "cpu", r->cpu > 0 ? json_real(r->cpu) : json_null());
		json_object_set_new(j, "mem_in_use_bytes",
				    r->in_use ? json_integer((json_int_t)r->in_use) : json_null());
	}
	return j;
}

static int resize__status(int ret)
{
	switch (ret) {
	case -ENOENT: return MHD_HTTP_NOT_FOUND;
	case -ESRCH: case -EBUSY: case -ERANGE: case -ENOTSUP: return MHD_HTTP_CONFLICT;
	case -E2BIG: return MHD_HTTP_UNPROCESSABLE_CONTENT;
	case -ETIMEDOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
	}
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* PATCH /v1/sandboxes/{id} {"mem": "1G", "cpu": 0.5, "free_page_reporting": true} */
static int api__sandbox_patch(struct call *c)
{
	struct sandbox_resize rq = { 0, 0, -1 };
	struct sandbox_resize_result res;
	struct sb_err err = { "" };
	json_error_t je;
	json_t *body, *v;
	const char *key;
	uint64_t id;
	bool bad = false;
	int ret = sandbox__id(c, &id);

	if (ret)
		return ret;
	body = json_loadb(c->rq->body ? c->rq->body : "", c->rq->len, JSON_REJECT_DUPLICATES, &je);
	if (!body)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "line %d column %d: %s", je.line,
				    je.column, je.text);
	if (!json_is_object(body)) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST,
				    "expected {\"mem\": SIZE, \"cpu\": CPUS, \"free_page_reporting\": BOOL}");
	}
	json_object_foreach(body, key, v) {
		if (!strcmp(key, "mem")) {
			const char *str = json_string_value(v);

			if (json_is_integer(v) && json_integer_value(v) > 0) {
				rq.mem = (uint64_t)json_integer_value(v);
			} else if (!str || strlen(str) > 32 || boot__parse_mem(str, &rq.mem, &err) < 0) {
				const char *m = err.msg[0] == '-' ? err.msg + 2 : err.msg;

				ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST, "%s", m[0] ? m
						   : "mem: expected a size such as \"1G\" or a byte count");
				bad = true;
				break;
			}
		} else if (!strcmp(key, "cpu")) {
			if (!json_is_number(v) || json_number_value(v) < 0.01 || json_number_value(v) > 1024) {
				ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST,
						   "cpu: expected a share of CPUs from 0.01 to 1024, e.g. 0.5");
				bad = true;
				break;
			}
			rq.cpu = json_number_value(v);
		} else if (!strcmp(key, "free_page_reporting")) {
			if (!json_is_boolean(v)) {
				ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST,
						   "free_page_reporting: expected true or false");
				bad = true;
				break;
			}
			rq.report = json_is_true(v);
		} else {
			ret = reply__error(c->r, MHD_HTTP_BAD_REQUEST, "unknown field \"%.32s\" (expected "
					   "mem, cpu, free_page_reporting)", key);
			bad = true;
			break;
		}
	}
	json_decref(body);
	if (bad)
		return ret;
	ret = pool__resize(c->s->pool, id, &rq, &res, &err);
	if (ret < 0)
		return reply__error(c->r, resize__status(ret), "%s", err.msg);
	serve__log(c->s, SERVE_LOG_DEBUG, "sandbox %llu resized: %llu MiB", (unsigned long long)id,
		   (unsigned long long)(res.mem >> 20));
	return reply__json(c->r, MHD_HTTP_OK, resize__json(id, &res));
}

/* GET /v1/sandboxes/{id}[?stdout_offset=N&stderr_offset=N]: status and output */
static int api__sandbox_get(struct call *c)
{
	const char *oo = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "stdout_offset");
	const char *eo = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "stderr_offset");
	uint64_t id, out_off = 0, err_off = 0;
	struct sandbox_output o;
	json_t *j;
	int ret = sandbox__id(c, &id);

	if (ret)
		return ret;
	if ((oo && parse__u64(oo, 0, INT64_MAX, &out_off) < 0) ||
	    (eo && parse__u64(eo, 0, INT64_MAX, &err_off) < 0))
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "offsets: expected byte counts");
	if (pool__read(c->s->pool, id, out_off, err_off, &o) < 0)
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no long-lived sandbox %llu",
				    (unsigned long long)id);
	j = json_pack("{s:I, s:s, s:I, s:I}", "id", (json_int_t)id, "state",
		      o.migrated ? "migrated" : o.done ? "exited" : "running", "stdout_total",
		      (json_int_t)o.out_total, "stderr_total", (json_int_t)o.err_total);
	if (j && o.migrated)
		json_object_set_new(j, "location", json__text(o.location));
	if (j && (json__set_bytes(j, "stdout", o.out ? o.out : "", o.out_len) < 0 ||
		  json__set_bytes(j, "stderr", o.err ? o.err : "", o.err_len) < 0))
		json_decref(j), j = NULL;
	if (j && !o.done && !o.migrated) { /* its size now, as its last resize left it */
		json_object_set_new(j, "mem_bytes", json_integer((json_int_t)o.mem));
		json_object_set_new(j, "cpu", o.cpu > 0 ? json_real(o.cpu) : json_null());
		json_object_set_new(j, "free_page_reporting", json_boolean(o.report));
	}
	if (j && o.done && !o.migrated) {
		json_object_set_new(j, "exit_code", json_integer(o.result.status));
		json_object_set_new(j, "timed_out", json_boolean(o.result.timed_out));
		json_object_set_new(j, "killed", json_boolean(o.result.killed));
		json_object_set_new(j, "output_limited", json_boolean(o.result.output_limited));
		json_object_set_new(j, "message", json__text(o.result.message));
	}
	sandbox_output__free(&o);
	return reply__json(c->r, MHD_HTTP_OK, j);
}

/* POST /v1/sandboxes/{id}/migrate {"to": "tcp:HOST:PORT"|"unix:PATH", "downtime_ms": N}:
 * move it to the service listening there (--listen-migration); answers
 * once it runs there, or with why not (it runs on here). */
static int api__sandbox_migrate(struct call *c)
{
	struct sb_err err = { "" };
	struct mig_stats st;
	json_error_t je;
	json_t *body, *v;
	const char *to;
	uint64_t id, downtime = MIG_DEFAULT_DOWNTIME_MS;
	int ret = sandbox__id(c, &id), conn;

	if (ret)
		return ret;
	body = json_loadb(c->rq->body ? c->rq->body : "", c->rq->len, JSON_REJECT_DUPLICATES, &je);
	if (!body)
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "line %d column %d: %s", je.line,
				    je.column, je.text);
	to = json_string_value(json_object_get(body, "to"));
	v = json_object_get(body, "downtime_ms");
	if (!json_is_object(body) || !to || strlen(to) > 120 ||
	    (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 60000))) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_BAD_REQUEST, "expected {\"to\": \"tcp:HOST:PORT\" or "
				    "\"unix:PATH\", \"downtime_ms\": 1..60000}");
	}
	if (v)
		downtime = (uint64_t)json_integer_value(v);
	conn = mig__connect(to, &err);
	if (conn < 0) {
		json_decref(body);
		return reply__error(c->r, conn == -EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_BAD_GATEWAY,
				    "%s", err.msg);
	}
	ret = pool__migrate_out(c->s->pool, id, conn, to, (uint32_t)downtime, &st, &err);
	close(conn);
	if (ret == -ENOENT) {
		json_decref(body);
		return reply__error(c->r, MHD_HTTP_NOT_FOUND, "%s", err.msg);
	}
	if (ret < 0) {
		json_decref(body);
		return reply__error(c->r, ret == -EBUSY ? MHD_HTTP_CONFLICT : MHD_HTTP_BAD_GATEWAY,
				    "sandbox %llu did not migrate (it runs on here): %s",
				    (unsigned long long)id, err.msg);
	}
	{
		char to_copy[128];
		json_t *j;
		snprintf(to_copy, sizeof(to_copy), "%s", to);
		json_decref(body);
		j = json_pack(
			"{s:I, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "id", (json_int_t)id,
			"location", to_copy, "rounds", (int)st.rounds, "pages_sent",
			(json_int_t)st.pages_sent, "bytes_sent", (json_int_t)st.bytes_sent,
			"template_bytes", (json_int_t)st.template_bytes, "private_pages", (json_int_t)st.private_pages, "last_pages",
			(json_int_t)st.last_pages, "precopy_ms", st.precopy_ms, "downtime_ms",
			st.downtime_ms, "total_ms", st.total_ms);
		if (j) /* the downtime's parts */
			json_object_set_new(j, "downtime_parts_ms", json_pack("{s:f, s:f, s:f, s:f}",
				"pause", st.pause_ms, "last_round", st.last_round_ms, "ready",
				st.ready_ms, "resumed", st.resumed_ms));
		return reply__json(c->r, MHD_HTTP_OK, j);
	}
}


static int api__health(struct call *c)
{
	struct pool_stats st;

	pool__stats(c->s->pool, &st);
	return reply__json(c->r, MHD_HTTP_OK, json_pack("{s:s, s:s, s:i, s:i, s:o}", "status", "ok",
				"version", SNAPBOX_VERSION, "live", (int)st.live, "ready", (int)st.ready,
				"recycle_default", policy__json(&c->s->o->recycle)));
}

static void metrics__counter(FILE *f, const char *name, const char *help, const char *type,
			     unsigned long long v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static int api__metrics(struct call *c)
{
	static const char *const le[12] = { "0.00025", "0.0005", "0.001", "0.002", "0.004", "0.008",
					    "0.016", "0.032", "0.064", "0.128", "0.256", "+Inf" };
	static const char h[] = "snapbox_clone_latency_seconds";
	struct pool_stats st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	pool__stats(c->s->pool, &st);
	metrics__counter(f, "snapbox_clones_started_total", "Sandboxes started.", "counter", st.started);
	metrics__counter(f, "snapbox_clones_finished_total", "Sandboxes that ran to their end.",
			 "counter", st.finished);
	metrics__counter(f, "snapbox_clones_failed_total", "Sandboxes that could not be started.",
			 "counter", st.failed);
	metrics__counter(f, "snapbox_clones_timed_out_total", "Sandboxes stopped at their timeout.",
			 "counter", st.timed_out);
	metrics__counter(f, "snapbox_sandboxes_killed_total", "Sandboxes killed on request.",
			 "counter", st.killed);
	metrics__counter(f, "snapbox_live_sandboxes", "Sandboxes running now.", "gauge", st.live);
	metrics__counter(f, "snapbox_pool_ready", "Idle ready workers.", "gauge", st.ready);
	metrics__counter(f, "snapbox_recycled_runs_total", "Runs in a recycled sandbox.", "counter",
			 st.recycled_runs);
	metrics__counter(f, "snapbox_resets_total", "Sandboxes reset to their template.", "counter",
			 st.resets);
	metrics__counter(f, "snapbox_resets_failed_total", "Resets that failed (the worker ended).",
			 "counter", st.failed_resets);
	metrics__counter(f, "snapbox_reset_pages_total", "Guest pages put back by resets.", "counter",
			 st.reset_pages);
	metrics__counter(f, "snapbox_pool_recycled", "Recycled workers waiting for a run.", "gauge",
			 st.idle_recycled);
	metrics__counter(f, "snapbox_precloned_runs_total", "Runs in a pre-cloned sandbox (write "
			 "set pre-faulted).", "counter", st.precloned_runs);
	metrics__counter(f, "snapbox_preclones_total", "Pre-cloned sandboxes made.", "counter",
			 st.preclones);
	metrics__counter(f, "snapbox_preclones_failed_total", "Pre-clones that failed.", "counter",
			 st.failed_preclones);
	metrics__counter(f, "snapbox_prefault_pages_total", "Guest pages pre-faulted in pre-cloned "
			 "sandboxes.", "counter", st.prefault_pages);
	metrics__counter(f, "snapbox_pool_precloned", "Pre-cloned sandboxes waiting for a run.",
			 "gauge", st.idle_precloned);
	fprintf(f, "# HELP %s Request to response of a sandbox run.\n# TYPE %s histogram\n", h, h);
	for (int i = 0; i < 12; i++)
		fprintf(f, "%s_bucket{le=\"%s\"} %llu\n", h, le[i],
			(unsigned long long)st.latency_buckets[i]);
	fprintf(f, "%s_sum %.6f\n%s_count %llu\n", h, st.latency_sum_us / 1e6, h,
		(unsigned long long)st.latency_buckets[11]);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	c->r->status = MHD_HTTP_OK;
	c->r->body = buf;
	c->r->len = len;
	c->r->ctype = "text/plain; version=0.0.4; charset=utf-8";
	return 0;
}

/* ---- routing ------------------------------------------------------------------------------ */

enum route_kind { R_EXACT, R_ARG };

/* R_ARG: path, then one segment (the {name} or {id}), then suffix ("" or "/run") */
struct route {
	const char *method;
	const char *path;
	enum route_kind kind;
	int (*fn)(struct call *c);
	const char *suffix;
};

static const struct route routes[] = {
	{ "GET", "/v1/health", R_EXACT, api__health, "" },
	{ "GET", "/metrics", R_EXACT, api__metrics, "" },
	{ "GET", "/v1/templates", R_EXACT, api__templates, "" },
	{ "GET", "/v1/templates/", R_ARG, api__template_get, "" },
	{ "POST", "/v1/templates/", R_ARG, api__template_create, "" },
	{ "DELETE", "/v1/templates/", R_ARG, api__template_delete, "" },
	{ "POST", "/v1/templates/", R_ARG, api__run, "/run" },
	{ "GET", "/v1/sandboxes", R_EXACT, api__sandboxes, "" },
	{ "POST", "/v1/sandboxes", R_EXACT, api__sandbox_start, "" },
	{ "GET", "/v1/sandboxes/", R_ARG, api__sandbox_get, "" },
	{ "POST", "/v1/sandboxes/", R_ARG, api__sandbox_stdin, "/stdin" },
	{ "POST", "/v1/sandboxes/", R_ARG, api__sandbox_migrate, "/migrate" },
	{ "DELETE", "/v1/sandboxes/", R_ARG, api__sandbox_kill, "" },
	{ "PATCH", "/v1/sandboxes/", R_ARG, api__sandbox_patch, "" },
};

/* Does url have route rt's shape?  The path segment goes to arg[len]. */
static bool route__match(const struct route *rt, const char *url, char *arg, size_t len)
{
	size_t pl = strlen(rt->path), n;
	const char *rest;

	if (rt->kind == R_EXACT)
		return !strcmp(url, rt->path);
	if (strncmp(url, rt->path, pl))
		return false;
	rest = url + pl;
	n = strcspn(rest, "/");
	if (n == 0 || n >= len)
		return false;
	if (strcmp(rest + n, rt->suffix) != 0)
		return false;
	memcpy(arg, rest, n);
	arg[n] = 0;
	return true;
}

static int serve__route(struct call *c, const char *method, const char *url)
{
	const char *m = strcmp(method, "HEAD") ? method : "GET";
	char arg[128];
	bool path_known = false;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!route__match(&routes[i], url, arg, sizeof(arg)))
			continue;
		if (!strcmp(m, routes[i].method)) {
			c->arg = arg;
			return routes[i].fn(c);
		}
		if (strlen(c->r->allow) + 8 < sizeof(c->r->allow)) {
			if (path_known)
				strcat(c->r->allow, ", ");
			strcat(c->r->allow, routes[i].method);
		}
		path_known = true;
	}
	if (path_known)
		return reply__error(c->r, MHD_HTTP_METHOD_NOT_ALLOWED, "%.16s is not allowed on %.200s "
				    "(allowed: %s)", method, url, c->r->allow);
	return reply__error(c->r, MHD_HTTP_NOT_FOUND, "no such endpoint: %.200s (see docs/API.md)", url);
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------------------ */

static int req__append(struct req *rq, const char *data, size_t n)
{
	if (rq->too_large || n > SERVE_MAX_BODY - rq->len) {
		rq->too_large = true;
		return -EFBIG;
	}
	if (rq->len + n > rq->cap) {
		size_t cap = rq->cap ? rq->cap : 4096;
		char *b;

		while (cap < rq->len + n)
			cap *= 2;
		if (cap > SERVE_MAX_BODY)
			cap = SERVE_MAX_BODY;
		b = realloc(rq->body, cap);
		if (!b)
			return -ENOMEM;
		rq->body = b;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	return 0;
}

/* A declared Content-Length over the cap is refused before the body is read. */
static bool req__declared_too_large(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t v;

	return cl && parse__u64(cl, 0, SERVE_MAX_BODY, &v) == -ERANGE;
}

static enum MHD_Result serve__answer(struct serve *s, struct MHD_Connection *conn, struct req *rq,
				     const char *method, const char *url)
{
	struct reply r = { 0, NULL, 0, NULL, "" };
	struct call c = { s, conn, rq, NULL, &r };
	int ret;

	if (rq->too_large)
		ret = reply__error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %u bytes",
				   SERVE_MAX_BODY);
	else
		ret = serve__route(&c, method, url);
	if (ret < 0) {
		free(r.body);
		memset(&r, 0, sizeof(r));
		serve__log(s, SERVE_LOG_ERROR, "%.16s %.200s: %s", method, url, strerror(-ret));
		if (reply__error(&r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", strerror(-ret)) < 0)
			return MHD_NO;
	}
	rq->answered = true;
	serve__log(s, r.status >= 500 ? SERVE_LOG_ERROR : SERVE_LOG_DEBUG, "%.16s %.200s -> %u (%.1f ms)",
		   method, url, r.status, (double)(serve__now_ns() - rq->t0) / 1e6);
	return reply__send(conn, &r);
}

static enum MHD_Result serve__access(void *cls, struct MHD_Connection *conn, const char *url,
				     const char *method, const char *version, const char *data,
				     size_t *data_size, void **req_cls)
{
	struct serve *s = cls;
	struct req *rq = *req_cls;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->t0 = serve__now_ns();
		*req_cls = rq;
		if (!req__declared_too_large(conn))
			return MHD_YES;
		rq->too_large = true;
		return serve__answer(s, conn, rq, method, url);
	}
	if (rq->answered) {
		*data_size = 0;
		return MHD_YES;
	}
	if (*data_size) {
		int ret = req__append(rq, data, *data_size);

		*data_size = 0;
		return ret == -ENOMEM ? MHD_NO : MHD_YES;
	}
	return serve__answer(s, conn, rq, method, url);
}

static void serve__completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			     enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *req_cls;

	(void)cls, (void)conn, (void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*req_cls = NULL;
	}
}

/* ---- start and stop ----------------------------------------------------------------------------- */

/* A live service answers on path: refuse.  A stale socket file: remove. */
static int serve__clear_stale(const char *path, struct sb_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, ret;

	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : err__errno(err, "%s", path);
	if (!S_ISSOCK(sb.st_mode))
		return err__set(err, -EEXIST, "%s exists and is not a socket; not touching it", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__errno(err, "socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (ret == 0)
		return err__set(err, -EADDRINUSE, "%s: another snapbox service is listening there", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return err__errno(err, "remove stale socket %s", path);
	return 0;
}

static int serve__listen(struct serve *s, struct sb_err *err)
{
	const char *path = s->o->socket_path;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	mode_t old;
	int fd, ret;

	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return err__set(err, -ENAMETOOLONG, "socket path '%s': 1 to %zu bytes", path,
				sizeof(sa.sun_path) - 1);
	ret = serve__clear_stale(path, err);
	if (ret < 0)
		return ret;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__errno(err, "socket");
	old = umask(0117); /* never more than 0660, even for a moment */
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 || chmod(path, 0660) < 0 || stat(path, &sb) < 0 || listen(fd, 128) < 0) {
		ret = err__errno(err, "listen on %s", path);
		close(fd);
		return ret;
	}
	s->listen_fd = fd;
	s->sock_dev = sb.st_dev;
	s->sock_ino = sb.st_ino;
	return 0;
}

/* Remove the socket file if it is still the one we made. */
static void serve__unlink(struct serve *s)
{
	struct stat sb;

	if (lstat(s->o->socket_path, &sb) == 0 && sb.st_dev == s->sock_dev && sb.st_ino == s->sock_ino)
		unlink(s->o->socket_path);
}

static int serve__http_start(struct serve *s, struct sb_err *err)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;

	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, serve__access, s,
				  MHD_OPTION_EXTERNAL_LOGGER, serve__mhd_log, s,
				  MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
				  MHD_OPTION_NOTIFY_COMPLETED, serve__completed, s,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONNS,
				  MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 << 10),
				  MHD_OPTION_END);
	if (!s->mhd)
		return err__set(err, -EIO, "could not start the HTTP server (libmicrohttpd) on %s",
				s->o->socket_path);
	return 0;
}

static int serve__pool_start(struct serve *s, struct sb_err *err)
{
	struct pool_opts po = {
		.ready_per_size = s->o->pool,
		.max_live = s->o->max_live,
		.log_fd = STDERR_FILENO,
		.log_level = s->o->log_level,
		.precloned = s->o->precloned,
	};

	return pool__create(&s->pool, &po, err);
}

/* ---- the migration listener (--listen-migration) ------------------------------------------ */

/* The stream's template in our store, by its content id: the name the
 * source used first, then every template; none: fetched from the source
 * (migrate/template_xfer.c). */
static int serve__tdir_of(void *arg, const struct mig_hello *h, struct mig_reader *r, int conn,
			  char *name, size_t name_len, char *dir, size_t dir_len, struct sb_err *err)
{
	struct serve *s = arg;
	const char *tid = h->template_id, *hint = h->template_name;
	struct snapshot *snap = calloc(1, sizeof(*snap));
	char **names = NULL;
	size_t n = 0;
	int found = 0;

	if (!snap)
		return err__set(err, -ENOMEM, "out of memory");
	if (store__list(&s->store, &names, &n, err) < 0)
		n = 0;
	for (size_t i = 0; i <= n && !found; i++) {
		const char *nm = i == 0 ? hint : names[i - 1];
		struct sb_err e = { "" };

		if ((i > 0 && !strcmp(nm, hint)) || store__check_name(nm, &e) < 0 ||
		    store__path(&s->store, nm, dir, dir_len, &e) < 0)
			continue;
		if (snapshot__load(dir, snap, &e) == 0) {
			found = !strcmp(snap->id, tid);
			snapshot__close(snap);
		}
		if (found)
			snprintf(name, name_len, "%s", nm);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(snap);
	if (found)
		return 0;
	found = mig__fetch_template(r, conn, &s->store, h, name, name_len, err);
	if (found < 0)
		return found;
	serve__log(s, SERVE_LOG_INFO, "template %s (id %s) came from the source of a migration",
		   name, tid);
	return store__path(&s->store, name, dir, dir_len, err);
}

struct mig_conn {
	struct serve *s;
	int fd;
};

static void *serve__mig_one(void *arg)
{
	struct mig_conn *mc = arg;
	struct sb_err err = { "" };
	uint64_t id = 0;

	if (serve__enter(mc->s) < 0) {
		close(mc->fd);
	} else {
		if (pool__migrate_in(mc->s->pool, mc->fd, serve__tdir_of, mc->s, &id, &err) < 0)
			serve__log(mc->s, SERVE_LOG_ERROR, "an arriving sandbox was refused: %s", err.msg);
		else
			serve__log(mc->s, SERVE_LOG_INFO, "sandbox %llu arrived", (unsigned long long)id);
		serve__leave(mc->s);
	}
	free(mc);
	return NULL;
}

static void *serve__mig_accept(void *arg)
{
	struct serve *s = arg;

	for (;;) {
		int fd = accept4(s->mig_fd, NULL, NULL, SOCK_CLOEXEC);
		struct mig_conn *mc;
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return NULL; /* shut down */
		}
		mc = calloc(1, sizeof(*mc));
		if (!mc) {
			close(fd);
			continue;
		}
		mc->s = s;
		mc->fd = fd;
		if (pthread_create(&t, NULL, serve__mig_one, mc) != 0) {
			close(fd);
			free(mc);
			continue;
		}
		pthread_detach(t);
	}
}

static int serve__mig_start(struct serve *s, struct sb_err *err)
{
	if (!s->o->listen_migration)
		return 0;
	s->mig_fd = mig__listen(s->o->listen_migration, err);
	if (s->mig_fd < 0)
		return s->mig_fd;
	if (pthread_create(&s->mig_thread, NULL, serve__mig_accept, s) != 0) {
		close(s->mig_fd);
		s->mig_fd = -1;
		return err__set(err, -EAGAIN, "cannot start the migration listener");
	}
	s->mig_started = true;
	return 0;
}

static void serve__mig_stop(struct serve *s)
{
	if (!s->mig_started)
		return;
	shutdown(s->mig_fd, SHUT_RDWR);
	pthread_join(s->mig_thread, NULL);
	close(s->mig_fd);
	s->mig_fd = -1;
	s->mig_started = false;
	if (!strncmp(s->o->listen_migration, "unix:", 5))
		unlink(s->o->listen_migration + 5);
}

/* Stop accepting, end what runs, stop the HTTP threads, then the pool. */
static void serve__stop(struct serve *s)
{
	if (s->mhd) {
		MHD_socket lfd = MHD_quiesce_daemon(s->mhd);

		if (lfd != MHD_INVALID_SOCKET)
			close(lfd);
		else
			close(s->listen_fd);
		s->listen_fd = -1;
		serve__unlink(s);
		serve__mig_stop(s);
		serve__drain(s);
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
	}
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		serve__unlink(s);
	}
	if (s->pool)
		pool__destroy(s->pool);
	s->pool = NULL;
}

int serve__run(const struct serve_opts *o, struct sb_err *err)
{
	struct serve *s = calloc(1, sizeof(*s));
	sigset_t stop, old;
	int ret, sig = 0;

	if (!s)
		return err__set(err, -ENOMEM, "out of memory");
	s->o = o;
	s->listen_fd = -1;
	s->mig_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->plock, NULL);
	pthread_cond_init(&s->idle, NULL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	/* blocked in every thread to come; this one takes them with sigwait() */
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	signal(SIGPIPE, SIG_IGN);
	ret = store__open(&s->store, o->store, err);
	if (ret == 0) /* refuse a live socket before starting anything */
		ret = serve__clear_stale(o->socket_path, err);
	if (ret == 0)
		ret = serve__pool_start(s, err);   /* forks: before any thread */
	if (ret == 0)
		ret = serve__listen(s, err);
	if (ret == 0)
		ret = serve__http_start(s, err);
	if (ret == 0)
		ret = serve__mig_start(s, err);
	if (ret == 0) {
		char pol[64];

		snap_policy__format(&o->recycle, pol, sizeof(pol));
		serve__log(s, SERVE_LOG_INFO, "listening on %s (store %s, pool %u, max-live %u, "
			   "recycle default %s)", o->socket_path, s->store.root, o->pool, o->max_live, pol);
		while (sigwait(&stop, &sig) != 0)
			;
		serve__log(s, SERVE_LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	}
	serve__stop(s);
	if (ret == 0)
		serve__log(s, SERVE_LOG_INFO, "stopped");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->plock);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return ret;
}
