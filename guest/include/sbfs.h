/* SPDX-License-Identifier: MIT */
/*
 * sbfs: snapbox's read-only root file system layer image.  One file per
 * layer, named by its content (<id>.sbfs, id = xxh3-128 of the image with
 * the id field zero), mapped read-only into the guest (kvm: a read-only
 * memory slot; proc: a read-only file mapping) at SB_IMG_GPA and read by the
 * guest kernel in place: no index in guest RAM.
 *
 * Layout (little endian; offsets in bytes from the start of the file):
 *
 *   [0, 4096)   struct sbfs_header (the rest of the page is zero)
 *   inodes      struct sbfs_inode[n_inodes], inode 0 = the root directory,
 *               the others in byte order of their full path
 *   dirents     struct sbfs_dirent[n_dirents]: each directory's entries are
 *               contiguous (inode.data_off = first, inode.size = count) and
 *               sorted by name (bytes); every inode but the root is named by
 *               exactly one entry
 *   hash        uint32_t[hash_buckets]: inode + 1, or 0 = empty.  Bucket
 *               sbfs_path_hash(path) & (hash_buckets - 1), linear probing;
 *               hash_buckets is a power of two > n_inodes (the builder
 *               takes >= 2 * n_inodes)
 *   names       every inode's full path (no leading '/'; "" for the root),
 *               then symlink targets; not NUL-terminated.  A dirent's name
 *               is the tail of its inode's path.
 *   [data_off, image_size)  file contents: each regular file starts on a
 *               4 KiB page and is zero-padded to one (so a page-aligned
 *               mmap of any file is a run of image pages); identical
 *               contents are stored once.
 *
 * Everything is deterministic: paths sorted, modes and mtimes from the
 * source tree, nothing from the build clock; the same tree gives the same
 * bytes and so the same id.  Readers trust nothing: sbfs_open() checks the
 * header (every table inside the file, disjoint, before the data), and
 * every access below checks the index or offset it uses.  The host checks
 * a whole image (every inode, entry, bucket, data range and the id) with
 * sbfs__verify() (sbfs/check.c) before it imports it into a store.
 */
#ifndef SBFS_H
#define SBFS_H
#include <stddef.h>
#include <stdint.h>

#define SBFS_MAGIC "SBFSIMG1"
#define SBFS_MAJOR 1
#define SBFS_MINOR 0
#define SBFS_PAGE 4096u
#define SBFS_NONE 0xffffffffu
#define SBFS_MAX_INODES (1u << 24)
#define SBFS_PATH_MAX 4095u      /* a path or symlink target, in bytes */
#define SBFS_LINK_HOPS 8         /* symbolic links followed in one lookup */

#define SBFS_F_SYMLINKS (1u << 0) /* some inode is a symlink: a miss may be
				     hidden behind a symlinked directory */
#define SBFS_F_KNOWN SBFS_F_SYMLINKS

/* st_mode types an image holds */
#define SBFS_S_IFMT  0170000u
#define SBFS_S_IFDIR 0040000u
#define SBFS_S_IFREG 0100000u
#define SBFS_S_IFLNK 0120000u
/* getdents64 d_type */
#define SBFS_DT_DIR 4
#define SBFS_DT_REG 8
#define SBFS_DT_LNK 10

struct sbfs_header {
	char magic[8];          /* SBFS_MAGIC */
	uint32_t major, minor;  /* SBFS_MAJOR (a reader refuses another), SBFS_MINOR */
	uint64_t image_size;    /* = the file's size, a multiple of SBFS_PAGE */
	uint64_t inodes_off;
	uint32_t n_inodes;      /* 1..SBFS_MAX_INODES */
	uint32_t inode_size;    /* sizeof(struct sbfs_inode) */
	uint64_t dirents_off;
	uint32_t n_dirents;     /* n_inodes - 1 */
	uint32_t dirent_size;   /* sizeof(struct sbfs_dirent) */
	uint64_t names_off;
	uint64_t names_size;    /* < 4 GiB (32-bit offsets) */
	uint64_t hash_off;
	uint32_t hash_buckets;
	uint32_t flags;         /* SBFS_F_* */
	uint64_t data_off;      /* page-aligned; the tables lie in [SBFS_PAGE, data_off) */
	uint8_t id[16];         /* xxh3-128 of the image with these 16 bytes zero,
				   canonical (big-endian) form: the file's name */
	uint8_t reserved[16];   /* zero */
};
_Static_assert(sizeof(struct sbfs_header) == 128, "sbfs_header size");
_Static_assert(__builtin_offsetof(struct sbfs_header, id) == 96, "sbfs_header id");

struct sbfs_inode {
	uint32_t mode;          /* st_mode: SBFS_S_IFDIR/IFREG/IFLNK | permissions */
	uint32_t nlink;         /* files and links 1; directories 2 + subdirectories */
	uint64_t size;          /* file: bytes; symlink: target length; dir: entries */
	uint64_t data_off;      /* file: page-aligned image offset (0 if empty);
				   symlink: names offset of the target;
				   dir: index of its first dirent */
	int64_t mtime;          /* seconds since the epoch, from the source */
	uint32_t path_off;      /* names offset of the full path */
	uint32_t path_len;
	uint32_t parent;        /* the directory holding it (root: 0) */
	uint32_t reserved0;     /* zero */
	uint64_t xxh3;          /* file: xxh3-64 of its contents; else 0 */
	uint64_t reserved1;     /* zero */
};
_Static_assert(sizeof(struct sbfs_inode) == 64, "sbfs_inode size");

struct sbfs_dirent {
	uint32_t inode;
	uint32_t name_off;      /* names offset (the tail of the inode's path) */
	uint16_t name_len;      /* 1..255, no '/', not "." or ".." */
	uint8_t d_type;         /* SBFS_DT_* of the inode's mode */
	uint8_t pad[5];         /* zero */
};
_Static_assert(sizeof(struct sbfs_dirent) == 16, "sbfs_dirent size");

/* FNV-1a 64 of a full path (no leading '/'). */
static inline uint64_t sbfs_path_hash(const char *s, uint64_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (uint64_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
	return h;
}

/* ---- the reader (guest/lib/sbfs.c: freestanding, shared by the guest
 * kernel and the host) ---------------------------------------------------- */

enum sbfs_err {
	SBFS_OK = 0,
	SBFS_ESHORT = -1,     /* shorter than its header, or than image_size */
	SBFS_EMAGIC = -2,     /* not an sbfs image */
	SBFS_EVERSION = -3,   /* another major version, or unknown flags */
	SBFS_EHEADER = -4,    /* sizes, counts or reserved bytes make no sense */
	SBFS_ETABLES = -5,    /* a table outside [SBFS_PAGE, data_off) or overlapping another */
	SBFS_ECORRUPT = -6,   /* an inode, entry or offset the lookup met is out of range */
};
const char *sbfs_strerror(int err);

/* An image in memory whose header passed sbfs_open(). */
struct sbfs {
	const uint8_t *base;
	uint64_t size;
	struct sbfs_header h;   /* a copy: the checks and the uses see the same */
};

/* Check the header of the image at base (size bytes mapped): 0 or SBFS_E*. */
int sbfs_open(struct sbfs *fs, const void *base, uint64_t size);

/* Inode ino, copied out: 0, or SBFS_ECORRUPT if out of range. */
int sbfs_inode(const struct sbfs *fs, uint32_t ino, struct sbfs_inode *out);

/* len bytes at off in the names table, or NULL if that is outside it. */
const char *sbfs_name(const struct sbfs *fs, uint64_t off, uint64_t len);

/* Exact lookup of a normalised path (no leading '/', no symlinks followed):
 * the inode number, or SBFS_NONE (absent, or a damaged table). */
uint32_t sbfs_lookup(const struct sbfs *fs, const char *path, uint64_t len, struct sbfs_inode *out);

/* A regular file's bytes: 0 with *data set, or SBFS_ECORRUPT. */
int sbfs_file(const struct sbfs *fs, const struct sbfs_inode *n, const uint8_t **data);

/* A symlink's target: 0, or SBFS_ECORRUPT. */
int sbfs_link(const struct sbfs *fs, const struct sbfs_inode *n, const char **target);

/* Entry i (< dir->size) of a directory: 0 with *e copied and *name set, or
 * SBFS_ECORRUPT. */
int sbfs_dirent(const struct sbfs *fs, const struct sbfs_inode *dir, uint64_t i,
		struct sbfs_dirent *e, const char **name);

/*
 * Lexically normalise in (relative to the root; a leading '/' is ignored):
 * "", ".", empty components and ".." resolved without following links.
 * out gets at most cap bytes including the NUL.  0, or -36 (ENAMETOOLONG).
 */
int sbfs_normalize(const char *in, size_t in_len, char *out, size_t cap);

/*
 * The union of n layers (layers[n - 1] on top): a path resolves in the
 * highest layer that has it.  sbfs_resolve() looks up the normalised path
 * in path[] (cap bytes, rewritten as links are followed; tmp[] is scratch of
 * the same size), following symlinks in every component (absolute targets
 * from the root, relative ones from the link's directory, at most
 * SBFS_LINK_HOPS) and in the last one too when follow_last.  0 with *hit
 * set and path[] the resolved path, or a negative Linux errno: -2 ENOENT,
 * -20 ENOTDIR (a component is a file), -36 ENAMETOOLONG, -40 ELOOP, -5 EIO
 * (a damaged image).
 */
struct sbfs_hit {
	uint32_t layer;         /* index into layers[] */
	uint32_t ino;
	struct sbfs_inode n;
};
int sbfs_resolve(const struct sbfs *layers, unsigned n, char *path, char *tmp, size_t cap,
		 int follow_last, struct sbfs_hit *hit);
#endif /* SBFS_H */
