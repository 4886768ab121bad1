# snapbox top-level build.  `make` installs missing Debian packages
# (mk/deps.sh), then builds the launcher, the guest kernel and the rootfs.
# Everything lands under build/ (BUILD=... to change).

BUILD   ?= build
CC      ?= gcc
HOST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
	-Iguest/include -Iguest/lib -I. $(EXTRA_CFLAGS)
HOST_LDLIBS := -lxxhash -llz4 -luring -lmicrohttpd -ljansson -lpthread $(EXTRA_LDLIBS)

GUEST_LIB_SRCS := guest/lib/elf64.c guest/lib/cpio.c guest/lib/pagetable.c
HOST_SRCS := $(filter-out launcher/main.c,$(wildcard launcher/*.c common/*.c memory/*.c devices/*.c snapshot/*.c backend/*.c backend/*/*.c)) \
	$(GUEST_LIB_SRCS)

.PHONY: all deps clean test asan bench demo
all: deps $(BUILD)/snapbox $(BUILD)/guest/kernel.elf $(BUILD)/guest/rootfs.cpio

deps:
	@sh mk/deps.sh

# ---- host side -----------------------------------------------------------
HOST_OBJS := $(patsubst %.c,$(BUILD)/host/%.o,$(HOST_SRCS))

$(BUILD)/host/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsnapbox.a: $(HOST_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/snapbox: $(BUILD)/host/launcher/main.o $(BUILD)/libsnapbox.a
	$(CC) $(HOST_CFLAGS) $^ -o $@ $(HOST_LDLIBS)

-include $(HOST_OBJS:.o=.d) $(BUILD)/host/launcher/main.d

include guest/kernel/kernel.mk
include guest/rootfs/rootfs.mk
-include tests/tests.mk
-include bench/bench.mk
-include tests/fuzz/fuzz.mk

# Nothing compiles before mk/deps.sh has installed what it needs: under -j,
# `all: deps ...` alone lets make start the objects alongside it.  Order-only
# (deps is phony: a normal prerequisite would rebuild everything each time).
$(HOST_OBJS) $(BUILD)/host/launcher/main.o $(KERNEL_OBJS) $(LUA_SRCDIR) $(LUA_MULTIARCH_H) \
	$(ROOTFS_EXAMPLE_UNSTRIPPED) $(TEST_BINS) $(BENCH_BINS): | deps

# The README's main command: build, then answer a request in a sandbox.
# Without /dev/kvm (until the proc backend lands) it runs in the emulated
# KVM host of tests/kvmhost.
demo: all
	@if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then sh mk/demo.sh $(BUILD); else \
		echo "snapbox: this machine has no /dev/kvm: running the demo in an emulated KVM host (tests/kvmhost, ~10 s)"; \
		tests/kvmhost/run sh mk/demo.sh $(BUILD); fi

clean:
	rm -rf $(BUILD) build-asan
