/* SPDX-License-Identifier: MIT */
/*
 * snapbox guest <-> host ABI.  Shared verbatim by the guest kernel
 * (freestanding) and the host launcher.  Everything here is plain data:
 * fixed-width fields, sizes pinned with _Static_assert.
 *
 * Memory model: guest virtual == guest physical for all of RAM (one
 * identity map of 2 MiB pages).  The low 2 MiB is supervisor-only; the rest
 * of RAM belongs to the user program.  The root file system is not in RAM:
 * its layers (read-only sbfs images, sbfs.h) lie in the layer window at
 * SB_IMG_GPA, identity-mapped too, read-only and user-readable (the syscall
 * layer that reads them runs in user mode on kvm_pvm and under proc).
 *
 * Hypercalls (Solo5 style): the guest writes the guest-physical address of
 * an argument struct to the hypercall's slot: a 64-bit store to
 * SB_HC_MMIO(mmio_gpa, call) (an unbacked, user-accessible 2 MiB page right
 * after RAM, so the store exits to the host from user or kernel mode), or a
 * 32-bit `outl` to port SB_HC_PORT(call) (kernel mode only).  The host
 * validates the address and every pointer inside against guest RAM before
 * use, performs the call, writes results back into the struct and resumes
 * the guest.  One VM exit per call, no copies beyond the call itself.
 *
 * System calls: on kvm_pvm `syscall` reaches MSR_LSTAR without leaving user
 * mode, and every kernel-mode instruction is emulated (~1 us each), so under
 * snapbox the syscall layer runs in user mode, in the "sys" region
 * [SB_SYS_BASE, SB_USER_LOAD): LSTAR points at its entry stub.  Elsewhere
 * (QEMU, VMX/SVM hosts) LSTAR points at a `ud2` page and the same C code
 * runs in kernel mode from the #UD handler.  The kernel observes which of
 * these paths its first system call took and reports it once per boot
 * (SB_HC_SYSCALL_PATH).
 */
#ifndef SNAPBOX_ABI_H
#define SNAPBOX_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

/*
 * 3: SB_HC_SYSCALL_PATH.
 * 4: fewer synchronous round trips on a request's path: SB_HC_STDIN (reads
 *    of fd 0 with an EOF hint, and a randomness pool refilled with each
 *    one) instead of SB_HC_READ; on the proc backend stdout/stderr as
 *    one-way inline messages (struct sb_proc_out) instead of SB_HC_WRITE.
 *    The root file system layers (the layer window, layers_gpa/n_layers in
 *    the boot info, SB_HC_MEMCPY from the window) came with 4 too: the boot
 *    info words were reserved space and every hypercall is unchanged, but a
 *    kernel of 4 reads its files from the layers, not from a cpio in RAM.
 * A host speaking 4 still runs templates whose guest kernel speaks 2 or 3
 * (it serves every call of theirs unchanged; their rootfs is in their RAM,
 * they have no layers), and boots kernels of 4 only (SB_ABI_BOOT_MIN,
 * below): a kernel of 3 expects a cpio, which this host no longer builds.
 * A guest kernel boots only when the boot info says its own version.
 */
/*
 * 5: memory hotplug and free-page reporting (SB_MEMCTL_GPA, SB_HC_MEM, the
 *    hot window at SB_HOT_GPA, SB_STDIN_MEMCTL).  Everything of 4 is
 *    unchanged: a kernel of 5 in a plain clone (no mailbox written) behaves
 *    as one of 4; templates of 4 run as before and are not resizable.
 */
#define SB_ABI_VERSION 5
#define SB_ABI_VERSION_MIN 2 /* oldest guest ABI whose templates the host runs */
/*
 * Since ABI 4 the guest kernel says which ABI it speaks in an ELF note:
 * name "snapbox", type 1, a 32-bit version (guest/lib/elf64.h reads it).
 * The host boots a kernel of ABI SB_ABI_BOOT_MIN..SB_ABI_VERSION, telling
 * it its own version in the boot info; a kernel without the note speaks 3,
 * and is refused in one line (it has no layers).
 */
#define SB_ABI_BOOT_MIN 4

/* ---- guest physical memory map ---------------------------------------- */
#define SB_BOOTINFO_GPA   0x1000ULL  /* struct sb_boot_info (one page)        */
#define SB_PML4_GPA       0x2000ULL  /* page tables: PML4, PDPT, then PDs     */
#define SB_PDPT_GPA       0x3000ULL
#define SB_PD_GPA         0x4000ULL  /* one PD per GiB of RAM                 */
#define SB_MAX_MEM        (64ULL << 30) /* 64 PDs: 0x4000..0x43fff          */
#define SB_ARGS_GPA       0x50000ULL /* argv/env strings, NUL separated       */
#define SB_ARGS_MAX       0x40000ULL /* 256 KiB                               */
#define SB_KERNEL_GPA     0x100000ULL /* kernel image is linked here (1 MiB)  */
#define SB_KERNEL_END     0x200000ULL /* ... and must end below 2 MiB          */
#define SB_TRAMPOLINE_GPA 0x200000ULL /* user page holding `ud2` (LSTAR)      */
#define SB_USER_BASE      0x200000ULL /* first user-accessible address        */
#define SB_SYS_BASE       0x201000ULL /* user-mode syscall layer (kernel ELF)  */
#define SB_SYS_ENTRY_GPA  SB_SYS_BASE /* sys_entry_user (kernel.ld checks) */
#define SB_USER_LOAD      0x400000ULL /* program memory starts here; a static-
                                         pie ELF is placed here                */
#define SB_HC_MMIO(base, n) ((base) + 8ULL * (n))
#define SB_PAGE_2M        0x200000ULL
#define SB_MIN_MEM        (16ULL << 20)

/*
 * The layer window: the root file system's layers, read-only sbfs images
 * (sbfs.h), bottom layer first, each at a 2 MiB boundary after the one
 * before; described to the kernel by struct sb_layer[n_layers] at
 * SB_LAYERS_GPA (boot info: layers_gpa, n_layers).  KVM: a read-only memory
 * slot; proc: read-only file mappings the stub makes before its filter.  The
 * host-built page tables map [SB_IMG_GPA, + the layers' span) with 2 MiB
 * pages, present, user, not writable, from page directories at
 * SB_IMG_PD_GPA (one per GiB).  SB_HC_MEMCPY may take its source there.
 */
#define SB_IMG_GPA        (128ULL << 30)
#define SB_IMG_MAX        (8ULL << 30)  /* the window's span at most */
#define SB_IMG_PD_GPA     0x44000ULL    /* up to 8 PDs: 0x44000..0x4bfff */
#define SB_MAX_LAYERS     8
#define SB_LAYERS_GPA     0x4fc00ULL    /* in the proc boot info's page, after its fault report */

/*
 * Memory hotplug (ABI 5).  A running sandbox's RAM grows by a "hot window"
 * of guest memory at SB_HOT_GPA (GiB-aligned, above RAM and its hypercall
 * page, below the layer window), [SB_HOT_GPA, + hot_size), hot_size a
 * multiple of 2 MiB up to SB_HOT_MAX.  KVM: one memory slot over the whole
 * window (anonymous memory, inaccessible beyond hot_size: a guest touching
 * it is ended), identity-mapped user read-write by the host with 2 MiB
 * pages from page directories at SB_HOT_PD_GPA; proc: a memfd the stub maps
 * shared over the window before its filter, which the monitor grows and
 * shrinks with ftruncate (beyond hot_size: SIGBUS, the sandbox ends).
 *
 * The host tells the kernel through the mailbox at SB_MEMCTL_GPA (in the
 * user-accessible trampoline page, so the user-mode syscall layer reads it;
 * written by the host only, for a sandbox that may be resized; magic 0 in
 * every other machine, and the kernel then does nothing of this):
 *  - grow: hot_size rises and seq changes; the memory is usable already,
 *    and the kernel adds it to its allocator at its next memory call
 *    (brk/mmap/munmap/mremap/madvise) or stdin call;
 *  - shrink: hot_target < hot_size and seq changes; the kernel vacates
 *    [SB_HOT_GPA + hot_target, + hot_size) if nothing there is in use, and
 *    answers with SB_HC_MEM op SB_MEM_ACK (kept = what it keeps now: target,
 *    or its current size if it could not; in_use_top = the end of the
 *    highest hot memory in use).  Only after that ack does the host take
 *    the memory away.  A guest blocked in SB_HC_STDIN is woken for it: the
 *    call returns ret -EINTR with SB_STDIN_MEMCTL, and the kernel asks again
 *    after the ack.
 *  - free-page reporting: with report_min_pages > 0, free memory of at
 *    least that many pages (in one run) is reported with SB_HC_MEM op
 *    SB_MEM_REPORT, up to SB_MEM_REPORT_MAX page-aligned ranges of RAM
 *    above SB_USER_LOAD or of the hot window, each checked by the host.
 *    The host discards them (KVM: MADV_DONTNEED; proc: the monitor punches
 *    the hot window's memfd, and for RAM answers SB_MEM_RANGE_SELF, upon
 *    which the kernel discards it itself with madvise(MADV_DONTNEED), which
 *    the filter allows with the magic).  A discarded page of RAM reads as
 *    the template's page, not zero: the kernel zeroes a reported range
 *    when it hands it out again.
 */
#define SB_HOT_GPA        (65ULL << 30)
#define SB_HOT_MAX        (3ULL << 30)
#define SB_HOT_PD_GPA     0x4c000ULL    /* 3 PDs: 0x4c000..0x4efff */
#define SB_MEMCTL_GPA     0x200800ULL   /* struct sb_memctl, in the trampoline page */
/* A uint32 in the trampoline page the host bumps when a machine moved to
 * another host process or machine (live migration): the kernel's TSC
 * clock then drops its anchors and its scale (another TSC, perhaps of
 * another speed) and asks the host again.  Written by the host only; a
 * kernel that does not read it keeps its anchors for up to 10 ms. */
#define SB_CLOCK_EPOCH_GPA 0x200820ULL
#define SB_MEMCTL_MAGIC   0x4c544d43u   /* "CMTL" */
#define SB_MEM_REPORT_MAX 64

/* GDT selectors (same on every path) */
#define SB_SEL_KCODE 0x08
#define SB_SEL_KDATA 0x10
#define SB_SEL_UDATA 0x23 /* 0x20 | RPL 3 */
#define SB_SEL_UCODE 0x2b /* 0x28 | RPL 3 */
#define SB_SEL_TSS   0x30

/* ---- boot info: host -> kernel at SB_BOOTINFO_GPA ----------------------- */
#define SB_BOOT_MAGIC 0x54425342u /* "SBST" little endian: 'S','B','S','T' */

#define SB_BOOT_TRACE_SYSCALLS (1u << 0) /* report every syscall (SB_HC_TRACE) */
#define SB_BOOT_PT_READY       (1u << 1) /* host built the page tables         */
#define SB_BOOT_USER_SYSCALLS  (1u << 2) /* kvm_pvm: run syscalls in user mode */
#define SB_BOOT_PROC           (1u << 3) /* proc backend: no VM, see below      */

#ifndef __ASSEMBLER__
struct sb_boot_info {
	uint32_t magic;        /* SB_BOOT_MAGIC                              */
	uint32_t abi_version;  /* SB_ABI_VERSION                             */
	uint64_t mem_size;     /* bytes of guest RAM, starting at GPA 0      */
	uint64_t initrd_gpa;   /* newc cpio archive (the root file system)   */
	uint64_t initrd_size;
	uint64_t args_gpa;     /* argc + envc NUL-terminated strings         */
	uint64_t args_size;
	uint32_t argc;         /* argv[0] is the program path in the rootfs  */
	uint32_t envc;
	uint32_t flags;        /* SB_BOOT_*                                  */
	uint32_t files_count;  /* entries in the file index (0: parse cpio)  */
	uint64_t files_gpa;    /* struct sb_file_entry[files_count]          */
	uint64_t mmio_gpa;     /* hypercall MMIO page (= mem_size), 0: none  */
	uint64_t layers_gpa;   /* struct sb_layer[n_layers] (SB_LAYERS_GPA)  */
	uint32_t n_layers;     /* root file system layers, 1..SB_MAX_LAYERS  */
	uint32_t reserved32;
	uint64_t reserved[4];
};
_Static_assert(sizeof(struct sb_boot_info) == 128, "sb_boot_info size");
_Static_assert(__builtin_offsetof(struct sb_boot_info, flags) == 56, "sb_boot_info flags");
#endif
#define SB_BOOT_INFO_FLAGS_OFF 56 /* for entry.S */

/* A root file system layer in the layer window (see SB_IMG_GPA). */
#ifndef __ASSEMBLER__
struct sb_layer {
	uint64_t gpa;          /* 2 MiB-aligned, in [SB_IMG_GPA, + SB_IMG_MAX) */
	uint64_t size;         /* the image's size (its header's image_size) */
};
_Static_assert(sizeof(struct sb_layer) == 16, "sb_layer size");
#endif

/*
 * Before the layers (a kernel of ABI <= 3 in a template made before them):
 * the host indexed a cpio in RAM for the kernel.  Neither this host nor this
 * kernel uses it any more (initrd_*, files_* are 0); the layout stays.
 */
#ifndef __ASSEMBLER__
struct sb_file_entry {
	uint64_t name_gpa;     /* no leading "/" or "./", not NUL-terminated */
	uint32_t namelen;
	uint32_t mode;         /* st_mode */
	uint64_t data_gpa;
	uint64_t size;
};
_Static_assert(sizeof(struct sb_file_entry) == 32, "sb_file_entry size");
#endif

/* ---- hypercalls ---------------------------------------------------------- */
#define SB_HC_PORT_BASE 0x500
#define SB_HC_PORT(n)   (SB_HC_PORT_BASE + (n))

#ifndef __ASSEMBLER__
enum sb_hc {
	SB_HC_WRITE      = 1,  /* struct sb_hc_io: write iovecs to fd 1 or 2  */
	SB_HC_READ       = 2,  /* struct sb_hc_io: read fd 0 into iovecs       */
	SB_HC_EXIT       = 3,  /* struct sb_hc_exit: program exited            */
	SB_HC_FAULT      = 4,  /* struct sb_hc_fault: program died of a fault  */
	SB_HC_CLOCK      = 5,  /* struct sb_hc_clock: clock_gettime           */
	SB_HC_RANDOM     = 6,  /* struct sb_hc_mem: fill dst with randomness   */
	SB_HC_MEMCPY     = 7,  /* struct sb_hc_mem: dst <- src, len bytes (src:
				  RAM or the layer window)                    */
	SB_HC_MEMSET     = 8,  /* struct sb_hc_mem: dst <- (uint8)val          */
	SB_HC_TRACE      = 9,  /* struct sb_hc_trace: one syscall, traced      */
	SB_HC_PANIC      = 10, /* struct sb_hc_panic: kernel gives up, message */
	SB_HC_USER_START = 11, /* struct sb_hc_user_start: about to enter user */
	SB_HC_SLEEP      = 12, /* struct sb_hc_sleep: nanosleep                */
	SB_HC_SET_FS     = 13, /* struct sb_hc_set_base: FS/GS base (user mode) */
	SB_HC_SYSCALL_PATH = 14, /* struct sb_hc_syscall_path: once per boot  */
	SB_HC_STDIN      = 15, /* struct sb_hc_stdin: read fd 0 (ABI 4)        */
	SB_HC_OUTPUT     = 16, /* not a call: the proc backend's one-way output
				  message (struct sb_proc_out, ABI 4); refused
				  as a hypercall                              */
	SB_HC_MEM        = 17, /* struct sb_hc_mem_ctl: hotplug ack, free-page
				  report (ABI 5)                             */
	SB_HC_COUNT
};
#endif

/* Same layout as struct iovec. */
#ifndef __ASSEMBLER__
struct sb_iovec {
	uint64_t base;
	uint64_t len;
};
_Static_assert(sizeof(struct sb_iovec) == 16, "sb_iovec size");
#endif

#define SB_HC_IOV_MAX 1024

#ifndef __ASSEMBLER__
struct sb_hc_io {
	uint32_t fd;
	uint32_t iovcnt;       /* <= SB_HC_IOV_MAX                          */
	uint64_t iov_gpa;      /* array of struct sb_iovec                  */
	int64_t ret;           /* out: bytes done, 0 = EOF, or -errno       */
};
_Static_assert(sizeof(struct sb_hc_io) == 24, "sb_hc_io size");
#endif

/*
 * Stdin (ABI 4; ABI 2 and 3 kernels read fd 0 with SB_HC_READ, which the
 * host still serves).  The host reads fd 0 into the iovecs as READ does,
 * and says what it knows about what is left:
 *   SB_STDIN_EOF: nothing more will come (fd 0 is a regular file or memfd
 *   whose offset reached its size, a read of it returned 0, or there is no
 *   stdin at all): the kernel answers later reads of fd 0 with 0 itself.
 *   No hint for pipes, sockets, ttys: the kernel asks again.
 * With every stdin call the host also refills the kernel's randomness
 * pool: pool_len bytes at pool_gpa (guest RAM, <= SB_HC_POOL_MAX) get fresh
 * getrandom() bytes, pool_fill says how many (pool_len, or 0 if the host
 * had none; a pool_len over the maximum makes the call -EINVAL).  The kernel empties its pool before each stdin call and
 * serves getrandom and /dev/{u,}random from it, then falls back to
 * SB_HC_RANDOM: so a clone's pool always comes from its own completion of
 * the template's pending stdin call (the ready point), never from bytes
 * in the template's RAM that every clone shares.
 */
#define SB_STDIN_EOF  (1u << 0)
#define SB_STDIN_MEMCTL (1u << 1) /* ABI 5: nothing read (ret -EINTR): the
				     mailbox changed, ack it, then ask again */
#define SB_HC_POOL_MAX 4096

#ifndef __ASSEMBLER__
struct sb_hc_stdin {
	uint32_t iovcnt;       /* <= SB_HC_IOV_MAX                          */
	uint32_t flags;        /* out: SB_STDIN_*                           */
	uint64_t iov_gpa;      /* array of struct sb_iovec                  */
	int64_t ret;           /* out: bytes read, 0 = EOF, or -errno       */
	uint64_t pool_gpa;     /* the kernel's randomness pool              */
	uint32_t pool_len;     /* its size, <= SB_HC_POOL_MAX (0: none)     */
	uint32_t pool_fill;    /* out: fresh bytes put at pool_gpa          */
};
_Static_assert(sizeof(struct sb_hc_stdin) == 40, "sb_hc_stdin size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_exit {
	int64_t status;        /* exit_group() argument                     */
};
_Static_assert(sizeof(struct sb_hc_exit) == 8, "sb_hc_exit size");
#endif

/* The hotplug mailbox (ABI 5, see SB_HOT_GPA): written by the host only. */
#ifndef __ASSEMBLER__
struct sb_memctl {
	uint32_t magic;        /* SB_MEMCTL_MAGIC: this machine may be resized */
	uint32_t seq;          /* changes with every request                */
	uint64_t hot_size;     /* usable bytes of the hot window now         */
	uint64_t hot_target;   /* the size the host asks for (<= hot_size)   */
	uint32_t report_min_pages; /* free-page reporting threshold, 0: off */
	uint32_t reserved;
};
_Static_assert(sizeof(struct sb_memctl) == 32, "sb_memctl size");

enum sb_mem_op {
	SB_MEM_ACK    = 1,     /* answer to mailbox seq: kept, in_use_top   */
	SB_MEM_REPORT = 2,     /* n ranges at ranges_gpa are free           */
};
#define SB_MEM_RANGE_SELF (1ULL << 0) /* out, in a range's flags: discard
					 it yourself (proc, RAM)            */
#define SB_MEM_RANGE_DONE (1ULL << 1) /* out: the host discarded it     */
struct sb_mem_range {
	uint64_t gpa;          /* page-aligned                               */
	uint64_t len;          /* page multiple                              */
	uint64_t flags;        /* in: 0; out: SB_MEM_RANGE_*                 */
};
_Static_assert(sizeof(struct sb_mem_range) == 24, "sb_mem_range size");

struct sb_hc_mem_ctl {
	uint32_t op;           /* enum sb_mem_op                             */
	uint32_t n;            /* REPORT: ranges, <= SB_MEM_REPORT_MAX       */
	uint64_t seq;          /* ACK: the mailbox seq answered              */
	uint64_t kept;         /* ACK: hot window bytes the kernel keeps     */
	uint64_t in_use_top;   /* ACK: end of the highest hot bytes in use,
				  relative to SB_HOT_GPA (0: none)           */
	uint64_t ranges_gpa;   /* REPORT: struct sb_mem_range[n]             */
	int64_t ret;           /* out: 0 or -errno                           */
};
_Static_assert(sizeof(struct sb_hc_mem_ctl) == 48, "sb_hc_mem_ctl size");
#endif

/* Linux signal numbers the fault maps to (host exit status 128 + signal). */
#define SB_SIGILL  4
#define SB_SIGABRT 6
#define SB_SIGBUS  7
#define SB_SIGFPE  8
#define SB_SIGKILL 9
#define SB_SIGSEGV 11

#ifndef __ASSEMBLER__
struct sb_hc_fault {
	uint64_t vector;       /* x86 exception vector, or 256 for a signal  */
	uint64_t error_code;
	uint64_t rip;
	uint64_t rsp;
	uint64_t cr2;          /* faulting address for #PF                  */
	uint32_t signal;       /* SB_SIG*                                   */
	uint32_t reserved;
};
_Static_assert(sizeof(struct sb_hc_fault) == 48, "sb_hc_fault size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_clock {
	uint32_t clockid;      /* Linux clockid_t                           */
	int32_t ret;           /* out: 0 or -errno                          */
	int64_t sec;           /* out                                       */
	int64_t nsec;          /* out                                       */
};
_Static_assert(sizeof(struct sb_hc_clock) == 24, "sb_hc_clock size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_mem {
	uint64_t dst;
	uint64_t src;          /* MEMCPY only                               */
	uint64_t len;
	uint64_t val;          /* MEMSET only                               */
	int64_t ret;           /* out: 0 or -errno                          */
};
_Static_assert(sizeof(struct sb_hc_mem) == 40, "sb_hc_mem size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_trace {
	uint64_t nr;
	uint64_t args[6];
	int64_t ret;
};
_Static_assert(sizeof(struct sb_hc_trace) == 64, "sb_hc_trace size");
#endif

/* Kernel-detected errors that end the program before or during its run. */
#ifndef __ASSEMBLER__
enum sb_panic_code {
	SB_PANIC_KERNEL   = 1,  /* kernel bug / unexpected state             */
	SB_PANIC_EXEC     = 2,  /* program could not be loaded (msg says why) */
	SB_PANIC_NOMEM    = 3,  /* guest RAM exhausted                        */
	SB_PANIC_SYSCALLS = 4,  /* storm of unknown system calls              */
};
#endif

#ifndef __ASSEMBLER__
struct sb_hc_panic {
	uint64_t msg_gpa;      /* message text, not NUL-terminated          */
	uint64_t msg_len;      /* <= 1024                                   */
	uint32_t code;         /* enum sb_panic_code                        */
	uint32_t reserved;
};
_Static_assert(sizeof(struct sb_hc_panic) == 24, "sb_hc_panic size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_user_start {
	uint64_t entry;
	uint64_t sp;
};
_Static_assert(sizeof(struct sb_hc_user_start) == 16, "sb_hc_user_start size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_sleep {
	uint64_t nsec;
	int64_t ret;           /* out: 0 or -errno                          */
};
_Static_assert(sizeof(struct sb_hc_sleep) == 16, "sb_hc_sleep size");
#endif

#ifndef __ASSEMBLER__
struct sb_hc_set_base {
	uint64_t which;        /* 0: FS base, 1: GS base                    */
	uint64_t base;         /* canonical user address                    */
	int64_t ret;           /* out: 0 or -errno                          */
};
_Static_assert(sizeof(struct sb_hc_set_base) == 24, "sb_hc_set_base size");
#endif

/*
 * How the program's system calls reach the kernel's dispatcher, as the
 * kernel observed it at the first one (ABI 3).  Reported once per boot;
 * 0 in host state means "not reported".
 */
#ifndef __ASSEMBLER__
enum sb_syscall_path {
	SB_SYSCALL_PATH_USER      = 1, /* dispatcher ran at CPL3: the user-mode
					  layer (kvm_pvm, SB_BOOT_USER_SYSCALLS) */
	SB_SYSCALL_PATH_UD_KERNEL = 2, /* `syscall` entered CPL0, its `ud2` raised
					  #UD in kernel mode: VMX/SVM semantics */
	SB_SYSCALL_PATH_UD_USER   = 3, /* `syscall` stayed at CPL3, `ud2` raised
					  #UD from user mode: kvm_pvm semantics
					  without the user-mode layer */
	SB_SYSCALL_PATH_MAX       = 3,
};

struct sb_hc_syscall_path {
	uint32_t path;         /* enum sb_syscall_path                      */
	uint32_t reserved;     /* 0                                         */
};
_Static_assert(sizeof(struct sb_hc_syscall_path) == 8, "sb_hc_syscall_path size");
#endif

/*
 * The proc backend (no VM).  The guest runs in an ordinary host process, the
 * sandbox, confined by seccomp: guest RAM is mapped at its own addresses, the
 * whole kernel runs in user mode (no privileged instruction is ever
 * executed), and a `syscall` by the program traps (SIGSYS) into a stub that
 * resumes it at sys_entry_user exactly as kvm_pvm does.  A hypercall is a
 * struct sb_proc_msg written to the channel fd SB_PROC_CHAN_FD, answered by
 * a struct sb_proc_reply: both raw system calls carry SB_PROC_MAGIC in their
 * fourth argument register (r10), which the filter checks together with the
 * fd and the length, so that the program's own read/write/arch_prctl calls
 * (without it) trap to the guest kernel like every other call.
 *
 * Calls without a reply: EXIT, FAULT and PANIC (the monitor ends the
 * sandbox; the guest kernel waits in a read of the channel meanwhile), and
 * (ABI 4) stdout/stderr output, sent inline as one message of a struct
 * sb_proc_out and its bytes: the bytes are in the socket once the guest's
 * write() returns, so the program may reuse its buffer at once; a full
 * socket blocks the guest (flow control).  After a write's messages the
 * kernel calls sched_yield (with the magic; the filter lets it through) so
 * that a monitor sharing its CPU writes them out before the guest goes on.  Messages are handled in order,
 * so output precedes the EXIT that follows it.  The monitor writes the
 * bytes to its stdout/stderr and reports no error back (a closed pipe is
 * not seen by the program).  On KVM, output stays SB_HC_WRITE (a VM exit
 * is synchronous anyway).
 */
#define SB_PROC_CHAN_FD   1000
#define SB_PROC_MAGIC     0x53427072436f6d6dULL /* "mmoCrpBS" */
/*
 * A sandbox process maps guest RAM from SB_PROC_RAM_BASE (64 KiB, the usual
 * vm.mmap_min_addr: below it only root may map, and a jailed sandbox is not
 * root), so what the VM keeps below it moves: the boot info, and the page
 * the stub writes a fault report into, sit between the page tables (unused
 * in a process) and the arguments.
 */
#define SB_PROC_RAM_BASE     0x10000ULL
#define SB_PROC_BOOTINFO_GPA 0x4f000ULL
#define SB_PROC_FAULT_GPA    (SB_PROC_BOOTINFO_GPA + 0x800) /* stub's sb_hc_fault */
#if SB_PD_GPA + (SB_MAX_MEM >> 30) * 0x1000 > SB_PROC_BOOTINFO_GPA || SB_PROC_BOOTINFO_GPA + 0x1000 > SB_ARGS_GPA
#error "the proc boot info page overlaps the page tables or the arguments"
#endif
#if SB_PD_GPA + (SB_MAX_MEM >> 30) * 0x1000 > SB_IMG_PD_GPA || \
	SB_IMG_PD_GPA + (SB_IMG_MAX >> 30) * 0x1000 > SB_PROC_BOOTINFO_GPA
#error "the layer window's page directories overlap the RAM's or the proc boot info"
#endif
#if SB_LAYERS_GPA < SB_PROC_FAULT_GPA + 48 || SB_LAYERS_GPA + SB_MAX_LAYERS * 16 > SB_ARGS_GPA || \
	SB_LAYERS_GPA < SB_PROC_RAM_BASE
#error "the layer table overlaps the proc fault report or the arguments"
#endif
#if SB_MAX_MEM + SB_PAGE_2M > SB_HOT_GPA || SB_HOT_GPA + SB_HOT_MAX > SB_IMG_GPA || \
	SB_IMG_PD_GPA + (SB_IMG_MAX >> 30) * 0x1000 > SB_HOT_PD_GPA || \
	SB_HOT_PD_GPA + (SB_HOT_MAX >> 30) * 0x1000 > SB_PROC_BOOTINFO_GPA
#error "the hot window must lie between RAM and the layer window, its PDs below the proc boot info"
#endif
#if SB_MAX_MEM + SB_PAGE_2M > SB_IMG_GPA || (SB_IMG_GPA & ((1ULL << 30) - 1))
#error "the layer window must lie above RAM and its hypercall page, GiB-aligned"
#endif

#ifndef __ASSEMBLER__
struct sb_proc_msg {
	uint32_t nr;           /* enum sb_hc                                */
	uint32_t reserved;
	uint64_t gpa;          /* the call's argument struct                */
};
_Static_assert(sizeof(struct sb_proc_msg) == 16, "sb_proc_msg size");

struct sb_proc_reply {
	int64_t ret;           /* 0: done, results are in the struct        */
};
_Static_assert(sizeof(struct sb_proc_reply) == 8, "sb_proc_reply size");

/* ABI 4, proc: one-way output, one message of sizeof(struct sb_proc_out) +
 * len bytes (a larger write is split); the filter lets writes of the
 * channel through for lengths [16, 16 + SB_PROC_OUT_MAX]. */
#define SB_PROC_OUT_MAX 65536
struct sb_proc_out {
	uint32_t nr;           /* SB_HC_OUTPUT                              */
	uint32_t fd;           /* 1 (stdout) or 2 (stderr)                  */
	uint64_t len;          /* bytes that follow: the message's length
				  - 16, at most SB_PROC_OUT_MAX             */
};
_Static_assert(sizeof(struct sb_proc_out) == sizeof(struct sb_proc_msg), "sb_proc_out size");
#endif

/* Under QEMU (PVH boot) the kernel talks to the 8250 at COM1 and leaves
 * through isa-debug-exit: QEMU's exit status is (value << 1) | 1. */
#define SB_COM1_PORT        0x3f8
#define SB_DEBUG_EXIT_PORT  0xf4

#endif /* SNAPBOX_ABI_H */
