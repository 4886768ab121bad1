/* SPDX-License-Identifier: MIT */
/* The sending side of a live migration (migrate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"
#include "memory/written.h"
#include "migrate/migrate.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Where m's RAM is: in the process pid (0: ours) at base + gpa, from lo. */
struct mig_view {
	pid_t pid;
	uint64_t base, lo;
};

static void view_of(struct machine *m, struct mig_view *v)
{
	if (m->be == &proc_backend) {
		v->pid = ((struct proc_machine *)m)->pid;
		v->base = 0;
		v->lo = SB_PROC_RAM_BASE;
	} else {
		v->pid = 0;
		v->base = (uint64_t)(uintptr_t)m->ram.host;
		v->lo = 0;
	}
}

struct sender {
	struct machine *m;
	int conn;
	struct mig_view v;
	struct written_scan ws;
	uint64_t *sent;             /* per page: hash of what was sent, 0: never */
	uint8_t *buf;               /* MIG_MAX_RUN pages */
	uint64_t records;           /* PAGES records sent */
	struct mig_stats *st;
};

/* Send pages [first, first + n) read now; their hashes noted. */
static int send_run(struct sender *s, uint64_t first, uint64_t n, struct sb_err *err)
{
	int ret = s->m->mem.read(&s->m->mem, first * MIG_PAGE, s->buf, n * MIG_PAGE);

	if (ret < 0)
		return err__set(err, ret, "reading the sandbox's pages: %s", strerror(-ret));
	ret = mig__write_rec(s->conn, MIG_REC_PAGES, first * MIG_PAGE, s->buf, n * MIG_PAGE);
	if (ret < 0)
		return err__set(err, ret, "sending pages: %s", strerror(-ret));
	s->st->pages_sent += n;
	s->records++;
	s->st->bytes_sent += sizeof(struct mig_rec) + n * MIG_PAGE;
	return 0;
}

/* One round: every private page whose content differs from what was sent
 * goes.  *changed = pages sent, *private = private pages seen. */
static int round_send(struct sender *s, uint64_t *changed, uint64_t *private, struct sb_err *err)
{
	uint8_t page[MIG_PAGE];
	int ret;

	*changed = *private = 0;
	ret = written__scan(&s->ws, s->v.base + s->v.lo, s->v.base + s->m->ram.size, err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < s->ws.n; i++) {
		uint64_t a = (s->ws.r[i].start - s->v.base) / MIG_PAGE;
		uint64_t b = (s->ws.r[i].end - s->v.base) / MIG_PAGE;
		uint64_t run = 0, run_first = 0;

		for (uint64_t pg = a; pg < b; pg++) {
			uint64_t h;
			bool dirty;

			(*private)++;
			ret = s->m->mem.read(&s->m->mem, pg * MIG_PAGE, page, MIG_PAGE);
			if (ret < 0)
				return err__set(err, ret, "reading the sandbox's pages: %s", strerror(-ret));
			h = XXH3_64bits(page, MIG_PAGE) | 1; /* 0 is "never sent" */
			dirty = s->sent[pg] != h;
			if (dirty) {
				s->sent[pg] = h;
				if (!run)
					run_first = pg;
				run++;
				(*changed)++;
			}
			if (run && (!dirty || run == MIG_MAX_RUN || pg + 1 == b)) {
				/* a page changing between the hash and its send is
				 * sent as it is then; the next round sees it differ */
				ret = send_run(s, run_first, run, err);
				if (ret < 0)
					return ret;
				/* what went, for later rounds to compare with */
				for (uint64_t k = 0; k < run; k++)
					s->sent[run_first + k] =
						XXH3_64bits(s->buf + k * MIG_PAGE, MIG_PAGE) | 1;
				run = 0;
			}
		}
	}
	return 0;
}

/* One record from the destination, within timeout_ms: *rec and its payload
 * (*p, malloc'd or NULL, the caller's to free).  A refusal (ERROR) is
 * -ECANCELED with the destination's reason, a connection cut short
 * -ECONNRESET. */
static int read_answer(int conn, int timeout_ms, struct mig_rec *rec, uint8_t **p,
		       struct sb_err *err)
{
	struct mig_reader r;
	int ret;

	*p = NULL;
	mig_reader__fd(&r, conn, timeout_ms);
	r.mem_size = MIG_MAX_MEM;
	ret = mig__read_rec(&r, rec, p, err);
	if (ret < 0) {
		if (ret == -EBADMSG && strstr(err->msg, "truncated"))
			err__set(err, -ECONNRESET, "the destination closed the connection");
		return ret;
	}
	if (rec->type == MIG_REC_ERROR)
		return err__set(err, -ECANCELED, "the destination refused: %s",
				*p ? (char *)*p : "?");
	return 0;
}

static int wait_rec(int conn, uint32_t want, int timeout_ms, struct sb_err *err)
{
	struct mig_rec rec;
	uint8_t *p;
	int ret = read_answer(conn, timeout_ms, &rec, &p, err);

	if (ret == 0 && rec.type != want)
		ret = err__set(err, -EPROTO, "the destination answered %s, not %s",
			       mig__rec_name(rec.type), mig__rec_name(want));
	free(p);
	return ret;
}

/* The destination's answer to the hello: HAVE, or NEED: the template, then HAVE. */
static int wait_answer(int conn, const struct snapshot *tmpl, struct mig_stats *st,
		       struct sb_err *err)
{
	struct mig_rec rec;
	uint8_t *p;
	int ret = read_answer(conn, MIG_ACK_TIMEOUT_MS, &rec, &p, err);

	free(p);
	if (ret < 0)
		return ret;
	if (rec.type == MIG_REC_NEED && rec.arg == 0 && !tmpl)
		return err__set(err, -ENOENT, "the destination lacks the template, and it is not "
				"at hand here");
	if (rec.type != MIG_REC_HAVE && (rec.type != MIG_REC_NEED || rec.arg != 0))
		return err__set(err, -EPROTO, "the destination answered %s to the hello",
				mig__rec_name(rec.type));
	if (rec.type == MIG_REC_HAVE)
		return 0;
	ret = mig__send_template(conn, tmpl, &st->template_bytes, err);
	if (ret < 0)
		return ret;
	st->bytes_sent += st->template_bytes;
	/* the destination checks all of it before it answers */
	return wait_rec(conn, MIG_REC_HAVE, 300000, err);
}

int mig__send(struct machine *m, int conn, struct mig_hello *h, uint32_t downtime_ms,
	      const struct mig_src_ops *ops, struct mig_stats *st, struct sb_err *err)
{
	struct sender s = { .m = m, .conn = conn, .st = st };
	uint64_t n_pages = m->ram.size / MIG_PAGE, changed, private, records;
	uint8_t *state = NULL, *io = NULL;
	size_t state_len = 0, io_len = 0;
	double t0 = now_ms(), t_pause = 0;
	int ret;

	memset(st, 0, sizeof(*st));
	if (!downtime_ms)
		downtime_ms = MIG_DEFAULT_DOWNTIME_MS;
	view_of(m, &s.v);
	s.sent = calloc(n_pages, sizeof(*s.sent));
	s.buf = malloc(MIG_MAX_RUN * MIG_PAGE);
	if (!s.sent || !s.buf) {
		ret = err__set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = written__open(&s.ws, s.v.pid, err);
	if (ret < 0)
		goto out;
	ret = mig__write_hello(conn, h);
	if (ret < 0) {
		err__set(err, ret, "sending to the destination: %s", strerror(-ret));
		goto out;
	}
	st->bytes_sent += sizeof(*h);
	/* 2.0: the destination answers: HAVE, or NEED (its template) */
	ret = wait_answer(conn, ops->tmpl, st, err);
	if (ret < 0)
		goto out;
	/* pre-copy: until what changed in a round could go within the
	 * downtime at the rate of that round */
	for (;;) {
		double t = now_ms(), dt;
		uint64_t before = st->bytes_sent;

		ret = round_send(&s, &changed, &private, err);
		if (ret < 0)
			goto out;
		st->rounds++;
		dt = now_ms() - t;
		double rate = dt > 0.05 ? (double)(st->bytes_sent - before) / dt : 1e9; /* bytes/ms */
		if (rate < 1e5)
			rate = 1e5;
		if ((double)changed * MIG_PAGE <= rate * downtime_ms / 2 || st->rounds >= MIG_MAX_ROUNDS)
			break;
	}
	st->precopy_ms = now_ms() - t0;
	t_pause = now_ms();
	ret = ops->pause(ops->arg, &state, &state_len, err);
	if (ret < 0)
		goto out;
	st->pause_ms = now_ms() - t_pause;
	ret = round_send(&s, &changed, &private, err);
	if (ret < 0)
		goto out;
	st->last_round_ms = now_ms() - t_pause - st->pause_ms;
	st->last_pages = changed;
	st->private_pages = private;
	ret = ops->io(ops->arg, &io, &io_len, err);
	if (ret < 0)
		goto out;
	records = s.records;
	ret = mig__write_rec(conn, MIG_REC_STATE, 0, state, state_len);
	if (ret == 0) {
		struct mig_machine mm = { m->paused.flags, m->paused.nr, m->paused.gpa, { 0, 0 } };
		ret = mig__write_rec(conn, MIG_REC_MACHINE, 0, &mm, sizeof(mm));
		st->bytes_sent += sizeof(struct mig_rec) + sizeof(mm);
	}
	if (ret == 0)
		ret = mig__write_rec(conn, MIG_REC_IO, 0, io, io_len);
	if (ret == 0)
		ret = mig__write_rec(conn, MIG_REC_END, records, NULL, 0);
	if (ret < 0) {
		err__set(err, ret, "sending to the destination: %s", strerror(-ret));
		goto out;
	}
	st->bytes_sent += 3 * sizeof(struct mig_rec) + state_len + io_len;
	{
		double t = now_ms();
		ret = wait_rec(conn, MIG_REC_READY, MIG_ACK_TIMEOUT_MS, err);
		st->ready_ms = now_ms() - t;
	}
	if (ret < 0)
		goto out;
	ret = mig__write_rec(conn, MIG_REC_COMMIT, 0, NULL, 0);
	if (ret < 0) {
		err__set(err, ret, "sending COMMIT: %s", strerror(-ret));
		goto out;
	}
	/* committed: from here the sandbox is the destination's */
	{
		double t = now_ms();
		if (wait_rec(conn, MIG_REC_RESUMED, 5000, err) == 0)
			st->downtime_ms = now_ms() - t_pause;
		st->resumed_ms = now_ms() - t;
	}
	err__clear(err);
	st->total_ms = now_ms() - t0;
	ret = 0;
out:
	if (ret == -EPIPE || ret == -ECONNRESET) {
		/* the destination hung up: did it say why? */
		struct sb_err why = { "" };
		if (wait_rec(conn, MIG_REC_READY, 1000, &why) == -ECANCELED)
			*err = why;
	} else if (ret < 0) {
		/* tell the destination, if it still listens */
		(void)mig__write_rec(conn, MIG_REC_ERROR, 0, err->msg, strlen(err->msg));
	}
	written__close(&s.ws);
	free(s.sent);
	free(s.buf);
	free(state);
	free(io);
	return ret;
}
