/* SPDX-License-Identifier: MIT */
/* Freestanding basics shared by guest/lib users (guest kernel and host). */
#ifndef SB_TYPES_H
#define SB_TYPES_H
#include <stdint.h>
#include <stddef.h>

/* a + b without wrapping past UINT64_MAX: returns 0 on overflow. */
static inline int sb_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* [start, start + len) lies inside [lo, hi): overflow-checked. */
static inline int sb_range_in(uint64_t start, uint64_t len, uint64_t lo, uint64_t hi)
{
	uint64_t end;
	if (!sb_add_ok(start, len, &end))
		return 0;
	return start >= lo && end <= hi;
}
#endif
