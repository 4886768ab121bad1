/* SPDX-License-Identifier: MIT */
/*
 * The user-mode system call entry (kvm_pvm, SB_BOOT_USER_SYSCALLS).
 * `syscall` jumped here from the program without leaving user mode: RCX is
 * the return address, R11 the program's RFLAGS, RSP still the program's
 * stack (whose red zone we must not touch).  Switch to our own stack, call
 * the C dispatcher natively, restore everything the Linux syscall ABI
 * preserves, and jump back.  Single-threaded guest: one stack suffices.
 */
#include "scframe.h"

	.text
	.globl sys_entry_user
sys_entry_user:
	mov %rsp, sys_user_rsp(%rip)
	lea sys_stack_top(%rip), %rsp
	push %rcx                   /* return address */
	push %r11                   /* RFLAGS */
	sub $8, %rsp                /* keep the call 16-byte aligned */
	SC_FRAME_CALL
	add $8, %rsp
	mov (%rsp), %r11
	popfq                       /* the program's flags (IF/IOPL unchanged) */
	pop %rcx
	mov sys_user_rsp(%rip), %rsp
	jmp *%rcx

	.bss
	.p2align 4
sys_user_rsp:
	.skip 8
	.p2align 4
	.skip 32768
sys_stack_top:
