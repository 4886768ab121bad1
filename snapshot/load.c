/* SPDX-License-Identifier: MIT */
/*
 * Loading a template.  Everything read from disk is untrusted: every offset
 * and length is checked against the file size (overflow-checked), every
 * hash is checked, every section has an exact size and a known version,
 * and a newer major format is refused with a clear message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "sbfs.h"
#include "sbtypes.h"
#include "snapbox_abi.h"
#include "snapshot/snapshot.h"

#define STATE_MAX (4U << 20)

const char *snapshot__section_name(uint32_t type)
{
	switch (type) {
	case SNAP_SEC_CPUID: return "cpuid";
	case SNAP_SEC_VCPU: return "vcpu";
	case SNAP_SEC_VM: return "vm";
	case SNAP_SEC_MEMMAP: return "memmap";
	case SNAP_SEC_SERIAL: return "serial";
	case SNAP_SEC_HYPERCALL: return "hypercall";
	case SNAP_SEC_PROC_CPU: return "proc-cpu";
	case SNAP_SEC_POLICY: return "policy";
	case SNAP_SEC_LAYERS: return "layers";
	case SNAP_SEC_OVERLAY: return "overlay";
	case SNAP_SEC_HOTSET: return "hotset";
	}
	return "unknown";
}

const char *snapshot__backend_name(uint32_t backend)
{
	switch (backend) {
	case SNAP_BACKEND_KVM: return "kvm";
	case SNAP_BACKEND_PROC: return "proc";
	}
	return "unknown";
}

/* The sections a template of that backend and format has, no more, no
 * fewer: a 1.2 one has its policy, a 1.1 one none ("not set"); a 1.3 one
 * its layers, an older one none (its root file system is in its RAM). */
static uint32_t template_sections(const struct snap_header *h)
{
	uint32_t common = 1u << SNAP_SEC_MEMMAP | 1u << SNAP_SEC_SERIAL | 1u << SNAP_SEC_HYPERCALL;

	if (h->minor >= 2)
		common |= 1u << SNAP_SEC_POLICY;
	if (h->minor >= 3)
		common |= 1u << SNAP_SEC_LAYERS;
	if (h->minor >= 4)
		common |= 1u << SNAP_SEC_OVERLAY;
	if (h->minor >= 5)
		common |= 1u << SNAP_SEC_HOTSET;
	if (h->backend == SNAP_BACKEND_PROC)
		return common | 1u << SNAP_SEC_PROC_CPU;
	return common | 1u << SNAP_SEC_CPUID | 1u << SNAP_SEC_VCPU | 1u << SNAP_SEC_VM;
}

/* Reserved fields must be zero, so that a later minor version can use them. */
static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static int parse_header(const uint8_t *buf, size_t len, struct snap_header *h, struct sb_err *err)
{
	struct snap_header tmp;

	if (len < sizeof(*h))
		return err__set(err, -EBADMSG, "state.bin is truncated (%zu bytes)", len);
	memcpy(h, buf, sizeof(*h));
	if (memcmp(h->magic, SNAP_MAGIC, 8))
		return err__set(err, -EBADMSG, "state.bin: not a snapbox template (bad magic)");
	if (h->major > SNAP_MAJOR)
		return err__set(err, -EPROTONOSUPPORT,
				"template format %u.%u is newer than this snapbox reads (%u.x); upgrade snapbox",
				h->major, h->minor, SNAP_MAJOR);
	if (h->major < SNAP_MAJOR)
		return err__set(err, -EPROTONOSUPPORT, "template format %u.%u is too old (need %u.x)",
				h->major, h->minor, SNAP_MAJOR);
	tmp = *h;
	tmp.header_hash = 0;
	if (XXH3_64bits(&tmp, sizeof(tmp)) != h->header_hash)
		return err__set(err, -EBADMSG, "state.bin: header is damaged (hash mismatch)");
	if (h->arch != SNAP_ARCH_X86_64)
		return err__set(err, -EPROTONOSUPPORT, "template is for architecture %u, not x86-64",
				h->arch);
	if (h->abi_version < SB_ABI_VERSION_MIN || h->abi_version > SB_ABI_VERSION)
		return err__set(err, -EPROTONOSUPPORT,
				"template's guest kernel speaks ABI %u, this snapbox speaks %u to %u",
				h->abi_version, SB_ABI_VERSION_MIN, SB_ABI_VERSION);
	if (h->mem_size < SB_MIN_MEM || h->mem_size > SB_MAX_MEM || h->mem_size % SB_PAGE_2M)
		return err__set(err, -EBADMSG, "state.bin: bad RAM size %llu",
				(unsigned long long)h->mem_size);
	if (h->n_sections == 0 || h->n_sections > SNAP_MAX_SECTIONS)
		return err__set(err, -EBADMSG, "state.bin: %u sections", h->n_sections);
	if (!all_zero(h->reserved, sizeof(h->reserved)) || (h->minor < 1 && h->backend))
		return err__set(err, -EBADMSG, "state.bin: reserved header bytes are not zero");
	if (h->backend >= SNAP_BACKEND_COUNT)
		return err__set(err, -EPROTONOSUPPORT, "template made by an unknown backend (%u)",
				h->backend);
	if (h->backend != SNAP_BACKEND_KVM && h->cpuid_hash)
		return err__set(err, -EBADMSG, "state.bin: a %s template with a CPUID hash",
				snapshot__backend_name(h->backend));
	return 0;
}

/* Expected size of a section, or 0 if variable (CPUID). */
static size_t section_size(uint32_t type)
{
	switch (type) {
	case SNAP_SEC_VCPU: return sizeof(struct snap_vcpu);
	case SNAP_SEC_VM: return sizeof(struct snap_vm);
	case SNAP_SEC_MEMMAP: return sizeof(struct snap_memmap);
	case SNAP_SEC_SERIAL: return sizeof(struct serial_state);
	case SNAP_SEC_HYPERCALL: return sizeof(struct hc_state);
	case SNAP_SEC_PROC_CPU: return sizeof(struct snap_proc_cpu);
	case SNAP_SEC_POLICY: return sizeof(struct snap_policy);
	case SNAP_SEC_LAYERS: return sizeof(struct snap_layers);
	}
	return 0;
}

static uint32_t section_version(uint32_t type)
{
	switch (type) {
	case SNAP_SEC_CPUID: return SNAP_CPUID_VERSION;
	case SNAP_SEC_VCPU: return SNAP_VCPU_VERSION;
	case SNAP_SEC_VM: return SNAP_VM_VERSION;
	case SNAP_SEC_MEMMAP: return SNAP_MEMMAP_VERSION;
	case SNAP_SEC_SERIAL: return SERIAL_STATE_VERSION;
	case SNAP_SEC_HYPERCALL: return HC_STATE_VERSION;
	case SNAP_SEC_PROC_CPU: return SNAP_PROC_CPU_VERSION;
	case SNAP_SEC_POLICY: return SNAP_POLICY_VERSION;
	case SNAP_SEC_LAYERS: return SNAP_LAYERS_VERSION;
	case SNAP_SEC_OVERLAY: return SNAP_OVERLAY_VERSION;
	case SNAP_SEC_HOTSET: return SNAP_HOTSET_VERSION;
	}
	return 0;
}

/* Oldest version of a section this reader still takes. */
static uint32_t section_min_version(uint32_t type)
{
	return type == SNAP_SEC_HYPERCALL ? HC_STATE_VERSION_MIN : section_version(type);
}

static int parse_cpuid(const uint8_t *p, size_t len, struct snapshot *s, struct sb_err *err)
{
	struct snap_cpuid c;

	if (len < sizeof(c))
		return err__set(err, -EBADMSG, "cpuid section is truncated");
	memcpy(&c, p, sizeof(c));
	if (c.reserved)
		return err__set(err, -EBADMSG, "cpuid section: reserved field is not zero");
	if (c.nent == 0 || c.nent > SNAP_CPUID_MAX ||
	    len != sizeof(c) + (size_t)c.nent * sizeof(struct kvm_cpuid_entry2))
		return err__set(err, -EBADMSG, "cpuid section: %u entries in %zu bytes", c.nent, len);
	s->nent = c.nent;
	memcpy(s->cpuid, p + sizeof(c), c.nent * sizeof(struct kvm_cpuid_entry2));
	if (XXH3_64bits(s->cpuid, c.nent * sizeof(struct kvm_cpuid_entry2)) != s->hdr.cpuid_hash)
		return err__set(err, -EBADMSG, "cpuid section does not match the header's CPUID hash");
	return 0;
}

/* Check a saved snap_vcpu before use: counts within bounds, sane mode. */
static int validate_vcpu(const struct snap_vcpu *s, struct sb_err *err)
{
	if (s->n_msrs < SNAP_MSRS_REQUIRED || s->n_msrs > SNAP_MSRS_MAX)
		return err__set(err, -EINVAL, "vCPU section: %u MSRs (expected %d..%d)", s->n_msrs,
				SNAP_MSRS_REQUIRED, SNAP_MSRS_MAX);
	if (s->flags & ~(SNAP_VCPU_HAS_XCRS | SNAP_VCPU_HAS_XSAVE))
		return err__set(err, -EINVAL, "vCPU section: unknown flags 0x%x", s->flags);
	if ((s->flags & SNAP_VCPU_HAS_XCRS) && s->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return err__set(err, -EINVAL, "vCPU section: %u XCRs", s->xcrs.nr_xcrs);
	if (!(s->sregs.efer & (1ULL << 10)) || !(s->sregs.cr0 & (1ULL << 31)))
		return err__set(err, -EINVAL, "vCPU section: the vCPU was not in 64-bit long mode");
	if (s->mp_state.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
		return err__set(err, -EINVAL, "vCPU section: bad mp_state %u", s->mp_state.mp_state);
	return 0;
}

/* Check a saved proc CPU before use: sane addresses, an XSAVE image that
 * fits and carries its magic, a layout for each saved feature. */
static int validate_proc_cpu(const struct snap_proc_cpu *p, uint64_t mem_size, struct sb_err *err)
{
	const struct sb_proc_cpu *c = &p->cpu;
	uint32_t magic1, magic2;

	if (c->reserved || !all_zero(c->pad, sizeof(c->pad)))
		return err__set(err, -EBADMSG, "proc-cpu section: a reserved field is not zero");
	if (c->gpr[SB_PROC_RIP] >= mem_size || c->gpr[SB_PROC_RSP] >= mem_size ||
	    c->fs_base >= (1ULL << 47))
		return err__set(err, -EINVAL, "proc-cpu section: rip/rsp/fs base outside the guest");
	if (p->ro_lo > p->ro_hi || p->ro_hi > mem_size || p->ro_lo % SB_PAGE_2M ||
	    p->ro_hi % SNAP_PAGE)
		return err__set(err, -EINVAL, "proc-cpu section: bad read-only window");
	if (c->xstate_size < 512 + 64 || c->xstate_size > SB_PROC_XSAVE_MAX - 4 ||
	    (c->xfeatures & 3) != 3)
		return err__set(err, -EINVAL, "proc-cpu section: bad XSAVE image (%u bytes, features 0x%llx)",
				c->xstate_size, (unsigned long long)c->xfeatures);
	memcpy(&magic1, c->xsave + 464, 4);
	memcpy(&magic2, c->xsave + c->xstate_size, 4);
	if (magic1 != 0x46505853U || magic2 != 0x46505845U)
		return err__set(err, -EINVAL, "proc-cpu section: XSAVE image without its magic");
	for (unsigned i = 0; i < 64; i++) {
		const struct snap_xcomp *x = &p->xcomp[i];
		bool saved = i >= 2 && (c->xfeatures >> i & 1);

		if (!saved && (x->offset || x->size))
			return err__set(err, -EINVAL, "proc-cpu section: layout of an unsaved feature %u", i);
		if (saved && (x->size == 0 || x->offset < 576 ||
			      (uint64_t)x->offset + x->size > c->xstate_size))
			return err__set(err, -EINVAL, "proc-cpu section: XSAVE feature %u at %u+%u", i,
					x->offset, x->size);
	}
	return 0;
}

int snapshot__validate_policy(const struct snap_policy *p, struct sb_err *err)
{
	if (!all_zero(p->reserved, sizeof(p->reserved)))
		return err__set(err, -EBADMSG, "policy section: a reserved field is not zero");
	if (p->recycle >= SNAP_RECYCLE_MODE_COUNT)
		return err__set(err, -EBADMSG, "policy section: unknown recycle mode %u", p->recycle);
	if (p->recycle != SNAP_RECYCLE_ON && (p->max_reuses || p->idle_ms))
		return err__set(err, -EBADMSG, "policy section: recycling %s with a reuse limit or idle time",
				p->recycle == SNAP_RECYCLE_OFF ? "off" : "not set");
	if (p->max_reuses > SNAP_POLICY_MAX_REUSES)
		return err__set(err, -EBADMSG, "policy section: %u reuses (at most %u)", p->max_reuses,
				SNAP_POLICY_MAX_REUSES);
	if (p->idle_ms > SNAP_POLICY_MAX_IDLE_MS)
		return err__set(err, -EBADMSG, "policy section: idle time %u ms (at most %u)", p->idle_ms,
				SNAP_POLICY_MAX_IDLE_MS);
	return 0;
}

/* The layers: 1..SB_MAX_LAYERS, laid out as a boot lays them out, each a
 * whole number of pages, with an id; nothing past them. */
static int validate_layers(const struct snap_layers *l, struct sb_err *err)
{
	uint64_t at = SB_IMG_GPA;
	static const uint8_t zero[16];

	if (l->reserved || l->n_layers == 0 || l->n_layers > SB_MAX_LAYERS)
		return err__set(err, -EBADMSG, "layers section: %u layers", l->n_layers);
	for (unsigned i = 0; i < SB_MAX_LAYERS; i++) {
		const struct snap_layer *x = &l->layers[i];

		if (i >= l->n_layers) {
			if (!all_zero(x, sizeof(*x)))
				return err__set(err, -EBADMSG, "layers section: an entry past the last layer");
			continue;
		}
		if (x->gpa != at || x->size < SBFS_PAGE || x->size % SBFS_PAGE || x->size > SB_IMG_MAX ||
		    !memcmp(x->id, zero, sizeof(zero)))
			return err__set(err, -EBADMSG,
					"layers section: layer %u at %#llx, %llu bytes (expected at %#llx, whole pages, an id)",
					i, (unsigned long long)x->gpa, (unsigned long long)x->size,
					(unsigned long long)at);
		at += (x->size + SB_PAGE_2M - 1) & ~(SB_PAGE_2M - 1);
		if (at > SB_IMG_GPA + SB_IMG_MAX)
			return err__set(err, -EBADMSG, "layers section: the layers span more than %llu GiB",
					SB_IMG_MAX >> 30);
	}
	return 0;
}

static int parse_overlay(const uint8_t *p, size_t len, struct snapshot *s, struct sb_err *err)
{
	struct snap_overlay o;

	if (len < sizeof(o))
		return err__set(err, -EBADMSG, "overlay section is truncated");
	memcpy(&o, p, sizeof(o));
	if (o.reserved)
		return err__set(err, -EBADMSG, "overlay section: reserved field is not zero");
	if (o.n_runs > SNAP_OVERLAY_MAX ||
	    len != sizeof(o) + (size_t)o.n_runs * sizeof(struct snap_overlay_run))
		return err__set(err, -EBADMSG, "overlay section: %u runs in %zu bytes (at most %d)",
				o.n_runs, len, SNAP_OVERLAY_MAX);
	s->n_runs = o.n_runs;
	memcpy(s->runs, p + sizeof(o), o.n_runs * sizeof(struct snap_overlay_run));
	return 0;
}

static int parse_hotset(const uint8_t *p, size_t len, struct snapshot *s, struct sb_err *err)
{
	struct snap_hotset h;
	uint64_t next = 0, pages = 0;

	if (len < sizeof(h))
		return err__set(err, -EBADMSG, "hotset section is truncated");
	memcpy(&h, p, sizeof(h));
	if (h.flags & ~SNAP_HOTSET_TRAINED)
		return err__set(err, -EBADMSG, "hotset section: unknown flags %#x", h.flags);
	if (h.n_ranges > SNAP_HOTSET_MAX ||
	    len != sizeof(h) + (size_t)h.n_ranges * sizeof(struct snap_hot_range))
		return err__set(err, -EBADMSG, "hotset section: %u ranges in %zu bytes (at most %d)",
				h.n_ranges, len, SNAP_HOTSET_MAX);
	memcpy(s->hot, p + sizeof(h), h.n_ranges * sizeof(struct snap_hot_range));
	for (uint32_t i = 0; i < h.n_ranges; i++) {
		const struct snap_hot_range *r = &s->hot[i];

		if (r->flags || r->npages == 0 || r->gpa % SNAP_PAGE ||
		    !sb_range_in(r->gpa, (uint64_t)r->npages * SNAP_PAGE, 0, s->hdr.mem_size) ||
		    (i && r->gpa <= next))
			return err__set(err, -EBADMSG, "hotset section: range %u (gpa %#llx, %u pages) "
					"is not whole pages in RAM after the one before, apart from it",
					i, (unsigned long long)r->gpa, r->npages);
		next = r->gpa + (uint64_t)r->npages * SNAP_PAGE;
		pages += r->npages;
	}
	if (pages != h.pages)
		return err__set(err, -EBADMSG, "hotset section: %llu pages in its ranges, %llu said",
				(unsigned long long)pages, (unsigned long long)h.pages);
	s->hotset = h;
	return 0;
}

/* The runs against RAM and the layers (both sections parsed by now): whole
 * pages, inside RAM (from SNAP_OVERLAY_MIN_GPA) and inside their layer's
 * image, sorted by gpa, disjoint. */
static int validate_overlay(struct snapshot *s, struct sb_err *err)
{
	uint64_t next = SNAP_OVERLAY_MIN_GPA, pages = 0;

	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct snap_overlay_run *r = &s->runs[i];
		uint64_t len = (uint64_t)r->npages * SNAP_PAGE;

		if (r->flags || r->npages == 0 || r->gpa % SNAP_PAGE || r->img_off % SNAP_PAGE)
			return err__set(err, -EBADMSG, "overlay section: run %u (gpa %#llx, %u pages at "
					"%#llx, flags %#x) is not whole pages", i,
					(unsigned long long)r->gpa, r->npages,
					(unsigned long long)r->img_off, r->flags);
		if (r->gpa < next)
			return err__set(err, -EBADMSG, "overlay section: run %u at gpa %#llx %s", i,
					(unsigned long long)r->gpa,
					i ? "overlaps the one before or is out of order"
					  : "is below the lowest RAM a run may cover");
		if (!sb_range_in(r->gpa, len, 0, s->hdr.mem_size))
			return err__set(err, -EBADMSG, "overlay section: run %u (gpa %#llx, %u pages) "
					"is outside RAM", i, (unsigned long long)r->gpa, r->npages);
		if (r->layer >= s->layers.n_layers ||
		    !sb_range_in(r->img_off, len, 0, s->layers.layers[r->layer].size))
			return err__set(err, -EBADMSG, "overlay section: run %u (layer %u at %#llx, %u "
					"pages) is outside the template's layers", i, r->layer,
					(unsigned long long)r->img_off, r->npages);
		next = r->gpa + len;
		pages += r->npages;
	}
	s->overlay_pages = pages;
	return 0;
}

const struct snap_overlay_run *snapshot__overlay_find(const struct snap_overlay_run *runs,
						      uint32_t n, uint64_t gpa)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) { /* the first run ending after gpa */
		uint32_t mid = lo + (hi - lo) / 2;

		if (runs[mid].gpa + (uint64_t)runs[mid].npages * SNAP_PAGE <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && runs[lo].gpa <= gpa ? &runs[lo] : NULL;
}

static int take_section(const struct snap_section *sec, const uint8_t *p, struct snapshot *s,
			struct sb_err *err)
{
	switch (sec->type) {
	case SNAP_SEC_CPUID: return parse_cpuid(p, sec->length, s, err);
	case SNAP_SEC_VCPU: memcpy(&s->vcpu, p, sizeof(s->vcpu)); return validate_vcpu(&s->vcpu, err);
	case SNAP_SEC_VM: memcpy(&s->vm, p, sizeof(s->vm)); break;
	case SNAP_SEC_MEMMAP: memcpy(&s->memmap, p, sizeof(s->memmap)); break;
	case SNAP_SEC_SERIAL: memcpy(&s->serial, p, sizeof(s->serial)); break;
	case SNAP_SEC_PROC_CPU:
		memcpy(&s->proc, p, sizeof(s->proc));
		return validate_proc_cpu(&s->proc, s->hdr.mem_size, err);
	case SNAP_SEC_HYPERCALL:
		memcpy(&s->hc, p, sizeof(s->hc));
		s->hc_version = sec->version;
		break;
	case SNAP_SEC_POLICY:
		memcpy(&s->policy, p, sizeof(s->policy));
		return snapshot__validate_policy(&s->policy, err);
	case SNAP_SEC_LAYERS:
		memcpy(&s->layers, p, sizeof(s->layers));
		return validate_layers(&s->layers, err);
	case SNAP_SEC_OVERLAY: return parse_overlay(p, sec->length, s, err);
	case SNAP_SEC_HOTSET: return parse_hotset(p, sec->length, s, err);
	}
	return 0;
}

static int check_cross(const struct snapshot *s, struct sb_err *err)
{
	const struct snap_memslot *m = &s->memmap.slots[0];

	if (s->vm.reserved || s->memmap.reserved)
		return err__set(err, -EBADMSG, "state.bin: a reserved field is not zero");
	if (s->hdr.backend == SNAP_BACKEND_KVM && s->vm.n_vcpus != 1)
		return err__set(err, -EBADMSG, "vm section: %u vCPUs (snapbox runs 1)", s->vm.n_vcpus);
	if (s->memmap.n_slots != 1 || m->gpa != 0 || m->size != s->hdr.mem_size || m->file_offset)
		return err__set(err, -EBADMSG, "memmap section does not describe one slot of %llu bytes",
				(unsigned long long)s->hdr.mem_size);
	/* a guest kernel older than ABI 4 never makes a STDIN call */
	if ((s->hc.flags & HC_STATE_PENDING_STDIN) && s->hdr.abi_version < 4)
		return err__set(err, -EBADMSG, "hypercall section: a STDIN call pending in a template "
				"of guest ABI %u", s->hdr.abi_version);
	/* no read-only rootfs window in the RAM of a template with layers */
	if (s->hdr.backend == SNAP_BACKEND_PROC && s->layers.n_layers && s->proc.ro_lo != s->proc.ro_hi)
		return err__set(err, -EBADMSG, "proc-cpu section: a read-only rootfs window and layers");
	/* layers came after ABI 4: no older guest kernel reads them */
	if (s->layers.n_layers && s->hdr.abi_version < 4)
		return err__set(err, -EBADMSG, "layers section in a template of guest ABI %u, "
				"whose kernel has no layers", s->hdr.abi_version);
	/* the pending read lies in RAM */
	return hypercall__validate_state(&s->hc, s->hc_version, s->hdr.mem_size, err);
}

int snapshot__parse_state(const uint8_t *buf, size_t len, struct snapshot *s, struct sb_err *err)
{
	struct snap_section table[SNAP_MAX_SECTIONS];
	uint32_t seen = 0;
	size_t tlen;
	int ret = parse_header(buf, len, &s->hdr, err);

	if (ret < 0)
		return ret;
	tlen = s->hdr.n_sections * sizeof(struct snap_section);
	if (!sb_range_in(sizeof(s->hdr), tlen, 0, len))
		return err__set(err, -EBADMSG, "state.bin is truncated (section table)");
	memcpy(table, buf + sizeof(s->hdr), tlen);
	if (XXH3_64bits(table, tlen) != s->hdr.table_hash)
		return err__set(err, -EBADMSG, "state.bin: section table is damaged (hash mismatch)");
	for (uint32_t i = 0; i < s->hdr.n_sections; i++) {
		const struct snap_section *sec = &table[i];
		const char *name = snapshot__section_name(sec->type);
		size_t want;

		if (sec->type == 0 || sec->type >= SNAP_SEC_TYPE_MAX)
			return err__set(err, -EBADMSG, "state.bin: unknown section type %u", sec->type);
		if (!(template_sections(&s->hdr) & (1u << sec->type)) &&
		    (sec->type == SNAP_SEC_POLICY || sec->type == SNAP_SEC_LAYERS ||
		     sec->type == SNAP_SEC_OVERLAY || sec->type == SNAP_SEC_HOTSET))
			return err__set(err, -EBADMSG, "state.bin: section %s in a %u.%u template", name,
					s->hdr.major, s->hdr.minor);
		if (!(template_sections(&s->hdr) & (1u << sec->type)))
			return err__set(err, -EBADMSG, "state.bin: section %s in a %s template", name,
					snapshot__backend_name(s->hdr.backend));
		if (seen & (1u << sec->type))
			return err__set(err, -EBADMSG, "state.bin: section %s appears twice", name);
		seen |= 1u << sec->type;
		if (!sb_range_in(sec->offset, sec->length, sizeof(s->hdr) + tlen, len) ||
		    sec->length > SNAP_MAX_SECTION_LEN)
			return err__set(err, -EBADMSG, "state.bin: section %s lies outside the file", name);
		if (sec->version < section_min_version(sec->type) ||
		    sec->version > section_version(sec->type))
			return err__set(err, -EPROTONOSUPPORT, "state.bin: section %s version %u (reads %u)",
					name, sec->version, section_version(sec->type));
		want = section_size(sec->type);
		if (want && sec->length != want)
			return err__set(err, -EBADMSG, "state.bin: section %s is %llu bytes, expected %zu",
					name, (unsigned long long)sec->length, want);
		if (XXH3_64bits(buf + sec->offset, sec->length) != sec->hash)
			return err__set(err, -EBADMSG, "state.bin: section %s is damaged (hash mismatch)",
					name);
		ret = take_section(sec, buf + sec->offset, s, err);
		if (ret < 0)
			return ret;
	}
	for (uint32_t t = 1; t < SNAP_SEC_TYPE_MAX; t++)
		if ((template_sections(&s->hdr) & (1u << t)) && !(seen & (1u << t)))
			return err__set(err, -EBADMSG, "state.bin: section %s is missing",
					snapshot__section_name(t));
	/* the overlay runs lie in RAM and in the layers */
	ret = validate_overlay(s, err);
	return ret < 0 ? ret : check_cross(s, err);
}

static int read_state(int dirfd, uint8_t **buf, size_t *len, struct sb_err *err)
{
	struct stat sb;
	int fd = openat(dirfd, SNAP_STATE_FILE, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return err__errno(err, "%s", SNAP_STATE_FILE);
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0 || sb.st_size > STATE_MAX) {
		close(fd);
		return err__set(err, -EBADMSG, "%s: bad size", SNAP_STATE_FILE);
	}
	*len = (size_t)sb.st_size;
	*buf = malloc(*len);
	if (!*buf) {
		close(fd);
		return err__set(err, -ENOMEM, "out of memory");
	}
	n = pread(fd, *buf, *len, 0);
	close(fd);
	if (n != (ssize_t)*len) {
		free(*buf);
		return err__set(err, -EIO, "%s: short read", SNAP_STATE_FILE);
	}
	return 0;
}

static int check_mem_size(const struct snapshot *s, struct sb_err *err)
{
	struct stat sb;

	if (fstatat(s->dirfd, SNAP_MEM_FILE, &sb, 0) < 0)
		return err__errno(err, "%s", SNAP_MEM_FILE);
	if ((uint64_t)sb.st_size < s->hdr.mem_size)
		return err__set(err, -EBADMSG,
				"%s is %lld bytes, shorter than the %llu bytes of RAM it claims",
				SNAP_MEM_FILE, (long long)sb.st_size, (unsigned long long)s->hdr.mem_size);
	return 0;
}

int snapshot__load(const char *dir, struct snapshot *s, struct sb_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t pages_hash;
	int ret;

	memset(s, 0, sizeof(*s));
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return err__errno(err, "template %s", dir);
	ret = read_state(s->dirfd, &buf, &len, err);
	if (ret == 0)
		ret = snapshot__parse_state(buf, len, s, err);
	if (ret == 0) {
		XXH128_hash_t h = XXH3_128bits(buf, len);
		snprintf(s->id, sizeof(s->id), "%016llx%016llx", (unsigned long long)h.high64,
			 (unsigned long long)h.low64);
		s->state_bytes = len;
		ret = check_mem_size(s, err);
	}
	if (ret == 0)
		ret = snap_image__read_index(s->dirfd, s->hdr.mem_size, &s->pages, &pages_hash, err);
	if (ret == 0 && pages_hash != s->hdr.pages_hash)
		ret = err__set(err, -EBADMSG, "%s does not match state.bin (hash mismatch)",
			       SNAP_PAGES_FILE);
	for (unsigned i = 0; ret == 0 && i < s->layers.n_layers; i++) {
		int fd = snapshot__open_layer(s, i, err);

		if (fd < 0)
			ret = fd;
		else
			close(fd);
	}
	free(buf);
	if (ret < 0)
		snapshot__close(s);
	return ret;
}

void snapshot__close(struct snapshot *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
}

void snapshot__layer_path(const struct snapshot *s, unsigned i, char *out, size_t len)
{
	char hex[33];

	for (int k = 0; k < 16; k++)
		snprintf(hex + 2 * k, 3, "%02x", s->layers.layers[i].id[k]);
	snprintf(out, len, "%s/%s.sbfs", SNAP_LAYERS_DIR, hex);
}

int snapshot__open_layer(const struct snapshot *s, unsigned i, struct sb_err *err)
{
	const struct snap_layer *l = &s->layers.layers[i];
	struct sbfs_header h;
	struct sbfs fs;
	struct stat sb;
	char rel[64];
	int fd, r;

	if (i >= s->layers.n_layers)
		return err__set(err, -EINVAL, "the template has no layer %u", i);
	snapshot__layer_path(s, i, rel, sizeof(rel));
	fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "the template's root file system layer %u, %s", i, rel);
	if (fstat(fd, &sb) < 0) {
		r = err__errno(err, "%s", rel);
		close(fd);
		return r;
	}
	if ((uint64_t)sb.st_size != l->size || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    (r = sbfs_open(&fs, &h, l->size)) != 0 || memcmp(h.id, l->id, sizeof(h.id))) {
		close(fd);
		return err__set(err, -EBADMSG,
				"the template's root file system layer %u, %s, is not the image it was made "
				"with (%lld bytes, expected %llu%s)",
				i, rel, (long long)sb.st_size, (unsigned long long)l->size,
				(uint64_t)sb.st_size != l->size ? "" : "; its header differs");
	}
	return fd;
}

int snapshot__open_mem(const struct snapshot *s, struct sb_err *err)
{
	int fd = openat(s->dirfd, SNAP_MEM_FILE, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? err__errno(err, "%s", SNAP_MEM_FILE) : fd;
}
