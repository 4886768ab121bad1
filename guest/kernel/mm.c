/* SPDX-License-Identifier: MIT */
/*
 * User memory.  All of RAM is mapped once (2 MiB pages), so brk and mmap
 * only hand out address ranges: no page tables are touched after boot and
 * the program takes no page faults.  Between the program's image and its
 * stack lies one region managed as a sorted list of free extents; brk grows
 * up from the bottom of it, mmap takes from the top.  Invariant: free
 * memory is zero, so an allocation never needs clearing; whatever is
 * returned is cleared (the host skips pages that are already zero) --
 * except RAM given back to the host (free-page reporting, ABI 5), which
 * then reads as the template's pages: those ranges are kept in a list and
 * cleared when handed out again.
 *
 * Memory hotplug (ABI 5, snapbox_abi.h): the hot window above RAM joins the
 * free list when the host grows it; allocations take RAM first (from the
 * top) and the hot window from its bottom, so that its top stays free for
 * a shrink.
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

#define MAX_DIRTY 256
#define REPORT_BATCH (2ULL << 20) /* report once this much waits */
#define SYS_MADVISE 28
static struct ext dirty[MAX_DIRTY]; /* reported RAM: not zero any more */
static int n_dirty;
static struct sb_mem_range rep[SB_MEM_REPORT_MAX]; /* free, to be reported */
static int n_rep;
static uint64_t rep_bytes;

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

/* Put [lo, hi), which is zero (or reported), in the free list: merge. */
static int ext_put(uint64_t lo, uint64_t hi)
{
	int i;
	if (lo >= hi)
		return 0;
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

static int is_hot(uint64_t a)
{
	return a >= SB_HOT_GPA;
}

/* RAM from the top first, then the hot window from its bottom. */
static uint64_t ext_alloc_top(uint64_t len)
{
	for (int i = n_ext - 1; i >= 0; i--) {
		if (!is_hot(ext[i].lo) && ext[i].hi - ext[i].lo >= len) {
			uint64_t a = ext[i].hi - len;
			ext[i].hi = a;
			if (ext[i].hi == ext[i].lo)
				ext_del(i);
			return a;
		}
	}
	for (int i = 0; i < n_ext; i++) {
		if (is_hot(ext[i].lo) && ext[i].hi - ext[i].lo >= len) {
			uint64_t a = ext[i].lo;
			ext[i].lo = a + len;
			if (ext[i].hi == ext[i].lo)
				ext_del(i);
			return a;
		}
	}
	return 0;
}

static int ext_add(uint64_t lo, uint64_t hi);
static void mm_claim(uint64_t lo, uint64_t hi);

uint64_t mm_take_top(uint64_t len)
{
	uint64_t a = len && !(len & (PAGE - 1)) ? ext_alloc_top(len) : 0;
	if (a)
		mm_claim(a, a + len); /* reported ranges read as zero again */
	return a;
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
	return sb_range_in(a, len, heap_lo, heap_hi) ||
	       (K.hot_size && sb_range_in(a, len, SB_HOT_GPA, SB_HOT_GPA + K.hot_size));
}

/* ---- free-page reporting ------------------------------------------------ */

/* Send the waiting ranges; what the host discarded in RAM reads as the
 * template's pages from now on (dirty), in the hot window as zero. */
void mm_report_flush(void)
{
	if (!n_rep)
		return;
	struct sb_hc_mem_ctl c = { .op = SB_MEM_REPORT, .n = (uint32_t)n_rep,
				   .ranges_gpa = (uint64_t)rep };
	hypercall(SB_HC_MEM, &c);
	for (int i = 0; i < n_rep; i++) {
		struct sb_mem_range r = rep[i];
		if (c.ret == 0 && (r.flags & SB_MEM_RANGE_SELF) && k_proc())
			proc_syscall(SYS_MADVISE, r.gpa, r.len, MADV_DONTNEED);
		if (is_hot(r.gpa)) {
			if (c.ret || !(r.flags & SB_MEM_RANGE_DONE))
				kzero(r.gpa, r.len); /* not discarded: the invariant */
		} else {
			dirty[n_dirty++] = (struct ext){ r.gpa, r.gpa + r.len };
		}
	}
	n_rep = 0;
	rep_bytes = 0;
}

/* [lo, hi) is being freed: report it (and skip clearing it) if the host
 * asked for reports and it is large enough.  1: queued. */
static int report_queue(uint64_t lo, uint64_t hi)
{
	if (!K.report_min || hi - lo < (uint64_t)K.report_min * PAGE || ((lo | hi) & (PAGE - 1)))
		return 0;
	if (n_rep == SB_MEM_REPORT_MAX)
		mm_report_flush();
	if (!is_hot(lo) && n_dirty + n_rep >= MAX_DIRTY)
		return 0; /* no room to remember it: clear it as usual */
	rep[n_rep++] = (struct sb_mem_range){ lo, hi - lo, 0 };
	rep_bytes += hi - lo;
	if (rep_bytes >= REPORT_BATCH)
		mm_report_flush();
	return 1;
}

/* [lo, hi) is being handed out: nothing of it may wait for a report, and
 * what was reported must read as zero again. */
static void mm_claim(uint64_t lo, uint64_t hi)
{
	mm_report_flush();
	for (int i = 0; i < n_dirty; i++) {
		struct ext d = dirty[i];
		uint64_t a = d.lo > lo ? d.lo : lo, b = d.hi < hi ? d.hi : hi;
		if (a >= b)
			continue;
		kzero(a, b - a);
		if (d.lo < lo && d.hi > hi && n_dirty < MAX_DIRTY) {
			dirty[i].hi = lo;
			dirty[n_dirty++] = (struct ext){ hi, d.hi };
		} else if (d.lo < lo && d.hi > hi) {
			kzero(d.lo, lo - d.lo);
			kzero(hi, d.hi - hi);
			dirty[i--] = dirty[--n_dirty];
		} else if (d.lo < lo) {
			dirty[i].hi = lo;
		} else if (d.hi > hi) {
			dirty[i].lo = hi;
		} else {
			dirty[i--] = dirty[--n_dirty];
		}
	}
}

/* Return [lo, hi) to the free list: clear it (or report it), then merge. */
static int ext_add(uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return 0;
	if (!report_queue(lo, hi))
		kzero(lo, hi - lo);
	return ext_put(lo, hi);
}

/* ---- hotplug ------------------------------------------------------------ */

/* Offset in the hot window above which nothing is in use. */
static uint64_t hot_in_use_top(void)
{
	uint64_t top = SB_HOT_GPA + K.hot_size;
	for (int i = 0; i < n_ext; i++)
		if (ext[i].hi == top && is_hot(ext[i].lo))
			return ext[i].lo - SB_HOT_GPA;
	return K.hot_size;
}

void mm_sync(void)
{
	const volatile struct sb_memctl *c = (const volatile struct sb_memctl *)SB_MEMCTL_GPA;
	if (!K.snapbox || c->magic != SB_MEMCTL_MAGIC || c->seq == K.mc_seq)
		return;
	uint32_t seq = c->seq;
	uint64_t size = c->hot_size & ~(SB_PAGE_2M - 1), target = c->hot_target & ~(SB_PAGE_2M - 1);
	K.mc_seq = seq;
	K.report_min = c->report_min_pages;
	if (size > SB_HOT_MAX)
		size = SB_HOT_MAX;
	if (size > K.hot_size) { /* grown: fresh memory, zero */
		ext_put(SB_HOT_GPA + K.hot_size, SB_HOT_GPA + size);
		K.hot_size = size;
	}
	if (target >= K.hot_size)
		return;
	mm_report_flush();
	struct sb_hc_mem_ctl a = { .op = SB_MEM_ACK, .seq = seq, .kept = K.hot_size };
	uint64_t lo = SB_HOT_GPA + target, hi = SB_HOT_GPA + K.hot_size;
	if (ext_is_free(lo, hi) && ext_sub(lo, hi) == 0) {
		K.hot_size = target;
		a.kept = target;
	}
	a.in_use_top = hot_in_use_top();
	hypercall(SB_HC_MEM, &a);
}

int64_t sys_brk(uint64_t addr)
{
	uint64_t cur = PAGE_UP(brk_cur), want = PAGE_UP(addr);
	mm_sync();
	if (addr < heap_lo || addr > heap_hi)
		return (int64_t)brk_cur;
	if (want > cur) {
		if (!ext_is_free(cur, want) || ext_sub(cur, want))
			return (int64_t)brk_cur;
		mm_claim(cur, want);
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
	mm_sync();
	if (!len || len > K.mem_size + K.hot_size || (off & (PAGE - 1)))
		return -EINVAL;
	len = PAGE_UP(len);
	if (!(flags & MAP_ANONYMOUS)) {
		/* one process: a shared map of a read-only file is a private one;
		 * a shared writable map of a /tmp file is refused (ENODEV) */
		int64_t r = fs_file_data((int)fd, (flags & MAP_SHARED) && (prot & 2), &data, &size);
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
		mm_claim(addr, addr + len);
		kzero(addr, len);
		a = addr;
	} else {
		a = ext_alloc_top(len);
		if (!a)
			return -ENOMEM;
		mm_claim(a, a + len);
	}
	if (data && off < size) {
		uint64_t n = size - off < len ? size - off : len;
		kcopy(a, (uint64_t)data + off, n);
	}
	return (int64_t)a;
}

int64_t sys_munmap(uint64_t addr, uint64_t len)
{
	mm_sync();
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
	mm_sync();
	if ((old & (PAGE - 1)) || !newlen || (flags & ~MREMAP_MAYMOVE))
		return -EINVAL;
	oldlen = PAGE_UP(oldlen);
	newlen = PAGE_UP(newlen);
	if (!in_heap(old, oldlen) || newlen > K.mem_size + K.hot_size)
		return -EFAULT;
	if (newlen <= oldlen) {
		ext_add(old + newlen, old + oldlen);
		return (int64_t)old;
	}
	if (in_heap(old, newlen) && ext_is_free(old + oldlen, old + newlen)) {
		if (ext_sub(old + oldlen, old + newlen))
			return -ENOMEM;
		mm_claim(old + oldlen, old + newlen);
		return (int64_t)old;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	uint64_t a = ext_alloc_top(newlen);
	if (!a)
		return -ENOMEM;
	mm_claim(a, a + newlen);
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
