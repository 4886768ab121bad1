# The proc backend: the sandbox stub, a freestanding static program linked
# above every guest address (PLATFORM.md: glibc/musl cannot go that high).
# It lives beside the guest kernel (build/guest/) because it runs inside the
# sandbox, and so that build-asan/ (which links build/guest) finds it too.
PROC_STUB := $(BUILD)/guest/proc-stub
PROC_STUB_SRCS := backend/proc/stub/start.S backend/proc/stub/stub.c
PROC_STUB_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fpie \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none -fvisibility=hidden \
	-mgeneral-regs-only -fno-builtin -I. -Iguest/include
PROC_STUB_LDFLAGS := -nostdlib -static -no-pie -Wl,-Ttext-segment=0x7f0000000000 \
	-Wl,-z,noexecstack -Wl,-z,separate-code -Wl,--build-id=none

$(PROC_STUB): $(PROC_STUB_SRCS) backend/proc/proc_abi.h guest/include/snapbox_abi.h guest/include/sb_syscall.h backend/proc/proc.mk
	@mkdir -p $(dir $@)
	$(CC) $(PROC_STUB_CFLAGS) $(PROC_STUB_LDFLAGS) $(PROC_STUB_SRCS) -o $@

.PHONY: proc-stub
proc-stub: $(PROC_STUB)
