/* SPDX-License-Identifier: MIT */
/*
 * On-disk format of a snapbox template: a directory holding
 *
 *   mem.img      guest RAM, byte for byte, page-aligned; zero pages are holes
 *                (sparse), so a clone maps it MAP_PRIVATE and copies nothing;
 *                (1.4) so are pages a layer image holds (the OVERLAY section)
 *   pages.idx    struct snap_pages_header + one xxh3-64 per 4 KiB page of RAM
 *                (0 = zero page): integrity, dedup, the content address
 *   state.bin    struct snap_header, a table of struct snap_section, then the
 *                sections: CPUID, vCPU, VM, memory map, one per device, the
 *                template's policy (1.2) and its root file system layers (1.3)
 *   layers/<id>.sbfs  (1.3) the root file system's layers the template names:
 *                read-only sbfs images (guest/include/sbfs.h), hard links of
 *                the store's content-addressed images/<id>.sbfs (shared by
 *                every template with the same layer), never modified
 *   template.json  a manifest for people and tools (not read by clones)
 *
 * Every struct here is plain data with its size pinned.  Readers check every
 * offset and length against the file size and every hash before use, and
 * refuse a newer major version.  Template id = xxh3-128 of pages.idx and
 * state.bin.
 */
#ifndef SNAP_FORMAT_H
#define SNAP_FORMAT_H
#include <stdint.h>
#include <linux/kvm.h>

#include "backend/proc/proc_abi.h"

#define SNAP_MAGIC      "SNAPBOX\0"
#define SNAP_MAJOR      1
#define SNAP_MINOR      5 /* 1.1: the backend in the header, PROC_CPU section;
                             1.2: the POLICY section (required from 1.2 on,
                             refused before: a 1.1 template's policy is "not set");
                             1.3: the LAYERS section (required from 1.3 on, refused
                             before: an older template's root file system is a cpio
                             in its RAM, served by the kernel in it);
                             1.4: the OVERLAY section;
                             1.5: the HOTSET section (required from 1.5 on) */
#define SNAP_ARCH_X86_64 1
#define SNAP_PAGE       4096ULL
#define SNAP_MAX_MEM_PAGES ((64ULL << 30) / SNAP_PAGE)
#define SNAP_MAX_SECTIONS 32
#define SNAP_MAX_SECTION_LEN (1U << 20)

#define SNAP_MEM_FILE   "mem.img"
#define SNAP_PAGES_FILE "pages.idx"
#define SNAP_STATE_FILE "state.bin"
#define SNAP_MANIFEST_FILE "template.json"
#define SNAP_LAYERS_DIR "layers"    /* layers/<32 hex digits of the id>.sbfs */

struct snap_header {
	char magic[8];          /* SNAP_MAGIC */
	uint16_t major, minor;  /* SNAP_MAJOR / SNAP_MINOR */
	uint32_t arch;          /* SNAP_ARCH_X86_64 */
	uint32_t abi_version;   /* guest<->host ABI the guest kernel speaks */
	uint32_t n_sections;    /* <= SNAP_MAX_SECTIONS; table follows the header */
	uint64_t mem_size;      /* bytes of guest RAM = size of mem.img */
	uint64_t cpuid_hash;    /* xxh3 of the CPUID entries (section CPUID) */
	uint64_t pages_hash;    /* xxh3 of pages.idx, the whole file */
	uint64_t table_hash;    /* xxh3 of the section table */
	uint64_t header_hash;   /* xxh3 of this header with header_hash = 0 */
	uint32_t backend;       /* enum snap_backend (1.1; reserved, so kvm, in 1.0) */
	uint8_t reserved[4];
};
_Static_assert(sizeof(struct snap_header) == 72, "snap_header size");

/* Which backend made the template: the sections differ (kvm: CPUID, VCPU,
 * VM; proc: PROC_CPU), and a template runs only on its own backend. */
enum snap_backend {
	SNAP_BACKEND_KVM = 0,
	SNAP_BACKEND_PROC = 1,
	SNAP_BACKEND_COUNT
};

enum snap_section_type {
	SNAP_SEC_CPUID = 1,     /* struct snap_cpuid + entries */
	SNAP_SEC_VCPU = 2,      /* struct snap_vcpu (one per vCPU, in order) */
	SNAP_SEC_VM = 3,        /* struct snap_vm */
	SNAP_SEC_MEMMAP = 4,    /* struct snap_memmap */
	SNAP_SEC_SERIAL = 5,    /* struct serial_state (devices/serial.h) */
	SNAP_SEC_HYPERCALL = 6, /* struct hc_state (devices/hypercall.h) */
	SNAP_SEC_PROC_CPU = 7,  /* struct snap_proc_cpu (proc backend only) */
	SNAP_SEC_POLICY = 8,    /* struct snap_policy (1.2; every backend) */
	SNAP_SEC_LAYERS = 9,    /* struct snap_layers (1.3; every backend) */
	SNAP_SEC_OVERLAY = 10,  /* struct snap_overlay + runs (1.4; every backend) */
	SNAP_SEC_HOTSET = 11,   /* struct snap_hotset + ranges (1.5; every backend) */
	SNAP_SEC_TYPE_MAX
};

struct snap_section {
	uint32_t type;          /* enum snap_section_type */
	uint32_t version;       /* of that section's struct */
	uint64_t offset;        /* from the start of state.bin */
	uint64_t length;
	uint64_t hash;          /* xxh3 of the section's bytes */
};
_Static_assert(sizeof(struct snap_section) == 32, "snap_section size");

/* ---- sections ------------------------------------------------------------ */
#define SNAP_CPUID_VERSION 1
#define SNAP_CPUID_MAX 256
struct snap_cpuid {
	uint32_t nent;          /* entries that follow: struct kvm_cpuid_entry2 */
	uint32_t reserved;
};
_Static_assert(sizeof(struct snap_cpuid) == 8, "snap_cpuid size");
_Static_assert(sizeof(struct kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 size");

#define SNAP_VCPU_VERSION 1
#define SNAP_MSRS_MAX 24
#define SNAP_MSRS_REQUIRED 4 /* a template has at least these (EFER, STAR, LSTAR, FS_BASE ...) */
#define SNAP_VCPU_HAS_XCRS  (1u << 0)
#define SNAP_VCPU_HAS_XSAVE (1u << 1)
struct snap_msr {
	uint32_t index;
	uint32_t reserved;
	uint64_t data;
};
_Static_assert(sizeof(struct snap_msr) == 16, "snap_msr size");

struct snap_vcpu {
	uint32_t id;
	uint32_t flags;                 /* SNAP_VCPU_HAS_* */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_xsave xsave;
	struct kvm_mp_state mp_state;
	uint32_t n_msrs;                /* <= SNAP_MSRS_MAX */
	struct snap_msr msrs[SNAP_MSRS_MAX];
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
};
_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs size");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs size");
_Static_assert(sizeof(struct kvm_fpu) == 416, "kvm_fpu size");
_Static_assert(sizeof(struct kvm_xcrs) == 392, "kvm_xcrs size");
_Static_assert(sizeof(struct kvm_xsave) == 4096, "kvm_xsave size");
_Static_assert(sizeof(struct kvm_vcpu_events) == 64, "kvm_vcpu_events size");
_Static_assert(sizeof(struct kvm_debugregs) == 128, "kvm_debugregs size");
_Static_assert(sizeof(struct snap_vcpu) == 5952, "snap_vcpu size");

#define SNAP_VM_VERSION 1
struct snap_vm {
	struct kvm_clock_data clock;    /* KVM_GET_CLOCK at the ready point */
	uint32_t n_vcpus;
	uint32_t reserved;
};
_Static_assert(sizeof(struct kvm_clock_data) == 48, "kvm_clock_data size");
_Static_assert(sizeof(struct snap_vm) == 56, "snap_vm size");

#define SNAP_MEMMAP_VERSION 1
#define SNAP_MEMMAP_MAX 4
struct snap_memslot {
	uint64_t gpa;
	uint64_t size;
	uint64_t file_offset;           /* into mem.img */
};
struct snap_memmap {
	uint32_t n_slots;               /* <= SNAP_MEMMAP_MAX */
	uint32_t reserved;
	struct snap_memslot slots[SNAP_MEMMAP_MAX];
};
_Static_assert(sizeof(struct snap_memmap) == 8 + 24 * SNAP_MEMMAP_MAX, "snap_memmap size");

/*
 * The proc backend's CPU: the sandbox's user-mode registers at the ready
 * point (as its signal frame had them: the guest kernel blocked in its
 * channel read, about to restart it), FS base, the XSAVE image of its
 * signal frame (FP_XSTATE_MAGIC1/2 included), the rootfs window the sandbox
 * maps read-only, and the host's XSAVE layout (CPUID 0xD) of every saved
 * feature: a clone host must offer the same features at the same offsets.
 */
#define SNAP_PROC_CPU_VERSION 1
struct snap_xcomp {
	uint32_t offset, size;          /* CPUID(0xD, i): EBX, EAX; 0 if not saved */
};
struct snap_proc_cpu {
	struct sb_proc_cpu cpu;
	uint64_t ro_lo, ro_hi;          /* read-only in the sandbox: [ro_lo, ro_hi) */
	struct snap_xcomp xcomp[64];
};
_Static_assert(sizeof(struct sb_proc_cpu) == 4288, "sb_proc_cpu size");
_Static_assert(sizeof(struct snap_proc_cpu) == 4816, "snap_proc_cpu size");

/*
 * The template's policy for the service (`snapbox serve`), fixed when the
 * template is created (templates are immutable: clones map them).  Today
 * only recycling: may a worker whose sandbox's program exited by itself
 * reset it to the template and serve the next run of this template with it?
 * RECYCLE_DEFAULT: the template does not say; the service's own default
 * (`serve --recycle`) applies.  OFF and DEFAULT carry no max_reuses/idle_ms
 * (both 0).  Every field is checked on load.
 */
#define SNAP_POLICY_VERSION 1
enum snap_recycle_mode {
	SNAP_RECYCLE_DEFAULT = 0,       /* not set: the service's default */
	SNAP_RECYCLE_OFF = 1,
	SNAP_RECYCLE_ON = 2,
	SNAP_RECYCLE_MODE_COUNT
};
#define SNAP_POLICY_MAX_REUSES  1000000000u     /* max_reuses: 0 (no limit) or 1..this */
#define SNAP_POLICY_MAX_IDLE_MS (24u * 3600 * 1000) /* idle_ms: 0 (default) or 1..this */
#define SNAP_POLICY_DEFAULT_IDLE_MS 60000u
struct snap_policy {
	uint32_t recycle;               /* enum snap_recycle_mode */
	uint32_t max_reuses;            /* runs after the first; 0: no limit */
	uint32_t idle_ms;               /* worker exits after this long unused; 0: default (60 s) */
	uint32_t reserved[5];           /* zero */
};
_Static_assert(sizeof(struct snap_policy) == 32, "snap_policy size");

/*
 * The root file system's layers (1.3): the sbfs images the guest saw in its
 * layer window, bottom first, where it saw them (laid out as the host lays
 * out a boot's: from SB_IMG_GPA, each 2 MiB-aligned after the one before),
 * and their ids, which name the files in layers/.  A clone maps the same
 * files at the same addresses (the guest's page tables and its kernel's
 * layer table, in RAM, say so) and is refused if one is missing or is not
 * that image (its size or the id in its header differs; `template verify`
 * checks every byte).  Entries past n_layers are zero.
 */
#define SNAP_LAYERS_VERSION 1
struct snap_layer {
	uint8_t id[16];                 /* the image's id (xxh3-128, canonical) */
	uint64_t gpa;
	uint64_t size;                  /* the image file's size */
};
_Static_assert(sizeof(struct snap_layer) == 32, "snap_layer size");
struct snap_layers {
	uint32_t n_layers;              /* 1..SB_MAX_LAYERS */
	uint32_t reserved;              /* zero */
	struct snap_layer layers[SB_MAX_LAYERS];
};
_Static_assert(sizeof(struct snap_layers) == 8 + 32 * SB_MAX_LAYERS, "snap_layers size");

/*
 * Overlays (1.4): RAM pages that were, at the ready point, byte for byte a
 * page of one of the template's layer images (a program's text and
 * read-only data, copied there by the guest kernel's exec or mmap) are not
 * stored in mem.img (holes there) but recorded as runs: npages pages from
 * gpa are the layer's pages from img_off.  A clone maps mem.img private and
 * then each run of the layer file private over its range, so those pages
 * come from the page cache of the one image file every template and clone
 * of that layer shares; a clone that writes one gets its own copy, the
 * image is never written.  pages.idx keeps such a page's hash (the image
 * page's), so `template verify` checks the image there.  Runs are sorted by
 * gpa, disjoint, whole pages, at or above SNAP_OVERLAY_MIN_GPA (a proc
 * sandbox maps no RAM below it), inside RAM and inside their layer; at most
 * SNAP_OVERLAY_MAX.  Checked on load, against the layers section.
 */
#define SNAP_OVERLAY_VERSION 1
#define SNAP_OVERLAY_MAX 1024
#define SNAP_OVERLAY_MIN_GPA SB_PROC_RAM_BASE
struct snap_overlay_run {
	uint64_t gpa;                   /* page-aligned, in RAM */
	uint64_t img_off;               /* page-aligned, in the layer image */
	uint32_t npages;                /* >= 1 */
	uint16_t layer;                 /* index into the layers section */
	uint16_t flags;                 /* zero */
};
_Static_assert(sizeof(struct snap_overlay_run) == 24, "snap_overlay_run size");
struct snap_overlay {
	uint32_t n_runs;                /* <= SNAP_OVERLAY_MAX runs follow */
	uint32_t reserved;              /* zero */
};
_Static_assert(sizeof(struct snap_overlay) == 8, "snap_overlay size");
_Static_assert(SNAP_OVERLAY_MAX == SB_PROC_OVERLAY_MAX, "a proc clone takes every run");
_Static_assert(sizeof(struct snap_overlay_run) == sizeof(struct sb_proc_overlay), "run sizes");

/*
 * The write set (1.5): the guest pages a training request wrote in a
 * throwaway clone at `template create --warmup-request FILE` (found with
 * memory/written.c), as coalesced ranges.  The service's pre-cloned
 * workers (launcher/pool.c) make these pages the clone's own before a
 * request arrives (machine__prefault: kvm MADV_POPULATE_WRITE, proc the
 * pages' own content written back with process_vm_writev), so the request
 * takes no copy-on-write fault there.  Only a hint: contents are never
 * taken from it.  No training: no ranges.  Ranges are sorted, disjoint and
 * not adjacent (coalesced), whole pages inside RAM, at most
 * SNAP_HOTSET_MAX (more are merged across their smallest gaps when
 * recorded); pages is their sum.  Checked on load.
 */
#define SNAP_HOTSET_VERSION 1
#define SNAP_HOTSET_MAX 1024
struct snap_hot_range {
	uint64_t gpa;                   /* page-aligned, in RAM */
	uint32_t npages;                /* >= 1 */
	uint32_t flags;                 /* zero */
};
_Static_assert(sizeof(struct snap_hot_range) == 16, "snap_hot_range size");
struct snap_hotset {
	uint32_t n_ranges;              /* <= SNAP_HOTSET_MAX ranges follow */
	uint32_t flags;                 /* SNAP_HOTSET_TRAINED: a training request ran */
	uint64_t pages;                 /* sum of npages */
};
#define SNAP_HOTSET_TRAINED 1u
_Static_assert(sizeof(struct snap_hotset) == 16, "snap_hotset size");

/* ---- pages.idx ------------------------------------------------------------ */
#define SNAP_PAGES_MAGIC "SBPAGES\0"
#define SNAP_PAGES_VERSION 1
struct snap_pages_header {
	char magic[8];
	uint32_t version;
	uint32_t page_size;             /* SNAP_PAGE */
	uint64_t n_pages;               /* = mem_size / page_size; hashes follow */
	uint64_t zero_pages;
	uint64_t unique_pages;          /* distinct non-zero contents */
	uint64_t dup_pages;             /* non-zero pages whose content repeats */
};
_Static_assert(sizeof(struct snap_pages_header) == 48, "snap_pages_header size");
#endif
