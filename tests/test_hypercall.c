/* SPDX-License-Identifier: MIT */
/*
 * The hypercall device on its own, without a VM: guest RAM is a buffer,
 * reached either directly (as in the kvm backend) or only by copies (as
 * for a guest in another process, guest_mem.ptr() == NULL).  Both must do
 * the same, with the same checks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/hypercall.h"
#include "memory/guest_mem.h"
#include "memory/ram.h"

#define RAM_SIZE (4u << 20)

struct rig {
	struct guest_ram ram;
	struct guest_mem mem;
	struct hc_ctx hc;
	uint8_t *g;
};

static void *no_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	(void)m, (void)gpa, (void)len;
	return NULL;
}

static void rig_init(struct rig *r, bool direct)
{
	memset(r, 0, sizeof(*r));
	r->g = calloc(1, RAM_SIZE);
	cr_assert_not_null(r->g);
	r->ram.host = r->g;
	r->ram.size = RAM_SIZE;
	r->ram.fd = -1;
	guest_mem__from_ram(&r->mem, &r->ram);
	if (!direct)
		r->mem.ptr = no_ptr; /* every access a copy through read/write */
	hypercall__init(&r->hc, &r->mem, NULL, "test");
}

static int call(struct rig *r, unsigned nr, uint64_t gpa, const void *arg, size_t len,
		struct sb_err *err)
{
	memcpy(r->g + gpa, arg, len);
	return hypercall__handle(&r->hc, nr, gpa, err);
}

static void check_io(bool direct)
{
	struct rig r;
	struct sb_err err = { "" };
	struct sb_iovec v[3] = { { 0x10000, 5 }, { 0x20000, 0 }, { 0x30000, 7 } };
	struct sb_hc_io io = { .fd = 1, .iovcnt = 3, .iov_gpa = 0x1000 };
	int p[2];
	char buf[32] = { 0 };

	rig_init(&r, direct);
	cr_assert_eq(pipe(p), 0);
	memcpy(r.g + 0x1000, v, sizeof(v));
	memcpy(r.g + 0x10000, "hello", 5);
	memcpy(r.g + 0x30000, ", world", 7);
	r.hc.stdout_fd = p[1];
	cr_assert_eq(call(&r, SB_HC_WRITE, 0x2000, &io, sizeof(io), &err), HC_CONTINUE, "%s", err.msg);
	memcpy(&io, r.g + 0x2000, sizeof(io));
	cr_assert_eq(io.ret, 12);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 12);
	cr_assert_str_eq(buf, "hello, world");

	/* READ scatters into the same iovecs */
	cr_assert_eq(write(p[1], "ABCDEFGHIJKLMN", 14), 14);
	close(p[1]);
	r.hc.stdin_fd = p[0];
	io = (struct sb_hc_io){ .fd = 0, .iovcnt = 3, .iov_gpa = 0x1000 };
	cr_assert_eq(call(&r, SB_HC_READ, 0x2000, &io, sizeof(io), &err), HC_CONTINUE, "%s", err.msg);
	memcpy(&io, r.g + 0x2000, sizeof(io));
	cr_assert_eq(io.ret, 12);
	cr_assert_eq(memcmp(r.g + 0x10000, "ABCDE", 5), 0);
	cr_assert_eq(memcmp(r.g + 0x30000, "FGHIJKL", 7), 0);
	close(p[0]);

	/* a buffer running past the end of RAM is refused, nothing done */
	v[2].base = RAM_SIZE - 3;
	memcpy(r.g + 0x1000, v, sizeof(v));
	io = (struct sb_hc_io){ .fd = 1, .iovcnt = 3, .iov_gpa = 0x1000 };
	cr_assert_eq(call(&r, SB_HC_WRITE, 0x2000, &io, sizeof(io), &err), -EFAULT);
	cr_assert(strstr(err.msg, "bad pointer"), "%s", err.msg);
	/* an argument struct past the end, and wrapping around */
	cr_assert_eq(hypercall__handle(&r.hc, SB_HC_WRITE, RAM_SIZE - 8, &err), -EFAULT);
	cr_assert_eq(hypercall__handle(&r.hc, SB_HC_WRITE, UINT64_MAX - 8, &err), -EFAULT);
	free(r.g);
}

Test(hypercall, write_read_and_bounds_direct) { check_io(true); }
Test(hypercall, write_read_and_bounds_by_copy) { check_io(false); }

static void check_mem(bool direct)
{
	struct rig r;
	struct sb_err err = { "" };
	struct sb_hc_mem m;
	uint8_t *want = malloc(3u << 20);

	rig_init(&r, direct);
	for (uint32_t i = 0; i < (3u << 20); i++)
		r.g[0x100000 + i] = (uint8_t)(i * 7 + i / 4096);
	memcpy(want, r.g + 0x100000, 3u << 20);
	/* overlapping, to a higher address, longer than one bounce buffer */
	m = (struct sb_hc_mem){ .dst = 0x100000 + 4096 * 3, .src = 0x100000, .len = (3u << 20) - 4096 * 3 };
	cr_assert_eq(call(&r, SB_HC_MEMCPY, 0x1000, &m, sizeof(m), &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(memcmp(r.g + 0x100000 + 4096 * 3, want, m.len), 0, "memmove semantics");
	/* memset over more than one bounce buffer */
	m = (struct sb_hc_mem){ .dst = 0x100000, .len = (2u << 20) + 5, .val = 0x1ab };
	cr_assert_eq(call(&r, SB_HC_MEMSET, 0x1000, &m, sizeof(m), &err), HC_CONTINUE, "%s", err.msg);
	for (uint32_t i = 0; i < m.len; i++)
		cr_assert_eq(r.g[0x100000 + i], 0xab);
	/* a source past the end of RAM */
	m = (struct sb_hc_mem){ .dst = 0x100000, .src = RAM_SIZE - 4, .len = 8 };
	cr_assert_eq(call(&r, SB_HC_MEMCPY, 0x1000, &m, sizeof(m), &err), -EFAULT);
	free(want);
	free(r.g);
}

Test(hypercall, memcpy_memset_direct) { check_mem(true); }
Test(hypercall, memcpy_memset_by_copy) { check_mem(false); }

/* ---- guest ABI 4: STDIN (EOF hint, randomness pool), OUTPUT -------------- */

#define IOV_GPA   0x1000
#define ARG_GPA   0x2000
#define POOL_GPA  0x8000
#define BUF_GPA   0x10000

/* One STDIN call reading into 8 bytes at BUF_GPA, pool of pool_len bytes. */
static int stdin_call(struct rig *r, uint32_t pool_len, struct sb_hc_stdin *s, struct sb_err *err)
{
	struct sb_iovec v = { BUF_GPA, 8 };
	int ret;

	memcpy(r->g + IOV_GPA, &v, sizeof(v));
	*s = (struct sb_hc_stdin){ .iovcnt = 1, .iov_gpa = IOV_GPA, .pool_gpa = POOL_GPA,
				   .pool_len = pool_len, .flags = 0xdead, .pool_fill = 77 };
	ret = call(r, SB_HC_STDIN, ARG_GPA, s, sizeof(*s), err);
	memcpy(s, r->g + ARG_GPA, sizeof(*s));
	return ret;
}

static int memfd_with(const char *data)
{
	int fd = memfd_create("hc-test", 0);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void check_stdin_eof_hint(bool direct)
{
	struct rig r;
	struct sb_err err = { "" };
	struct sb_hc_stdin s;
	int p[2];

	rig_init(&r, direct);
	/* a memfd of 12 bytes: 8, then 4 and EOF (the offset reached the size) */
	r.hc.stdin_fd = memfd_with("0123456789ab");
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 8);
	cr_assert_eq(s.flags, 0, "EOF hinted with 4 bytes left");
	cr_assert_eq(s.pool_fill, 0);
	cr_assert_eq(memcmp(r.g + BUF_GPA, "01234567", 8), 0);
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 4);
	cr_assert_eq(s.flags, SB_STDIN_EOF, "no EOF hint at the end of a memfd");
	close(r.hc.stdin_fd);

	/* exactly the buffer's size: EOF with the data, no extra call needed */
	r.hc.stdin_fd = memfd_with("ABCDEFGH");
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 8);
	cr_assert_eq(s.flags, SB_STDIN_EOF);
	close(r.hc.stdin_fd);

	/* an empty memfd: 0 and EOF */
	r.hc.stdin_fd = memfd_with("");
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.flags, SB_STDIN_EOF);
	close(r.hc.stdin_fd);

	/* no stdin at all (-1): EOF */
	r.hc.stdin_fd = -1;
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.flags, SB_STDIN_EOF);

	/* a pipe: never a hint, even when what it had is all read */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "xyz", 3), 3);
	r.hc.stdin_fd = p[0];
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 3);
	cr_assert_eq(s.flags, 0, "EOF hinted for a pipe");
	close(p[1]);
	cr_assert_eq(stdin_call(&r, 0, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.flags, 0, "a pipe's EOF is the guest's to see");
	close(p[0]);
	free(r.g);
}

Test(hypercall, stdin_eof_hint_direct) { check_stdin_eof_hint(true); }
Test(hypercall, stdin_eof_hint_by_copy) { check_stdin_eof_hint(false); }

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void check_stdin_pool(bool direct)
{
	struct rig r;
	struct sb_err err = { "" };
	struct sb_hc_stdin s;
	uint8_t first[SB_HC_POOL_MAX];

	rig_init(&r, direct);
	r.hc.stdin_fd = memfd_with("request");
	/* every call fills the whole pool afresh */
	cr_assert_eq(stdin_call(&r, SB_HC_POOL_MAX, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 7);
	cr_assert_eq(s.pool_fill, SB_HC_POOL_MAX);
	cr_assert(!all_zero(r.g + POOL_GPA, 64), "the pool is still zero");
	cr_assert(all_zero(r.g + POOL_GPA + SB_HC_POOL_MAX, 64), "written past the pool");
	memcpy(first, r.g + POOL_GPA, sizeof(first));
	cr_assert_eq(stdin_call(&r, SB_HC_POOL_MAX, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, 0);
	cr_assert_eq(s.pool_fill, SB_HC_POOL_MAX, "no refill with the EOF read");
	cr_assert_neq(memcmp(first, r.g + POOL_GPA, sizeof(first)), 0, "the pool was not refilled");

	/* a pool larger than the ABI allows: -EINVAL, nothing read or filled */
	memset(r.g + POOL_GPA, 0, SB_HC_POOL_MAX);
	cr_assert_eq(stdin_call(&r, SB_HC_POOL_MAX + 1, &s, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(s.ret, -EINVAL);
	cr_assert_eq(s.pool_fill, 0);
	cr_assert(all_zero(r.g + POOL_GPA, SB_HC_POOL_MAX));

	/* a pool past the end of RAM: the VM ends */
	s = (struct sb_hc_stdin){ .iovcnt = 0, .pool_gpa = RAM_SIZE - 100, .pool_len = 256 };
	cr_assert_eq(call(&r, SB_HC_STDIN, ARG_GPA, &s, sizeof(s), &err), -EFAULT);
	cr_assert(strstr(err.msg, "bad pointer to hypercall STDIN"), "%s", err.msg);
	close(r.hc.stdin_fd);
	free(r.g);
}

Test(hypercall, stdin_refills_the_pool_direct) { check_stdin_pool(true); }
Test(hypercall, stdin_refills_the_pool_by_copy) { check_stdin_pool(false); }

/*
 * The ready point: the first stdin call of a template create is left
 * pending, recorded with its call (STDIN, or READ for ABI 2/3 kernels), and
 * each clone completes it with its own stdin: STDIN with the EOF hint and a
 * fresh pool, READ as before.
 */
static void check_ready_point(bool direct, unsigned nr)
{
	struct rig r;
	struct sb_err err = { "" };
	struct sb_iovec v = { BUF_GPA, 16 };
	struct sb_hc_stdin s = { .iovcnt = 1, .iov_gpa = IOV_GPA, .pool_gpa = POOL_GPA,
				 .pool_len = 256 };
	struct sb_hc_io io = { .fd = 0, .iovcnt = 1, .iov_gpa = IOV_GPA };
	struct hc_state st;
	char calls[256];

	rig_init(&r, direct);
	memcpy(r.g + IOV_GPA, &v, sizeof(v));
	r.hc.ready_mode = true;
	r.hc.stdin_fd = -1;
	if (nr == SB_HC_STDIN)
		cr_assert_eq(call(&r, nr, ARG_GPA, &s, sizeof(s), &err), HC_READY, "%s", err.msg);
	else
		cr_assert_eq(call(&r, nr, ARG_GPA, &io, sizeof(io), &err), HC_READY, "%s", err.msg);
	st = r.hc.st;
	cr_assert_eq(st.pending_read_gpa, ARG_GPA);
	cr_assert_eq(st.flags, nr == SB_HC_STDIN ? HC_STATE_PENDING_READ | HC_STATE_PENDING_STDIN
						 : HC_STATE_PENDING_READ);
	cr_assert_eq(hypercall__validate_state(&st, HC_STATE_VERSION, RAM_SIZE, &err), 0, "%s", err.msg);

	/* two clones of it, each with its own request */
	for (int k = 0; k < 2; k++) {
		const char *req = k ? "second request" : "first";
		uint8_t pool0[256];

		memcpy(pool0, r.g + POOL_GPA, sizeof(pool0));
		uint8_t ahead[256];

		hypercall__init(&r.hc, &r.mem, NULL, "clone");
		r.hc.st = st;
		r.hc.stdin_fd = memfd_with(req);
		/* the second clone draws its pool's bytes ahead, as clone_into does */
		if (k)
			hypercall__draw_ahead(&r.hc);
		cr_assert_eq(r.hc.ahead_len, k && nr == SB_HC_STDIN ? SB_HC_POOL_MAX : 0);
		memcpy(ahead, r.hc.ahead, sizeof(ahead));
		cr_assert_eq(hypercall__complete_pending(&r.hc, &err), HC_CONTINUE, "%s", err.msg);
		cr_assert_eq(r.hc.ahead_len, 0, "randomness drawn ahead is given once");
		cr_assert(all_zero(r.hc.ahead, sizeof(r.hc.ahead)), "... and wiped");
		if (k && nr == SB_HC_STDIN)
			cr_assert_eq(memcmp(ahead, r.g + POOL_GPA, sizeof(ahead)), 0,
				     "the pool is not what was drawn ahead");
		cr_assert_eq(r.hc.st.flags, 0, "still pending after completion");
		cr_assert_eq(memcmp(r.g + BUF_GPA, req, strlen(req)), 0);
		cr_assert_eq(r.hc.calls[nr], 1);
		if (nr == SB_HC_STDIN) {
			memcpy(&s, r.g + ARG_GPA, sizeof(s));
			cr_assert_eq(s.ret, (int64_t)strlen(req));
			cr_assert_eq(s.flags, SB_STDIN_EOF);
			cr_assert_eq(s.pool_fill, 256);
			cr_assert_neq(memcmp(pool0, r.g + POOL_GPA, sizeof(pool0)), 0,
				      "clone %d got the pool the last one had", k);
		} else {
			memcpy(&io, r.g + ARG_GPA, sizeof(io));
			cr_assert_eq(io.ret, (int64_t)strlen(req));
			cr_assert(all_zero(r.g + POOL_GPA, 256), "READ touched a pool");
		}
		hypercall__describe_calls(&r.hc, calls, sizeof(calls));
		cr_assert_str_eq(calls, nr == SB_HC_STDIN ? "STDIN=1; the guest waited on 1 of 1"
							  : "READ=1; the guest waited on 1 of 1");
		close(r.hc.stdin_fd);
	}
	free(r.g);
}

Test(hypercall, ready_point_stdin_direct) { check_ready_point(true, SB_HC_STDIN); }
Test(hypercall, ready_point_stdin_by_copy) { check_ready_point(false, SB_HC_STDIN); }
Test(hypercall, ready_point_old_read_direct) { check_ready_point(true, SB_HC_READ); }
Test(hypercall, ready_point_old_read_by_copy) { check_ready_point(false, SB_HC_READ); }

/* What a template's hypercall section may say about its pending call. */
Test(hypercall, saved_state_pending_call_is_checked)
{
	struct sb_err err = { "" };
	struct hc_state st = { .pending_read_gpa = 0x2000,
			       .flags = HC_STATE_PENDING_READ | HC_STATE_PENDING_STDIN };

	cr_assert_eq(hypercall__validate_state(&st, 3, RAM_SIZE, &err), 0, "%s", err.msg);
	/* sections before version 3 know no STDIN */
	cr_assert_eq(hypercall__validate_state(&st, 2, RAM_SIZE, &err), -EINVAL);
	cr_assert(strstr(err.msg, "unknown flags"), "%s", err.msg);
	/* a STDIN call, but nothing pending */
	st.flags = HC_STATE_PENDING_STDIN;
	cr_assert_eq(hypercall__validate_state(&st, 3, RAM_SIZE, &err), -EINVAL);
	/* a READ's struct fits at the end of RAM, a STDIN's does not */
	st.pending_read_gpa = RAM_SIZE - sizeof(struct sb_hc_io);
	st.flags = HC_STATE_PENDING_READ;
	cr_assert_eq(hypercall__validate_state(&st, 3, RAM_SIZE, &err), 0, "%s", err.msg);
	cr_assert_eq(hypercall__validate_state(&st, 1, RAM_SIZE, &err), 0, "%s", err.msg);
	st.flags |= HC_STATE_PENDING_STDIN;
	cr_assert_eq(hypercall__validate_state(&st, 3, RAM_SIZE, &err), -EINVAL);
	cr_assert(strstr(err.msg, "outside RAM"), "%s", err.msg);
}

/* The proc backend's one-way output: checked, written, errors dropped. */
Test(hypercall, one_way_output)
{
	struct rig r;
	struct sb_err err = { "" };
	char buf[64] = { 0 }, calls[256];
	int p[2], e[2];

	rig_init(&r, false);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(e), 0);
	r.hc.stdout_fd = p[1];
	r.hc.stderr_fd = e[1];
	cr_assert_eq(hypercall__output(&r.hc, 1, "out", 3, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(hypercall__output(&r.hc, 2, "err", 3, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(hypercall__output(&r.hc, 1, "", 0, &err), HC_CONTINUE, "%s", err.msg);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, "out");
	cr_assert_eq(read(e[0], buf, sizeof(buf)), 3);
	/* another fd, or more than one message may carry: the sandbox ends */
	cr_assert_eq(hypercall__output(&r.hc, 0, "x", 1, &err), -EPROTO);
	cr_assert(strstr(err.msg, "output for fd 0"), "%s", err.msg);
	cr_assert_eq(hypercall__output(&r.hc, 3, "x", 1, &err), -EPROTO);
	cr_assert_eq(hypercall__output(&r.hc, 1, buf, SB_PROC_OUT_MAX + 1ULL, &err), -EPROTO);
	cr_assert(strstr(err.msg, "in one message"), "%s", err.msg);
	/* nobody reads stdout any more: dropped, not an error (no one waits) */
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(hypercall__output(&r.hc, 1, "lost", 4, &err), HC_CONTINUE, "%s", err.msg);
	hypercall__describe_calls(&r.hc, calls, sizeof(calls));
	cr_assert_str_eq(calls, "OUTPUT=7; the guest waited on 0 of 7");
	/* it is a message, never a call */
	cr_assert_eq(hypercall__handle(&r.hc, SB_HC_OUTPUT, 0x1000, &err), -EINVAL);
	cr_assert(strstr(err.msg, "OUTPUT"), "%s", err.msg);
	close(p[1]);
	close(e[0]);
	close(e[1]);
	free(r.g);
}
