/* SPDX-License-Identifier: MIT */
/* GDT, TSS, IDT and the syscall MSRs. */
#include "kernel.h"

#define MSR_EFER   0xc0000080
#define MSR_STAR   0xc0000081
#define MSR_LSTAR  0xc0000082
#define MSR_SFMASK 0xc0000084
#define EFER_SCE   0x1

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 104, "tss");

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_gate) == 16, "idt gate");

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

/* Loaded by entry.S before any C runs, on both boot paths. */
uint64_t gdt[8] __attribute__((aligned(16))) = {
	0,
	0x00af9a000000ffffULL, /* 0x08 kernel code 64 */
	0x00cf92000000ffffULL, /* 0x10 kernel data */
	0x00cffa000000ffffULL, /* 0x18 user code 32 (sysret layout) */
	0x00cff2000000ffffULL, /* 0x20 user data */
	0x00affa000000ffffULL, /* 0x28 user code 64 */
	0, 0,                  /* 0x30 TSS, filled in by cpu_init */
};
struct dtr gdt_desc = { sizeof(gdt) - 1, (uint64_t)gdt };

static struct tss tss __attribute__((aligned(16)));
static struct idt_gate idt[32] __attribute__((aligned(16)));

extern char kstack_top[], ist_stack_top[];
extern char exc0[], exc1[], exc2[], exc3[], exc4[], exc5[], exc6[], exc7[], exc8[],
	exc9[], exc10[], exc11[], exc12[], exc13[], exc14[], exc15[], exc16[], exc17[],
	exc18[], exc19[], exc20[], exc21[];

static void idt_set(int v, void *fn, int ist)
{
	uint64_t a = (uint64_t)fn;
	idt[v] = (struct idt_gate){
		.off_lo = a & 0xffff, .sel = SB_SEL_KCODE, .ist = ist, .type = 0x8e,
		.off_mid = (a >> 16) & 0xffff, .off_hi = a >> 32,
	};
}

static void tss_install(void)
{
	uint64_t b = (uint64_t)&tss;
	tss.rsp[0] = (uint64_t)kstack_top;
	tss.ist[0] = (uint64_t)ist_stack_top;
	tss.iomap_base = sizeof(tss);
	gdt[6] = (sizeof(tss) - 1) | (b & 0xffffff) << 16 | 0x89ULL << 40 |
		 ((b >> 24) & 0xff) << 56;
	gdt[7] = b >> 32;
	__asm__ volatile("ltr %w0" ::"r"(SB_SEL_TSS));
}

void cpu_init(uint64_t lstar)
{
	static void *const stubs[22] = {
		exc0, exc1, exc2, exc3, exc4, exc5, exc6, exc7, exc8, exc9, exc10,
		exc11, exc12, exc13, exc14, exc15, exc16, exc17, exc18, exc19, exc20, exc21,
	};
	struct dtr idtr = { sizeof(idt) - 1, (uint64_t)idt };

	tss_install();
	for (int v = 0; v < 22; v++)
		idt_set(v, stubs[v], v == 6 ? 1 : 0);
	__asm__ volatile("lidt %0" ::"m"(idtr));

	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
	wrmsr(MSR_STAR, (uint64_t)SB_SEL_KCODE << 32 | (uint64_t)(0x18 | 3) << 48);
	wrmsr(MSR_LSTAR, lstar);
	wrmsr(MSR_SFMASK, 0x47700); /* TF IF DF AC NT */
}
