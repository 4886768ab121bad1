/* SPDX-License-Identifier: MIT */
/* The two boot paths meet in kernel_start(). */
#include "kernel.h"
#include "pagetable.h"

static void build_page_tables(void)
{
	struct sb_pt_tables t = {
		.pml4 = (uint64_t *)SB_PML4_GPA, .pdpt = (uint64_t *)SB_PDPT_GPA,
		.pd = (uint64_t *)SB_PD_GPA, .pml4_gpa = SB_PML4_GPA,
		.pdpt_gpa = SB_PDPT_GPA, .pd_gpa = SB_PD_GPA,
	};
	struct sb_pt_range sup[2] = {
		{ 0, SB_USER_BASE, SB_PT_SUPERVISOR },
		{ K.user_top, K.mem_size, SB_PT_USER_RO },
	};
	if (sb_pt_build(&t, K.mem_size, 0, sup, 2, 0))
		kpanic(SB_PANIC_KERNEL, "cannot build page tables", 0);
	__asm__ volatile("mov %0, %%cr3" ::"r"(SB_PML4_GPA) : "memory");
}

static __attribute__((noreturn)) void kernel_start(int pt_ready)
{
	if (K.mem_size > SB_MAX_MEM || K.mem_size < SB_MIN_MEM)
		kpanic(SB_PANIC_KERNEL, "unsupported memory size", 0);
	K.user_top = K.initrd_size ? ((uint64_t)K.initrd & ~(SB_PAGE_2M - 1)) : K.mem_size;
	/* QEMU (PVH) has no hypercall device to report the path to */
	K.sc_slow = (K.flags & SB_BOOT_TRACE_SYSCALLS ? SC_SLOW_TRACE : 0) |
		    (K.snapbox ? SC_SLOW_REPORT_PATH : 0);
	if (k_proc()) { /* a host process: no page tables, GDT, IDT or MSRs */
		fs_init();
		exec_init_program();
	}
	if (!pt_ready)
		build_page_tables();
	cpu_init((K.flags & SB_BOOT_USER_SYSCALLS) && K.mmio ? (uint64_t)sys_entry_user
							    : SB_TRAMPOLINE_GPA);
	/* the syscall trampoline: LSTAR points here; `ud2` traps into #UD */
	*(volatile uint16_t *)SB_TRAMPOLINE_GPA = 0x0b0f;
	fs_init();
	exec_init_program();
}

void kmain_snapbox(const struct sb_boot_info *bi)
{
	K.snapbox = 1;
	if (bi->magic != SB_BOOT_MAGIC || bi->abi_version != SB_ABI_VERSION)
		kpanic(SB_PANIC_KERNEL, "boot info has a bad magic or ABI version", 0);
	K.flags = bi->flags;
	K.mem_size = bi->mem_size;
	K.initrd = (const uint8_t *)bi->initrd_gpa;
	K.initrd_size = bi->initrd_size;
	K.layers = (const struct sb_layer *)bi->layers_gpa;
	K.n_layers = bi->n_layers;
	K.mmio = bi->mmio_gpa;

	const char *p = (const char *)bi->args_gpa, *end = p + bi->args_size;
	uint32_t total = bi->argc + bi->envc;
	if (bi->argc == 0 || bi->argc > 255 || bi->envc > 255)
		kpanic(SB_PANIC_KERNEL, "bad argument count in boot info", 0);
	for (uint32_t i = 0; i < total; i++) {
		const char *s = p;
		while (p < end && *p)
			p++;
		if (p >= end)
			kpanic(SB_PANIC_KERNEL, "arguments overrun their area", 0);
		p++;
		if (i < bi->argc)
			K.argv[K.argc++] = s;
		else
			K.envp[K.envc++] = s;
	}
	kernel_start(!!(bi->flags & SB_BOOT_PT_READY));
}

/* ---- QEMU: PVH boot ---------------------------------------------------- */
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

static char pvh_cmdline[1024];

static void pvh_split_cmdline(void)
{
	char *c = pvh_cmdline;
	while (*c && K.argc < 255) {
		while (*c == ' ')
			*c++ = 0;
		if (!*c)
			break;
		K.argv[K.argc++] = c;
		while (*c && *c != ' ')
			c++;
	}
	static const char *const env[] = { "PATH=/bin:/usr/bin", "HOME=/" };
	K.envp[0] = env[0];
	K.envp[1] = env[1];
	K.envc = 2;
}

void kmain_pvh(const struct hvm_start_info *si)
{
	K.snapbox = 0;
	if (si->magic != 0x336ec578)
		kpanic(SB_PANIC_KERNEL, "PVH: bad start info magic", 0);
	if (si->cmdline_paddr) {
		const char *c = (const char *)si->cmdline_paddr;
		size_t i = 0;
		while (c[i] && i < sizeof(pvh_cmdline) - 1) {
			pvh_cmdline[i] = c[i];
			i++;
		}
	}
	if (si->nr_modules) {
		const struct hvm_modlist_entry *m = (const void *)si->modlist_paddr;
		K.initrd = (const uint8_t *)m->paddr;
		K.initrd_size = m->size;
	}
	uint64_t top = 0;
	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *e = (const void *)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			if (e[i].type == 1 && e[i].addr + e[i].size > top)
				top = e[i].addr + e[i].size;
	}
	if (!top)
		top = ((uint64_t)K.initrd + K.initrd_size + SB_PAGE_2M - 1) & ~(SB_PAGE_2M - 1);
	K.mem_size = top & ~(SB_PAGE_2M - 1);
	if (K.mem_size > (1ULL << 30))
		K.mem_size = 1ULL << 30; /* the boot tables map 1 GiB */
	pvh_split_cmdline();
	if (!K.argc)
		kpanic(SB_PANIC_EXEC, "no program given on the kernel command line", 0);
	kernel_start(0);
}
