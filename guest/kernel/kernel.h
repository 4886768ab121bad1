/* SPDX-License-Identifier: MIT */
/* snapbox guest kernel: shared declarations. */
#ifndef KERNEL_H
#define KERNEL_H
#include <stdint.h>
#include <stddef.h>
#include "snapbox_abi.h"
#include "sbtypes.h"

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EINTR 4
#define EIO 5
#define EBUSY 16
#define EBADF 9
#define EAGAIN 11
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EEXIST 17
#define ENOTDIR 20
#define EISDIR 21
#define EINVAL 22
#define EXDEV 18
#define ENODEV 19
#define EMFILE 24
#define EFBIG 27
#define ENOSPC 28
#define ENOTTY 25
#define ESPIPE 29
#define EROFS 30
#define ERANGE 34
#define ENAMETOOLONG 36
#define ENOSYS 38
#define ENOTEMPTY 39
#define ELOOP 40
#define ETIMEDOUT 110

#define PAGE 4096ULL
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define PAGE_DOWN(x) ((x) & ~(PAGE - 1))

/* What the boot path found out; filled once, read everywhere. */
struct kernel {
	int snapbox;            /* 1: snapbox hypercalls; 0: QEMU serial */
	uint32_t flags;         /* SB_BOOT_* */
	uint64_t mem_size;
	const uint8_t *initrd;
	uint64_t initrd_size;
	uint64_t user_top;      /* end of user memory (initrd window start) */
	int argc, envc;
	const char *argv[256];
	const char *envp[256];
	uint64_t unknown_syscalls;
	const struct sb_layer *layers; /* the root file system's layers (snapbox) */
	uint32_t n_layers;
	uint64_t mmio;          /* hypercall MMIO page (snapbox), 0: ports */
	uint32_t sc_slow;       /* SC_SLOW_*: the dispatcher's rare work */
	/* memory hotplug (ABI 5, see SB_HOT_GPA): what the kernel uses of the
	 * hot window, the last mailbox seq it answered, and the free-page
	 * reporting threshold the host asked for (pages, 0: off) */
	uint64_t hot_size;
	uint32_t mc_seq;
	uint32_t report_min;
};
/* Nonzero K.sc_slow sends a system call through the slow dispatcher, so
 * the common case tests one word (every kernel instruction is emulated on
 * kvm_pvm). */
#define SC_SLOW_TRACE       (1u << 0) /* --trace-syscalls: SB_HC_TRACE each */
#define SC_SLOW_REPORT_PATH (1u << 1) /* first call: SB_HC_SYSCALL_PATH */
extern struct kernel K;

/* lib.c */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
void kcopy(uint64_t dst, uint64_t src, uint64_t n);   /* bulk: host-assisted */
void kzero(uint64_t dst, uint64_t n);
void krandom(void *dst, uint64_t n);  /* from the pool, else the host */
void krandom_pool_give(struct sb_hc_stdin *s);   /* before a stdin call: empty it */
void krandom_pool_filled(const struct sb_hc_stdin *s); /* after: what the host put in */
size_t kfmt_hex(char *buf, uint64_t v);
size_t kfmt_dec(char *buf, int64_t v);

/* console.c */
void console_write(int fd, const void *buf, uint64_t len);
int64_t proc_output(int fd, const struct sb_iovec *iov, uint64_t cnt); /* proc: one way */
void kputs(const char *s);
void hypercall(int nr, void *arg);
__attribute__((noreturn)) void kexit(int status);
__attribute__((noreturn)) void kstop(void);
__attribute__((noreturn)) void kpanic(uint32_t code, const char *msg, const char *detail);
__attribute__((noreturn)) void kfault(uint64_t vector, uint64_t err, uint64_t rip,
				      uint64_t rsp, uint64_t cr2, uint32_t signal);
int64_t kclock(uint32_t clockid, int64_t *sec, int64_t *nsec);
void kclock_rebase(void); /* after a stdin call: a clone's TSC may differ */

/* cpu.c */
void cpu_init(uint64_t lstar);
static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port) : "memory");
}
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port) : "memory");
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* proc backend (SB_BOOT_PROC): a host process under seccomp, no VM */
static inline int k_proc(void)
{
	return (K.flags & SB_BOOT_PROC) != 0;
}

/* One of the few host system calls the sandbox's filter lets through: it
 * must carry SB_PROC_MAGIC in r10 (see snapbox_abi.h). */
static inline int64_t proc_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	register uint64_t r10 __asm__("r10") = SB_PROC_MAGIC;
	int64_t ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The program's memory: [SB_USER_LOAD, K.user_top).  (The user-accessible
 * page at SB_USER_BASE and the syscall layer below SB_USER_LOAD are ours.) */
static inline int user_ok(uint64_t p, uint64_t len)
{
	return sb_range_in(p, len, SB_USER_LOAD, K.user_top) ||
	       (K.hot_size && sb_range_in(p, len, SB_HOT_GPA, SB_HOT_GPA + K.hot_size));
}

/* Running in user mode?  (the syscall layer runs in both modes) */
static inline int cpu_user_mode(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}
int user_string(uint64_t p, char *out, size_t cap); /* 0, -EFAULT, -ENAMETOOLONG */

/* mm.c */
void mm_init(uint64_t heap_lo, uint64_t stack_lo);
int64_t sys_brk(uint64_t addr);
int64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off);
int64_t sys_munmap(uint64_t addr, uint64_t len);
int64_t sys_mremap(uint64_t old, uint64_t oldlen, uint64_t newlen, uint64_t flags, uint64_t newaddr);
int64_t sys_madvise(uint64_t addr, uint64_t len, uint64_t advice);
void mm_sync(void);          /* answer the hotplug mailbox if it changed */
void mm_report_flush(void);  /* send the free ranges waiting to be reported */
uint64_t mm_take_top(uint64_t len);   /* len bytes (page multiple) from the top
					 of the mmap area, zero; 0 if none */
int mm_give(uint64_t addr, uint64_t len);  /* back (cleared): 0 or -ENOMEM */
uint64_t mm_free_bytes(void);

/* fs.c */
#define PATH_MAX_K 512
struct fnode {
	uint32_t mode;          /* st_mode */
	uint32_t nlink;
	uint64_t size;
	const uint8_t *data;    /* a regular file's bytes, in its layer */
	uint64_t ino;           /* st_ino */
	int64_t mtime;
	uint32_t tnode;         /* a /tmp node + 1 (tmpfs.c), 0: a layer or device */
	uint32_t dev;           /* st_dev */
};
void fs_init(void);
/* Look up a normalised path (no leading '/') in the layers top-down, then
 * the devices; follow: a symlink as the last component too.  0 or -errno;
 * resolved[PATH_MAX_K] (may be NULL) gets the path with links followed. */
int fs_lookup(const char *path, int follow, struct fnode *out, char *resolved);
/* A file's bytes for mmap: 0, -EBADF, -EACCES (not a file), -ENODEV (a
 * shared writable map of a /tmp file). */
int64_t fs_file_data(int fd, int shared_write, const uint8_t **data, uint64_t *size);
int64_t fs_syscall(uint64_t nr, const uint64_t *a, int *handled);
void fs_set_exe(const char *resolved);  /* /proc/self/exe (no leading '/') */

/* tmpfs.c: /tmp in the sandbox's RAM; paths relative to /tmp */
#define TMPFS_NODES 512
#define TMPFS_NAME_MAX 128
#define TMPFS_DEV 0x2a
int tmpfs_lookup(const char *rel, struct fnode *out);
int tmpfs_stat(uint32_t tnode, struct fnode *out);
int tmpfs_create(const char *rel, uint32_t perm, int excl, struct fnode *out);
int tmpfs_mkdir(const char *rel, uint32_t perm);
int tmpfs_remove(const char *rel, int dir);
int tmpfs_rename(const char *from, const char *to, uint32_t flags);
void tmpfs_ref(uint32_t tnode);
void tmpfs_unref(uint32_t tnode, int wrote);
int64_t tmpfs_read(uint32_t tnode, uint64_t buf, uint64_t n, uint64_t off);
int64_t tmpfs_write(uint32_t tnode, uint64_t buf, uint64_t n, uint64_t off);
int tmpfs_truncate(uint32_t tnode, uint64_t len);
int tmpfs_set(uint32_t tnode, int chmod, uint32_t perm, int settime, int64_t mtime);
int tmpfs_readdir(uint32_t dir, uint64_t *cursor, const char **name, size_t *len,
		  uint8_t *dtype, uint64_t *ino);
void tmpfs_usage(uint64_t *files, uint64_t *bytes);

/* exec.c */
__attribute__((noreturn)) void exec_init_program(void);

/* sysentry.S */
extern char sys_entry_user[];

/* entry.S */
__attribute__((noreturn)) void enter_user(uint64_t entry, uint64_t sp);
__attribute__((noreturn)) void enter_user_proc(uint64_t entry, uint64_t sp);
__attribute__((noreturn)) void halt_forever(void);

/* syscall.c */
struct sc_frame {
	uint64_t nr, a[6];
};
/* What lies on the #UD IST stack when exc6 (entry.S) calls the dispatcher:
 * the frame, the two registers exc6 saved, then the CPU's exception frame,
 * which ends at ist_stack_top. */
struct sc_ud_frame {
	struct sc_frame sc;
	uint64_t r11, rcx;
	uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct sc_ud_frame) == 14 * 8, "sc_ud_frame layout");
extern char ist_stack_top[];
int64_t syscall_dispatch(struct sc_frame *f);

/* trap.c */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
void trap_handler(struct trap_frame *f);
#endif
