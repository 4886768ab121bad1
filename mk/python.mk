# mk/python.mk -- the Python layer (included from the top-level Makefile).
#
# $(PYTHON_IMAGE) = $(BUILD)/guest/python3.11.sbfs: Debian 12's CPython 3.11
# and the libraries it needs, as a read-only sbfs layer that `template create`
# stacks on the base layer (docs/python-design.md sections 1.1 and 3):
#   guest/python/packages.txt  pinned NAME VERSION SHA256 of 13 packages
#   mk/python-fetch.sh         apt-get download -> $(PYTHON_DEBS) (cached,
#                              SHA256-checked; network only when missing)
#   mk/python-root.sh          dpkg-deb -x, prune, python3 link, ld.so.cache,
#                              byte-compile -> $(PYTHON_ROOT)
#   build/snapbox image build  the tree -> the image (content-addressed)
# python-check runs guest/rootfs/app/handler.py with the tree's interpreter
# through the tree's own ld.so (no chroot, no host python) and compares its
# answer with values computed here; the image is made only when it passes.
# Targets: python (the image), python-check, python-clean (keeps the .debs),
# python-pins (print packages.txt lines for what apt has now).

PYTHON_PKGS  := guest/python/packages.txt
PYTHON_DIR   := $(BUILD)/python
PYTHON_DEBS  := $(PYTHON_DIR)/debs
PYTHON_ROOT  := $(PYTHON_DIR)/root
PYTHON_IMAGE := $(BUILD)/guest/python3.11.sbfs
PYTHON_MTIME ?= $(if $(SOURCE_DATE_EPOCH),$(SOURCE_DATE_EPOCH),0)

# Stamps: the fetch reruns when the pins change, the tree when the .debs or
# the scripts do.
PYTHON_FETCHED := $(PYTHON_DIR)/.fetched
PYTHON_UNPACKED := $(PYTHON_DIR)/.unpacked
PYTHON_CHECKED := $(PYTHON_DIR)/.checked

$(PYTHON_FETCHED): $(PYTHON_PKGS) mk/python-fetch.sh
	@mkdir -p $(@D)
	@sh mk/python-fetch.sh $(PYTHON_PKGS) $(PYTHON_DEBS)
	@touch $@

# (A stamp beside the tree: every mtime inside it is $(PYTHON_MTIME).)
$(PYTHON_UNPACKED): $(PYTHON_FETCHED) mk/python-root.sh
	@echo "  PYROOT  $(PYTHON_ROOT)"
	@sh mk/python-root.sh $(PYTHON_PKGS) $(PYTHON_DEBS) $(PYTHON_ROOT) $(PYTHON_MTIME)
	@touch $@

# The sanity check: the handler, run by the tree's python through the tree's
# ld.so (lib64/'s link is absolute: it would name the host's ld.so).
PYTHON_RUN = env -i $(PYTHON_ROOT)/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
	--library-path $(PYTHON_ROOT)/lib/x86_64-linux-gnu:$(PYTHON_ROOT)/usr/lib/x86_64-linux-gnu \
	$(PYTHON_ROOT)/usr/bin/python3.11 -B

$(PYTHON_CHECKED): $(PYTHON_UNPACKED) guest/rootfs/app/handler.py
	@set -e; text='Snapbox: Python 3.11, from a template!'; \
	out=$$(printf '{"n": 30, "text": "%s"}' "$$text" | $(PYTHON_RUN) guest/rootfs/app/handler.py) || \
		{ echo "python-check: the handler failed in $(PYTHON_ROOT)" >&2; exit 1; }; \
	sha=$$(printf '%s' "$$text" | sha256sum | cut -d' ' -f1); \
	b64=$$(printf '%s' "$$text" | base64 -w0); \
	for want in '"fib": 832040' '"sum": 465' '"isqrt": 5' \
		'"words": ["snapbox", "python", "3", "11", "from", "a", "template"]' \
		"\"sha256\": \"$$sha\"" "\"b64\": \"$$b64\""; do \
		case "$$out" in *"$$want"*) ;; \
		*) echo "python-check: handler answered '$$out', no '$$want'" >&2; exit 1;; esac; \
	done; \
	rc=0; err=$$(echo '{"raise": "boom"}' | $(PYTHON_RUN) guest/rootfs/app/handler.py 2>&1 >/dev/null) || rc=$$?; \
	case "$$rc:$$err" in 1:Traceback*"RuntimeError: boom") ;; \
	*) echo "python-check: a raising handler gave exit $$rc and '$$err'" >&2; exit 1;; esac; \
	$(PYTHON_RUN) -I -c 'import json, re, hashlib, random, base64, math, datetime, \
		collections, bz2, lzma, ctypes, sqlite3, uuid, mimetypes, decimal, struct, zlib' || \
		{ echo "python-check: a standard module does not import" >&2; exit 1; }
	@echo "python-check: ok"
	@touch $@

$(PYTHON_IMAGE): $(PYTHON_CHECKED) $(BUILD)/snapbox
	@mkdir -p $(@D)
	$(BUILD)/snapbox image build $(PYTHON_ROOT) -o $@

.PHONY: python python-check python-clean python-pins
python: $(PYTHON_IMAGE)
python-check: $(PYTHON_CHECKED)
python-pins:
	@sh mk/python-pins.sh $(PYTHON_PKGS)
python-clean:
	rm -rf $(PYTHON_IMAGE) $(PYTHON_IMAGE).tmp.* $(PYTHON_ROOT) $(PYTHON_ROOT).tmp \
		$(PYTHON_FETCHED) $(PYTHON_UNPACKED) $(PYTHON_CHECKED)
