/* SPDX-License-Identifier: MIT */
/*
 * The proc backend: the guest runs in a seccomp-confined host process (the
 * sandbox) instead of a VM.  Same guest kernel (booted with SB_BOOT_PROC),
 * same hypercall device (devices/hypercall.c), hypercalls arriving as
 * messages on a socket instead of MMIO exits.
 *
 *   monitor (this code, in the snapbox process)      sandbox process
 *   fresh boot: RAM memfd, MAP_SHARED <- same pages -> mapped at [4 KiB, size)
 *   clone: no mapping here; process_vm_readv/writev <- mem.img MAP_PRIVATE
 *   the root file system's layers (fds)    ---------> mapped read-only at SB_IMG_GPA
 *   chan (SOCK_SEQPACKET)  <---- sb_proc_msg / reply ---> fd SB_PROC_CHAN_FD
 *                          <---- sb_proc_out + bytes ---  (one way, ABI 4)
 *                                                      stub at 0x7f0000000000
 *
 * create() forks and execs the stub at once (a shell: it waits for its RAM
 * on the channel), so that a clone pays for no process start; boot() or
 * clone_into() hand it its RAM (SCM_RIGHTS) and, for a clone, the saved
 * CPU; the stub maps it, installs its filter and runs.  See README.md.
 */
#ifndef SB_PROC_H
#define SB_PROC_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "backend/proc/jail.h"
#include "backend/proc/proc_abi.h"
#include "memory/written.h"
#include "snapshot/pristine.h"

#define PROC_STUB_REGIONS 4

struct proc_machine {
	struct machine m;       /* first: the backend interface's part */
	pid_t pid;              /* the sandbox process, 0: none */
	int chan;               /* our end of the channel, -1: none */
	uint64_t msgs;          /* channel messages served */
	int wait_status;        /* the sandbox's, once reaped */
	uint64_t ro_lo, ro_hi;  /* a template's rootfs window in RAM (before layers),
				   read-only in the sandbox */
	/* the layers the start message will carry (map_layers): our copies of
	 * their fds, closed once sent */
	int layer_fd[SB_MAX_LAYERS];
	struct sb_layer layer[SB_MAX_LAYERS];
	unsigned n_layers;
	bool reply_pending;     /* a clone waits for the reply to its stdin call */
	/* live migration (migrate/): paused in the stub's pause handler, its
	 * frame read out; a hypercall that came while pausing, not performed;
	 * a migrated-in sandbox waiting for its go (SB_PROC_MODE_MIGRATE) */
	bool paused, deferred, go_pending;
	struct sb_proc_msg deferred_msg;
	struct snap_proc_cpu *pause_cpu;
	uint8_t *rx;            /* one channel message: up to PROC_RX_MAX bytes */
	struct jail jail;       /* namespaces, cgroup (jail.h): set up at create */
	/* recycling (m.recycle, reset.c): what a reset puts back */
	struct written_scan ws;       /* the sandbox's pagemap, fd -1: none */
	struct snap_pristine pristine; /* the template's pages */
	struct proc_stub_region {
		uint64_t lo, hi;      /* a writable mapping of the stub's */
		uint8_t *image;       /* its content when the clone resumed */
	} stub[PROC_STUB_REGIONS];
	unsigned n_stub;
	uint64_t reset_stack;         /* the stub's, which its handler clears */
	/* memory hotplug (m.resizable, guest ABI 5): the memfd the stub maps
	 * over the hot window; its size is what the guest may use (-1: none) */
	int hot_fd;
	uint64_t hot_size;
};

/* The largest channel message: one-way output, a struct sb_proc_out and
 * at most SB_PROC_OUT_MAX bytes (hypercalls are 16 bytes). */
#define PROC_RX_MAX (sizeof(struct sb_proc_out) + SB_PROC_OUT_MAX)

extern const struct backend proc_backend;

/* The jail a proc machine gets by default (machine_opts.jail NULL): every
 * layer that works here, memory limit RAM + 64 MiB, 100% of one CPU, a new
 * network namespace per sandbox (netns_fd -1).  A caller that makes many
 * sandboxes (the pool) starts from this and shares one netns. */
void proc__default_jail(struct jail_config *jc, uint64_t mem_size);

/* The jail a machine's sandbox process got ("none; off: not root ..."), for
 * --stats and messages. */
void proc__describe_jail(const struct machine *m, char *buf, size_t len);

/* reset.c: at clone_into's end, while the guest waits for its first reply
 * (so nothing in the sandbox is the guest's doing yet), keep what a reset
 * restores; and the reset itself (backend op), and the cleanup. */
int proc__recycle_prepare(struct proc_machine *pm, const struct snapshot *snap,
			  uint64_t reset_stack, struct sb_err *err);
int proc_be__reset(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
		   struct sb_err *err);
void proc__recycle_release(struct proc_machine *pm);
/* A migrated-in sandbox (SB_PROC_MODE_MIGRATE) whose pages are in: its
 * stub may resume it (migrate/restore.c; run() does it too). */
void proc__migrate_go(struct proc_machine *pm);
/* proc.c, for reset.c */
int proc__died(struct proc_machine *pm, struct sb_err *err);

/* The XSAVE features and frame size this host's kernel puts in a signal
 * frame (what a sandbox here saves and restores): 0 or -errno. */
int proc__host_xstate(uint64_t *xfeatures, uint32_t *xstate_size, struct sb_err *err);
#endif
