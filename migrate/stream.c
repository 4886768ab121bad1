/* SPDX-License-Identifier: MIT */
/* The migration stream's format: see stream.h. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <xxhash.h>

#include "migrate/stream.h"
#include "common/file.h"
#include "backend/backend.h"
#include "snapshot/format.h"

static const char *const rec_names[MIG_REC_TYPE_MAX] = {
	[MIG_REC_PAGES] = "PAGES", [MIG_REC_STATE] = "STATE", [MIG_REC_IO] = "IO",
	[MIG_REC_END] = "END", [MIG_REC_READY] = "READY", [MIG_REC_ERROR] = "ERROR",
	[MIG_REC_COMMIT] = "COMMIT", [MIG_REC_RESUMED] = "RESUMED", [MIG_REC_MACHINE] = "MACHINE",
	[MIG_REC_HAVE] = "HAVE", [MIG_REC_NEED] = "NEED", [MIG_REC_TLAYERS] = "TLAYERS",
	[MIG_REC_TFILE] = "TFILE", [MIG_REC_TDATA] = "TDATA", [MIG_REC_TEND] = "TEND",
};

const char *mig__rec_name(uint32_t type)
{
	return type < MIG_REC_TYPE_MAX && rec_names[type] ? rec_names[type] : "?";
}

void mig_reader__fd(struct mig_reader *r, int fd, int timeout_ms)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->timeout_ms = timeout_ms;
}

void mig_reader__buf(struct mig_reader *r, const void *buf, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->buf = buf;
	r->len = len;
}

/* Exactly len bytes: 0, -EBADMSG (truncated: EOF), -ETIMEDOUT, -errno. */
static int rd(struct mig_reader *r, void *dst, size_t len)
{
	if (r->fd < 0) {
		if (len > r->len - r->off)
			return -EBADMSG;
		memcpy(dst, r->buf + r->off, len);
		r->off += len;
		return 0;
	}
	for (size_t done = 0; done < len;) {
		if (r->timeout_ms > 0) {
			struct pollfd pf = { r->fd, POLLIN, 0 };
			int n = poll(&pf, 1, r->timeout_ms);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				return -ETIMEDOUT;
		}
		ssize_t n = read(r->fd, (uint8_t *)dst + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		done += (size_t)n;
	}
	r->off += len;
	return 0;
}

static int rd_err(int ret, const char *what, struct sb_err *err)
{
	if (ret == -EBADMSG)
		return err__set(err, -EBADMSG, "migration stream: truncated in %s", what);
	if (ret == -ETIMEDOUT)
		return err__set(err, -ETIMEDOUT, "migration stream: nothing came for too long (in %s)", what);
	return err__set(err, ret, "migration stream: reading %s: %s", what, strerror(-ret));
}

int mig__read_hello(struct mig_reader *r, struct mig_hello *h, struct sb_err *err)
{
	uint64_t hash;
	int ret = rd(r, h, sizeof(*h));

	if (ret < 0)
		return rd_err(ret, "its header", err);
	if (memcmp(h->magic, MIG_MAGIC, 8))
		return err__set(err, -EBADMSG, "not a snapbox migration stream (bad magic)");
	if (h->major != MIG_MAJOR)
		return err__set(err, -EPROTONOSUPPORT, "migration stream version %u.%u (this snapbox "
				"reads %u.x)", h->major, h->minor, MIG_MAJOR);
	hash = h->hash;
	h->hash = 0;
	if (XXH3_64bits(h, sizeof(*h)) != hash)
		return err__set(err, -EBADMSG, "migration stream: its header is damaged (hash mismatch)");
	h->hash = hash;
	if (h->backend >= SNAP_BACKEND_COUNT)
		return err__set(err, -EBADMSG, "migration stream: unknown backend %u", h->backend);
	if (!h->mem_size || h->mem_size % (2ULL << 20) || h->mem_size > MIG_MAX_MEM)
		return err__set(err, -EBADMSG, "migration stream: %llu bytes of RAM is not a size a "
				"sandbox has", (unsigned long long)h->mem_size);
	if (!h->sandbox_id || h->sandbox_id > INT64_MAX)
		return err__set(err, -EBADMSG, "migration stream: sandbox id %llu",
				(unsigned long long)h->sandbox_id);
	if (h->template_id[32] || strspn(h->template_id, "0123456789abcdef") != 32)
		return err__set(err, -EBADMSG, "migration stream: the template id is not 32 hex digits");
	if (!memchr(h->template_name, 0, sizeof(h->template_name)))
		return err__set(err, -EBADMSG, "migration stream: the template name is not terminated");
	for (size_t i = 0; i < sizeof(h->reserved); i++)
		if (h->reserved[i])
			return err__set(err, -EBADMSG, "migration stream: reserved header bytes are set");
	r->mem_size = h->mem_size;
	return 0;
}

static uint64_t rec_limit(uint32_t type)
{
	switch (type) {
	case MIG_REC_PAGES: return MIG_MAX_RUN * MIG_PAGE;
	case MIG_REC_STATE: return MIG_MAX_STATE;
	case MIG_REC_IO: return MIG_MAX_IO;
	case MIG_REC_ERROR: return MIG_MAX_MSG;
	case MIG_REC_MACHINE: return sizeof(struct mig_machine);
	case MIG_REC_TLAYERS: return MIG_MAX_TLAYERS * sizeof(struct mig_tlayer);
	case MIG_REC_TFILE: return sizeof(struct mig_tfile);
	case MIG_REC_TDATA: return MIG_MAX_TDATA;
	}
	return 0;
}

int mig__read_rec(struct mig_reader *r, struct mig_rec *rec, uint8_t **payload, struct sb_err *err)
{
	uint64_t hash;
	uint8_t *p = NULL;
	int ret = rd(r, rec, sizeof(*rec));

	*payload = NULL;
	if (ret < 0)
		return rd_err(ret, "a record header", err);
	hash = rec->hash;
	rec->hash = 0;
	if (XXH3_64bits(rec, sizeof(*rec)) != hash)
		return err__set(err, -EBADMSG, "migration stream: a record header is damaged "
				"(hash mismatch, at byte %zu)", r->off - sizeof(*rec));
	rec->hash = hash;
	if (rec->type == 0 || rec->type >= MIG_REC_TYPE_MAX || rec->reserved)
		return err__set(err, -EBADMSG, "migration stream: unknown record type %u", rec->type);
	if (rec->len > rec_limit(rec->type))
		return err__set(err, -EBADMSG, "migration stream: %s record of %llu bytes (at most %llu)",
				mig__rec_name(rec->type), (unsigned long long)rec->len,
				(unsigned long long)rec_limit(rec->type));
	if (rec->type == MIG_REC_PAGES &&
	    (rec->len == 0 || rec->len % MIG_PAGE || rec->arg % MIG_PAGE || rec->arg >= r->mem_size ||
	     rec->len > r->mem_size - rec->arg))
		return err__set(err, -EBADMSG, "migration stream: pages at gpa 0x%llx + %llu bytes are "
				"not whole pages inside the sandbox's %llu MiB of RAM",
				(unsigned long long)rec->arg, (unsigned long long)rec->len,
				(unsigned long long)(r->mem_size >> 20));
	if (rec->len) {
		p = malloc(rec->len + 1);
		if (!p)
			return err__set(err, -ENOMEM, "out of memory for a %s record", mig__rec_name(rec->type));
		ret = rd(r, p, rec->len);
		if (ret < 0) {
			free(p);
			return rd_err(ret, mig__rec_name(rec->type), err);
		}
		p[rec->len] = 0;
	}
	if (XXH3_64bits(p ? p : (const uint8_t *)"", rec->len) != rec->payload_hash) {
		free(p);
		return err__set(err, -EBADMSG, "migration stream: the payload of a %s record is damaged "
				"(hash mismatch)", mig__rec_name(rec->type));
	}
	*payload = p;
	return 0;
}

int mig__write_hello(int fd, struct mig_hello *h)
{
	memcpy(h->magic, MIG_MAGIC, 8);
	h->major = MIG_MAJOR;
	h->minor = MIG_MINOR;
	h->hash = 0;
	h->hash = XXH3_64bits(h, sizeof(*h));
	return file__write_all(fd, h, sizeof(*h));
}

int mig__write_rec2(int fd, uint32_t type, uint64_t arg, const void *a, size_t alen,
		    const void *b, size_t blen)
{
	struct mig_rec rec = { .type = type, .len = alen + blen, .arg = arg };
	XXH3_state_t *st = XXH3_createState();
	int ret;

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	if (alen)
		XXH3_64bits_update(st, a, alen);
	if (blen)
		XXH3_64bits_update(st, b, blen);
	rec.payload_hash = alen + blen ? XXH3_64bits_digest(st) : XXH3_64bits("", 0);
	XXH3_freeState(st);
	rec.hash = XXH3_64bits(&rec, sizeof(rec));
	ret = file__write_all(fd, &rec, sizeof(rec));
	if (ret == 0 && alen)
		ret = file__write_all(fd, a, alen);
	if (ret == 0 && blen)
		ret = file__write_all(fd, b, blen);
	return ret;
}

int mig__write_rec(int fd, uint32_t type, uint64_t arg, const void *payload, size_t len)
{
	return mig__write_rec2(fd, type, arg, payload, len, NULL, 0);
}

int mig__parse_io(const uint8_t *payload, size_t len, struct mig_io *io, const char **out,
		  const char **errb, const char **in, struct sb_err *err)
{
	if (len < sizeof(*io))
		return err__set(err, -EBADMSG, "migration stream: IO record of %zu bytes", len);
	memcpy(io, payload, sizeof(*io));
	if (io->max_output == 0 || io->max_output > (1ULL << 40) ||
	    io->timeout_left_ns > 86400ULL * 1000000000ULL)
		return err__set(err, -EBADMSG, "migration stream: the IO record's limits (%llu bytes, "
				"%llu ns left)", (unsigned long long)io->max_output,
				(unsigned long long)io->timeout_left_ns);
	if (io->reserved || (io->flags & ~MIG_IO_STDIN_EOF) || io->out_len > MIG_MAX_IO ||
	    io->err_len > MIG_MAX_IO || io->in_len > MIG_MAX_IO ||
	    sizeof(*io) + io->out_len + io->err_len + io->in_len != len)
		return err__set(err, -EBADMSG, "migration stream: the IO record's lengths (%llu + %llu + "
				"%llu) do not add up to its %zu bytes", (unsigned long long)io->out_len,
				(unsigned long long)io->err_len, (unsigned long long)io->in_len, len);
	*out = (const char *)payload + sizeof(*io);
	*errb = *out + io->out_len;
	*in = *errb + io->err_len;
	return 0;
}

/* ---- addresses ------------------------------------------------------------ */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl,
		      struct sb_err *err)
{
	memset(ss, 0, sizeof(*ss));
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (!addr[5] || strlen(addr + 5) >= sizeof(un->sun_path))
			return err__set(err, -EINVAL, "%s: a Unix socket path of 1..%zu bytes", addr,
					sizeof(un->sun_path) - 1);
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, addr + 5);
		*sl = sizeof(*un);
		return 0;
	}
	if (!strncmp(addr, "tcp:", 4)) {
		char host[256];
		const char *colon = strrchr(addr + 4, ':');
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_NUMERICSERV }, *ai;
		size_t hl;
		int r;

		if (!colon || colon == addr + 4 || !colon[1] || (hl = (size_t)(colon - addr - 4)) >= sizeof(host))
			return err__set(err, -EINVAL, "%s: expected tcp:HOST:PORT", addr);
		memcpy(host, addr + 4, hl);
		host[hl] = 0;
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = 0;
		}
		r = getaddrinfo(host, colon + 1, &hints, &ai);
		if (r)
			return err__set(err, -EINVAL, "%s: %s", addr, gai_strerror(r));
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		*sl = ai->ai_addrlen;
		freeaddrinfo(ai);
		return 0;
	}
	return err__set(err, -EINVAL, "%s: expected tcp:HOST:PORT or unix:PATH", addr);
}

/* A stream socket of addr's family, addr parsed into *ss, *sl: fd or -errno. */
static int addr_socket(const char *addr, struct sockaddr_storage *ss, socklen_t *sl,
		       struct sb_err *err)
{
	int fd, ret = parse_addr(addr, ss, sl, err);

	if (ret < 0)
		return ret;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err__errno(err, "socket");
	return fd;
}

int mig__connect(const char *addr, struct sb_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int ret, one = 1, fd = addr_socket(addr, &ss, &sl, err);

	if (fd < 0)
		return fd;
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		ret = err__errno(err, "connecting to %s", addr);
		close(fd);
		return ret;
	}
	return fd;
}

int mig__listen(const char *addr, struct sb_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int ret, one = 1, fd = addr_socket(addr, &ss, &sl, err);

	if (fd < 0)
		return fd;
	if (ss.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&ss)->sun_path);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0) {
		ret = err__errno(err, "listening on %s", addr);
		close(fd);
		return ret;
	}
	return fd;
}

int mig__parse_machine(const uint8_t *payload, size_t len, uint64_t mem_size,
		       struct mig_machine *mm, struct sb_err *err)
{
	if (len != sizeof(*mm))
		return err__set(err, -EBADMSG, "migration stream: MACHINE record of %zu bytes", len);
	memcpy(mm, payload, sizeof(*mm));
	if (mm->reserved[0] || mm->reserved[1] ||
	    (mm->flags & ~(MACHINE_PAUSED_REPLY | MACHINE_PAUSED_DEFERRED)))
		return err__set(err, -EBADMSG, "migration stream: MACHINE record with unknown flags");
	if (!(mm->flags & MACHINE_PAUSED_DEFERRED) ? mm->nr || mm->gpa
	    : mm->nr == 0 || mm->nr >= SB_HC_COUNT || mm->gpa >= mem_size)
		return err__set(err, -EBADMSG, "migration stream: MACHINE record: call %u at gpa 0x%llx",
				mm->nr, (unsigned long long)mm->gpa);
	return 0;
}
