/* SPDX-License-Identifier: MIT */
/* Freestanding helpers.  Bulk copies go to the host (one exit) because every
 * kernel instruction is emulated on kvm_pvm. */
#include "kernel.h"

#define HOST_COPY_MIN 256

void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return ret;
}

void *memset(void *d, int c, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] - y[i];
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Kernel mode is emulated only under kvm_pvm (which also runs our system
 * calls in user mode: SB_BOOT_USER_SYSCALLS); on VMX/SVM it is the CPU's,
 * and a host call would cost more than the copy. */
static int kernel_mode_emulated(void)
{
	return K.snapbox && (K.flags & SB_BOOT_USER_SYSCALLS) && !cpu_user_mode();
}

/* In user mode copies run natively; in (emulated) kernel mode big ones go
 * to the host. */
void kcopy(uint64_t dst, uint64_t src, uint64_t n)
{
	if (n >= HOST_COPY_MIN && kernel_mode_emulated()) {
		struct sb_hc_mem m = { .dst = dst, .src = src, .len = n };
		hypercall(SB_HC_MEMCPY, &m);
		return;
	}
	memmove((void *)dst, (const void *)src, n);
}

/* Clear only what is not zero already: reading an untouched page does not
 * make the host allocate it (nor copy a template page in a clone). */
static void zero_sparse(uint64_t dst, uint64_t n)
{
	while (n) {
		uint64_t chunk = PAGE - (dst & (PAGE - 1));
		const uint64_t *p = (const uint64_t *)dst;
		uint64_t acc = 0;
		if (chunk > n)
			chunk = n;
		for (uint64_t i = 0; i < chunk / 8 && !acc; i++)
			acc |= p[i];
		if (acc || (chunk & 7))
			memset((void *)dst, 0, chunk);
		dst += chunk;
		n -= chunk;
	}
}

void kzero(uint64_t dst, uint64_t n)
{
	if (cpu_user_mode()) {
		zero_sparse(dst, n);
		return;
	}
	if (n >= HOST_COPY_MIN && kernel_mode_emulated()) {
		struct sb_hc_mem m = { .dst = dst, .len = n, .val = 0 };
		hypercall(SB_HC_MEMSET, &m);
		return;
	}
	memset((void *)dst, 0, n);
}

/*
 * The randomness pool (ABI 4): the host fills it with fresh getrandom()
 * bytes with every stdin call (SB_HC_STDIN), and it is emptied when such a
 * call starts.  So bytes in a template's RAM are never served: a clone's
 * pool comes from its own completion of the pending stdin call.  Bytes are
 * served once, in order; then SB_HC_RANDOM.  2 KiB covers a stdio read of
 * /dev/urandom (musl: the request plus its 1 KiB buffer).  One page with
 * its indices, which the kernel writes anyway.
 */
#define POOL_SIZE 2048
static struct {
	uint32_t pos, end;      /* unserved bytes: b[pos, end) */
	uint8_t b[POOL_SIZE];
} pool __attribute__((aligned(4096)));
_Static_assert(POOL_SIZE <= SB_HC_POOL_MAX, "pool size");

void krandom_pool_give(struct sb_hc_stdin *s)
{
	pool.pos = pool.end = 0;
	s->pool_gpa = (uint64_t)pool.b;
	s->pool_len = POOL_SIZE;
}

void krandom_pool_filled(const struct sb_hc_stdin *s)
{
	pool.pos = 0;
	pool.end = s->pool_fill <= POOL_SIZE ? s->pool_fill : 0;
}

void krandom(void *dst, uint64_t n)
{
	if (K.snapbox) {
		uint64_t k = pool.end - pool.pos;
		if (k > n)
			k = n;
		if (k) {
			memcpy(dst, pool.b + pool.pos, k);
			pool.pos += (uint32_t)k;
			dst = (uint8_t *)dst + k;
			n -= k;
		}
		if (!n)
			return;
		struct sb_hc_mem m = { .dst = (uint64_t)dst, .len = n };
		hypercall(SB_HC_RANDOM, &m);
		return;
	}
	/* QEMU benchmark path only: not cryptographic. */
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	uint64_t x = ((uint64_t)hi << 32 | lo) | 1;
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint8_t *)dst)[i] = (uint8_t)x;
	}
}

size_t kfmt_hex(char *buf, uint64_t v)
{
	static const char d[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0, i = 0;
	do {
		tmp[n++] = d[v & 15];
		v >>= 4;
	} while (v);
	buf[i++] = '0';
	buf[i++] = 'x';
	while (n)
		buf[i++] = tmp[--n];
	return i;
}

size_t kfmt_dec(char *buf, int64_t v)
{
	char tmp[20];
	size_t n = 0, i = 0;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	if (v < 0)
		buf[i++] = '-';
	do {
		tmp[n++] = '0' + u % 10;
		u /= 10;
	} while (u);
	while (n)
		buf[i++] = tmp[--n];
	return i;
}

int user_string(uint64_t p, char *out, size_t cap)
{
	for (size_t i = 0; i < cap; i++) {
		if (!user_ok(p + i, 1))
			return -EFAULT;
		out[i] = *(const char *)(p + i);
		if (!out[i])
			return 0;
	}
	return -ENAMETOOLONG;
}
