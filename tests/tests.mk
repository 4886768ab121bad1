# Criterion suites: unit tests of shared code and end-to-end tests that
# boot real guests through the snapbox binary.
TEST_OUT   := $(BUILD)/tests
TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(patsubst tests/%.c,$(TEST_OUT)/%,$(TEST_SRCS))
TEST_CFLAGS := $(filter-out -Werror,$(HOST_CFLAGS)) -Werror -Itests

$(TEST_OUT)/%: tests/%.c tests/run.c tests/run.h $(BUILD)/libsnapbox.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< tests/run.c -o $@ $(BUILD)/libsnapbox.a -lcriterion $(HOST_LDLIBS)

.PHONY: test-bins
test-bins: $(TEST_BINS)

# `make test`: everything, then each suite, then the same suites against an
# ASan/UBSan build of the host side.
test: all $(TEST_BINS)
	@sh tests/run_all.sh $(BUILD)
