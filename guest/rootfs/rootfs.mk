# guest/rootfs/rootfs.mk -- the guest root file system (included from the
# top-level Makefile; paths are relative to the repository root).
#
# Builds $(ROOTFS_IMAGE) = $(BUILD)/guest/base.sbfs, the base layer of the
# root file system: an sbfs image (guest/include/sbfs.h, made by
# `build/snapbox image build`) of the staging tree $(ROOTFS_STAGE) =
# $(BUILD)/guest/rootfs/:
#   bin/lua          Lua 5.4 (Debian's lua5.4 source package), static musl
#   bin/<name>       one static musl program per guest/rootfs/examples/<name>.c
#   app/*, etc/*     copied from guest/rootfs/app/ and guest/rootfs/etc/
#   dev/, tmp/       empty directories
# Mode 0755 (dirs, bin/*) / 0644 (other files), tmp/ 1777, every mtime
# $(ROOTFS_MTIME): the same sources give the same image, byte for byte, and
# so the same id (the image is content-addressed: templates' stores keep it
# as images/<id>.sbfs).  A rebuilt image replaces the old file by a rename:
# whoever maps the old one keeps it.
#
# Intermediates: $(BUILD)/src/lua5.4/ (fetched source, kept as a cache),
# $(BUILD)/guest/lua-obj/ (Lua objects), $(BUILD)/guest/bin-unstripped/
# (unstripped binaries, handy for gdb), $(BUILD)/guest/rootfs/ (staging).
#
# Targets: rootfs (alias for the image), rootfs-check (run the host-runnable
# programs natively as a smoke test), rootfs-clean (everything above except
# the fetched Lua source), lua-src (just fetch the Lua source).

BUILD ?= build

ROOTFS_SRC        := guest/rootfs
ROOTFS_IMAGE      := $(BUILD)/guest/base.sbfs
ROOTFS_STAGE      := $(BUILD)/guest/rootfs
ROOTFS_UNSTRIPPED := $(BUILD)/guest/bin-unstripped
ROOTFS_NORM       := $(BUILD)/guest/rootfs.norm
ROOTFS_CC         ?= musl-gcc
ROOTFS_STRIP      ?= strip
ROOTFS_CFLAGS     ?= -static -O2 -Wall -Wextra -Werror
ROOTFS_MTIME      ?= $(if $(SOURCE_DATE_EPOCH),$(SOURCE_DATE_EPOCH),0)

# ---- Lua 5.4 from Debian's source package ---------------------------------
LUA_SRCPKG    ?= lua5.4
LUA_SRCDIR    := $(BUILD)/src/lua5.4
LUA_OBJDIR    := $(BUILD)/guest/lua-obj
LUA_CC        ?= $(ROOTFS_CC)
# Debian's luaconf.h (0002-lua-modules-paths.patch) includes
# lua5.4-deb-multiarch.h, which debian/rules generates, for DEB_HOST_MULTIARCH
# in the C module path; we generate it under $(LUA_OBJDIR).  Without
# LUA_USE_DLOPEN no C module is ever loaded from that path anyway.
LUA_MULTIARCH ?= x86_64-linux-gnu
LUA_MULTIARCH_H := $(LUA_OBJDIR)/lua5.4-deb-multiarch.h
LUA_CFLAGS    ?= -static -O2 -DLUA_COMPAT_5_3 -DLUA_USE_POSIX
LUA_LDLIBS    ?= -lm
# src/*.c of Lua 5.4 except luac.c (checked against the source when fetched)
LUA_MODULES := lapi lauxlib lbaselib lcode lcorolib lctype ldblib ldebug ldo \
	ldump lfunc lgc linit liolib llex lmathlib lmem loadlib lobject lopcodes \
	loslib lparser lstate lstring lstrlib ltable ltablib ltm lua lundump \
	lutf8lib lvm lzio
LUA_SRCS := $(LUA_MODULES:%=$(LUA_SRCDIR)/src/%.c)
LUA_OBJS := $(LUA_MODULES:%=$(LUA_OBJDIR)/%.o)

# Fetch once: extract into a temporary directory, then rename, so an
# interrupted fetch never leaves a half-extracted $(LUA_SRCDIR) behind.
# Existence of the directory is all that matters (order-only everywhere).
$(LUA_SRCDIR):
	@mkdir -p $(@D)
	@set -e; tmp=$@.tmp; rm -rf $$tmp; mkdir -p $$tmp; \
	echo "  FETCH   apt-get source $(LUA_SRCPKG) -> $@"; \
	( cd $$tmp && { apt-get -o APT::Sandbox::User=root source $(LUA_SRCPKG) || \
	  { echo "rootfs: apt-get source failed; retrying after apt-get update" >&2; \
	    apt-get update -qq && apt-get -o APT::Sandbox::User=root source $(LUA_SRCPKG); }; } ); \
	set -- $$tmp/*/src/lua.h; \
	if [ $$# != 1 ] || [ ! -f "$$1" ]; then \
		echo "rootfs: no single extracted $(LUA_SRCPKG) tree in $$tmp" >&2; exit 1; fi; \
	dir=$${1%/src/lua.h}; \
	have=$$(cd $$dir/src && ls *.c | grep -vx luac.c | sed 's/\.c$$//' | LC_ALL=C sort | tr '\n' ' '); \
	want=$$(printf '%s\n' $(LUA_MODULES) | LC_ALL=C sort | tr '\n' ' '); \
	if [ "$$have" != "$$want" ]; then \
		echo "rootfs: $(LUA_SRCPKG) sources changed; update LUA_MODULES in guest/rootfs/rootfs.mk:" >&2; \
		echo "  have: $$have" >&2; echo "  want: $$want" >&2; exit 1; fi; \
	mv $$dir $@; rm -rf $$tmp

# The sources appear with the directory.
$(LUA_SRCS): | $(LUA_SRCDIR) ;

$(LUA_MULTIARCH_H):
	@mkdir -p $(@D)
	@printf '%s\n' '#ifndef _LUA_DEB_MULTIARCH_' '#define _LUA_DEB_MULTIARCH_' \
		'#define DEB_HOST_MULTIARCH "$(LUA_MULTIARCH)"' '#endif' > $@.tmp
	@mv -f $@.tmp $@

$(LUA_OBJS): $(LUA_OBJDIR)/%.o: $(LUA_SRCDIR)/src/%.c | $(LUA_MULTIARCH_H)
	$(LUA_CC) $(LUA_CFLAGS) -I$(LUA_OBJDIR) -MMD -MP -c $< -o $@

$(ROOTFS_UNSTRIPPED)/lua: $(LUA_OBJS)
	@mkdir -p $(@D)
	$(LUA_CC) -static -O2 -o $@ $(LUA_OBJS) $(LUA_LDLIBS)

# Strip into the staging tree; refuse anything that is not a static ELF or
# does not run on the host.
$(ROOTFS_STAGE)/bin/lua: $(ROOTFS_UNSTRIPPED)/lua
	@mkdir -p $(@D)
	$(ROOTFS_STRIP) -o $@.tmp $<
	@set -e; t=$@.tmp; \
	if command -v file >/dev/null 2>&1; then \
		file -b $$t | grep -q '^ELF 64-bit.*static' || \
		{ echo "rootfs: $@ is not a static ELF: $$(file -b $$t)" >&2; rm -f $$t; exit 1; }; \
	elif readelf -l $$t | grep -q INTERP; then \
		echo "rootfs: $@ is dynamically linked" >&2; rm -f $$t; exit 1; fi; \
	out=$$($$t -e 'print(("x"):rep(3), 2^10)') || true; \
	if [ "$$out" != "$$(printf 'xxx\t1024.0')" ]; then \
		echo "rootfs: $@ self-test failed, printed '$$out'" >&2; rm -f $$t; exit 1; fi
	@mv -f $@.tmp $@

.PHONY: lua-src
lua-src: | $(LUA_SRCDIR)

-include $(LUA_OBJS:.o=.d)

# ---- our example programs -------------------------------------------------
ROOTFS_EXAMPLE_SRCS := $(wildcard $(ROOTFS_SRC)/examples/*.c)
ROOTFS_EXAMPLES     := $(patsubst $(ROOTFS_SRC)/examples/%.c,%,$(ROOTFS_EXAMPLE_SRCS))
ROOTFS_EXAMPLE_UNSTRIPPED := $(ROOTFS_EXAMPLES:%=$(ROOTFS_UNSTRIPPED)/%)
ROOTFS_EXAMPLE_BINS := $(ROOTFS_EXAMPLES:%=$(ROOTFS_STAGE)/bin/%)

$(ROOTFS_EXAMPLE_UNSTRIPPED): $(ROOTFS_UNSTRIPPED)/%: $(ROOTFS_SRC)/examples/%.c
	@mkdir -p $(@D)
	$(ROOTFS_CC) $(ROOTFS_CFLAGS) -MMD -MP -MF $@.d -o $@ $<

$(ROOTFS_EXAMPLE_BINS): $(ROOTFS_STAGE)/bin/%: $(ROOTFS_UNSTRIPPED)/%
	@mkdir -p $(@D)
	$(ROOTFS_STRIP) -o $@ $<

-include $(ROOTFS_EXAMPLE_UNSTRIPPED:=.d)

# ---- data files: app/ and etc/ --------------------------------------------
ROOTFS_DATA := $(patsubst $(ROOTFS_SRC)/%,%,$(wildcard $(ROOTFS_SRC)/app/* $(ROOTFS_SRC)/etc/*))
ROOTFS_DATA_STAGED := $(ROOTFS_DATA:%=$(ROOTFS_STAGE)/%)

$(ROOTFS_DATA_STAGED): $(ROOTFS_STAGE)/%: $(ROOTFS_SRC)/%
	@mkdir -p $(@D)
	cp $< $@

# ---- the image --------------------------------------------------------------
ROOTFS_DIRS    := app bin dev etc tmp
ROOTFS_BINS    := bin/lua $(ROOTFS_EXAMPLES:%=bin/%)
ROOTFS_FILES   := $(ROOTFS_BINS) $(ROOTFS_DATA)

# Image a normalised copy of exactly the listed entries (mode, mtime), so
# the staging tree keeps real timestamps for make and stale files left in it
# never reach the image.
$(ROOTFS_IMAGE): $(ROOTFS_FILES:%=$(ROOTFS_STAGE)/%) $(ROOTFS_SRC)/rootfs.mk $(BUILD)/snapbox
	@mkdir -p $(ROOTFS_STAGE)/dev $(ROOTFS_STAGE)/tmp
	@set -e; n=$(ROOTFS_NORM); rm -rf $$n; mkdir -p $$n; chmod 0755 $$n; \
	for d in $(ROOTFS_DIRS); do mkdir -p $$n/$$d; chmod 0755 $$n/$$d; done; \
	chmod 1777 $$n/tmp; \
	for f in $(ROOTFS_BINS); do install -m 0755 $(ROOTFS_STAGE)/$$f $$n/$$f; done; \
	for f in $(ROOTFS_DATA); do install -m 0644 $(ROOTFS_STAGE)/$$f $$n/$$f; done; \
	find $$n -exec touch -h -d @$(ROOTFS_MTIME) {} +
	$(BUILD)/snapbox image build $(ROOTFS_NORM) -o $@
	@rm -rf $(ROOTFS_NORM)

.PHONY: rootfs rootfs-check rootfs-clean
rootfs: $(ROOTFS_IMAGE)

# Smoke test on the host (the binaries are static x86-64 Linux programs).
rootfs-check: $(ROOTFS_IMAGE)
	@set -e; b=$(ROOTFS_STAGE)/bin; \
	test "$$($$b/hello)" = "hello from snapbox"; \
	$$b/true; ! $$b/false; \
	rc=0; $$b/exitcode 42 || rc=$$?; test $$rc = 42; \
	test "$$(printf 'a\nb\n' | $$b/cat)" = "$$(printf 'a\nb')"; \
	test "$$($$b/lua -e 'print(("x"):rep(3), 2^10)')" = "$$(printf 'xxx\t1024.0')"; \
	test "$$(cd $(ROOTFS_STAGE) && bin/lua app/hello.lua)" = "hello from lua"; \
	test "$$(echo '{"n": 10}' | $$b/lua $(ROOTFS_STAGE)/app/handler.lua)" = \
		'{"n": 10, "fib": 55, "prime": 29}'; \
	$$b/memtest 16 >/dev/null; \
	$(BUILD)/snapbox image verify $(ROOTFS_IMAGE) >/dev/null; \
	echo "rootfs-check: ok"

rootfs-clean:
	rm -rf $(ROOTFS_IMAGE) $(ROOTFS_IMAGE).tmp.* $(ROOTFS_STAGE) $(ROOTFS_NORM) \
		$(ROOTFS_UNSTRIPPED) $(LUA_OBJDIR)
