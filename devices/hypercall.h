/* SPDX-License-Identifier: MIT */
/*
 * Host side of the snapbox hypercalls (guest/include/snapbox_abi.h): the
 * guest writes the GPA of an argument struct to port SB_HC_PORT(call).
 * Every GPA, and every pointer inside the struct, is checked against guest
 * RAM before use; a bad one ends the VM with a message, never a host crash.
 * Backend-independent: guest memory is reached through struct guest_mem
 * (zero-copy where the monitor maps it), and what only the backend can do
 * (set the FS/GS base) is a callback.
 */
#ifndef SB_HYPERCALL_H
#define SB_HYPERCALL_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/timeout.h"
#include "memory/guest_mem.h"
#include "snapbox_abi.h"

/* hypercall__handle() results besides -errno */
#define HC_CONTINUE 0 /* resume the guest */
#define HC_STOP     1 /* the run is over: hc->status, message (if any) in err */
#define HC_READY    2 /* ready point: first read of stdin, not performed (hc->st) */
#define HC_PAUSED   3 /* *pause was set while the guest waited for stdin: the read
			     is left pending (hc->st), as at the ready point; or in a
			     SLEEP: deferred_nr/gpa say so, the machine does it again
			     (for the time left) when it goes on */

/*
 * What of the hypercall device a template keeps (section HYPERCALL): the
 * stdin read the program was making at its ready point, which the host
 * performs for each clone with that clone's request; and the system-call
 * path the guest reported (version 2; in version 1 that field was reserved,
 * always 0, which reads as "not reported").  Version 3 (guest ABI 4): the
 * pending call may be SB_HC_STDIN (HC_STATE_PENDING_STDIN), whose struct
 * sb_hc_stdin is at pending_read_gpa; without that flag it is SB_HC_READ,
 * as in every older template.
 */
#define HC_STATE_VERSION 3
#define HC_STATE_VERSION_MIN 1 /* still loaded */
#define HC_STATE_PENDING_READ  (1u << 0) /* a stdin call is pending (the ready point) */
#define HC_STATE_PENDING_STDIN (1u << 1) /* ... and it is SB_HC_STDIN, not READ (v3) */
struct hc_state {
	uint64_t pending_read_gpa; /* the pending call's struct: sb_hc_io (READ)
				      or sb_hc_stdin (STDIN) */
	uint32_t flags;            /* HC_STATE_* */
	uint32_t syscall_path;     /* enum sb_syscall_path, 0: not reported */
};
_Static_assert(sizeof(struct hc_state) == 16, "hc_state size");

struct hc_ctx {
	/* set up by the caller */
	struct guest_mem *mem;
	/* SET_FS: which 0 = FS, 1 = GS; base < 2^47.  0 or -errno. */
	int (*set_base)(void *arg, unsigned which, uint64_t base);
	void *set_base_arg;
	struct timeout *timeout;  /* deadline for blocking calls; may be NULL */
	/* a resizable machine (ABI 5, backend/resize.c); NULL: none.
	 * mem_call serves SB_HC_MEM (c->ret for the guest; -errno: the VM
	 * ends); ctl_poll serves the service's requests when a blocking read
	 * is interrupted, > 0: the guest must see the mailbox now (a STDIN
	 * returns SB_STDIN_MEMCTL). */
	int (*mem_call)(void *arg, struct sb_hc_mem_ctl *c, struct sb_mem_range *r,
			struct sb_err *err);
	int (*ctl_poll)(void *arg);
	void *ctl_arg;
	bool wake_ok, woken;
	int stdin_fd;             /* guest fd 0 (default 0; -1: always EOF) */
	int stdout_fd;            /* guest fd 1 */
	int stderr_fd;            /* guest fd 2 */
	int trace_fd;             /* --trace-syscalls output (stderr) */
	const char *program;      /* argv[0], for fault messages */
	bool ready_mode;          /* template create: stop at the first stdin read */
	const int *pause;         /* NULL, or machine.pause: a stdin read interrupted
				     (EINTR) while it is set is left pending (HC_PAUSED) */
	uint32_t deferred_nr;     /* HC_PAUSED in another call (SLEEP): that call */
	uint64_t deferred_gpa;
	struct hc_state st;       /* persisted across snapshot/clone */
	/* randomness drawn ahead for the pending STDIN's pool (draw_ahead) */
	uint32_t ahead_len;
	uint8_t ahead[SB_HC_POOL_MAX];

	/* results */
	int status;               /* exit status for snapbox once HC_STOP */
	bool exited;              /* HC_STOP came from the program's own exit */
	bool user_started;
	struct timespec user_start; /* CLOCK_MONOTONIC at SB_HC_USER_START */
	uint64_t user_entry, user_sp;
	uint64_t calls[SB_HC_COUNT];
};

void hypercall__init(struct hc_ctx *hc, struct guest_mem *mem, struct timeout *timeout,
		     const char *program);

/* Is port a hypercall port?  Stores the call number in *nr. */
bool hypercall__port(uint16_t port, unsigned *nr);
/* Is gpa one of the hypercall MMIO slots (after RAM of ram_size bytes)? */
bool hypercall__mmio(uint64_t ram_size, uint64_t gpa, unsigned *nr);

/* Name of a call ("WRITE"), "?" if unknown. */
const char *hypercall__name(unsigned nr);

/*
 * Perform call nr with its argument struct at gpa.  Returns HC_CONTINUE,
 * HC_STOP, -ETIMEDOUT when the run deadline passed while blocked, or another
 * -errno with a message in err (bad guest pointer, ...: the VM must end).
 */
int hypercall__handle(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err);

/* A clone: perform the stdin read pending since the ready point (if any),
 * from hc->stdin_fd, before the guest resumes (STDIN: with the EOF hint and
 * a fresh randomness pool).  HC_CONTINUE or -errno. */
int hypercall__complete_pending(struct hc_ctx *hc, struct sb_err *err);

/* A clone, before its request: draw the randomness the completion of its
 * pending STDIN call will put in the guest's pool now, off the request's
 * path (getrandom of 2 KiB costs ~7 us here).  Given once, then wiped. */
void hypercall__draw_ahead(struct hc_ctx *hc);

/*
 * The proc backend's one-way output (struct sb_proc_out, ABI 4): len bytes
 * of the guest's stdout (fd 1) or stderr (fd 2), already out of guest
 * memory, in the monitor's buffer.  Another fd, or len > SB_PROC_OUT_MAX,
 * is -EPROTO with a message (the sandbox must end); a failed write (EPIPE,
 * ...) is not reported: nobody waits for an answer.  HC_CONTINUE,
 * -ETIMEDOUT, or -errno.
 */
int hypercall__output(struct hc_ctx *hc, uint32_t fd, const void *buf, uint64_t len,
		      struct sb_err *err);

/* The calls made so far, for --stats: "STDIN=1 OUTPUT=1 EXIT=1; the guest
 * waited on 1 of 3": a clone's count includes the completion of its
 * pending stdin call; the guest waits on every call but one-way output and
 * the final EXIT/FAULT/PANIC (synchronous round trips). */
void hypercall__describe_calls(const struct hc_ctx *hc, char *buf, size_t len);

/* Check a saved struct hc_state (of section version `version`) against
 * guest RAM of ram_size bytes before use. */
int hypercall__validate_state(const struct hc_state *st, uint32_t version, uint64_t ram_size,
			      struct sb_err *err);

/* A system-call path (enum sb_syscall_path, 0 = not reported): a short
 * token ("user", "ud-kernel", "ud-user", "none") and a description. */
const char *hypercall__syscall_path_token(uint32_t path);
const char *hypercall__syscall_path_text(uint32_t path);
#endif
