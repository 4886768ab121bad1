/* SPDX-License-Identifier: MIT */
/*
 * Assembler macros shared by the two syscall entry stubs (entry.S's #UD
 * path, sysentry.S's user-mode path): both build struct sc_frame (kernel.h)
 * on the stack -- nr, then a0..a5 -- and call syscall_dispatch(frame).  The
 * Linux syscall ABI preserves every register but rax, rcx and r11, so the
 * argument registers C may clobber are restored from the frame.
 */
#ifndef SCFRAME_H
#define SCFRAME_H

/* push the frame and call the dispatcher: result in %rax */
.macro SC_FRAME_CALL
	push %r9
	push %r8
	push %r10
	push %rdx
	push %rsi
	push %rdi
	push %rax
	mov %rsp, %rdi
	call syscall_dispatch
	add $8, %rsp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %r10
	pop %r8
	pop %r9
.endm
#endif
