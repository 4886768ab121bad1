# snapbox top-level build.  `make` installs missing Debian packages
# (mk/deps.sh), then builds the launcher, the guest kernel and the base
# layer of the root file system (build/guest/base.sbfs, made by the launcher).
# Everything lands under build/ (BUILD=... to change).

BUILD   ?= build
CC      ?= gcc
HOST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
	-Iguest/include -Iguest/lib -I. $(EXTRA_CFLAGS)
HOST_LDLIBS := -lxxhash -llz4 -luring -lmicrohttpd -ljansson -lpthread $(EXTRA_LDLIBS)

GUEST_LIB_SRCS := guest/lib/elf64.c guest/lib/pagetable.c guest/lib/sbfs.c
HOST_SRCS := $(filter-out launcher/main.c,$(wildcard launcher/*.c common/*.c memory/*.c devices/*.c snapshot/*.c backend/*.c backend/*/*.c sbfs/*.c migrate/*.c)) \
	$(GUEST_LIB_SRCS)

.PHONY: all deps clean test asan bench demo demo-python
all: deps $(BUILD)/snapbox $(BUILD)/guest/kernel.elf $(BUILD)/guest/base.sbfs $(BUILD)/guest/proc-stub \
	$(BUILD)/guest/python3.11.sbfs

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
include backend/proc/proc.mk
include mk/python.mk
-include tests/tests.mk
-include bench/bench.mk
-include tests/fuzz/fuzz.mk

# Nothing compiles before mk/deps.sh has installed what it needs: under -j,
# `all: deps ...` alone lets make start the objects alongside it.  Order-only
# (deps is phony: a normal prerequisite would rebuild everything each time).
$(HOST_OBJS) $(BUILD)/host/launcher/main.o $(KERNEL_OBJS) $(LUA_SRCDIR) $(LUA_MULTIARCH_H) \
	$(ROOTFS_EXAMPLE_UNSTRIPPED) $(TEST_BINS) $(BENCH_BINS) $(PYTHON_FETCHED): | deps

# `make demo`: natively everywhere, with --backend auto (kvm where /dev/kvm is
# usable, else the proc backend); SNAPBOX_DEMO_BACKEND=kvm|proc picks one.
demo: all
	@sh mk/demo.sh $(BUILD) $(SNAPBOX_DEMO_BACKEND)

# `make demo-python`: the same with the Python handler (Debian's python3).
demo-python: all
	@sh mk/demo-python.sh $(BUILD) $(SNAPBOX_DEMO_BACKEND)

clean:
	rm -rf $(BUILD) build-asan
