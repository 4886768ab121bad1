/* SPDX-License-Identifier: MIT */
/* The kernel's way out: hypercalls under snapbox, COM1 + isa-debug-exit
 * under QEMU. */
#include "kernel.h"

/* proc backend: one message on the channel (a full socket blocks us) */
static void proc_send(const void *msg, uint64_t len)
{
	if (proc_syscall(1 /* write */, SB_PROC_CHAN_FD, (uint64_t)msg, len) != (int64_t)len)
		kstop(); /* the monitor is gone or ended us */
}

/* proc backend: a message on the channel, then wait for the answer; the
 * last word (EXIT, FAULT, PANIC) gets none: the caller kstop()s */
static void proc_hypercall(int nr, void *arg)
{
	struct sb_proc_msg m = { .nr = (uint32_t)nr, .gpa = (uint64_t)arg };
	struct sb_proc_reply r;

	proc_send(&m, sizeof(m));
	if (nr == SB_HC_EXIT || nr == SB_HC_FAULT || nr == SB_HC_PANIC)
		return;
	if (proc_syscall(0 /* read */, SB_PROC_CHAN_FD, (uint64_t)&r, sizeof(r)) != sizeof(r))
		kstop();
}

/*
 * proc backend, ABI 4: stdout/stderr one way, inline (struct sb_proc_out +
 * the bytes, at most SB_PROC_OUT_MAX per message): the bytes are in the
 * socket when this returns, nobody answers.  The staging buffer is page
 * aligned so that a short write dirties one page.
 */
static struct {
	struct sb_proc_out h;
	uint8_t b[SB_PROC_OUT_MAX];
} outmsg __attribute__((aligned(4096)));

static void proc_out_send(int fd, uint64_t n)
{
	outmsg.h = (struct sb_proc_out){ .nr = SB_HC_OUTPUT, .fd = (uint32_t)fd, .len = n };
	proc_send(&outmsg, sizeof(outmsg.h) + n);
}

int64_t proc_output(int fd, const struct sb_iovec *iov, uint64_t cnt)
{
	uint64_t used = 0, total = 0;

	for (uint64_t i = 0; i < cnt; i++) {
		const uint8_t *p = (const uint8_t *)iov[i].base;
		uint64_t left = iov[i].len;

		while (left) {
			uint64_t k = SB_PROC_OUT_MAX - used;
			if (k > left)
				k = left;
			memcpy(outmsg.b + used, p, k);
			used += k;
			p += k;
			left -= k;
			total += k;
			if (used == SB_PROC_OUT_MAX) {
				proc_out_send(fd, used);
				used = 0;
			}
		}
	}
	if (used)
		proc_out_send(fd, used);
	/* Our write woke the monitor, but as a "sync" wakeup: on a shared CPU
	 * it would wait until we block (at the latest at EXIT), after all the
	 * program still does.  Hand it the CPU once, so the output goes out
	 * first.  (Inside a jail's cpu cgroup the scheduler does not yield
	 * across groups, and then this changes nothing.) */
	proc_syscall(24 /* sched_yield */, 0, 0, 0);
	return (int64_t)total;
}

void hypercall(int nr, void *arg)
{
	if (k_proc())
		proc_hypercall(nr, arg);
	else if (K.mmio)
		*(volatile uint64_t *)SB_HC_MMIO(K.mmio, nr) = (uint64_t)arg;
	else
		outl(SB_HC_PORT(nr), (uint32_t)(uint64_t)arg);
}

/* After a final hypercall the host does not resume us.  (No `hlt`: this
 * code may run in user mode.)  proc: wait in a read of the channel, not
 * spinning, until the monitor ends the sandbox (or recycles it with a
 * signal); EOF or an error means it is gone. */
void kstop(void)
{
	if (k_proc()) {
		struct sb_proc_reply r;

		while (proc_syscall(0 /* read */, SB_PROC_CHAN_FD, (uint64_t)&r, sizeof(r)) > 0)
			;
		proc_syscall(231 /* exit_group */, 125, 0, 0);
	}
	for (;;)
		__asm__ volatile("pause");
}

static void serial_write(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++) {
		while (!(inb(SB_COM1_PORT + 5) & 0x20))
			;
		if (p[i] == '\n')
			outb(SB_COM1_PORT, '\r');
		outb(SB_COM1_PORT, p[i]);
	}
}

void console_write(int fd, const void *buf, uint64_t len)
{
	if (K.snapbox) {
		struct sb_iovec iov = { (uint64_t)buf, len };
		struct sb_hc_io io = { .fd = fd, .iovcnt = 1, .iov_gpa = (uint64_t)&iov };
		if (k_proc())
			proc_output(fd, &iov, 1);
		else
			hypercall(SB_HC_WRITE, &io);
		return;
	}
	serial_write(buf, len);
}

void kputs(const char *s)
{
	console_write(2, s, strlen(s));
}

void kexit(int status)
{
	if (K.snapbox) {
		struct sb_hc_exit e = { .status = status };
		hypercall(SB_HC_EXIT, &e);
	} else {
		outl(SB_DEBUG_EXIT_PORT, (uint32_t)status & 0xff);
	}
	kstop();
}

void kpanic(uint32_t code, const char *msg, const char *detail)
{
	char buf[512];
	size_t n = 0;
	for (const char *s = msg; *s && n < 250; s++)
		buf[n++] = *s;
	for (const char *s = detail; s && *s && n < 500; s++)
		buf[n++] = *s;
	if (K.snapbox) {
		struct sb_hc_panic p = { .msg_gpa = (uint64_t)buf, .msg_len = n, .code = code };
		hypercall(SB_HC_PANIC, &p);
		kstop();
	}
	serial_write((const uint8_t *)"snapbox kernel: ", 16);
	serial_write((const uint8_t *)buf, n);
	serial_write((const uint8_t *)"\n", 1);
	kexit(125);
}

void kfault(uint64_t vector, uint64_t err, uint64_t rip, uint64_t rsp, uint64_t cr2,
	    uint32_t signal)
{
	if (K.snapbox) {
		struct sb_hc_fault f = { .vector = vector, .error_code = err, .rip = rip,
					 .rsp = rsp, .cr2 = cr2, .signal = signal };
		hypercall(SB_HC_FAULT, &f);
		kstop();
	}
	char buf[96];
	size_t n = 0;
	const char *m = "fault: vector ";
	while (*m)
		buf[n++] = *m++;
	n += kfmt_dec(buf + n, (int64_t)vector);
	buf[n++] = ' ';
	n += kfmt_hex(buf + n, rip);
	buf[n++] = '\n';
	serial_write((const uint8_t *)buf, n);
	kexit(128 + signal);
}

/*
 * CLOCK_REALTIME and CLOCK_MONOTONIC between host readings, by the TSC.  A
 * host reading (SB_HC_CLOCK: a VM exit, or a round trip on the proc
 * channel) anchors a clock; for CLK_WINDOW_NS after it the clock is the
 * anchor plus the TSC ticks since, scaled.  The scale is measured from the
 * host's own monotonic readings over a growing baseline (CLK_CAL_MIN_NS to
 * ~4 s; until then every read asks the host), and kept only while the next
 * anchor agrees with it.  CPython 3.11 reads the monotonic clock on every
 * lock acquisition (its import locks: hundreds at start, ~20 per request).
 * The TSC of a clone need not continue the template's (kvm restores the
 * template's; another host has another): kclock_rebase() drops the anchors
 * and the baseline after every stdin call, where clones start; a migrated
 * machine resumes anywhere, so the host bumps SB_CLOCK_EPOCH_GPA and the
 * next read drops the anchors and the scale too.  The TSC's
 * errors never make a clock go back between two reads.
 */
#define CLK_WINDOW_NS 10000000LL    /* a host reading at least every 10 ms */
#define CLK_CAL_MIN_NS 50000000LL   /* a scale from >= 50 ms of baseline */
#define CLK_CAL_MAX_NS 4000000000LL /* baselines < 2^32 ns (32.32 scale) */

static struct {
	uint64_t scale;             /* ns per tick, 32.32; 0: unknown */
	uint64_t window;            /* CLK_WINDOW_NS in ticks */
	uint64_t cal_tsc;           /* the calibration baseline's start */
	int64_t cal_ns;
	uint8_t cal_valid, valid[2];
	uint64_t tsc[2];            /* anchors: realtime, monotonic */
	int64_t ns[2], last[2];
	uint32_t epoch;             /* SB_CLOCK_EPOCH_GPA as last seen */
} clk;

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

void kclock_rebase(void)
{
	clk.valid[0] = clk.valid[1] = 0;
	clk.cal_valid = 0;
	clk.last[0] = clk.last[1] = 0;
}

static uint64_t ticks_to_ns(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * clk.scale) >> 32);
}

/* A host monotonic reading at TSC t: refine the scale over the baseline. */
static void clk_calibrate(uint64_t t, int64_t ns)
{
	int64_t dn = ns - clk.cal_ns;
	uint64_t scale;

	if (!clk.cal_valid || t <= clk.cal_tsc || dn <= 0 || dn >= CLK_CAL_MAX_NS) {
		clk.cal_tsc = t;
		clk.cal_ns = ns;
		clk.cal_valid = 1;
		return;
	}
	if (dn < CLK_CAL_MIN_NS)
		return;
	scale = ((uint64_t)dn << 32) / (t - clk.cal_tsc);
	/* a TSC of 100 MHz .. 20 GHz */
	if (scale < (1ULL << 32) / 20 || scale > (10ULL << 32)) {
		clk.scale = 0;
		clk.cal_valid = 0;
		return;
	}
	clk.scale = scale;
	clk.window = ((uint64_t)CLK_WINDOW_NS << 32) / scale;
}

static int64_t host_clock(uint32_t clockid, int64_t *ns, uint64_t *t)
{
	struct sb_hc_clock c = { .clockid = clockid };
	uint64_t t0 = rdtsc(), t1;
	hypercall(SB_HC_CLOCK, &c);
	t1 = rdtsc();
	*t = t0 + (t1 - t0) / 2; /* the host read its clock in between */
	*ns = c.sec * 1000000000LL + c.nsec;
	return c.ret;
}

static int64_t fast_clock(uint32_t id, int64_t *sec, int64_t *nsec)
{
	uint32_t epoch = *(const volatile uint32_t *)SB_CLOCK_EPOCH_GPA;
	uint64_t t;
	int64_t ns;

	if (epoch != clk.epoch) {
		/* the machine moved (live migration): the TSC now is another
		 * machine's, maybe of another speed and anywhere relative to
		 * the anchors (within their window it would pass as time
		 * since them: a stall, then a jump).  Ask the host, measure
		 * the scale again; last[] stays: no small step back. */
		clk.epoch = epoch;
		clk.valid[0] = clk.valid[1] = 0;
		clk.cal_valid = 0;
		clk.scale = 0;
	}
	t = rdtsc();

	if (clk.scale && clk.valid[id] && t >= clk.tsc[id] && t - clk.tsc[id] < clk.window) {
		ns = clk.ns[id] + (int64_t)ticks_to_ns(t - clk.tsc[id]);
	} else {
		int64_t r = host_clock(id, &ns, &t);
		if (r)
			return r;
		if (clk.scale && clk.valid[id] && t >= clk.tsc[id]) {
			/* does the scale still hold?  (1 ms of error per window: another
			 * machine, or a TSC that changed speed) */
			int64_t want = clk.ns[id] + (int64_t)ticks_to_ns(t - clk.tsc[id]), d = want - ns;
			if (d > 1000000 || d < -1000000)
				clk.scale = 0, clk.cal_valid = 0;
		}
		if (id == 1)
			clk_calibrate(t, ns);
		clk.tsc[id] = t;
		clk.ns[id] = ns;
		clk.valid[id] = 1;
	}
	/* the TSC's small errors never show as time going back; a big step back
	 * (the host's clock itself: the sandbox moved) is passed on, not
	 * waited out */
	if (ns < clk.last[id] && clk.last[id] - ns < 2 * CLK_WINDOW_NS)
		ns = clk.last[id];
	clk.last[id] = ns;
	*sec = ns / 1000000000LL;
	*nsec = ns % 1000000000LL;
	return 0;
}

int64_t kclock(uint32_t clockid, int64_t *sec, int64_t *nsec)
{
	if (K.snapbox) {
		if (clockid <= 1) /* CLOCK_REALTIME, CLOCK_MONOTONIC */
			return fast_clock(clockid, sec, nsec);
		struct sb_hc_clock c = { .clockid = clockid };
		hypercall(SB_HC_CLOCK, &c);
		*sec = c.sec;
		*nsec = c.nsec;
		return c.ret;
	}
	/* QEMU path: TSC at an assumed 1 GHz; good enough to benchmark. */
	uint64_t t = rdtsc();
	*sec = t / 1000000000ULL;
	*nsec = t % 1000000000ULL;
	return 0;
}
