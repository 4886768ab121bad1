/* SPDX-License-Identifier: MIT */
/* Writing a template: memory image first, then state.bin, which covers it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend/backend.h"
#include "snapbox_abi.h"
#include "snapshot/overlay.h"
#include "snapshot/snapshot.h"

struct snap_writer {
	uint8_t *p;
	size_t len, cap;
	struct snap_section table[SNAP_MAX_SECTIONS];
	uint32_t n;
	uint64_t cpuid_hash;
};

void snap_writer__set_cpuid_hash(struct snap_writer *w, uint64_t hash)
{
	w->cpuid_hash = hash;
}

int snap_writer__add(struct snap_writer *b, uint32_t type, uint32_t version, const void *a,
		     size_t alen, const void *c, size_t clen)
{
	size_t off = (b->len + 7) & ~7UL, need = off + alen + clen;
	if (b->n == SNAP_MAX_SECTIONS)
		return -E2BIG;
	if (need > b->cap) {
		size_t cap = need * 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memset(b->p + b->len, 0, off - b->len);
	memcpy(b->p + off, a, alen);
	if (clen)
		memcpy(b->p + off + alen, c, clen);
	b->len = need;
	b->table[b->n++] = (struct snap_section){ .type = type, .version = version,
						  .offset = off, .length = alen + clen };
	return 0;
}

/* The backend's sections (CPUID, vCPU, VM), then the memory map, the
 * devices and the policy: every backend's template has all of them. */
static int state__sections(struct machine *m, const struct snap_policy *pol,
			   const struct snap_overlay_set *ov, struct snap_writer *b, struct sb_err *err)
{
	struct snap_memmap mm = { .n_slots = 1, .slots = { { 0, m->ram.size, 0 } } };
	struct snap_layers ly = { .n_layers = m->n_layers };
	int ret;

	if (m->n_layers == 0 || m->n_layers > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "the sandbox has %u root file system layers", m->n_layers);
	for (unsigned i = 0; i < m->n_layers; i++) {
		memcpy(ly.layers[i].id, m->layers[i].id, sizeof(ly.layers[i].id));
		ly.layers[i].gpa = m->layers[i].gpa;
		ly.layers[i].size = m->layers[i].size;
	}
	ret = m->be->save(m, b, err);

	if (!ret)
		ret = snap_writer__add(b, SNAP_SEC_MEMMAP, SNAP_MEMMAP_VERSION, &mm, sizeof(mm), NULL, 0);
	if (!ret)
		ret = snap_writer__add(b, SNAP_SEC_SERIAL, SERIAL_STATE_VERSION, &m->serial.st,
				       sizeof(m->serial.st), NULL, 0);
	if (!ret)
		ret = snap_writer__add(b, SNAP_SEC_HYPERCALL, HC_STATE_VERSION, &m->hc.st,
				       sizeof(m->hc.st), NULL, 0);
	if (!ret)
		ret = snap_writer__add(b, SNAP_SEC_POLICY, SNAP_POLICY_VERSION, pol, sizeof(*pol), NULL, 0);
	if (!ret)
		ret = snap_writer__add(b, SNAP_SEC_LAYERS, SNAP_LAYERS_VERSION, &ly, sizeof(ly), NULL, 0);
	if (!ret) {
		struct snap_overlay o = { .n_runs = ov->n_runs };

		ret = snap_writer__add(b, SNAP_SEC_OVERLAY, SNAP_OVERLAY_VERSION, &o, sizeof(o), ov->runs,
				       ov->n_runs * sizeof(ov->runs[0]));
	}
	if (!ret) {
		/* last: `template create --warmup-request` replaces it */
		struct snap_hotset hs = { 0 };

		ret = snap_writer__add(b, SNAP_SEC_HOTSET, SNAP_HOTSET_VERSION, &hs, sizeof(hs), NULL, 0);
	}
	if (ret < 0 && !err->msg[0])
		err__set(err, ret, "building state.bin: %s", strerror(-ret));
	return ret;
}

int snapshot__save(struct machine *m, const struct snap_policy *policy,
		   const uint8_t *const *layer_img, int dirfd, char id[33],
		   struct snap_image_stats *st, struct sb_err *err)
{
	static const struct snap_policy unset; /* recycle not set: the service's default */
	struct snap_overlay_src src = { .n = layer_img ? m->n_layers : 0 };
	struct snap_overlay_set *ov;
	uint64_t pages_hash;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret, fd;

	if (!policy)
		policy = &unset;
	ret = snapshot__validate_policy(policy, err); /* what load will insist on */
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < src.n && i < SB_MAX_LAYERS; i++) {
		src.img[i] = layer_img[i];
		src.size[i] = m->layers[i].size;
	}
	ov = malloc(sizeof(*ov));
	if (!ov)
		return err__set(err, -ENOMEM, "out of memory");
	ret = snap_image__write(&m->ram, dirfd, &src, ov, st, &pages_hash, err);
	if (ret < 0) {
		free(ov);
		return ret;
	}
	ret = snapshot__build_state(m, policy, pages_hash, ov, &buf, &len, err);
	free(ov);
	if (ret < 0)
		return ret;
	XXH128_hash_t id128 = XXH3_128bits(buf, len);
	snprintf(id, 33, "%016llx%016llx", (unsigned long long)id128.high64,
		 (unsigned long long)id128.low64);

	fd = openat(dirfd, SNAP_STATE_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0) {
		ret = err__errno(err, "create %s", SNAP_STATE_FILE);
		goto out;
	}
	if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd) < 0)
		ret = err__errno(err, "write %s", SNAP_STATE_FILE);
	close(fd);
out:
	free(buf);
	return ret;
}

int snapshot__build_state(struct machine *m, const struct snap_policy *policy, uint64_t pages_hash,
			  const struct snap_overlay_set *ov, uint8_t **out, size_t *out_len,
			  struct sb_err *err)
{
	static const struct snap_overlay_set none; /* no runs: a migration's state */
	struct snap_writer b = { 0 };
	struct snap_header h;
	size_t table_len;
	int ret;

	if (!ov)
		ov = &none;
	/* room for header + table, filled in last */
	b.len = sizeof(h) + SNAP_MAX_SECTIONS * sizeof(struct snap_section);
	b.cap = b.len + 65536;
	b.p = calloc(1, b.cap);
	if (!b.p)
		return err__set(err, -ENOMEM, "out of memory");
	ret = state__sections(m, policy, ov, &b, err);
	if (ret < 0)
		goto out;
	/* the table sits right after the header: move the sections up to it */
	table_len = b.n * sizeof(struct snap_section);
	{
		size_t first = b.table[0].offset, dst = (sizeof(h) + table_len + 7) & ~7UL;
		size_t shift = first - dst;
		memmove(b.p + dst, b.p + first, b.len - first);
		b.len -= shift;
		for (uint32_t i = 0; i < b.n; i++) {
			b.table[i].offset -= shift;
			b.table[i].hash = XXH3_64bits(b.p + b.table[i].offset, b.table[i].length);
		}
	}
	memcpy(b.p + sizeof(h), b.table, table_len);
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.major = SNAP_MAJOR;
	h.minor = SNAP_MINOR;
	h.arch = SNAP_ARCH_X86_64;
	h.abi_version = m->guest_abi ? m->guest_abi : SB_ABI_VERSION;
	h.n_sections = b.n;
	h.mem_size = m->ram.size;
	h.cpuid_hash = b.cpuid_hash;
	h.pages_hash = pages_hash;
	h.table_hash = XXH3_64bits(b.table, table_len);
	h.backend = m->be->snap_backend;
	h.header_hash = XXH3_64bits(&h, sizeof(h));
	memcpy(b.p, &h, sizeof(h));
	*out = b.p;
	*out_len = b.len;
	return 0;
out:
	free(b.p);
	return ret;
}
