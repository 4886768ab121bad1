/* SPDX-License-Identifier: MIT */
/*
 * Sandboxes in worker processes (see pool.h).
 *
 *   service ──(zygote socket)── zygote ──fork──> worker (VM shell) ...
 *      └──────────(worker socket, passed by the zygote)───┘
 *
 * Messages are fixed-size structs on SOCK_SEQPACKET sockets; file
 * descriptors travel with SCM_RIGHTS.  A worker serves one sandbox and
 * exits; the zygote reaps it -- unless the template's policy recycles it:
 * then, once its program has exited by itself and the answer is out, the
 * worker resets the sandbox to the template (machine__reset) and waits for
 * the next request of that template (RECYCLED tells the service how the
 * reset went).  The service alone decides when an idle one ends (it closes
 * the worker's socket), so a request is never handed to a worker that is
 * leaving.
 *
 * Pre-cloned workers: for a template that is being used (a run of it in
 * the last idle period), the refill threads hand a ready worker the
 * template (PRECLONE): it clones it and pre-faults the template's write
 * set (machine__prefault), then waits exactly as a recycled worker does
 * (the same states, RECYCLED answer, idle sweep), so the next request of
 * that template finds its clone made and its pages its own.  At most
 * o.precloned per template, for at most MAX_HOT templates.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>

#include "common/fdmsg.h"
#include "launcher/pool.h"
#include "backend/backend.h"
#include "backend/proc/proc.h"
#include "backend/resize.h"
#include "snapshot/snapshot.h"
#include "migrate/migrate.h"

#define MAX_WORKERS 1024
#define DEFAULT_MAX_OUTPUT (16ULL << 20)
#define READY_WAIT_MS 10000
#define TAKE_WAIT_S 30       /* a request waits this long for a free worker */
#define REFILL_THREADS 2     /* workers being started at once */
#define TCACHE_SIZE 16       /* templates kept loaded by the service */
#define RESET_WAIT_MS 7000   /* a request waits this long for a reset to end
				(longer than a backend's own reset may take) */
#define SWEEP_MS 200         /* how often idle recycled workers are checked */
#define DEFAULT_IDLE_MS 60000
/* A page a reset puts back stays the sandbox's own, so every later reset
 * copies it again: past this many (16 MiB; ~1 ms of copying here, what a
 * fresh clone costs) the worker ends after the reset instead. */
#define RECYCLE_MAX_PAGES 4096
#define MAX_KINDS 16         /* kinds kept ready; the least recently used goes */
#define RESIZE_WAIT_MS 3000  /* a resize request waits this long for its worker */
#define MAX_HOT 8            /* templates kept pre-cloned; the least recently used goes */

/*
 * Workers are kept per kind: a RAM size (a multiple of 2 MiB) with the
 * backend that runs it (enum snap_backend) in the low bits; workers of one
 * kind are interchangeable.  The `mem_size` fields below hold kinds.
 */
#define KIND_BACKEND_MASK ((2ULL << 20) - 1)
_Static_assert(SNAP_BACKEND_COUNT <= KIND_BACKEND_MASK, "backend fits in a kind");

static uint64_t kind_of(uint64_t mem_size, uint32_t snap_backend)
{
	return mem_size | snap_backend;
}

static uint64_t kind_mem(uint64_t kind)
{
	return kind & ~KIND_BACKEND_MASK;
}

static const struct backend *kind_backend(uint64_t kind)
{
	for (size_t i = 0; backend__all[i]; i++)
		if (backend__all[i]->snap_backend == (kind & KIND_BACKEND_MASK))
			return backend__all[i];
	return NULL;
}

enum msg_type { MSG_SPAWN = 1, MSG_SPAWNED, MSG_READY, MSG_ERROR, MSG_JOB, MSG_RESULT,
		MSG_RECYCLED, MSG_MIGRATE, MSG_MIG_PAUSED, MSG_MIG_IO, MSG_MIG_DONE,
		MSG_MIG_IN_READY, MSG_MIG_GO, MSG_PRECLONE };

/* The migration kick: interrupts the worker's run (KVM_RUN, a blocking
 * read) so that it sees machine.pause; a no-op handler, no SA_RESTART. */
#define MIG_KICK_SIGNAL (SIGRTMIN + 3)

struct msg_spawn {           /* service -> zygote */
	uint32_t type;
	uint32_t pad;
	uint64_t mem_size;
};

struct msg_spawned {         /* zygote -> service, + SCM_RIGHTS(worker socket) */
	uint32_t type;
	int32_t pid;             /* or -errno */
};

struct msg_status {          /* worker -> service: READY or ERROR */
	uint32_t type;
	uint32_t pad;
	char message[256];
};

struct msg_job {             /* service -> worker, + SCM_RIGHTS(stdin, stdout, stderr,
				the template's directory) */
	uint32_t type;
	uint32_t recycle;        /* keep the sandbox for the next request if its
				    program exits by itself */
	uint32_t resizable;      /* long-lived: a 5th fd is its control socket
				    (backend/resize.h) */
	uint32_t report_min;     /* free-page reporting threshold, pages (0: off) */
	uint64_t id;
	uint64_t timeout_ns;
	char name[72];
	uint32_t migratable;     /* long-lived: may be asked to migrate (MSG_MIGRATE) */
	uint32_t migrate_in;     /* not a clone: a migrating sandbox arrives on fds[4]
				    (the stream after its hello) */
	struct mig_hello hello;  /* migrate_in: the stream's hello, read by the service */
	struct snapshot snap;    /* loaded and checked by the service; dirfd is fds[3] */
};

/* service -> worker, + SCM_RIGHTS(the connection to the destination, the
 * control socket for the messages below) */
struct msg_migrate {
	uint32_t type;
	uint32_t downtime_ms;
	struct mig_hello hello;
};

/* on the control socket: PAUSED (worker), IO (service, + a memfd: struct
 * mig_io + stdout + stderr), DONE (worker: status, figures); and on the
 * worker socket of an arriving sandbox: IN_READY (worker, + a memfd: the
 * stream's IO payload), GO (service) */
struct msg_mig {
	uint32_t type;
	int32_t status;
	struct mig_stats st;
	char message[256];
};

struct msg_result {          /* worker -> service */
	uint32_t type;
	int32_t status;          /* >= 0: exit status; < 0: -errno before running */
	uint32_t timed_out;
	uint32_t recycling;      /* the worker resets the sandbox now; RECYCLED follows */
	double clone_us, run_us;
	char message[512];
};

struct msg_recycled {        /* worker -> service, after a MSG_RESULT with recycling */
	uint32_t type;
	int32_t status;          /* 0: reset, waiting for the next job; -errno: it ends */
	uint64_t pages;          /* guest pages put back */
	double reset_us;
	char message[256];
};

/* FREE -> STARTING -> READY -> BUSY -> FREE, or, recycled:
 * BUSY -> RECYCLING (resetting) -> RECYCLED (idle, for one template) -> BUSY */
enum worker_state { W_FREE = 0, W_STARTING, W_READY, W_BUSY, W_RECYCLING, W_RECYCLED };
struct sandbox;

struct worker {
	enum worker_state state;
	pid_t pid;
	int sock;
	uint64_t mem_size;
	uint64_t id;             /* sandbox, when busy */
	char name[72];
	double t_start;          /* CLOCK_MONOTONIC us, when busy */
	bool killed;
	/* recycled workers */
	char tid[33];            /* the template it serves (snapshot id) */
	uint32_t reuse;          /* requests it served after its first */
	double idle_until;       /* RECYCLED: ends after this (us) */
	uint32_t idle_ms;
	bool pre;                /* a pre-cloned sandbox, not yet used */
};

/* A template in use, to keep pre-cloned (under the pool's lock). */
struct hot {
	char tid[33];            /* "" : unused entry */
	char dir[4096];
	uint64_t kind;
	uint32_t idle_ms;
	double last;             /* its last run (us) */
};

struct pool {
	struct pool_opts o;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int zsock;               /* to the zygote (service side) */
	pthread_mutex_t zlock;   /* one request/answer exchange with it at a time */
	pid_t zpid;
	pthread_t refill[REFILL_THREADS];
	unsigned n_refill;
	bool stopping;
	struct sandbox *live_list;   /* long-lived sandboxes (pool__start) */
	struct tcache {
		char dir[4096];
		dev_t dev;
		ino_t ino;
		struct timespec mtime;
		off_t size;
		uint64_t used;       /* LRU tick */
		struct snapshot snap;  /* loaded and checked; snap.dirfd open */
	} *tcache;                   /* TCACHE_SIZE entries, under tlock */
	pthread_mutex_t tlock;
	uint64_t ttick;
	struct worker w[MAX_WORKERS];
	uint64_t sizes[MAX_KINDS]; /* kinds (RAM size, backend) to keep ready workers for */
	uint64_t size_used[MAX_KINDS]; /* LRU tick, under lock */
	char size_why[MAX_KINDS][256]; /* why its last worker failed to start, or "" */
	uint64_t ktick;
	unsigned n_sizes;
	unsigned live;
	uint64_t next_id;
	struct pool_stats st;
	struct hot hot[MAX_HOT];
};

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pool__log(struct pool *p, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pool__log(struct pool *p, int level, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	if (p->o.log_fd < 0 || level > p->o.log_level)
		return;
	n = snprintf(line, sizeof(line), "snapbox serve: ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(p->o.log_fd, line, (size_t)n) < 0)
		return;
}

/* ---- messages with descriptors -------------------------------------------- */

/* Receive exactly one message of len bytes (and up to maxfds descriptors). */
static int msg_recv(int sock, void *m, size_t len, int *fds, int maxfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = { m, len };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	int got = 0;

	do
		n = recvmsg(sock, &h, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); n >= 0 && c; c = CMSG_NXTHDR(&h, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < maxfds)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n != len || (h.msg_flags & MSG_TRUNC)) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		return -EBADMSG;
	}
	return got;
}

/* ---- the worker: one sandbox, in its own process ------------------------- */

/* ---- migration, in the worker -------------------------------------------- */

/*
 * A long-lived sandbox's worker runs a control thread besides the main one
 * (which runs the machine).  On MSG_MIGRATE it sends the sandbox
 * (mig__send); to pause it, it sets machine.pause and kicks the main thread
 * until run() returns MACHINE_PAUSED; the main thread then builds the
 * state and waits for the verdict: resume (the migration failed: the
 * sandbox goes on untouched), or exit (the destination has it).
 */
enum { WP_RUNNING, WP_PAUSING, WP_PAUSED, WP_ENDED };
enum { V_NONE, V_RESUME, V_EXIT };

struct wctl {
	struct machine *m;
	int sock;                /* the worker socket (MSG_MIGRATE comes here) */
	int ctl;                 /* the control socket of the migration under way */
	pthread_t main, thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int phase, verdict;
	uint8_t *state;          /* built by the main thread once paused */
	size_t state_len;
	int state_err;           /* building it failed: -errno (-EBUSY: refused) */
	char why[256];           /* why it could not */
	const struct snapshot *tmpl; /* its template (sent if the destination lacks it) */
};

static void wctl__on_kick(int sig)
{
	(void)sig;
}

static int wctl__pause(void *arg, uint8_t **state, size_t *len, struct sb_err *err)
{
	struct wctl *c = arg;
	int ret = 0;

	pthread_mutex_lock(&c->mu);
	if (c->phase == WP_RUNNING) {
		c->phase = WP_PAUSING;
		__atomic_store_n(&c->m->pause, 1, __ATOMIC_RELEASE);
	}
	while (c->phase == WP_PAUSING) {
		struct timespec ts;

		pthread_kill(c->main, MIG_KICK_SIGNAL);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	if (c->phase != WP_PAUSED)
		ret = err__set(err, -ESRCH, "the sandbox ended before it paused");
	else if (!c->state && c->state_err == -EBUSY)
		ret = err__set(err, -EBUSY, "%s", c->why);
	else if (!c->state)
		ret = err__set(err, -EIO, "saving the paused sandbox's state: %s", c->why);
	else
		*state = c->state, *len = c->state_len, c->state = NULL;
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* Once paused: the service's part (its output so far, whether stdin was
 * closed), then what is left in the stdin pipe, read here. */
static int wctl__io(void *arg, uint8_t **out, size_t *len, struct sb_err *err)
{
	struct wctl *c = arg;
	struct msg_mig mm = { .type = MSG_MIG_PAUSED };
	struct pollfd pf = { c->ctl, POLLIN, 0 };
	struct mig_io io;
	struct stat sb;
	uint8_t *buf = NULL;
	size_t have, cap;
	int fd = -1, ret, in = c->m->hc.stdin_fd;

	if (fdmsg__send(c->ctl, &mm, sizeof(mm), NULL, 0) < 0 || poll(&pf, 1, 10000) != 1 ||
	    msg_recv(c->ctl, &mm, sizeof(mm), &fd, 1) != 1 || mm.type != MSG_MIG_IO)
		return err__set(err, -EIO, "the service did not hand over the sandbox's output");
	if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(io) || sb.st_size > MIG_MAX_IO) {
		close(fd);
		return err__set(err, -EIO, "the service's output buffer is not usable");
	}
	have = (size_t)sb.st_size;
	cap = have + 65536;
	buf = malloc(cap);
	if (!buf || pread(fd, buf, have, 0) != (ssize_t)have) {
		close(fd);
		free(buf);
		return err__set(err, -EIO, "reading the service's output buffer");
	}
	close(fd);
	memcpy(&io, buf, sizeof(io));
	if (in >= 0) {
		int fl = fcntl(in, F_GETFL);

		fcntl(in, F_SETFL, fl | O_NONBLOCK);
		for (;;) {
			if (have == cap) {
				uint8_t *nb = cap < MIG_MAX_IO ? realloc(buf, cap * 2) : NULL;
				if (!nb) {
					ret = err__set(err, -E2BIG, "too much unread stdin");
					fcntl(in, F_SETFL, fl);
					free(buf);
					return ret;
				}
				buf = nb;
				cap *= 2;
			}
			ssize_t n = read(in, buf + have, cap - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			have += (size_t)n;
			io.in_len += (uint64_t)n;
		}
		fcntl(in, F_SETFL, fl);
	}
	memcpy(buf, &io, sizeof(io));
	*out = buf;
	*len = have;
	return 0;
}

static void *wctl__thread(void *arg)
{
	struct wctl *c = arg;
	struct msg_migrate mm;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, MIG_KICK_SIGNAL);
	sigaddset(&set, SIGURG); /* a resize request's kick is for the main thread */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		struct mig_src_ops ops = { wctl__pause, wctl__io, c, c->tmpl };
		struct msg_mig done = { .type = MSG_MIG_DONE };
		struct sb_err err = { "" };
		int fds[2], n = msg_recv(c->sock, &mm, sizeof(mm), fds, 2);

		if (n < 0 && n != -EBADMSG)
			return NULL; /* the service is gone: so are we, soon */
		if (n != 2 || mm.type != MSG_MIGRATE) {
			for (int i = 0; i < n; i++)
				close(fds[i]);
			continue;
		}
		c->ctl = fds[1];
		mm.hello.template_name[sizeof(mm.hello.template_name) - 1] = 0;
		done.status = mig__send(c->m, fds[0], &mm.hello, mm.downtime_ms, &ops, &done.st, &err);
		snprintf(done.message, sizeof(done.message), "%s", err.msg);
		close(fds[0]);
		fdmsg__send(c->ctl, &done, sizeof(done), NULL, 0);
		close(c->ctl);
		c->ctl = -1;
		pthread_mutex_lock(&c->mu);
		if (c->phase == WP_PAUSED)
			c->verdict = done.status == 0 ? V_EXIT : V_RESUME;
		else if (c->phase == WP_PAUSING)
			c->phase = WP_RUNNING;
		if (c->phase != WP_PAUSED)
			__atomic_store_n(&c->m->pause, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		if (done.status == 0)
			return NULL;
	}
}

static struct wctl *wctl__start(struct machine *m, int sock, const struct snapshot *tmpl)
{
	struct wctl *c = calloc(1, sizeof(*c));
	struct sigaction sa;

	if (!c)
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wctl__on_kick; /* no SA_RESTART: blocking calls see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(MIG_KICK_SIGNAL, &sa, NULL);
	c->m = m;
	c->tmpl = tmpl;
	c->sock = sock;
	c->ctl = -1;
	c->main = pthread_self();
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, wctl__thread, c) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* Run the machine (its pending stdin call first), pausing when asked:
 * the run's result, or -ETIMEDOUT while the pending call waited. */
static int worker__go(struct machine *m, struct wctl *c, struct sb_err *err)
{
	static const struct snap_policy unset;
	int ret;

	for (;;) {
		ret = hypercall__complete_pending(&m->hc, err);
		if (ret == HC_CONTINUE)
			ret = m->be->run(m, err);
		else if (ret == HC_PAUSED)
			ret = MACHINE_PAUSED;
		if (ret != MACHINE_PAUSED || !c)
			break;
		{
			struct sb_err e = { "" };
			uint8_t *st = NULL;
			size_t len = 0;
			int r;

			/* the hot window (resize.h) is not in the stream: a sandbox
			 * with memory added, or giving some back, stays here (the
			 * service refuses it up front; this is for a grow that
			 * raced with the migration) */
			if (m->rs.hot_size || m->rs.pending_req)
				r = err__set(&e, -EBUSY, "it has %llu MiB added to its template's "
					     "RAM%s: the hot window does not migrate (shrink it back "
					     "first: snapbox resize --mem)",
					     (unsigned long long)(m->rs.hot_size >> 20),
					     m->rs.pending_req ? " and is giving some back" : "");
			else
				r = snapshot__build_state(m, &unset, 0, NULL, &st, &len, &e);

			pthread_mutex_lock(&c->mu);
			c->state = r < 0 ? NULL : st;
			c->state_err = r;
			c->state_len = len;
			snprintf(c->why, sizeof(c->why), "%s", e.msg);
			c->phase = WP_PAUSED;
			pthread_cond_broadcast(&c->cv);
			while (c->verdict == V_NONE)
				pthread_cond_wait(&c->cv, &c->mu);
			if (c->verdict == V_EXIT) {
				/* the destination runs it now */
				pthread_mutex_unlock(&c->mu);
				m->be->destroy_detached(m);
				_exit(0);
			}
			free(c->state);
			c->state = NULL;
			c->verdict = V_NONE;
			c->phase = WP_RUNNING;
			__atomic_store_n(&m->pause, 0, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&c->mu);
		}
	}
	if (c) {
		pthread_mutex_lock(&c->mu);
		c->phase = WP_ENDED;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return ret;
}

/* An arriving sandbox: the rest of the stream (conn), checked; the machine
 * made from the template and the stream; READY to the source, its COMMIT;
 * the IO part to the service (IN_READY), its GO; RESUMED to the source. */
static int worker__migrate_in(struct machine *m, struct msg_job *job, int conn, int ctl_fd,
			      int sock, struct sb_err *err)
{
	struct snapshot *merged = calloc(1, sizeof(*merged));
	struct mig_incoming in = { 0 };
	struct mig_reader r;
	struct mig_rec rec;
	uint8_t *p = NULL;
	int ret, fd = -1;

	if (!merged) {
		ret = err__set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	mig_reader__fd(&r, conn, MIG_READ_TIMEOUT_MS);
	r.mem_size = job->hello.mem_size;
	ret = mig__read_body(&r, &in, err);
	if (ret == 0) {
		struct mig_io io;
		const char *a, *b, *c;
		ret = mig__parse_io(in.io, in.io_len, &io, &a, &b, &c, err);
		if (ret == 0)
			job->timeout_ns = io.timeout_left_ns; /* what it had left */
	}
	if (ret == 0)
		ret = mig__merge_state(&job->snap, in.state, in.state_len, merged, err);
	if (ret == 0)
		ret = mig__restore(m, merged, &in, err);
	if (ret == 0 && ctl_fd >= 0) {
		struct sb_err rerr = { "" };
		/* resizable here too, its free-page reporting as it was (the
		 * mailbox came with its pages; resize.c goes on from it) */
		machine__resize_enable(m, ctl_fd, RESIZE_REPORT_KEEP, &rerr);
	}
	if (ret < 0)
		goto fail;
	ret = mig__write_rec(conn, MIG_REC_READY, 0, NULL, 0);
	if (ret == 0)
		ret = mig__read_rec(&r, &rec, &p, err);
	else
		err__set(err, ret, "the source went away before the hand-over");
	if (ret == 0 && rec.type != MIG_REC_COMMIT)
		ret = err__set(err, -ECANCELED, "the source did not commit (%s%s%s)",
			       mig__rec_name(rec.type), p ? ": " : "", p ? (char *)p : "");
	free(p);
	if (ret < 0)
		goto out; /* no ERROR back: the source decided */
	fd = memfd_create("snapbox-migrate-io", MFD_CLOEXEC);
	if (fd < 0 || write(fd, in.io, in.io_len) != (ssize_t)in.io_len) {
		ret = err__errno(err, "memfd for the sandbox's output");
		goto out;
	}
	{
		/* status: its free-page reporting threshold, for the service's list */
		struct msg_mig mm = { .type = MSG_MIG_IN_READY, .status = (int32_t)m->rs.report_min };
		struct pollfd pf = { sock, POLLIN, 0 };

		if (fdmsg__send(sock, &mm, sizeof(mm), &fd, 1) < 0 || poll(&pf, 1, 10000) != 1 ||
		    msg_recv(sock, &mm, sizeof(mm), NULL, 0) < 0 || mm.type != MSG_MIG_GO) {
			ret = err__set(err, -EIO, "the service did not take the sandbox");
			goto out;
		}
	}
	(void)mig__write_rec(conn, MIG_REC_RESUMED, 0, NULL, 0);
	goto out;
fail:
	(void)mig__write_rec(conn, MIG_REC_ERROR, 0, err->msg, strlen(err->msg));
out:
	if (fd >= 0)
		close(fd);
	close(conn);
	mig__incoming_free(&in);
	free(merged);
	return ret;
}

/* One request.  A recycled machine (recycled) is already its template's
 * clone.  Returns whether the machine is to be recycled now. */
static bool worker__run_job(struct machine *m, struct msg_job *job, const int *fds, int sock,
			    bool recycled)
{
	struct wctl *c = NULL;
	struct msg_result r = { .type = MSG_RESULT };
	struct sb_err err = { "" };
	double t0 = now_us(), t1;
	int ret = 0;

	job->snap.dirfd = fds[3];
	if (job->migrate_in) {
		m->recycle = false;
		m->resizable = job->resizable != 0;
		ret = worker__migrate_in(m, job, fds[4 + (job->resizable != 0)],
					 job->resizable ? fds[4] : -1, sock, &err);
	} else if (!recycled) {
		m->recycle = job->recycle != 0;
		m->resizable = job->resizable != 0;
		ret = machine__clone_into(m, &job->snap, &err);
		if (ret == 0 && job->resizable) {
			struct sb_err rerr = { "" };
			/* not resizable (an older template): it runs all the same,
			 * and resize requests are answered with why */
			machine__resize_enable(m, fds[4], job->report_min, &rerr);
		}
	} else if (memcmp(m->template_id, job->snap.id, sizeof(m->template_id))) {
		ret = err__set(&err, -EINVAL, "a recycled sandbox was handed another template");
	}
	t1 = now_us();
	r.clone_us = t1 - t0;
	if (ret == 0) {
		m->hc.stdin_fd = fds[0];
		m->hc.stdout_fd = fds[1];
		m->hc.stderr_fd = fds[2];
		m->hc.trace_fd = fds[2];
		m->hc.program = job->name;
		if (job->migratable)
			c = wctl__start(m, sock, &job->snap);
		m->hc.pause = c ? &m->pause : NULL;
		ret = timeout__start(&m->timeout, job->timeout_ns, &err);
		if (ret == 0)
			ret = worker__go(m, c, &err);
		if (ret == -ETIMEDOUT) {
			ret = 124;
			err__set(&err, 0, "timed out reading the request");
		}
		timeout__stop(&m->timeout);
		r.run_us = now_us() - t1;
		r.timed_out = ret == 124;
	}
	r.status = ret;
	r.recycling = job->recycle && m->recycle && ret >= 0 && !r.timed_out && machine__recyclable(m);
	snprintf(r.message, sizeof(r.message), "%s", err.msg);
	/* the answer first: EOF on the output pipes, then the result */
	close(fds[0]);
	close(fds[1]);
	close(fds[2]);
	if (recycled)
		close(fds[3]); /* the first request's stays open: resets read it */
	fdmsg__send(sock, &r, sizeof(r), NULL, 0);
	return r.recycling;
}

/* Put the machine back to its template and say how it went. */
static int worker__recycle(struct machine *m, const struct snapshot *snap, int sock)
{
	struct msg_recycled rc = { .type = MSG_RECYCLED };
	struct reset_stats st;
	struct sb_err err = { "" };

	rc.status = machine__reset(m, snap, &st, &err);
	if (rc.status == 0 && st.pages > RECYCLE_MAX_PAGES)
		rc.status = err__set(&err, -E2BIG, "its sandbox has written %llu pages: a fresh "
				     "clone is cheaper than putting them all back after every request",
				     (unsigned long long)st.pages);
	rc.pages = st.pages;
	rc.reset_us = st.total_us;
	snprintf(rc.message, sizeof(rc.message), "%s", err.msg);
	if (fdmsg__send(sock, &rc, sizeof(rc), NULL, 0) < 0)
		return -EPIPE;
	return rc.status;
}

/* PRECLONE: clone the template, pre-fault its write set; answer as a reset
 * does (RECYCLED: 0, the pages pre-faulted; -errno: the worker ends). */
static int worker__preclone(struct machine *m, struct msg_job *job, int dirfd, int sock)
{
	struct msg_recycled rc = { .type = MSG_RECYCLED };
	struct sb_err err = { "" };
	double t0 = now_us();

	job->snap.dirfd = dirfd;
	m->recycle = job->recycle != 0;
	m->resizable = false;
	rc.status = machine__clone_into(m, &job->snap, &err);
	if (rc.status == 0)
		rc.status = machine__prefault(m, &job->snap, &rc.pages, &err);
	rc.reset_us = now_us() - t0;
	snprintf(rc.message, sizeof(rc.message), "%s", err.msg);
	if (fdmsg__send(sock, &rc, sizeof(rc), NULL, 0) < 0)
		return -EPIPE;
	return rc.status;
}

static void worker__on_urg(int sig)
{
	(void)sig;
}

/* netns_fd: the zygote's shared empty network namespace for proc
 * sandboxes (-1: none; each then gets a new one). */
static void worker__main(int sock, uint64_t kind, int netns_fd)
{
	const struct backend *be = kind_backend(kind);
	struct msg_status st = { .type = MSG_READY };
	struct sb_err err = { "" };
	struct msg_job *job = calloc(1, sizeof(*job));
	struct snapshot *tsnap = calloc(1, sizeof(*tsnap)); /* a recycled machine's template */
	struct machine *m = NULL;
	struct jail_config jc;
	struct machine_opts mo = { NULL };
	bool recycled = false;
	int fds[6], n;

	signal(SIGPIPE, SIG_IGN);
	if (be == &proc_backend) {
		/* the default jail, in the zygote's network namespace: a new
		 * netns per sandbox costs ~0.4 ms here and a teardown later */
		proc__default_jail(&jc, kind_mem(kind));
		jc.netns_fd = netns_fd;
		mo.jail = &jc;
	}
	if (job && tsnap && be)
		m = machine__new_opts(be, kind_mem(kind), RAM_RESERVED, &mo, &err);
	if (!m) {
		st.type = MSG_ERROR;
		snprintf(st.message, sizeof(st.message), "%s", err.msg[0] ? err.msg : "out of memory");
		fdmsg__send(sock, &st, sizeof(st), NULL, 0);
		_exit(1);
	}
	if (fdmsg__send(sock, &st, sizeof(st), NULL, 0) < 0)
		_exit(1);
	/* resize requests come with SIGURG (resize.h): it only interrupts */
	{
		struct sigaction sa = { .sa_handler = worker__on_urg };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGURG, &sa, NULL);
	}
	/* one request, or, recycled, one after the other until the service
	 * closes our socket (idle) or a reset fails */
	while ((n = msg_recv(sock, job, sizeof(*job), fds, 6)) >= 1) {
		if (job->type == MSG_PRECLONE && n == 1 && !recycled) {
			if (worker__preclone(m, job, fds[0], sock) < 0)
				break;
			*tsnap = job->snap; /* with its directory's descriptor */
			recycled = true;
			continue;
		}
		if (n < 4 || job->type != MSG_JOB || n != 4 + (job->resizable != 0) + (job->migrate_in != 0))
			break;
		job->name[sizeof(job->name) - 1] = 0;
		if (!worker__run_job(m, job, fds, sock, recycled))
			break;
		if (!recycled) {
			*tsnap = job->snap; /* with its directory's descriptor */
			recycled = true;
		}
		if (worker__recycle(m, tsnap, sock) < 0)
			break;
	}
	/* the answer is out: what the process's exit would not undo (a proc
	 * sandbox's cgroup) goes now, the rest with the process */
	m->be->destroy_detached(m);
	_exit(0);
}

/* ---- the zygote: forks workers, reaps them ------------------------------- */

/* Workers the zygote has forked and not yet reaped (to end them at the end). */
static pid_t zygote_kids[MAX_WORKERS];

static void zygote__reap(void)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (int i = 0; i < MAX_WORKERS; i++)
			if (zygote_kids[i] == pid)
				zygote_kids[i] = 0;
}

/* The service is gone: end every worker (their sandboxes die with them),
 * reap them all, remove the cgroups they left, then go. */
static __attribute__((noreturn)) void zygote__end(void)
{
	signal(SIGTERM, SIG_IGN);
	for (int i = 0; i < MAX_WORKERS; i++)
		if (zygote_kids[i] > 0)
			kill(zygote_kids[i], SIGKILL);
	/* we are their subreaper: the sandboxes of killed workers come to us */
	for (int i = 0; i < 400; i++) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid < 0 && errno == ECHILD)
			break;
		if (pid <= 0)
			usleep(5000);
	}
	jail__sweep(NULL);
	kill(0, SIGKILL); /* anything left in our process group, and us */
	_exit(0);
}

static void zygote__main(int sock)
{
	struct msg_spawn req;
	int netns_fd = -1;

	/* nothing of the service's but our socket */
	if (sock != 3) {
		dup2(sock, 3);
		sock = 3;
	}
	close_range(4, ~0U, 0);
	/* a process group of its own: the zygote and its workers, nothing else,
	 * so that ending them all (kill(0)) never reaches the service */
	setpgid(0, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL); /* not the service's blocked set */
	signal(SIGCHLD, SIG_DFL);
	/* a killed worker's proc sandbox is reparented to us, not to the host's
	 * init, and reaped here at once: its cgroup can go (a zombie keeps it) */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (geteuid() == 0) {
		/* one empty network namespace for every proc sandbox (jail.h) */
		struct sb_err err = { "" };
		netns_fd = jail__make_netns(&err);
		if (netns_fd < 0)
			netns_fd = -1; /* each sandbox gets a new one */
	}
	for (;;) {
		zygote__reap();
		struct pollfd pf = { sock, POLLIN, 0 };
		if (poll(&pf, 1, 200) <= 0)
			continue;
		if (msg_recv(sock, &req, sizeof(req), NULL, 0) < 0 || req.type != MSG_SPAWN)
			break; /* the service is gone */
		int pair[2];
		struct msg_spawned rep = { .type = MSG_SPAWNED };
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
			rep.pid = -errno;
			fdmsg__send(sock, &rep, sizeof(rep), NULL, 0);
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(sock);
			close(pair[0]);
			worker__main(pair[1], req.mem_size, netns_fd);
		}
		rep.pid = pid < 0 ? -errno : pid;
		for (int i = 0; pid > 0 && i < MAX_WORKERS; i++)
			if (!zygote_kids[i]) {
				zygote_kids[i] = pid;
				break;
			}
		close(pair[1]);
		fdmsg__send(sock, &rep, sizeof(rep), pid < 0 ? NULL : &pair[0], pid < 0 ? 0 : 1);
		close(pair[0]);
	}
	zygote__end(); /* service gone: end every sandbox */
}

/* ---- the service side ----------------------------------------------------- */

/* Ask the zygote for a worker of mem_size and wait until its VM shell is
 * ready (several refill threads may wait at once).  p->lock not held. */
static int pool__spawn(struct pool *p, struct worker *w, char *why, size_t why_len)
{
	struct msg_spawn req = { .type = MSG_SPAWN, .mem_size = w->mem_size };
	struct msg_spawned rep;
	struct msg_status st;
	int fd = -1, ret;

	pthread_mutex_lock(&p->zlock);
	ret = fdmsg__send(p->zsock, &req, sizeof(req), NULL, 0);
	if (ret == 0)
		ret = msg_recv(p->zsock, &rep, sizeof(rep), &fd, 1);
	pthread_mutex_unlock(&p->zlock);
	if (ret < 0)
		return ret;
	if (rep.pid < 0 || ret != 1) {
		if (fd >= 0)
			close(fd);
		return rep.pid < 0 ? rep.pid : -EIO;
	}
	struct pollfd pf = { fd, POLLIN, 0 };
	if (poll(&pf, 1, READY_WAIT_MS) != 1 || msg_recv(fd, &st, sizeof(st), NULL, 0) < 0 ||
	    st.type != MSG_READY) {
		st.message[sizeof(st.message) - 1] = 0;
		snprintf(why, why_len, "%s", st.type == MSG_ERROR ? st.message : "no answer");
		pool__log(p, 0, "worker %d failed to start: %s", rep.pid, why);
		kill(rep.pid, SIGKILL);
		close(fd);
		return -EIO;
	}
	w->pid = rep.pid;
	w->sock = fd;
	return 0;
}

static unsigned pool__count(struct pool *p, uint64_t size, enum worker_state s)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_WORKERS; i++)
		n += p->w[i].state == s && p->w[i].mem_size == size;
	return n;
}

/* A recycled worker is done with: closing its socket ends it.  Locked. */
static void pool__retire(struct pool *p, struct worker *w, bool kill_it)
{
	(void)p;
	if (kill_it)
		kill(w->pid, SIGKILL);
	close(w->sock);
	w->sock = -1;
	w->state = W_FREE;
	w->tid[0] = 0;
	w->pre = false;
}

static struct worker *pool__free_slot(struct pool *p)
{
	struct worker *lru = NULL;

	for (int i = 0; i < MAX_WORKERS; i++) {
		if (p->w[i].state == W_FREE)
			return &p->w[i];
		if (p->w[i].state == W_RECYCLED && (!lru || p->w[i].idle_until < lru->idle_until))
			lru = &p->w[i];
	}
	if (lru) /* every slot taken: the idle recycled worker idle longest goes */
		pool__retire(p, lru, true);
	return lru;
}

/* A RECYCLING worker's reset result, if it has come (wait up to ms).
 * 1: reset, 0: not yet, -errno: it failed or died.  The worker is the
 * caller's (busy) or the lock is held. */
static int pool__reset_result(struct pool *p, struct worker *w, int ms, struct msg_recycled *out)
{
	struct pollfd pf = { w->sock, POLLIN, 0 };
	struct msg_recycled rc;

	if (poll(&pf, 1, ms) != 1)
		return ms > 0 ? -ETIMEDOUT : 0;
	if (msg_recv(w->sock, &rc, sizeof(rc), NULL, 0) < 0 || rc.type != MSG_RECYCLED)
		return -EIO;
	rc.message[sizeof(rc.message) - 1] = 0;
	if (rc.status == -E2BIG) {
		pool__log(p, 1, "worker %d: recycled no more: %s", w->pid, rc.message);
		return rc.status;
	}
	if (rc.status < 0) {
		pool__log(p, 0, "worker %d: %s failed, it ends: %s", w->pid,
			  w->pre ? "pre-clone" : "reset", rc.message);
		return rc.status;
	}
	pool__log(p, 2, "worker %d: %s %s in %.0f us (%llu pages)", w->pid,
		  w->pre ? "pre-cloned" : "reset to", w->name, rc.reset_us, (unsigned long long)rc.pages);
	*out = rc;
	return 1;
}

/* What pool__reset_result() said (r, rc), into the statistics; a worker
 * whose reset failed (or that is retired after it) ends.  Locked. */
static void pool__settle_reset(struct pool *p, struct worker *w, int r,
			       const struct msg_recycled *rc)
{
	if (r > 0 && w->pre) {
		p->st.preclones++;
		p->st.prefault_pages += rc->pages;
	} else if (r > 0) {
		p->st.resets++;
		p->st.reset_pages += rc->pages;
		p->st.reset_us_sum += rc->reset_us;
	} else if (r < 0) {
		if (w->pre)
			p->st.failed_preclones++;
		else
			p->st.failed_resets += r != -E2BIG;
		pool__retire(p, w, true);
	}
}

/* Recycled workers: take in finished resets, end idle and dead ones.  Locked. */
static void pool__sweep(struct pool *p)
{
	double now = now_us();

	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = &p->w[i];
		if (w->state == W_RECYCLING) {
			struct msg_recycled rc;
			int r = pool__reset_result(p, w, 0, &rc);
			pool__settle_reset(p, w, r, &rc);
			if (r > 0) {
				w->state = W_RECYCLED;
				w->idle_until = now + (w->idle_ms ? w->idle_ms : DEFAULT_IDLE_MS) * 1e3;
			}
		} else if (w->state == W_RECYCLED) {
			struct pollfd pf = { w->sock, POLLIN, 0 };
			if (now > w->idle_until || poll(&pf, 1, 0) != 0) {
				pool__log(p, 2, "worker %d: %s", w->pid,
					  now > w->idle_until ? "idle, ends" : "gone");
				pool__retire(p, w, false);
			}
		}
	}
	for (int i = 0; i < MAX_HOT; i++) /* templates not run for an idle period */
		if (p->hot[i].tid[0] &&
		    now > p->hot[i].last + (p->hot[i].idle_ms ? p->hot[i].idle_ms : DEFAULT_IDLE_MS) * 1e3)
			p->hot[i].tid[0] = 0;
}

/* Pre-cloned workers of template tid, waiting or being made.  Locked. */
static unsigned pool__count_pre(struct pool *p, const char *tid)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_WORKERS; i++)
		n += p->w[i].pre && (p->w[i].state == W_RECYCLED || p->w[i].state == W_RECYCLING) &&
		     !strcmp(p->w[i].tid, tid);
	return n;
}

static int pool__template(struct pool *p, const char *tdir, struct snapshot *snap,
			  struct sb_err *err);

/*
 * A template in use short of pre-cloned workers, with a ready worker of its
 * kind: that worker is handed the template (PRECLONE) and waits, as a
 * recycled one, for its request.  Locked (dropped while the template is
 * loaded and sent).  Whether it did something.
 */
static bool pool__preclone(struct pool *p)
{
	struct worker *w = NULL;
	struct hot *h = NULL;
	struct msg_job *job;
	struct sb_err err = { "" };
	int ret;

	if (p->stopping || p->o.precloned < 0 || p->live >= p->o.max_live)
		return false;
	for (int i = 0; i < MAX_HOT && !w; i++) {
		h = &p->hot[i];
		if (!h->tid[0] || pool__count_pre(p, h->tid) >= (unsigned)p->o.precloned)
			continue;
		for (int k = 0; k < MAX_WORKERS && !w; k++)
			if (p->w[k].state == W_READY && p->w[k].mem_size == h->kind)
				w = &p->w[k];
	}
	if (!w)
		return false;
	w->state = W_RECYCLING;
	w->pre = true;
	w->reuse = 0;
	w->idle_ms = h->idle_ms;
	memcpy(w->tid, h->tid, sizeof(w->tid));
	snprintf(w->name, sizeof(w->name), "(pre-clone)");
	p->st.ready--;
	char dir[sizeof(h->dir)], tid[sizeof(h->tid)];
	memcpy(dir, h->dir, sizeof(dir));
	memcpy(tid, h->tid, sizeof(tid));
	pthread_mutex_unlock(&p->lock);
	job = calloc(1, sizeof(*job));
	ret = job ? 0 : -ENOMEM;
	if (job) {
		job->snap.dirfd = -1;
		ret = pool__template(p, dir, &job->snap, &err);
	}
	if (ret == 0 && memcmp(job->snap.id, tid, sizeof(tid)))
		ret = -ESTALE; /* replaced meanwhile: the next run notes the new one */
	if (ret == 0) {
		job->type = MSG_PRECLONE;
		/* cloned to be reset: whichever run takes it, with recycling
		 * on or off (a run without it lets it end after its request) */
		job->recycle = 1;
		ret = fdmsg__send(w->sock, job, sizeof(*job), &job->snap.dirfd, 1);
	}
	if (job && job->snap.dirfd >= 0)
		close(job->snap.dirfd);
	free(job);
	pthread_mutex_lock(&p->lock);
	if (ret < 0) {
		pool__log(p, 0, "worker %d: not pre-cloned: %s", w->pid,
			  err.msg[0] ? err.msg : strerror(-ret));
		if (w->state == W_RECYCLING && w->pre) {
			p->st.failed_preclones++;
			pool__retire(p, w, true);
		} else {
			/* a run took it meanwhile and waits for its answer:
			 * that wait fails, and the run takes another worker */
			kill(w->pid, SIGKILL);
		}
		for (int i = 0; i < MAX_HOT; i++) /* do not retry it before its next run */
			if (!strcmp(p->hot[i].tid, tid))
				p->hot[i].tid[0] = 0;
	}
	pthread_cond_broadcast(&p->changed);
	return true;
}

/* A run of template tid (in dir): keep it pre-cloned from now on.  Locked. */
static void pool__hot_note(struct pool *p, const char *tid, const char *dir, uint64_t kind,
			   uint32_t idle_ms)
{
	struct hot *h = NULL;

	if (p->o.precloned < 0)
		return;
	for (int i = 0; i < MAX_HOT && !h; i++)
		if (!strcmp(p->hot[i].tid, tid))
			h = &p->hot[i];
	for (int i = 0; i < MAX_HOT && !h; i++)
		if (!p->hot[i].tid[0])
			h = &p->hot[i];
	if (!h) { /* all taken: the one run least recently */
		h = &p->hot[0];
		for (int i = 1; i < MAX_HOT; i++)
			if (p->hot[i].last < h->last)
				h = &p->hot[i];
	}
	if (strcmp(h->tid, tid)) {
		memcpy(h->tid, tid, sizeof(h->tid));
		snprintf(h->dir, sizeof(h->dir), "%s", dir);
	}
	h->kind = kind;
	h->idle_ms = idle_ms;
	h->last = now_us();
	pthread_cond_broadcast(&p->changed);
}

static void *pool__refill(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		struct worker *w = NULL;
		for (unsigned i = 0; i < p->n_sizes && !w; i++) {
			uint64_t sz = p->sizes[i];
			if (pool__count(p, sz, W_READY) + pool__count(p, sz, W_STARTING) <
			    p->o.ready_per_size && (w = pool__free_slot(p))) {
				w->state = W_STARTING;
				w->mem_size = sz;
			}
		}
		if (!w && pool__preclone(p))
			continue;
		if (!w) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += SWEEP_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&p->changed, &p->lock, &ts);
			pool__sweep(p);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		char why[256] = "";
		int ret = pool__spawn(p, w, why, sizeof(why));
		pthread_mutex_lock(&p->lock);
		for (unsigned i = 0; i < p->n_sizes; i++)
			if (p->sizes[i] == w->mem_size)
				snprintf(p->size_why[i], sizeof(p->size_why[i]), "%s",
					 ret < 0 && !why[0] ? strerror(-ret) : why);
		if (ret < 0) {
			w->state = W_FREE;
			if (ret == -ECONNRESET || ret == -EPIPE)
				break; /* the zygote is gone */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1; /* do not spin on a broken host */
			pthread_cond_timedwait(&p->changed, &p->lock, &ts);
		} else {
			w->state = W_READY;
			p->st.ready++;
		}
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool__create(struct pool **out, const struct pool_opts *o, struct sb_err *err)
{
	struct pool *p = calloc(1, sizeof(*p));
	int pair[2];

	if (!p || !(p->tcache = calloc(TCACHE_SIZE, sizeof(*p->tcache)))) {
		free(p);
		return err__set(err, -ENOMEM, "out of memory");
	}
	p->o = *o;
	if (!p->o.ready_per_size)
		p->o.ready_per_size = 2;
	if (!p->o.max_live)
		p->o.max_live = 64;
	if (!p->o.precloned)
		p->o.precloned = 1;
	if (p->o.precloned > 16)
		p->o.precloned = 16;
	if (p->o.max_live > MAX_WORKERS / 2)
		p->o.max_live = MAX_WORKERS / 2;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		free(p->tcache);
		free(p);
		return err__errno(err, "socketpair");
	}
	p->zpid = fork();
	if (p->zpid < 0) {
		close(pair[0]);
		close(pair[1]);
		free(p->tcache);
		free(p);
		return err__errno(err, "fork of the zygote");
	}
	if (p->zpid == 0) {
		close(pair[0]);
		zygote__main(pair[1]);
	}
	close(pair[1]);
	p->zsock = pair[0];
	p->next_id = 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->zlock, NULL);
	pthread_mutex_init(&p->tlock, NULL);
	for (int i = 0; i < TCACHE_SIZE; i++)
		p->tcache[i].snap.dirfd = -1;
	pthread_cond_init(&p->changed, NULL);
	{
		/* the default template: 256 MiB, on the backend `auto` picks here */
		struct sb_err e = { "" };
		const struct backend *be = backend__pick("auto", &e);
		p->sizes[p->n_sizes++] = kind_of(256ULL << 20, be ? be->snap_backend : 0);
	}
	for (int i = 0; i < REFILL_THREADS; i++)
		if (pthread_create(&p->refill[p->n_refill], NULL, pool__refill, p) == 0)
			p->n_refill++;
	if (!p->n_refill) {
		close(p->zsock);
		waitpid(p->zpid, NULL, 0);
		free(p->tcache);
		free(p);
		return err__set(err, -EAGAIN, "cannot start the pool threads");
	}
	*out = p;
	return 0;
}

/* A recycled (any: or pre-cloned) worker of template tid, or only a
 * pre-cloned one (one that has reset or cloned first).  Locked. */
static struct worker *pool__recycled(struct pool *p, const char *tid, bool any)
{
	struct worker *w = NULL;
	int best = -1;

	/* a recycled one first (reset, else resetting), then a pre-cloned one */
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *c = &p->w[i];
		int rank = (c->pre ? 0 : 2) + (c->state == W_RECYCLED);

		if ((c->state == W_RECYCLED || c->state == W_RECYCLING) && !strcmp(c->tid, tid) &&
		    (any || c->pre) && rank > best)
			w = c, best = rank;
	}
	return w;
}

/* Take a worker (waiting for one), as sandbox `id`: with tid, a recycled
 * (recycle: recycling on) or pre-cloned one of that template if there is
 * one (*recycled: it was still resetting or being cloned (2) or had (1);
 * *pre: pre-cloned), else a ready one of mem_size. */
static struct worker *pool__take(struct pool *p, uint64_t mem_size, const char *name,
				 const char *tid, bool recycle, uint64_t *id, int *recycled,
				 bool *pre)
{
	struct worker *w = NULL;
	bool known = false;

	unsigned k = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n_sizes && !known; i++)
		if (p->sizes[i] == mem_size)
			known = true, k = i;
	if (!known) {
		/* a new kind; when all are taken, the least recently used one
		 * is no longer refilled (its ready workers still serve) */
		if (p->n_sizes < MAX_KINDS) {
			k = p->n_sizes++;
		} else {
			k = 0;
			for (unsigned i = 1; i < p->n_sizes; i++)
				if (p->size_used[i] < p->size_used[k])
					k = i;
		}
		p->sizes[k] = mem_size;
		p->size_why[k][0] = 0;
	}
	p->size_used[k] = ++p->ktick;
	pthread_cond_broadcast(&p->changed);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += TAKE_WAIT_S;
	*recycled = 0;
	*pre = false;
	while (!p->stopping) {
		if (p->live < p->o.max_live && tid && (w = pool__recycled(p, tid, recycle))) {
			*recycled = w->state == W_RECYCLING ? 2 : 1;
			*pre = w->pre;
			w->pre = false;
			w->reuse += !*pre;
			break;
		}
		if (p->live < p->o.max_live) {
			for (int i = 0; i < MAX_WORKERS && !w; i++)
				if (p->w[i].state == W_READY && p->w[i].mem_size == mem_size)
					w = &p->w[i];
			if (w)
				break;
		}
		if (pthread_cond_timedwait(&p->changed, &p->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (w) {
		w->state = W_BUSY;
		w->id = *id = p->next_id++;
		w->killed = false;
		w->t_start = now_us();
		snprintf(w->name, sizeof(w->name), "%s", name);
		if (!*recycled) {
			p->st.ready--;
			w->reuse = 0;
		}
		p->live++;
		p->st.started++;
		pthread_cond_broadcast(&p->changed); /* the refill thread makes another */
	}
	pthread_mutex_unlock(&p->lock);
	return w;
}

static int append(char **buf, size_t *len, const char *d, size_t n)
{
	char *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + *len, d, n);
	*len += n;
	nb[*len] = 0;
	*buf = nb;
	return 0;
}

/*
 * One sandbox as the service sees it.  A run (pool__run) lives on the
 * caller's stack; a long-lived one (pool__start) on p->live_list, with a
 * thread collecting its output until it ends.
 */
struct sandbox {
	struct pool *p;
	struct worker *w;
	uint64_t id;
	int stdin_w;             /* long-lived: the write end of its stdin, or -1 */
	int out_r, err_r;
	struct sandbox_limits lim;
	char name[72];
	char tid[33];            /* the template's id */
	struct sandbox_result res; /* output grows here, under p->lock */
	struct msg_result r;
	double t0;
	bool done;
	uint64_t kind;           /* its RAM size and backend */
	/* migration: under way (or done: the worker ended for it), and where */
	bool migrating, migrated;
	char location[128];
	pthread_mutex_t rd_lock; /* a read of its output pipes and its append */
	pthread_mutex_t in_lock; /* long-lived: one stdin writer at a time */
	/* long-lived: resizing (backend/resize.h) */
	int ctl;                 /* our end of its control socket, -1: none */
	int ctl_child;           /* the worker's end, until it is handed over */
	uint32_t report_min;
	pthread_mutex_t ctl_lock; /* one request at a time */
	uint64_t ctl_seq;
	uint64_t mem;            /* bytes of RAM now (the template's at start) */
	double cpu;              /* CPU share now, 0: no limit known */
	bool proc;               /* its backend is proc */
	pthread_t thread;
	struct sandbox *next;
};

/* Load the template, take a worker, hand it the job with stdin_fd. */
/*
 * The template in tdir, loaded and checked, into *snap with a dirfd of its
 * own (the caller closes it).  Kept loaded while its state.bin is the same
 * file (a replaced template is a new one) -- the service checks a template
 * once, not on every request.
 */
static int pool__template(struct pool *p, const char *tdir, struct snapshot *snap,
			  struct sb_err *err)
{
	char path[4200];
	struct stat sb;
	struct tcache *e = NULL, *lru = NULL;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s", tdir, SNAP_STATE_FILE);
	if (stat(path, &sb) < 0)
		return err__errno(err, "template %s", tdir);
	pthread_mutex_lock(&p->tlock);
	for (int i = 0; i < TCACHE_SIZE && !e; i++) {
		struct tcache *c = &p->tcache[i];
		if (c->snap.dirfd >= 0 && !strcmp(c->dir, tdir) && c->dev == sb.st_dev &&
		    c->ino == sb.st_ino && c->size == sb.st_size &&
		    c->mtime.tv_sec == sb.st_mtim.tv_sec && c->mtime.tv_nsec == sb.st_mtim.tv_nsec)
			e = c;
		if (!lru || c->used < lru->used)
			lru = c;
	}
	if (!e) {
		e = lru;
		if (e->snap.dirfd >= 0)
			snapshot__close(&e->snap);
		ret = snapshot__load(tdir, &e->snap, err);
		if (ret < 0) {
			e->snap.dirfd = -1;
			e->dir[0] = 0;
		} else {
			snprintf(e->dir, sizeof(e->dir), "%s", tdir);
			e->dev = sb.st_dev;
			e->ino = sb.st_ino;
			e->size = sb.st_size;
			e->mtime = sb.st_mtim;
		}
	}
	if (ret == 0) {
		e->used = ++p->ttick;
		*snap = e->snap;
		snap->dirfd = fcntl(e->snap.dirfd, F_DUPFD_CLOEXEC, 0);
		if (snap->dirfd < 0)
			ret = err__errno(err, "dup of the template's directory");
	}
	pthread_mutex_unlock(&p->tlock);
	return ret;
}

static int sandbox__begin(struct pool *p, struct sandbox *sb, const char *name, const char *tdir,
			  int stdin_fd, const struct mig_hello *mig, int conn, struct sb_err *err)
{
	struct msg_job *job = calloc(1, sizeof(*job));
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, ret;
	uint64_t kind = 0;

	sb->p = p;
	sb->out_r = sb->err_r = -1;
	pthread_mutex_init(&sb->rd_lock, NULL);
	snprintf(sb->name, sizeof(sb->name), "%s", name);
	if (!job) {
		ret = err__set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the template must load here, or nothing runs */
	job->snap.dirfd = -1;
	ret = pool__template(p, tdir, &job->snap, err);
	if (ret < 0)
		goto out;
	kind = kind_of(job->snap.hdr.mem_size, job->snap.hdr.backend);
	sb->kind = kind;
	sb->mem = job->snap.hdr.mem_size;
	sb->proc = kind_backend(kind) == &proc_backend;
	sb->cpu = sb->proc ? 1.0 : 0; /* the proc jail's default: one CPU */
	if (mig && (job->snap.hdr.mem_size != mig->mem_size || job->snap.hdr.backend != mig->backend ||
		    memcmp(job->snap.id, mig->template_id, sizeof(job->snap.id)))) {
		ret = err__set(err, -EINVAL, "template %s is not the sandbox's", name);
		goto out;
	}
	if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(errp, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = err__errno(err, "pipe for the sandbox's output");
		goto out;
	}
	{
		/* a long-lived (resizable) sandbox is always a fresh clone */
		const char *tid = sb->ctl_child < 0 ? job->snap.id : NULL;
		int recycled;
		bool pre = false;

		if (tid) {
			pthread_mutex_lock(&p->lock);
			pool__hot_note(p, tid, tdir, kind, sb->lim.recycle.idle_ms);
			pthread_mutex_unlock(&p->lock);
		}
		for (;;) {
			struct msg_recycled rc;
			int r;

			sb->w = pool__take(p, kind, name, tid, sb->lim.recycle.on, &sb->id, &recycled, &pre);
			if (!sb->w || recycled != 2)
				break;
			/* its reset (or pre-clone) is under way: a few tens of us
			 * (a ms or two), usually */
			sb->w->pre = pre; /* the log and statistics say what it was */
			r = pool__reset_result(p, sb->w, RESET_WAIT_MS, &rc);
			pthread_mutex_lock(&p->lock);
			if (r < 0 && sb->w->killed) {
				/* killed (pool__kill) meanwhile: no other worker runs
				 * it; sandbox__finish says so and frees the slot */
				pthread_mutex_unlock(&p->lock);
				break;
			}
			pool__settle_reset(p, sb->w, r, &rc);
			sb->w->pre = false;
			if (r > 0) {
				pthread_mutex_unlock(&p->lock);
				break;
			}
			p->live--;
			p->st.started--;
			pthread_cond_broadcast(&p->changed);
			pthread_mutex_unlock(&p->lock);
			sb->w = NULL; /* another one, recycled or fresh */
		}
		if (sb->w) {
			uint32_t max = sb->lim.recycle.max_reuses;

			sb->res.recycled = recycled != 0 && !pre;
			sb->res.precloned = pre;
			sb->res.pid = sb->w->pid;
			sb->res.reuse = sb->w->reuse;
			job->recycle = sb->lim.recycle.on && (!max || sb->w->reuse < max);
			memcpy(sb->tid, job->snap.id, sizeof(sb->tid));
			p->st.recycled_runs += recycled != 0 && !pre; /* a statistic: racy is fine */
			p->st.precloned_runs += pre;
		}
	}
	if (!sb->w) {
		char why[256] = "";

		pthread_mutex_lock(&p->lock);
		for (unsigned i = 0; i < p->n_sizes; i++)
			if (p->sizes[i] == kind)
				snprintf(why, sizeof(why), "%s", p->size_why[i]);
		pthread_mutex_unlock(&p->lock);
		ret = p->stopping ? err__set(err, -ESHUTDOWN, "the service is stopping")
				  : err__set(err, -EAGAIN, "no sandbox worker became free within %d s%s%s",
					     TAKE_WAIT_S, why[0] ? "; the last one failed to start: " : "",
					     why);
		goto out;
	}
	if (mig) {
		/* it keeps its id (the caller checked it is free here) */
		pthread_mutex_lock(&p->lock);
		sb->id = sb->w->id = mig->sandbox_id;
		if (p->next_id <= sb->id)
			p->next_id = sb->id + 1;
		pthread_mutex_unlock(&p->lock);
	}
	sb->res.id = sb->id;
	sb->res.wait_us = now_us() - sb->t0;
	pool__log(p, 1, "sandbox %llu: template %s, worker pid %d", (unsigned long long)sb->id, name,
		  sb->w->pid);
	job->type = MSG_JOB;
	job->id = sb->id;
	job->timeout_ns = sb->lim.timeout_ns;
	job->migratable = sb->stdin_w != -1; /* long-lived (pool__start) */
	if (mig) {
		job->migrate_in = 1;
		job->migratable = 1;
		job->hello = *mig;
	}
	job->resizable = sb->ctl_child >= 0;
	job->report_min = sb->report_min;
	snprintf(job->name, sizeof(job->name), "%s", name);
	/* stdin, stdout, stderr, the template; its control socket if resizable,
	 * then the stream if it arrives */
	int fds[6] = { stdin_fd, out[1], errp[1], job->snap.dirfd }, nfds = 4;
	if (job->resizable)
		fds[nfds++] = sb->ctl_child;
	if (mig)
		fds[nfds++] = conn;
	ret = fdmsg__send(sb->w->sock, job, sizeof(*job), fds, nfds);
	if (ret < 0)
		err__set(err, ret, "handing the request to its worker: %s", strerror(-ret));
	sb->out_r = out[0];
	sb->err_r = errp[0];
	out[0] = errp[0] = -1;
	ret = 0; /* a worker was taken: sandbox__finish() settles it either way */
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (job && job->snap.dirfd >= 0)
		close(job->snap.dirfd);
	free(job);
	return ret;
}

/* Collect stdout/stderr until EOF, and the worker's result. */
static void sandbox__collect(struct sandbox *sb)
{
	struct pool *p = sb->p;
	uint64_t max = sb->lim.max_output ? sb->lim.max_output : DEFAULT_MAX_OUTPUT;
	double deadline = sb->lim.timeout_ns ? now_us() + sb->lim.timeout_ns / 1e3 + 5e6 : 0;
	struct pollfd pf[3] = { { sb->out_r, POLLIN, 0 }, { sb->err_r, POLLIN, 0 },
				{ sb->w->sock, POLLIN, 0 } };
	bool have_result = false;
	char buf[65536];

	while (pf[0].fd >= 0 || pf[1].fd >= 0 || !have_result) {
		int ms = deadline ? (int)((deadline - now_us()) / 1e3) : 1000;
		if (deadline && ms <= 0) {
			kill(sb->w->pid, SIGKILL); /* the worker missed its own deadline */
			deadline = 0;
		}
		if (poll(pf, 3, ms > 0 ? ms : 0) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			pthread_mutex_lock(&sb->rd_lock);
			ssize_t n = read(pf[i].fd, buf, sizeof(buf));
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				pthread_mutex_unlock(&sb->rd_lock);
				continue; /* a migration's drain took it */
			}
			if (n <= 0) {
				pthread_mutex_unlock(&sb->rd_lock);
				pf[i].fd = -1;
				continue;
			}
			pthread_mutex_lock(&p->lock);
			if (sb->res.out_len + sb->res.err_len + (size_t)n > max) {
				if (!sb->res.output_limited)
					kill(sb->w->pid, SIGKILL);
				sb->res.output_limited = true;
			} else if (i == 0) {
				append(&sb->res.out, &sb->res.out_len, buf, (size_t)n);
			} else {
				append(&sb->res.err, &sb->res.err_len, buf, (size_t)n);
			}
			pthread_mutex_unlock(&p->lock);
			pthread_mutex_unlock(&sb->rd_lock);
		}
		if (!have_result && pf[2].revents) {
			have_result = true;
			pf[2].fd = -1;
			if (msg_recv(sb->w->sock, &sb->r, sizeof(sb->r), NULL, 0) < 0 ||
			    sb->r.type != MSG_RESULT)
				sb->r.type = 0; /* the worker died: killed, or crashed */
		}
	}
}

/* The sandbox has ended: its result, the statistics, the worker's slot. */
static void sandbox__finish(struct sandbox *sb)
{
	static const double le[11] = { 250, 500, 1000, 2000, 4000, 8000, 16000, 32000,
				       64000, 128000, 256000 };
	struct pool *p = sb->p;
	struct sandbox_result *res = &sb->res;
	struct msg_result *r = &sb->r;

	pthread_mutex_lock(&p->lock);
	res->total_us = now_us() - sb->t0;
	res->killed = sb->w->killed;
	r->message[sizeof(r->message) - 1] = 0;
	if (r->type == MSG_RESULT && r->status >= 0 && !res->output_limited) {
		res->status = r->status;
		res->timed_out = r->timed_out;
		res->clone_us = r->clone_us;
		res->run_us = r->run_us;
		snprintf(res->message, sizeof(res->message), "%s", r->message);
		p->st.finished++;
	} else if (r->type == MSG_RESULT && r->status < 0) {
		res->status = 125;
		snprintf(res->message, sizeof(res->message), "%s", r->message);
		p->st.failed++;
	} else if (sb->migrating) {
		/* its worker ended after the destination took the sandbox */
		res->status = 0;
		snprintf(res->message, sizeof(res->message), "migrated");
	} else {
		res->status = 128 + SIGKILL;
		snprintf(res->message, sizeof(res->message), "%s",
			 res->killed ? "killed" : res->output_limited ? "stopped: output over the limit"
								   : "the sandbox's worker died");
		p->st.failed += !res->killed;
	}
	p->st.killed += res->killed;
	p->st.timed_out += res->timed_out;
	for (int i = 0; i < 11; i++)
		p->st.latency_buckets[i] += res->total_us <= le[i];
	p->st.latency_buckets[11]++;
	p->st.latency_sum_us += res->total_us;
	if (!res->out)
		append(&res->out, &res->out_len, "", 0);
	if (!res->err)
		append(&res->err, &res->err_len, "", 0);
	if (r->type == MSG_RESULT && r->recycling && !res->output_limited && !res->killed) {
		/* its worker resets it now; the next request of this template
		 * takes it (pool__recycled), or the sweep ends it when idle */
		sb->w->state = W_RECYCLING;
		memcpy(sb->w->tid, sb->tid, sizeof(sb->w->tid));
		sb->w->idle_ms = sb->lim.recycle.idle_ms;
	} else {
		close(sb->w->sock);
		sb->w->state = W_FREE;
	}
	sb->w = NULL;
	p->live--;
	sb->done = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	if (sb->out_r >= 0)
		close(sb->out_r);
	if (sb->err_r >= 0)
		close(sb->err_r);
	sb->out_r = sb->err_r = -1;
	pool__log(p, 1, "sandbox %llu: %s %d in %.1f ms%s%s", (unsigned long long)res->id,
		  res->timed_out ? "timed out, status" : "exit", res->status, res->total_us / 1e3,
		  res->message[0] ? ": " : "", res->message);
}

int pool__run(struct pool *p, const char *name, const char *tdir, const void *in, size_t in_len,
	      const struct sandbox_limits *lim, struct sandbox_result *res, struct sb_err *err)
{
	int in_fd = memfd_create("snapbox-request", MFD_CLOEXEC), ret;

	memset(res, 0, sizeof(*res));
	if (in_fd < 0 || (in_len && write(in_fd, in, in_len) != (ssize_t)in_len)) {
		ret = err__errno(err, "the request's memfd");
		if (in_fd >= 0)
			close(in_fd);
		return ret;
	}
	for (int attempt = 0;; attempt++) {
		struct sandbox sb = { .lim = *lim, .t0 = now_us(), .stdin_w = -1, .ctl = -1,
				      .ctl_child = -1 };

		if (lseek(in_fd, 0, SEEK_SET) < 0) {
			ret = err__errno(err, "the request's memfd");
			break;
		}
		ret = sandbox__begin(p, &sb, name, tdir, in_fd, NULL, -1, err);
		if (ret < 0)
			break;
		sandbox__collect(&sb);
		sandbox__finish(&sb);
		/* a recycled sandbox that turned out unusable before the request
		 * ran (its process died after its reset): a fresh one takes it */
		if (attempt == 0 && (sb.res.recycled || sb.res.precloned) && sb.r.type == MSG_RESULT &&
		    sb.r.status < 0) {
			pool__log(p, 0, "sandbox %llu: its recycled sandbox could not run it (%s); "
				  "again on another", (unsigned long long)sb.id, sb.res.message);
			sandbox_result__free(&sb.res);
			continue;
		}
		*res = sb.res;
		break;
	}
	close(in_fd);
	return ret < 0 ? ret : 0;
}

/* ---- long-lived sandboxes -------------------------------------------------- */

static void *sandbox__thread(void *arg)
{
	struct sandbox *sb = arg;
	sandbox__collect(sb);
	sandbox__finish(sb);
	return NULL;
}

static struct sandbox *pool__find(struct pool *p, uint64_t id)
{
	for (struct sandbox *sb = p->live_list; sb; sb = sb->next)
		if (sb->id == id)
			return sb;
	return NULL;
}

int pool__start(struct pool *p, const char *name, const char *tdir,
		const struct sandbox_limits *lim, uint64_t *id, struct sb_err *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	int in[2], ctl[2], ret;

	if (!sb)
		return err__set(err, -ENOMEM, "out of memory");
	if (pipe2(in, O_CLOEXEC) < 0) {
		free(sb);
		return err__errno(err, "pipe for the sandbox's stdin");
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		close(in[0]);
		close(in[1]);
		free(sb);
		return err__errno(err, "socket for resizing the sandbox");
	}
	sb->lim = *lim;
	sb->lim.recycle.on = false; /* a long-lived sandbox is never recycled */
	sb->t0 = now_us();
	sb->ctl = ctl[0];
	sb->ctl_child = ctl[1];
	sb->report_min = lim->report_min;
	pthread_mutex_init(&sb->in_lock, NULL);
	pthread_mutex_init(&sb->ctl_lock, NULL);
	sb->stdin_w = in[1]; /* long-lived: migratable */
	ret = sandbox__begin(p, sb, name, tdir, in[0], NULL, -1, err);
	close(in[0]);
	close(sb->ctl_child);
	sb->ctl_child = -1;
	if (ret < 0) {
		close(in[1]);
		close(sb->ctl);
		pthread_mutex_destroy(&sb->ctl_lock);
		pthread_mutex_destroy(&sb->in_lock);
		free(sb);
		return ret;
	}
	sb->stdin_w = in[1];
	pthread_mutex_lock(&p->lock);
	sb->next = p->live_list;
	p->live_list = sb;
	pthread_mutex_unlock(&p->lock);
	if (pthread_create(&sb->thread, NULL, sandbox__thread, sb) != 0) {
		/* cannot watch it: end it here, and keep it listed as ended */
		kill(sb->w->pid, SIGKILL);
		sandbox__collect(sb);
		sandbox__finish(sb);
		sb->thread = 0;
	}
	*id = sb->id;
	return 0;
}

int pool__write_stdin(struct pool *p, uint64_t id, const void *buf, size_t len, bool eof)
{
	struct sandbox *sb;
	int fd, ret = 0;

	pthread_mutex_lock(&p->lock);
	sb = pool__find(p, id);
	pthread_mutex_unlock(&p->lock);
	if (!sb)
		return -ENOENT;
	pthread_mutex_lock(&sb->in_lock);
	fd = sb->stdin_w;
	if (sb->migrated) {
		pthread_mutex_unlock(&sb->in_lock);
		return -EXDEV;
	}
	for (size_t done = 0; fd >= 0 && done < len;) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		done += (size_t)n;
	}
	if (fd < 0)
		ret = -EPIPE;
	if (eof && fd >= 0) {
		close(fd);
		sb->stdin_w = -1;
	}
	pthread_mutex_unlock(&sb->in_lock);
	return ret;
}

/* Hand the request to the worker; signal it (SIGURG) until it answers:
 * it serves requests when a blocking call of its run loop is interrupted. */
int pool__resize(struct pool *p, uint64_t id, const struct sandbox_resize *rq,
		 struct sandbox_resize_result *res, struct sb_err *err)
{
	struct resize_req q = { 0 };
	struct resize_ans a;
	struct sandbox *sb;
	double deadline;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&p->lock);
	sb = pool__find(p, id);
	pthread_mutex_unlock(&p->lock);
	if (!sb)
		return err__set(err, -ENOENT, "no long-lived sandbox %llu", (unsigned long long)id);
	if (__atomic_load_n(&sb->migrating, __ATOMIC_ACQUIRE) && !sb->migrated)
		return err__set(err, -EBUSY, "sandbox %llu is migrating: resize it where it arrives",
				(unsigned long long)id);
	if (rq->mem)
		q.flags |= RESIZE_MEM, q.mem = rq->mem;
	if (rq->cpu > 0) {
		q.flags |= RESIZE_CPU;
		q.cpu_period_us = 100000;
		q.cpu_quota_us = (uint64_t)(rq->cpu * 100000 + 0.5);
		if (q.cpu_quota_us < 1000)
			q.cpu_quota_us = 1000; /* the kernel's minimum */
	}
	if (rq->report >= 0)
		q.flags |= RESIZE_REPORT, q.report_min = rq->report ? RESIZE_REPORT_DEFAULT : 0;
	if (!q.flags)
		q.flags = RESIZE_QUERY;
	pthread_mutex_lock(&sb->ctl_lock);
	q.id = ++sb->ctl_seq;
	deadline = now_us() + RESIZE_WAIT_MS * 1e3;
	if (send(sb->ctl, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q)) {
		ret = err__set(err, -ESRCH, "sandbox %llu has ended", (unsigned long long)id);
		goto out;
	}
	for (;;) {
		struct pollfd pf = { sb->ctl, POLLIN, 0 };
		pid_t pid = 0;
		ssize_t n;

		pthread_mutex_lock(&p->lock);
		if (!sb->done && sb->w)
			pid = sb->w->pid;
		pthread_mutex_unlock(&p->lock);
		if (!pid) {
			ret = err__set(err, -ESRCH, "sandbox %llu has ended", (unsigned long long)id);
			break;
		}
		kill(pid, SIGURG);
		if (poll(&pf, 1, 5) > 0) {
			n = recv(sb->ctl, &a, sizeof(a), 0);
			if (n <= 0) {
				ret = err__set(err, -ESRCH, "sandbox %llu has ended", (unsigned long long)id);
				break;
			}
			if (n == (ssize_t)sizeof(a) && a.id == q.id)
				break;
			continue; /* an answer to a request we gave up on */
		}
		if (now_us() > deadline) {
			ret = err__set(err, -ETIMEDOUT, "sandbox %llu did not answer within %d s%s",
				       (unsigned long long)id, RESIZE_WAIT_MS / 1000,
				       (q.flags & RESIZE_MEM) && q.mem < sb->mem
					       ? " (its guest gives memory back when it waits for stdin "
						 "or allocates memory; a busy one may not)" : "");
			break;
		}
	}
	if (ret == 0 && a.status < 0) {
		a.message[sizeof(a.message) - 1] = 0;
		ret = err__set(err, a.status, "%s", a.message);
	}
	if (ret == 0) {
		pthread_mutex_lock(&p->lock);
		sb->mem = a.mem;
		if (q.flags & RESIZE_CPU)
			sb->cpu = (double)q.cpu_quota_us / (double)q.cpu_period_us;
		sb->report_min = a.report_min;
		pthread_mutex_unlock(&p->lock);
	}
	res->mem = a.mem;
	res->in_use = a.in_use;
	res->reports = a.reports;
	res->reported_bytes = a.reported_bytes;
	res->report = a.report_min != 0;
out:
	res->cpu = sb->cpu;
	if (!res->mem)
		res->mem = sb->mem;
	pthread_mutex_unlock(&sb->ctl_lock);
	return ret;
}

int pool__read(struct pool *p, uint64_t id, size_t out_off, size_t err_off,
	       struct sandbox_output *o)
{
	struct sandbox *sb;
	int ret = 0;

	memset(o, 0, sizeof(*o));
	pthread_mutex_lock(&p->lock);
	sb = pool__find(p, id);
	if (!sb) {
		ret = -ENOENT;
		goto out;
	}
	o->done = sb->done;
	o->migrated = sb->migrated;
	snprintf(o->location, sizeof(o->location), "%s", sb->location);
	o->mem = sb->mem;
	o->cpu = sb->cpu;
	o->report = sb->report_min != 0;
	o->out_total = sb->res.out_len;
	o->err_total = sb->res.err_len;
	if (out_off < sb->res.out_len) {
		o->out_len = sb->res.out_len - out_off;
		o->out = malloc(o->out_len + 1);
		if (o->out)
			memcpy(o->out, sb->res.out + out_off, o->out_len), o->out[o->out_len] = 0;
	}
	if (err_off < sb->res.err_len) {
		o->err_len = sb->res.err_len - err_off;
		o->err = malloc(o->err_len + 1);
		if (o->err)
			memcpy(o->err, sb->res.err + err_off, o->err_len), o->err[o->err_len] = 0;
	}
	if (sb->done) {
		o->result = sb->res;
		o->result.out = o->result.err = NULL;
	}
	o->result.id = sb->id;
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void sandbox_output__free(struct sandbox_output *o)
{
	free(o->out);
	free(o->err);
	o->out = o->err = NULL;
}

static void sandbox__free(struct sandbox *sb)
{
	if (sb->thread)
		pthread_join(sb->thread, NULL);
	if (sb->stdin_w >= 0)
		close(sb->stdin_w);
	if (sb->ctl >= 0)
		close(sb->ctl);
	sandbox_result__free(&sb->res);
	pthread_mutex_destroy(&sb->in_lock);
	pthread_mutex_destroy(&sb->ctl_lock);
	free(sb);
}

int pool__release(struct pool *p, uint64_t id)
{
	struct sandbox **pp, *sb = NULL;

	pthread_mutex_lock(&p->lock);
	for (pp = &p->live_list; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			if ((*pp)->migrating && !(*pp)->migrated) {
				/* its migration holds it: pool__kill ends the worker,
				 * the migration fails, then it can go */
				pthread_mutex_unlock(&p->lock);
				return -EBUSY;
			}
			sb = *pp;
			*pp = sb->next;
			break;
		}
	}
	if (sb && !sb->done && sb->w) {
		sb->w->killed = true;
		kill(sb->w->pid, SIGKILL);
	}
	pthread_mutex_unlock(&p->lock);
	if (!sb)
		return -ENOENT;
	sandbox__free(sb);
	return 0;
}

void sandbox_result__free(struct sandbox_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int pool__kill(struct pool *p, uint64_t id)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = &p->w[i];
		if (w->state == W_BUSY && w->id == id) {
			w->killed = true;
			kill(w->pid, SIGKILL);
			ret = 0;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (ret == 0)
		pool__log(p, 1, "sandbox %llu: killed on request", (unsigned long long)id);
	return ret;
}

static uint64_t rss_of(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

int pool__list(struct pool *p, struct sandbox_info **out, size_t *n)
{
	struct sandbox_info *v = calloc(MAX_WORKERS, sizeof(*v));
	double now = now_us();

	*n = 0;
	*out = v;
	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < MAX_WORKERS; i++) {
		struct worker *w = &p->w[i];
		if (w->state != W_BUSY)
			continue;
		struct sandbox_info *s = &v[(*n)++];
		s->id = w->id;
		s->pid = w->pid;
		snprintf(s->template_name, sizeof(s->template_name), "%s", w->name);
		snprintf(s->state, sizeof(s->state), "running");
		s->age_ms = (now - w->t_start) / 1e3;
	}
	/* long-lived sandboxes that have ended stay until released */
	for (struct sandbox *sb = p->live_list; sb && *n < MAX_WORKERS; sb = sb->next) {
		if (!sb->done)
			continue;
		struct sandbox_info *s = &v[(*n)++];
		s->id = sb->id;
		snprintf(s->template_name, sizeof(s->template_name), "%s", sb->name);
		if (sb->migrated)
			snprintf(s->state, sizeof(s->state), "migrated");
		else
			snprintf(s->state, sizeof(s->state), "exited %d", sb->res.status);
		s->age_ms = (now - sb->t0) / 1e3;
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < *n; i++)
		v[i].rss_bytes = v[i].pid ? rss_of(v[i].pid) : 0;
	return 0;
}

void pool__stats(struct pool *p, struct pool_stats *s)
{
	pthread_mutex_lock(&p->lock);
	*s = p->st;
	s->live = p->live;
	s->idle_recycled = s->idle_precloned = 0;
	for (int i = 0; i < MAX_WORKERS; i++) {
		bool idle = p->w[i].state == W_RECYCLED || p->w[i].state == W_RECYCLING;

		s->idle_recycled += idle && !p->w[i].pre;
		s->idle_precloned += idle && p->w[i].pre;
	}
	pthread_mutex_unlock(&p->lock);
}

void pool__destroy(struct pool *p)
{
	for (;;) {
		pthread_mutex_lock(&p->lock);
		uint64_t id = p->live_list ? p->live_list->id : 0;
		pthread_mutex_unlock(&p->lock);
		if (!id)
			break;
		if (pool__release(p, id) == -EBUSY) {
			/* migrating: its worker ends, then the migration lets go */
			pool__kill(p, id);
			usleep(1000);
		}
	}
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	shutdown(p->zsock, SHUT_RDWR); /* the zygote ends every worker */
	for (unsigned i = 0; i < p->n_refill; i++)
		pthread_join(p->refill[i], NULL);
	close(p->zsock);
	waitpid(p->zpid, NULL, 0);
	for (int i = 0; i < MAX_WORKERS; i++)
		if (p->w[i].state >= W_READY)
			close(p->w[i].sock);
	for (int i = 0; p->tcache && i < TCACHE_SIZE; i++)
		if (p->tcache[i].snap.dirfd >= 0)
			snapshot__close(&p->tcache[i].snap);
	free(p->tcache);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->zlock);
	pthread_mutex_destroy(&p->tlock);
	pthread_cond_destroy(&p->changed);
	free(p);
}

/* ---- live migration, the service's side ------------------------------------- */

/* Paused: take what the collector has not read yet from the output pipes,
 * and hand the worker a memfd of struct mig_io + stdout + stderr. */
static int migrate__io(struct pool *p, struct sandbox *sb, int ctl)
{
	struct msg_mig mm = { .type = MSG_MIG_IO };
	struct mig_io io = { 0 };
	char buf[65536];
	int fd, ret = 0;

	pthread_mutex_lock(&sb->rd_lock);
	for (int i = 0; i < 2; i++) {
		int rfd = i == 0 ? sb->out_r : sb->err_r;
		for (;;) {
			ssize_t n = rfd >= 0 ? read(rfd, buf, sizeof(buf)) : 0;
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			pthread_mutex_lock(&p->lock);
			if (i == 0)
				append(&sb->res.out, &sb->res.out_len, buf, (size_t)n);
			else
				append(&sb->res.err, &sb->res.err_len, buf, (size_t)n);
			pthread_mutex_unlock(&p->lock);
		}
	}
	fd = memfd_create("snapbox-migrate-io", MFD_CLOEXEC);
	pthread_mutex_lock(&p->lock);
	io.out_len = sb->res.out_len;
	io.err_len = sb->res.err_len;
	io.flags = sb->stdin_w < 0 ? MIG_IO_STDIN_EOF : 0;
	io.max_output = sb->lim.max_output ? sb->lim.max_output : DEFAULT_MAX_OUTPUT;
	if (sb->lim.timeout_ns) {
		/* what it has left (at least 1 ns: a timeout it had is kept) */
		double left = sb->lim.timeout_ns / 1e3 - (now_us() - sb->t0);
		io.timeout_left_ns = left > 0.001 ? (uint64_t)(left * 1e3) : 1;
	}
	if (fd < 0 || write(fd, &io, sizeof(io)) != (ssize_t)sizeof(io) ||
	    (io.out_len && write(fd, sb->res.out, io.out_len) != (ssize_t)io.out_len) ||
	    (io.err_len && write(fd, sb->res.err, io.err_len) != (ssize_t)io.err_len))
		ret = -EIO;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&sb->rd_lock);
	if (ret == 0)
		ret = fdmsg__send(ctl, &mm, sizeof(mm), &fd, 1);
	if (fd >= 0)
		close(fd);
	return ret;
}

int pool__migrate_out(struct pool *p, uint64_t id, int conn, const char *to, uint32_t downtime_ms,
		      struct mig_stats *st, struct sb_err *err)
{
	struct msg_migrate mm = { .type = MSG_MIGRATE, .downtime_ms = downtime_ms };
	struct msg_mig rep = { 0 };
	struct sandbox *sb;
	bool in_locked = false;
	int ctl[2], ret;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&p->lock);
	sb = pool__find(p, id);
	if (!sb || sb->done || !sb->w) {
		pthread_mutex_unlock(&p->lock);
		return err__set(err, -ENOENT, "no running long-lived sandbox %llu", (unsigned long long)id);
	}
	if (sb->migrating) {
		pthread_mutex_unlock(&p->lock);
		return err__set(err, -EBUSY, "sandbox %llu is migrating already", (unsigned long long)id);
	}
	if (sb->mem > kind_mem(sb->kind)) {
		/* its hot window (backend/resize.h) is not in the stream */
		uint64_t added = sb->mem - kind_mem(sb->kind);

		pthread_mutex_unlock(&p->lock);
		return err__set(err, -EBUSY, "it has %llu MiB added to its template's RAM: the hot "
				"window does not migrate (shrink it back first: snapbox resize "
				"--mem %lluM)", (unsigned long long)(added >> 20),
				(unsigned long long)(kind_mem(sb->kind) >> 20));
	}
	sb->migrating = true;
	mm.hello.backend = (uint32_t)(sb->kind & KIND_BACKEND_MASK);
	mm.hello.mem_size = kind_mem(sb->kind);
	mm.hello.sandbox_id = id;
	memcpy(mm.hello.template_id, sb->tid, sizeof(mm.hello.template_id));
	snprintf(mm.hello.template_name, sizeof(mm.hello.template_name), "%s", sb->name);
	ret = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ? -errno : 0;
	if (ret == 0) {
		int fds[2] = { conn, ctl[1] };
		ret = fdmsg__send(sb->w->sock, &mm, sizeof(mm), fds, 2);
		close(ctl[1]);
		if (ret < 0)
			close(ctl[0]);
	}
	pthread_mutex_unlock(&p->lock);
	if (ret < 0) {
		sb->migrating = false;
		return err__set(err, ret, "handing the migration to the sandbox's worker: %s",
				strerror(-ret));
	}
	pool__log(p, 1, "sandbox %llu: migrating to %s", (unsigned long long)id, to);
	for (;;) {
		struct pollfd pf = { ctl[0], POLLIN, 0 };
		int n = poll(&pf, 1, MIG_ACK_TIMEOUT_MS * 2);

		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1 || msg_recv(ctl[0], &rep, sizeof(rep), NULL, 0) < 0) {
			rep.status = -EIO;
			snprintf(rep.message, sizeof(rep.message), "the sandbox's worker stopped answering "
				 "(it ended?)");
			break;
		}
		if (rep.type == MSG_MIG_PAUSED) {
			/* no stdin writes from here until the verdict */
			pthread_mutex_lock(&sb->in_lock);
			in_locked = true;
			if (migrate__io(p, sb, ctl[0]) < 0) {
				rep.status = -EIO;
				snprintf(rep.message, sizeof(rep.message), "handing over its output failed");
				break;
			}
			continue;
		}
		if (rep.type == MSG_MIG_DONE)
			break;
	}
	close(ctl[0]);
	rep.message[sizeof(rep.message) - 1] = 0;
	pthread_mutex_lock(&p->lock);
	if (rep.status == 0) {
		sb->migrated = true;
		snprintf(sb->location, sizeof(sb->location), "%s", to);
		if (sb->w)
			sb->w->id = 0; /* its worker is ending: the id is the destination's now */
	} else {
		sb->migrating = false;
	}
	pthread_mutex_unlock(&p->lock);
	if (in_locked)
		pthread_mutex_unlock(&sb->in_lock);
	*st = rep.st;
	if (rep.status < 0) {
		pool__log(p, 0, "sandbox %llu: migration to %s failed, it runs on here: %s",
			  (unsigned long long)id, to, rep.message);
		return err__set(err, rep.status, "%s", rep.message);
	}
	pool__log(p, 1, "sandbox %llu: migrated to %s (%u rounds, %llu pages, downtime %.2f ms)",
		  (unsigned long long)id, to, rep.st.rounds, (unsigned long long)rep.st.pages_sent,
		  rep.st.downtime_ms);
	return 0;
}

/* Is id used here (a sandbox listed, or a worker's)?  Locked. */
static bool pool__id_used(struct pool *p, uint64_t id)
{
	if (pool__find(p, id))
		return true;
	for (int i = 0; i < MAX_WORKERS; i++)
		if (p->w[i].state == W_BUSY && p->w[i].id == id)
			return true;
	return false;
}

static int migrate__refuse(int conn, int ret, struct sb_err *err)
{
	char junk[65536];

	(void)mig__write_rec(conn, MIG_REC_ERROR, 0, err->msg, strlen(err->msg));
	/* a source still sending (a template) reads it before it stops: what
	 * it sends meanwhile is read and dropped, for a while, so that
	 * closing with unread data (a reset) does not lose the ERROR */
	shutdown(conn, SHUT_WR);
	for (double t0 = now_us(); now_us() - t0 < 2e6;) {
		struct pollfd pf = { conn, POLLIN, 0 };
		if (poll(&pf, 1, 200) == 1 && read(conn, junk, sizeof(junk)) <= 0)
			break;
	}
	close(conn);
	return ret;
}

int pool__migrate_in(struct pool *p, int conn, pool_tdir_fn tdir_of, void *arg, uint64_t *id,
		     struct sb_err *err)
{
	struct mig_hello h;
	struct mig_reader r;
	struct sandbox *sb;
	char name[80], dir[4096];
	int in[2] = { -1, -1 }, ctl[2], ret, fd = -1;

	mig_reader__fd(&r, conn, MIG_READ_TIMEOUT_MS);
	ret = mig__read_hello(&r, &h, err);
	if (ret < 0)
		return migrate__refuse(conn, ret, err);
	ret = tdir_of(arg, &h, &r, conn, name, sizeof(name), dir, sizeof(dir), err);
	if (ret < 0)
		return migrate__refuse(conn, ret, err);
	pthread_mutex_lock(&p->lock);
	sb = pool__find(p, h.sandbox_id);
	if (sb && sb->migrated) {
		/* it left from here once and comes back: its old entry goes */
		struct sandbox **pp;
		for (pp = &p->live_list; *pp != sb; pp = &(*pp)->next)
			;
		*pp = sb->next;
	} else {
		sb = NULL;
	}
	if (pool__id_used(p, h.sandbox_id))
		ret = err__set(err, -EEXIST, "sandbox id %llu is in use on the destination",
			       (unsigned long long)h.sandbox_id);
	pthread_mutex_unlock(&p->lock);
	if (sb)
		sandbox__free(sb);
	if (ret == 0 && (ret = mig__write_rec(conn, MIG_REC_HAVE, 0, NULL, 0)) < 0)
		err__set(err, ret, "answering the source: %s", strerror(-ret));
	if (ret < 0)
		return migrate__refuse(conn, ret, err);
	sb = calloc(1, sizeof(*sb));
	if (!sb || pipe2(in, O_CLOEXEC) < 0) {
		free(sb);
		ret = err__set(err, -ENOMEM, "out of memory");
		return migrate__refuse(conn, ret, err);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		close(in[0]);
		close(in[1]);
		free(sb);
		ret = err__errno(err, "socket for resizing the sandbox");
		return migrate__refuse(conn, ret, err);
	}
	fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
	sb->lim.max_output = DEFAULT_MAX_OUTPUT;
	sb->t0 = now_us();
	sb->stdin_w = in[1];
	/* resizable here as it was there (its threshold comes with IN_READY) */
	sb->ctl = ctl[0];
	sb->ctl_child = ctl[1];
	pthread_mutex_init(&sb->in_lock, NULL);
	pthread_mutex_init(&sb->ctl_lock, NULL);
	/* the worker reads the rest of the stream and answers the source */
	ret = sandbox__begin(p, sb, name, dir, in[0], &h, conn, err);
	close(in[0]);
	close(conn);
	close(sb->ctl_child);
	sb->ctl_child = -1;
	if (ret < 0) {
		close(in[1]);
		close(sb->ctl);
		pthread_mutex_destroy(&sb->ctl_lock);
		pthread_mutex_destroy(&sb->in_lock);
		free(sb);
		return ret;
	}
	{
		struct msg_mig mm;
		struct pollfd pf = { sb->w->sock, POLLIN, 0 };
		int n = poll(&pf, 1, MIG_READ_TIMEOUT_MS * 3);

		if (n == 1) /* else its MSG_RESULT: the arrival failed (the source heard why) */
			n = msg_recv(sb->w->sock, &mm, sizeof(mm), &fd, 1);
		if (n == 1 && mm.type == MSG_MIG_IN_READY && mm.status >= 0)
			sb->report_min = (uint32_t)mm.status;
		if (n != 1 || mm.type != MSG_MIG_IN_READY) {
			if (fd >= 0)
				close(fd);
			fd = -1;
			ret = err__set(err, -EIO, "the sandbox did not arrive (the source gave up, "
				       "or the stream was refused)");
		}
	}
	if (ret == 0) {
		/* its output so far and its unread stdin, then GO */
		struct stat st;
		uint8_t *buf = NULL;
		struct mig_io io;
		const char *o, *e, *i;

		if (fstat(fd, &st) < 0 || st.st_size > MIG_MAX_IO || !(buf = malloc((size_t)st.st_size + 1)) ||
		    pread(fd, buf, (size_t)st.st_size, 0) != st.st_size ||
		    mig__parse_io(buf, (size_t)st.st_size, &io, &o, &e, &i, err) < 0) {
			ret = err__set(err, -EIO, "the arriving sandbox's output is not usable");
		} else {
			/* its limits, as the source had them (the worker keeps the
			 * deadline; ours, for the collector, is from now) */
			sb->lim.max_output = io.max_output;
			sb->lim.timeout_ns = io.timeout_left_ns;
			sb->t0 = now_us();
			append(&sb->res.out, &sb->res.out_len, o, io.out_len);
			append(&sb->res.err, &sb->res.err_len, e, io.err_len);
			if (io.in_len && write(sb->stdin_w, i, io.in_len) != (ssize_t)io.in_len)
				ret = err__set(err, -EIO, "its unread stdin does not fit the pipe");
			if (io.flags & MIG_IO_STDIN_EOF) {
				close(sb->stdin_w);
				sb->stdin_w = -1;
			}
		}
		free(buf);
		close(fd);
	}
	if (ret == 0) {
		/* listed before GO: the source hears RESUMED only after it, and
		 * its client may ask us at once */
		struct msg_mig go = { .type = MSG_MIG_GO };

		pthread_mutex_lock(&p->lock);
		sb->next = p->live_list;
		p->live_list = sb;
		pthread_mutex_unlock(&p->lock);
		if (fdmsg__send(sb->w->sock, &go, sizeof(go), NULL, 0) < 0) {
			/* its worker is gone: it is listed, and ends as any does */
			kill(sb->w->pid, SIGKILL);
		}
		if (pthread_create(&sb->thread, NULL, sandbox__thread, sb) != 0) {
			kill(sb->w->pid, SIGKILL);
			sandbox__collect(sb);
			sandbox__finish(sb);
			sb->thread = 0;
		}
		*id = sb->id;
		pool__log(p, 1, "sandbox %llu: arrived (template %s)", (unsigned long long)sb->id, name);
		return 0;
	}
	/* it is not ours: end its worker, settle the slot */
	kill(sb->w->pid, SIGKILL);
	sandbox__collect(sb);
	sandbox__finish(sb);
	if (sb->stdin_w >= 0)
		close(sb->stdin_w);
	close(sb->ctl);
	sandbox_result__free(&sb->res);
	pthread_mutex_destroy(&sb->ctl_lock);
	pthread_mutex_destroy(&sb->in_lock);
	free(sb);
	return ret;
}
