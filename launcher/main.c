/* SPDX-License-Identifier: MIT */
/* snapbox command line.  The only place that prints usage or exits. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "launcher/boot.h"
#include "common/file.h"
#include "backend/backend.h"
#include "backend/proc/jail.h"
#include "backend/proc/proc.h"
#include "snapshot/format.h"
#include "snapshot/policy.h"
#include "snapbox_abi.h"

#include "launcher/cli.h"
#include "launcher/client.h"
#include "launcher/serve.h"

static const char usage_text[] =
	"usage: snapbox boot [OPTIONS] -- PROGRAM [ARGS...]\n"
	"       snapbox template create NAME [OPTIONS] [--store DIR] [--force]\n"
	"                       [--recycle off|on[,max=N][,idle=D]] [--private-rootfs]\n"
	"                       [--warmup-request FILE] -- PROGRAM [ARGS...]\n"
	"       snapbox template ls|inspect|verify|rm [NAME] [--store DIR]\n"
	"       snapbox run [--store DIR] [--timeout S] [--stats] [--backend B]\n"
	"                   [--jail ...] [--mem-max SIZE] [--cpu-max PCT] TEMPLATE < request\n"
	"       snapbox image build DIR -o FILE | image inspect|verify FILE\n"
	"       snapbox info\n"
	"       snapbox run --server SOCKET [--timeout S] TEMPLATE < request\n"
	"       snapbox serve --socket PATH [--store DIR] [--pool N] [--max-live N]\n"
	"                     [--recycle off|on[,max=N][,idle=D]] [--pre-cloned N]\n"
	"                     [--log-level error|info|debug] [--listen-migration tcp:HOST:PORT|unix:PATH]\n"
	"       snapbox ps [--server SOCKET]\n"
	"       snapbox kill [--server SOCKET] ID\n"
	"       snapbox migrate [--server SOCKET] [--downtime-ms N] ID tcp:HOST:PORT|unix:PATH\n"
	"       snapbox resize [--server SOCKET] ID [--mem SIZE] [--cpu CPUS]\n"
	"                      [--free-page-reporting on|off]\n"
	"       snapbox --help | --version\n"
	"\n"
	"Boot a microVM that runs one static x86-64 Linux program from the root\n"
	"file system.  Our stdin is its fd 0, its fd 1/2 are our stdout/stderr.\n"
	"\n"
	"boot options:\n"
	"  --mem SIZE          guest RAM, e.g. 512M, 1G (default 256M)\n"
	"  --rootfs DIR        add DIR's files on top of the root file system: a layer\n"
	"                      each, the last on top (at most 6; 7 with --no-python)\n"
	"  --timeout SECONDS   stop the VM after this long (exit status 124; 0: none)\n"
	"  --trace-syscalls    print each guest system call to stderr\n"
	"  --kernel FILE       guest kernel ELF (default <snapbox dir>/guest/kernel.elf)\n"
	"  --base FILE         the base layer, an sbfs image (default <snapbox dir>/guest/base.sbfs;\n"
	"                      --initrd FILE is the same)\n"
	"  --no-python         leave out the Python layer (<snapbox dir>/guest/python3.11.sbfs:\n"
	"                      Debian's python3 and its libraries, stacked on the base\n"
	"                      layer, under the --rootfs layers, when it is there)\n"
	"  --env KEY=VAL       set a guest environment variable (repeatable;\n"
	"                      defaults: PATH=/bin:/usr/bin HOME=/)\n"
	"  --stats             print timings to stderr\n"
	"  --backend B         boot, template create: kvm (a VM), proc (a seccomp-\n"
	"                      confined process, no /dev/kvm needed) or auto (the\n"
	"                      default: kvm if /dev/kvm is usable, else proc)\n"
	"  --jail on|off|LIST  proc (boot, template create, run): namespaces (user, pid,\n"
	"                      mnt, net) and a cgroup per sandbox process; default: every\n"
	"                      layer that works here (all of them as root, none otherwise;\n"
	"                      --stats and `snapbox info` say which); LIST: layers from\n"
	"                      user,pid,mnt,net,cgroup\n"
	"  --mem-max SIZE      proc jail: the sandbox's cgroup memory limit\n"
	"                      (default: guest RAM + 64M; 0: none)\n"
	"  --cpu-max PERCENT   proc jail: its CPU limit, % of one CPU (default 100; 0: none)\n"
	"\n"
	"template create boots PROGRAM and saves it at its ready point (its first\n"
	"read of stdin) as template NAME in the store (--store, else $SNAPBOX_STORE,\n"
	"$XDG_DATA_HOME/snapbox, or /var/lib/snapbox).  run clones a sandbox from a\n"
	"template (a NAME, or a path to a template directory), hands it our stdin as\n"
	"its request and resumes it.\n"
	"\n"
	"--recycle (template create: the template's policy, kept in it; serve: the\n"
	"default for templates that have none, else off): may the service keep a\n"
	"sandbox whose program exited by itself, reset it to the template, and\n"
	"serve the template's next run with it?  off, or on with at most max=N\n"
	"reuses (default: no limit) and the worker ending after idle=D unused\n"
	"(500ms, 30s, 5m; default 60s).  template create --recycle default: not\n"
	"set (the same as leaving it out).  `template inspect` shows it.\n"
	"\n"
	"template create keeps RAM pages that are pages of a root file system layer\n"
	"(a program's text and read-only data) out of mem.img: clones map them from\n"
	"the layer image (overlays), shared by every template of that layer.\n"
	"--private-rootfs stores them in the template instead (no page cache shared\n"
	"with other templates).\n"
	"\n"
	"--warmup-request FILE (template create): after the save, run FILE as a\n"
	"training request in a throwaway clone and record the guest pages it wrote\n"
	"(the template's write set, `template inspect` shows it): the service's\n"
	"pre-cloned sandboxes make those pages their own before a request comes,\n"
	"so it takes no copy-on-write fault there.  Default: no training (an empty\n"
	"write set; pre-cloned sandboxes are still kept).\n"
	"\n"
	"serve runs the launcher service in the foreground: an HTTP/1.1 + JSON API\n"
	"on a Unix socket (docs/API.md) that clones sandboxes in worker processes,\n"
	"keeping --pool ready workers per RAM size (default 2) and at most\n"
	"--max-live sandboxes at once (default 64).  run --server, ps and kill talk\n"
	"to it (SOCKET: --server, else $SNAPBOX_SOCKET, else /run/snapbox.sock).\n"
	"For each template run in the last idle period (60 s, or its --recycle\n"
	"idle=) it keeps --pre-cloned sandboxes (default 1, 0: none): cloned, the\n"
	"template's write set (--warmup-request) pre-faulted, waiting for its next\n"
	"request.\n"
	"\n"
	"image build makes a read-only root file system layer (sbfs) of DIR, the\n"
	"same bytes for the same tree; image verify checks one completely.\n"
	"\n"
	"exit status: the program's; 124 timeout; 125 snapbox or VM error;\n"
	"127 program cannot be executed; 128+N program killed by signal N.\n";

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "snapbox: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see 'snapbox --help')\n");
	return EXIT_USAGE;
}

int fail(const struct sb_err *err, int status)
{
	fprintf(stderr, "snapbox: %s\n", err->msg);
	return status;
}

/* ---- options ------------------------------------------------------------ */

static int parse_timeout(const char *s, uint64_t *ns)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9)
		return -EINVAL;
	*ns = (uint64_t)(v * 1e9); /* 0: no timeout */
	return 0;
}

/* Replace KEY=... if present, else append. */
static int env_set(struct boot_opts *o, char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv);

	for (unsigned i = 0; i < o->n_env; i++) {
		if (strncmp(o->env[i], kv, klen) == 0 && o->env[i][klen] == '=') {
			o->env[i] = kv;
			return 0;
		}
	}
	if (o->n_env == MAX_ENV)
		return -E2BIG;
	o->env[o->n_env++] = kv;
	return 0;
}

enum { OPT_MEM = 256, OPT_ROOTFS, OPT_TIMEOUT, OPT_TRACE, OPT_KERNEL, OPT_INITRD, OPT_ENV,
       OPT_STATS, OPT_HELP, OPT_STORE, OPT_FORCE, OPT_BACKEND, OPT_JAIL, OPT_MEM_MAX,
       OPT_CPU_MAX, OPT_RECYCLE, OPT_PRIVATE_ROOTFS, OPT_NO_PYTHON,
       OPT_WARMUP };

static const struct option boot_longopts[] = {
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "trace-syscalls", no_argument, NULL, OPT_TRACE },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "base", required_argument, NULL, OPT_INITRD },
	{ "no-python", no_argument, NULL, OPT_NO_PYTHON },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "jail", required_argument, NULL, OPT_JAIL },
	{ "mem-max", required_argument, NULL, OPT_MEM_MAX },
	{ "cpu-max", required_argument, NULL, OPT_CPU_MAX },
	{ "recycle", required_argument, NULL, OPT_RECYCLE },
	{ "private-rootfs", no_argument, NULL, OPT_PRIVATE_ROOTFS },
	{ "warmup-request", required_argument, NULL, OPT_WARMUP },
	{ NULL, 0, NULL, 0 },
};

/* --recycle VALUE into *p ("default" too for a template): -1, or EXIT_USAGE
 * with one line said. */
static int recycle_option(const char *arg, bool allow_default, struct snap_policy *p)
{
	struct sb_err err = { "" };
	char msg[sizeof(err.msg) + 100];

	if (snap_policy__parse(arg, allow_default, p, &err) == 0)
		return -1;
	snprintf(msg, sizeof(msg), "--recycle %.64s: %s", arg, err.msg);
	return usage_error("%s", msg);
}

void jail_opts__init(struct jail_opts *j)
{
	memset(j, 0, sizeof(*j));
	j->layers = -1;
}

int jail_opts__parse(struct jail_opts *j, int which, const char *arg)
{
	static const char *const names[] = { "user", "pid", "mnt", "net", "cgroup" };
	struct sb_err err;

	j->any = true;
	switch (which) {
	case 'J':
		if (!strcmp(arg, "on") || !strcmp(arg, "off")) {
			j->layers = strcmp(arg, "on") == 0 ? JAIL_ALL : 0;
			return -1;
		}
		j->layers = 0;
		for (const char *p = arg; *p;) {
			size_t n = strcspn(p, ",");
			int i;

			for (i = 0; i < 5; i++)
				if (strlen(names[i]) == n && !strncmp(p, names[i], n))
					break;
			if (i == 5)
				return usage_error("--jail %s: expected on, off or layers from "
						   "user,pid,mnt,net,cgroup", arg);
			j->layers |= 1 << i;
			p += n + (p[n] == ',');
		}
		return -1;
	case 'M':
		j->mem_max_set = true;
		j->mem_max = 0;
		if (strcmp(arg, "0") && boot__parse_mem(arg, &j->mem_max, &err) < 0)
			return usage_error("--mem-max: %s", err.msg);
		return -1;
	default: {
		char *end;
		unsigned long v = strtoul(arg, &end, 10);

		if (end == arg || *end || arg[0] == '-' || v > 100000)
			return usage_error("--cpu-max %s: expected a percentage of one CPU (0: none)", arg);
		j->cpu_max = (uint32_t)v;
		j->cpu_max_set = true;
		return -1;
	}
	}
}

int jail_opts__machine(const struct jail_opts *j, const char *backend, uint64_t mem_size,
		       struct jail_config *jc, struct machine_opts *mo)
{
	memset(mo, 0, sizeof(*mo));
	if (strcmp(backend, "proc")) {
		if (j->any)
			return usage_error("--jail, --mem-max and --cpu-max are for the proc backend, "
					   "not %s", backend);
		return -1;
	}
	jail__default_config(jc);
	if (j->layers >= 0)
		jc->layers = (unsigned)j->layers;
	jc->mem_max = j->mem_max_set ? j->mem_max : mem_size + (64ULL << 20);
	jc->cpu_max_pct = j->cpu_max_set ? j->cpu_max : 100;
	mo->jail = jc;
	return -1;
}

void jail_opts__stats(const struct machine *m)
{
	char d[1024];

	if (strcmp(m->be->name, "proc"))
		return;
	proc__describe_jail(m, d, sizeof(d));
	fprintf(stderr, "stats: jail: %s\n", d);
}

/* Returns -1 to go on, else an exit status. */
static int boot_option(struct boot_opts *o, int c, char *arg, char *bad, enum boot_mode mode)
{
	struct sb_err err;

	if ((c == OPT_STORE || c == OPT_FORCE || c == OPT_RECYCLE || c == OPT_PRIVATE_ROOTFS ||
	     c == OPT_WARMUP) &&
	    mode != MODE_TEMPLATE)
		return usage_error("unknown option %s", bad);
	switch (c) {
	case OPT_STORE: o->store = arg; return -1;
	case OPT_BACKEND:
		if (strcmp(arg, "kvm") != 0 && strcmp(arg, "proc") != 0 && strcmp(arg, "auto") != 0)
			return usage_error("--backend %s: expected kvm, proc or auto", arg);
		o->backend = arg;
		return -1;
	case OPT_FORCE: o->force = true; return -1;
	case OPT_PRIVATE_ROOTFS: o->private_rootfs = true; return -1;
	case OPT_WARMUP: o->warmup_request = arg; return -1;
	case OPT_RECYCLE: return recycle_option(arg, true, &o->policy);
	case OPT_JAIL: return jail_opts__parse(&o->jail, 'J', arg);
	case OPT_MEM_MAX: return jail_opts__parse(&o->jail, 'M', arg);
	case OPT_CPU_MAX: return jail_opts__parse(&o->jail, 'C', arg);
	case OPT_MEM:
		if (boot__parse_mem(arg, &o->mem, &err) < 0)
			return usage_error("%s", err.msg);
		return -1;
	case OPT_ROOTFS:
		if (o->n_rootfs == SB_MAX_LAYERS - 1)
			return usage_error("too many --rootfs options (at most %s: each is a layer)", "7");
		o->rootfs_dirs[o->n_rootfs++] = arg;
		return -1;
	case OPT_TIMEOUT:
		if (parse_timeout(arg, &o->timeout_ns) < 0)
			return usage_error("--timeout %s: expected a number of seconds (0: none)", arg);
		return -1;
	case OPT_TRACE: o->trace = true; return -1;
	case OPT_KERNEL: o->kernel = arg; return -1;
	case OPT_INITRD: o->initrd = arg; return -1;
	case OPT_NO_PYTHON: o->no_python = true; return -1;
	case OPT_STATS: o->stats = true; return -1;
	case OPT_ENV:
		if (!strchr(arg, '=') || arg[0] == '=')
			return usage_error("--env %s: expected KEY=VALUE", arg);
		if (env_set(o, arg) < 0)
			return usage_error("too many --env options%s", "");
		return -1;
	case OPT_HELP:
		fputs(usage_text, stdout);
		return 0;
	case ':':
		return usage_error("option %s needs an argument", bad);
	default:
		return usage_error("unknown option %s", bad);
	}
}

int parse_boot_opts(struct boot_opts *o, int argc, char **argv, enum boot_mode mode)
{
	static char path_env[] = "PATH=/bin:/usr/bin", home_env[] = "HOME=/";
	int c;

	memset(o, 0, sizeof(*o));
	o->mem = DEFAULT_MEM;
	jail_opts__init(&o->jail);
	o->env[o->n_env++] = path_env;
	o->env[o->n_env++] = home_env;
	optind = 1;
	opterr = 0;
	/* template create: options anywhere before the program ("-": the name
	 * comes back as c == 1, in order); the first word after it, or after
	 * "--", starts the program, whose own options are its business */
	while ((c = getopt_long(argc, argv, mode == MODE_TEMPLATE ? "-:" : "+:", boot_longopts,
				NULL)) != -1) {
		int ret;

		if (c == 1 && !o->name) {
			o->name = optarg;
			continue;
		}
		if (c == 1) {
			optind--;
			break;
		}
		/* an option given as "--opt VALUE" is named by the word before VALUE */
		ret = boot_option(o, c, optarg,
				  optarg && optind >= 2 && optarg == argv[optind - 1] ? argv[optind - 2]
										     : argv[optind - 1],
				  mode);
		if (ret >= 0)
			return ret;
	}
	if (mode == MODE_TEMPLATE && !o->name)
		return usage_error("template create: no name given (snapbox template create NAME [OPTIONS] -- PROGRAM [ARGS...])%s", "");
	if (optind >= argc)
		return usage_error("boot: no program given (snapbox boot [OPTIONS] -- PROGRAM [ARGS...])%s", "");
	o->argv = argv + optind;
	o->argc = (unsigned)(argc - optind);
	return -1;
}

/* ---- boot --------------------------------------------------------------- */

/* The Python layer, when it was built (make): Debian's CPython and its
 * libraries, over the base layer (which it does not change: it only adds
 * /usr, /lib, /lib64 and some files in /etc). */
static int add_python_layer(struct layer_set *ls, struct sb_err *err)
{
	char path[PATH_MAX];
	int ret = file__exe_relative("guest/python3.11.sbfs", path, sizeof(path), err);

	if (ret == 0 && access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	return ret < 0 ? ret : layers__add_file(ls, path, "python3.11", err);
}

/* The base layer, the Python layer (unless --no-python), then a layer per
 * --rootfs DIR (built here, in memory). */
static int load_layers(const struct boot_opts *o, struct layer_set *ls, struct sb_err *err)
{
	char path[PATH_MAX];
	int ret;

	if (!o->initrd) {
		ret = file__exe_relative("guest/base.sbfs", path, sizeof(path), err);
		if (ret < 0)
			return ret;
	}
	ret = layers__add_file(ls, o->initrd ? o->initrd : path, o->initrd ? o->initrd : "base", err);
	if (ret == -ENOENT && !o->initrd)
		err__set(err, ret, "%s: no base layer (build it with make, or pass --base FILE)", path);
	if (ret == 0 && !o->no_python)
		ret = add_python_layer(ls, err);
	for (unsigned i = 0; ret == 0 && i < o->n_rootfs; i++)
		ret = layers__add_dir(ls, o->rootfs_dirs[i], err);
	return ret;
}

static int load_kernel(const struct boot_opts *o, char *path, size_t len, uint8_t **img,
		       uint64_t *size, struct sb_err *err)
{
	int ret = 0;

	if (o->kernel)
		snprintf(path, len, "%s", o->kernel);
	else
		ret = file__exe_relative("guest/kernel.elf", path, len, err);
	if (ret == 0)
		ret = file__read_all(path, img, size, err);
	if (ret == -ENOENT && !o->kernel)
		strncat(err->msg, " (build it with make, or pass --kernel FILE)",
			sizeof(err->msg) - strlen(err->msg) - 1);
	return ret;
}

/* A bare program name is looked up in the guest's PATH, like a shell would. */
static int resolve_program(struct boot_opts *o, const struct layer_set *ls, char *buf, size_t len)
{
	const char *pathvar = "/bin:/usr/bin";

	if (strchr(o->argv[0], '/'))
		return 0;
	for (unsigned i = 0; i < o->n_env; i++)
		if (strncmp(o->env[i], "PATH=", 5) == 0)
			pathvar = o->env[i] + 5;
	if (layers__which(ls, o->argv[0], pathvar, buf, len) == 0)
		o->argv[0] = buf;
	return 0;
}

static int status_for_check(int ret)
{
	switch (ret) {
	case -ENOENT: case -EISDIR: case -ENOEXEC: case -ELOOP: case -EACCES:
		return EXIT_NOEXEC;
	}
	return EXIT_SNAPBOX;
}

static void print_stats(uint64_t t0, uint64_t t_vm, const struct hc_ctx *hc, uint64_t t_end)
{
	char calls[512];
	long long to_user = -1;

	if (hc->user_started) {
		uint64_t t_user = (uint64_t)hc->user_start.tv_sec * 1000000000ULL +
				  (uint64_t)hc->user_start.tv_nsec;
		to_user = (long long)(t_user - t_vm) / 1000;
	}
	fprintf(stderr, "stats: create_vm_us=%llu boot_to_user_us=%lld total_us=%llu\n",
		(unsigned long long)(t_vm - t0) / 1000, to_user,
		(unsigned long long)(t_end - t0) / 1000);
	fprintf(stderr, "stats: syscall_path=%s: %s\n",
		hypercall__syscall_path_token(hc->st.syscall_path),
		hc->st.syscall_path ? hypercall__syscall_path_text(hc->st.syscall_path)
				    : "the program made no system call");
	hypercall__describe_calls(hc, calls, sizeof(calls));
	fprintf(stderr, "stats: hypercalls: %s\n", calls);
}

static int run_vm(struct boot_opts *o, struct boot_params *bp, uint64_t t0)
{
	struct sb_err err = { "" };
	const struct backend *be = backend__pick(o->backend, &err);
	struct machine *m;
	struct jail_config jc;
	struct machine_opts mo;
	uint64_t entry, t_vm;
	int ret;

	if (!be)
		return fail(&err, EXIT_USAGE);
	ret = jail_opts__machine(&o->jail, be->name, bp->mem_size, &jc, &mo);
	if (ret >= 0)
		return ret;
	m = machine__new_opts(be, bp->mem_size, RAM_ANON, &mo, &err);
	t_vm = now_ns();
	if (!m)
		return fail(&err, EXIT_SNAPBOX);
	m->hc.program = o->argv[0];
	bp->flags |= m->boot_flags;
	ret = machine__map_layers(m, bp->layers, &err);
	if (ret == 0)
		ret = boot__setup(&m->ram, bp, &entry, &m->guest_abi, &err);
	if (ret == 0)
		ret = be->boot(m, entry, SB_BOOTINFO_GPA, &err);
	if (ret == 0)
		ret = timeout__start(&m->timeout, o->timeout_ns, &err);
	if (ret == 0)
		ret = be->run(m, &err);
	timeout__stop(&m->timeout);
	if (o->stats) {
		print_stats(t0, t_vm, &m->hc, now_ns());
		jail_opts__stats(m);
	}
	if (ret < 0)
		ret = fail(&err, EXIT_SNAPBOX);
	else if (err.msg[0])
		fprintf(stderr, "snapbox: %s\n", err.msg);
	machine__free(m);
	return ret;
}

int prepare_boot(struct boot_opts *o, struct boot_prep *p)
{
	struct sb_err err = { "" };
	struct sb_elf_info kinfo;
	uint64_t kernel_size = 0;
	int ret;

	memset(p, 0, sizeof(*p));
	layers__init(&p->layers);
	ret = load_layers(o, &p->layers, &err);
	if (ret < 0)
		return fail(&err, EXIT_SNAPBOX);
	resolve_program(o, &p->layers, p->prog, sizeof(p->prog));
	p->bp.mem_size = o->mem;
	p->bp.layers = &p->layers;
	p->bp.argv = o->argv;
	p->bp.argc = o->argc;
	p->bp.envp = o->env;
	p->bp.envc = o->n_env;
	p->bp.flags = o->trace ? SB_BOOT_TRACE_SYSCALLS : 0;
	ret = boot__check_program(&p->bp, &err);
	if (ret < 0)
		return fail(&err, status_for_check(ret));
	ret = load_kernel(o, p->kernel_path, sizeof(p->kernel_path), &p->kernel, &kernel_size, &err);
	p->bp.kernel = p->kernel;
	p->bp.kernel_size = kernel_size;
	p->bp.kernel_path = p->kernel_path;
	if (ret == 0)
		ret = boot__check_kernel(&p->bp, &kinfo, &err);
	if (ret < 0)
		return fail(&err, EXIT_SNAPBOX);
	signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes EPIPE for the guest */
	return -1;
}

void boot_prep__free(struct boot_prep *p)
{
	free(p->kernel);
	layers__free(&p->layers);
}

static int cmd_boot(int argc, char **argv, uint64_t t0)
{
	struct boot_opts *o = malloc(sizeof(*o));
	struct boot_prep *p = malloc(sizeof(*p));
	int ret = EXIT_SNAPBOX;

	if (!o || !p)
		goto out;
	ret = parse_boot_opts(o, argc, argv, MODE_BOOT);
	if (ret >= 0)
		goto out;
	ret = prepare_boot(o, p);
	if (ret < 0)
		ret = run_vm(o, &p->bp, t0);
	boot_prep__free(p);
out:
	free(p);
	free(o);
	return ret;
}

/* ---- info ------------------------------------------------------------------ */

/* Which backends this host can use, and why (or why not). */
static int cmd_info(int argc, char **argv)
{
	struct sb_err err = { "" };
	const struct backend *def;

	(void)argv;
	if (argc > 2)
		return usage_error("info takes no arguments%s", "");
	printf("snapbox %s (guest ABI %d, template format %d.%d)\n", SNAPBOX_VERSION, SB_ABI_VERSION,
	       SNAP_MAJOR, SNAP_MINOR);
	for (size_t i = 0; backend__all[i]; i++) {
		char why[512];
		bool ok = backend__all[i]->available(why, sizeof(why));

		printf("backend %-5s %s: %s\n", backend__all[i]->name, ok ? "usable" : "not usable", why);
	}
	def = backend__pick("auto", &err);
	printf("default (--backend auto): %s\n", def ? def->name : "none");
	{
		char d[1024];

		jail__probe(d, sizeof(d));
		printf("proc jail (per sandbox, --jail): %s\n", d);
	}
	return 0;
}

/* ---- serve ---------------------------------------------------------------- */

static int parse_count(const char *opt, const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < 1 || v > max) {
		fprintf(stderr, "snapbox: %s %s: expected a number from 1 to %u (see 'snapbox --help')\n",
			opt, s, max);
		return EXIT_USAGE;
	}
	*out = (unsigned)v;
	return -1;
}

static int parse_serve_opts(int argc, char **argv, struct serve_opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "store", required_argument, NULL, 'S' },
		{ "pool", required_argument, NULL, 'p' },
		{ "max-live", required_argument, NULL, 'm' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "recycle", required_argument, NULL, 'r' },
		{ "listen-migration", required_argument, NULL, 'L' },
		{ "pre-cloned", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret = -1;
	unsigned npre;

	*o = (struct serve_opts){ NULL, NULL, 2, 64, SERVE_LOG_INFO, { .recycle = SNAP_RECYCLE_OFF }, NULL, 0 };
	optind = 1;
	opterr = 0;
	while (ret < 0 && (c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		if (c == 's')
			o->socket_path = optarg;
		else if (c == 'S')
			o->store = optarg;
		else if (c == 'L')
			o->listen_migration = optarg;
		else if (c == 'p')
			ret = parse_count("--pool", optarg, 64, &o->pool);
		else if (c == 'm')
			ret = parse_count("--max-live", optarg, 512, &o->max_live);
		else if (c == 'P' && !strcmp(optarg, "0"))
			o->precloned = -1;
		else if (c == 'P' && (ret = parse_count("--pre-cloned", optarg, 16, &npre)) < 0)
			o->precloned = (int)npre;
		else if (c == 'r') /* the default itself: off or on */
			ret = recycle_option(optarg, false, &o->recycle);
		else if (c == 'l' && (o->log_level = serve__parse_log_level(optarg)) < 0)
			ret = usage_error("--log-level %s: expected error, info or debug", optarg);
		else if (c == ':')
			ret = usage_error("option %s needs an argument", argv[optind - 1]);
		else if (c == '?')
			ret = usage_error("unknown option %s", argv[optind - 1]);
	}
	if (ret < 0 && optind < argc)
		ret = usage_error("serve: unexpected argument %s", argv[optind]);
	if (ret < 0 && !o->socket_path)
		ret = usage_error("serve: --socket PATH is required%s", "");
	return ret;
}

static int cmd_serve(int argc, char **argv)
{
	struct sb_err err = { "" };
	struct serve_opts o;
	int ret = parse_serve_opts(argc, argv, &o);

	if (ret >= 0)
		return ret;
	if (serve__run(&o, &err) < 0)
		return fail(&err, EXIT_SNAPBOX);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t t0 = now_ns();

	if (argc < 2)
		return usage_error("no command given (try 'snapbox boot -- PROGRAM')%s", "");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "info") == 0)
		return cmd_info(argc, argv);
	if (strcmp(argv[1], "--version") == 0) {
		printf("snapbox %s (guest ABI %d)\n", SNAPBOX_VERSION, SB_ABI_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "boot") == 0)
		return cmd_boot(argc - 1, argv + 1, t0);
	if (strcmp(argv[1], "template") == 0)
		return cmd_template(argc - 1, argv + 1);
	if (strcmp(argv[1], "image") == 0)
		return cmd_image(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1, t0);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "ps") == 0)
		return cmd_ps(argc - 1, argv + 1);
	if (strcmp(argv[1], "kill") == 0)
		return cmd_kill(argc - 1, argv + 1);
	if (strcmp(argv[1], "migrate") == 0)
		return cmd_migrate(argc - 1, argv + 1);
	if (strcmp(argv[1], "resize") == 0)
		return cmd_resize(argc - 1, argv + 1);
	if (argv[1][0] == '-')
		return usage_error("unknown option %s", argv[1]);
	return usage_error("unknown command %s", argv[1]);
}
