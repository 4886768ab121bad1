/* SPDX-License-Identifier: MIT */
/*
 * What the proc monitor and its sandbox stub (backend/proc/stub/) agree on,
 * beyond the guest ABI (snapbox_abi.h): the descriptors the stub inherits and
 * the one message it reads before it confines itself.  Nothing the stub says
 * after that is trusted: the guest can overwrite the stub's memory.
 */
#ifndef SB_PROC_ABI_H
#define SB_PROC_ABI_H
#include <stdint.h>

#include "snapbox_abi.h"

/* inherited across execve: SB_PROC_CHAN_FD (snapbox_abi.h) and the RAM */
#define SB_PROC_RAM_FD 1001

/* where the stub is linked (above every guest address, see PLATFORM.md) */
#define SB_PROC_STUB_BASE 0x7f0000000000ULL

#define SB_PROC_MODE_BOOT  1 /* RAM fd: the monitor's memfd, mapped shared */
#define SB_PROC_MODE_CLONE 2 /* RAM fd: a template's mem.img, mapped private;
				a struct sb_proc_cpu follows on the channel */
#define SB_PROC_MODE_MIGRATE 3 /* as CLONE, but after RESUMED the stub waits for
				  one reply (the monitor puts the migrated pages
				  in meanwhile) before it resumes the CPU */

/* monitor -> stub, first message on the channel; the RAM fd rides along
 * (SCM_RIGHTS), then one fd per layer, so the stub can be started before
 * anyone knows which RAM or which root file system */
struct sb_proc_start {
	uint64_t magic;        /* SB_PROC_MAGIC                               */
	uint64_t mem_size;     /* RAM: the fd mapped at [4 KiB, size)          */
	uint64_t entry;        /* guest kernel entry (%rdi = arg), boot only  */
	uint64_t arg;          /* struct sb_boot_info                         */
	uint64_t ro_lo, ro_hi; /* made read-only before the guest runs        */
	uint32_t mode;         /* SB_PROC_MODE_*                              */
	uint32_t n_layers;     /* layer fds after the RAM fd, <= SB_MAX_LAYERS */
	uint32_t n_overlays;   /* clone: <= SB_PROC_OVERLAY_MAX; if any, the next
				  message is struct sb_proc_overlay[n_overlays] */
	uint32_t flags;        /* SB_PROC_START_*                             */
	struct sb_layer layers[SB_MAX_LAYERS]; /* mapped read-only (PROT_READ,
				  MAP_PRIVATE) at gpa, size bytes           */
};

/*
 * A template's overlay run (snapshot/format.h, SNAP_SEC_OVERLAY): the stub
 * maps npages pages of layer `layer`'s image from img_off private over guest
 * RAM at gpa (after RAM and the layers, before the filter), so they come
 * from the image's page cache, and a write gets the sandbox its own copy.
 */
#define SB_PROC_OVERLAY_MAX 1024
struct sb_proc_overlay {
	uint64_t gpa, img_off;
	uint32_t npages, layer;
};
_Static_assert(sizeof(struct sb_proc_overlay) == 24, "sb_proc_overlay size");

/*
 * The guest's user-mode CPU state, as a signal frame holds it: what the stub
 * reports at the ready point (SIGUSR1, see below) and what a clone resumes
 * (rt_sigreturn from a frame built around it).  xsave is the frame's
 * fpstate: XSAVE standard format with the kernel's fx_sw_bytes (MAGIC1,
 * xstate_size, xfeatures) at byte 464 and FP_XSTATE_MAGIC2 at xstate_size.
 */
/* A memfd follows the layer fds: mapped shared over the hot window
 * [SB_HOT_GPA, + SB_HOT_MAX) (memory hotplug, ABI 5); the monitor sizes it. */
#define SB_PROC_START_HOT (1u << 0)

#define SB_PROC_XSAVE_MAX 4096
struct sb_proc_cpu {
	uint64_t gpr[18];      /* sigcontext order: r8-r15, rdi, rsi, rbp, rbx,
				  rdx, rax, rcx, rsp, rip, eflags              */
	uint64_t fs_base;
	uint64_t xfeatures;    /* features in xsave (fx_sw_bytes.xfeatures)   */
	uint32_t xstate_size;  /* bytes of xsave in use, MAGIC2 follows       */
	uint32_t reserved;
	uint8_t pad[24];       /* xsave 64-byte aligned in an aligned struct  */
	uint8_t xsave[SB_PROC_XSAVE_MAX];
};
_Static_assert(sizeof(struct sb_proc_cpu) == 4288, "sb_proc_cpu size");
_Static_assert(__builtin_offsetof(struct sb_proc_cpu, xsave) == 192, "sb_proc_cpu xsave");
enum { SB_PROC_RIP = 16, SB_PROC_RSP = 15 }; /* gpr[] indices */

/*
 * Stub -> monitor messages of its own (struct sb_proc_msg, nr beyond every
 * hypercall):
 *  SAVED: SIGUSR1 from the monitor (which only sends it while the guest
 *         waits for the reply to its ready-point stdin call) made the stub copy
 *         its signal frame into a struct sb_proc_cpu in its own memory; gpa
 *         is that struct's address in the sandbox (read with
 *         process_vm_readv), 0 if the frame did not fit;
 *  RESUMED: a clone has mapped the template and set up its filter; it now
 *         re-enters the guest's pending channel read; gpa: the reset stack.
 *  RESET: SIGUSR2 from the monitor, queued with a 64-bit nonce
 *         (rt_sigqueueinfo, si_value), reached the stub's reset handler;
 *         gpa is the nonce.  The handler runs on a stack of its own (the
 *         reset stack: SB_PROC_RESET_STACK bytes, its address given in
 *         RESUMED's gpa), waits for a reply while the monitor puts the
 *         stub's memory and guest RAM back, then clears that stack and
 *         rt_sigreturns into the template's frame, as a fresh clone does.
 *         The nonce is proof that the handler, not the guest, answers: the
 *         guest cannot read a queued signal's data (no such system call
 *         passes the filter), only a handler that the guest cannot replace
 *         (rt_sigaction does not pass either) is given it.
 */
/*
 *  PAUSED: SB_PROC_SIG_PAUSE from the monitor (a live migration) made the
 *         stub copy its signal frame (the guest's, wherever it was: the
 *         signal is blocked while the stub's own handlers run) into a
 *         struct sb_proc_cpu, as for SAVED; gpa: its address (0: it did not
 *         fit).  The stub then waits in rt_sigsuspend for
 *         SB_PROC_SIG_RESUME (the migration failed: the guest goes on where
 *         it was) or SIGKILL (the destination has it).
 */
#define SB_PROC_MSG_PAUSED  0x10004
#define SB_PROC_SIG_PAUSE   34
#define SB_PROC_SIG_RESUME  35
#define SB_PROC_MSG_SAVED   0x10001
#define SB_PROC_MSG_RESUMED 0x10002
#define SB_PROC_MSG_RESET   0x10003
#define SB_PROC_RESET_STACK 8192
_Static_assert(sizeof(struct sb_proc_start) == 64 + 16 * SB_MAX_LAYERS, "sb_proc_start size");
#endif
