/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/kvm/vm.h"
#include "backend/proc/proc.h"
#include "sbfs/layers.h"
#include "snapshot/snapshot.h"

const struct backend *const backend__all[] = { &kvm_backend, &proc_backend, NULL };

const struct backend *backend__find(const char *name)
{
	for (size_t i = 0; backend__all[i]; i++)
		if (!strcmp(backend__all[i]->name, name))
			return backend__all[i];
	return NULL;
}

const struct backend *backend__pick(const char *name, struct sb_err *err)
{
	const struct backend *be;
	char why[256];

	if (!name || !strcmp(name, "auto"))
		return kvm_backend.available(why, sizeof(why)) ? &kvm_backend : &proc_backend;
	be = backend__find(name);
	if (!be)
		err__set(err, -EINVAL, "unknown backend '%s' (expected kvm, proc or auto)", name);
	return be;
}

const struct backend *backend__of_snapshot(const struct snapshot *snap, struct sb_err *err)
{
	for (size_t i = 0; backend__all[i]; i++)
		if (backend__all[i]->snap_backend == snap->hdr.backend)
			return backend__all[i];
	err__set(err, -EPROTONOSUPPORT, "template made by an unknown backend (%u)", snap->hdr.backend);
	return NULL;
}

struct machine *machine__new_opts(const struct backend *be, uint64_t mem_size,
				  enum ram_backend ram, const struct machine_opts *opts,
				  struct sb_err *err)
{
	struct machine *m = calloc(1, be->size);

	if (!m) {
		err__set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	m->be = be;
	m->opts = opts;
	if (be->create(m, mem_size, ram, err) < 0) {
		machine__free(m);
		return NULL;
	}
	m->opts = NULL;
	return m;
}

struct machine *machine__new(const struct backend *be, uint64_t mem_size, enum ram_backend ram,
			     struct sb_err *err)
{
	return machine__new_opts(be, mem_size, ram, NULL, err);
}

struct machine *machine__new_clone(const struct backend *be, const struct snapshot *snap,
				   struct sb_err *err)
{
	return machine__new_clone_opts(be, snap, NULL, err);
}

struct machine *machine__new_clone_opts(const struct backend *be, const struct snapshot *snap,
					const struct machine_opts *opts, struct sb_err *err)
{
	struct machine *m = machine__new_opts(be, snap->hdr.mem_size, RAM_RESERVED, opts, err);

	if (m)
		m->recycle = opts && opts->recycle;
	if (m && machine__clone_into(m, snap, err) < 0) {
		machine__free(m);
		return NULL;
	}
	return m;
}

int machine__clone_into(struct machine *m, const struct snapshot *snap, struct sb_err *err)
{
	int ret = m->be->clone_into(m, snap, err);

	if (ret == 0) {
		memcpy(m->template_id, snap->id, sizeof(m->template_id));
		m->guest_abi = snap->hdr.abi_version;
	}
	return ret;
}

bool machine__recyclable(const struct machine *m)
{
	return m->hc.exited && m->be->reset;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int machine__reset(struct machine *m, const struct snapshot *snap, struct reset_stats *st,
		   struct sb_err *err)
{
	double t0 = now_us();
	struct hc_ctx keep = m->hc;
	int ret;

	memset(st, 0, sizeof(*st));
	if (!m->be->reset)
		return err__set(err, -EOPNOTSUPP, "the %s backend cannot recycle a sandbox",
				m->be->name);
	if (!keep.exited)
		return err__set(err, -EINVAL, "only a sandbox whose program exited is recycled");
	if (!m->template_id[0] || memcmp(m->template_id, snap->id, sizeof(m->template_id)))
		return err__set(err, -EINVAL, "a recycled sandbox serves only the template it was "
				"cloned from");
	ret = m->be->reset(m, snap, st, err);
	if (ret < 0)
		return ret;
	/* the devices as clone_into leaves them: the template's state, no
	 * results, no counts (a new request must not see the last one's) */
	hypercall__init(&m->hc, keep.mem, keep.timeout, keep.program);
	m->hc.set_base = keep.set_base;
	m->hc.set_base_arg = keep.set_base_arg;
	m->hc.st = snap->hc;
	hypercall__draw_ahead(&m->hc);
	m->serial.st = snap->serial;
	m->serial.tx_bytes = 0;
	st->total_us = now_us() - t0;
	return 0;
}

int machine__map_layers(struct machine *m, const struct layer_set *ls, struct sb_err *err)
{
	struct machine_layer l[SB_MAX_LAYERS];
	int fds[SB_MAX_LAYERS];
	int ret;

	if (ls->n == 0 || ls->n > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "%u root file system layers", ls->n);
	for (unsigned i = 0; i < ls->n; i++) {
		l[i].gpa = layers__gpa(ls, i);
		l[i].size = ls->map[i].size;
		memcpy(l[i].id, ls->map[i].fs.h.id, sizeof(l[i].id));
		fds[i] = ls->map[i].fd;
	}
	ret = m->be->map_layers(m, fds, l, ls->n, err);
	if (ret < 0)
		return ret;
	memcpy(m->layers, l, sizeof(l[0]) * ls->n);
	m->n_layers = ls->n;
	return 0;
}

int machine__map_snapshot_layers(struct machine *m, const struct snapshot *snap, int *keep,
				 struct sb_err *err)
{
	struct machine_layer l[SB_MAX_LAYERS];
	int fds[SB_MAX_LAYERS];
	unsigned n = snap->layers.n_layers, opened = 0;
	int ret = 0;

	for (unsigned i = 0; i < n && ret == 0; i++) {
		const struct snap_layer *s = &snap->layers.layers[i];
		int fd = snapshot__open_layer(snap, i, err);

		l[i] = (struct machine_layer){ .gpa = s->gpa, .size = s->size };
		memcpy(l[i].id, s->id, sizeof(l[i].id));
		if (fd < 0)
			ret = fd;
		else
			fds[opened++] = fd;
	}
	if (ret == 0 && n)
		ret = m->be->map_layers(m, fds, l, n, err);
	for (unsigned i = 0; i < opened; i++) {
		if (keep && ret == 0)
			keep[i] = fds[i];
		else
			close(fds[i]);
	}
	if (ret < 0)
		return ret;
	memcpy(m->layers, l, sizeof(l[0]) * n);
	m->n_layers = n;
	return 0;
}

void machine__free(struct machine *m)
{
	if (!m)
		return;
	m->be->destroy(m);
	free(m);
}
