/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/kvm/vm.h"
#include "backend/proc/proc.h"
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

	if (m && be->clone_into(m, snap, err) < 0) {
		machine__free(m);
		return NULL;
	}
	return m;
}

void machine__free(struct machine *m)
{
	if (!m)
		return;
	m->be->destroy(m);
	free(m);
}
