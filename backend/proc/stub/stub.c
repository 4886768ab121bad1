/* SPDX-License-Identifier: MIT */
/*
 * The proc backend's sandbox stub: a freestanding static program linked at
 * SB_PROC_STUB_BASE (above all guest memory).  The monitor forks and execs
 * it with one descriptor, the channel, ahead of need (a shell); it does
 * step 3 and step 4 but the filter's install at once, in the shell, off the
 * request path (none depends on the start message); then it
 *   1. reads struct sb_proc_start from the channel, the RAM's fd attached
 *      (a fresh boot: the monitor's memfd; a clone: the template's mem.img)
 *      and, for a clone, the saved CPU (struct sb_proc_cpu),
 *   2. maps guest RAM at the guest's own addresses (shared, or private for
 *      a clone), an old template's rootfs window read-only, the root file
 *      system's layers (their fds ride along) read-only at their addresses
 *      in the layer window, and unmaps the vDSO/vvar (host time without a
 *      syscall); a clone sets its FS base,
 *   3. installs its signal handlers on an alternate stack: SIGSYS (a
 *      trapped system call) resumes the program at sys_entry_user with
 *      RCX = return address and R11 = RFLAGS, exactly what `syscall` does
 *      under kvm_pvm; SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP report a fault,
 *      SIGUSR1 (from the monitor, at the ready point) saves the frame,
 *   4. closes every other descriptor, sets no_new_privs and the seccomp
 *      filter (below), and jumps into the guest kernel; a clone instead
 *      says RESUMED and rt_sigreturns into a frame built from the saved
 *      CPU (with the XSAVE magic, so that AVX/AVX-512 state survives).
 * No libc, no TLS, no stack protector: %fs is the guest program's.
 */
#include <stddef.h>
#include <stdint.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "backend/proc/proc_abi.h"
#include "sb_syscall.h"

/* one static image at a fixed address: every symbol is local, addressed
 * RIP-relative (there is no GOT to fill) */
#pragma GCC visibility push(hidden)

#define SYS_recvmsg 47
#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_madvise 28
#define MADV_DONTNEED 4
#define MAP_NORESERVE 0x4000
#define SYS_munmap 11
#define SYS_rt_sigaction 13
#define SYS_rt_sigreturn 15
#define SYS_prctl 157
#define SYS_arch_prctl 158
#define SYS_exit_group 231
#define SYS_sched_yield 24
#define SYS_sigaltstack 131
#define SYS_seccomp 317
#define SYS_close_range 436
#define SYS_rt_sigsuspend 130

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define SA_RESTART 0x10000000
#define SIGUSR1 10
#define SIGUSR2 12
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define AT_HWCAP2 26
#define HWCAP2_FSGSBASE (1UL << 1)
#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define FP_XSTATE_MAGIC1 0x46505853U
#define SCM_RIGHTS 1
#define SOL_SOCKET 1
#define MAP_FIXED_NOREPLACE 0x100000
#define PR_SET_NO_NEW_PRIVS 38
#define SA_SIGINFO 0x4
#define SA_ONSTACK 0x08000000
#define SA_RESTORER 0x04000000
#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGSEGV 11
#define SIGSYS 31
#define SYS_SECCOMP 1

/* gcc may call these for struct initialisers even when freestanding */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

#define sys6 sb_syscall6
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
/* the calls the filter allows need the magic in r10 */
#define sysm(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), (long)SB_PROC_MAGIC, 0, 0)

static __attribute__((noreturn)) void die(int status)
{
	for (;;)
		sysm(SYS_exit_group, status, 0, 0);
}

/* ---- kernel signal ABI (x86-64) ---------------------------------------- */
struct k_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

struct k_stack {
	void *sp;
	int flags;
	int pad;
	uint64_t size;
};

struct k_sigcontext { /* struct sigcontext_64 */
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate, reserved[8];
};

struct k_ucontext {
	uint64_t flags;
	void *link;
	struct k_stack stack;
	struct k_sigcontext mc;
	uint64_t sigmask;
};

struct k_siginfo {
	int signo, errno_, code, pad;
	union {
		struct {
			uint64_t call_addr;
			int syscall;
			uint32_t arch;
		} sys;
		uint64_t addr;
	} u;
};

_Static_assert(offsetof(struct k_ucontext, mc) == 40, "ucontext layout");
_Static_assert(offsetof(struct k_sigcontext, rip) == 128, "sigcontext layout");
_Static_assert(offsetof(struct k_sigcontext, trapno) == 160, "sigcontext layout");

extern void stub_restorer(void);
extern __attribute__((noreturn)) void stub_sigreturn(struct k_ucontext *uc);
extern __attribute__((noreturn)) void stub_enter_guest(uint64_t entry, uint64_t arg);
extern void stub_on_reset(int sig, struct k_siginfo *si, struct k_ucontext *uc);
extern __attribute__((noreturn)) void stub_reset_return(struct k_ucontext *uc, void *stack,
							 uint64_t size);

/* The stub's own stack (start.S) and the reset handler's (a page of its own:
 * the monitor puts back every other page of ours, but not the one the
 * handler runs on, which the handler clears itself). */
uint8_t stub_stack[16384] __attribute__((aligned(4096)));      /* start.S knows the size */
uint8_t reset_stack[SB_PROC_RESET_STACK] __attribute__((aligned(4096)));
_Static_assert(SB_PROC_RESET_STACK == 8192, "start.S: stub_on_reset's stack top");

/* ---- the handlers ------------------------------------------------------ */

/* Tell the monitor as the guest kernel would (struct sb_hc_fault in guest
 * RAM, a FAULT message), then end.  If this memory is not writable any more
 * the nested fault kills the process, which the monitor reports as such. */
static __attribute__((noreturn)) void report_fault(int sig, uint64_t vector, uint64_t err,
						   uint64_t rip, uint64_t rsp, uint64_t addr)
{
	struct sb_hc_fault *f = (struct sb_hc_fault *)SB_PROC_FAULT_GPA;
	struct sb_proc_msg m = { .nr = SB_HC_FAULT, .gpa = SB_PROC_FAULT_GPA };

	f->vector = vector;
	f->error_code = err;
	f->rip = rip;
	f->rsp = rsp;
	f->cr2 = addr;
	f->signal = (uint32_t)sig;
	f->reserved = 0;
	sysm(SYS_write, SB_PROC_CHAN_FD, &m, sizeof(m));
	/* stay until the monitor has read the report: a clone's RAM is private,
	 * it reads it from this process (it kills us, or EOF) */
	{
		struct sb_proc_reply r;
		sysm(SYS_read, SB_PROC_CHAN_FD, &r, sizeof(r));
	}
	die(128 + sig);
}

/* A trapped `syscall`: continue in the guest's syscall layer as the CPU
 * would under kvm_pvm (LSTAR = sys_entry_user): RCX = return address,
 * R11 = RFLAGS, RAX = the call number, arguments where they were. */
static void on_sigsys(int sig, struct k_siginfo *si, struct k_ucontext *uc)
{
	struct k_sigcontext *mc = &uc->mc;

	(void)sig;
	if (si->code != SYS_SECCOMP)
		return;
	/* `int $0x80` (a 32-bit call): a #GP for the program, as on a host
	 * without ia32 emulation; the 2-byte instruction is just before */
	if (si->u.sys.arch != AUDIT_ARCH_X86_64)
		report_fault(SIGSEGV, 13, 0, mc->rip - 2, mc->rsp, 0);
	mc->rcx = mc->rip;
	mc->r11 = mc->eflags;
	mc->rax = (uint64_t)(int64_t)si->u.sys.syscall;
	mc->rip = SB_SYS_ENTRY_GPA;
}

/* SIGUSR1: the monitor saves a template.  The guest waits in its channel
 * read (or is about to make it); with SA_RESTART the frame resumes that
 * read.  Copy registers, FS base and the XSAVE image (up to MAGIC2) into
 * `saved` and tell the monitor where it is; then return and wait. */
static struct sb_proc_cpu saved __attribute__((aligned(64)));

static void on_save(int sig, struct k_siginfo *si, struct k_ucontext *uc)
{
	const uint8_t *fp = (const uint8_t *)uc->mc.fpstate;
	struct sb_proc_msg m = { .nr = sig == SB_PROC_SIG_PAUSE ? SB_PROC_MSG_PAUSED : SB_PROC_MSG_SAVED,
				 .gpa = (uint64_t)&saved };
	uint32_t magic1 = 0, size = 0;

	(void)si;
	memcpy(saved.gpr, &uc->mc.r8, sizeof(saved.gpr));
	saved.fs_base = 0;
	sys6(SYS_arch_prctl, ARCH_GET_FS, (long)&saved.fs_base, 0, (long)SB_PROC_MAGIC, 0, 0);
	if (fp) {
		memcpy(&magic1, fp + 464, 4);
		/* struct _fpx_sw_bytes: magic1, extended_size, xfeatures, xstate_size */
		memcpy(&saved.xfeatures, fp + 464 + 8, 8);
		memcpy(&size, fp + 464 + 16, 4);
	}
	if (!fp || magic1 != FP_XSTATE_MAGIC1 || size > SB_PROC_XSAVE_MAX - 4) {
		m.gpa = 0;
	} else {
		saved.xstate_size = size;
		memcpy(saved.xsave, fp, size + 4); /* FP_XSTATE_MAGIC2 included */
	}
	sysm(SYS_write, SB_PROC_CHAN_FD, &m, sizeof(m));
}

/* SB_PROC_SIG_PAUSE: a live migration pauses the guest.  Report its frame
 * as on_save does, then wait (every signal blocked but the resume one) for
 * SB_PROC_SIG_RESUME; SIGKILL ends us if the guest went elsewhere. */
static volatile int resumed;

static void on_resume(int sig, struct k_siginfo *si, struct k_ucontext *uc)
{
	(void)sig, (void)si, (void)uc;
	resumed = 1;
}

static void on_pause(int sig, struct k_siginfo *si, struct k_ucontext *uc)
{
	uint64_t wait_mask = ~(1ULL << (SB_PROC_SIG_RESUME - 1));

	resumed = 0;
	on_save(sig, si, uc); /* the frame into `saved`; the message says SAVED */
	while (!resumed)
		sysm(SYS_rt_sigsuspend, &wait_mask, 8, 0);
}

/* A fault in the program (or in the guest kernel's user-mode layer). */
static void on_fault(int sig, struct k_siginfo *si, struct k_ucontext *uc)
{
	struct k_sigcontext *mc = &uc->mc;

	report_fault(sig, mc->trapno, mc->err, mc->rip, mc->rsp,
		     mc->trapno == 14 ? mc->cr2 : si->u.addr);
}

/* ---- setup ------------------------------------------------------------- */

static int read_full(int fd, void *buf, uint64_t len)
{
	uint8_t *p = buf;

	while (len) {
		long n = sys3(SYS_read, fd, p, len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int parse_hex(const char **s, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0;

	for (;; (*s)++, n++) {
		char c = **s;
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			break;
	}
	*out = v;
	return n ? 0 : -1;
}

static int has(const char *s, const char *e, const char *word)
{
	for (; s < e; s++) {
		const char *a = s, *b = word;
		while (a < e && *b && *a == *b)
			a++, b++;
		if (!*b)
			return 1;
	}
	return 0;
}

/* The vDSO would give the program host time without a system call, and
 * it is code we did not write inside the sandbox: unmap it and its data.
 * The kernel's [stack] goes too (we run on stub_stack): it grows down on a
 * fault below it, and memory a recycling reset does not know would carry a
 * request's data to the next. */
static void unmap_vdso(void)
{
	static char buf[16384];
	long fd = sys3(SYS_open, "/proc/self/maps", 0, 0), n, len = 0;

	if (fd < 0)
		die(120);
	while (len < (long)sizeof(buf) - 1 &&
	       (n = sys3(SYS_read, fd, buf + len, sizeof(buf) - 1 - (unsigned long)len)) > 0)
		len += n;
	sys3(SYS_close, fd, 0, 0);
	for (char *line = buf, *end; line < buf + len; line = end + 1) {
		uint64_t lo, hi;
		const char *p = line;

		for (end = line; end < buf + len && *end != '\n'; end++)
			;
		if (!has(line, end, "[vdso]") && !has(line, end, "[vvar") &&
		    !has(line, end, "[stack]"))
			continue;
		if (parse_hex(&p, &lo) || *p++ != '-' || parse_hex(&p, &hi) || hi <= lo)
			die(121);
		if (sys3(SYS_munmap, lo, hi - lo, 0) < 0)
			die(122);
	}
}

static void handle(int sig, void *fn, unsigned long flags)
{
	struct k_sigaction sa = {
		.handler = fn,
		.flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER | flags,
		.restorer = (void *)stub_restorer,
		.mask = ~0ULL, /* nothing nests (a fault in a handler kills us) */
	};
	if (sys6(SYS_rt_sigaction, sig, (long)&sa, 0, 8, 0, 0) < 0)
		die(123);
}

/*
 * The filter.  Everything traps (SIGSYS, emulated by the guest kernel)
 * except, with SB_PROC_MAGIC in the 4th argument (r10):
 *   read(SB_PROC_CHAN_FD, _, sizeof(struct sb_proc_reply)),
 *   write(SB_PROC_CHAN_FD, _, len) for len from sizeof(struct sb_proc_msg)
 *     (a hypercall) to sizeof(struct sb_proc_out) + SB_PROC_OUT_MAX (one-way
 *     output, ABI 4; the monitor checks that the message says its length),
 *   arch_prctl(ARCH_SET_FS or ARCH_GET_FS, _), rt_sigreturn, exit_group,
 *   madvise(_, _, MADV_DONTNEED) (free-page reporting, ABI 5: it can only
 *     give memory back),
 *   sched_yield (the guest kernel's, after one-way output), rt_sigsuspend
 *   (the pause handler's wait; the guest kernel gains nothing by it: a
 *   blocked read of the channel waits as well), sigaltstack
 *   (the reset handler's: a guest can move its signal stack anyway, with a
 *   forged rt_sigreturn frame).
 * The magic only keeps the program's own calls (which lack it) going to
 * the guest kernel; it is no secret: whoever sends it reaches the monitor,
 * which trusts nothing it is sent.  A foreign architecture (`int $0x80`)
 * traps too, and the handler makes it a #GP for the program.
 */
enum { L_NEXT, L_ALLOW, L_TRAP, L_KILL, L_RW, L_READ, L_WRITE, L_PRCTL, L_FD, L_MADV, L_NLABELS };

struct fbuild {
	struct sock_filter f[64];
	uint8_t jt[64], jf[64];
	int n, at[L_NLABELS];
};

static void f_ld(struct fbuild *b, uint32_t off)
{
	b->f[b->n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, off);
}

static void f_jeq(struct fbuild *b, uint32_t k, int jt, int jf)
{
	b->jt[b->n] = (uint8_t)jt;
	b->jf[b->n] = (uint8_t)jf;
	b->f[b->n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 0);
}

/* unsigned A >= k, A > k */
static void f_jge(struct fbuild *b, uint32_t k, int jt, int jf)
{
	b->jt[b->n] = (uint8_t)jt;
	b->jf[b->n] = (uint8_t)jf;
	b->f[b->n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, k, 0, 0);
}

static void f_jgt(struct fbuild *b, uint32_t k, int jt, int jf)
{
	b->jt[b->n] = (uint8_t)jt;
	b->jf[b->n] = (uint8_t)jf;
	b->f[b->n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, k, 0, 0);
}

static void f_ret(struct fbuild *b, uint32_t k)
{
	b->f[b->n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, k);
}

#define ARG_LO(i) (uint32_t)offsetof(struct seccomp_data, args[i])
#define ARG_HI(i) (ARG_LO(i) + 4)

static void f_arg_eq(struct fbuild *b, int i, uint64_t v, int jt)
{
	f_ld(b, ARG_LO(i));
	f_jeq(b, (uint32_t)v, L_NEXT, L_TRAP);
	f_ld(b, ARG_HI(i));
	f_jeq(b, (uint32_t)(v >> 32), jt, L_TRAP);
}

static void build_filter(struct fbuild *b)
{
	b->n = 0;
	f_ld(b, offsetof(struct seccomp_data, arch));
	f_jeq(b, AUDIT_ARCH_X86_64, L_NEXT, L_TRAP);
	f_arg_eq(b, 3, SB_PROC_MAGIC, L_NEXT);
	f_ld(b, offsetof(struct seccomp_data, nr));
	f_jeq(b, SYS_rt_sigreturn, L_ALLOW, L_NEXT);
	f_jeq(b, SYS_exit_group, L_ALLOW, L_NEXT);
	f_jeq(b, SYS_sigaltstack, L_ALLOW, L_NEXT);
	f_jeq(b, SYS_sched_yield, L_ALLOW, L_NEXT);
	f_jeq(b, SYS_rt_sigsuspend, L_ALLOW, L_NEXT);
	f_jeq(b, SYS_arch_prctl, L_PRCTL, L_NEXT);
	f_jeq(b, SYS_madvise, L_MADV, L_NEXT);
	f_jeq(b, SYS_read, L_READ, L_NEXT);
	f_jeq(b, SYS_write, L_WRITE, L_TRAP);
	b->at[L_PRCTL] = b->n;
	/* ARCH_SET_FS or ARCH_GET_FS (the save handler's): codes 0x1002/0x1003 */
	f_ld(b, ARG_HI(0));
	f_jeq(b, 0, L_NEXT, L_TRAP);
	f_ld(b, ARG_LO(0));
	f_jeq(b, ARCH_SET_FS, L_ALLOW, L_NEXT);
	f_jeq(b, ARCH_GET_FS, L_ALLOW, L_TRAP);
	b->at[L_MADV] = b->n;
	/* free-page reporting (ABI 5): the guest kernel discards RAM the
	 * monitor checked; it can only ever give memory back this way */
	f_arg_eq(b, 2, MADV_DONTNEED, L_ALLOW);
	b->at[L_READ] = b->n;
	f_arg_eq(b, 2, sizeof(struct sb_proc_reply), L_FD);
	b->at[L_WRITE] = b->n;
	/* a hypercall (16 bytes) up to the largest output message */
	_Static_assert(sizeof(struct sb_proc_out) == sizeof(struct sb_proc_msg), "header sizes");
	f_ld(b, ARG_HI(2));
	f_jeq(b, 0, L_NEXT, L_TRAP);
	f_ld(b, ARG_LO(2));
	f_jge(b, sizeof(struct sb_proc_msg), L_NEXT, L_TRAP);
	f_jgt(b, sizeof(struct sb_proc_out) + SB_PROC_OUT_MAX, L_TRAP, L_FD);
	b->at[L_FD] = b->n;
	f_arg_eq(b, 0, SB_PROC_CHAN_FD, L_ALLOW);
	b->at[L_ALLOW] = b->n;
	f_ret(b, SECCOMP_RET_ALLOW);
	b->at[L_TRAP] = b->n;
	f_ret(b, SECCOMP_RET_TRAP);
	b->at[L_KILL] = b->n;
	f_ret(b, SECCOMP_RET_KILL_PROCESS);
	for (int i = 0; i < b->n; i++) {
		if (BPF_CLASS(b->f[i].code) != BPF_JMP)
			continue;
		b->f[i].jt = b->jt[i] == L_NEXT ? 0 : (uint8_t)(b->at[b->jt[i]] - i - 1);
		b->f[i].jf = b->jf[i] == L_NEXT ? 0 : (uint8_t)(b->at[b->jf[i]] - i - 1);
	}
}

static uint8_t altstack[65536] __attribute__((aligned(64)));

/* The first message, the RAM fd and the layers' riding with it (SCM_RIGHTS). */
struct k_iovec {
	void *base;
	uint64_t len;
};
struct k_msghdr {
	void *name;
	int namelen, pad0;
	struct k_iovec *iov;
	uint64_t iovlen;
	void *control;
	uint64_t controllen;
	int flags, pad1;
};

static int recv_start(struct sb_proc_start *st, int *layer_fd, int *hot_fd)
{
	/* struct cmsghdr {u64 len; int level, type;} + up to 2 + SB_MAX_LAYERS ints */
	uint64_t ctl[2 + (2 + SB_MAX_LAYERS + 1) / 2] = { 0 };
	uint32_t hot;
	struct k_iovec iov = { st, sizeof(*st) };
	struct k_msghdr mh = { .iov = &iov, .iovlen = 1, .control = ctl, .controllen = sizeof(ctl) };
	int *c = (int *)&ctl[1];

	if (sys3(SYS_recvmsg, SB_PROC_CHAN_FD, &mh, 0) != (long)sizeof(*st))
		return -1;
	hot = (st->flags & SB_PROC_START_HOT) != 0;
	if (st->n_layers > SB_MAX_LAYERS || (st->flags & ~SB_PROC_START_HOT) ||
	    ctl[0] != 16 + sizeof(int) * (1 + st->n_layers + hot) ||
	    c[0] != SOL_SOCKET || c[1] != SCM_RIGHTS)
		return -1;
	for (uint32_t i = 0; i < st->n_layers; i++)
		layer_fd[i] = c[3 + i];
	*hot_fd = hot ? c[3 + st->n_layers] : -1;
	return c[2];
}

/* The root file system's layers, read-only, private: nothing the sandbox
 * does reaches the files, and nothing it maps later can replace them (the
 * filter traps mmap).  Their fds stay open for the overlays. */
static void map_layers(const struct sb_proc_start *st, const int *fd)
{
	for (uint32_t i = 0; i < st->n_layers; i++) {
		const struct sb_layer *l = &st->layers[i];

		if (l->gpa < SB_IMG_GPA || l->gpa % SB_PAGE_2M || l->size == 0 || l->size % 4096 ||
		    l->size > SB_IMG_MAX || l->gpa + l->size > SB_IMG_GPA + SB_IMG_MAX ||
		    sys6(SYS_mmap, (long)l->gpa, (long)l->size, PROT_READ,
			 MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd[i], 0) != (long)l->gpa)
			die(109);
	}
}

/* A clone's overlay runs (the message after the start message): pages of a
 * layer image mapped private over guest RAM, as RAM is (a write copies). */
static struct sb_proc_overlay overlays[SB_PROC_OVERLAY_MAX];

static void map_overlays(const struct sb_proc_start *st, const int *fd)
{
	uint64_t len = (uint64_t)st->n_overlays * sizeof(overlays[0]);

	if (st->n_overlays > SB_PROC_OVERLAY_MAX ||
	    sys3(SYS_read, SB_PROC_CHAN_FD, overlays, len) != (long)len)
		die(108);
	for (uint32_t i = 0; i < st->n_overlays; i++) {
		const struct sb_proc_overlay *o = &overlays[i];
		uint64_t bytes = (uint64_t)o->npages * 4096;

		if (o->layer >= st->n_layers || o->gpa < SB_PROC_RAM_BASE || o->gpa % 4096 ||
		    o->img_off % 4096 || o->npages == 0 || o->npages > st->mem_size / 4096 ||
		    o->gpa + bytes > st->mem_size || o->img_off + bytes > st->layers[o->layer].size ||
		    sys6(SYS_mmap, (long)o->gpa, (long)bytes, PROT_READ | PROT_WRITE | PROT_EXEC,
			 MAP_PRIVATE | MAP_FIXED, fd[o->layer], (long)o->img_off) != (long)o->gpa)
			die(108);
	}
}

/* A clone's CPU, and the frame rt_sigreturn takes it from. */
static struct sb_proc_cpu resume __attribute__((aligned(64)));
static struct {
	uint64_t pretcode;              /* rt_sigreturn reads the frame at rsp - 8 */
	struct k_ucontext uc;
} frame __attribute__((aligned(64)));

/* Whether user mode may write FS/GS bases (AT_HWCAP2 & HWCAP2_FSGSBASE), from
 * our auxiliary vector; read by the reset handler after the monitor has put
 * our memory back. */
static unsigned long fsgsbase;

/* The reset handler, on reset_stack (start.S: stub_on_reset).  The guest
 * does not run again before the rt_sigreturn at the end: all this reads is
 * the monitor's replies and the memory the monitor has put back meanwhile. */
__attribute__((noreturn, used)) void stub_reset(uint64_t nonce);
__attribute__((noreturn, used)) void stub_reset(uint64_t nonce)
{
	struct sb_proc_msg m = { .nr = SB_PROC_MSG_RESET, .gpa = nonce };
	struct k_stack ss = { .sp = altstack, .flags = 0, .size = sizeof(altstack) };
	struct sb_proc_reply r;

	/* our alternate signal stack back first (the guest may have moved it
	 * with a forged frame, and rt_sigreturn ignores a refusal to restore
	 * it): refused only if we run on the guest's, which ends us -- before
	 * the answer, so that the reset fails */
	if (sysm(SYS_sigaltstack, &ss, 0, 0) < 0)
		die(119);
	if (sysm(SYS_write, SB_PROC_CHAN_FD, &m, sizeof(m)) != (long)sizeof(m) ||
	    sysm(SYS_read, SB_PROC_CHAN_FD, &r, sizeof(r)) != (long)sizeof(r) || r.ret)
		die(118);
	/* no selector the guest loaded survives (a bit of state otherwise);
	 * %fs first: loading it may clear the base, which comes next */
	__asm__ volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%fs; mov %0, %%gs" : : "r"(0));
	if (sys6(SYS_arch_prctl, ARCH_SET_FS, (long)resume.fs_base, 0, (long)SB_PROC_MAGIC, 0, 0) < 0)
		die(117);
	/* where the kernel lets user mode write it (FSGSBASE), the guest may
	 * have set its GS base: a fresh process has 0 (elsewhere it cannot
	 * change, and loading a selector above gave the GDT's 0) */
	if (fsgsbase)
		__asm__ volatile("wrgsbase %0" : : "r"(0UL));
	stub_reset_return(&frame.uc, reset_stack, sizeof(reset_stack));
}

static int migrate_in; /* SB_PROC_MODE_MIGRATE */

static __attribute__((noreturn)) void resume_clone(void)
{
	struct k_sigcontext *mc = &frame.uc.mc;
	struct sb_proc_msg m = { .nr = SB_PROC_MSG_RESUMED, .gpa = (uint64_t)reset_stack };
	uint16_t cs, ss;

	__asm__ volatile("mov %%cs, %0; mov %%ss, %1" : "=r"(cs), "=r"(ss));
	frame.uc.flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	frame.uc.stack.sp = altstack;
	frame.uc.stack.size = sizeof(altstack);
	memcpy(&mc->r8, resume.gpr, sizeof(resume.gpr));
	mc->cs = cs;
	mc->ss = ss;
	mc->fpstate = (uint64_t)resume.xsave; /* 64-byte aligned, magic 1 and 2 in it */
	frame.uc.sigmask = 0;
	sysm(SYS_write, SB_PROC_CHAN_FD, &m, sizeof(m));
	if (migrate_in) {
		/* the monitor writes the migrated pages, then says go */
		struct sb_proc_reply r;
		if (sysm(SYS_read, SB_PROC_CHAN_FD, &r, sizeof(r)) != (long)sizeof(r) || r.ret)
			die(107);
	}
	stub_sigreturn(&frame.uc);
}

__attribute__((noreturn)) void stub_main(uint64_t *sp)
{
	static struct fbuild fb;
	struct sb_proc_start st;
	struct sock_fprog prog;
	struct k_stack ss = { .sp = altstack, .flags = 0, .size = sizeof(altstack) };
	int ram_fd, clone, layer_fd[SB_MAX_LAYERS], hot_fd;

	{
		/* argc, argv[], NULL, envp[], NULL, then the auxv pairs */
		uint64_t *p = sp + 1 + sp[0] + 1;
		while (*p)
			p++;
		for (p++; p[0]; p += 2)
			if (p[0] == AT_HWCAP2)
				fsgsbase = p[1] & HWCAP2_FSGSBASE;
	}
	/* Everything that does not depend on the start message, done in the
	 * shell before it (off the request path): the vDSO unmap, the
	 * handlers on their stack, the descriptors, the filter built and
	 * no_new_privs.  A fault before the RAM is mapped finds no fault page
	 * and kills us, which the monitor reports as before; SIGUSR1 only
	 * comes at a ready point; the start message's descriptors (the RAM's
	 * and one per layer) arrive after close_range (recv_start refuses any
	 * other number of them). */
	unmap_vdso();
	if (sys3(SYS_sigaltstack, &ss, 0, 0) < 0)
		die(113);
	handle(SIGSYS, on_sigsys, 0);
	handle(SIGSEGV, on_fault, 0);
	handle(SIGBUS, on_fault, 0);
	handle(SIGFPE, on_fault, 0);
	handle(SIGILL, on_fault, 0);
	handle(SIGTRAP, on_fault, 0);
	handle(SIGUSR1, on_save, SA_RESTART);
	handle(SIGUSR2, (void *)stub_on_reset, 0);
	handle(SB_PROC_SIG_PAUSE, on_pause, SA_RESTART);
	handle(SB_PROC_SIG_RESUME, on_resume, SA_RESTART);
	if (sys3(SYS_close_range, 0, SB_PROC_CHAN_FD - 1, 0) < 0 ||
	    sys3(SYS_close_range, SB_PROC_CHAN_FD + 1, ~0U, 0) < 0)
		die(114);
	build_filter(&fb);
	prog.len = (unsigned short)fb.n;
	prog.filter = fb.f;
	if (sys6(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) < 0)
		die(115);
	ram_fd = recv_start(&st, layer_fd, &hot_fd);
	if (ram_fd < 0 || st.magic != SB_PROC_MAGIC || st.mem_size <= SB_PROC_RAM_BASE ||
	    st.mem_size > SB_MAX_MEM ||
	    (st.mode != SB_PROC_MODE_BOOT && st.mode != SB_PROC_MODE_CLONE &&
	     st.mode != SB_PROC_MODE_MIGRATE))
		die(110);
	clone = st.mode != SB_PROC_MODE_BOOT;
	migrate_in = st.mode == SB_PROC_MODE_MIGRATE;
	if (sys6(SYS_mmap, SB_PROC_RAM_BASE, (long)(st.mem_size - SB_PROC_RAM_BASE),
		 PROT_READ | PROT_WRITE | PROT_EXEC,
		 (clone ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED_NOREPLACE, ram_fd,
		 SB_PROC_RAM_BASE) != (long)SB_PROC_RAM_BASE)
		die(111);
	sys3(SYS_close, ram_fd, 0, 0);
	map_layers(&st, layer_fd);
	if (clone && st.n_overlays)
		map_overlays(&st, layer_fd);
	for (uint32_t i = 0; i < st.n_layers; i++)
		sys3(SYS_close, layer_fd[i], 0, 0);
	/* memory hotplug (ABI 5): the monitor's memfd over the whole hot
	 * window, shared; what lies beyond its size (ftruncate, by the monitor
	 * only: we keep no descriptor) is SIGBUS, so the guest never widens it */
	if (hot_fd >= 0) {
		if (sys6(SYS_mmap, (long)SB_HOT_GPA, (long)SB_HOT_MAX, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, hot_fd, 0) != (long)SB_HOT_GPA)
			die(124);
		sys3(SYS_close, hot_fd, 0, 0);
	}
	if (st.ro_lo < st.ro_hi &&
	    sys3(SYS_mprotect, st.ro_lo, st.ro_hi - st.ro_lo, PROT_READ) < 0)
		die(112);
	if (clone) {
		if (read_full(SB_PROC_CHAN_FD, &resume, sizeof(resume)) < 0)
			die(116);
		if (sys3(SYS_arch_prctl, ARCH_SET_FS, resume.fs_base, 0) < 0)
			die(117);
	}
	/* last: the filter traps recvmsg, mmap, mprotect, close and a read
	 * of any other size than a reply's, so it cannot go before the above */
	if (sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		die(115);
	if (clone)
		resume_clone();
	stub_enter_guest(st.entry, st.arg);
}
