# The snapbox guest kernel: freestanding, for what KVM's emulator runs
# (kvm_pvm emulates every kernel instruction): general registers only, no
# SSE/popcnt/xsave, no red zone.
KERNEL_DIR  := guest/kernel
KERNEL_OUT  := $(BUILD)/guest/kernel
KERNEL_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	-mno-red-zone -mgeneral-regs-only -march=x86-64 -mtune=generic -mno-mmx -mno-sse \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fno-builtin \
	-fno-tree-loop-distribute-patterns -fno-delete-null-pointer-checks -fcf-protection=none \
	-mcmodel=small -Iguest/include -Iguest/lib
KERNEL_SRCS := $(wildcard $(KERNEL_DIR)/*.c) $(GUEST_LIB_SRCS)
KERNEL_ASM  := $(wildcard $(KERNEL_DIR)/*.S)
KERNEL_OBJS := $(patsubst %.c,$(KERNEL_OUT)/%.o,$(KERNEL_SRCS)) $(patsubst %.S,$(KERNEL_OUT)/%.o,$(KERNEL_ASM))

$(KERNEL_OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

$(KERNEL_OUT)/%.o: %.S guest/include/snapbox_abi.h $(KERNEL_DIR)/scframe.h
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/guest/kernel.elf: $(KERNEL_OBJS) $(KERNEL_DIR)/kernel.ld
	ld --no-warn-rwx-segments -nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack \
		-T $(KERNEL_DIR)/kernel.ld $(KERNEL_OBJS) -o $@

.PHONY: kernel
kernel: $(BUILD)/guest/kernel.elf

-include $(KERNEL_OBJS:.o=.d)
