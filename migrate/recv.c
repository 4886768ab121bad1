/* SPDX-License-Identifier: MIT */
/* The receiving side of a live migration (migrate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "migrate/migrate.h"
#include "snapshot/snapshot.h"

void mig__incoming_free(struct mig_incoming *in)
{
	if (in->page)
		for (uint64_t i = 0; i < in->mem_size / MIG_PAGE; i++)
			free(in->page[i]);
	free(in->page);
	free(in->state);
	free(in->io);
	memset(in, 0, sizeof(*in));
}

static int take_pages(struct mig_incoming *in, const struct mig_rec *rec, const uint8_t *p,
		      struct sb_err *err)
{
	uint64_t first = rec->arg / MIG_PAGE, n = rec->len / MIG_PAGE;

	for (uint64_t k = 0; k < n; k++) {
		uint8_t **slot = &in->page[first + k];
		if (!*slot) {
			*slot = malloc(MIG_PAGE);
			if (!*slot)
				return err__set(err, -ENOMEM, "out of memory for the sandbox's pages");
			in->n_pages++;
		}
		memcpy(*slot, p + k * MIG_PAGE, MIG_PAGE);
	}
	return 0;
}

int mig__read_body(struct mig_reader *r, struct mig_incoming *in, struct sb_err *err)
{
	memset(in, 0, sizeof(*in));
	in->mem_size = r->mem_size;
	if (!in->mem_size || in->mem_size % MIG_PAGE || in->mem_size > MIG_MAX_MEM)
		return err__set(err, -EINVAL, "migration stream: no RAM size");
	in->page = calloc(in->mem_size / MIG_PAGE, sizeof(*in->page));
	if (!in->page)
		return err__set(err, -ENOMEM, "out of memory");
	for (;;) {
		struct mig_rec rec;
		uint8_t *p;
		int ret = mig__read_rec(r, &rec, &p, err);

		if (ret < 0)
			return ret;
		switch (rec.type) {
		case MIG_REC_PAGES:
			if (in->state) {
				free(p);
				return err__set(err, -EBADMSG, "migration stream: pages after the state");
			}
			in->n_records++;
			ret = take_pages(in, &rec, p, err);
			free(p);
			if (ret < 0)
				return ret;
			break;
		case MIG_REC_STATE:
			if (in->state || rec.len == 0) {
				free(p);
				return err__set(err, -EBADMSG, "migration stream: %s STATE record",
						in->state ? "a second" : "an empty");
			}
			in->state = p;
			in->state_len = rec.len;
			break;
		case MIG_REC_MACHINE:
			ret = in->have_machine || !in->state
				? err__set(err, -EBADMSG, "migration stream: a MACHINE record %s",
					   in->have_machine ? "twice" : "before the state")
				: mig__parse_machine(p, rec.len, in->mem_size, &in->machine, err);
			free(p);
			if (ret < 0)
				return ret;
			in->have_machine = true;
			break;
		case MIG_REC_IO:
			if (in->io || !in->have_machine) {
				free(p);
				return err__set(err, -EBADMSG, "migration stream: an IO record %s",
						in->io ? "twice" : "before the MACHINE record");
			}
			in->io = p;
			in->io_len = rec.len;
			if (!p) /* an empty one is refused by parse_io later */
				in->io = calloc(1, 1);
			break;
		case MIG_REC_END:
			free(p);
			if (!in->state || !in->io)
				return err__set(err, -EBADMSG, "migration stream: it ends without %s",
						in->state ? "the IO record" : "the state");
			if (rec.arg != in->n_records)
				return err__set(err, -EBADMSG, "migration stream: %llu page records "
						"came, the source says it sent %llu",
						(unsigned long long)in->n_records,
						(unsigned long long)rec.arg);
			return 0;
		case MIG_REC_ERROR:
			err__set(err, -ECANCELED, "the source gave up: %s", p ? (char *)p : "?");
			free(p);
			return -ECANCELED;
		default:
			free(p);
			return err__set(err, -EBADMSG, "migration stream: a %s record from the source",
					mig__rec_name(rec.type));
		}
	}
}

int mig__merge_state(const struct snapshot *tmpl, const uint8_t *state, size_t len,
		     struct snapshot *out, struct sb_err *err)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return err__set(err, -ENOMEM, "out of memory");
	s->dirfd = -1;
	ret = snapshot__parse_state(state, len, s, err);
	if (ret < 0)
		goto out;
	if (s->hdr.backend != tmpl->hdr.backend || s->hdr.mem_size != tmpl->hdr.mem_size ||
	    s->hdr.abi_version != tmpl->hdr.abi_version) {
		ret = err__set(err, -EBADMSG, "migration stream: the sandbox's state (%s, %llu MiB, "
			       "ABI %u) is not of its template (%s, %llu MiB, ABI %u)",
			       snapshot__backend_name(s->hdr.backend),
			       (unsigned long long)(s->hdr.mem_size >> 20), s->hdr.abi_version,
			       snapshot__backend_name(tmpl->hdr.backend),
			       (unsigned long long)(tmpl->hdr.mem_size >> 20), tmpl->hdr.abi_version);
		goto out;
	}
	if (s->layers.n_layers != tmpl->layers.n_layers ||
	    memcmp(s->layers.layers, tmpl->layers.layers,
		   s->layers.n_layers * sizeof(s->layers.layers[0]))) {
		ret = err__set(err, -EBADMSG, "migration stream: the sandbox's root file system "
			       "layers are not its template's");
		goto out;
	}
	if (tmpl->hdr.backend == SNAP_BACKEND_KVM && s->hdr.cpuid_hash != tmpl->hdr.cpuid_hash) {
		ret = err__set(err, -EBADMSG, "migration stream: the sandbox's CPUID is not its "
			       "template's");
		goto out;
	}
	*out = *tmpl;
	out->vcpu = s->vcpu;
	out->vm = s->vm;
	out->proc = s->proc;
	out->serial = s->serial;
	out->hc = s->hc;
	out->hc_version = s->hc_version;
out:
	free(s);
	return ret;
}
