/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "memory/guest_mem.h"
#include "memory/ram.h"

static void *ram_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return ram__gpa_to_host(m->opaque, gpa, len);
}

static int ram_mem__read(const struct guest_mem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = ram__gpa_to_host(m->opaque, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

static int ram_mem__write(const struct guest_mem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = ram__gpa_to_host(m->opaque, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

void guest_mem__from_ram(struct guest_mem *m, struct guest_ram *ram)
{
	m->size = ram->size;
	m->ptr = ram_mem__ptr;
	m->read = ram_mem__read;
	m->write = ram_mem__write;
	m->opaque = ram;
}
