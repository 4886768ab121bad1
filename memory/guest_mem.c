/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <string.h>
#include <sys/uio.h>

#include "memory/guest_mem.h"
#include "memory/ram.h"

#include "sbtypes.h"
#include "snapbox_abi.h"

static void *ram_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (m->hot_host && m->hot_size && sb_range_in(gpa, len, SB_HOT_GPA, SB_HOT_GPA + m->hot_size))
		return m->hot_host + (gpa - SB_HOT_GPA);
	return ram__gpa_to_host(m->opaque, gpa, len);
}

static int ram_mem__read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = ram_mem__ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

static int ram_mem__write(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = ram_mem__ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

void guest_mem__from_ram(struct guest_mem *m, struct guest_ram *ram)
{
	*m = (struct guest_mem){ 0 };
	m->size = ram->size;
	m->ptr = ram_mem__ptr;
	m->read = ram_mem__read;
	m->write = ram_mem__write;
	m->opaque = ram;
}

/* One range, in as many calls as the kernel needs (it may copy less). */
static int proc_mem__xfer(const struct guest_mem *m, uint64_t gpa, void *buf, size_t len,
			  bool write)
{
	pid_t pid = *(const int *)m->opaque;

	if (pid <= 0)
		return -ESRCH;
	while (len) {
		struct iovec local = { buf, len };
		struct iovec remote = { (void *)(uintptr_t)gpa, len };
		ssize_t n = write ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
				  : process_vm_readv(pid, &local, 1, &remote, 1, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EFAULT;
		buf = (uint8_t *)buf + n;
		gpa += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static void *proc_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	(void)m, (void)gpa, (void)len;
	return NULL;
}

static int proc_mem__read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
{
	return proc_mem__xfer(m, gpa, dst, len, false);
}

static int proc_mem__write(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len)
{
	return proc_mem__xfer(m, gpa, (void *)src, len, true);
}

void guest_mem__from_process(struct guest_mem *m, uint64_t size, const int *pid)
{
	*m = (struct guest_mem){ 0 };
	m->size = size;
	m->ptr = proc_mem__ptr;
	m->read = proc_mem__read;
	m->write = proc_mem__write;
	m->opaque = (void *)pid;
}
