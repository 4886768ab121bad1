/* SPDX-License-Identifier: MIT */
/* The Linux system call table of the guest.  File system calls live in
 * fs.c, memory calls in mm.c; this file has the rest and the dispatch. */
#include "kernel.h"

#define UNKNOWN_SYSCALL_LIMIT 10000

struct kernel K; /* here, in the user-accessible syscall layer */

struct k_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static struct k_sigaction sigactions[65];
static uint64_t sigmask;
static uint64_t fs_base_shadow;

static int64_t sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t old, uint64_t size)
{
	if (sig < 1 || sig > 64 || size != 8)
		return -EINVAL;
	if ((sig == 9 || sig == 19) && act) /* SIGKILL, SIGSTOP: a query is fine (SIG_DFL) */
		return -EINVAL;
	if (old) {
		if (!user_ok(old, sizeof(struct k_sigaction)))
			return -EFAULT;
		memcpy((void *)old, &sigactions[sig], sizeof(struct k_sigaction));
	}
	if (act) {
		if (!user_ok(act, sizeof(struct k_sigaction)))
			return -EFAULT;
		memcpy(&sigactions[sig], (void *)act, sizeof(struct k_sigaction));
	}
	return 0;
}

static int64_t sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t old, uint64_t size)
{
	if (size != 8)
		return -EINVAL;
	if (old) {
		if (!user_ok(old, 8))
			return -EFAULT;
		*(uint64_t *)old = sigmask;
	}
	if (set) {
		if (!user_ok(set, 8))
			return -EFAULT;
		uint64_t s = *(uint64_t *)set;
		if (how == 0)
			sigmask |= s;
		else if (how == 1)
			sigmask &= ~s;
		else if (how == 2)
			sigmask = s;
		else
			return -EINVAL;
	}
	return 0;
}

/* wrmsr needs kernel mode; in user mode the host sets the base */
static int64_t set_base(uint64_t which, uint64_t addr)
{
	if (k_proc()) /* the host's filter lets ARCH_SET_FS through, nothing else */
		return which ? -EINVAL : proc_syscall(158 /* arch_prctl */, 0x1002, addr, 0);
	if (cpu_user_mode()) {
		struct sb_hc_set_base b = { .which = which, .base = addr };
		hypercall(SB_HC_SET_FS, &b);
		return b.ret;
	}
	wrmsr(which ? 0xc0000101 : 0xc0000100, addr);
	return 0;
}

static int64_t sys_arch_prctl(uint64_t code, uint64_t addr)
{
	int64_t r;
	switch (code) {
	case 0x1002: /* ARCH_SET_FS */
		if (addr >= (1ULL << 47))
			return -EPERM;
		r = set_base(0, addr);
		if (!r)
			fs_base_shadow = addr;
		return r;
	case 0x1003: /* ARCH_GET_FS */
		if (!user_ok(addr, 8))
			return -EFAULT;
		*(uint64_t *)addr = fs_base_shadow;
		return 0;
	case 0x1001: /* ARCH_SET_GS */
		if (addr >= (1ULL << 47))
			return -EPERM;
		return set_base(1, addr);
	}
	return -EINVAL;
}

static void put_field(char *dst, const char *s)
{
	size_t i = 0;
	for (; s[i] && i < 64; i++)
		dst[i] = s[i];
	dst[i] = 0;
}

static int64_t sys_uname(uint64_t buf)
{
	if (!user_ok(buf, 6 * 65))
		return -EFAULT;
	char *u = (char *)buf;
	memset(u, 0, 6 * 65);
	put_field(u + 0 * 65, "Linux");
	put_field(u + 1 * 65, "snapbox");
	put_field(u + 2 * 65, "6.1.0-snapbox");
	put_field(u + 3 * 65, "#1 snapbox");
	put_field(u + 4 * 65, "x86_64");
	put_field(u + 5 * 65, "(none)");
	return 0;
}

static int64_t sys_clock_gettime(uint64_t clk, uint64_t ts)
{
	int64_t sec, nsec, r;
	if (!user_ok(ts, 16))
		return -EFAULT;
	r = kclock((uint32_t)clk, &sec, &nsec);
	if (r)
		return r;
	((int64_t *)ts)[0] = sec;
	((int64_t *)ts)[1] = nsec;
	return 0;
}

static int64_t sys_gettimeofday(uint64_t tv)
{
	int64_t sec, nsec;
	if (!tv)
		return 0;
	if (!user_ok(tv, 16))
		return -EFAULT;
	kclock(0, &sec, &nsec);
	((int64_t *)tv)[0] = sec;
	((int64_t *)tv)[1] = nsec / 1000;
	return 0;
}

static int64_t sys_time(uint64_t t)
{
	int64_t sec, nsec;
	kclock(0, &sec, &nsec);
	if (t) {
		if (!user_ok(t, 8))
			return -EFAULT;
		*(int64_t *)t = sec;
	}
	return sec;
}

static int64_t sleep_ns(uint64_t ns)
{
	if (!K.snapbox)
		return 0;
	struct sb_hc_sleep s = { .nsec = ns };
	hypercall(SB_HC_SLEEP, &s);
	return s.ret;
}

static int64_t sys_nanosleep(uint64_t req)
{
	if (!user_ok(req, 16))
		return -EFAULT;
	int64_t sec = ((int64_t *)req)[0], nsec = ((int64_t *)req)[1];
	if (sec < 0 || nsec < 0 || nsec >= 1000000000)
		return -EINVAL;
	return sleep_ns((uint64_t)sec * 1000000000ULL + (uint64_t)nsec);
}

static int64_t sys_clock_nanosleep(uint64_t clk, uint64_t flags, uint64_t req)
{
	if (flags & 1) { /* TIMER_ABSTIME */
		int64_t sec, nsec, ts, tn;
		if (!user_ok(req, 16))
			return -EFAULT;
		kclock((uint32_t)clk, &sec, &nsec);
		ts = ((int64_t *)req)[0];
		tn = ((int64_t *)req)[1];
		int64_t d = (ts - sec) * 1000000000LL + (tn - nsec);
		return d > 0 ? sleep_ns((uint64_t)d) : 0;
	}
	return sys_nanosleep(req);
}

static int64_t sys_getrandom(uint64_t buf, uint64_t len)
{
	if (len > 33554431)
		len = 33554431;
	if (!user_ok(buf, len))
		return -EFAULT;
	krandom((void *)buf, len);
	return (int64_t)len;
}

static int64_t sys_prlimit(uint64_t pid, uint64_t res, uint64_t newp, uint64_t old)
{
	(void)newp;
	if (pid != 0 && pid != 1)
		return -ESRCH;
	if (old) {
		uint64_t cur = ~0ULL;
		if (!user_ok(old, 16))
			return -EFAULT;
		if (res == 3) /* RLIMIT_STACK */
			cur = 8ULL << 20;
		else if (res == 7) /* RLIMIT_NOFILE */
			cur = 64;
		((uint64_t *)old)[0] = cur;
		((uint64_t *)old)[1] = cur;
	}
	return 0;
}

/*
 * One thread: a futex wait can only end by its timeout, so it sleeps that
 * long (SB_HC_SLEEP) and says ETIMEDOUT (Python's lock.acquire(timeout=1)
 * takes its second).  FUTEX_WAIT's timeout is relative; FUTEX_WAIT_BITSET's
 * an absolute time on CLOCK_MONOTONIC, or CLOCK_REALTIME with
 * FUTEX_CLOCK_REALTIME.  Without a timeout nothing could ever wake it.
 */
static int64_t futex_sleep(uint64_t op, uint64_t timeout)
{
	int64_t sec, nsec, d;
	if (!user_ok(timeout, 16))
		return -EFAULT;
	sec = ((const int64_t *)timeout)[0];
	nsec = ((const int64_t *)timeout)[1];
	if (sec < 0 || nsec < 0 || nsec >= 1000000000)
		return -EINVAL;
	if ((op & 0x7f) == 9) {
		int64_t now_s, now_ns;
		kclock(op & 256 ? 0 : 1, &now_s, &now_ns);
		if (sec < now_s || (sec == now_s && nsec <= now_ns))
			return -ETIMEDOUT;
		sec -= now_s;
		nsec -= now_ns;
		if (nsec < 0) {
			nsec += 1000000000;
			sec--;
		}
	}
	if (sec > (1LL << 32)) /* ~136 years: never, in practice */
		sec = 1LL << 32;
	d = sec * 1000000000LL + nsec;
	if (d > 0)
		sleep_ns((uint64_t)d);
	return -ETIMEDOUT;
}

static int64_t sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t timeout)
{
	switch (op & 0x7f) {
	case 0: /* FUTEX_WAIT */
	case 9: /* FUTEX_WAIT_BITSET */
		if (!user_ok(uaddr, 4))
			return -EFAULT;
		if (*(volatile uint32_t *)uaddr != (uint32_t)val)
			return -EAGAIN;
		if (timeout)
			return futex_sleep(op, timeout);
		kpanic(SB_PANIC_KERNEL, "deadlock: the program waits on a futex "
			"and it has no other thread to wake it", 0);
	case 1: /* FUTEX_WAKE */
	case 10:
		return 0;
	}
	return -ENOSYS;
}

static int64_t sys_kill(uint64_t pid, uint64_t sig)
{
	if (pid != 1 && pid != 0 && (int64_t)pid != -1)
		return -ESRCH;
	if (sig == 0)
		return 0;
	if (sig > 64)
		return -EINVAL;
	kfault(256, 0, 0, 0, 0, (uint32_t)sig);
}

static int64_t sys_sysinfo(uint64_t p)
{
	if (!user_ok(p, 112))
		return -EFAULT;
	memset((void *)p, 0, 112);
	uint64_t *q = (uint64_t *)p;
	q[4] = K.mem_size;          /* totalram (after uptime + 3 loads) */
	q[5] = mm_free_bytes();     /* freeram: what mmap and brk can still have */
	*(uint16_t *)(p + 80) = 1;  /* procs */
	*(uint32_t *)(p + 104) = 1; /* mem_unit */
	return 0;
}

static void trace(const struct sc_frame *f, int64_t ret)
{
	struct sb_hc_trace t = { .nr = f->nr, .ret = ret };
	for (int i = 0; i < 6; i++)
		t.args[i] = f->a[i];
	if (K.snapbox)
		hypercall(SB_HC_TRACE, &t);
}

static int64_t unknown_syscall(uint64_t nr)
{
	if (++K.unknown_syscalls >= UNKNOWN_SYSCALL_LIMIT) {
		char d[32];
		size_t n = kfmt_dec(d, (int64_t)nr);
		d[n++] = ')';
		d[n] = 0;
		kpanic(SB_PANIC_SYSCALLS, "guest program made 10000 unsupported system calls; "
			"stopped it (last: syscall ", d);
	}
	return -ENOSYS;
}

/* inlined into both dispatchers: the common path makes no extra call */
static inline __attribute__((always_inline)) int64_t do_syscall(const struct sc_frame *f)
{
	const uint64_t *a = f->a;
	int handled = 1;
	int64_t r = fs_syscall(f->nr, a, &handled);
	if (handled)
		return r;

	switch (f->nr) {
	case 9: return sys_mmap(a[0], a[1], a[2], a[3], (int64_t)a[4], a[5]);
	case 10: return 0; /* mprotect: one RWX map */
	case 11: return sys_munmap(a[0], a[1]);
	case 12: return sys_brk(a[0]);
	case 13: return sys_rt_sigaction(a[0], a[1], a[2], a[3]);
	case 14: return sys_rt_sigprocmask(a[0], a[1], a[2], a[3]);
	case 24: return 0; /* sched_yield */
	case 25: return sys_mremap(a[0], a[1], a[2], a[3], a[4]);
	case 28: return sys_madvise(a[0], a[1], a[2]);
	case 35: return sys_nanosleep(a[0]);
	case 39: case 186: return 1; /* getpid, gettid */
	case 60: case 231: kexit((int)a[0]);
	case 62: return sys_kill(a[0], a[1]);
	case 63: return sys_uname(a[0]);
	case 95: return 022; /* umask */
	case 96: return sys_gettimeofday(a[0]);
	case 97: return sys_prlimit(0, a[0], 0, a[1]);
	case 98: /* getrusage */
		if (!user_ok(a[1], 144))
			return -EFAULT;
		memset((void *)a[1], 0, 144);
		return 0;
	case 99: return sys_sysinfo(a[0]);
	case 102: case 104: case 107: case 108: return 0; /* root */
	case 110: return 0; /* getppid */
	case 131: return 0; /* sigaltstack */
	case 158: return sys_arch_prctl(a[0], a[1]);
	case 160: return 0; /* setrlimit */
	case 200: return sys_kill(a[0], a[1]);
	case 201: return sys_time(a[0]);
	case 202: return sys_futex(a[0], a[1], a[2], a[3]);
	case 204: /* sched_getaffinity: one CPU */
		if (a[1] < 8 || !user_ok(a[2], 8))
			return -EINVAL;
		*(uint64_t *)a[2] = 1;
		return 8;
	case 218: return 1; /* set_tid_address */
	case 228: return sys_clock_gettime(a[0], a[1]);
	case 229: /* clock_getres */
		if (a[1]) {
			if (!user_ok(a[1], 16))
				return -EFAULT;
			((int64_t *)a[1])[0] = 0;
			((int64_t *)a[1])[1] = 1;
		}
		return 0;
	case 230: return sys_clock_nanosleep(a[0], a[1], a[2]);
	case 234: return sys_kill(a[1], a[2]);
	case 273: return 0; /* set_robust_list */
	case 302: return sys_prlimit(a[0], a[1], a[2], a[3]);
	case 334: return -ENOSYS; /* rseq: glibc does without; not an unknown call */
	case 318: return sys_getrandom(a[0], a[1]);
	}
	return unknown_syscall(f->nr);
}

/*
 * Which path brought this system call here, observed rather than assumed
 * from the boot flags: in user mode, the user-mode layer; in kernel mode,
 * the #UD handler, whose exception frame says whether the `ud2` ran in
 * kernel mode (`syscall` switched to CPL0: VMX/SVM) or in user mode
 * (kvm_pvm).  Nothing else calls the dispatcher in kernel mode.
 */
static void report_syscall_path(const struct sc_frame *f)
{
	const struct sc_ud_frame *u = (const struct sc_ud_frame *)f;
	struct sb_hc_syscall_path p = { .path = SB_SYSCALL_PATH_USER };

	if (!cpu_user_mode()) {
		if ((uint64_t)(u + 1) != (uint64_t)ist_stack_top || u->rip != SB_TRAMPOLINE_GPA)
			kpanic(SB_PANIC_KERNEL, "system call in kernel mode not from the #UD trampoline", 0);
		p.path = (u->cs & 3) ? SB_SYSCALL_PATH_UD_USER : SB_SYSCALL_PATH_UD_KERNEL;
	}
	hypercall(SB_HC_SYSCALL_PATH, &p);
}

static __attribute__((noinline)) int64_t syscall_dispatch_slow(struct sc_frame *f)
{
	if (K.sc_slow & SC_SLOW_REPORT_PATH) {
		K.sc_slow &= ~SC_SLOW_REPORT_PATH;
		report_syscall_path(f);
	}
	int64_t r = do_syscall(f);
	if (K.sc_slow & SC_SLOW_TRACE)
		trace(f, r);
	return r;
}

int64_t syscall_dispatch(struct sc_frame *f)
{
	if (__builtin_expect(K.sc_slow != 0, 0))
		return syscall_dispatch_slow(f);
	return do_syscall(f);
}
