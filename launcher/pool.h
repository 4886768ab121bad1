/* SPDX-License-Identifier: MIT */
/*
 * Sandboxes for the launcher service (`snapbox serve`).
 *
 * Isolation does not depend on the service's goodwill: every sandbox's vCPU
 * runs in a process of its own (a worker), which exits when the sandbox
 * ends, so its memory and file descriptors go with it.  Workers are forked
 * by a single-threaded "zygote" process that the service starts before it
 * makes any thread; each worker creates its VM shell (KVM VM, vCPU, memory
 * slot over reserved RAM) as soon as it is born, and waits.  The pool keeps
 * a few such ready workers per kind (RAM size and backend: a kvm worker has
 * a VM shell, a proc worker a jailed sandbox process waiting for its RAM),
 * for the 16 kinds used last, and refills in the background, so a
 * request only maps the template and restores state (see vm__clone_into).
 *
 * All functions are thread-safe unless noted.
 */
#ifndef SB_POOL_H
#define SB_POOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct pool;

struct pool_opts {
	unsigned ready_per_size;   /* ready workers kept per kind (default 2) */
	unsigned max_live;         /* sandboxes at once (default 64); more wait */
	int log_fd;                /* lifecycle log lines, -1: none */
	int log_level;             /* 0 error, 1 info, 2 debug */
	int precloned;             /* pre-cloned sandboxes kept per template in
	                              use (its write set pre-faulted); 0: the
	                              default (1), < 0: none */
};

/*
 * Recycling (a template's policy, or the service's default for templates
 * that have none): after a sandbox's program exits by itself, its worker
 * may put it back to the template (machine__reset) and keep it for the
 * next request of the same template, up to max_reuses times, exiting after
 * idle_ms without one.  A sandbox that crashed, timed out, was killed or
 * went over its output limit is never recycled.
 */
struct recycle_policy {
	bool on;
	uint32_t max_reuses;       /* requests after the first; 0: no limit */
	uint32_t idle_ms;          /* 0: the default, 60 s */
};

struct sandbox_limits {
	uint64_t timeout_ns;       /* wall clock; 0: none */
	uint64_t max_output;       /* bytes of stdout + stderr; over it the
	                              sandbox is stopped (0: 16 MiB) */
	struct recycle_policy recycle; /* pool__run only; off for pool__start */
	uint32_t report_min;       /* pool__start: free-page reporting threshold
	                              (pages; 0: off) */
};

struct sandbox_result {
	int status;                /* as `snapbox run`: program's, 124 timeout,
	                              125 snapbox error, 128+N killed by signal N */
	bool timed_out;
	bool killed;               /* by pool__kill() */
	bool output_limited;       /* stopped for exceeding max_output */
	char message[512];         /* snapbox's own one-line message, or "" */
	char *out;                 /* stdout (malloc'd, NUL-terminated) */
	size_t out_len;
	char *err;                 /* stderr */
	size_t err_len;
	uint64_t id;               /* sandbox id */
	bool recycled;             /* it ran in a recycled sandbox (reset to the
	                              template after an earlier request) */
	uint32_t reuse;            /* that sandbox's requests before this one */
	bool precloned;            /* it ran in a pre-cloned sandbox (cloned and
	                              its write set pre-faulted before the request) */
	pid_t pid;                 /* its worker process */
	double wait_us;            /* for a free worker */
	double clone_us;           /* template mapped + state restored */
	double run_us;             /* resume to exit */
	double total_us;
};

/* Sandbox as `ps` shows it. */
struct sandbox_info {
	uint64_t id;
	pid_t pid;
	char template_name[72];
	char state[16];            /* "running", or "exited N" (long-lived, not
	                              yet released; pid 0) */
	double age_ms;
	uint64_t rss_bytes;        /* of its worker process */
};

struct pool_stats {
	uint64_t started, finished, failed, killed, timed_out;
	unsigned live;             /* sandboxes running now */
	unsigned ready;            /* idle ready workers */
	uint64_t latency_buckets[12]; /* request -> response, us: <=250, 500, 1000,
	                                 2000, 4000, 8000, 16000, 32000, 64000,
	                                 128000, 256000, +Inf (cumulative counts) */
	double latency_sum_us;
	/* recycling */
	uint64_t recycled_runs;    /* runs in a recycled sandbox */
	uint64_t resets, failed_resets, reset_pages;
	double reset_us_sum;
	unsigned idle_recycled;    /* recycled workers waiting (or resetting) */
	/* pre-cloned sandboxes (a template's clone, write set pre-faulted,
	 * made before a request of a template in use) */
	uint64_t preclones, failed_preclones, prefault_pages;
	uint64_t precloned_runs;   /* runs in one */
	unsigned idle_precloned;   /* waiting (or being made) */
};

/*
 * Start the zygote.  Must be called before the process creates any thread
 * (it forks).  Returns 0 or -errno with a message.
 */
int pool__create(struct pool **p, const struct pool_opts *o, struct sb_err *err);

/*
 * Clone a sandbox from the template in directory tdir (named name, for
 * logs and ps), give it `in` as stdin (then EOF), run it to its end within
 * the limits, and collect its output.  Blocks the calling thread.  Returns
 * 0 (the sandbox ran: see res->status) or -errno with a message, nothing
 * having run: the template could not be loaded (-ENOENT, -EBADMSG, ...),
 * no worker became free within 30 s (-EAGAIN), the service is stopping.
 */
int pool__run(struct pool *p, const char *name, const char *tdir, const void *in, size_t in_len,
	      const struct sandbox_limits *lim, struct sandbox_result *res, struct sb_err *err);
void sandbox_result__free(struct sandbox_result *r);

/*
 * Long-lived sandboxes: start a clone whose stdin stays open; write to it
 * (eof closes it), read its output so far (from offsets, so a client can
 * poll), and release it (killing it if it still runs).  A finished one
 * stays readable until released.
 */
struct sandbox_output {
	bool done;                 /* it has ended: result is set */
	struct sandbox_result result; /* out/err fields unused */
	char *out, *err;           /* bytes from the offsets on (malloc'd) */
	size_t out_len, err_len;
	size_t out_total, err_total;
	bool migrated;             /* it moved to another service: */
	char location[128];        /* ... its migration address */
	uint64_t mem;              /* bytes of RAM (after its last resize) */
	double cpu;                /* CPU share, 0: no limit known */
	bool report;               /* free-page reporting on */
};
int pool__start(struct pool *p, const char *name, const char *tdir,
		const struct sandbox_limits *lim, uint64_t *id, struct sb_err *err);
int pool__write_stdin(struct pool *p, uint64_t id, const void *buf, size_t len, bool eof);
int pool__read(struct pool *p, uint64_t id, size_t out_off, size_t err_off,
	       struct sandbox_output *o);
void sandbox_output__free(struct sandbox_output *o);
int pool__release(struct pool *p, uint64_t id);

/*
 * Live migration (migrate/migrate.h).  Out: send long-lived sandbox id over
 * conn (connected to the destination service's migration listener, whose
 * address is `to`), pre-copying until the rest fits downtime_ms; 0 once the
 * destination has it (then it is listed here as "migrated" to `to`), or
 * -errno with a message, the sandbox running here untouched.  In: a
 * connection on this service's listener; tdir_of finds the stream's
 * template in the store by its id.  0 once the sandbox runs here.
 */
struct mig_stats;
int pool__migrate_out(struct pool *p, uint64_t id, int conn, const char *to, uint32_t downtime_ms,
		      struct mig_stats *st, struct sb_err *err);
struct mig_hello;
struct mig_reader;
/* The hello's template in the store (fetched from the source over conn,
 * reader r, if it lacks it): its name and directory. */
typedef int (*pool_tdir_fn)(void *arg, const struct mig_hello *h, struct mig_reader *r, int conn,
			    char *name, size_t name_len, char *dir, size_t dir_len, struct sb_err *err);
int pool__migrate_in(struct pool *p, int conn, pool_tdir_fn tdir_of, void *arg, uint64_t *id,
		     struct sb_err *err);

/*
 * Resize a running long-lived sandbox (guest ABI 5; backend/resize.h): its
 * total RAM (0: leave), its CPU share (cpu > 0, in CPUs; 0: leave), free-page
 * reporting (report 1 on, 0 off, -1 leave); nothing asked: the state now.
 * Blocks until the worker answers (a shrink: until the guest gave the memory
 * back), at most a few seconds.  0, or -errno with a message: -ENOENT no
 * such sandbox, -ESRCH it has ended, -ERANGE below the template's RAM,
 * -E2BIG above the most it can have, -EBUSY the guest uses that memory,
 * -ENOTSUP cannot be resized (old template, no cgroup), -ETIMEDOUT.
 */
struct sandbox_resize {
	uint64_t mem;
	double cpu;
	int report;
};
struct sandbox_resize_result {
	uint64_t mem;              /* bytes of RAM now */
	uint64_t in_use;           /* the guest's last word on what it uses (0: none) */
	double cpu;                /* CPU share now (0: no limit known) */
	bool report;               /* free-page reporting on */
	uint64_t reports, reported_bytes;
};
int pool__resize(struct pool *p, uint64_t id, const struct sandbox_resize *rq,
		 struct sandbox_resize_result *res, struct sb_err *err);

/* Kill sandbox id: 0, or -ENOENT if no such live sandbox. */
int pool__kill(struct pool *p, uint64_t id);

/* Live sandboxes: *out malloc'd array of *n (free()). */
int pool__list(struct pool *p, struct sandbox_info **out, size_t *n);

void pool__stats(struct pool *p, struct pool_stats *s);

/* Stop every sandbox and the zygote; frees p. */
void pool__destroy(struct pool *p);
#endif
