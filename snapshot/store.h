/* SPDX-License-Identifier: MIT */
/*
 * The template store: <root>/templates/<name>/ holds one template;
 * <root>/tmp/ holds templates being written (renamed into place when
 * complete, so a reader never sees half a template); <root>/trash/ holds
 * replaced or removed ones until they are deleted.  Clones map mem.img,
 * so a template in use is never modified: replacing or removing renames
 * the directory away and unlinks it, and mappings keep the old files.
 *
 * <root>/images/<id>.sbfs are the root file system layers templates use,
 * by content (the id is the image's xxh3-128): written once (into a
 * temporary file, checked completely, renamed into place), never modified,
 * hard-linked into each template that uses them (<template>/layers/), so
 * templates with the same layer share one file and its page cache, and a
 * template stays whole on its own.  Removing a template leaves the image
 * (an image only in images/, link count 1, is no template's).
 */
#ifndef SNAP_STORE_H
#define SNAP_STORE_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "sbfs/sbfs_host.h"

struct store {
	char root[PATH_MAX - 256]; /* leaves room for sub-paths */
};

/* root: --store, else $SNAPBOX_STORE, $XDG_DATA_HOME/snapbox, /var/lib/snapbox
 * (root user) or ~/.local/share/snapbox.  Creates the directories. */
int store__open(struct store *st, const char *root, struct sb_err *err);

/* Template names: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
int store__check_name(const char *name, struct sb_err *err);

/* <root>/templates/<name>; or NAME itself if it contains a '/' (a path). */
int store__path(const struct store *st, const char *name, char *out, size_t len,
		struct sb_err *err);

/* A fresh private directory under <root>/tmp for a template being written. */
int store__begin(const struct store *st, const char *name, char *tmp, size_t len,
		 struct sb_err *err);

/* Move tmp into place as <name>: -EEXIST if it exists, unless replace. */
int store__commit(const struct store *st, const char *name, const char *tmp, bool replace,
		  struct sb_err *err);

/* Delete a directory tree we created (tmp, or trash). */
void store__discard(const char *dir);

/* Remove template <name>: -ENOENT if there is none. */
int store__remove(const struct store *st, const char *name, struct sb_err *err);

/* Put the image m (what names it in messages) into <root>/images/<id>.sbfs
 * unless an image of that size and id is there already (then nothing is
 * read or written).  A new one is checked completely first (sbfs__verify). */
int store__put_image(const struct store *st, const struct sbfs_map *m, const char *what,
		     struct sb_err *err);

/* <dirfd>/layers/<id>.sbfs: a hard link of <root>/images/<id>.sbfs (a copy
 * where linking fails, e.g. across file systems). */
int store__link_image(const struct store *st, int dirfd, const uint8_t id[16], struct sb_err *err);

/* Names of the templates, sorted; *names is malloc'd (free each, then it). */
int store__list(const struct store *st, char ***names, size_t *n, struct sb_err *err);
#endif
