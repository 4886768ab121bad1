/* SPDX-License-Identifier: MIT */
/* What the snapbox subcommands share: options, exit codes, messages. */
#ifndef SB_CLI_H
#define SB_CLI_H
#include <stdbool.h>
#include <stdint.h>

#include "launcher/boot.h"
#include "common/err.h"
#include "sbfs/layers.h"
#include "snapshot/format.h"

#define SNAPBOX_VERSION "0.1.0"

#define EXIT_USAGE   2
#define EXIT_TIMEOUT 124
#define EXIT_SNAPBOX 125
#define EXIT_NOEXEC  127

#define DEFAULT_MEM (256ULL << 20)

struct machine;
struct machine_opts;
struct jail_config;

/* --jail, --mem-max, --cpu-max (proc backend; boot, template create, run) */
struct jail_opts {
	int layers;               /* JAIL_* (backend/proc/jail.h); -1: default (all that work) */
	uint64_t mem_max;         /* bytes, 0: none */
	uint32_t cpu_max;         /* % of one CPU, 0: none */
	bool mem_max_set, cpu_max_set, any; /* else the defaults; any: one was given */
};
#define MAX_ENV 1024

struct boot_opts {
	uint64_t mem;
	const char *rootfs_dirs[64];
	unsigned n_rootfs;
	uint64_t timeout_ns;
	bool trace;
	bool stats;
	const char *kernel;
	const char *initrd;
	bool no_python;           /* --no-python: no Python layer in the stack */
	char *env[MAX_ENV];
	unsigned n_env;
	char **argv;
	unsigned argc;
	/* template create */
	const char *name;
	const char *store;
	bool force;
	bool private_rootfs;      /* --private-rootfs: no overlays, every page in mem.img */
	const char *warmup_request; /* --warmup-request FILE: record the write set, or NULL */
	const char *backend;      /* "kvm", "proc", "auto" (NULL: auto) */
	struct jail_opts jail;
	struct snap_policy policy; /* --recycle (all zero: not set) */
};

enum boot_mode { MODE_BOOT, MODE_TEMPLATE };

/* A prepared boot: layers open (and built), program checked, kernel loaded. */
struct boot_prep {
	struct boot_params bp;
	struct layer_set layers;
	uint8_t *kernel;
	char kernel_path[4096];
	char prog[4096];
};

uint64_t now_ns(void);
void jail_opts__init(struct jail_opts *j);
/* One of --jail/--mem-max/--cpu-max (which: 'J', 'M', 'C'): -1 or EXIT_USAGE. */
int jail_opts__parse(struct jail_opts *j, int which, const char *arg);
/* The machine options for a sandbox of mem_size on backend be (jc, mo: the
 * caller's storage).  EXIT_USAGE (message printed) if jail options were given
 * for a backend that has no jail, else -1. */
int jail_opts__machine(const struct jail_opts *j, const char *backend, uint64_t mem_size,
		       struct jail_config *jc, struct machine_opts *mo);
/* --stats: the jail the machine's sandbox got (proc only). */
void jail_opts__stats(const struct machine *m);
int usage_error(const char *fmt, const char *arg);
int fail(const struct sb_err *err, int status);
/* -1: go on; else an exit status (usage error or --help). */
int parse_boot_opts(struct boot_opts *o, int argc, char **argv, enum boot_mode mode);
/* -1: ready; else an exit status (message printed). */
int prepare_boot(struct boot_opts *o, struct boot_prep *bp);
void boot_prep__free(struct boot_prep *bp);

int cmd_template(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_run(int argc, char **argv, uint64_t t0);
#endif
