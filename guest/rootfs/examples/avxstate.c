/* SPDX-License-Identifier: MIT */
/*
 * Vector registers across the ready point: fills ymm0-15 (and, where the
 * CPU and OS have AVX-512, zmm0-31 and k1-k7) with a pattern, makes its
 * first read of stdin (the ready point: a template is saved here) in the
 * same asm block, then stores the registers and checks them.  A clone must
 * resume with every bit intact.  Prints "ymm ok" / "zmm ok" (or "no
 * avx512"), then the request; exit 1 on any mismatch.
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static int has_avx512(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return 0;
	if ((xgetbv0() & 0xe6) != 0xe6)
		return 0;
	__cpuid_count(7, 0, a, b, c, d);
	return (b >> 16) & 1;
}

#define L(i) "vmovdqu64 " #i "*64(%[src]), %%zmm" #i "\n"
#define S(i) "vmovdqu64 %%zmm" #i ", " #i "*64(%[dst])\n"
#define LY(i) "vmovdqu " #i "*32(%[src]), %%ymm" #i "\n"
#define SY(i) "vmovdqu %%ymm" #i ", " #i "*32(%[dst])\n"
#define K(i) "kmovw " #i "*8+2048(%[src]), %%k" #i "\n"
#define KS(i) "kmovw %%k" #i ", " #i "*8+2048(%[dst])\n"

static uint8_t src[2048 + 64] __attribute__((aligned(64)));
static uint8_t dst[2048 + 64] __attribute__((aligned(64)));
static char req[4096];

int main(void)
{
	int avx512 = has_avx512();
	long n;

	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 37 + 11 + (i >> 8));
	if (avx512) {
		__asm__ volatile(
			L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13)
			L(14) L(15) L(16) L(17) L(18) L(19) L(20) L(21) L(22) L(23) L(24) L(25)
			L(26) L(27) L(28) L(29) L(30) L(31)
			K(1) K(2) K(3) K(4) K(5) K(6) K(7)
			"syscall\n"
			S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13)
			S(14) S(15) S(16) S(17) S(18) S(19) S(20) S(21) S(22) S(23) S(24) S(25)
			S(26) S(27) S(28) S(29) S(30) S(31)
			KS(1) KS(2) KS(3) KS(4) KS(5) KS(6) KS(7)
			: "=a"(n)
			: "0"(0L), "D"(0L), "S"(req), "d"(sizeof(req) - 1), [src] "r"(src), [dst] "r"(dst)
			: "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
			  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
			  "xmm15");
	} else {
		__asm__ volatile(
			LY(0) LY(1) LY(2) LY(3) LY(4) LY(5) LY(6) LY(7) LY(8) LY(9) LY(10) LY(11)
			LY(12) LY(13) LY(14) LY(15)
			"syscall\n"
			SY(0) SY(1) SY(2) SY(3) SY(4) SY(5) SY(6) SY(7) SY(8) SY(9) SY(10) SY(11)
			SY(12) SY(13) SY(14) SY(15)
			: "=a"(n)
			: "0"(0L), "D"(0L), "S"(req), "d"(sizeof(req) - 1), [src] "r"(src), [dst] "r"(dst)
			: "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
			  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
			  "xmm15");
	}
	if (n < 0)
		n = 0;
	req[n] = 0;
	int bad = 0;
	if (avx512) {
		for (int i = 0; i < 32; i++)
			if (memcmp(src + i * 64, dst + i * 64, 64))
				printf("zmm%d differs\n", i), bad = 1;
		for (int i = 1; i < 8; i++)
			if (memcmp(src + 2048 + i * 8, dst + 2048 + i * 8, 2))
				printf("k%d differs\n", i), bad = 1;
		printf(bad ? "zmm BAD\n" : "zmm ok\n");
	} else {
		for (int i = 0; i < 16; i++)
			if (memcmp(src + i * 32, dst + i * 32, 32))
				printf("ymm%d differs\n", i), bad = 1;
		printf(bad ? "ymm BAD\n" : "ymm ok\n");
		printf("no avx512\n");
	}
	printf("request: %s", req);
	return bad;
}
