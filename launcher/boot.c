/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/boot.h"
#include "launcher/rootfs.h"
#include "pagetable.h"
#include "snapbox_abi.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define PAGE_4K 4096ULL
#define ET_EXEC 2

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static uint64_t align_down(uint64_t x, uint64_t a)
{
	return x & ~(a - 1);
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
	if (info->entry < SB_KERNEL_GPA || info->entry >= SB_KERNEL_END)
		return err__set(err, -ENOEXEC, "%s: entry point 0x%llx is outside the kernel image",
				p->kernel_path, (unsigned long long)info->entry);
	if (!info->snapbox_abi)
		info->snapbox_abi = 3; /* kernels before the note */
	if (info->snapbox_abi < SB_ABI_BOOT_MIN || info->snapbox_abi > SB_ABI_VERSION)
		return err__set(err, -ENOEXEC, "%s: the guest kernel speaks ABI %u; this snapbox boots "
				"kernels of ABI %d to %d", p->kernel_path, info->snapbox_abi,
				SB_ABI_BOOT_MIN, SB_ABI_VERSION);
	return 0;
}

/* Smallest RAM that leaves the rootfs window above SB_USER_LOAD. */
static uint64_t rootfs_min_mem(uint64_t initrd_size)
{
	/* + the file index: 32 bytes per entry of >= 112 archive bytes */
	return SB_USER_LOAD + align_up(initrd_size + initrd_size / 3 + 8, SB_PAGE_2M);
}

/* prog_need: what the program needs in all (0 if unknown), for the hint. */
static int boot__check_rootfs_fits(const struct boot_params *p, uint64_t prog_need,
				   struct sb_err *err)
{
	uint64_t need = rootfs_min_mem(p->initrd_size);
	char mem[32], hint[128] = "";

	if (p->mem_size >= need)
		return 0;
	boot__fmt_mem(p->mem_size, mem, sizeof(mem));
	if (prog_need)
		snprintf(hint, sizeof(hint), "; with %s it needs at least %llu MiB", p->argv[0],
			 (unsigned long long)(prog_need / MIB));
	return err__set(err, -ENOMEM,
			"--mem %s is too small: the root file system alone needs %llu MiB%s",
			mem, (unsigned long long)mib_ceil(p->initrd_size), hint);
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

static int boot__find_program(const struct boot_params *p, struct sb_cpio_entry *e,
			      struct sb_err *err)
{
	const char *prog = p->argv[0];
	int ret = rootfs__lookup(p->initrd, p->initrd_size, prog, e);

	if (ret == -ENOENT)
		return err__set(err, -ENOENT, "%s: no such file in the root file system", prog);
	if (ret == -ELOOP)
		return err__set(err, -ELOOP, "%s: too many levels of symbolic links", prog);
	if (ret == -EINVAL)
		return err__set(err, -ENOEXEC, "%s: the root file system archive is malformed", prog);
	if (ret < 0)
		return err__set(err, ret, "%s: %s", prog, strerror(-ret));
	if (S_ISDIR(e->mode))
		return err__set(err, -EISDIR, "%s: is a directory", prog);
	if (!S_ISREG(e->mode))
		return err__set(err, -ENOEXEC, "%s: not a regular file", prog);
	return 0;
}

int boot__check_program(const struct boot_params *p, struct sb_err *err)
{
	struct sb_cpio_entry e;
	struct sb_elf_info info;
	uint64_t args, need, span;
	char mem[32];
	int ret;

	if (p->argc == 0)
		return err__set(err, -EINVAL, "no program given");
	ret = boot__find_program(p, &e, err);
	if (ret < 0)
		return ret;
	ret = sb_elf_parse(e.data, e.size, SB_USER_LOAD, &info);
	if (ret != SB_ELF_OK)
		return err__set(err, -ENOEXEC, "%s: %s", p->argv[0], sb_elf_strerror(ret));
	ret = boot__args_size(p, &args, err);
	if (ret < 0)
		return ret;
	span = info.hi - info.lo;
	need = (info.hi > SB_USER_BASE + span ? info.hi : SB_USER_BASE + span) +
	       BOOT_STACK_RESERVE + BOOT_SLACK + align_up(p->initrd_size, SB_PAGE_2M);
	need = align_up(need, SB_PAGE_2M);
	ret = boot__check_rootfs_fits(p, need, err);
	if (ret < 0)
		return ret;
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

static int boot__page_tables(struct guest_ram *ram, uint64_t initrd_gpa, struct sb_err *err)
{
	uint64_t n_pd = sb_pt_pd_count(ram->size, 1);
	/* kernel below SB_USER_BASE; the rootfs window readable by the
	 * user-mode syscall layer, writable by nobody */
	struct sb_pt_range sup[2] = {
		{ 0, SB_USER_BASE, SB_PT_SUPERVISOR },
		{ align_down(initrd_gpa, SB_PAGE_2M), ram->size, SB_PT_USER_RO },
	};
	struct sb_pt_tables t = {
		.pml4 = ram__gpa_to_host(ram, SB_PML4_GPA, PAGE_4K),
		.pdpt = ram__gpa_to_host(ram, SB_PDPT_GPA, PAGE_4K),
		.pd = ram__gpa_to_host(ram, SB_PD_GPA, n_pd * PAGE_4K),
		.pml4_gpa = SB_PML4_GPA,
		.pdpt_gpa = SB_PDPT_GPA,
		.pd_gpa = SB_PD_GPA,
	};

	if (!t.pml4 || !t.pdpt || !t.pd || SB_PD_GPA + n_pd * PAGE_4K > SB_ARGS_GPA)
		return err__set(err, -EINVAL, "page tables for %llu MiB do not fit below 0x%llx",
				(unsigned long long)(ram->size / MIB), SB_ARGS_GPA);
	if (sb_pt_build(&t, ram->size, 1, sup, 2) < 0)
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

/*
 * Index the archive for the guest kernel (struct sb_file_entry, names and
 * data as guest addresses inside the archive at initrd_gpa).  With idx NULL
 * only counts.  Returns the entry count or -EINVAL.
 */
static int64_t boot__file_index(const struct boot_params *p, uint64_t initrd_gpa,
				struct sb_file_entry *idx)
{
	struct sb_cpio_entry e;
	uint64_t off = 0;
	int64_t n = 0;
	int r;

	while ((r = sb_cpio_next(p->initrd, p->initrd_size, &off, &e)) == 1) {
		const char *name = e.name;
		uint32_t len = e.namelen;

		while (len && (*name == '/' || (*name == '.' && len > 1 && name[1] == '/'))) {
			name++;
			len--;
		}
		if (!len || (len == 1 && *name == '.'))
			continue;
		if (idx)
			idx[n] = (struct sb_file_entry){
				.name_gpa = initrd_gpa + (uint64_t)((const uint8_t *)name - p->initrd),
				.namelen = len,
				.mode = e.mode,
				.data_gpa = initrd_gpa + (uint64_t)(e.data - p->initrd),
				.size = e.size,
			};
		n++;
	}
	return r < 0 ? -EINVAL : n;
}

/* The archive at the top of RAM, its file index right after it. */
static int boot__initrd(struct guest_ram *ram, const struct boot_params *p, uint64_t *gpa,
			struct sb_boot_info *bi, struct sb_err *err)
{
	uint8_t *dst;
	uint64_t idx_off, idx_bytes;
	int64_t n;
	int ret = boot__check_rootfs_fits(p, 0, err);

	if (ret < 0)
		return ret;
	n = boot__file_index(p, 0, NULL);
	if (n < 0)
		return err__set(err, -EINVAL, "the root file system archive is malformed");
	idx_off = align_up(p->initrd_size, 8);
	idx_bytes = (uint64_t)n * sizeof(struct sb_file_entry);
	*gpa = align_down(ram->size - idx_off - idx_bytes, PAGE_4K);
	dst = ram__gpa_to_host(ram, *gpa, idx_off + idx_bytes);
	if (!dst)
		return err__set(err, -EINVAL, "root file system does not fit in guest RAM");
	memcpy(dst, p->initrd, p->initrd_size);
	boot__file_index(p, *gpa, (struct sb_file_entry *)(dst + idx_off));
	bi->files_gpa = *gpa + idx_off;
	bi->files_count = (uint32_t)n;
	return 0;
}

int boot__setup(struct guest_ram *ram, const struct boot_params *p, uint64_t *entry,
		uint32_t *abi, struct sb_err *err)
{
	struct sb_boot_info bi;
	uint64_t initrd_gpa = 0, args_size = 0;
	void *dst;
	int ret;

	if (ram->size != p->mem_size || ram->size % SB_PAGE_2M || ram->size < SB_MIN_MEM ||
	    ram->size > SB_MAX_MEM)
		return err__set(err, -EINVAL, "guest RAM size %llu is not a multiple of 2 MiB in [%llu MiB, %llu GiB]",
				(unsigned long long)ram->size, SB_MIN_MEM >> 20, SB_MAX_MEM >> 30);
	memset(&bi, 0, sizeof(bi));
	ret = boot__load_kernel(ram, p, entry, abi, err);
	if (!ret)
		ret = boot__initrd(ram, p, &initrd_gpa, &bi, err);
	if (!ret)
		ret = boot__page_tables(ram, initrd_gpa, err);
	if (!ret)
		ret = boot__args(ram, p, &args_size, err);
	if (ret < 0)
		return ret;

	bi.magic = SB_BOOT_MAGIC;
	bi.abi_version = *abi; /* the kernel's own (boot__check_kernel) */
	bi.mem_size = ram->size;
	bi.initrd_gpa = initrd_gpa;
	bi.initrd_size = p->initrd_size;
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
