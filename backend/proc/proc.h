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
	bool reply_pending;     /* a clone waits for the reply to its READ */
	struct jail jail;       /* namespaces, cgroup (jail.h): set up at create */
};

extern const struct backend proc_backend;

/* The jail a proc machine gets by default (machine_opts.jail NULL): every
 * layer that works here, memory limit RAM + 64 MiB, 100% of one CPU, a new
 * network namespace per sandbox (netns_fd -1).  A caller that makes many
 * sandboxes (the pool) starts from this and shares one netns. */
void proc__default_jail(struct jail_config *jc, uint64_t mem_size);

/* The jail a machine's sandbox process got ("none; off: not root ..."), for
 * --stats and messages. */
void proc__describe_jail(const struct machine *m, char *buf, size_t len);

/* The XSAVE features and frame size this host's kernel puts in a signal
 * frame (what a sandbox here saves and restores): 0 or -errno. */
int proc__host_xstate(uint64_t *xfeatures, uint32_t *xstate_size, struct sb_err *err);
#endif
