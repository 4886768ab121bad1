/* SPDX-License-Identifier: MIT */
/*
 * User memory.  All of RAM is mapped once (2 MiB pages), so brk and mmap
 * only hand out address ranges: no page tables are touched after boot and
 * the program takes no page faults.  Between the program's image and its
 * stack lies one region managed as a sorted list of free extents; brk grows
 * up from the bottom of it, mmap takes from the top.  Invariant: free
 * memory is zero, so an allocation never needs clearing; whatever is
 * returned is cleared (the host skips pages that are already zero).
 */
#include "kernel.h"

#define MAX_EXT 1024
#define MAP_SHARED 0x01
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define MREMAP_MAYMOVE 1
#define MADV_DONTNEED 4
#define MADV_FREE 8

struct ext {
	uint64_t lo, hi;
};

static struct ext ext[MAX_EXT]; /* sorted, disjoint, not adjacent */
static int n_ext;
static uint64_t heap_lo, heap_hi, brk_cur;

void mm_init(uint64_t lo, uint64_t hi)
{
	heap_lo = brk_cur = lo;
	heap_hi = hi;
	ext[0] = (struct ext){ lo, hi };
	n_ext = lo < hi;
}

static void ext_del(int i)
{
	memmove(&ext[i], &ext[i + 1], (size_t)(n_ext - i - 1) * sizeof(ext[0]));
	n_ext--;
}

static int ext_ins(int i, uint64_t lo, uint64_t hi)
{
	if (n_ext == MAX_EXT)
		return -ENOMEM;
	memmove(&ext[i + 1], &ext[i], (size_t)(n_ext - i) * sizeof(ext[0]));
	ext[i] = (struct ext){ lo, hi };
	n_ext++;
	return 0;
}

/* Is [lo, hi) entirely free? */
static int ext_is_free(uint64_t lo, uint64_t hi)
{
	for (int i = 0; i < n_ext; i++)
		if (ext[i].lo <= lo && hi <= ext[i].hi)
			return 1;
	return 0;
}

/* Mark [lo, hi) in use (it may be partly in use already). */
static int ext_sub(uint64_t lo, uint64_t hi)
{
	for (int i = 0; i < n_ext; i++) {
		struct ext e = ext[i];
		if (e.hi <= lo || e.lo >= hi)
			continue;
		if (e.lo < lo && e.hi > hi) {
			ext[i].hi = lo;
			return ext_ins(i + 1, hi, e.hi);
		}
		if (e.lo < lo) {
			ext[i].hi = lo;
		} else if (e.hi > hi) {
			ext[i].lo = hi;
		} else {
			ext_del(i);
			i--;
		}
	}
	return 0;
}

/* Return [lo, hi) to the free list: clear it, then merge. */
static int ext_add(uint64_t lo, uint64_t hi)
{
	int i;
	if (lo >= hi)
		return 0;
	kzero(lo, hi - lo);
	for (i = 0; i < n_ext && ext[i].hi < lo; i++)
		;
	/* ext[i] is the first extent that ends at or after lo */
	if (i < n_ext && ext[i].lo <= hi) {
		if (lo < ext[i].lo)
			ext[i].lo = lo;
		if (hi > ext[i].hi)
			ext[i].hi = hi;
		while (i + 1 < n_ext && ext[i + 1].lo <= ext[i].hi) {
			if (ext[i + 1].hi > ext[i].hi)
				ext[i].hi = ext[i + 1].hi;
			ext_del(i + 1);
		}
		return 0;
	}
	return ext_ins(i, lo, hi);
}

static uint64_t ext_alloc_top(uint64_t len)
{
	for (int i = n_ext - 1; i >= 0; i--) {
		if (ext[i].hi - ext[i].lo >= len) {
			uint64_t a = ext[i].hi - len;
			ext[i].hi = a;
			if (ext[i].hi == ext[i].lo)
				ext_del(i);
			return a;
		}
	}
	return 0;
}

uint64_t mm_take_top(uint64_t len)
{
	return len && !(len & (PAGE - 1)) ? ext_alloc_top(len) : 0;
}

int mm_give(uint64_t addr, uint64_t len)
{
	return ext_add(addr, addr + len);
}

uint64_t mm_free_bytes(void)
{
	uint64_t n = 0;
	for (int i = 0; i < n_ext; i++)
		n += ext[i].hi - ext[i].lo;
	return n;
}

static int in_heap(uint64_t a, uint64_t len)
{
	return sb_range_in(a, len, heap_lo, heap_hi);
}

int64_t sys_brk(uint64_t addr)
{
	uint64_t cur = PAGE_UP(brk_cur), want = PAGE_UP(addr);
	if (addr < heap_lo || addr > heap_hi)
		return (int64_t)brk_cur;
	if (want > cur) {
		if (!ext_is_free(cur, want) || ext_sub(cur, want))
			return (int64_t)brk_cur;
	} else if (want < cur) {
		ext_add(want, cur);
	}
	brk_cur = addr;
	return (int64_t)brk_cur;
}

int64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd,
		 uint64_t off)
{
	const uint8_t *data = 0;
	uint64_t size = 0, a;
	(void)prot;
	if (!len || len > K.mem_size || (off & (PAGE - 1)))
		return -EINVAL;
	len = PAGE_UP(len);
	if (!(flags & MAP_ANONYMOUS)) {
		int64_t r = fs_file_data((int)fd, &data, &size);
		if (r)
			return r;
	}
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if ((addr & (PAGE - 1)) || !user_ok(addr, len))
			return -EINVAL;
		if ((flags & MAP_FIXED_NOREPLACE) && !ext_is_free(addr, addr + len))
			return -EEXIST;
		if (in_heap(addr, len) && ext_sub(addr, addr + len))
			return -ENOMEM;
		kzero(addr, len);
		a = addr;
	} else {
		a = ext_alloc_top(len);
		if (!a)
			return -ENOMEM;
	}
	if (data && off < size) {
		uint64_t n = size - off < len ? size - off : len;
		kcopy(a, (uint64_t)data + off, n);
	}
	(void)MAP_SHARED; /* one process: shared and private maps behave alike */
	return (int64_t)a;
}

int64_t sys_munmap(uint64_t addr, uint64_t len)
{
	if ((addr & (PAGE - 1)) || !len)
		return -EINVAL;
	len = PAGE_UP(len);
	if (!in_heap(addr, len))
		return user_ok(addr, len) ? 0 : -EINVAL;
	return ext_add(addr, addr + len);
}

int64_t sys_mremap(uint64_t old, uint64_t oldlen, uint64_t newlen, uint64_t flags,
		   uint64_t newaddr)
{
	(void)newaddr;
	if ((old & (PAGE - 1)) || !newlen || (flags & ~MREMAP_MAYMOVE))
		return -EINVAL;
	oldlen = PAGE_UP(oldlen);
	newlen = PAGE_UP(newlen);
	if (!in_heap(old, oldlen) || newlen > K.mem_size)
		return -EFAULT;
	if (newlen <= oldlen) {
		ext_add(old + newlen, old + oldlen);
		return (int64_t)old;
	}
	if (in_heap(old, newlen) && ext_is_free(old + oldlen, old + newlen)) {
		if (ext_sub(old + oldlen, old + newlen))
			return -ENOMEM;
		return (int64_t)old;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	uint64_t a = ext_alloc_top(newlen);
	if (!a)
		return -ENOMEM;
	kcopy(a, old, oldlen);
	ext_add(old, old + oldlen);
	return (int64_t)a;
}

int64_t sys_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{
	if (addr & (PAGE - 1))
		return -EINVAL;
	len = PAGE_UP(len);
	if (!user_ok(addr, len))
		return -ENOMEM;
	if (advice == MADV_DONTNEED || advice == MADV_FREE)
		kzero(addr, len);
	return 0;
}
