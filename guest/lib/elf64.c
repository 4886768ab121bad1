/* SPDX-License-Identifier: MIT */
#include "elf64.h"

#define EI_NIDENT 16
#define PT_LOAD 1
#define PT_INTERP 3
#define PT_NOTE 4
#define PT_PHDR 6
#define ET_EXEC 2
#define ET_DYN 3
#define EM_X86_64 62
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct ehdr {
	uint8_t ident[EI_NIDENT];
	uint16_t type, machine;
	uint32_t version;
	uint64_t entry, phoff, shoff;
	uint32_t flags;
	uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
_Static_assert(sizeof(struct ehdr) == 64, "Elf64_Ehdr");

struct phdr {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};
_Static_assert(sizeof(struct phdr) == 56, "Elf64_Phdr");

const char *sb_elf_strerror(int err)
{
	switch (err) {
	case SB_ELF_OK: return "ok";
	case SB_ELF_ENOTELF: return "not an ELF executable";
	case SB_ELF_E32: return "32-bit ELF, snapbox runs 64-bit x86-64 programs";
	case SB_ELF_EARCH: return "not an x86-64 little-endian ELF";
	case SB_ELF_ETYPE: return "ELF is not an executable (ET_EXEC or ET_DYN)";
	case SB_ELF_EDYNAMIC: return "dynamically linked (has an ELF interpreter)";
	case SB_ELF_EBADPH: return "malformed ELF program headers";
	case SB_ELF_ENOLOAD: return "ELF has no loadable segment";
	case SB_ELF_ETOOMANY: return "ELF has too many loadable segments";
	}
	return "bad ELF";
}

/* Fixed-size copies: inlined as a few moves (this also runs in the guest
 * kernel, where every instruction is emulated). */
#define copy_bytes(d, s, n) __builtin_memcpy((d), (s), (n))

/* Look for the PVH entry note and snapbox's ABI note (SB_ELF_NOTE_NAME,
 * type SB_ELF_NOTE_ABI) inside one PT_NOTE segment. */
static void find_notes(const uint8_t *img, uint64_t off, uint64_t len, struct sb_elf_info *out)
{
	uint64_t p = 0;
	while (p + 12 <= len) {
		uint32_t w[3];
		uint64_t desc, next;
		copy_bytes(w, img + off + p, 12);
		desc = p + 12 + ((w[0] + 3ULL) & ~3ULL);
		next = desc + ((w[1] + 3ULL) & ~3ULL);
		if (next > len)
			break;
		if (w[2] == XEN_ELFNOTE_PHYS32_ENTRY && w[0] == 4 && w[1] >= 4) {
			uint32_t e;
			copy_bytes(&e, img + off + desc, 4);
			out->pvh_entry = e;
		}
		if (w[2] == SB_ELF_NOTE_ABI && w[0] == sizeof(SB_ELF_NOTE_NAME) && w[1] == 4) {
			const uint8_t *name = img + off + p + 12;
			unsigned i = 0;
			uint32_t v;
			while (i < sizeof(SB_ELF_NOTE_NAME) && name[i] == (uint8_t)SB_ELF_NOTE_NAME[i])
				i++;
			copy_bytes(&v, img + off + desc, 4);
			if (i == sizeof(SB_ELF_NOTE_NAME))
				out->snapbox_abi = v;
		}
		p = next;
	}
}

static int check_ident(const struct ehdr *eh)
{
	const uint8_t *id = eh->ident;
	if (id[0] != 0x7f || id[1] != 'E' || id[2] != 'L' || id[3] != 'F')
		return SB_ELF_ENOTELF;
	if (id[4] == 1)
		return SB_ELF_E32;
	if (id[4] != 2 || id[5] != 1 || eh->machine != EM_X86_64)
		return SB_ELF_EARCH;
	if (eh->type != ET_EXEC && eh->type != ET_DYN)
		return SB_ELF_ETYPE;
	return SB_ELF_OK;
}

int sb_elf_parse(const uint8_t *img, uint64_t size, uint64_t pie_base,
		 struct sb_elf_info *out)
{
	struct ehdr eh;
	uint64_t lo = UINT64_MAX, hi = 0, phdr_vaddr = 0, ph_bytes;
	int err, have_phdr = 0;

	if (size < sizeof(eh)) {
		if (size >= 4 && img[0] == 0x7f && img[1] == 'E' && img[2] == 'L' && img[3] == 'F')
			return SB_ELF_EBADPH;
		return SB_ELF_ENOTELF;
	}
	copy_bytes(&eh, img, sizeof(eh));
	err = check_ident(&eh);
	if (err)
		return err;
	if (eh.phentsize != sizeof(struct phdr) || eh.phnum == 0)
		return SB_ELF_EBADPH;
	ph_bytes = (uint64_t)eh.phnum * sizeof(struct phdr);
	if (!sb_range_in(eh.phoff, ph_bytes, 0, size))
		return SB_ELF_EBADPH;

	out->nseg = 0;
	out->pvh_entry = 0;
	out->snapbox_abi = 0;
	out->interp_off = out->interp_len = 0;
	for (uint16_t i = 0; i < eh.phnum; i++) {
		struct phdr ph;
		uint64_t end;
		copy_bytes(&ph, img + eh.phoff + i * sizeof(ph), sizeof(ph));
		if (ph.type == PT_INTERP) {
			/* a path and its NUL, inside the file */
			if (out->interp_len || ph.filesz < 2 || ph.filesz > SB_ELF_INTERP_MAX + 1 ||
			    !sb_range_in(ph.offset, ph.filesz, 0, size) ||
			    img[ph.offset + ph.filesz - 1] != 0)
				return SB_ELF_EBADPH;
			out->interp_off = ph.offset;
			out->interp_len = ph.filesz - 1;
			for (uint64_t k = 0; k < out->interp_len; k++)
				if (img[ph.offset + k] == 0)
					return SB_ELF_EBADPH;
			continue;
		}
		if (ph.type == PT_PHDR) {
			phdr_vaddr = ph.vaddr;
			have_phdr = 1;
		}
		if (ph.type == PT_NOTE && sb_range_in(ph.offset, ph.filesz, 0, size))
			find_notes(img, ph.offset, ph.filesz, out);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		if (ph.filesz > ph.memsz || !sb_range_in(ph.offset, ph.filesz, 0, size) ||
		    !sb_add_ok(ph.vaddr, ph.memsz, &end) || end > (1ULL << 47))
			return SB_ELF_EBADPH;
		if (out->nseg == SB_ELF_MAX_SEGS)
			return SB_ELF_ETOOMANY;
		out->seg[out->nseg++] = (struct sb_elf_seg){
			.vaddr = ph.vaddr, .memsz = ph.memsz, .offset = ph.offset,
			.filesz = ph.filesz, .flags = ph.flags, .paddr = ph.paddr,
		};
		if (ph.vaddr < lo)
			lo = ph.vaddr;
		if (end > hi)
			hi = end;
		if (!have_phdr && eh.phoff >= ph.offset && eh.phoff + ph_bytes <= ph.offset + ph.filesz)
			phdr_vaddr = ph.vaddr + (eh.phoff - ph.offset);
	}
	if (out->nseg == 0)
		return SB_ELF_ENOLOAD;

	lo &= ~0xfffULL;
	hi = (hi + 0xfff) & ~0xfffULL;
	out->bias = eh.type == ET_DYN ? pie_base - lo : 0;
	if (!sb_add_ok(hi, out->bias, &hi) || hi > (1ULL << 47))
		return SB_ELF_EBADPH;
	for (unsigned i = 0; i < out->nseg; i++)
		out->seg[i].vaddr += out->bias;
	out->lo = lo + out->bias;
	out->hi = hi;
	out->entry = eh.entry + out->bias;
	out->phdr_vaddr = phdr_vaddr ? phdr_vaddr + out->bias : 0;
	out->phnum = eh.phnum;
	out->phentsize = eh.phentsize;
	out->type = eh.type;
	return SB_ELF_OK;
}
