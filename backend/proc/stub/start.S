/* SPDX-License-Identifier: MIT */
/*
 * The proc sandbox stub's entry points.  Freestanding: no libc, no TLS, and
 * %fs is never touched (it belongs to the guest program once it runs).
 */
#include "snapbox_abi.h"


	.text
	.globl _start
_start:
	mov %rsp, %rdi              /* argc, argv, envp, auxv (unused) */
	/* a stack of our own, in .bss: the kernel's [stack] mapping could grow
	 * down where no reset finds it, so stub_main unmaps it */
	lea stub_stack+16384(%rip), %rsp
	call stub_main
	ud2

/* Signal return: rt_sigreturn, with the magic the filter asks for. */
	.globl stub_restorer
stub_restorer:
	mov $15, %eax
	movabs $SB_PROC_MAGIC, %r10
	syscall
	ud2

/* stub_sigreturn(uc): rt_sigreturn from a frame we built (uc at rsp). */
	.globl stub_sigreturn
stub_sigreturn:
	mov %rdi, %rsp
	mov $15, %eax
	movabs $SB_PROC_MAGIC, %r10
	syscall
	ud2

/* SIGUSR2 (SA_SIGINFO): the monitor recycles the sandbox.  The kernel
 * wrote the frame wherever the guest's sigaltstack said; take the nonce
 * (siginfo's si_value, at 24) and leave that stack for the reset stack. */
	.globl stub_on_reset
stub_on_reset:
	mov 24(%rsi), %rdi
	lea reset_stack+8192(%rip), %rsp  /* + SB_PROC_RESET_STACK (stub.c checks) */
	call stub_reset
	ud2

/* stub_reset_return(uc, stack, size): clear the reset stack (we run on it
 * until here), then rt_sigreturn from the frame at uc. */
	.globl stub_reset_return
stub_reset_return:
	mov %rdi, %r8
	mov %rsi, %rdi
	mov %rdx, %rcx
	mov %r8, %rsp
	xor %eax, %eax
	cld
	rep stosb
	mov $15, %eax
	movabs $SB_PROC_MAGIC, %r10
	syscall
	ud2

/* stub_enter_guest(entry, arg): jump into the guest kernel for good. */
	.globl stub_enter_guest
stub_enter_guest:
	mov %rdi, %rax
	mov %rsi, %rdi
	xor %esi, %esi
	xor %edx, %edx
	xor %ecx, %ecx
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d
	jmp *%rax

	.section .note.GNU-stack, "", @progbits
