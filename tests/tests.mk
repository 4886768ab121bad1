# Criterion suites: unit tests of shared code and end-to-end tests that
# boot real guests through the snapbox binary.
TEST_OUT   := $(BUILD)/tests
TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(patsubst tests/%.c,$(TEST_OUT)/%,$(TEST_SRCS))
TEST_CFLAGS := $(filter-out -Werror,$(HOST_CFLAGS)) -Werror -Itests

$(TEST_OUT)/%: tests/%.c tests/run.c tests/run.h $(BUILD)/libsnapbox.a | $(TEST_OUT)/guest
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< tests/run.c -o $@ $(BUILD)/libsnapbox.a -lcriterion $(HOST_LDLIBS) -lm

# Suites that make machines in their own process (test_pool: the pool;
# test_recycle: clones it recycles through backend.h) make proc
# machines there: the proc backend finds its stub beside the executable
# (guest/proc-stub), as it does for build/snapbox.
$(TEST_OUT)/guest:
	@mkdir -p $(TEST_OUT)
	ln -sfn ../guest $@

.PHONY: test-bins
test-bins: $(TEST_BINS)

# `make test`: everything, then each suite, then the same suites against an
# ASan/UBSan build of the host side.
test: all $(TEST_BINS)
	@sh tests/run_all.sh $(BUILD)

# A guest kernel of ABI 3 (the last one before the ABI note, built from
# git at ABI3_COMMIT), for the tests that check that this snapbox refuses
# to boot such a kernel in one line (it expects a cpio rootfs in RAM;
# test_boot) and still runs its templates, whose clones complete a pending
# READ and speak the synchronous calls of ABI 3 (test_template).  Needs the
# repository's history (git archive).
ABI3_COMMIT := ce7a39ca885621dbe2c5e1b0d5570804cd948430
ABI3_KERNEL := $(BUILD)/fixtures/abi3-kernel.elf
$(ABI3_KERNEL):
	@rm -rf $(BUILD)/fixtures/abi3 && mkdir -p $(BUILD)/fixtures/abi3
	git archive $(ABI3_COMMIT) guest/kernel guest/include guest/lib | tar -x -C $(BUILD)/fixtures/abi3
	$(MAKE) -s -C $(BUILD)/fixtures/abi3 -f guest/kernel/kernel.mk BUILD=out CC=$(CC) \
		GUEST_LIB_SRCS="guest/lib/elf64.c guest/lib/cpio.c guest/lib/pagetable.c" out/guest/kernel.elf
	cp $(BUILD)/fixtures/abi3/out/guest/kernel.elf $@

# A snapbox from before the root file system became layers (main at
# OLD_HOST_COMMIT, the merge of the layers' first parent), built from git:
# only it still boots an ABI 3 kernel (with its rootfs as a cpio in RAM), so
# test_template makes its ABI 3 templates with it (format 1.2, no layers),
# as a user upgrading from it would have them.  Its rootfs build reuses
# $(BUILD)/src (the fetched Lua source).
OLD_HOST_COMMIT := b236f394c05d192c8e0b4cbc6c02e82c5e54926a
OLD_HOST_DIR := $(BUILD)/fixtures/old-host
OLD_SNAPBOX := $(OLD_HOST_DIR)/build/snapbox
$(OLD_SNAPBOX): | $(LUA_SRCDIR)
	@rm -rf $(OLD_HOST_DIR) && mkdir -p $(OLD_HOST_DIR)/build
	git archive $(OLD_HOST_COMMIT) | tar -x -C $(OLD_HOST_DIR)
	ln -sfn $(abspath $(BUILD))/src $(OLD_HOST_DIR)/build/src
	$(MAKE) -s -C $(OLD_HOST_DIR) BUILD=build CC=$(CC) build/snapbox build/guest/rootfs.cpio \
		build/guest/proc-stub build/guest/kernel.elf

$(TEST_OUT)/test_template $(TEST_OUT)/test_boot: | $(ABI3_KERNEL) $(OLD_SNAPBOX)

# A root file system layer with a dynamically linked glibc program
# (tests/guest/dyncheck.c, built with the host's gcc) and what it needs from
# the host: ld.so (behind the absolute symlink /lib64/ld-linux-x86-64.so.2,
# as Debian has it), libc and libm (which it dlopen()s).  /data holds a file
# with a fixed mtime, a relative symlink to it and a subdirectory for the
# file system checks.  test_boot and test_template pass it as --rootfs.
DYNROOT := $(TEST_OUT)/dynroot
DYNROOT_LIBDIR := /lib/x86_64-linux-gnu
$(DYNROOT)/.stamp: tests/guest/dyncheck.c tests/tests.mk
	@rm -rf $(DYNROOT) && mkdir -p $(DYNROOT)/bin $(DYNROOT)/lib64 $(DYNROOT)$(DYNROOT_LIBDIR) \
		$(DYNROOT)/data/sub
	$(CC) -O2 -Wall -Wextra -Werror -o $(DYNROOT)/bin/dyncheck tests/guest/dyncheck.c
	@set -e; for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6; do \
		cp -L $(DYNROOT_LIBDIR)/$$l $(DYNROOT)$(DYNROOT_LIBDIR)/$$l; done; \
	ln -s $(DYNROOT_LIBDIR)/ld-linux-x86-64.so.2 $(DYNROOT)/lib64/ld-linux-x86-64.so.2; \
	printf 'layered file\n' > $(DYNROOT)/data/file.txt; \
	touch -d @1700000000 $(DYNROOT)/data/file.txt; \
	ln -s file.txt $(DYNROOT)/data/link
	@touch $@

$(TEST_OUT)/test_template $(TEST_OUT)/test_boot: | $(DYNROOT)/.stamp
