/* SPDX-License-Identifier: MIT */
/*
 * A backend runs machines: our guest kernel and one program, with guest RAM
 * at GPA [0, mem_size).  "kvm" (backend/kvm/) runs them in a KVM VM; "proc"
 * (to come) in a seccomp-confined process.  Modelled on gVisor's platform
 * packages: the launcher, the pool and the snapshot code see only this.
 *
 * Life of a machine (calls return 0 or -errno with a message in err):
 *   m = machine__new(be, mem_size, RAM_ANON or RAM_RESERVED, err)
 *   fresh boot: machine__map_layers(m, layers) (the root file system),
 *               boot__setup(&m->ram, ...) with m->boot_flags in the boot
 *               parameters' flags, then be->boot(m, entry, SB_BOOTINFO_GPA)
 *   clone:      be->check(snap), then be->clone_into(m, snap) into a shell
 *               (RAM_RESERVED: it maps the template's layers too) and
 *               hypercall__complete_pending(&m->hc)
 *   be->run(m): the program's exit status (>= 0; 124 on timeout), its ready
 *               point (MACHINE_READY: template create then calls
 *               snapshot__save(m), which asks be->save for the backend's
 *               sections), or -errno;
 *   recycle:    after run() returned the program's own exit (machine__
 *               recyclable), machine__reset(m, snap) puts it back where
 *               clone_into(snap) left it; then complete_pending + run again
 *   machine__free(m), or be->destroy_detached(m) in a process about to exit.
 */
#ifndef SB_BACKEND_H
#define SB_BACKEND_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/timeout.h"
#include "devices/hypercall.h"
#include "devices/serial.h"
#include "memory/guest_mem.h"
#include "memory/ram.h"
#include "snapbox_abi.h"

/* run() result: the guest reached its ready point (its first stdin read). */
#define MACHINE_READY 1000
/* run() result: another thread asked it to pause (machine.pause, then a
 * signal to the running thread): the guest is stopped between two of its
 * steps (a stdin read it was blocked in is left pending, hc.st, as at a
 * ready point); hypercall__complete_pending + run() go on (migrate/). */
#define MACHINE_PAUSED 1001

struct snapshot;
struct snap_writer;
struct jail_config;
struct layer_set;

/* A root file system layer as a machine maps it in the guest's layer
 * window (SB_IMG_GPA) and a template records it. */
struct machine_layer {
	uint64_t gpa;             /* 2 MiB-aligned */
	uint64_t size;            /* bytes: the image file's size */
	uint8_t id[16];           /* the image's id (its header's) */
};

/* Per-machine options a backend may honour (machine__new_opts); read by
 * create() only, so they may live on the caller's stack. */
/* What a reset did (machine__reset). */
struct reset_stats {
	uint64_t pages;           /* guest pages put back to the template's content */
	uint64_t ranges;          /* ... in this many runs of adjacent pages */
	uint64_t stub_bytes;      /* proc: bytes of the stub's memory rewritten */
	double scan_us;           /* finding the written pages */
	double copy_us;           /* putting them back */
	double total_us;
};

struct machine_opts {
	/* proc: the sandbox process's jail (backend/proc/jail.h): namespaces
	 * and a cgroup when root.  NULL: the defaults (every layer that works
	 * here, memory limit = RAM + 64 MiB, CPU limit 100% of one CPU). */
	const struct jail_config *jail;
	/* machine__new_clone_opts: the clone may be machine__reset later
	 * (sets machine.recycle before clone_into). */
	bool recycle;
};

/* A paused machine's conversation with its guest, beyond its CPU and RAM
 * (proc: the sandbox channel; kvm: none, all zero).  Set by run() when it
 * returns MACHINE_PAUSED; given to clone_into for a migrated-in machine
 * (machine.mig_hold), which goes on from it. */
#define MACHINE_PAUSED_REPLY    (1u << 0) /* the guest waits for a reply to a call
					     that is done (or is the pending stdin
					     read: done by complete_pending) */
#define MACHINE_PAUSED_DEFERRED (1u << 1) /* call nr (struct at gpa) came and was
					     not performed yet: perform it first */
struct machine_paused {
	uint32_t flags, nr;
	uint64_t gpa;
};

/*
 * Memory hotplug, free-page reporting and CPU share of a running machine
 * (guest ABI 5; backend/resize.c, resize.h): the host's side of the hot
 * window and of the mailbox at SB_MEMCTL_GPA.
 */
struct machine_resize {
	bool on;                  /* the mailbox is written (machine__resize_enable) */
	uint32_t seq;             /* the mailbox's */
	uint64_t hot_size;        /* bytes of the hot window usable now */
	uint64_t hot_target;      /* asked of the guest; < hot_size: a shrink waits */
	uint32_t report_min;      /* free-page reporting threshold (pages), 0: off */
	int ctl_fd;               /* requests from the service (resize.h), -1: none */
	uint64_t pending_req;     /* the shrink request waiting for the guest's ack */
	uint64_t reports, reported_bytes; /* free-page reports served */
	uint64_t cpu_quota_us, cpu_period_us; /* the share set last (0: never) */
	uint64_t hot_in_use;      /* the guest's last ack: hot bytes up to its highest use */
	char why_not[200];        /* not resizable: why (requests get it) */
};

/* What every backend's machine has; a backend embeds it first in its own. */
struct machine {
	const struct backend *be;
	struct guest_ram ram;     /* the monitor's mapping of guest RAM */
	struct guest_mem mem;     /* how devices reach guest memory */
	struct serial serial;
	struct hc_ctx hc;         /* set stdio fds, program, ready_mode before run */
	struct timeout timeout;   /* timeout__start() it on the thread that runs */
	uint32_t boot_flags;      /* SB_BOOT_* this backend adds to a fresh boot */
	uint32_t guest_abi;       /* the ABI the guest kernel speaks (boot__setup;
				     0: SB_ABI_VERSION), saved in templates */
	const struct machine_opts *opts; /* during create() only; NULL: defaults */
	bool recycle;             /* set before clone_into if the caller may
	                             machine__reset it: the backend then keeps
	                             what a reset needs (proc: its stub's memory) */
	bool resizable;           /* set before clone_into if the caller may
	                             resize it (proc: the stub maps the hot window) */
	struct machine_resize rs;
	char template_id[33];     /* the template machine__clone_into mapped */
	int pause;                /* set (__atomic) by another thread, then a signal
	                             to the running one: run() returns MACHINE_PAUSED */
	struct machine_paused paused; /* see MACHINE_PAUSED_* */
	bool mig_hold;            /* clone_into for a migration: the guest waits (proc:
	                             SB_PROC_MODE_MIGRATE) until run(), so that its
	                             pages can be put in first; paused says how it
	                             goes on */
	/* the root file system's layers, bottom first, once mapped (a fresh
	 * boot's, or the template's for a clone; 0 for a template made before
	 * layers, whose rootfs is in its RAM) */
	struct machine_layer layers[SB_MAX_LAYERS];
	unsigned n_layers;
};

struct backend {
	const char *name;
	uint32_t snap_backend;    /* enum snap_backend: what its templates say */
	size_t size;              /* of the backend's struct embedding struct machine */
	/* Usable on this host?  Either way, why (for `snapbox info`). */
	bool (*available)(char *why, size_t len);
	/* m is zeroed, size bytes; ram: RAM_ANON (fresh boot) or RAM_RESERVED
	 * (a shell for clone_into).  Cleans up after itself on failure. */
	int (*create)(struct machine *m, uint64_t mem_size, enum ram_backend ram,
		      struct sb_err *err);
	/* Make n read-only layer images (fds: the caller's, open read-only;
	 * where: l) the guest's layer window: before boot() for a fresh boot
	 * (machine__map_layers), and by clone_into for a template's. */
	int (*map_layers)(struct machine *m, const int *fds, const struct machine_layer *l, unsigned n,
			  struct sb_err *err);
	/* Fresh boot: RAM is laid out; start the guest kernel at entry(arg). */
	int (*boot)(struct machine *m, uint64_t entry, uint64_t arg, struct sb_err *err);
	/* Can this host run that template (CPU features, ...)? */
	int (*check)(const struct snapshot *snap, struct sb_err *err);
	/* Map the template's RAM into a shell of its size; restore its state. */
	int (*clone_into)(struct machine *m, const struct snapshot *snap, struct sb_err *err);
	/* Run: exit status >= 0 (err may hold a message), MACHINE_READY, or -errno. */
	int (*run)(struct machine *m, struct sb_err *err);
	/* Stopped at MACHINE_READY: add the backend's sections to state.bin. */
	int (*save)(struct machine *m, struct snap_writer *w, struct sb_err *err);
	/* Recycle: put a machine that clone_into(snap) made, and whose run()
	 * returned the program's exit, back to exactly that state: every page
	 * the sandbox wrote to snap's content (pages only read stay mapped),
	 * the CPU and the backend's own state from snap.  The devices are
	 * machine__reset's.  0 or -errno; after a failure only destroy. */
	int (*reset)(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
		     struct sb_err *err);
	/* Memory hotplug (guest ABI 5): make [SB_HOT_GPA, + size) of the hot
	 * window usable and the rest of it not, discarding what leaves (size a
	 * multiple of 2 MiB, <= SB_HOT_MAX).  NULL: not supported. */
	int (*hot_set)(struct machine *m, uint64_t size, struct sb_err *err);
	/* Free-page reporting: give [gpa, + len) back to the host (checked by
	 * the caller: page-aligned, in RAM above SB_USER_LOAD or in the usable
	 * hot window).  SB_MEM_RANGE_DONE, SB_MEM_RANGE_SELF (the guest must
	 * discard it itself), or 0: kept. */
	uint64_t (*discard)(struct machine *m, uint64_t gpa, uint64_t len);
	/* The machine's share of the CPU: quota_us per period_us (cgroup
	 * cpu.max / cfs_quota_us); the memory limit follows hot_set.  -errno
	 * with a message (-ENOTSUP: no cgroup for it). */
	int (*set_cpu)(struct machine *m, uint64_t quota_us, uint64_t period_us, struct sb_err *err);
	/* Release everything but m itself; safe on a partly created machine. */
	void (*destroy)(struct machine *m);
	/* destroy() and free(m), off the caller's path (a process about to exit). */
	void (*destroy_detached)(struct machine *m);
};

/* Backend by name ("kvm", "proc"); NULL if there is none of that name. */
const struct backend *backend__find(const char *name);
/* By name, where "auto" is kvm if usable here, else proc.  NULL with a
 * message in err for an unknown name. */
const struct backend *backend__pick(const char *name, struct sb_err *err);
/* The backend that made a template (its state.bin header); NULL + err. */
const struct backend *backend__of_snapshot(const struct snapshot *snap, struct sb_err *err);
/* All backends, NULL-terminated (for `snapbox info`). */
extern const struct backend *const backend__all[];

/* Allocate (be->size bytes) and create a machine; NULL with err set. */
struct machine *machine__new(const struct backend *be, uint64_t mem_size, enum ram_backend ram,
			     struct sb_err *err);
/* The same with options (NULL: defaults). */
struct machine *machine__new_opts(const struct backend *be, uint64_t mem_size,
				  enum ram_backend ram, const struct machine_opts *opts,
				  struct sb_err *err);
/* A clone of snap in one step: a shell, then clone_into (be->check first). */
struct machine *machine__new_clone(const struct backend *be, const struct snapshot *snap,
				   struct sb_err *err);
struct machine *machine__new_clone_opts(const struct backend *be, const struct snapshot *snap,
					const struct machine_opts *opts, struct sb_err *err);
/* be->clone_into, remembering which template it was (machine__reset
 * serves that template only). */
int machine__clone_into(struct machine *m, const struct snapshot *snap, struct sb_err *err);
/* Did the last run() end with the program's own exit (SB_HC_EXIT), not a
 * fault, panic, timeout or error -- may the machine be recycled? */
bool machine__recyclable(const struct machine *m);
/* be->reset, then the devices (serial, hypercall state) as clone_into
 * leaves them; stdio fds and the program name are the caller's to set. */
int machine__reset(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
		   struct sb_err *err);
/* A fresh boot's root file system: the layers of ls, where boot__setup
 * tells the guest they are; m->layers records them (and a template). */
int machine__map_layers(struct machine *m, const struct layer_set *ls, struct sb_err *err);
/* A clone's: the template's layers (format 1.3), each opened from the
 * template and checked against it, mapped where they were.  A template
 * without layers maps none.  For a backend's clone_into.  fds: NULL, or
 * room for SB_MAX_LAYERS descriptors that get the layers' (open read-only,
 * the caller's to close: its overlays map them), all closed on failure. */
int machine__map_snapshot_layers(struct machine *m, const struct snapshot *snap, int *fds,
				 struct sb_err *err);
/* Destroy and free; NULL is fine. */
void machine__free(struct machine *m);

/*
 * The write set (snapshot/format.h, SNAP_SEC_HOTSET; backend/hotset.c).
 * machine__written: the guest pages m wrote since its clone (a run that
 * ended, proc: cloned with recycle so its process waits), as sorted
 * [lo, hi) address pairs, addresses - *base = gpa; *out is malloc'd.
 * machine__prefault: make snap's write set m's own pages before a request
 * (kvm: MADV_POPULATE_WRITE on the VMM's RAM mapping; proc: the monitor
 * cannot madvise the sandbox -- process_madvise takes no POPULATE advice --
 * so it reads each range and writes the same bytes back with
 * process_vm_writev, which copies them on write in the sandbox).  The
 * content does not change.  *pages: pages made private.  0 or -errno.
 */
int machine__written(struct machine *m, uint64_t (**out)[2], size_t *n, uint64_t *base,
		     struct sb_err *err);
int machine__prefault(struct machine *m, const struct snapshot *snap, uint64_t *pages,
		      struct sb_err *err);
#endif
