/* SPDX-License-Identifier: MIT */
/* What the snapbox subcommands share: options, exit codes, messages. */
#ifndef SB_CLI_H
#define SB_CLI_H
#include <stdbool.h>
#include <stdint.h>

#include "launcher/boot.h"
#include "common/err.h"
#include "launcher/rootfs.h"

#define SNAPBOX_VERSION "0.1.0"

#define EXIT_USAGE   2
#define EXIT_TIMEOUT 124
#define EXIT_SNAPBOX 125
#define EXIT_NOEXEC  127

#define DEFAULT_MEM (256ULL << 20)
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
	char *env[MAX_ENV];
	unsigned n_env;
	char **argv;
	unsigned argc;
	/* template create */
	const char *name;
	const char *store;
	bool force;
	const char *backend;      /* "kvm", "proc", "auto" (NULL: auto) */
};

enum boot_mode { MODE_BOOT, MODE_TEMPLATE };

/* A prepared boot: rootfs built, program checked, kernel loaded. */
struct boot_prep {
	struct boot_params bp;
	struct rootfs fs;
	uint8_t *kernel;
	char kernel_path[4096];
	char prog[4096];
};

uint64_t now_ns(void);
int usage_error(const char *fmt, const char *arg);
int fail(const struct sb_err *err, int status);
/* -1: go on; else an exit status (usage error or --help). */
int parse_boot_opts(struct boot_opts *o, int argc, char **argv, enum boot_mode mode);
/* -1: ready; else an exit status (message printed). */
int prepare_boot(struct boot_opts *o, struct boot_prep *bp);
void boot_prep__free(struct boot_prep *bp);

int cmd_template(int argc, char **argv);
int cmd_run(int argc, char **argv, uint64_t t0);
#endif
