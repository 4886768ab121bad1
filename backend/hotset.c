/* SPDX-License-Identifier: MIT */
/* The write set: finding it after a training run, pre-faulting it in a
 * pre-cloned machine (backend.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "backend/backend.h"
#include "backend/proc/proc.h"
#include "memory/written.h"
#include "snapshot/snapshot.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define CHUNK (256u << 10)

int machine__written(struct machine *m, uint64_t (**out)[2], size_t *n, uint64_t *base,
		     struct sb_err *err)
{
	bool proc = m->be == &proc_backend;
	pid_t pid = proc ? ((struct proc_machine *)m)->pid : 0;
	uint64_t lo = proc ? SB_PROC_RAM_BASE : (uint64_t)(uintptr_t)m->ram.host;
	uint64_t hi = proc ? m->ram.size : lo + m->ram.size;
	struct written_scan ws;
	int ret;

	*out = NULL;
	*n = 0;
	*base = proc ? 0 : lo;
	if (proc && pid <= 0)
		return err__set(err, -ESRCH, "the training sandbox's process is gone");
	memset(&ws, 0, sizeof(ws));
	ret = written__open(&ws, pid, err);
	if (ret < 0)
		return ret;
	ret = written__scan(&ws, lo, hi, err);
	if (ret == 0 && ws.n) {
		*out = malloc(ws.n * sizeof(**out));
		if (!*out)
			ret = err__set(err, -ENOMEM, "out of memory");
		for (size_t i = 0; ret == 0 && i < ws.n; i++) {
			(*out)[i][0] = ws.r[i].start;
			(*out)[i][1] = ws.r[i].end;
		}
		if (ret == 0)
			*n = ws.n;
	}
	written__close(&ws);
	return ret;
}

/* proc: read [gpa, + len) of the sandbox and write it back. */
static int prefault__proc(pid_t pid, uint8_t *buf, uint64_t gpa, uint64_t len, struct sb_err *err)
{
	while (len) {
		size_t k = len < CHUNK ? (size_t)len : CHUNK;
		struct iovec l = { buf, k }, r = { (void *)(uintptr_t)gpa, k };

		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)k ||
		    process_vm_writev(pid, &l, 1, &r, 1, 0) != (ssize_t)k)
			return err__errno(err, "pre-faulting the sandbox's write set at %#llx",
					  (unsigned long long)gpa);
		gpa += k;
		len -= k;
	}
	return 0;
}

int machine__prefault(struct machine *m, const struct snapshot *snap, uint64_t *pages,
		      struct sb_err *err)
{
	bool proc = m->be == &proc_backend;
	uint8_t *buf = NULL;
	int ret = 0;

	*pages = 0;
	if (!snap->hotset.n_ranges)
		return 0;
	if (proc && !(buf = malloc(CHUNK)))
		return err__set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; ret == 0 && i < snap->hotset.n_ranges; i++) {
		uint64_t gpa = snap->hot[i].gpa, len = (uint64_t)snap->hot[i].npages * SNAP_PAGE;

		if (!sb_range_in(gpa, len, 0, m->ram.size))
			return free(buf), err__set(err, -EINVAL, "write set outside RAM");
		if (proc) {
			if (gpa < SB_PROC_RAM_BASE) { /* a proc sandbox maps no RAM there */
				uint64_t cut = SB_PROC_RAM_BASE - gpa;
				if (cut >= len)
					continue;
				gpa += cut;
				len -= cut;
			}
			ret = prefault__proc(((struct proc_machine *)m)->pid, buf, gpa, len, err);
		} else if (madvise((uint8_t *)m->ram.host + gpa, len, MADV_POPULATE_WRITE) < 0) {
			ret = err__errno(err, "MADV_POPULATE_WRITE of the write set at %#llx",
					 (unsigned long long)gpa);
		}
		if (ret == 0)
			*pages += len / SNAP_PAGE;
	}
	free(buf);
	return ret;
}
