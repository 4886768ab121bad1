/* SPDX-License-Identifier: MIT */
/*
 * Recycling a proc sandbox: put the sandbox process back to the moment its
 * clone resumed, so that it serves the next request of the same template as
 * a fresh clone would, without a new process, filter, mapping or jail.
 *
 * What is writable in the sandbox process: guest RAM (the template's
 * mem.img mapped private, at the guest's addresses) and the stub's .bss
 * (the stub unmaps the kernel's [stack] and runs on a stack in its .bss;
 * the guest can map, unmap or reprotect nothing: the filter traps it).
 * What the kernel keeps for it that the guest can change: registers, FS
 * base, segment selectors, signal mask and alternate stack.  A reset:
 *   1. queues SIGUSR2 with a fresh 64-bit nonce; the stub's handler (whose
 *      address the guest cannot change) moves to its own reset stack and
 *      answers RESET(nonce) -- only it can know the nonce -- then waits.
 *      A guest that blocks the signal or floods the channel fails the
 *      reset, and a failed reset ends the machine;
 *   2. while the handler waits (the guest runs no more), finds the pages
 *      of guest RAM the sandbox wrote (memory/written.c: now anonymous
 *      copies) and copies the template's content back into them
 *      (process_vm_writev); pages only read stay mapped;
 *   3. the same for the stub's pages, from the image taken when the clone
 *      resumed, all but the reset stack, which the handler clears itself;
 *   4. replies; the handler sets the template's FS base, zero selectors,
 *      clears its stack and rt_sigreturns into the template's frame (the
 *      template's registers, XSAVE state, signal mask and alternate
 *      stack): the guest is back in its ready-point read, waiting for the
 *      next request.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/proc/proc.h"
#include "snapshot/snapshot.h"

#define PAGE 4096ULL
#define RESET_WAIT_MS 5000   /* for the handler's answer (a loaded host can be slow) */
#define RESET_JUNK_MAX 1024  /* messages the guest left on its channel */
#define IOVN 1024            /* UIO_MAXIOV */

static const uint8_t zero_page[PAGE] __attribute__((aligned(4096)));

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- copying pages into the sandbox, in batches ----------------------------- */

struct wbatch {
	pid_t pid;
	struct iovec l[IOVN], r[IOVN];
	int nl, nr;
	size_t bytes;
	uint64_t pages;
};

static int wbatch__flush(struct wbatch *b, struct sb_err *err)
{
	ssize_t n;

	if (!b->bytes)
		return 0;
	n = process_vm_writev(b->pid, b->l, (unsigned long)b->nl, b->r, (unsigned long)b->nr, 0);
	if (n != (ssize_t)b->bytes)
		return err__set(err, n < 0 ? -errno : -EIO, "putting a sandbox's pages back "
				"(process_vm_writev): %s", n < 0 ? strerror(errno) : "short write");
	b->nl = b->nr = 0;
	b->bytes = 0;
	return 0;
}

/* One page: src (in our memory) to dst (in the sandbox). */
static int wbatch__add(struct wbatch *b, const void *src, uint64_t dst, struct sb_err *err)
{
	int ret;

	if ((b->nl == IOVN || b->nr == IOVN) && (ret = wbatch__flush(b, err)) < 0)
		return ret;
	if (b->nl && (const uint8_t *)b->l[b->nl - 1].iov_base + b->l[b->nl - 1].iov_len == src)
		b->l[b->nl - 1].iov_len += PAGE;
	else
		b->l[b->nl++] = (struct iovec){ (void *)src, PAGE };
	if (b->nr && (uint64_t)(uintptr_t)b->r[b->nr - 1].iov_base + b->r[b->nr - 1].iov_len == dst)
		b->r[b->nr - 1].iov_len += PAGE;
	else
		b->r[b->nr++] = (struct iovec){ (void *)(uintptr_t)dst, PAGE };
	b->bytes += PAGE;
	b->pages++;
	return 0;
}

/* ---- at clone time ------------------------------------------------------------ */

/* The stub's writable mappings: everything writable outside guest RAM. */
static int prepare__regions(struct proc_machine *pm, struct sb_err *err)
{
	char path[64], line[512];
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pm->pid);
	f = fopen(path, "re");
	if (!f)
		return err__errno(err, "open %s", path);
	while (ret == 0 && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, off, ino;
		char perms[8], dev[16], name[256] = "";

		if (sscanf(line, "%llx-%llx %7s %llx %15s %llu %255s", &lo, &hi, perms, &off, dev,
			   &ino, name) < 6) {
			ret = err__set(err, -EIO, "%s: a line we cannot read", path);
			break;
		}
		if (perms[1] != 'w')
			continue;
		if (lo >= SB_PROC_RAM_BASE && hi <= pm->m.ram.size)
			continue; /* guest RAM */
		if (ino || name[0] || pm->n_stub == PROC_STUB_REGIONS)
			ret = err__set(err, -ENOTSUP, "the sandbox has a writable mapping a reset "
				       "cannot restore (%llx-%llx %s %s)", lo, hi, perms, name);
		else
			pm->stub[pm->n_stub++] = (struct proc_stub_region){ lo, hi, NULL };
	}
	fclose(f);
	return ret;
}

/* Each stub region's content now: zero but for the pages it wrote. */
static int prepare__images(struct proc_machine *pm, struct sb_err *err)
{
	for (unsigned i = 0; i < pm->n_stub; i++) {
		struct proc_stub_region *s = &pm->stub[i];
		int ret;

		s->image = calloc(1, s->hi - s->lo);
		if (!s->image)
			return err__set(err, -ENOMEM, "out of memory");
		ret = written__scan(&pm->ws, s->lo, s->hi, err);
		for (size_t k = 0; ret == 0 && k < pm->ws.n; k++) {
			struct iovec l = { s->image + (pm->ws.r[k].start - s->lo),
					   pm->ws.r[k].end - pm->ws.r[k].start };
			struct iovec r = { (void *)(uintptr_t)pm->ws.r[k].start, l.iov_len };

			if (process_vm_readv(pm->pid, &l, 1, &r, 1, 0) != (ssize_t)l.iov_len)
				ret = err__errno(err, "reading the sandbox stub's memory");
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

int proc__recycle_prepare(struct proc_machine *pm, const struct snapshot *snap,
			  uint64_t reset_stack, struct sb_err *err)
{
	int ret;

	proc__recycle_release(pm);
	if (reset_stack % PAGE || reset_stack < SB_PROC_STUB_BASE)
		return err__set(err, -EPROTO, "the sandbox stub gave no usable reset stack");
	pm->reset_stack = reset_stack;
	ret = written__open(&pm->ws, pm->pid, err);
	if (ret == 0)
		ret = snap_pristine__open(&pm->pristine, snap, err);
	if (ret == 0)
		ret = prepare__regions(pm, err);
	if (ret == 0)
		ret = prepare__images(pm, err);
	if (ret < 0)
		proc__recycle_release(pm);
	return ret;
}

void proc__recycle_release(struct proc_machine *pm)
{
	if (pm->ws.fd > 0)
		written__close(&pm->ws);
	pm->ws.fd = -1;
	snap_pristine__close(&pm->pristine);
	for (unsigned i = 0; i < pm->n_stub; i++)
		free(pm->stub[i].image);
	memset(pm->stub, 0, sizeof(pm->stub));
	pm->n_stub = 0;
	pm->reset_stack = 0;
}

/* ---- the reset ------------------------------------------------------------------ */

/* Step 1: the stub's handler, and only it, answers RESET(nonce). */
static int reset__stop_guest(struct proc_machine *pm, struct sb_err *err)
{
	siginfo_t si;
	uint64_t nonce;
	double deadline = now_us() + RESET_WAIT_MS * 1e3;
	unsigned junk = 0;

	if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
		return err__errno(err, "getrandom for a reset");
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGUSR2;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)nonce;
	if (syscall(SYS_rt_sigqueueinfo, pm->pid, SIGUSR2, &si) < 0)
		return err__errno(err, "signalling the sandbox (pid %d) to reset", (int)pm->pid);
	for (;;) {
		struct pollfd p = { pm->chan, POLLIN, 0 };
		struct sb_proc_msg msg;
		double left = deadline - now_us();
		ssize_t n;
		int r;

		if (left <= 0)
			return err__set(err, -ETIMEDOUT, "the sandbox did not take its reset signal "
					"within %d ms", RESET_WAIT_MS);
		r = poll(&p, 1, (int)(left / 1e3) + 1);
		if (r < 0 && errno != EINTR)
			return err__errno(err, "poll on the sandbox channel (reset)");
		if (r <= 0)
			continue;
		n = recv(pm->chan, &msg, sizeof(msg), MSG_TRUNC);
		if (n < 0 && errno != EINTR)
			return err__errno(err, "reading the sandbox channel (reset)");
		if (n == 0) {
			proc__died(pm, err);
			if (WIFEXITED(pm->wait_status) && WEXITSTATUS(pm->wait_status) == 119)
				return err__set(err, -EIO, "reset: the guest had moved its signal stack "
						"over the reset handler's");
			return err__set(err, -EIO, "reset: %s", err->msg);
		}
		if (n == (ssize_t)sizeof(msg) && msg.nr == SB_PROC_MSG_RESET && !msg.reserved) {
			if (msg.gpa != nonce)
				return err__set(err, -EPROTO, "reset: the sandbox answered with the "
						"wrong nonce");
			return 0;
		}
		/* what the guest left on its channel before the signal */
		if (n > 0 && ++junk > RESET_JUNK_MAX)
			return err__set(err, -EPROTO, "reset: the sandbox flooded its channel");
	}
}

/* Step 2: guest RAM. */
static int reset__ram(struct proc_machine *pm, struct wbatch *b, struct reset_stats *st,
		      struct sb_err *err)
{
	double t0 = now_us();
	int ret = written__scan(&pm->ws, SB_PROC_RAM_BASE, pm->m.ram.size, err);

	st->scan_us += now_us() - t0;
	if (ret < 0)
		return ret;
	t0 = now_us();
	st->ranges += pm->ws.n;
	for (size_t k = 0; k < pm->ws.n; k++)
		for (uint64_t a = pm->ws.r[k].start; a < pm->ws.r[k].end; a += PAGE) {
			const void *src = snap_pristine__page(&pm->pristine, a);

			ret = wbatch__add(b, src ? src : zero_page, a, err);
			if (ret < 0)
				return ret;
		}
	ret = wbatch__flush(b, err);
	st->pages = b->pages;
	st->copy_us += now_us() - t0;
	return ret;
}

/* Step 3: the stub's own pages, all but the reset stack. */
static int reset__stub(struct proc_machine *pm, struct wbatch *b, struct reset_stats *st,
		       struct sb_err *err)
{
	uint64_t before = b->pages;
	int ret = 0;

	for (unsigned i = 0; ret == 0 && i < pm->n_stub; i++) {
		const struct proc_stub_region *s = &pm->stub[i];
		double t0 = now_us();

		ret = written__scan(&pm->ws, s->lo, s->hi, err);
		st->scan_us += now_us() - t0;
		t0 = now_us();
		for (size_t k = 0; ret == 0 && k < pm->ws.n; k++)
			for (uint64_t a = pm->ws.r[k].start; ret == 0 && a < pm->ws.r[k].end; a += PAGE)
				if (a - pm->reset_stack >= SB_PROC_RESET_STACK)
					ret = wbatch__add(b, s->image + (a - s->lo), a, err);
		if (ret == 0)
			ret = wbatch__flush(b, err);
		st->copy_us += now_us() - t0;
	}
	st->stub_bytes = (b->pages - before) * PAGE;
	return ret;
}

int proc_be__reset(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
		   struct sb_err *err)
{
	static const struct sb_proc_reply go = { 0 };
	struct proc_machine *pm = (struct proc_machine *)m;
	struct wbatch *b;
	int ret;

	if (!m->recycle || pm->ws.fd < 0 || !pm->n_stub)
		return err__set(err, -EINVAL, "this sandbox was not cloned to be recycled");
	if (snap->hdr.mem_size != m->ram.size)
		return err__set(err, -EINVAL, "reset to a template of another size");
	if (pm->pid <= 0 || pm->chan < 0)
		return err__set(err, -ESRCH, "the sandbox process is gone");
	b = calloc(1, sizeof(*b));
	if (!b)
		return err__set(err, -ENOMEM, "out of memory");
	b->pid = pm->pid;
	ret = reset__stop_guest(pm, err);
	if (ret == 0)
		ret = reset__ram(pm, b, st, err);
	if (ret == 0)
		ret = reset__stub(pm, b, st, err);
	free(b);
	if (ret == 0 && send(pm->chan, &go, sizeof(go), MSG_NOSIGNAL) != (ssize_t)sizeof(go))
		ret = err__errno(err, "resuming the reset sandbox");
	if (ret < 0)
		return ret;
	pm->reply_pending = true; /* its ready-point read, again */
	return 0;
}
