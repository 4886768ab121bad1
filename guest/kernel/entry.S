/* SPDX-License-Identifier: MIT */
/*
 * Entry paths of the snapbox guest kernel.
 *  _start64     snapbox: already in long mode on the host's page tables,
 *               %rdi = struct sb_boot_info *.
 *  pvh_start32  QEMU (PVH boot, XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected
 *               mode, paging off, %ebx = struct hvm_start_info *.
 * Every kernel instruction is emulated on kvm_pvm (~0.3 us each), so the
 * paths here are kept short.
 */
#include "snapbox_abi.h"
#include "scframe.h"

#define MSR_EFER 0xc0000080
#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_WP 0x10000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400

	.section .note.Xen, "a"
	.p2align 2
	.long 4, 4, 18          /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start32

	/* the guest ABI this kernel speaks (snapbox_abi.h, SB_ABI_BOOT_MIN) */
	.section .note.snapbox, "a"
	.p2align 2
	.long 8, 4, 1           /* namesz, descsz, type 1: the ABI version */
	.asciz "snapbox"
	.long SB_ABI_VERSION

	.section .text.boot, "ax"
	.code64
	.globl _start64
_start64:
	lea kstack_top(%rip), %rsp
	/* proc backend: we are a user process already, nothing to load */
	testl $SB_BOOT_PROC, SB_BOOT_INFO_FLAGS_OFF(%rdi)
	jnz 1f
	call load_segments
1:	call kmain_snapbox          /* %rdi: boot info */
	jmp halt_forever

	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	mov %ebx, %esi              /* hvm_start_info, survives to 64-bit */
	/* identity map the first 1 GiB with 2 MiB pages in boot_pd */
	mov $boot_pd, %edi
	mov $0x83, %eax             /* P | RW | PS */
	mov $512, %ecx
1:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b
	movl $(boot_pd + 3), boot_pdpt
	movl $(boot_pdpt + 3), boot_pml4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	mov %eax, %cr4
	mov $MSR_EFER, %ecx
	rdmsr
	or $0x100, %eax             /* LME */
	wrmsr
	mov $(CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG), %eax
	mov %eax, %cr0
	lgdt gdt_desc
	ljmp $SB_SEL_KCODE, $pvh_long64

	.code64
pvh_long64:
	lea kstack_top(%rip), %rsp
	call load_segments
	mov %esi, %edi              /* zero-extends */
	call kmain_pvh
	jmp halt_forever

load_segments:
	lgdt gdt_desc(%rip)
	pop %rax
	pushq $SB_SEL_KCODE
	push %rax
	mov $SB_SEL_KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %eax, %eax
	mov %ax, %fs
	mov %ax, %gs
	lretq

	.globl halt_forever
halt_forever:
	hlt
	jmp halt_forever

/* ---- entering user mode: enter_user(entry, sp) ---------------------- */
	.text
	.globl enter_user
enter_user:
	pushq $SB_SEL_UDATA
	push %rsi
	pushq $0x2                  /* IF=0: nothing ever interrupts the guest */
	pushq $SB_SEL_UCODE
	push %rdi
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %edi, %edi
	xor %ebp, %ebp
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	iretq

/* ---- proc backend: enter_user_proc(entry, sp) ------------------------
 * We are in user mode already (a host process): no iretq, whose selectors
 * would be ours, not the host's; just the registers a fresh process has. */
	.globl enter_user_proc
enter_user_proc:
	mov %rsi, %rsp
	mov %rdi, %rcx
	xor %eax, %eax
	xor %ebx, %ebx
	xor %edx, %edx
	xor %esi, %esi
	xor %edi, %edi
	xor %ebp, %ebp
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	jmp *%rcx

/* ---- exceptions ------------------------------------------------------- */
.macro EXC_NOERR n
	.globl exc\n
exc\n:
	pushq $0
	pushq $\n
	jmp exc_common
.endm
.macro EXC_ERR n
	.globl exc\n
exc\n:
	pushq $\n
	jmp exc_common
.endm

EXC_NOERR 0
EXC_NOERR 1
EXC_NOERR 2
EXC_NOERR 3
EXC_NOERR 4
EXC_NOERR 5
EXC_NOERR 7
EXC_ERR   8
EXC_NOERR 9
EXC_ERR   10
EXC_ERR   11
EXC_ERR   12
EXC_ERR   13
EXC_ERR   14
EXC_NOERR 15
EXC_NOERR 16
EXC_ERR   17
EXC_NOERR 18
EXC_NOERR 19
EXC_NOERR 20
EXC_ERR   21

/*
 * #UD, on its own IST stack.  The hot path is a system call: `syscall`
 * jumped to the trampoline page (LSTAR) whose `ud2` brought us here, in user
 * mode on kvm_pvm and in kernel mode on VMX/SVM hosts; either way the
 * frame's RIP is the trampoline, %rcx holds the return address and %r11 the
 * user's RFLAGS.  Only the registers the syscall ABI preserves and C may
 * clobber are saved.  struct sc_ud_frame (kernel.h) describes this stack as
 * the dispatcher sees it (it reads the frame's CS once, to report the path).
 */
	.globl exc6
exc6:
	cmpq $SB_TRAMPOLINE_GPA, (%rsp)
	jne 2f
	push %rcx                   /* user return address */
	push %r11                   /* user RFLAGS */
	SC_FRAME_CALL
	pop %r11
	pop %rcx
	mov %rcx, 0(%rsp)           /* RIP <- return address */
	movq $SB_SEL_UCODE, 8(%rsp)
	and $0x240cd5, %r11         /* keep CF PF AF ZF SF DF OF AC ID */
	or $0x2, %r11
	mov %r11, 16(%rsp)
	movq $SB_SEL_UDATA, 32(%rsp)
	iretq
2:	pushq $0
	pushq $6
	jmp exc_common

exc_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	call trap_handler           /* struct trap_frame * */
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp
	iretq

/* ---- boot page tables (PVH path only) and the kernel stacks ---------- */
	.bss
	.p2align 12
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096
	.p2align 4
	.globl kstack_top, ist_stack_top
	.skip 16384
kstack_top:
	.skip 16384
ist_stack_top:
