/* SPDX-License-Identifier: MIT */
#include "pagetable.h"

#define PT_ENTRIES 512ULL
#define GIB (1ULL << 30)
#define MIB2 (2ULL << 20)

uint64_t sb_pt_pd_count(uint64_t mem_size, int mmio)
{
	return (mem_size + (mmio ? MIB2 : 0) + GIB - 1) / GIB;
}

/* Flags for the 2 MiB chunk at addr: the first range it overlaps decides. */
static uint64_t chunk_flags(uint64_t addr, const struct sb_pt_range *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (addr < r[i].end && addr + MIB2 > r[i].start)
			return r[i].kind == SB_PT_USER_RO ? SB_PTE_US : SB_PTE_RW;
	}
	return SB_PTE_RW | SB_PTE_US;
}

static void zero_table(uint64_t *t)
{
	for (uint64_t i = 0; i < PT_ENTRIES; i++)
		t[i] = 0;
}

uint64_t sb_pt_img_pd_count(uint64_t img_size)
{
	return (img_size + GIB - 1) / GIB;
}

int sb_pt_build(const struct sb_pt_tables *t, uint64_t mem_size, int mmio,
		const struct sb_pt_range *ranges, unsigned n_ranges, uint64_t img_size)
{
	uint64_t n_pd = sb_pt_pd_count(mem_size, mmio);
	uint64_t img_pd = sb_pt_img_pd_count(img_size), img_first = t->img_gpa / GIB;

	if (mem_size == 0 || mem_size % MIB2 || n_pd > PT_ENTRIES)
		return -22;
	if (img_size && (img_size % MIB2 || t->img_gpa % GIB || img_first < n_pd ||
			 img_first + img_pd > PT_ENTRIES || !t->pd_img))
		return -22;
	zero_table(t->pml4);
	zero_table(t->pdpt);
	t->pml4[0] = t->pdpt_gpa | SB_PTE_P | SB_PTE_RW | SB_PTE_US;
	for (uint64_t i = 0; i < n_pd; i++)
		t->pdpt[i] = (t->pd_gpa + i * 4096) | SB_PTE_P | SB_PTE_RW | SB_PTE_US;
	for (uint64_t i = 0; i < n_pd * PT_ENTRIES; i++) {
		uint64_t addr = i * MIB2;
		uint64_t e = 0;
		if (addr < mem_size) {
			e = addr | SB_PTE_P | SB_PTE_PS | chunk_flags(addr, ranges, n_ranges);
		} else if (mmio && addr == mem_size) {
			e = addr | SB_PTE_P | SB_PTE_RW | SB_PTE_PS | SB_PTE_US;
		}
		t->pd[i] = e;
	}
	for (uint64_t i = 0; i < img_pd; i++)
		t->pdpt[img_first + i] = (t->pd_img_gpa + i * 4096) | SB_PTE_P | SB_PTE_RW | SB_PTE_US;
	for (uint64_t i = 0; i < img_pd * PT_ENTRIES; i++)
		t->pd_img[i] = i * MIB2 < img_size
				       ? (t->img_gpa + i * MIB2) | SB_PTE_P | SB_PTE_PS | SB_PTE_US
				       : 0;
	return 0;
}
