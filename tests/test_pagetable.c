/* SPDX-License-Identifier: MIT */
/* The 2 MiB identity page-table builder shared by host and guest. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include "pagetable.h"
#include "snapbox_abi.h"

struct tables {
	uint64_t pml4[512], pdpt[512], pd[4][512], img[8][512];
};

static void build_img(struct tables *t, uint64_t mem, int mmio, const struct sb_pt_range *sup,
		      unsigned n, uint64_t img, int expect)
{
	struct sb_pt_tables pt = {
		.pml4 = t->pml4, .pdpt = t->pdpt, .pd = &t->pd[0][0],
		.pml4_gpa = SB_PML4_GPA, .pdpt_gpa = SB_PDPT_GPA, .pd_gpa = SB_PD_GPA,
		.img_gpa = SB_IMG_GPA, .pd_img = &t->img[0][0], .pd_img_gpa = SB_IMG_PD_GPA,
	};
	memset(t, 0xa5, sizeof(*t)); /* garbage must be overwritten */
	cr_assert_eq(sb_pt_build(&pt, mem, mmio, sup, n, img), expect);
}

static void build(struct tables *t, uint64_t mem, int mmio, const struct sb_pt_range *sup,
		  unsigned n, int expect)
{
	build_img(t, mem, mmio, sup, n, 0, expect);
}

Test(pagetable, maps_all_ram_with_2m_pages)
{
	struct tables *t = malloc(sizeof(*t));
	struct sb_pt_range sup[] = { { 0, SB_USER_BASE, SB_PT_SUPERVISOR },
				     { 250ULL << 20, 256ULL << 20, SB_PT_USER_RO } };
	build(t, 256ULL << 20, 0, sup, 2, 0);

	cr_assert_eq(t->pml4[0], SB_PDPT_GPA | SB_PTE_P | SB_PTE_RW | SB_PTE_US);
	for (int i = 1; i < 512; i++)
		cr_assert_eq(t->pml4[i], 0);
	cr_assert_eq(t->pdpt[0], SB_PD_GPA | SB_PTE_P | SB_PTE_RW | SB_PTE_US);
	cr_assert_eq(t->pdpt[1], 0);
	for (int i = 0; i < 128; i++) {
		uint64_t e = t->pd[0][i];
		cr_assert_eq(e & ~0xfffULL, (uint64_t)i << 21, "entry %d maps its own 2 MiB", i);
		cr_assert(e & SB_PTE_P && e & SB_PTE_PS);
		int user = i >= 1; /* all but the kernel's first 2 MiB */
		int ro = i >= 125;  /* [250M, 256M): read-only */
		cr_assert_eq(!!(e & SB_PTE_US), user, "entry %d user bit", i);
		cr_assert_eq(!(e & SB_PTE_RW), ro, "entry %d write bit", i);
	}
	for (int i = 128; i < 512; i++)
		cr_assert_eq(t->pd[0][i], 0, "no mapping beyond RAM (entry %d)", i);
	free(t);
}

Test(pagetable, spans_several_gib)
{
	struct tables *t = malloc(sizeof(*t));
	build(t, 3ULL << 30, 0, NULL, 0, 0);
	cr_assert_eq(sb_pt_pd_count(3ULL << 30, 0), 3);
	cr_assert_eq(sb_pt_pd_count(3ULL << 30, 1), 4, "the MMIO page needs a 4th PD");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(t->pdpt[i], (SB_PD_GPA + i * 4096) | 7);
	cr_assert_eq(t->pdpt[3], 0);
	cr_assert_eq(t->pd[2][511] & ~0xfffULL, (3ULL << 30) - (2ULL << 20));
	cr_assert_eq(t->pd[3][0], 0xa5a5a5a5a5a5a5a5ULL, "only the PDs needed are written");
	free(t);
}

Test(pagetable, rejects_bad_sizes)
{
	struct tables *t = malloc(sizeof(*t));
	build(t, 0, 0, NULL, 0, -22);
	build(t, (16ULL << 20) + 4096, 0, NULL, 0, -22);
	free(t);
}

Test(pagetable, hypercall_mmio_page_follows_ram)
{
	struct tables *t = malloc(sizeof(*t));
	struct sb_pt_range sup[] = { { 0, SB_USER_BASE, SB_PT_SUPERVISOR } };
	build(t, 1ULL << 30, 1, sup, 1, 0);
	/* RAM fills PD 0; the MMIO page is the first entry of PD 1, user-accessible */
	cr_assert_eq(t->pdpt[1], (SB_PD_GPA + 4096) | 7);
	cr_assert_eq(t->pd[1][0], (1ULL << 30) | SB_PTE_P | SB_PTE_RW | SB_PTE_PS | SB_PTE_US);
	cr_assert_eq(t->pd[1][1], 0, "only one 2 MiB page of MMIO");
	cr_assert_eq(t->pd[0][0] & SB_PTE_US, 0);
	free(t);
}

Test(pagetable, maps_the_layer_window_read_only_for_everyone)
{
	struct tables *t = malloc(sizeof(*t));
	uint64_t img = (1ULL << 30) + (6ULL << 20); /* spills into a second PD */
	unsigned first = (unsigned)(SB_IMG_GPA >> 30);

	build_img(t, 256ULL << 20, 1, NULL, 0, img, 0);
	cr_assert_eq(sb_pt_img_pd_count(img), 2);
	cr_assert_eq(t->pdpt[0], SB_PD_GPA | 7, "RAM as before");
	for (unsigned i = 1; i < 512; i++) {
		if (i == first || i == first + 1)
			cr_assert_eq(t->pdpt[i], (SB_IMG_PD_GPA + (i - first) * 4096) | 7, "PDPT %u", i);
		else
			cr_assert_eq(t->pdpt[i], 0, "PDPT %u", i);
	}
	for (unsigned i = 0; i < 1024; i++) {
		uint64_t e = t->img[i / 512][i % 512];
		if ((uint64_t)i * (2ULL << 20) >= img) {
			cr_assert_eq(e, 0, "nothing past the layers (entry %u)", i);
			continue;
		}
		cr_assert_eq(e & ~0xfffULL, SB_IMG_GPA + (uint64_t)i * (2ULL << 20));
		cr_assert_eq(e & 0xfff, SB_PTE_P | SB_PTE_PS | SB_PTE_US, "present, user, not writable");
	}
	cr_assert_eq(t->img[2][0], 0xa5a5a5a5a5a5a5a5ULL, "only the PDs needed are written");
	/* refused: not 2 MiB, overlapping RAM, beyond 512 GiB */
	build_img(t, 256ULL << 20, 1, NULL, 0, 4096, -22);
	{
		struct sb_pt_tables pt = {
			.pml4 = t->pml4, .pdpt = t->pdpt, .pd = &t->pd[0][0], .img_gpa = 0,
			.pd_img = &t->img[0][0],
		};
		cr_assert_eq(sb_pt_build(&pt, 256ULL << 20, 1, NULL, 0, 2ULL << 20), -22);
		pt.img_gpa = 511ULL << 30;
		cr_assert_eq(sb_pt_build(&pt, 256ULL << 20, 1, NULL, 0, 2ULL << 30), -22);
	}
	free(t);
}
