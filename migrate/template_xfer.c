/* SPDX-License-Identifier: MIT */
/*
 * A migrating sandbox's template, sent to a destination that lacks it
 * (stream.h, 2.0: NEED).  The source sends the template's files as they
 * are in its store (mem.img sparse: zero chunks stay holes) and only the
 * layer images the destination says it lacks; the destination writes them
 * into a private directory under <store>/tmp, checks the whole template as
 * `snapbox template verify` does (state.bin's hash and id, pages.idx,
 * every page of mem.img against it, every layer image completely), links
 * the new layer images into <store>/images and renames the directory into
 * place: under the source's name if that is free, else NAME-<id prefix>.
 * Anything wrong: the directory goes, nothing is left in the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "sbfs/sbfs_host.h"
#include "snapshot/format.h"
#include "snapshot/image.h"
#include "snapshot/snapshot.h"
#include "snapshot/store.h"
#include "snapbox_abi.h"

_Static_assert(MIG_MAX_TLAYERS >= SB_MAX_LAYERS, "MIG_MAX_TLAYERS");

#define MIG_MAX_TSTATE (16u << 20)     /* bytes of a template's state.bin */
#define MIG_MAX_TMANIFEST (1u << 20)   /* bytes of its template.json */
#define MIG_MAX_TLAYER (64ULL << 30)   /* bytes of a layer image */
#define MIG_TEMPLATE_TIMEOUT_MS 300000 /* the destination's check of it */

static const char *tfile_name(uint32_t kind)
{
	switch (kind) {
	case MIG_TFILE_STATE: return SNAP_STATE_FILE;
	case MIG_TFILE_PAGES: return SNAP_PAGES_FILE;
	case MIG_TFILE_MANIFEST: return SNAP_MANIFEST_FILE;
	case MIG_TFILE_MEM: return SNAP_MEM_FILE;
	}
	return "a layer image";
}

/* ---- the source ------------------------------------------------------------------------ */

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* Has the destination said something (its ERROR) while we send? */
static int check_refused(int conn, struct sb_err *err)
{
	struct pollfd pf = { conn, POLLIN, 0 };
	struct mig_reader r;
	struct mig_rec rec;
	uint8_t *p = NULL;
	int ret;

	if (poll(&pf, 1, 0) != 1)
		return 0;
	mig_reader__fd(&r, conn, 1000);
	r.mem_size = MIG_MAX_MEM;
	ret = mig__read_rec(&r, &rec, &p, err);
	if (ret == 0)
		ret = rec.type == MIG_REC_ERROR
			? err__set(err, -ECANCELED, "the destination refused: %s", p ? (char *)p : "?")
			: err__set(err, -EPROTO, "the destination sent %s while it got the template",
				   mig__rec_name(rec.type));
	free(p);
	return ret;
}

static int send_file(int conn, int fd, uint32_t kind, const uint8_t *id, uint8_t *buf,
		     uint64_t *bytes, struct sb_err *err)
{
	struct mig_tfile tf = { .kind = kind };
	struct stat sb;
	int ret;

	if (fstat(fd, &sb) < 0)
		return err__errno(err, "the template's %s", tfile_name(kind));
	tf.size = (uint64_t)sb.st_size;
	if (id)
		memcpy(tf.id, id, sizeof(tf.id));
	ret = mig__write_rec(conn, MIG_REC_TFILE, 0, &tf, sizeof(tf));
	for (uint64_t off = 0; ret == 0 && off < tf.size;) {
		size_t want = tf.size - off < MIG_MAX_TDATA ? tf.size - off : MIG_MAX_TDATA;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? err__errno(err, "reading the template's %s", tfile_name(kind))
				     : err__set(err, -EIO, "the template's %s shrank", tfile_name(kind));
		if ((off / MIG_MAX_TDATA) % 16 == 0 && (ret = check_refused(conn, err)) < 0)
			return ret;
		if (kind != MIG_TFILE_MEM || !all_zero(buf, (size_t)n)) {
			ret = mig__write_rec(conn, MIG_REC_TDATA, off, buf, (size_t)n);
			*bytes += sizeof(struct mig_rec) + (uint64_t)n;
		}
		off += (uint64_t)n;
	}
	if (ret < 0)
		return err__set(err, ret, "sending the template: %s", strerror(-ret));
	*bytes += sizeof(struct mig_rec) + sizeof(tf);
	return 0;
}

int mig__send_template(int conn, const struct snapshot *tmpl, uint64_t *bytes, struct sb_err *err)
{
	static const uint32_t kinds[] = { MIG_TFILE_STATE, MIG_TFILE_PAGES, MIG_TFILE_MANIFEST,
					  MIG_TFILE_MEM };
	struct mig_tlayer tl[MIG_MAX_TLAYERS];
	uint32_t n = tmpl->layers.n_layers, files = 0;
	struct mig_reader r;
	struct mig_rec rec;
	uint8_t *p = NULL, *buf;
	int ret;

	if (n > SB_MAX_LAYERS)
		return err__set(err, -EINVAL, "the template has %u layers", n);
	memset(tl, 0, sizeof(tl));
	for (uint32_t i = 0; i < n; i++) {
		memcpy(tl[i].id, tmpl->layers.layers[i].id, 16);
		tl[i].size = tmpl->layers.layers[i].size;
	}
	ret = mig__write_rec(conn, MIG_REC_TLAYERS, 0, tl, n * sizeof(tl[0]));
	if (ret < 0)
		return err__set(err, ret, "sending to the destination: %s", strerror(-ret));
	mig_reader__fd(&r, conn, MIG_ACK_TIMEOUT_MS);
	r.mem_size = MIG_MAX_MEM;
	ret = mig__read_rec(&r, &rec, &p, err);
	if (ret < 0)
		return ret;
	if (rec.type == MIG_REC_ERROR)
		ret = err__set(err, -ECANCELED, "the destination refused: %s", p ? (char *)p : "?");
	else if (rec.type != MIG_REC_NEED || rec.arg >> n)
		ret = err__set(err, -EPROTO, "the destination answered the template's layers with %s",
			       mig__rec_name(rec.type));
	free(p);
	if (ret < 0)
		return ret;
	buf = malloc(MIG_MAX_TDATA);
	if (!buf)
		return err__set(err, -ENOMEM, "out of memory");
	for (size_t k = 0; ret == 0 && k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		int fd = openat(tmpl->dirfd, tfile_name(kinds[k]), O_RDONLY | O_CLOEXEC);

		if (fd < 0 && errno == ENOENT && kinds[k] == MIG_TFILE_MANIFEST)
			continue; /* an older template: no manifest */
		if (fd < 0) {
			ret = err__errno(err, "the template's %s", tfile_name(kinds[k]));
			break;
		}
		ret = send_file(conn, fd, kinds[k], NULL, buf, bytes, err);
		close(fd);
		files++;
	}
	for (uint32_t i = 0; ret == 0 && i < n; i++) {
		int fd;

		if (!(rec.arg & (1ULL << i)))
			continue;
		fd = snapshot__open_layer(tmpl, i, err);
		if (fd < 0) {
			ret = fd;
			break;
		}
		ret = send_file(conn, fd, MIG_TFILE_LAYER, tl[i].id, buf, bytes, err);
		close(fd);
		files++;
	}
	free(buf);
	if (ret == 0 && (ret = mig__write_rec(conn, MIG_REC_TEND, files, NULL, 0)) < 0)
		err__set(err, ret, "sending to the destination: %s", strerror(-ret));
	return ret;
}

/* ---- the destination ------------------------------------------------------------------- */

struct fetch {
	const struct store *st;
	const struct mig_hello *h;
	int dirfd;
	struct mig_tlayer tl[MIG_MAX_TLAYERS];
	uint32_t n_layers;
	uint64_t want, got_layers; /* bitmaps */
	uint32_t got_kinds;        /* bitmap of 1 << kind */
	uint32_t files;
	/* the file being received */
	int fd;
	uint64_t size, next;
	char what[64];
};

static bool image_there(const struct store *st, const uint8_t id[16], uint64_t size)
{
	char path[PATH_MAX + 64], hex[33];
	struct stat sb;

	sbfs__id_hex(id, hex);
	snprintf(path, sizeof(path), "%s/images/%s.sbfs", st->root, hex);
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == size;
}

static int close_file(struct fetch *f, struct sb_err *err)
{
	int ret = 0;

	if (f->fd < 0)
		return 0;
	if (fsync(f->fd) < 0)
		ret = err__errno(err, "writing the template's %s", f->what);
	close(f->fd);
	f->fd = -1;
	return ret;
}

static int open_file(struct fetch *f, const uint8_t *p, size_t len, struct sb_err *err)
{
	struct mig_tfile tf;
	char rel[64];
	uint64_t max = 0;
	int ret = close_file(f, err);

	if (ret < 0)
		return ret;
	if (len != sizeof(tf))
		return err__set(err, -EBADMSG, "migration stream: a TFILE record of %zu bytes", len);
	memcpy(&tf, p, sizeof(tf));
	if (tf.reserved || tf.kind == 0 || tf.kind >= MIG_TFILE_KIND_MAX)
		return err__set(err, -EBADMSG, "migration stream: a template file of kind %u", tf.kind);
	switch (tf.kind) {
	case MIG_TFILE_STATE: max = MIG_MAX_TSTATE; break;
	case MIG_TFILE_PAGES:
		max = sizeof(struct snap_pages_header) + f->h->mem_size / SNAP_PAGE * 8;
		break;
	case MIG_TFILE_MANIFEST: max = MIG_MAX_TMANIFEST; break;
	case MIG_TFILE_MEM: max = f->h->mem_size; break;
	case MIG_TFILE_LAYER: max = MIG_MAX_TLAYER; break;
	}
	if (tf.size > max || (tf.kind == MIG_TFILE_MEM && tf.size != f->h->mem_size))
		return err__set(err, -EBADMSG, "migration stream: the template's %s is %llu bytes "
				"(at most %llu)", tfile_name(tf.kind), (unsigned long long)tf.size,
				(unsigned long long)max);
	if (tf.kind == MIG_TFILE_LAYER) {
		char hex[33];
		uint32_t i;

		for (i = 0; i < f->n_layers; i++)
			if (!memcmp(f->tl[i].id, tf.id, 16))
				break;
		if (i == f->n_layers || !(f->want & (1ULL << i)) || (f->got_layers & (1ULL << i)) ||
		    f->tl[i].size != tf.size)
			return err__set(err, -EBADMSG, "migration stream: a layer image that was not "
					"asked for (or twice, or of another size)");
		f->got_layers |= 1ULL << i;
		sbfs__id_hex(tf.id, hex);
		snprintf(rel, sizeof(rel), "layers/%s.sbfs", hex);
	} else {
		if (f->got_kinds & (1u << tf.kind))
			return err__set(err, -EBADMSG, "migration stream: the template's %s twice",
					tfile_name(tf.kind));
		f->got_kinds |= 1u << tf.kind;
		snprintf(rel, sizeof(rel), "%s", tfile_name(tf.kind));
	}
	snprintf(f->what, sizeof(f->what), "%s", rel);
	f->fd = openat(f->dirfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (f->fd < 0)
		return err__errno(err, "creating the template's %s", rel);
	if (ftruncate(f->fd, (off_t)tf.size) < 0)
		return err__errno(err, "the template's %s (%llu bytes)", rel, (unsigned long long)tf.size);
	f->size = tf.size;
	f->next = 0;
	f->files++;
	return 0;
}

static int take_data(struct fetch *f, const struct mig_rec *rec, const uint8_t *p,
		     struct sb_err *err)
{
	if (f->fd < 0 || rec->len == 0 || rec->arg < f->next || rec->arg > f->size ||
	    rec->len > f->size - rec->arg)
		return err__set(err, -EBADMSG, "migration stream: template data at %llu + %llu bytes "
				"is not inside the file being sent (%s)", (unsigned long long)rec->arg,
				(unsigned long long)rec->len, f->fd < 0 ? "none" : f->what);
	for (uint64_t done = 0; done < rec->len;) {
		ssize_t n = pwrite(f->fd, p + done, rec->len - done, (off_t)(rec->arg + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? err__errno(err, "writing the template's %s", f->what)
				     : err__set(err, -EIO, "writing the template's %s", f->what);
		done += (uint64_t)n;
	}
	f->next = rec->arg + rec->len;
	return 0;
}

/* The files, TLAYERS to TEND. */
static int fetch__body(struct fetch *f, struct mig_reader *r, int conn, struct sb_err *err)
{
	struct mig_rec rec;
	uint8_t *p = NULL;
	int ret = mig__read_rec(r, &rec, &p, err);

	if (ret < 0)
		return ret;
	if (rec.type != MIG_REC_TLAYERS || rec.len % sizeof(struct mig_tlayer) ||
	    rec.len / sizeof(struct mig_tlayer) > SB_MAX_LAYERS) {
		ret = rec.type == MIG_REC_ERROR
			? err__set(err, -ECANCELED, "the source gave up: %s", p ? (char *)p : "?")
			: err__set(err, -EBADMSG, "migration stream: a %s record (%llu bytes) where "
				   "the template's layers were due", mig__rec_name(rec.type),
				   (unsigned long long)rec.len);
		free(p);
		return ret;
	}
	f->n_layers = (uint32_t)(rec.len / sizeof(struct mig_tlayer));
	if (p)
		memcpy(f->tl, p, rec.len);
	free(p);
	for (uint32_t i = 0; i < f->n_layers; i++) {
		if (f->tl[i].size > MIG_MAX_TLAYER)
			return err__set(err, -EBADMSG, "migration stream: a layer image of %llu bytes",
					(unsigned long long)f->tl[i].size);
		if (!image_there(f->st, f->tl[i].id, f->tl[i].size))
			f->want |= 1ULL << i;
	}
	ret = mig__write_rec(conn, MIG_REC_NEED, f->want, NULL, 0);
	if (ret < 0)
		return err__set(err, ret, "answering the source: %s", strerror(-ret));
	for (;;) {
		ret = mig__read_rec(r, &rec, &p, err);
		if (ret < 0)
			return ret;
		switch (rec.type) {
		case MIG_REC_TFILE:
			ret = open_file(f, p, rec.len, err);
			break;
		case MIG_REC_TDATA:
			ret = take_data(f, &rec, p, err);
			break;
		case MIG_REC_TEND:
			ret = close_file(f, err);
			if (ret == 0 && (rec.arg != f->files || f->got_layers != f->want ||
					 !(f->got_kinds & (1u << MIG_TFILE_STATE)) ||
					 !(f->got_kinds & (1u << MIG_TFILE_PAGES)) ||
					 !(f->got_kinds & (1u << MIG_TFILE_MEM))))
				ret = err__set(err, -EBADMSG, "migration stream: the template ends "
					       "incomplete (%u files came, the source says %llu)",
					       f->files, (unsigned long long)rec.arg);
			free(p);
			return ret;
		case MIG_REC_ERROR:
			ret = err__set(err, -ECANCELED, "the source gave up: %s", p ? (char *)p : "?");
			break;
		default:
			ret = err__set(err, -EBADMSG, "migration stream: a %s record in the template",
				       mig__rec_name(rec.type));
		}
		free(p);
		if (ret < 0)
			return ret;
	}
}

/* The whole template checked, as `snapbox template verify` does, and that it
 * is the one the hello names. */
static int fetch__verify(struct fetch *f, const char *dir, struct sb_err *err)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	uint64_t bad = 0;
	int ret;

	if (!s)
		return err__set(err, -ENOMEM, "out of memory");
	s->dirfd = -1;
	ret = snapshot__load(dir, s, err);
	if (ret < 0) {
		free(s);
		return ret;
	}
	if (strcmp(s->id, f->h->template_id) || s->hdr.backend != f->h->backend ||
	    s->hdr.mem_size != f->h->mem_size)
		ret = err__set(err, -EBADMSG, "the template that came (id %s) is not the one the "
			       "stream names (id %s)", s->id, f->h->template_id);
	if (ret == 0 && s->layers.n_layers != f->n_layers)
		ret = err__set(err, -EBADMSG, "the template that came has %u layers, not %u",
			       s->layers.n_layers, f->n_layers);
	for (uint32_t i = 0; ret == 0 && i < f->n_layers; i++)
		if (memcmp(s->layers.layers[i].id, f->tl[i].id, 16) ||
		    s->layers.layers[i].size != f->tl[i].size)
			ret = err__set(err, -EBADMSG, "the template's layer %u is not the one announced", i);
	if (ret == 0)
		ret = snap_image__verify(s, &bad, err);
	for (unsigned i = 0; ret == 0 && i < s->layers.n_layers; i++) {
		struct sbfs_map lm;
		char rel[64];
		int fd = snapshot__open_layer(s, i, err);

		snapshot__layer_path(s, i, rel, sizeof(rel));
		ret = fd < 0 ? fd : sbfs_map__fd(&lm, fd, rel, err);
		if (ret == 0) {
			ret = sbfs__verify(lm.map, lm.size, err);
			if (ret == 0 && memcmp(lm.fs.h.id, f->tl[i].id, 16))
				ret = err__set(err, -EBADMSG, "%s is another image", rel);
			sbfs_map__close(&lm);
		}
	}
	snapshot__close(s);
	free(s);
	if (ret < 0) {
		struct sb_err e = *err;
		return err__set(err, ret, "the template sent is damaged: %s", e.msg);
	}
	return 0;
}

/* Where it goes: the source's name if free, else NAME-<12 hex of its id>. */
static int fetch__name(const struct store *st, const struct mig_hello *h, char *name,
		       size_t name_len, struct sb_err *err)
{
	char path[PATH_MAX];
	struct stat sb;
	struct sb_err e = { "" };

	for (int k = 0; k < 2; k++) {
		if (k == 0)
			snprintf(name, name_len, "%s", h->template_name);
		else
			snprintf(name, name_len, "%.48s-%.12s",
				 store__check_name(h->template_name, &e) == 0 ? h->template_name
									      : "migrated",
				 h->template_id);
		if (store__check_name(name, &e) < 0 || store__path(st, name, path, sizeof(path), &e) < 0)
			continue;
		if (lstat(path, &sb) < 0 && errno == ENOENT)
			return 0;
	}
	return err__set(err, -EEXIST, "template %s (id %s) is not in the destination's store, and "
			"both %s and %s there are other templates", h->template_name, h->template_id,
			h->template_name, name);
}

int mig__fetch_template(struct mig_reader *r, int conn, const struct store *st,
			const struct mig_hello *h, char *name, size_t name_len, struct sb_err *err)
{
	struct fetch f = { .st = st, .h = h, .dirfd = -1, .fd = -1 };
	char tmp[PATH_MAX];
	int ret = fetch__name(st, h, name, name_len, err);

	if (ret < 0)
		return ret;
	ret = store__begin(st, name, tmp, sizeof(tmp), err);
	if (ret < 0)
		return ret;
	f.dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f.dirfd < 0 || mkdirat(f.dirfd, "layers", 0755) < 0) {
		ret = err__errno(err, "%s", tmp);
		goto out;
	}
	ret = mig__write_rec(conn, MIG_REC_NEED, 0, NULL, 0);
	if (ret < 0) {
		err__set(err, ret, "answering the source: %s", strerror(-ret));
		goto out;
	}
	ret = fetch__body(&f, r, conn, err);
	(void)close_file(&f, err);
	/* the layers it has already: linked in (as template create does) */
	for (uint32_t i = 0; ret == 0 && i < f.n_layers; i++)
		if (!(f.want & (1ULL << i)))
			ret = store__link_image(st, f.dirfd, f.tl[i].id, err);
	if (ret == 0)
		ret = fetch__verify(&f, tmp, err);
	/* the new layer images into images/ (content-addressed: hard links) */
	for (uint32_t i = 0; ret == 0 && i < f.n_layers; i++) {
		char hex[33], rel[64], path[PATH_MAX + 64];

		if (!(f.want & (1ULL << i)))
			continue;
		sbfs__id_hex(f.tl[i].id, hex);
		snprintf(rel, sizeof(rel), "layers/%s.sbfs", hex);
		snprintf(path, sizeof(path), "%s/images/%s.sbfs", st->root, hex);
		if (linkat(f.dirfd, rel, AT_FDCWD, path, 0) < 0 && errno != EEXIST)
			ret = err__errno(err, "link %s into %s/images", rel, st->root);
	}
	if (ret == 0)
		ret = store__commit(st, name, tmp, false, err);
out:
	if (f.fd >= 0)
		close(f.fd);
	if (f.dirfd >= 0)
		close(f.dirfd);
	if (ret < 0)
		store__discard(tmp);
	return ret;
}
