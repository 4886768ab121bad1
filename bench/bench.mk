# Benchmark programs: print figures (median/p90/p99, ratios to a peer),
# never assert.  `make bench` builds and runs them.
BENCH_OUT := $(BUILD)/bench
BENCH_PROGS := $(filter-out common,$(patsubst bench/%.c,%,$(wildcard bench/*.c)))
BENCH_BINS := $(BENCH_PROGS:%=$(BENCH_OUT)/%)

$(BENCH_OUT)/%: bench/%.c bench/common.c bench/common.h bench/clonekit.h bench/warmfork.h bench/reaper.h $(BUILD)/libsnapbox.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $< bench/common.c -o $@ $(BUILD)/libsnapbox.a $(HOST_LDLIBS)

# Build without running (checks that the benchmarks still compile).
.PHONY: bench-bins
bench-bins: $(BENCH_BINS)

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done
$(BENCH_OUT)/proc $(BENCH_OUT)/recycle: $(BENCH_OUT)/lua_zygote.so # the warm-fork peer (LD_PRELOAD into lua5.4)
$(BENCH_OUT)/%.so: bench/preload/%.c bench/preload/zygote.h ; @mkdir -p $(dir $@) && $(CC) -O2 -Wall -Wextra -Werror -shared -fPIC $< -o $@
$(BENCH_OUT)/python: $(BENCH_OUT)/py_zygote.so $(BUILD)/guest/python3.11.sbfs # the warm-fork peer (ld.so --preload into the layer's python3.11)
