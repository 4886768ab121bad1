/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/boot.h"
#include "pagetable.h"
#include "snapbox_abi.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define PAGE_4K 4096ULL
#define ET_EXEC 2
#define ET_DYN 3

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static uint64_t mib_ceil(uint64_t bytes)
{
	return (bytes + MIB - 1) / MIB;
}

/* ---- --mem -------------------------------------------------------------- */

static int mem_suffix(const char *s, uint64_t *mult)
{
	char c = (char)toupper((unsigned char)*s);

	switch (c) {
	case '\0': *mult = MIB; return 0; /* plain number: MiB, like QEMU */
	case 'B': *mult = 1; s++; break;
	case 'K': *mult = 1ULL << 10; s++; break;
	case 'M': *mult = MIB; s++; break;
	case 'G': *mult = GIB; s++; break;
	case 'T': *mult = 1ULL << 40; s++; break;
	default: return -EINVAL;
	}
	if (c != 'B' && (*s == 'i' || *s == 'I') && (s[1] == 'B' || s[1] == 'b'))
		s += 2;
	else if (c != 'B' && (*s == 'B' || *s == 'b'))
		s++;
	return *s ? -EINVAL : 0;
}

int boot__parse_mem(const char *s, uint64_t *out, struct sb_err *err)
{
	unsigned long long v;
	uint64_t mult, bytes;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || errno || mem_suffix(end, &mult) < 0)
		return err__set(err, -EINVAL, "--mem %s: expected a size like 256M or 1G", s);
	if (__builtin_mul_overflow((uint64_t)v, mult, &bytes) || bytes > SB_MAX_MEM)
		return err__set(err, -EINVAL, "--mem %s: more than the maximum of %llu GiB", s,
				SB_MAX_MEM >> 30);
	bytes = align_up(bytes, SB_PAGE_2M);
	if (bytes < SB_MIN_MEM)
		return err__set(err, -EINVAL, "--mem %s: less than the minimum of %llu MiB", s,
				SB_MIN_MEM >> 20);
	*out = bytes;
	return 0;
}

void boot__fmt_mem(uint64_t bytes, char *buf, size_t len)
{
	if (bytes % GIB == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(bytes / GIB));
	else
		snprintf(buf, len, "%lluM", (unsigned long long)mib_ceil(bytes));
}

/* ---- checks before the VM exists ---------------------------------------- */

int boot__check_kernel(const struct boot_params *p, struct sb_elf_info *info,
		       struct sb_err *err)
{
	int ret = sb_elf_parse(p->kernel, p->kernel_size, 0, info);

	if (ret != SB_ELF_OK)
		return err__set(err, -ENOEXEC, "%s: %s", p->kernel_path, sb_elf_strerror(ret));
	if (info->type != ET_EXEC)
		return err__set(err, -ENOEXEC, "%s: the kernel must be a fixed-address ELF (ET_EXEC)",
				p->kernel_path);
	for (unsigned i = 0; i < info->nseg; i++) {
		const struct sb_elf_seg *s = &info->seg[i];

		if (s->paddr != s->vaddr ||
		    !sb_range_in(s->paddr, s->memsz, SB_KERNEL_GPA, SB_USER_LOAD))
			return err__set(err, -ENOEXEC,
					"%s: segment at 0x%llx+0x%llx is outside [0x%llx, 0x%llx) or has vaddr != paddr",
					p->kernel_path, (unsigned long long)s->paddr,
					(unsigned long long)s->memsz, SB_KERNEL_GPA, SB_USER_LOAD);
	}
	if (info->interp_len)
		return err__set(err, -ENOEXEC, "%s: the kernel must be a static ELF (it has PT_INTERP)",
				p->kernel_path);
	if (info->entry < SB_KERNEL_GPA || info->entry >= SB_KERNEL_END)
		return err__set(err, -ENOEXEC, "%s: entry point 0x%llx is outside the kernel image",
				p->kernel_path, (unsigned long long)info->entry);
	if (!info->snapbox_abi)
		info->snapbox_abi = 3; /* kernels before the note */
	if (info->snapbox_abi < SB_ABI_BOOT_MIN)
		return err__set(err, -ENOEXEC, "%s: the guest kernel speaks ABI %u, which expects its root "
				"file system as a cpio in RAM; this snapbox boots kernels of ABI %d to %d, "
				"over layers (templates made with older kernels still run)", p->kernel_path,
				info->snapbox_abi, SB_ABI_BOOT_MIN, SB_ABI_VERSION);
	if (info->snapbox_abi > SB_ABI_VERSION)
		return err__set(err, -ENOEXEC, "%s: the guest kernel speaks ABI %u; this snapbox boots "
				"kernels of ABI %d to %d", p->kernel_path, info->snapbox_abi,
				SB_ABI_BOOT_MIN, SB_ABI_VERSION);
	return 0;
}

static int boot__args_size(const struct boot_params *p, uint64_t *size, struct sb_err *err)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < p->argc; i++)
		n += strlen(p->argv[i]) + 1;
	for (unsigned i = 0; i < p->envc; i++)
		n += strlen(p->envp[i]) + 1;
	*size = n;
	if (n > SB_ARGS_MAX)
		return err__set(err, -E2BIG,
				"argument list too long: %llu bytes of arguments and environment, the limit is %llu KiB",
				(unsigned long long)n, SB_ARGS_MAX >> 10);
	return 0;
}

static int boot__find_program(const struct boot_params *p, struct sbfs_hit *h,
			      const uint8_t **data, struct sb_err *err)
{
	const char *prog = p->argv[0];
	int ret = layers__lookup(p->layers, prog, 1, h, data);

	if (ret == -ENOENT || ret == -ENOTDIR)
		return err__set(err, -ENOENT, "%s: no such file in the root file system", prog);
	if (ret == -ELOOP)
		return err__set(err, -ELOOP, "%s: too many levels of symbolic links", prog);
	if (ret == -EIO)
		return err__set(err, -ENOEXEC, "%s: the root file system layer %s is damaged", prog,
				p->layers->what[h->layer]);
	if (ret < 0)
		return err__set(err, ret, "%s: %s", prog, strerror(-ret));
	if ((h->n.mode & SBFS_S_IFMT) == SBFS_S_IFDIR)
		return err__set(err, -EISDIR, "%s: is a directory", prog);
	if ((h->n.mode & SBFS_S_IFMT) != SBFS_S_IFREG)
		return err__set(err, -ENOEXEC, "%s: not a regular file", prog);
	return 0;
}

/* A dynamic program's interpreter (PT_INTERP): in the layers, a shared
 * object without an interpreter of its own; *span = its size in memory. */
static int boot__check_interp(const struct boot_params *p, const uint8_t *prog,
			      const struct sb_elf_info *info, uint64_t *span, struct sb_err *err)
{
	char path[SB_ELF_INTERP_MAX + 1];
	struct sb_elf_info ii;
	struct sbfs_hit h;
	const uint8_t *data = NULL;
	int ret;

	memcpy(path, prog + info->interp_off, info->interp_len);
	path[info->interp_len] = 0;
	ret = layers__lookup(p->layers, path, 1, &h, &data);
	if (ret == -ENOENT || ret == -ENOTDIR || (ret == 0 && (h.n.mode & SBFS_S_IFMT) != SBFS_S_IFREG))
		return err__set(err, -ENOENT, "interpreter %s not in the root file system", path);
	if (ret == -EIO)
		return err__set(err, -ENOEXEC, "interpreter %s: the root file system layer %s is damaged",
				path, p->layers->what[h.layer]);
	if (ret < 0)
		return err__set(err, -ENOEXEC, "interpreter %s: %s", path, strerror(-ret));
	ret = sb_elf_parse(data, h.n.size, 0, &ii);
	if (ret != SB_ELF_OK)
		return err__set(err, -ENOEXEC, "interpreter %s: %s", path, sb_elf_strerror(ret));
	if (ii.type != ET_DYN || ii.interp_len)
		return err__set(err, -ENOEXEC, "interpreter %s: not a shared object (ET_DYN) of its own",
				path);
	*span = ii.hi - ii.lo;
	return 0;
}

int boot__check_program(const struct boot_params *p, struct sb_err *err)
{
	struct sbfs_hit h;
	struct sb_elf_info info;
	const uint8_t *data = NULL;
	uint64_t args, need, span, interp = 0;
	char mem[32];
	int ret;

	if (p->argc == 0)
		return err__set(err, -EINVAL, "no program given");
	ret = boot__find_program(p, &h, &data, err);
	if (ret < 0)
		return ret;
	ret = sb_elf_parse(data, h.n.size, SB_USER_LOAD, &info);
	if (ret != SB_ELF_OK)
		return err__set(err, -ENOEXEC, "%s: %s", p->argv[0], sb_elf_strerror(ret));
	if (info.interp_len) {
		ret = boot__check_interp(p, data, &info, &interp, err);
		if (ret < 0)
			return ret;
		interp += BOOT_DYN_SLACK;
	}
	ret = boot__args_size(p, &args, err);
	if (ret < 0)
		return ret;
	/* the root file system is not in RAM: the program, its interpreter and
	 * the libraries it loads, its stack, slack */
	span = info.hi - info.lo;
	need = (info.hi > SB_USER_BASE + span ? info.hi : SB_USER_BASE + span) + interp +
	       BOOT_STACK_RESERVE + BOOT_SLACK;
	need = align_up(need, SB_PAGE_2M);
	if (p->mem_size < need) {
		boot__fmt_mem(p->mem_size, mem, sizeof(mem));
		return err__set(err, -ENOMEM, "--mem %s is too small for %s (needs at least %llu MiB)",
				mem, p->argv[0], (unsigned long long)(need / MIB));
	}
	return 0;
}

/* ---- laying out guest RAM ----------------------------------------------- */

static int boot__load_kernel(struct guest_ram *ram, const struct boot_params *p,
			     uint64_t *entry, uint32_t *abi, struct sb_err *err)
{
	struct sb_elf_info info;
	int ret = boot__check_kernel(p, &info, err);

	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < info.nseg; i++) {
		const struct sb_elf_seg *s = &info.seg[i];
		uint8_t *dst = ram__gpa_to_host(ram, s->paddr, s->memsz);

		if (!dst)
			return err__set(err, -EFAULT, "%s: segment at 0x%llx does not fit in guest RAM",
					p->kernel_path, (unsigned long long)s->paddr);
		memcpy(dst, p->kernel + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	*entry = info.entry;
	*abi = info.snapbox_abi;
	return 0;
}

static int boot__page_tables(struct guest_ram *ram, uint64_t img_span, struct sb_err *err)
{
	uint64_t n_pd = sb_pt_pd_count(ram->size, 1), n_img = sb_pt_img_pd_count(img_span);
	/* the kernel below SB_USER_BASE; the layer window readable by the
	 * user-mode syscall layer (and the program), writable by nobody */
	struct sb_pt_range sup[1] = { { 0, SB_USER_BASE, SB_PT_SUPERVISOR } };
	struct sb_pt_tables t = {
		.pml4 = ram__gpa_to_host(ram, SB_PML4_GPA, PAGE_4K),
		.pdpt = ram__gpa_to_host(ram, SB_PDPT_GPA, PAGE_4K),
		.pd = ram__gpa_to_host(ram, SB_PD_GPA, n_pd * PAGE_4K),
		.pml4_gpa = SB_PML4_GPA,
		.pdpt_gpa = SB_PDPT_GPA,
		.pd_gpa = SB_PD_GPA,
		.img_gpa = SB_IMG_GPA,
		.pd_img = ram__gpa_to_host(ram, SB_IMG_PD_GPA, (n_img ? n_img : 1) * PAGE_4K),
		.pd_img_gpa = SB_IMG_PD_GPA,
	};

	if (!t.pml4 || !t.pdpt || !t.pd || !t.pd_img || SB_PD_GPA + n_pd * PAGE_4K > SB_IMG_PD_GPA ||
	    img_span > SB_IMG_MAX)
		return err__set(err, -EINVAL, "page tables for %llu MiB and %llu MiB of layers do not fit",
				(unsigned long long)(ram->size / MIB), (unsigned long long)(img_span / MIB));
	if (sb_pt_build(&t, ram->size, 1, sup, 1, img_span) < 0)
		return err__set(err, -EINVAL, "sb_pt_build: cannot map %llu bytes",
				(unsigned long long)ram->size);
	return 0;
}

static uint64_t copy_strings(uint8_t *dst, char *const *v, unsigned n)
{
	uint64_t o = 0;

	for (unsigned i = 0; i < n; i++) {
		size_t len = strlen(v[i]) + 1;

		memcpy(dst + o, v[i], len);
		o += len;
	}
	return o;
}

static int boot__args(struct guest_ram *ram, const struct boot_params *p, uint64_t *size,
		      struct sb_err *err)
{
	uint8_t *dst;
	int ret = boot__args_size(p, size, err);

	if (ret < 0)
		return ret;
	dst = ram__gpa_to_host(ram, SB_ARGS_GPA, SB_ARGS_MAX);
	if (!dst)
		return err__set(err, -EINVAL, "guest RAM too small for the argument area");
	copy_strings(dst + copy_strings(dst, p->argv, p->argc), p->envp, p->envc);
	return 0;
}

/* The layer table the kernel reads (struct sb_layer[], SB_LAYERS_GPA). */
static int boot__layers(struct guest_ram *ram, const struct boot_params *p, struct sb_err *err)
{
	struct sb_layer *tab;

	if (!p->layers || p->layers->n == 0 || p->layers->n > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "no root file system layers");
	tab = ram__gpa_to_host(ram, SB_LAYERS_GPA, p->layers->n * sizeof(*tab));
	if (!tab)
		return err__set(err, -EINVAL, "guest RAM too small for the layer table");
	for (unsigned i = 0; i < p->layers->n; i++)
		tab[i] = (struct sb_layer){ layers__gpa(p->layers, i), p->layers->map[i].size };
	return 0;
}

int boot__setup(struct guest_ram *ram, const struct boot_params *p, uint64_t *entry,
		uint32_t *abi, struct sb_err *err)
{
	struct sb_boot_info bi;
	uint64_t args_size = 0;
	void *dst;
	int ret;

	if (ram->size != p->mem_size || ram->size % SB_PAGE_2M || ram->size < SB_MIN_MEM ||
	    ram->size > SB_MAX_MEM)
		return err__set(err, -EINVAL, "guest RAM size %llu is not a multiple of 2 MiB in [%llu MiB, %llu GiB]",
				(unsigned long long)ram->size, SB_MIN_MEM >> 20, SB_MAX_MEM >> 30);
	memset(&bi, 0, sizeof(bi));
	ret = boot__load_kernel(ram, p, entry, abi, err);
	if (!ret)
		ret = boot__layers(ram, p, err);
	if (!ret)
		ret = boot__page_tables(ram, layers__span(p->layers), err);
	if (!ret)
		ret = boot__args(ram, p, &args_size, err);
	if (ret < 0)
		return ret;

	bi.magic = SB_BOOT_MAGIC;
	bi.abi_version = *abi; /* the kernel's own (boot__check_kernel) */
	bi.mem_size = ram->size;
	bi.layers_gpa = SB_LAYERS_GPA;
	bi.n_layers = p->layers->n;
	bi.args_gpa = SB_ARGS_GPA;
	bi.args_size = args_size;
	bi.argc = p->argc;
	bi.envc = p->envc;
	bi.flags = SB_BOOT_PT_READY | (p->flags & (SB_BOOT_TRACE_SYSCALLS | SB_BOOT_USER_SYSCALLS));
	bi.mmio_gpa = ram->size; /* the hypercall page right after RAM */
	dst = ram__gpa_to_host(ram, SB_BOOTINFO_GPA, sizeof(bi));
	if (!dst)
		return err__set(err, -EINVAL, "guest RAM too small for the boot info");
	memcpy(dst, &bi, sizeof(bi));
	return 0;
}
