/* SPDX-License-Identifier: MIT */
/* Resizing a running machine: see resize.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "backend/resize.h"
#include "sbtypes.h"
#include "snapbox_abi.h"

#define MIB(x) ((unsigned long long)((x) >> 20))

/* The body first, the seq last: a guest that sees the new seq sees the rest. */
static int rs__mailbox(struct machine *m)
{
	struct sb_memctl c = {
		.magic = SB_MEMCTL_MAGIC, .seq = m->rs.seq - 1, .hot_size = m->rs.hot_size,
		.hot_target = m->rs.hot_target, .report_min_pages = m->rs.report_min,
	};
	int ret = m->mem.write(&m->mem, SB_MEMCTL_GPA + 8, (const uint8_t *)&c + 8, sizeof(c) - 8);

	c.seq = m->rs.seq;
	if (ret == 0)
		ret = m->mem.write(&m->mem, SB_MEMCTL_GPA, &c, 8);
	return ret;
}

static void rs__answer(struct machine *m, uint64_t id, int status, const char *msg)
{
	struct resize_ans a = {
		.id = id, .status = status, .report_min = m->rs.report_min,
		.mem = m->ram.size + m->rs.hot_size,
		.in_use = m->rs.hot_in_use ? m->ram.size + m->rs.hot_in_use : 0,
		.reports = m->rs.reports, .reported_bytes = m->rs.reported_bytes,
	};

	snprintf(a.message, sizeof(a.message), "%s", status && msg ? msg : "");
	send(m->rs.ctl_fd, &a, sizeof(a), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* A new request: the mailbox changes, a grow is done at once. */
static int rs__mem(struct machine *m, uint64_t want, uint64_t id, struct sb_err *err, bool *later)
{
	uint64_t base = m->ram.size, hot;
	int ret;

	if (want < base)
		return err__set(err, -ERANGE, "%llu MiB is below the template's RAM (%llu MiB): only "
				"memory added to the sandbox can be taken away", MIB(want), MIB(base));
	hot = (want - base + SB_PAGE_2M - 1) & ~(SB_PAGE_2M - 1);
	if (hot > SB_HOT_MAX)
		return err__set(err, -E2BIG, "%llu MiB is above the most this sandbox can have: %llu MiB "
				"(its template's %llu MiB and up to %llu MiB added)",
				MIB(want), MIB(base + SB_HOT_MAX), MIB(base), MIB(SB_HOT_MAX));
	if (hot > m->rs.hot_size) {
		ret = m->be->hot_set(m, hot, err);
		if (ret < 0)
			return ret;
		m->rs.hot_size = m->rs.hot_target = hot;
		m->rs.seq++;
		return rs__mailbox(m);
	}
	if (hot < m->rs.hot_size) { /* the guest must vacate it first */
		m->rs.hot_target = hot;
		m->rs.seq++;
		m->rs.pending_req = id;
		*later = true;
		return rs__mailbox(m);
	}
	return 0;
}

/* One request; > 0: the guest must see the mailbox now. */
static int rs__request(struct machine *m, const struct resize_req *q)
{
	struct sb_err err = { "" };
	bool later = false;
	int ret = 0;

	if (!m->rs.on) {
		if (q->flags & ~RESIZE_QUERY)
			ret = err__set(&err, -ENOTSUP, "%s", m->rs.why_not[0] ? m->rs.why_not
							: "this sandbox cannot be resized");
		rs__answer(m, q->id, ret, err.msg);
		return 0;
	}
	if (m->rs.pending_req) { /* the service gave up on it: call it off */
		m->rs.pending_req = 0;
		m->rs.hot_target = m->rs.hot_size;
		m->rs.seq++;
		rs__mailbox(m);
	}
	if (q->flags & RESIZE_CPU) {
		if (!m->be->set_cpu)
			ret = err__set(&err, -ENOTSUP, "the %s backend cannot change a sandbox's CPU share",
				       m->be->name);
		else
			ret = m->be->set_cpu(m, q->cpu_quota_us, q->cpu_period_us, &err);
		if (ret == 0) {
			m->rs.cpu_quota_us = q->cpu_quota_us;
			m->rs.cpu_period_us = q->cpu_period_us;
		}
	}
	if (ret == 0 && (q->flags & RESIZE_REPORT) && q->report_min != m->rs.report_min) {
		m->rs.report_min = q->report_min;
		m->rs.seq++;
		ret = rs__mailbox(m);
		if (ret < 0)
			err__set(&err, ret, "writing the sandbox's mailbox: %s", strerror(-ret));
	}
	if (ret == 0 && (q->flags & RESIZE_MEM))
		ret = rs__mem(m, q->mem, q->id, &err, &later);
	if (later && ret == 0)
		return 1;
	if (later) { /* the mailbox could not be written */
		m->rs.pending_req = 0;
		m->rs.hot_target = m->rs.hot_size;
	}
	rs__answer(m, q->id, ret, err.msg);
	return 0;
}

int machine__ctl_poll(struct machine *m)
{
	struct resize_req q;
	int wake = 0;
	ssize_t n;

	if (m->rs.ctl_fd <= 0)
		return 0;
	while ((n = recv(m->rs.ctl_fd, &q, sizeof(q), MSG_DONTWAIT)) > 0)
		if (n == (ssize_t)sizeof(q))
			wake |= rs__request(m, &q);
	return wake;
}

static int rs__ctl_poll(void *arg)
{
	return machine__ctl_poll(arg);
}

/* The guest's answer to a shrink. */
static void rs__ack(struct machine *m, const struct sb_hc_mem_ctl *c)
{
	struct sb_err err = { "" };
	uint64_t id = m->rs.pending_req;
	int ret;

	if (!id || c->seq != m->rs.seq)
		return; /* an old one: that request was called off */
	m->rs.pending_req = 0;
	m->rs.hot_in_use = c->in_use_top < m->rs.hot_size ? c->in_use_top : m->rs.hot_size;
	if (c->kept != m->rs.hot_target) {
		ret = err__set(&err, -EBUSY, "the sandbox uses %llu MiB (%llu MiB of its template's RAM "
			       "and up to %llu MiB of the memory added to it): it cannot shrink to %llu MiB",
			       MIB(m->ram.size + m->rs.hot_in_use), MIB(m->ram.size),
			       MIB(m->rs.hot_in_use), MIB(m->ram.size + m->rs.hot_target));
		m->rs.hot_target = m->rs.hot_size;
	} else {
		ret = m->be->hot_set(m, c->kept, &err);
		if (ret == 0)
			m->rs.hot_size = c->kept;
	}
	rs__answer(m, id, ret, err.msg);
}

static int rs__mem_call(void *arg, struct sb_hc_mem_ctl *c, struct sb_mem_range *r,
			struct sb_err *err)
{
	struct machine *m = arg;

	(void)err;
	if (c->op == SB_MEM_ACK) {
		rs__ack(m, c);
		return 0;
	}
	for (uint32_t i = 0; i < c->n; i++) {
		uint64_t gpa = r[i].gpa, len = r[i].len;

		r[i].flags = 0;
		if ((gpa | len) % 4096 || !len ||
		    !(sb_range_in(gpa, len, SB_USER_LOAD, m->ram.size) ||
		      (m->rs.hot_size && sb_range_in(gpa, len, SB_HOT_GPA, SB_HOT_GPA + m->rs.hot_size)))) {
			c->ret = -EINVAL; /* that one is kept; the guest misbehaves */
			continue;
		}
		r[i].flags = m->be->discard(m, gpa, len);
		m->rs.reported_bytes += len;
	}
	m->rs.reports++;
	return 0;
}

int machine__resize_enable(struct machine *m, int ctl_fd, uint32_t report_min, struct sb_err *err)
{
	int ret;

	m->rs = (struct machine_resize){ .ctl_fd = ctl_fd };
	m->hc.ctl_poll = rs__ctl_poll;
	m->hc.ctl_arg = m;
	if (!m->be->hot_set || !m->be->discard)
		ret = err__set(err, -ENOTSUP, "the %s backend cannot resize a sandbox", m->be->name);
	else if (m->guest_abi && m->guest_abi < 5)
		ret = err__set(err, -ENOTSUP, "this sandbox's template has a guest kernel of ABI %u; "
			       "resizing needs ABI 5 (make the template again)", m->guest_abi);
	else
		ret = 0;
	if (ret < 0) {
		snprintf(m->rs.why_not, sizeof(m->rs.why_not), "%.199s", err->msg);
		return ret;
	}
	m->rs.on = true;
	m->rs.seq = 1;
	m->rs.report_min = report_min;
	{
		/* a machine that arrived by migration has its mailbox already
		 * (it came with its RAM): its seq goes on from there, so that
		 * the guest reads ours, and its reporting stays as it was */
		struct sb_memctl old;

		if (m->mem.read(&m->mem, SB_MEMCTL_GPA, &old, sizeof(old)) == 0 &&
		    old.magic == SB_MEMCTL_MAGIC) {
			m->rs.seq = old.seq + 1 ? old.seq + 1 : 1;
			if (report_min == RESIZE_REPORT_KEEP)
				m->rs.report_min = old.report_min_pages;
		}
		if (m->rs.report_min == RESIZE_REPORT_KEEP)
			m->rs.report_min = RESIZE_REPORT_DEFAULT;
	}
	ret = rs__mailbox(m);
	if (ret < 0) {
		m->rs.on = false;
		err__set(err, ret, "writing the sandbox's hotplug mailbox: %s", strerror(-ret));
		snprintf(m->rs.why_not, sizeof(m->rs.why_not), "%.199s", err->msg);
		return ret;
	}
	m->hc.mem_call = rs__mem_call;
	return 0;
}
