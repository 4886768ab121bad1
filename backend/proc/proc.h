/* SPDX-License-Identifier: MIT */
/*
 * The proc backend (prototype): the guest runs in a seccomp-confined host
 * process instead of a VM.  Same guest kernel (booted with SB_BOOT_PROC),
 * same hypercall handling (launcher/hypercall.c), hypercalls arriving as
 * messages on a socket instead of MMIO exits.
 *
 *   monitor (this code, in the snapbox process)      sandbox process
 *   guest RAM: memfd, MAP_SHARED  <---- same pages ---> mapped at [4 KiB, size)
 *   chan (SOCK_SEQPACKET)  <---- sb_proc_msg / reply ---> fd SB_PROC_CHAN_FD
 *                                                      stub at 0x7f0000000000
 *
 * Life cycle, mirroring the KVM one so it fits behind a backend interface:
 * proc__create (RAM), proc__boot (lay out the guest, start the sandbox),
 * proc__run (serve hypercalls until the program ends), proc__destroy.
 */
#ifndef SB_PROC_H
#define SB_PROC_H
#include <stdint.h>
#include <sys/types.h>

#include "launcher/boot.h"
#include "launcher/err.h"
#include "launcher/hypercall.h"
#include "launcher/timeout.h"
#include "memory/ram.h"

struct proc_sandbox {
	struct guest_ram ram;   /* memfd, shared with the sandbox process */
	pid_t pid;              /* the sandbox process, 0: none */
	int chan;               /* our end of the channel, -1: none */
	struct hc_ctx hc;
	struct timeout timeout;
	uint64_t msgs;          /* channel messages served */
	int wait_status;        /* the sandbox's, once reaped */
};

/* Guest RAM (a memfd the sandbox maps too); hypercalls on our stdio. */
int proc__create(struct proc_sandbox *sb, uint64_t mem_size, const char *program,
		 struct sb_err *err);

/* Lay the guest out in RAM (boot__setup, then SB_BOOT_PROC) and start the
 * sandbox process from the stub at stub_path; it runs the guest kernel at
 * once, its first hypercall waits for proc__run. */
int proc__boot(struct proc_sandbox *sb, const struct boot_params *bp, const char *stub_path,
	       struct sb_err *err);

/* Serve the guest until its program ends: the same results as vcpu__run()
 * (exit status, 124 on timeout_ns, 128+N fault, 125/127 with err). */
int proc__run(struct proc_sandbox *sb, uint64_t timeout_ns, struct sb_err *err);

/* Kill and reap the sandbox, unmap RAM; safe on a partly created one. */
void proc__destroy(struct proc_sandbox *sb);
#endif
