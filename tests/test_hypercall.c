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
#include <string.h>
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
