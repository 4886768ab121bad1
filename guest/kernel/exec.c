/* SPDX-License-Identifier: MIT */
/* Load the program named by argv[0] from the rootfs and enter it. */
#include "kernel.h"
#include "elf64.h"
#include "sbfs.h"

#define AT_NULL 0
#define AT_PHDR 3
#define AT_PHENT 4
#define AT_PHNUM 5
#define AT_PAGESZ 6
#define AT_BASE 7
#define AT_FLAGS 8
#define AT_ENTRY 9
#define AT_UID 11
#define AT_EUID 12
#define AT_GID 13
#define AT_EGID 14
#define AT_PLATFORM 15
#define AT_HWCAP 16
#define AT_CLKTCK 17
#define AT_SECURE 23
#define AT_RANDOM 25
#define AT_HWCAP2 26
#define AT_EXECFN 31

/* the program, and its interpreter (ld.so) if it has one */
static struct sb_elf_info elf, interp;
static int has_interp;

static uint64_t push_bytes(uint64_t sp, const void *p, uint64_t n)
{
	sp -= n;
	memcpy((void *)sp, p, n);
	return sp;
}

static uint64_t cpuid_edx1(void)
{
	uint32_t a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return d;
}

static uint64_t build_stack(uint64_t top, const char *execfn)
{
	uint64_t sp = top, argp[256], envp[256], rnd[2], u_rnd, u_plat, u_fn;
	uint64_t aux[][2] = {
		{ AT_PHDR, elf.phdr_vaddr }, { AT_PHENT, elf.phentsize }, { AT_PHNUM, elf.phnum },
		{ AT_PAGESZ, PAGE }, { AT_BASE, has_interp ? interp.bias : 0 }, { AT_FLAGS, 0 },
		{ AT_ENTRY, elf.entry },
		{ AT_UID, 0 }, { AT_EUID, 0 }, { AT_GID, 0 }, { AT_EGID, 0 },
		{ AT_HWCAP, cpuid_edx1() }, { AT_HWCAP2, 0 }, { AT_CLKTCK, 100 },
		{ AT_SECURE, 0 }, { AT_RANDOM, 0 }, { AT_PLATFORM, 0 }, { AT_EXECFN, 0 },
		{ AT_NULL, 0 },
	};
	const int naux = sizeof(aux) / sizeof(aux[0]);

	for (int i = K.envc; i-- > 0;)
		envp[i] = sp = push_bytes(sp, K.envp[i], strlen(K.envp[i]) + 1);
	for (int i = K.argc; i-- > 0;)
		argp[i] = sp = push_bytes(sp, K.argv[i], strlen(K.argv[i]) + 1);
	u_fn = sp = push_bytes(sp, execfn, strlen(execfn) + 1);
	u_plat = sp = push_bytes(sp, "x86_64", 7);
	krandom(rnd, sizeof(rnd));
	sp &= ~15ULL;
	u_rnd = sp = push_bytes(sp, rnd, sizeof(rnd));
	aux[15][1] = u_rnd;
	aux[16][1] = u_plat;
	aux[17][1] = u_fn;

	uint64_t words = 1 + (K.argc + 1) + (K.envc + 1) + 2 * naux;
	sp -= words * 8;
	sp &= ~15ULL;
	uint64_t *w = (uint64_t *)sp;
	*w++ = K.argc;
	for (int i = 0; i < K.argc; i++)
		*w++ = argp[i];
	*w++ = 0;
	for (int i = 0; i < K.envc; i++)
		*w++ = envp[i];
	*w++ = 0;
	for (int i = 0; i < naux; i++) {
		*w++ = aux[i][0];
		*w++ = aux[i][1];
	}
	return sp;
}

static uint64_t stack_size(uint64_t span)
{
	uint64_t s = span / 8;
	if (s > (8ULL << 20))
		s = 8ULL << 20;
	if (s < (256ULL << 10))
		s = 256ULL << 10;
	return PAGE_UP(s);
}

static __attribute__((noreturn)) void exec_fail(uint32_t code, const char *what, const char *why)
{
	char msg[300];
	size_t m = 0;
	for (const char *s = what; *s && m < 200; s++)
		msg[m++] = *s;
	msg[m++] = ':';
	msg[m++] = ' ';
	msg[m] = 0;
	kpanic(code, msg, why);
}

/* A regular file of the root file system (absolute path, symlinks
 * followed); resolved[PATH_MAX_K] gets its path with links followed. */
static int find_file(const char *path, struct fnode *n, char *resolved)
{
	char norm[PATH_MAX_K];

	return sbfs_normalize(path, strlen(path), norm, sizeof(norm)) ||
	       fs_lookup(norm, 1, n, resolved) || (n->mode & 0170000) != 0100000;
}

/*
 * Copy a program's segments as mmap would map them: each from its page-
 * rounded file offset to its page-rounded address; a segment without bss
 * takes the rest of its last file page too, one with bss is zero from
 * p_filesz on (to its end).  The first and last page of each segment then
 * equal the file's pages.
 */
static void load_segments(const struct sb_elf_info *e, const struct fnode *n)
{
	for (unsigned i = 0; i < e->nseg; i++) {
		const struct sb_elf_seg *s = &e->seg[i];
		uint64_t va = s->vaddr, off = s->offset, len = s->filesz;

		if ((va & (PAGE - 1)) == (off & (PAGE - 1))) {
			len += va & (PAGE - 1);
			va = PAGE_DOWN(va);
			off = PAGE_DOWN(off);
			if (s->memsz == s->filesz) {
				uint64_t end = PAGE_UP(s->offset + s->filesz);
				len = (end < n->size ? end : n->size) - off;
			}
		}
		kcopy(va, (uint64_t)n->data + off, len);
		if (s->memsz > s->filesz)
			kzero(s->vaddr + s->filesz, PAGE_UP(s->vaddr + s->memsz) - (s->vaddr + s->filesz));
	}
}

/* The program's interpreter (ld.so): a shared object placed at the top of
 * the mmap area. */
static void load_interp(const struct fnode *prog)
{
	char path[SB_ELF_INTERP_MAX + 1];
	struct fnode n;
	uint64_t span, base;
	int err;

	memcpy(path, prog->data + elf.interp_off, elf.interp_len);
	path[elf.interp_len] = 0;
	if (find_file(path, &n, 0))
		exec_fail(SB_PANIC_EXEC, path, "the interpreter is not in the root file system");
	err = sb_elf_parse(n.data, n.size, 0, &interp);
	if (err)
		exec_fail(SB_PANIC_EXEC, path, sb_elf_strerror(err));
	if (interp.type != 3 || interp.interp_len)
		exec_fail(SB_PANIC_EXEC, path, "the interpreter is not a shared object (ET_DYN) of its own");
	span = interp.hi - interp.lo;
	base = mm_take_top(span);
	if (!base)
		kpanic(SB_PANIC_NOMEM, "out of guest memory loading ", path);
	err = sb_elf_parse(n.data, n.size, base, &interp);
	if (err || interp.hi - interp.lo != span)
		exec_fail(SB_PANIC_EXEC, path, sb_elf_strerror(err));
	load_segments(&interp, &n);
	has_interp = 1;
}

void exec_init_program(void)
{
	struct fnode n;
	char real[PATH_MAX_K];

	/* absolute paths only (there is no cwd yet); symlinks followed */
	if (find_file(K.argv[0], &n, real))
		kpanic(SB_PANIC_EXEC, K.argv[0], ": no such file in the root file system");
	int err = sb_elf_parse(n.data, n.size, SB_USER_LOAD, &elf);
	if (err)
		exec_fail(SB_PANIC_EXEC, K.argv[0], sb_elf_strerror(err));
	uint64_t span = K.user_top - SB_USER_LOAD;
	uint64_t stack_lo = K.user_top - stack_size(span);
	if (elf.lo < SB_USER_LOAD || elf.hi > K.user_top)
		kpanic(SB_PANIC_EXEC, K.argv[0], ": loads outside guest user memory");
	if (elf.hi + (1ULL << 20) > stack_lo)
		kpanic(SB_PANIC_NOMEM, "out of guest memory loading ", K.argv[0]);
	if (elf.interp_len && !elf.phdr_vaddr)
		kpanic(SB_PANIC_EXEC, K.argv[0], ": its program headers are not loaded (no AT_PHDR)");
	load_segments(&elf, &n);
	mm_init(PAGE_UP(elf.hi), stack_lo);
	fs_set_exe(real);
	if (elf.interp_len)
		load_interp(&n);

	uint64_t sp = build_stack(K.user_top, K.argv[0]);
	uint64_t entry = has_interp ? interp.entry : elf.entry;
	if (K.snapbox) {
		struct sb_hc_user_start us = { .entry = entry, .sp = sp };
		hypercall(SB_HC_USER_START, &us);
	}
	if (k_proc())
		enter_user_proc(entry, sp);
	enter_user(entry, sp);
}
