/* SPDX-License-Identifier: MIT */
/* An arriving sandbox made from its template and the stream (migrate.h);
 * apart from recv.c, which the fuzz target links without any backend. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"
#include "migrate/migrate.h"
#include "snapshot/snapshot.h"
#include "snapbox_abi.h"

int mig__restore(struct machine *m, const struct snapshot *merged, const struct mig_incoming *in,
		 struct sb_err *err)
{
	int ret;

	if (merged->hdr.backend == SNAP_BACKEND_KVM && (in->machine.flags & MACHINE_PAUSED_REPLY))
		return err__set(err, -EBADMSG, "migration stream: channel state for a kvm sandbox");
	m->mig_hold = true;
	m->paused = (struct machine_paused){ in->machine.flags, in->machine.nr, in->machine.gpa };
	ret = machine__clone_into(m, merged, err);
	m->mig_hold = false;

	if (ret < 0)
		return ret;
	for (uint64_t pg = 0; pg < in->mem_size / MIG_PAGE; pg++) {
		if (!in->page[pg])
			continue;
		ret = m->mem.write(&m->mem, pg * MIG_PAGE, in->page[pg], MIG_PAGE);
		if (ret < 0)
			return err__set(err, ret, "writing the sandbox's page at gpa 0x%llx: %s",
					(unsigned long long)(pg * MIG_PAGE), strerror(-ret));
	}
	{
		/* the guest's TSC clock: its anchors are the source's (another
		 * TSC here): tell it to drop them (SB_CLOCK_EPOCH_GPA) */
		uint32_t epoch = 0;

		ret = m->mem.read(&m->mem, SB_CLOCK_EPOCH_GPA, &epoch, sizeof(epoch));
		epoch++;
		if (ret == 0)
			ret = m->mem.write(&m->mem, SB_CLOCK_EPOCH_GPA, &epoch, sizeof(epoch));
		if (ret < 0)
			return err__set(err, ret, "writing the sandbox's clock epoch: %s", strerror(-ret));
	}
	if (m->be == &proc_backend)
		proc__migrate_go((struct proc_machine *)m);
	return 0;
}
