/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/kvm/vm.h"
#include "snapshot/snapshot.h"

static const struct backend *const backends[] = { &kvm_backend };

const struct backend *backend__find(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

struct machine *machine__new(const struct backend *be, uint64_t mem_size, enum ram_backend ram,
			     struct sb_err *err)
{
	struct machine *m = calloc(1, be->size);

	if (!m) {
		err__set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	m->be = be;
	if (be->create(m, mem_size, ram, err) < 0) {
		machine__free(m);
		return NULL;
	}
	return m;
}

struct machine *machine__new_clone(const struct backend *be, const struct snapshot *snap,
				   struct sb_err *err)
{
	struct machine *m = machine__new(be, snap->hdr.mem_size, RAM_RESERVED, err);

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
