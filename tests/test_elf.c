/* SPDX-License-Identifier: MIT */
/* The ELF checker/loader plan shared by the host and the guest kernel. */
#include <criterion/criterion.h>
#include "run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "elf64.h"


Test(elf, static_musl_lua_is_exec_with_phdrs)
{
	size_t n;
	uint8_t *img = slurp("build/guest/rootfs/bin/lua", &n);
	struct sb_elf_info e;
	cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_OK);
	cr_assert_eq(e.type, 2);
	cr_assert_eq(e.bias, 0);
	cr_assert_geq(e.lo, 0x400000);
	cr_assert_gt(e.hi, e.lo);
	cr_assert_eq(e.hi & 0xfff, 0);
	cr_assert(e.entry >= e.lo && e.entry < e.hi);
	cr_assert_eq(e.phentsize, 56);
	cr_assert(e.phdr_vaddr >= e.lo && e.phdr_vaddr < e.hi, "AT_PHDR must point into the image");
	cr_assert_geq(e.nseg, 2);
	for (unsigned i = 0; i < e.nseg; i++)
		cr_assert_leq(e.seg[i].filesz, e.seg[i].memsz);
	free(img);
}

Test(elf, kernel_has_pvh_note_and_low_load)
{
	size_t n;
	uint8_t *img = slurp("build/guest/kernel.elf", &n);
	struct sb_elf_info e;
	cr_assert_eq(sb_elf_parse(img, n, 0, &e), SB_ELF_OK);
	cr_assert_neq(e.pvh_entry, 0, "QEMU boots us through the PVH note");
	cr_assert(e.pvh_entry >= 0x100000 && e.pvh_entry < 0x200000, "entry in the kernel part");
	cr_assert(e.lo >= 0x100000 && e.hi <= 0x400000, "kernel + syscall layer below 4 MiB");
	int kernel = 0, sys = 0;
	for (unsigned i = 0; i < e.nseg; i++) {
		kernel |= e.seg[i].vaddr >= 0x100000 && e.seg[i].vaddr + e.seg[i].memsz <= 0x200000;
		sys |= e.seg[i].vaddr >= 0x201000 && e.seg[i].vaddr + e.seg[i].memsz <= 0x400000;
	}
	cr_assert(kernel && sys, "a supervisor segment below 2 MiB and a syscall-layer segment above");
	free(img);
}

Test(elf, dynamic_host_binary_reports_its_interpreter)
{
	size_t n;
	uint8_t *img = slurp("/bin/sh", &n);
	struct sb_elf_info e;
	const char *ld = "/lib64/ld-linux-x86-64.so.2";
	cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_OK);
	cr_assert_eq(e.interp_len, strlen(ld));
	cr_assert(e.interp_off + e.interp_len < n);
	cr_assert(!memcmp(img + e.interp_off, ld, e.interp_len + 1), "PT_INTERP: %.*s",
		  (int)e.interp_len, (const char *)img + e.interp_off);
	cr_assert_neq(e.phdr_vaddr, 0, "AT_PHDR");
	/* a PT_INTERP that is not a NUL-terminated path inside the file */
	uint64_t off = e.interp_off, len = e.interp_len, phoff;
	memcpy(&phoff, img + 32, 8);
	for (uint16_t i = 0; i < e.phnum; i++) {
		uint8_t *ph = img + phoff + i * 56u;
		uint64_t filesz;
		if (ph[0] != 3)
			continue;
		img[off + len] = 'x';
		cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_EBADPH);
		img[off + len] = 0;
		memcpy(&filesz, ph + 32, 8);
		memcpy(ph + 32, &n, 8);
		cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_EBADPH);
		memcpy(ph + 32, &filesz, 8);
		cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_OK);
	}
	/* a static program has none */
	free(img);
	img = slurp(build_file("guest/rootfs/bin/hello"), &n);
	cr_assert_eq(sb_elf_parse(img, n, 0x400000, &e), SB_ELF_OK);
	cr_assert_eq(e.interp_len, 0);
	free(img);
}

static void minimal_header(uint8_t *b, size_t n)
{
	memset(b, 0, n);
	memcpy(b, "\x7f" "ELF", 4);
	b[4] = 2; /* 64-bit */
	b[5] = 1; /* little endian */
	b[6] = 1;
	b[16] = 2; /* ET_EXEC */
	b[18] = 62; /* x86-64 */
}

Test(elf, refusals_have_distinct_reasons)
{
	uint8_t b[256];
	struct sb_elf_info e;

	cr_assert_eq(sb_elf_parse((const uint8_t *)"hello world, not an ELF", 23, 0, &e), SB_ELF_ENOTELF);
	cr_assert_eq(sb_elf_parse(b, 0, 0, &e), SB_ELF_ENOTELF);

	minimal_header(b, sizeof(b));
	b[4] = 1;
	cr_assert_eq(sb_elf_parse(b, sizeof(b), 0, &e), SB_ELF_E32);

	minimal_header(b, sizeof(b));
	b[18] = 3; /* EM_386 */
	cr_assert_eq(sb_elf_parse(b, sizeof(b), 0, &e), SB_ELF_EARCH);

	minimal_header(b, sizeof(b));
	b[16] = 1; /* ET_REL */
	cr_assert_eq(sb_elf_parse(b, sizeof(b), 0, &e), SB_ELF_ETYPE);

	/* truncated: a valid ident but only 20 bytes */
	minimal_header(b, sizeof(b));
	cr_assert_eq(sb_elf_parse(b, 20, 0, &e), SB_ELF_EBADPH);
}

Test(elf, program_headers_out_of_bounds_or_overflowing)
{
	size_t n;
	uint8_t *img = slurp("build/guest/rootfs/bin/hello", &n);
	struct sb_elf_info e;
	uint64_t phoff;

	/* e_phoff pointing past the end */
	memcpy(&phoff, img + 32, 8);
	uint64_t bad = n - 8;
	memcpy(img + 32, &bad, 8);
	cr_assert_eq(sb_elf_parse(img, n, 0, &e), SB_ELF_EBADPH);
	/* e_phoff so large that phoff + phnum * 56 wraps */
	bad = UINT64_MAX - 16;
	memcpy(img + 32, &bad, 8);
	cr_assert_eq(sb_elf_parse(img, n, 0, &e), SB_ELF_EBADPH);
	memcpy(img + 32, &phoff, 8);
	cr_assert_eq(sb_elf_parse(img, n, 0, &e), SB_ELF_OK);

	/* a PT_LOAD whose file range runs past the end of the file */
	uint8_t *ph = img + phoff;
	for (int i = 0; i < 16; i++, ph += 56) {
		uint32_t type;
		memcpy(&type, ph, 4);
		if (type == 1) {
			uint64_t big = n;
			memcpy(ph + 32, &big, 8); /* p_filesz */
			break;
		}
	}
	cr_assert_eq(sb_elf_parse(img, n, 0, &e), SB_ELF_EBADPH);
	/* the same image cut short */
	cr_assert_neq(sb_elf_parse(img, 100, 0, &e), SB_ELF_OK);
	free(img);
}

Test(elf, static_pie_is_biased_to_the_load_base)
{
	size_t n;
	uint8_t *img = slurp("build/guest/rootfs/bin/hello", &n);
	struct sb_elf_info e;
	/* turn it into a DYN in place: the load plan must move by pie_base */
	uint16_t dyn = 3;
	memcpy(img + 16, &dyn, 2);
	cr_assert_eq(sb_elf_parse(img, n, 0x10000000, &e), SB_ELF_OK);
	cr_assert_eq(e.lo, 0x10000000);
	cr_assert_eq(e.bias, 0x10000000 - 0x400000);
	free(img);
}
