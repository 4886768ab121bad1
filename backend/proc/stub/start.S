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
	and $-16, %rsp
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
