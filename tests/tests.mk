# Criterion suites: unit tests of shared code and end-to-end tests that
# boot real guests through the snapbox binary.
TEST_OUT   := $(BUILD)/tests
TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(patsubst tests/%.c,$(TEST_OUT)/%,$(TEST_SRCS))
TEST_CFLAGS := $(filter-out -Werror,$(HOST_CFLAGS)) -Werror -Itests

$(TEST_OUT)/%: tests/%.c tests/run.c tests/run.h $(BUILD)/libsnapbox.a | $(TEST_OUT)/guest
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< tests/run.c -o $@ $(BUILD)/libsnapbox.a -lcriterion $(HOST_LDLIBS)

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
