/* SPDX-License-Identifier: MIT */
#include "cpio.h"

static int hex8(const uint8_t *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 8; i++) {
		uint8_t c = p[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

static uint64_t align4(uint64_t x)
{
	return (x + 3) & ~3ULL;
}

static int is_trailer(const char *n, uint32_t len)
{
	static const char t[] = "TRAILER!!!";
	if (len != sizeof(t) - 1)
		return 0;
	for (uint32_t i = 0; i < len; i++)
		if (n[i] != t[i])
			return 0;
	return 1;
}

int sb_cpio_next(const uint8_t *base, uint64_t size, uint64_t *off,
		 struct sb_cpio_entry *e)
{
	const uint8_t *h;
	uint32_t mode, filesize, namesize;
	uint64_t name_off, data_off, next;

	if (!sb_range_in(*off, SB_CPIO_HDR, 0, size))
		return -1;
	h = base + *off;
	if (h[0] != '0' || h[1] != '7' || h[2] != '0' || h[3] != '7' ||
	    h[4] != '0' || (h[5] != '1' && h[5] != '2'))
		return -1;
	/* newc fields: 6 magic, then 13 x 8 hex: ino mode uid gid nlink mtime
	 * filesize devmajor devminor rdevmajor rdevminor namesize check */
	if (hex8(h + 6 + 1 * 8, &mode) || hex8(h + 6 + 6 * 8, &filesize) ||
	    hex8(h + 6 + 11 * 8, &namesize))
		return -1;
	if (namesize == 0)
		return -1;
	name_off = *off + SB_CPIO_HDR;
	if (!sb_range_in(name_off, namesize, 0, size) || base[name_off + namesize - 1] != 0)
		return -1;
	data_off = align4(name_off + namesize);
	if (!sb_range_in(data_off, filesize, 0, size))
		return -1;
	next = align4(data_off + filesize);
	e->name = (const char *)(base + name_off);
	e->namelen = namesize - 1;
	e->mode = mode;
	e->data = base + data_off;
	e->size = filesize;
	*off = next;
	return is_trailer(e->name, e->namelen) ? 0 : 1;
}
