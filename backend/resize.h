/* SPDX-License-Identifier: MIT */
/*
 * Resizing a running machine (guest ABI 5): memory hotplug, free-page
 * reporting and its CPU share, for the service's long-lived sandboxes.
 *
 * The service talks to the worker that runs the sandbox over a control
 * socket (SOCK_SEQPACKET): a struct resize_req, answered by a struct
 * resize_ans with the same id.  The worker is busy running the guest, so
 * the service also signals it (SIGURG, a no-op handler without
 * SA_RESTART) until the answer comes: KVM_RUN, the proc channel's recv and
 * a blocked stdin read return EINTR, and the run loop calls
 * machine__ctl_poll().
 *
 *  grow   the backend makes more of the hot window usable (hot_set), the
 *         mailbox says so, the answer goes at once; the guest kernel adds
 *         the memory to its allocator at its next memory or stdin call;
 *  shrink the mailbox asks for less; a guest waiting for stdin is woken
 *         (SB_STDIN_MEMCTL); when the guest's ack says it vacated the top
 *         of the window the backend discards it and the answer goes; if
 *         the guest uses it, the answer says how much is in use (-EBUSY);
 *         a guest that never answers leaves the service to time out
 *         (the request is dropped at the next one);
 *  report free-page reports (SB_HC_MEM REPORT) are checked range by
 *         range and discarded by the backend;
 *  cpu    the backend's cgroup (proc: the jail's) gets the new quota.
 */
#ifndef SB_RESIZE_H
#define SB_RESIZE_H
#include <stdint.h>

#include "backend/backend.h"

#define RESIZE_MEM    (1u << 0)
#define RESIZE_CPU    (1u << 1)
#define RESIZE_REPORT (1u << 2)
#define RESIZE_QUERY  (1u << 3) /* nothing to change: the state now */

#define RESIZE_REPORT_DEFAULT 64 /* pages (256 KiB): frees at least this big are reported */
#define RESIZE_REPORT_KEEP UINT32_MAX /* machine__resize_enable: as the mailbox says
					(a migrated-in machine's), else the default */

struct resize_req {
	uint32_t flags;           /* RESIZE_* */
	uint32_t report_min;      /* RESIZE_REPORT: pages, 0: off */
	uint64_t id;              /* echoed in the answer */
	uint64_t mem;             /* RESIZE_MEM: total bytes (RAM + hot window) */
	uint64_t cpu_quota_us;    /* RESIZE_CPU */
	uint64_t cpu_period_us;
};
_Static_assert(sizeof(struct resize_req) == 40, "resize_req size");

struct resize_ans {
	uint64_t id;
	int32_t status;           /* 0, or -errno with message */
	uint32_t report_min;
	uint64_t mem;             /* total bytes now */
	uint64_t in_use;          /* RAM + the hot window up to its highest use
				     (as the guest said at its last ack; 0: unknown) */
	uint64_t reports, reported_bytes;
	char message[256];
};
_Static_assert(sizeof(struct resize_ans) == 304, "resize_ans size");

/* Make a clone (before it runs) resizable: the guest must speak ABI 5 and
 * the backend support hotplug.  Writes the mailbox (a migrated-in clone's,
 * already in its RAM: with the next seq); requests come on ctl_fd (ours
 * from now on).  0, or -errno with a message. */
int machine__resize_enable(struct machine *m, int ctl_fd, uint32_t report_min,
			   struct sb_err *err);

/* Serve the requests waiting on the control socket (non-blocking).
 * > 0: the guest must look at its mailbox now; 0: nothing for it. */
int machine__ctl_poll(struct machine *m);
#endif
