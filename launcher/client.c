/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 over a Unix socket to `snapbox serve`, and `snapbox ps|kill|run --server`. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/file.h"
#include "launcher/cli.h"
#include "launcher/client.h"

#define RUN_MAX_REQUEST   (8u << 20)   /* as the service's body cap */
#define RUN_MAX_ANSWER    (128ULL << 20)
#define CTL_TIMEOUT_S     30
#define RUN_SLACK_S       30           /* on top of the sandbox's timeout */

/* ---- the HTTP client ------------------------------------------------------- */

/* As main.c's usage_error(), here so that the client links without main.o. */
__attribute__((format(printf, 1, 0)))
static int client__usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "snapbox: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see 'snapbox --help')\n");
	return EXIT_USAGE;
}

const char *client__socket_path(const char *opt)
{
	const char *e = getenv("SNAPBOX_SOCKET");

	if (opt && *opt)
		return opt;
	return e && *e ? e : "/run/snapbox.sock";
}

int client__escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			     c == '-' || c == '.' || c == '_' || c == '~';

		if (n + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = 0;
	return 0;
}

static int client__connect(const char *path, unsigned timeout_s, struct sb_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return err__errno(err, "cannot reach the snapbox service at %s", path);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__errno(err, "cannot reach the snapbox service at %s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = err__errno(err, "cannot reach the snapbox service at %s", path);
		close(fd);
		return ret;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int client__send(int fd, const char *method, const char *target, const void *body,
			size_t len)
{
	char head[4096 + 256];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			 "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
			 method, target, len);
	int ret;

	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	ret = file__write_all(fd, head, (size_t)n);
	if (ret == 0 && len)
		ret = file__write_all(fd, body, len);
	return ret;
}

struct rbuf {
	char *b;
	size_t len, cap;
};

/* Read once into b (growing it, at most limit bytes in all): bytes read, 0 at EOF, -errno. */
static ssize_t rbuf__read(int fd, struct rbuf *b, size_t limit)
{
	ssize_t n;

	if (b->len >= limit)
		return -EFBIG;
	if (b->cap - b->len < 4096 && b->cap < limit + 1) {
		size_t cap = b->cap ? b->cap * 2 : 16384;
		char *nb;

		if (cap > limit + 1)
			cap = limit + 1;
		nb = realloc(b->b, cap);
		if (!nb)
			return -ENOMEM;
		b->b = nb;
		b->cap = cap;
	}
	do
		n = read(fd, b->b + b->len, b->cap - 1 - b->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	b->len += (size_t)n;
	b->b[b->len] = 0;
	return n;
}

/* Status line and the headers we use, from h: the head, each line ending in
 * CRLF, then NUL.  *cl = -1 when there is no Content-Length. */
static int client__parse_head(const char *h, int *status, long long *cl)
{
	const char *line;

	if (strncmp(h, "HTTP/1.", 7) || !h[7] || h[8] != ' ' || sscanf(h + 9, "%3d", status) != 1 ||
	    *status < 100 || *status > 599)
		return -EPROTO;
	*cl = -1;
	for (line = strstr(h, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
		const char *v = line + 2;

		if (!strncasecmp(v, "Content-Length:", 15)) {
			char *end;
			v += 15;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v < '0' || *v > '9')
				return -EPROTO;
			errno = 0;
			*cl = strtoll(v, &end, 10);
			if (errno || *cl < 0 || (*end != '\r' && *end != ' '))
				return -EPROTO;
		} else if (!strncasecmp(v, "Transfer-Encoding:", 18) && strcasestr(v, "chunked") &&
			   strcasestr(v, "chunked") < strstr(v, "\r\n")) { /* this line's */
			return -EPROTO; /* the service always sends a length */
		}
	}
	return 0;
}

static int client__read_answer(int fd, uint64_t max_body, struct http_response *r)
{
	struct rbuf b = { NULL, 0, 0 };
	size_t limit = CLIENT_MAX_HEADERS, hlen;
	long long cl = -1;
	char *end = NULL;
	ssize_t n = 1;
	int ret;

	while (!(end = b.b ? strstr(b.b, "\r\n\r\n") : NULL) && n > 0)
		n = rbuf__read(fd, &b, limit);
	if (!end) {
		ret = n < 0 ? (int)n : -EPROTO;
		goto fail;
	}
	end[2] = 0;
	ret = client__parse_head(b.b, &r->status, &cl);
	end[2] = '\r';
	if (ret < 0)
		goto fail;
	hlen = (size_t)(end - b.b) + 4;
	if (cl >= 0 && (uint64_t)cl > max_body) {
		ret = -EFBIG;
		goto fail;
	}
	limit = hlen + (cl >= 0 ? (size_t)cl : max_body);
	while ((cl < 0 || b.len < limit) && (n = rbuf__read(fd, &b, limit)) > 0)
		;
	if (n < 0 && !(n == -EFBIG && cl >= 0)) {
		ret = (int)n;
		goto fail;
	}
	if (cl >= 0 && b.len < limit) {
		ret = -EPROTO; /* shorter than it said */
		goto fail;
	}
	r->len = b.len - hlen;
	memmove(b.b, b.b + hlen, r->len);
	b.b[r->len] = 0;
	r->body = b.b;
	return 0;
fail:
	free(b.b);
	return ret;
}

int client__request(const char *path, const char *method, const char *target, const void *body,
		    size_t len, uint64_t max_body, unsigned timeout_s, struct http_response *r,
		    struct sb_err *err)
{
	int fd = client__connect(path, timeout_s, err), sret, ret;

	memset(r, 0, sizeof(*r));
	if (fd < 0)
		return fd;
	/* a service that refuses the body answers before reading it: read anyway */
	sret = client__send(fd, method, target, body, len);
	ret = client__read_answer(fd, max_body, r);
	close(fd);
	if (ret == 0)
		return 0;
	if (ret == -ETIMEDOUT)
		return err__set(err, ret, "the snapbox service at %s did not answer within %u s", path,
				timeout_s);
	if (ret == -EPROTO)
		return err__set(err, ret, "the snapbox service at %s sent a malformed answer", path);
	if (ret == -EFBIG)
		return err__set(err, ret, "the snapbox service at %s sent an answer over %llu bytes",
				path, (unsigned long long)max_body);
	return err__set(err, ret, "the snapbox service at %s: %s", path, strerror(sret ? -sret : -ret));
}

void http_response__free(struct http_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- CLI: answers --------------------------------------------------------------- */

/* A 4xx/5xx answer as one line: its "error", else its status. */
static int client__fail_answer(const struct http_response *r)
{
	json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));

	if (msg)
		fprintf(stderr, "snapbox: %s\n", msg);
	else
		fprintf(stderr, "snapbox: the snapbox service answered HTTP %d\n", r->status);
	json_decref(j);
	return EXIT_SNAPBOX;
}

/* A 200 answer: its JSON body into *j (0; the caller frees *j and r).
 * Anything else: the service's error printed, r freed, the exit code. */
static int client__ok_json(struct http_response *r, json_t **j)
{
	int ret;

	if (r->status != 200) {
		ret = client__fail_answer(r);
		http_response__free(r);
		return ret;
	}
	*j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
	return 0;
}

/* A sandbox ID as 'snapbox ps' lists it: 1..20 decimal digits. */
static int client__is_id(const char *id)
{
	return *id && strlen(id) <= 20 && strspn(id, "0123456789") == strlen(id);
}

static int client__fail(const struct sb_err *err)
{
	fprintf(stderr, "snapbox: %s\n", err->msg);
	return EXIT_SNAPBOX;
}

/* --server PATH, then the remaining arguments from argv[optind]. */
static int client__parse_server(int argc, char **argv, const char **sock)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*sock = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		if (c == 's')
			*sock = optarg;
		else if (c == ':')
			return client__usage("option %s needs an argument", argv[optind - 1]);
		else
			return client__usage("unknown option %s", argv[optind - 1]);
	}
	*sock = client__socket_path(*sock);
	return -1;
}

/* ---- snapbox ps ------------------------------------------------------------------- */

static void fmt_age(double ms, char *out, size_t len)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		snprintf(out, len, "%.1fs", ms / 1000);
	else if (ms < 3600e3)
		snprintf(out, len, "%dm%02ds", (int)(ms / 60e3), (int)(ms / 1000) % 60);
	else
		snprintf(out, len, "%dh%02dm", (int)(ms / 3600e3), (int)(ms / 60e3) % 60);
}

static void fmt_bytes(double b, char *out, size_t len)
{
	if (b >= (1 << 30))
		snprintf(out, len, "%.1fG", b / (1 << 30));
	else if (b >= (1 << 20))
		snprintf(out, len, "%.1fM", b / (1 << 20));
	else
		snprintf(out, len, "%.0fK", b / 1024);
}

static void ps__print(json_t *list)
{
	size_t i;
	json_t *v;

	printf("%-8s %-24s %-10s %8s %8s\n", "ID", "TEMPLATE", "STATE", "AGE", "RSS");
	json_array_foreach(list, i, v) {
		char age[16], rss[16];
		const char *t = json_string_value(json_object_get(v, "template"));
		const char *st = json_string_value(json_object_get(v, "state"));

		fmt_age(json_number_value(json_object_get(v, "age_ms")), age, sizeof(age));
		fmt_bytes(json_number_value(json_object_get(v, "rss_bytes")), rss, sizeof(rss));
		printf("%-8lld %-24.64s %-10.16s %8s %8s\n",
		       (long long)json_integer_value(json_object_get(v, "id")), t ? t : "?",
		       st ? st : "?", age, rss);
	}
}

int cmd_ps(int argc, char **argv)
{
	struct http_response r;
	struct sb_err err = { "" };
	const char *sock;
	json_t *j, *list;
	int ret = client__parse_server(argc, argv, &sock);

	if (ret >= 0)
		return ret;
	if (optind < argc)
		return client__usage("ps: unexpected argument %s", argv[optind]);
	if (client__request(sock, "GET", "/v1/sandboxes", NULL, 0, CLIENT_MAX_BODY, CTL_TIMEOUT_S, &r,
			    &err) < 0)
		return client__fail(&err);
	if ((ret = client__ok_json(&r, &j)))
		return ret;
	list = json_object_get(j, "sandboxes");
	if (json_is_array(list)) {
		ps__print(list);
		ret = 0;
	} else {
		fprintf(stderr, "snapbox: the snapbox service at %s sent an unexpected answer\n", sock);
		ret = EXIT_SNAPBOX;
	}
	json_decref(j);
	http_response__free(&r);
	return ret;
}

/* ---- snapbox kill ------------------------------------------------------------------- */

int cmd_kill(int argc, char **argv)
{
	struct http_response r;
	struct sb_err err = { "" };
	const char *sock, *id;
	char target[96];
	int ret = client__parse_server(argc, argv, &sock);

	if (ret >= 0)
		return ret;
	if (optind != argc - 1)
		return client__usage("kill: expected one sandbox ID (see 'snapbox ps')%s", "");
	id = argv[optind];
	if (!client__is_id(id))
		return client__usage("kill: %s is not a sandbox ID (a number, see 'snapbox ps')", id);
	snprintf(target, sizeof(target), "/v1/sandboxes/%s", id);
	if (client__request(sock, "DELETE", target, NULL, 0, CLIENT_MAX_HEADERS, CTL_TIMEOUT_S, &r,
			    &err) < 0)
		return client__fail(&err);
	if (r.status == 204) {
		ret = 0;
	} else {
		ret = client__fail_answer(&r);
		if (r.status == 404)
			ret = 1; /* no such sandbox (any more) */
	}
	http_response__free(&r);
	return ret;
}

/* ---- snapbox migrate ------------------------------------------------------------------ */

/* `snapbox migrate [--server SOCKET] [--downtime-ms N] ID tcp:HOST:PORT|unix:PATH` */
int cmd_migrate(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct http_response r;
	struct sb_err err = { "" };
	const char *sock = NULL, *id, *to;
	unsigned long downtime = 0;
	char target[96], *end;
	json_t *body, *j;
	char *text;
	int c, ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		if (c == 's') {
			sock = optarg;
		} else if (c == 'd') {
			errno = 0;
			downtime = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || downtime < 1 || downtime > 60000)
				return client__usage("--downtime-ms %s: expected 1..60000", optarg);
		} else if (c == ':') {
			return client__usage("option %s needs an argument", argv[optind - 1]);
		} else {
			return client__usage("unknown option %s", argv[optind - 1]);
		}
	}
	sock = client__socket_path(sock);
	if (optind != argc - 2)
		return client__usage("migrate: expected a sandbox ID and a destination "
				     "(tcp:HOST:PORT or unix:PATH)%s", "");
	id = argv[optind];
	to = argv[optind + 1];
	if (!client__is_id(id))
		return client__usage("migrate: %s is not a sandbox ID (a number, see 'snapbox ps')", id);
	snprintf(target, sizeof(target), "/v1/sandboxes/%s/migrate", id);
	body = json_pack("{s:s}", "to", to);
	if (body && downtime)
		json_object_set_new(body, "downtime_ms", json_integer((json_int_t)downtime));
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return client__usage("migrate: out of memory%s", "");
	ret = client__request(sock, "POST", target, text, strlen(text), CLIENT_MAX_HEADERS, 600, &r,
			      &err);
	free(text);
	if (ret < 0)
		return client__fail(&err);
	if ((ret = client__ok_json(&r, &j)))
		return ret;
	printf("sandbox %s migrated to %s: %lld pages (%lld bytes; %lld private) in %d rounds, "
	       "downtime %.2f ms, total %.1f ms\n", id, to,
	       (long long)json_integer_value(json_object_get(j, "pages_sent")),
	       (long long)json_integer_value(json_object_get(j, "bytes_sent")),
	       (long long)json_integer_value(json_object_get(j, "private_pages")),
	       (int)json_integer_value(json_object_get(j, "rounds")),
	       json_number_value(json_object_get(j, "downtime_ms")),
	       json_number_value(json_object_get(j, "total_ms")));
	if (json_integer_value(json_object_get(j, "template_bytes")) > 0)
		printf("  (the destination lacked its template: it went first, %lld bytes)\n",
		       (long long)json_integer_value(json_object_get(j, "template_bytes")));
	json_decref(j);
	http_response__free(&r);
	return 0;
}

/* ---- snapbox resize ---------------------------------------------------------------- */

/* snapbox resize [--server SOCKET] ID [--mem SIZE] [--cpu CPUS] [--free-page-reporting on|off]:
 * PATCH /v1/sandboxes/ID; prints the sandbox's size after it. */
int cmd_resize(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "free-page-reporting", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *mem = NULL, *cpu = NULL, *rep = NULL, *id;
	struct http_response r;
	struct sb_err err = { "" };
	char target[96], body[256], esc[80];
	size_t o = 0;
	json_t *j;
	int c, ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		if (c == 's')
			sock = optarg;
		else if (c == 'm')
			mem = optarg;
		else if (c == 'c')
			cpu = optarg;
		else if (c == 'r')
			rep = optarg;
		else if (c == ':')
			return client__usage("option %s needs an argument", argv[optind - 1]);
		else
			return client__usage("unknown option %s", argv[optind - 1]);
	}
	sock = client__socket_path(sock);
	if (optind != argc - 1)
		return client__usage("resize: expected one sandbox ID (see 'snapbox ps')%s", "");
	id = argv[optind];
	if (!client__is_id(id))
		return client__usage("resize: %s is not a sandbox ID (a number, see 'snapbox ps')", id);
	if (rep && strcmp(rep, "on") && strcmp(rep, "off"))
		return client__usage("resize: --free-page-reporting %s: expected on or off", rep);
	if (cpu) {
		char *end;
		double v = strtod(cpu, &end);

		if (end == cpu || *end || !(v >= 0.01 && v <= 1024))
			return client__usage("resize: --cpu %s: expected a share of CPUs such as 0.5", cpu);
	}
	if (mem && (strlen(mem) > 32 || client__escape(mem, esc, sizeof(esc)) < 0))
		return client__usage("resize: --mem %s: expected a size such as 1G", mem);
	o += (size_t)snprintf(body + o, sizeof(body) - o, "{");
	if (mem)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "\"mem\": \"%s\"", esc);
	if (cpu)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"cpu\": %s", mem ? ", " : "", cpu);
	if (rep)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"free_page_reporting\": %s",
				      mem || cpu ? ", " : "", strcmp(rep, "on") ? "false" : "true");
	snprintf(body + o, sizeof(body) - o, "}");
	snprintf(target, sizeof(target), "/v1/sandboxes/%s", id);
	if (client__request(sock, "PATCH", target, body, strlen(body), CLIENT_MAX_HEADERS,
			    CTL_TIMEOUT_S, &r, &err) < 0)
		return client__fail(&err);
	if ((ret = client__ok_json(&r, &j)))
		return ret;
	{
		json_t *cj = json_object_get(j, "cpu");
		char cbuf[32] = "no limit";

		if (json_is_number(cj))
			snprintf(cbuf, sizeof(cbuf), "%.2f", json_number_value(cj));
		printf("sandbox %s: mem %lld MiB, cpu %s, free-page reporting %s (%lld MiB given back)\n",
		       id, (long long)(json_integer_value(json_object_get(j, "mem_bytes")) >> 20), cbuf,
		       json_is_true(json_object_get(j, "free_page_reporting")) ? "on" : "off",
		       (long long)(json_integer_value(json_object_get(j, "reported_bytes")) >> 20));
	}
	json_decref(j);
	http_response__free(&r);
	return 0;
}

/* ---- snapbox run --server ------------------------------------------------------------- */

static int b64__value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode in place: length, or -EINVAL. */
static ssize_t b64__decode(char *s, size_t len)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len && s[i] != '='; i++) {
		int v = b64__value((unsigned char)s[i]);

		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[o++] = (char)(acc >> bits & 0xff);
		}
	}
	return (ssize_t)o;
}

/* The sandbox's stdout or stderr (text or base64) to fd. */
static int run__output(json_t *j, const char *key, int fd)
{
	char k[32];
	json_t *v = json_object_get(j, key);
	char *copy;
	ssize_t n;
	int ret;

	if (json_is_string(v))
		return file__write_all(fd, json_string_value(v), json_string_length(v));
	snprintf(k, sizeof(k), "%s_base64", key);
	v = json_object_get(j, k);
	if (!json_is_string(v))
		return 0;
	copy = strdup(json_string_value(v));
	if (!copy)
		return -ENOMEM;
	n = b64__decode(copy, strlen(copy));
	ret = n < 0 ? (int)n : file__write_all(fd, copy, (size_t)n);
	free(copy);
	return ret;
}

static int run__read_stdin(char **buf, size_t *len)
{
	struct rbuf b = { NULL, 0, 0 };
	ssize_t n;

	while ((n = rbuf__read(STDIN_FILENO, &b, RUN_MAX_REQUEST)) > 0)
		;
	if (n < 0) {
		free(b.b);
		return (int)n;
	}
	*buf = b.b;
	*len = b.len;
	return 0;
}

/* Print what the sandbox said and return its exit status. */
static int run__answer(const struct http_response *r)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *code = json_object_get(j, "exit_code");
	const char *msg = json_string_value(json_object_get(j, "message"));
	int ret;

	if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 255) {
		fprintf(stderr, "snapbox: the snapbox service sent an answer without an exit code\n");
		json_decref(j);
		return EXIT_SNAPBOX;
	}
	ret = (int)json_integer_value(code);
	if (run__output(j, "stdout", STDOUT_FILENO) < 0 || run__output(j, "stderr", STDERR_FILENO) < 0)
		ret = EXIT_SNAPBOX;
	if (msg && *msg)
		fprintf(stderr, "snapbox: %s\n", msg);
	json_decref(j);
	return ret;
}

int cmd_run_remote(const char *sock, const char *name, uint64_t timeout_ns)
{
	struct http_response r;
	struct sb_err err = { "" };
	char ename[256], target[400];
	unsigned wait_s = RUN_SLACK_S + 30;
	size_t len = 0;
	char *in = NULL;
	int ret;

	if (client__escape(name, ename, sizeof(ename)) < 0)
		return client__usage("run: template name %s is too long", name);
	if (timeout_ns) {
		snprintf(target, sizeof(target), "/v1/templates/%s/run?timeout=%.3f", ename,
			 (double)timeout_ns / 1e9);
		wait_s = RUN_SLACK_S + (unsigned)(timeout_ns / 1000000000ULL);
	} else {
		snprintf(target, sizeof(target), "/v1/templates/%s/run", ename);
	}
	ret = run__read_stdin(&in, &len);
	if (ret < 0) {
		fprintf(stderr, "snapbox: reading the request from stdin: %s\n",
			ret == -EFBIG ? "larger than 8 MiB" : strerror(-ret));
		return EXIT_SNAPBOX;
	}
	ret = client__request(sock, "POST", target, in, len, RUN_MAX_ANSWER, wait_s, &r, &err);
	free(in);
	if (ret < 0)
		return client__fail(&err);
	ret = r.status == 200 ? run__answer(&r) : client__fail_answer(&r);
	http_response__free(&r);
	return ret;
}
