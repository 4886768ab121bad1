# libFuzzer harnesses for the template state-file reader (snapshot/load.c:
# snapshot__parse_state) and for sbfs layer images (sbfs/check.c and the
# guest's reader, guest/lib/sbfs.c).  Included by the top-level Makefile.
#
#   make fuzz           build $(BUILD)/fuzz/fuzz_state, fuzz for FUZZ_SECONDS over
#                       a copy of tests/fuzz/corpus (new inputs and crashes stay
#                       under $(BUILD)/fuzz/)
#   make fuzz-sbfs      the same for $(BUILD)/fuzz/fuzz_sbfs over tests/fuzz/sbfs-corpus
#   make fuzz-migrate   the same for $(BUILD)/fuzz/fuzz_migrate (the live-migration
#                       stream reader) over tests/fuzz/migrate-corpus
#   make fuzz-regress   run every file of both corpora once (no fuzzing)
#   make fuzz-merge     add the inputs of the last `make fuzz` that reach new
#                       edges to tests/fuzz/corpus (libFuzzer -merge=1; hit
#                       counts are ignored, -use_counters=0, to keep it small)
#
# Needs clang + compiler-rt (tests/fuzz/deps.sh installs them when root).

BUILD        ?= build
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 16384
FUZZ_ARGS    ?=
FUZZ_OUT     := $(BUILD)/fuzz
FUZZ_BIN     := $(FUZZ_OUT)/fuzz_state
FUZZ_CORPUS  := tests/fuzz/corpus
FUZZ_WORK    := $(FUZZ_OUT)/corpus
FUZZ_CFLAGS  := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-g -O1 -std=gnu11 -Wall -Wextra -Wno-gnu-variable-sized-type-not-at-end \
	-D_GNU_SOURCE -Iguest/include -Iguest/lib -I. $(FUZZ_EXTRA_CFLAGS)
FUZZ_LDLIBS  := -lxxhash
# The reader and what it links against (hypercall.c pulls timeout.c and
# syscall_names.c; load.c pulls image.c, which pulls file.c and overlay.c;
# no backend).
FUZZ_SRCS    := tests/fuzz/fuzz_state.c snapshot/load.c snapshot/overlay.c \
	snapshot/image.c common/err.c common/file.c devices/hypercall.c \
	common/timeout.c common/syscall_names.c memory/ram.c guest/lib/sbfs.c
FUZZ_OBJS    := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(FUZZ_SRCS))
# The migration stream reader (migrate/stream.c, recv.c: no backend), with
# the state.bin reader it hands STATE to (and what it pulls: overlay.c).
FUZZ_MIG_BIN     := $(FUZZ_OUT)/fuzz_migrate
FUZZ_MIG_SRCS    := tests/fuzz/fuzz_migrate.c migrate/stream.c migrate/recv.c snapshot/load.c snapshot/overlay.c \
	snapshot/image.c common/err.c common/file.c devices/hypercall.c common/timeout.c \
	common/syscall_names.c memory/ram.c guest/lib/sbfs.c
FUZZ_MIG_OBJS    := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(FUZZ_MIG_SRCS))
FUZZ_MIG_CORPUS  := tests/fuzz/migrate-corpus
FUZZ_MIG_WORK    := $(FUZZ_OUT)/migrate-corpus
FUZZ_SBFS_BIN    := $(FUZZ_OUT)/fuzz_sbfs
FUZZ_SBFS_SRCS   := tests/fuzz/fuzz_sbfs.c sbfs/check.c guest/lib/sbfs.c common/err.c
FUZZ_SBFS_OBJS   := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(FUZZ_SBFS_SRCS))
FUZZ_SBFS_CORPUS := tests/fuzz/sbfs-corpus
FUZZ_SBFS_WORK   := $(FUZZ_OUT)/sbfs-corpus
FUZZ_SBFS_RUNARGS := -max_len=65536 -timeout=10 -artifact_prefix=$(FUZZ_OUT)/artifacts/ \
	-print_final_stats=1
FUZZ_RUNARGS := -max_len=$(FUZZ_MAX_LEN) -timeout=10 -dict=tests/fuzz/state.dict \
	-artifact_prefix=$(FUZZ_OUT)/artifacts/ -print_final_stats=1

.PHONY: fuzz fuzz-sbfs fuzz-migrate fuzz-regress fuzz-merge fuzz-deps
fuzz-deps:
	@sh tests/fuzz/deps.sh $(FUZZ_CC)

$(FUZZ_OUT)/obj/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BIN): $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $^ -o $@ $(FUZZ_LDLIBS)

$(FUZZ_SBFS_BIN): $(FUZZ_SBFS_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $^ -o $@ $(FUZZ_LDLIBS)

$(FUZZ_MIG_BIN): $(FUZZ_MIG_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $^ -o $@ $(FUZZ_LDLIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_SBFS_OBJS:.o=.d) $(FUZZ_MIG_OBJS:.o=.d)

fuzz-migrate: fuzz-deps $(FUZZ_MIG_BIN)
	@mkdir -p $(FUZZ_MIG_WORK) $(FUZZ_OUT)/artifacts
	cp -n $(FUZZ_MIG_CORPUS)/* $(FUZZ_MIG_WORK)/
	$(FUZZ_MIG_BIN) -max_len=65536 -timeout=10 -artifact_prefix=$(FUZZ_OUT)/artifacts/ \
		-print_final_stats=1 -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) $(FUZZ_MIG_WORK)

fuzz: fuzz-deps $(FUZZ_BIN)
	@mkdir -p $(FUZZ_WORK) $(FUZZ_OUT)/artifacts
	cp -n $(FUZZ_CORPUS)/* $(FUZZ_WORK)/
	$(FUZZ_BIN) $(FUZZ_RUNARGS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) $(FUZZ_WORK)

fuzz-sbfs: fuzz-deps $(FUZZ_SBFS_BIN)
	@mkdir -p $(FUZZ_SBFS_WORK) $(FUZZ_OUT)/artifacts
	cp -n $(FUZZ_SBFS_CORPUS)/* $(FUZZ_SBFS_WORK)/
	$(FUZZ_SBFS_BIN) $(FUZZ_SBFS_RUNARGS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) $(FUZZ_SBFS_WORK)

fuzz-regress: fuzz-deps $(FUZZ_BIN) $(FUZZ_SBFS_BIN) $(FUZZ_MIG_BIN)
	$(FUZZ_BIN) $(FUZZ_CORPUS)/*
	$(FUZZ_SBFS_BIN) $(FUZZ_SBFS_CORPUS)/*
	$(FUZZ_MIG_BIN) $(FUZZ_MIG_CORPUS)/*

fuzz-merge: fuzz-deps $(FUZZ_BIN)
	$(FUZZ_BIN) -merge=1 -use_counters=0 -max_len=$(FUZZ_MAX_LEN) $(FUZZ_CORPUS) $(FUZZ_WORK)
