/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/hypercall.h"
#include "common/syscall_names.h"
#include "sbtypes.h"

#define PANIC_MSG_MAX 1024
#define BOUNCE_MAX    (1u << 20) /* copies through the monitor, per round */

static const char *const hc_names[SB_HC_COUNT] = {
	[SB_HC_WRITE] = "WRITE",   [SB_HC_READ] = "READ",
	[SB_HC_EXIT] = "EXIT",     [SB_HC_FAULT] = "FAULT",
	[SB_HC_CLOCK] = "CLOCK",   [SB_HC_RANDOM] = "RANDOM",
	[SB_HC_MEMCPY] = "MEMCPY", [SB_HC_MEMSET] = "MEMSET",
	[SB_HC_TRACE] = "TRACE",   [SB_HC_PANIC] = "PANIC",
	[SB_HC_USER_START] = "USER_START", [SB_HC_SLEEP] = "SLEEP",
	[SB_HC_SET_FS] = "SET_FS", [SB_HC_SYSCALL_PATH] = "SYSCALL_PATH",
	[SB_HC_STDIN] = "STDIN",   [SB_HC_OUTPUT] = "OUTPUT",
	[SB_HC_MEM] = "MEM",
};

void hypercall__init(struct hc_ctx *hc, struct guest_mem *mem, struct timeout *timeout,
		     const char *program)
{
	memset(hc, 0, sizeof(*hc));
	hc->mem = mem;
	hc->timeout = timeout;
	hc->stdin_fd = 0;
	hc->stdout_fd = 1;
	hc->stderr_fd = 2;
	hc->trace_fd = 2;
	hc->program = program;
}

bool hypercall__mmio(uint64_t ram_size, uint64_t gpa, unsigned *nr)
{
	uint64_t off = gpa - ram_size;

	if (gpa < ram_size || off % 8 || off / 8 == 0 || off / 8 >= SB_HC_COUNT)
		return false;
	*nr = (unsigned)(off / 8);
	return true;
}

bool hypercall__port(uint16_t port, unsigned *nr)
{
	if (port <= SB_HC_PORT(0) || port >= SB_HC_PORT(SB_HC_COUNT))
		return false;
	*nr = port - SB_HC_PORT_BASE;
	return true;
}

const char *hypercall__name(unsigned nr)
{
	return nr < SB_HC_COUNT && hc_names[nr] ? hc_names[nr] : "?";
}

/* ---- guest memory access ------------------------------------------------ */

static int hc__bad_ptr(unsigned nr, uint64_t gpa, uint64_t len, struct sb_err *err)
{
	return err__set(err, -EFAULT,
			"guest passed a bad pointer to hypercall %s: gpa 0x%llx+%llu",
			hypercall__name(nr), (unsigned long long)gpa, (unsigned long long)len);
}

/* Is [gpa, gpa + len) in guest RAM?  0, or -EFAULT with err set. */
static int hc__check(struct hc_ctx *hc, unsigned nr, uint64_t gpa, uint64_t len,
		     struct sb_err *err)
{
	if (!guest_mem__in(hc->mem, gpa, len))
		return hc__bad_ptr(nr, gpa, len, err);
	return 0;
}

/* Host pointer for a checked range, NULL if the monitor must copy. */
static void *hc__direct(struct hc_ctx *hc, uint64_t gpa, uint64_t len)
{
	return hc->mem->ptr(hc->mem, gpa, len);
}

/* Checked copy from guest memory (any alignment). */
static int hc__copy_in(struct hc_ctx *hc, unsigned nr, uint64_t gpa, void *dst, size_t len,
		       struct sb_err *err)
{
	int ret = hc__check(hc, nr, gpa, len, err);

	if (ret == 0 && (ret = hc->mem->read(hc->mem, gpa, dst, len)) < 0)
		return err__set(err, ret, "hypercall %s: reading guest memory at gpa 0x%llx+%zu: %s",
				hypercall__name(nr), (unsigned long long)gpa, len, strerror(-ret));
	return ret;
}

/* Checked copy to guest memory. */
static int hc__copy_out(struct hc_ctx *hc, unsigned nr, uint64_t gpa, const void *src,
			size_t len, struct sb_err *err)
{
	int ret = hc__check(hc, nr, gpa, len, err);

	if (ret == 0 && (ret = hc->mem->write(hc->mem, gpa, src, len)) < 0)
		return err__set(err, ret, "hypercall %s: writing guest memory at gpa 0x%llx+%zu: %s",
				hypercall__name(nr), (unsigned long long)gpa, len, strerror(-ret));
	return ret;
}

/* Copy the argument struct in (memcpy: the guest may misalign it). */
static int hc__arg_in(struct hc_ctx *hc, unsigned nr, uint64_t gpa, void *dst, size_t len,
		      struct sb_err *err)
{
	return hc__copy_in(hc, nr, gpa, dst, len, err);
}

/* Copy results back (the range was checked by hc__arg_in). */
static void hc__arg_out(struct hc_ctx *hc, uint64_t gpa, const void *src, size_t len)
{
	(void)hc->mem->write(hc->mem, gpa, src, len);
}

static bool hc__expired(const struct hc_ctx *hc)
{
	return hc->timeout && timeout__expired(hc->timeout);
}

/* ---- WRITE / READ ------------------------------------------------------- */

/*
 * Translate the guest iovec array; empty entries are dropped unchecked.
 * iov[] gets host pointers where guest memory is mapped here; if any entry
 * is not (*direct = false), gv[] holds the checked guest ranges to copy.
 */
static int hc__iov_map(struct hc_ctx *hc, unsigned nr, const struct sb_hc_io *io,
		       struct iovec *iov, struct sb_iovec *gv, int *cnt, bool *direct,
		       uint64_t *total, struct sb_err *err)
{
	int ret;

	*cnt = 0;
	*direct = true;
	*total = 0;
	ret = hc__copy_in(hc, nr, io->iov_gpa, gv, (size_t)io->iovcnt * sizeof(struct sb_iovec), err);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < io->iovcnt; i++) {
		struct sb_iovec v = gv[i];
		void *p;

		if (v.len == 0)
			continue;
		if (hc__check(hc, nr, v.base, v.len, err) < 0)
			return -EFAULT;
		p = hc__direct(hc, v.base, v.len);
		if (!p)
			*direct = false;
		*total += v.len; /* each len < RAM size, at most 1024 of them */
		gv[*cnt] = v;
		iov[*cnt].iov_base = p;
		iov[*cnt].iov_len = v.len;
		(*cnt)++;
	}
	return *total > (uint64_t)SSIZE_MAX ? 1 : 0;
}

static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* Wait until fd is ready after EAGAIN (our stdio may be non-blocking). */
static void hc__wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	poll(&p, 1, -1);
}

/* writev everything; *ret = bytes written, or -errno if nothing was. */
static int hc__writev_all(struct hc_ctx *hc, int fd, struct iovec *iov, int cnt, int64_t *ret)
{
	int64_t done = 0;

	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);

		if (n < 0) {
			if (errno == EINTR) {
				if (hc__expired(hc))
					return -ETIMEDOUT;
				continue;
			}
			if (errno == EAGAIN) {
				hc__wait_fd(fd, POLLOUT);
				continue;
			}
			*ret = done ? done : -errno;
			return 0;
		}
		done += n;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	*ret = done;
	return 0;
}

static int hc__readv(struct hc_ctx *hc, struct iovec *iov, int cnt, int64_t *ret)
{
	if (hc->stdin_fd < 0 || cnt == 0) {
		*ret = 0;
		return 0;
	}
	for (;;) {
		ssize_t n = readv(hc->stdin_fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);

		if (n >= 0) {
			*ret = n;
			return 0;
		}
		if (errno == EINTR) {
			if (hc__expired(hc))
				return -ETIMEDOUT;
			if (hc->pause && __atomic_load_n(hc->pause, __ATOMIC_ACQUIRE))
				return -EINPROGRESS; /* nothing read: left pending */
			/* a request from the service (resize.h); a shrink needs
			 * the guest (ABI 5 STDIN only): it comes back after it */
			if (hc->ctl_poll && hc->ctl_poll(hc->ctl_arg) > 0 && hc->wake_ok) {
				hc->woken = true;
				*ret = -EINTR;
				return 0;
			}
			continue;
		}
		if (errno == EAGAIN) {
			hc__wait_fd(hc->stdin_fd, POLLIN);
			continue;
		}
		*ret = -errno;
		return 0;
	}
}

/*
 * WRITE / READ where guest memory is not mapped here: through a bounce
 * buffer, at most BOUNCE_MAX bytes per round (a read returns what one
 * round got, as a short read may; a write writes everything).
 */
static int hc__io_copy(struct hc_ctx *hc, unsigned nr, int fd, const struct sb_iovec *gv,
		       int cnt, uint64_t total, int64_t *res, struct sb_err *err)
{
	size_t blen = total < BOUNCE_MAX ? (size_t)total : BOUNCE_MAX;
	uint8_t *b = malloc(blen ? blen : 1);
	int64_t done = 0;
	int ret = 0, i = 0;
	uint64_t off = 0; /* into gv[i] */

	if (!b)
		return err__set(err, -ENOMEM, "out of memory for a hypercall buffer");
	while (i < cnt && ret == 0) {
		struct iovec bv = { .iov_base = b, .iov_len = 0 };
		int64_t n;

		if (nr == SB_HC_WRITE) {
			while (i < cnt && bv.iov_len < blen) {
				size_t k = gv[i].len - off < blen - bv.iov_len ?
					   (size_t)(gv[i].len - off) : blen - bv.iov_len;
				ret = hc__copy_in(hc, nr, gv[i].base + off, b + bv.iov_len, k, err);
				if (ret < 0)
					break;
				bv.iov_len += k;
				off += k;
				if (off == gv[i].len)
					i++, off = 0;
			}
			if (ret == 0)
				ret = hc__writev_all(hc, fd, &bv, 1, &n);
			if (ret < 0)
				break;
			if (n < 0) {
				*res = done ? done : n;
				goto out;
			}
			done += n;
			continue;
		}
		bv.iov_len = blen;
		ret = hc__readv(hc, &bv, 1, &n);
		if (ret < 0 || n <= 0) {
			*res = n;
			goto out;
		}
		for (uint64_t put = 0; put < (uint64_t)n && ret == 0;) {
			size_t k = gv[i].len - off < (uint64_t)n - put ? (size_t)(gv[i].len - off)
								      : (size_t)((uint64_t)n - put);
			ret = hc__copy_out(hc, nr, gv[i].base + off, b + put, k, err);
			put += k;
			off += k;
			if (off == gv[i].len)
				i++, off = 0;
		}
		done = n;
		break; /* one read per call */
	}
	*res = done;
out:
	free(b);
	return ret;
}

/*
 * WRITE (io->fd 1 or 2) or a read of stdin (READ, STDIN): *res = bytes
 * done or -errno for the guest; *asked = bytes the guest's buffers hold.
 * Returns 0, or -errno when the VM must end (bad pointer, timeout).
 */
static int hc__io_do(struct hc_ctx *hc, unsigned nr, const struct sb_hc_io *io, int64_t *res,
		     uint64_t *asked, struct sb_err *err)
{
	struct iovec iov[SB_HC_IOV_MAX];
	struct sb_iovec gv[SB_HC_IOV_MAX];
	uint64_t total = 0;
	bool direct;
	int cnt, ret, fd = io->fd == 1 ? hc->stdout_fd : io->fd == 2 ? hc->stderr_fd : hc->stdin_fd;

	*asked = 0;
	if (nr == SB_HC_WRITE ? io->fd != 1 && io->fd != 2 : io->fd != 0) {
		*res = -EBADF;
		return 0;
	}
	if (io->iovcnt > SB_HC_IOV_MAX) {
		*res = -EINVAL;
		return 0;
	}
	ret = hc__iov_map(hc, nr, io, iov, gv, &cnt, &direct, &total, err);
	if (ret < 0)
		return ret;
	*asked = total;
	if (ret > 0) {
		*res = -EINVAL;
		return 0;
	}
	if (!direct)
		return hc__io_copy(hc, nr, fd, gv, cnt, total, res, err);
	if (nr == SB_HC_WRITE)
		return hc__writev_all(hc, fd, iov, cnt, res);
	return hc__readv(hc, iov, cnt, res);
}

static int hc__io(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_io io;
	uint64_t asked;
	int ret = hc__arg_in(hc, nr, gpa, &io, sizeof(io), err);

	if (ret < 0)
		return ret;
	ret = hc__io_do(hc, nr, &io, &io.ret, &asked, err);
	if (ret < 0)
		return ret;
	hc__arg_out(hc, gpa, &io, sizeof(io));
	return HC_CONTINUE;
}

/* ---- STDIN (ABI 4): READ with an EOF hint and a randomness pool ---------- */

static int64_t fill_random(uint8_t *dst, uint64_t len);

/*
 * After a read of stdin that returned got (of asked bytes): will nothing
 * more come?  Only a regular file (a memfd too) can say: its offset reached
 * its size (or a read returned 0).  A procfs file says size 0 and has more,
 * so size 0 hints only when a read returned nothing.  A file that grows
 * after the hint is not read further.  Pipes, sockets, ttys: no hint.
 */
static bool hc__stdin_at_eof(const struct hc_ctx *hc, uint64_t asked, int64_t got)
{
	struct stat st;
	off_t pos;

	if (hc->stdin_fd < 0)
		return true; /* no stdin: every read is EOF */
	if (got < 0 || fstat(hc->stdin_fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (got == 0 && asked > 0)
		return true;
	/* the offset, not a short read: a FUSE file may stop short mid-way */
	pos = lseek(hc->stdin_fd, 0, SEEK_CUR);
	return pos >= 0 && st.st_size > 0 && pos >= st.st_size;
}

/* Fresh randomness into the guest's pool: *filled = pool_len, or 0 if the
 * host has none to give.  0, or -EFAULT (bad pointer: the VM ends). */
static int hc__fill_pool(struct hc_ctx *hc, unsigned nr, uint64_t gpa, uint32_t len,
			 uint32_t *filled, struct sb_err *err)
{
	uint8_t b[SB_HC_POOL_MAX];
	uint8_t *p;
	int ret;

	*filled = 0;
	if (len == 0)
		return 0;
	if (hc__check(hc, nr, gpa, len, err) < 0)
		return -EFAULT;
	p = hc__direct(hc, gpa, len);
	if (hc->ahead_len >= len) { /* drawn before the request */
		ret = p ? 0 : hc__copy_out(hc, nr, gpa, hc->ahead, len, err);
		if (p)
			memcpy(p, hc->ahead, len);
		explicit_bzero(hc->ahead, hc->ahead_len);
		hc->ahead_len = 0;
		if (ret < 0)
			return ret;
		*filled = len;
		return 0;
	}
	if (p) {
		if (fill_random(p, len) == 0)
			*filled = len;
		return 0;
	}
	if (fill_random(b, len) < 0)
		return 0;
	ret = hc__copy_out(hc, nr, gpa, b, len, err);
	explicit_bzero(b, len);
	if (ret < 0)
		return ret;
	*filled = len;
	return 0;
}

void hypercall__draw_ahead(struct hc_ctx *hc)
{
	if (!(hc->st.flags & HC_STATE_PENDING_STDIN) || hc->ahead_len)
		return;
	if (fill_random(hc->ahead, sizeof(hc->ahead)) == 0)
		hc->ahead_len = sizeof(hc->ahead);
}

static int hc__stdin(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_stdin s;
	struct sb_hc_io io;
	uint64_t asked;
	int ret = hc__arg_in(hc, nr, gpa, &s, sizeof(s), err);

	if (ret < 0)
		return ret;
	s.flags = 0;
	s.pool_fill = 0;
	if (s.pool_len > SB_HC_POOL_MAX) {
		s.ret = -EINVAL;
	} else {
		io = (struct sb_hc_io){ .fd = 0, .iovcnt = s.iovcnt, .iov_gpa = s.iov_gpa };
		hc->wake_ok = hc->mem_call != NULL; /* the guest speaks ABI 5 and may be resized */
		hc->woken = false;
		ret = hc__io_do(hc, nr, &io, &s.ret, &asked, err);
		hc->wake_ok = false;
		if (hc->woken) {
			hc->woken = false;
			s.ret = -EINTR;
			s.flags |= SB_STDIN_MEMCTL;
		} else if (ret == 0 && s.iovcnt <= SB_HC_IOV_MAX && hc__stdin_at_eof(hc, asked, s.ret)) {
			s.flags |= SB_STDIN_EOF;
		}
		if (ret == 0)
			ret = hc__fill_pool(hc, nr, s.pool_gpa, s.pool_len, &s.pool_fill, err);
		if (ret < 0)
			return ret;
	}
	hc__arg_out(hc, gpa, &s, sizeof(s));
	return HC_CONTINUE;
}

/* ---- OUTPUT: the proc backend's one-way output -------------------------- */

int hypercall__output(struct hc_ctx *hc, uint32_t fd, const void *buf, uint64_t len,
		      struct sb_err *err)
{
	struct iovec iov = { (void *)buf, (size_t)len };
	int64_t res;
	int ret;

	hc->calls[SB_HC_OUTPUT]++;
	if (fd != 1 && fd != 2)
		return err__set(err, -EPROTO, "the guest sent output for fd %u (only 1 and 2 are "
				"its stdout and stderr)", fd);
	if (len > SB_PROC_OUT_MAX)
		return err__set(err, -EPROTO, "the guest sent %llu bytes of output in one message "
				"(at most %d)", (unsigned long long)len, SB_PROC_OUT_MAX);
	if (len == 0)
		return HC_CONTINUE;
	/* nobody waits for the result: a write error (EPIPE, ...) is dropped */
	ret = hc__writev_all(hc, fd == 1 ? hc->stdout_fd : hc->stderr_fd, &iov, 1, &res);
	return ret < 0 ? ret : HC_CONTINUE;
}

/* ---- EXIT / FAULT / PANIC ----------------------------------------------- */

static int hc__exit(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_exit ex;
	int ret = hc__arg_in(hc, nr, gpa, &ex, sizeof(ex), err);

	if (ret < 0)
		return ret;
	hc->status = (int)((uint64_t)ex.status & 0xff);
	hc->exited = true;
	err__clear(err);
	return HC_STOP;
}

static const char *fault_vector_name(uint64_t v)
{
	static const char *const names[] = {
		[0] = "divide error, #DE",         [1] = "debug exception, #DB",
		[2] = "NMI",                       [3] = "breakpoint, #BP",
		[4] = "overflow, #OF",             [5] = "bound range exceeded, #BR",
		[6] = "invalid opcode, #UD",       [7] = "device not available, #NM",
		[8] = "double fault, #DF",         [10] = "invalid TSS, #TS",
		[11] = "segment not present, #NP", [12] = "stack-segment fault, #SS",
		[13] = "general protection fault, #GP", [14] = "page fault, #PF",
		[16] = "x87 floating-point error, #MF", [17] = "alignment check, #AC",
		[18] = "machine check, #MC",       [19] = "SIMD floating-point exception, #XM",
		[20] = "virtualization exception, #VE", [21] = "control protection, #CP",
	};
	if (v < sizeof(names) / sizeof(names[0]) && names[v])
		return names[v];
	return NULL;
}

static const char *signal_name(uint32_t sig)
{
	switch (sig) {
	case 1: return "SIGHUP";
	case 2: return "SIGINT";
	case 3: return "SIGQUIT";
	case SB_SIGILL: return "SIGILL";
	case 5: return "SIGTRAP";
	case SB_SIGABRT: return "SIGABRT";
	case SB_SIGBUS: return "SIGBUS";
	case SB_SIGFPE: return "SIGFPE";
	case SB_SIGKILL: return "SIGKILL";
	case SB_SIGSEGV: return "SIGSEGV";
	case 13: return "SIGPIPE";
	case 14: return "SIGALRM";
	case 15: return "SIGTERM";
	case 24: return "SIGXCPU";
	case 25: return "SIGXFSZ";
	case 31: return "SIGSYS";
	}
	return NULL;
}

/* "(page fault, #PF, write to address 0x10, page not present)" and friends. */
static void fault_describe(const struct sb_hc_fault *f, char *buf, size_t len)
{
	const char *vn = fault_vector_name(f->vector);

	if (f->vector == 14)
		snprintf(buf, len, " (page fault, #PF, %s address 0x%llx, %s)",
			 f->error_code & 0x10 ? "instruction fetch at" :
			 f->error_code & 0x2 ? "write to" : "read from",
			 (unsigned long long)f->cr2,
			 f->error_code & 0x1 ? "protection violation" : "page not present");
	else if (f->vector == 13 && f->error_code)
		snprintf(buf, len, " (%s, error code 0x%llx)", vn, (unsigned long long)f->error_code);
	else if (vn)
		snprintf(buf, len, " (%s)", vn);
	else if (f->vector < 256)
		snprintf(buf, len, " (exception vector %llu)", (unsigned long long)f->vector);
	else
		buf[0] = '\0';
}

static int hc__fault(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_fault f;
	char sigbuf[16], what[160];
	const char *sn;
	uint32_t sig;
	int ret = hc__arg_in(hc, nr, gpa, &f, sizeof(f), err);

	if (ret < 0)
		return ret;
	sig = f.signal >= 1 && f.signal <= 64 ? f.signal : SB_SIGKILL;
	sn = signal_name(sig);
	if (!sn) {
		snprintf(sigbuf, sizeof(sigbuf), "signal %u", sig);
		sn = sigbuf;
	}
	fault_describe(&f, what, sizeof(what));
	hc->status = 128 + (int)sig;
	err__set(err, 0, "guest program %s killed by %s%s at rip 0x%llx",
		 hc->program ? hc->program : "?", sn, what, (unsigned long long)f.rip);
	return HC_STOP;
}

/* Copy at most len bytes of guest text, escaping anything unprintable. */
static void escape_text(const uint8_t *s, uint64_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (uint64_t i = 0; i < len && o + 5 < outlen; i++) {
		uint8_t c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else if (c == '\n' && i + 1 == len)
			break; /* drop a trailing newline */
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static int hc__panic(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	char text[PANIC_MSG_MAX * 4 + 1];
	struct sb_hc_panic p;
	uint64_t len;
	uint8_t msg[PANIC_MSG_MAX];
	int ret = hc__arg_in(hc, nr, gpa, &p, sizeof(p), err);

	if (ret < 0)
		return ret;
	len = p.msg_len > PANIC_MSG_MAX ? PANIC_MSG_MAX : p.msg_len;
	if (hc__copy_in(hc, nr, p.msg_gpa, msg, len, err) < 0)
		return -EFAULT;
	escape_text(msg, len, text, sizeof(text));
	switch (p.code) {
	case SB_PANIC_EXEC:
		hc->status = 127;
		err__set(err, 0, "%s", text);
		break;
	case SB_PANIC_NOMEM:
		hc->status = 125;
		err__set(err, 0, "out of guest memory (try a larger --mem): %s", text);
		break;
	case SB_PANIC_SYSCALLS:
		hc->status = 125;
		err__set(err, 0, "%s", text);
		break;
	case SB_PANIC_KERNEL:
		hc->status = 125;
		err__set(err, 0, "guest kernel panic: %s", text);
		break;
	default:
		hc->status = 125;
		err__set(err, 0, "guest kernel panic (code %u): %s", p.code, text);
		break;
	}
	return HC_STOP;
}

/* ---- CLOCK / RANDOM / MEMCPY / MEMSET / SLEEP ---------------------------- */

static int clock_from_linux(uint32_t id, clockid_t *out)
{
	switch (id) {
	case 0: *out = CLOCK_REALTIME; return 0;
	case 1: case 2: case 3: *out = CLOCK_MONOTONIC; return 0; /* CPUTIME -> MONOTONIC */
	case 4: *out = CLOCK_MONOTONIC_RAW; return 0;
	case 5: *out = CLOCK_REALTIME_COARSE; return 0;
	case 6: *out = CLOCK_MONOTONIC_COARSE; return 0;
	case 7: *out = CLOCK_BOOTTIME; return 0;
	}
	return -EINVAL;
}

static int hc__clock(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_clock c;
	struct timespec ts;
	clockid_t id;
	int ret = hc__arg_in(hc, nr, gpa, &c, sizeof(c), err);

	if (ret < 0)
		return ret;
	c.ret = clock_from_linux(c.clockid, &id);
	if (c.ret == 0 && clock_gettime(id, &ts) < 0)
		c.ret = -errno;
	if (c.ret == 0) {
		c.sec = ts.tv_sec;
		c.nsec = ts.tv_nsec;
	}
	hc__arg_out(hc, gpa, &c, sizeof(c));
	return HC_CONTINUE;
}

static int64_t fill_random(uint8_t *dst, uint64_t len)
{
	while (len) {
		ssize_t n = getrandom(dst, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		dst += n;
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * MEMCPY / MEMSET / RANDOM where guest memory is not mapped here: through a
 * bounce buffer; an overlapping copy to a higher address goes backwards.
 */
static int hc__mem_copy(struct hc_ctx *hc, unsigned nr, struct sb_hc_mem *m, struct sb_err *err)
{
	size_t blen = m->len < BOUNCE_MAX ? (size_t)m->len : BOUNCE_MAX;
	bool back = nr == SB_HC_MEMCPY && m->dst > m->src;
	uint8_t *b = malloc(blen ? blen : 1);
	int ret = 0;

	if (!b)
		return err__set(err, -ENOMEM, "out of memory for a hypercall buffer");
	if (nr == SB_HC_MEMSET)
		memset(b, (int)(m->val & 0xff), blen);
	m->ret = 0;
	for (uint64_t done = 0; done < m->len && ret == 0 && m->ret == 0;) {
		size_t k = m->len - done < blen ? (size_t)(m->len - done) : blen;
		uint64_t off = back ? m->len - done - k : done;

		if (nr == SB_HC_MEMCPY)
			ret = hc__copy_in(hc, nr, m->src + off, b, k, err);
		else if (nr == SB_HC_RANDOM)
			m->ret = fill_random(b, k);
		if (ret == 0 && m->ret == 0)
			ret = hc__copy_out(hc, nr, m->dst + off, b, k, err);
		done += k;
	}
	free(b);
	return ret;
}

static int hc__mem(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_mem m;
	uint8_t *dst;
	int ret = hc__arg_in(hc, nr, gpa, &m, sizeof(m), err);

	if (ret < 0)
		return ret;
	if (hc__check(hc, nr, m.dst, m.len, err) < 0)
		return -EFAULT;
	if (nr == SB_HC_MEMCPY && hc->mem->ro_host &&
	    sb_range_in(m.src, m.len, hc->mem->ro_gpa, hc->mem->ro_gpa + hc->mem->ro_size)) {
		/* from the layer window (file bytes, the program's ELF) */
		m.ret = 0;
		ret = hc__copy_out(hc, nr, m.dst, hc->mem->ro_host + (m.src - hc->mem->ro_gpa), m.len, err);
		if (ret < 0)
			return ret;
		hc__arg_out(hc, gpa, &m, sizeof(m));
		return HC_CONTINUE;
	}
	if (nr == SB_HC_MEMCPY && hc__check(hc, nr, m.src, m.len, err) < 0)
		return -EFAULT;
	dst = hc__direct(hc, m.dst, m.len);
	m.ret = 0;
	if (!dst || (nr == SB_HC_MEMCPY && !hc__direct(hc, m.src, m.len))) {
		ret = hc__mem_copy(hc, nr, &m, err);
		if (ret < 0)
			return ret;
	} else if (nr == SB_HC_MEMCPY) {
		const uint8_t *src = hc__direct(hc, m.src, m.len);

		memmove(dst, src, m.len);
	} else if (nr == SB_HC_MEMSET) {
		memset(dst, (int)(m.val & 0xff), m.len);
	} else {
		m.ret = fill_random(dst, m.len);
	}
	hc__arg_out(hc, gpa, &m, sizeof(m));
	return HC_CONTINUE;
}

static int hc__sleep(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_sleep s;
	struct timespec ts;
	uint64_t left;
	bool hits_deadline;
	int ret = hc__arg_in(hc, nr, gpa, &s, sizeof(s), err);

	if (ret < 0)
		return ret;
	left = hc->timeout ? timeout__remaining_ns(hc->timeout) : UINT64_MAX;
	hits_deadline = s.nsec >= left;
	if (hits_deadline)
		s.nsec = left;
	ts.tv_sec = (time_t)(s.nsec / 1000000000ULL);
	ts.tv_nsec = (long)(s.nsec % 1000000000ULL);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
		if (hc__expired(hc))
			return -ETIMEDOUT;
		if (hc->pause && __atomic_load_n(hc->pause, __ATOMIC_ACQUIRE) && !hits_deadline) {
			/* paused: the call is done again on resume, for what is left */
			s.nsec = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
			hc__arg_out(hc, gpa, &s, sizeof(s));
			return -EINPROGRESS;
		}
	}
	if (hits_deadline)
		return -ETIMEDOUT;
	s.ret = 0;
	hc__arg_out(hc, gpa, &s, sizeof(s));
	return HC_CONTINUE;
}

/* ---- TRACE / USER_START ------------------------------------------------- */

static int fmt_value(char *buf, size_t len, uint64_t v)
{
	int64_t s = (int64_t)v;

	if (s < 0 && s > -4096)
		return snprintf(buf, len, "%lld", (long long)s);
	if (v < 0x10000)
		return snprintf(buf, len, "%llu", (unsigned long long)v);
	return snprintf(buf, len, "0x%llx", (unsigned long long)v);
}

static int fmt_ret(char *buf, size_t len, int64_t r)
{
	const char *name = r < 0 && r >= -4095 ? strerrorname_np((int)-r) : NULL;

	if (name)
		return snprintf(buf, len, "-%s", name);
	return fmt_value(buf, len, (uint64_t)r);
}

static int hc__trace(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	const struct syscall_desc *d;
	struct sb_hc_trace t;
	char line[512];
	size_t o;
	unsigned nargs = 6;
	ssize_t wr;
	int ret = hc__arg_in(hc, nr, gpa, &t, sizeof(t), err);

	if (ret < 0)
		return ret;
	d = syscall_names__lookup(t.nr);
	if (d)
		nargs = d->nargs;
	o = d ? (size_t)snprintf(line, sizeof(line), "[syscall] %s(", d->name)
	      : (size_t)snprintf(line, sizeof(line), "[syscall] syscall_%llu(",
				 (unsigned long long)t.nr);
	for (unsigned i = 0; i < nargs; i++) {
		if (i)
			o += (size_t)snprintf(line + o, sizeof(line) - o, ", ");
		o += (size_t)fmt_value(line + o, sizeof(line) - o, t.args[i]);
	}
	o += (size_t)snprintf(line + o, sizeof(line) - o, ") = ");
	o += (size_t)fmt_ret(line + o, sizeof(line) - o, t.ret);
	o += (size_t)snprintf(line + o, sizeof(line) - o, "\n");
	do
		wr = write(hc->trace_fd, line, o);
	while (wr < 0 && errno == EINTR);
	return HC_CONTINUE;
}

static int hc__user_start(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_user_start u;
	int ret = hc__arg_in(hc, nr, gpa, &u, sizeof(u), err);

	if (ret < 0)
		return ret;
	clock_gettime(CLOCK_MONOTONIC, &hc->user_start);
	hc->user_started = true;
	hc->user_entry = u.entry;
	hc->user_sp = u.sp;
	return HC_CONTINUE;
}

static int hc__set_base(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_set_base b;
	int ret = hc__arg_in(hc, nr, gpa, &b, sizeof(b), err);

	if (ret < 0)
		return ret;
	if (b.which > 1 || b.base >= (1ULL << 47) || !hc->set_base)
		b.ret = -EINVAL;
	else
		b.ret = hc->set_base(hc->set_base_arg, b.which, b.base) < 0 ? -EINVAL : 0;
	hc__arg_out(hc, gpa, &b, sizeof(b));
	return HC_CONTINUE;
}

/* ---- MEM (ABI 5): hotplug ack, free-page report ------------------------ */

static int hc__mem_ctl(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_mem_range r[SB_MEM_REPORT_MAX];
	struct sb_hc_mem_ctl c;
	int ret = hc__arg_in(hc, nr, gpa, &c, sizeof(c), err);

	if (ret < 0)
		return ret;
	c.ret = 0;
	if (!hc->mem_call) {
		c.ret = -ENOSYS; /* not a resizable machine */
	} else if (c.op == SB_MEM_REPORT) {
		if (c.n == 0 || c.n > SB_MEM_REPORT_MAX) {
			c.ret = -EINVAL;
		} else {
			size_t len = c.n * sizeof(r[0]);

			ret = hc__copy_in(hc, nr, c.ranges_gpa, r, len, err);
			if (ret == 0)
				ret = hc->mem_call(hc->ctl_arg, &c, r, err);
			if (ret == 0)
				ret = hc__copy_out(hc, nr, c.ranges_gpa, r, len, err);
			if (ret < 0)
				return ret;
		}
	} else if (c.op == SB_MEM_ACK) {
		ret = hc->mem_call(hc->ctl_arg, &c, NULL, err);
		if (ret < 0)
			return ret;
	} else {
		c.ret = -EINVAL;
	}
	hc__arg_out(hc, gpa, &c, sizeof(c));
	return HC_CONTINUE;
}

/* ---- SYSCALL_PATH ------------------------------------------------------- */

const char *hypercall__syscall_path_token(uint32_t path)
{
	switch (path) {
	case 0: return "none";
	case SB_SYSCALL_PATH_USER: return "user";
	case SB_SYSCALL_PATH_UD_KERNEL: return "ud-kernel";
	case SB_SYSCALL_PATH_UD_USER: return "ud-user";
	}
	return "?";
}

const char *hypercall__syscall_path_text(uint32_t path)
{
	switch (path) {
	case 0: return "not reported";
	case SB_SYSCALL_PATH_USER: return "user-mode syscall layer (kvm_pvm; proc: trapped by seccomp)";
	case SB_SYSCALL_PATH_UD_KERNEL: return "ud2 -> #UD in kernel mode (VMX/SVM)";
	case SB_SYSCALL_PATH_UD_USER: return "ud2 -> #UD from user mode (kvm_pvm, kernel path)";
	}
	return "unknown";
}

/*
 * The guest kernel reports once per boot, at the program's first system
 * call.  The MMIO page is user-accessible, so the program itself could
 * report first: the value is informational (shown, saved in templates),
 * never acted on.  A second, different report ends the VM.
 */
static int hc__syscall_path(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	struct sb_hc_syscall_path p;
	int ret = hc__arg_in(hc, nr, gpa, &p, sizeof(p), err);

	if (ret < 0)
		return ret;
	if (p.path == 0 || p.path > SB_SYSCALL_PATH_MAX || p.reserved)
		return err__set(err, -EINVAL, "guest reported an unknown system-call path %u", p.path);
	if (hc->st.syscall_path && hc->st.syscall_path != p.path)
		return err__set(err, -EINVAL, "guest reported system-call path %s after %s",
				hypercall__syscall_path_token(p.path),
				hypercall__syscall_path_token(hc->st.syscall_path));
	hc->st.syscall_path = p.path;
	return HC_CONTINUE;
}

int hypercall__handle(struct hc_ctx *hc, unsigned nr, uint64_t gpa, struct sb_err *err)
{
	if (nr < SB_HC_COUNT)
		hc->calls[nr]++;
	switch (nr) {
	case SB_HC_READ:
	case SB_HC_STDIN:
		if (hc->ready_mode && !(hc->st.flags & HC_STATE_PENDING_READ)) {
			/* the ready point: leave the read for each clone to do */
			if (hc__check(hc, nr, gpa, nr == SB_HC_STDIN ? sizeof(struct sb_hc_stdin)
								     : sizeof(struct sb_hc_io), err) < 0)
				return -EFAULT;
			hc->st.pending_read_gpa = gpa;
			hc->st.flags |= HC_STATE_PENDING_READ |
					(nr == SB_HC_STDIN ? HC_STATE_PENDING_STDIN : 0);
			return HC_READY;
		}
		{
			int ret = nr == SB_HC_STDIN ? hc__stdin(hc, nr, gpa, err)
						    : hc__io(hc, nr, gpa, err);
			if (ret == -EINPROGRESS && hc->pause) {
				/* paused while waiting for stdin: as at a ready point */
				hc->calls[nr]--;
				hc->st.pending_read_gpa = gpa;
				hc->st.flags |= HC_STATE_PENDING_READ |
						(nr == SB_HC_STDIN ? HC_STATE_PENDING_STDIN : 0);
				return HC_PAUSED;
			}
			return ret;
		}
	case SB_HC_WRITE: return hc__io(hc, nr, gpa, err);
	case SB_HC_EXIT: return hc__exit(hc, nr, gpa, err);
	case SB_HC_FAULT: return hc__fault(hc, nr, gpa, err);
	case SB_HC_CLOCK: return hc__clock(hc, nr, gpa, err);
	case SB_HC_RANDOM:
	case SB_HC_MEMCPY:
	case SB_HC_MEMSET: return hc__mem(hc, nr, gpa, err);
	case SB_HC_TRACE: return hc__trace(hc, nr, gpa, err);
	case SB_HC_PANIC: return hc__panic(hc, nr, gpa, err);
	case SB_HC_USER_START: return hc__user_start(hc, nr, gpa, err);
	case SB_HC_SLEEP: {
		int ret = hc__sleep(hc, nr, gpa, err);
		if (ret == -EINPROGRESS && hc->pause) {
			/* paused in it: the machine performs it again first (deferred) */
			hc->calls[nr]--;
			hc->deferred_nr = nr;
			hc->deferred_gpa = gpa;
			return HC_PAUSED;
		}
		return ret;
	}
	case SB_HC_SET_FS: return hc__set_base(hc, nr, gpa, err);
	case SB_HC_SYSCALL_PATH: return hc__syscall_path(hc, nr, gpa, err);
	case SB_HC_MEM: return hc__mem_ctl(hc, nr, gpa, err);
	case SB_HC_OUTPUT:
		return err__set(err, -EINVAL, "guest made hypercall OUTPUT, which is the proc "
				"backend's inline output message, not a call");
	}
	return err__set(err, -EINVAL, "guest made unknown hypercall %u", nr);
}

int hypercall__complete_pending(struct hc_ctx *hc, struct sb_err *err)
{
	bool stdin_call = hc->st.flags & HC_STATE_PENDING_STDIN;

	if (!(hc->st.flags & HC_STATE_PENDING_READ))
		return HC_CONTINUE;
	uint32_t flags = hc->st.flags;
	int ret;

	hc->st.flags &= ~(HC_STATE_PENDING_READ | HC_STATE_PENDING_STDIN);
	if (stdin_call) {
		hc->calls[SB_HC_STDIN]++;
		ret = hc__stdin(hc, SB_HC_STDIN, hc->st.pending_read_gpa, err);
	} else {
		hc->calls[SB_HC_READ]++;
		ret = hc__io(hc, SB_HC_READ, hc->st.pending_read_gpa, err);
	}
	if (ret == -EINPROGRESS && hc->pause) {
		/* paused while it waited: still pending */
		hc->calls[stdin_call ? SB_HC_STDIN : SB_HC_READ]--;
		hc->st.flags = flags;
		return HC_PAUSED;
	}
	return ret;
}

/* Calls after which the guest waits for nothing: one-way output, and the
 * last word (the host ends the VM). */
static bool hc__one_way(unsigned nr)
{
	return nr == SB_HC_OUTPUT || nr == SB_HC_EXIT || nr == SB_HC_FAULT || nr == SB_HC_PANIC;
}

void hypercall__describe_calls(const struct hc_ctx *hc, char *buf, size_t len)
{
	unsigned long long total = 0, waited = 0;
	size_t o = 0;

	buf[0] = '\0';
	for (unsigned nr = 1; nr < SB_HC_COUNT; nr++) {
		if (!hc->calls[nr])
			continue;
		total += hc->calls[nr];
		if (!hc__one_way(nr))
			waited += hc->calls[nr];
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s=%llu", o ? " " : "",
					      hypercall__name(nr), (unsigned long long)hc->calls[nr]);
	}
	if (o < len)
		snprintf(buf + o, len - o, "%sthe guest waited on %llu of %llu", o ? "; " : "none; ",
			 waited, total);
}

int hypercall__validate_state(const struct hc_state *st, uint32_t version, uint64_t ram_size,
			      struct sb_err *err)
{
	if (version < HC_STATE_VERSION_MIN || version > HC_STATE_VERSION)
		return err__set(err, -EPROTONOSUPPORT, "hypercall section: version %u (reads %u to %u)",
				version, HC_STATE_VERSION_MIN, HC_STATE_VERSION);
	if (version < 2 && st->syscall_path)
		return err__set(err, -EBADMSG, "hypercall section: reserved field is not zero");
	if (st->syscall_path > SB_SYSCALL_PATH_MAX)
		return err__set(err, -EBADMSG, "hypercall section: unknown system-call path %u",
				st->syscall_path);
	if (st->flags & ~(version < 3 ? HC_STATE_PENDING_READ
				      : HC_STATE_PENDING_READ | HC_STATE_PENDING_STDIN))
		return err__set(err, -EINVAL, "hypercall section: unknown flags 0x%x", st->flags);
	if ((st->flags & HC_STATE_PENDING_STDIN) && !(st->flags & HC_STATE_PENDING_READ))
		return err__set(err, -EINVAL, "hypercall section: a STDIN call but no call pending");
	if ((st->flags & HC_STATE_PENDING_READ) &&
	    !sb_range_in(st->pending_read_gpa, st->flags & HC_STATE_PENDING_STDIN
						   ? sizeof(struct sb_hc_stdin) : sizeof(struct sb_hc_io),
			 0, ram_size))
		return err__set(err, -EINVAL, "hypercall section: pending read at gpa 0x%llx is outside RAM",
				(unsigned long long)st->pending_read_gpa);
	return 0;
}
