/* SPDX-License-Identifier: MIT */
/* snapbox template create|ls|inspect|verify|rm, and snapbox run (a clone). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "launcher/cli.h"
#include "launcher/client.h"
#include "backend/backend.h"
#include "backend/proc/jail.h"
#include "launcher/progress.h"
#include "snapbox_abi.h"
#include "snapshot/policy.h"
#include "snapshot/snapshot.h"
#include "snapshot/store.h"

#define EXIT_DAMAGED 1
#define DEFAULT_CREATE_TIMEOUT_NS (300ULL * 1000000000ULL)

/* ---- template create ------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_strv(FILE *f, char *const *v, unsigned n)
{
	fputc('[', f);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		json_str(f, v[i]);
	}
	fputc(']', f);
}

static int write_manifest(int dirfd, const struct boot_opts *o, const char *id,
			  const struct snap_image_stats *st, const struct machine *m,
			  const struct layer_set *ls, const struct snap_hotset *hs, double boot_ms,
			  double snap_ms, struct sb_err *err)
{
	int fd = openat(dirfd, SNAP_MANIFEST_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	char created[64];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;

	if (fd < 0)
		return err__errno(err, "create %s", SNAP_MANIFEST_FILE);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return err__errno(err, "fdopen %s", SNAP_MANIFEST_FILE);
	}
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "{\n  \"name\": ");
	json_str(f, o->name);
	fprintf(f, ",\n  \"id\": \"%s\",\n  \"format\": \"%d.%d\",\n  \"created\": \"%s\",\n",
		id, SNAP_MAJOR, SNAP_MINOR, created);
	fprintf(f, "  \"program\": ");
	json_strv(f, o->argv, o->argc);
	fprintf(f, ",\n  \"env\": ");
	json_strv(f, o->env, o->n_env);
	fprintf(f, ",\n  \"mem_bytes\": %llu,\n  \"stored_bytes\": %llu,\n",
		(unsigned long long)m->ram.size, (unsigned long long)st->written_bytes);
	fprintf(f, "  \"layers\": [");
	for (unsigned i = 0; i < m->n_layers; i++) {
		char hex[33];

		sbfs__id_hex(m->layers[i].id, hex);
		fprintf(f, "%s\n    {\"id\": \"%s\", \"bytes\": %llu, \"source\": ", i ? "," : "", hex,
			(unsigned long long)m->layers[i].size);
		json_str(f, i == 0 && !o->initrd ? "base" : ls->what[i]);
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n");
	fprintf(f, "  \"pages\": {\"total\": %llu, \"zero\": %llu, \"unique\": %llu, \"dup\": %llu},\n",
		(unsigned long long)st->n_pages, (unsigned long long)st->zero_pages,
		(unsigned long long)st->unique_pages, (unsigned long long)st->dup_pages);
	fprintf(f, "  \"overlay\": {\"runs\": %llu, \"pages\": %llu, \"bytes\": %llu},\n",
		(unsigned long long)st->overlay_runs, (unsigned long long)st->overlay_pages,
		(unsigned long long)(st->overlay_pages * SNAP_PAGE));
	fprintf(f, "  \"hotset\": {\"trained\": %s, \"ranges\": %u, \"pages\": %llu},\n",
		hs->flags & SNAP_HOTSET_TRAINED ? "true" : "false", hs->n_ranges,
		(unsigned long long)hs->pages);
	fprintf(f, "  \"syscall_path\": \"%s\",\n",
		hypercall__syscall_path_token(m->hc.st.syscall_path));
	{
		char pol[64];

		snap_policy__format(&o->policy, pol, sizeof(pol));
		fprintf(f, "  \"recycle\": \"%s\",\n", pol); /* as --recycle takes it */
	}
	fprintf(f, "  \"boot_to_ready_ms\": %.3f,\n  \"snapshot_ms\": %.3f\n}\n", boot_ms, snap_ms);
	if (fflush(f) != 0 || fdatasync(fd) < 0) {
		fclose(f);
		return err__errno(err, "write %s", SNAP_MANIFEST_FILE);
	}
	fclose(f);
	return 0;
}

/*
 * The write set: clone the template being written (in tmp, not yet in the
 * store: nothing else maps it), hand the clone o->warmup_request as its
 * request, run it to its end, and record the guest pages it wrote into
 * state.bin's HOTSET section (the new id into id).  The clone's output is
 * dropped; a non-zero exit is reported, and its pages are kept all the same.
 */
static int template_train(const struct boot_opts *o, const struct backend *be, const char *tmp,
			  int dirfd, char id[33], struct snap_hotset *hs, struct sb_err *err)
{
	struct snapshot *snap = malloc(sizeof(*snap));
	struct snap_hot_range *hot = malloc(SNAP_HOTSET_MAX * sizeof(*hot));
	struct machine_opts mo = { .recycle = true }; /* proc: its process waits at the exit */
	struct machine *m = NULL;
	uint64_t (*w)[2] = NULL, base = 0;
	size_t n = 0;
	int in = -1, nul = -1, ret;

	memset(hs, 0, sizeof(*hs));
	if (!snap || !hot) {
		ret = err__set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	in = open(o->warmup_request, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		ret = err__errno(err, "--warmup-request %s", o->warmup_request);
		goto out_free;
	}
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ret = snapshot__load(tmp, snap, err);
	if (ret < 0)
		goto out_free;
	m = machine__new_clone_opts(be, snap, &mo, err);
	if (!m) {
		ret = -EIO;
		goto out_snap;
	}
	m->hc.stdin_fd = in;
	m->hc.stdout_fd = nul;
	m->hc.stderr_fd = nul;
	m->hc.trace_fd = nul;
	m->hc.program = o->name;
	ret = timeout__start(&m->timeout, o->timeout_ns ? o->timeout_ns : 60ULL * 1000000000ULL, err);
	if (ret == 0)
		ret = hypercall__complete_pending(&m->hc, err);
	if (ret == HC_CONTINUE)
		ret = be->run(m, err);
	timeout__stop(&m->timeout);
	if (ret == -ETIMEDOUT || ret == 124)
		ret = err__set(err, -ETIMEDOUT, "the training request (--warmup-request %s) timed out",
			       o->warmup_request);
	else if (ret >= 0 && !machine__recyclable(m))
		ret = err__set(err, -EIO, "the training request (--warmup-request %s) did not end with "
			       "its program's exit (status %d%s%s)", o->warmup_request, ret,
			       err->msg[0] ? ": " : "", err->msg);
	else if (ret > 0)
		fprintf(stderr, "snapbox: template %s: the training request exited with status %d; "
			"its write set is recorded all the same\n", o->name, ret);
	if (ret >= 0)
		ret = machine__written(m, &w, &n, &base, err);
	if (ret == 0) {
		snapshot__hotset_build((const uint64_t (*)[2])w, n, base, hs, hot);
		hs->flags = SNAP_HOTSET_TRAINED;
		ret = snapshot__set_hotset(dirfd, hs, hot, id, err);
	}
	free(w);
	be->destroy(m);
	free(m);
out_snap:
	snapshot__close(snap);
out_free:
	if (in >= 0)
		close(in);
	if (nul >= 0)
		close(nul);
	free(hot);
	free(snap);
	return ret;
}

/* Save the sandbox (at its ready point) as template o->name, its layers
 * (already in the store's images/) linked in. */
static int template_save(struct machine *m, const struct boot_opts *o, const struct layer_set *ls,
			 const struct store *st, double boot_ms, struct sb_err *err)
{
	char tmp[PATH_MAX], id[33];
	struct snap_image_stats ist;
	struct snap_hotset hs = { 0 };
	uint64_t t0 = now_ns();
	double snap_ms, train_ms = 0;
	int dirfd, ret;

	ret = store__begin(st, o->name, tmp, sizeof(tmp), err);
	if (ret < 0)
		return ret;
	dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		ret = err__errno(err, "%s", tmp);
		goto out;
	}
	{
		/* the images as mapped here: the saver finds RAM pages that are theirs */
		const uint8_t *img[SB_MAX_LAYERS] = { 0 };

		for (unsigned i = 0; i < ls->n && i < SB_MAX_LAYERS; i++)
			img[i] = ls->map[i].map;
		ret = ls->n == m->n_layers ? 0 : err__set(err, -EINVAL, "%u layers mapped, %u booted",
							    ls->n, m->n_layers);
		if (ret == 0)
			ret = snapshot__save(m, &o->policy, o->private_rootfs ? NULL : img, dirfd, id,
					     &ist, err);
	}
	for (unsigned i = 0; ret == 0 && i < m->n_layers; i++)
		ret = store__link_image(st, dirfd, m->layers[i].id, err);
	snap_ms = (double)(now_ns() - t0) / 1e6;
	if (ret == 0 && o->warmup_request) {
		uint64_t t1 = now_ns();

		ret = template_train(o, m->be, tmp, dirfd, id, &hs, err);
		train_ms = (double)(now_ns() - t1) / 1e6;
	}
	if (ret == 0)
		ret = write_manifest(dirfd, o, id, &ist, m, ls, &hs, boot_ms, snap_ms, err);
	if (ret == 0)
		fsync(dirfd);
	close(dirfd);
	if (ret == 0)
		ret = store__commit(st, o->name, tmp, o->force, err);
	if (ret == 0) {
		double ram_mb = (double)m->ram.size / (1 << 20);
		printf("template %s: id %s\n", o->name, id);
		printf("  RAM %.0f MiB: %llu pages, %llu zero, %llu unique, %llu duplicate; %.1f MiB stored, "
		       "%.1f MiB mapped from the layers (%llu overlay runs)\n",
		       ram_mb, (unsigned long long)ist.n_pages, (unsigned long long)ist.zero_pages,
		       (unsigned long long)ist.unique_pages, (unsigned long long)ist.dup_pages,
		       (double)ist.written_bytes / (1 << 20),
		       (double)(ist.overlay_pages * SNAP_PAGE) / (1 << 20),
		       (unsigned long long)ist.overlay_runs);
		printf("  boot to ready point %.1f ms; snapshot %.1f ms (RAM scanned at %.0f MB/s, "
		       "written at %.0f MB/s)\n",
		       boot_ms, snap_ms, ram_mb * 1.048576 / (snap_ms / 1e3),
		       ist.write_s > 0 ? (double)ist.written_bytes / 1e6 / ist.write_s : 0.0);
		if (o->warmup_request)
			printf("  write set: %llu pages in %u ranges, from the training request (%.1f ms)\n",
			       (unsigned long long)hs.pages, hs.n_ranges, train_ms);
	}
out:
	if (ret < 0)
		store__discard(tmp);
	return ret;
}

static int template_create(struct boot_opts *o, struct boot_prep *p)
{
	struct sb_err err = { "" };
	struct store st;
	const struct backend *be = backend__pick(o->backend, &err);
	struct machine *m;
	struct jail_config jc;
	struct machine_opts mo;
	uint64_t entry, t0 = now_ns();
	char path[PATH_MAX];
	struct stat stbuf;
	int ret;

	if (!be)
		return fail(&err, EXIT_USAGE);
	if (store__open(&st, o->store, &err) < 0)
		return fail(&err, EXIT_SNAPBOX);
	if (store__path(&st, o->name, path, sizeof(path), &err) < 0 || strchr(o->name, '/'))
		return usage_error("%s", err.msg[0] ? err.msg : "a template name may not contain '/'");
	if (!o->force && stat(path, &stbuf) == 0) {
		err__set(&err, -EEXIST, "template %s already exists (use --force to replace it)", o->name);
		return fail(&err, EXIT_SNAPBOX);
	}
	ret = jail_opts__machine(&o->jail, be->name, p->bp.mem_size, &jc, &mo);
	if (ret >= 0)
		return ret;
	/* the layers go into the store first (checked; nothing to do for one
	 * that is there), the template links them when it is saved */
	for (unsigned i = 0; i < p->layers.n; i++)
		if (store__put_image(&st, &p->layers.map[i], p->layers.what[i], &err) < 0)
			return fail(&err, EXIT_SNAPBOX);
	m = machine__new_opts(be, p->bp.mem_size, RAM_ANON, &mo, &err);
	if (!m)
		return fail(&err, EXIT_SNAPBOX);
	if (o->stats)
		jail_opts__stats(m);
	m->hc.program = o->argv[0];
	m->hc.ready_mode = true;
	m->hc.stdin_fd = -1;
	p->bp.flags |= m->boot_flags;
	ret = machine__map_layers(m, &p->layers, &err);
	if (ret == 0)
		ret = boot__setup(&m->ram, &p->bp, &entry, &m->guest_abi, &err);
	if (ret == 0)
		ret = be->boot(m, entry, SB_BOOTINFO_GPA, &err);
	if (ret == 0)
		ret = timeout__start(&m->timeout, o->timeout_ns ? o->timeout_ns : DEFAULT_CREATE_TIMEOUT_NS,
				     &err);
	if (ret == 0) {
		struct progress pg;
		char what[300];
		snprintf(what, sizeof(what), "template %s: booting %s, waiting for its ready point",
			 o->name, o->argv[0]);
		progress__start(&pg, 2, what);
		ret = be->run(m, &err);
		progress__stop(&pg);
	}
	timeout__stop(&m->timeout);
	if (ret == MACHINE_READY) {
		double boot_ms = (double)(now_ns() - t0) / 1e6;
		ret = template_save(m, o, &p->layers, &st, boot_ms, &err);
		ret = ret < 0 ? fail(&err, EXIT_SNAPBOX) : 0;
	} else if (ret < 0) {
		ret = fail(&err, EXIT_SNAPBOX);
	} else {
		if (err.msg[0])
			fprintf(stderr, "snapbox: %s\n", err.msg);
		fprintf(stderr, "snapbox: %s ended (status %d) before its ready point (its first read "
			"of stdin); no template written\n", o->argv[0], ret);
		ret = EXIT_SNAPBOX;
	}
	machine__free(m);
	return ret;
}

static int cmd_template_create(int argc, char **argv)
{
	struct boot_opts *o = malloc(sizeof(*o));
	struct boot_prep *p = malloc(sizeof(*p));
	int ret = EXIT_SNAPBOX;

	if (!o || !p)
		goto out;
	ret = parse_boot_opts(o, argc, argv, MODE_TEMPLATE);
	if (ret >= 0)
		goto out;
	ret = prepare_boot(o, p);
	if (ret < 0)
		ret = template_create(o, p);
	boot_prep__free(p);
out:
	free(p);
	free(o);
	return ret;
}

/* ---- options of the other template commands and run --------------------- */

struct small_opts {
	const char *store;
	const char *name;
	const char *server;     /* run --server SOCKET: through `snapbox serve` */
	const char *backend;    /* run --backend: the one the caller expects */
	uint64_t timeout_ns;
	bool stats;
	struct jail_opts jail;  /* run: the clone's jail (proc) */
};

static int parse_small(int argc, char **argv, struct small_opts *o, bool run, const char *cmd)
{
	static const struct option lo[] = {
		{ "store", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "stats", no_argument, NULL, 'S' },
		{ "server", required_argument, NULL, 'X' },
		{ "backend", required_argument, NULL, 'B' },
		{ "jail", required_argument, NULL, 'J' },
		{ "mem-max", required_argument, NULL, 'M' },
		{ "cpu-max", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	jail_opts__init(&o->jail);
	optind = 1;
	opterr = 0;
	/* options may come before or after the template name */
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		if (c == 's') {
			o->store = optarg;
		} else if (run && c == 't') {
			char *end;
			double v = strtod(optarg, &end);
			if (end == optarg || *end || v < 0 || v > 1e9)
				return usage_error("--timeout %s: expected a number of seconds", optarg);
			o->timeout_ns = (uint64_t)(v * 1e9);
		} else if (run && c == 'S') {
			o->stats = true;
		} else if (run && c == 'X') {
			o->server = optarg;
		} else if (run && c == 'B') {
			if (strcmp(optarg, "kvm") && strcmp(optarg, "proc") && strcmp(optarg, "auto"))
				return usage_error("--backend %s: expected kvm, proc or auto", optarg);
			o->backend = optarg;
		} else if (run && (c == 'J' || c == 'M' || c == 'C')) {
			int ret = jail_opts__parse(&o->jail, c, optarg);

			if (ret >= 0)
				return ret;
		} else if (c == ':') {
			return usage_error("option %s needs an argument", argv[optind - 1]);
		} else {
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		o->name = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument %s", argv[optind]);
	if (!o->name && strcmp(cmd, "ls"))
		return usage_error("%s: which template?", cmd);
	return -1;
}

/* Open the store (when needed) and load template o->name, fully checked. */
static int load_template(const struct small_opts *o, struct snapshot *snap, char *dir,
			 size_t len, struct sb_err *err)
{
	struct store st;
	int ret;

	if (!strchr(o->name, '/')) {
		ret = store__open(&st, o->store, err);
		if (ret < 0)
			return ret;
	}
	ret = store__path(&st, o->name, dir, len, err);
	if (ret < 0)
		return ret;
	ret = snapshot__load(dir, snap, err);
	if (ret == -ENOENT && !strchr(o->name, '/') && access(dir, F_OK) < 0)
		return err__set(err, -ENOENT, "no template named %s (see 'snapbox template ls')", o->name);
	if (ret < 0) {
		struct sb_err e = *err;
		return err__set(err, ret, "template %s: %s", o->name, e.msg);
	}
	return 0;
}

/* ---- ls / inspect / verify / rm -------------------------------------------- */

static uint64_t file_blocks(int dirfd, const char *name)
{
	struct stat sb;
	return fstatat(dirfd, name, &sb, 0) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

static void fmt_size(uint64_t b, char *out, size_t len)
{
	if (b >= (1ULL << 30))
		snprintf(out, len, "%.1fG", (double)b / (1ULL << 30));
	else if (b >= (1ULL << 20))
		snprintf(out, len, "%.1fM", (double)b / (1ULL << 20));
	else
		snprintf(out, len, "%.0fK", (double)b / 1024);
}

static int template_ls(const struct small_opts *o)
{
	struct sb_err err = { "" };
	struct store st;
	char **names;
	size_t n;

	if (store__open(&st, o->store, &err) < 0 || store__list(&st, &names, &n, &err) < 0)
		return fail(&err, EXIT_SNAPBOX);
	printf("%-24s %-16s %8s %8s  %s\n", "NAME", "ID", "MEM", "STORED", "CREATED");
	for (size_t i = 0; i < n; i++) {
		char dir[PATH_MAX + 300], mem[16], stored[16], created[32] = "-";
		struct snapshot *s = malloc(sizeof(*s));
		struct stat sb;

		snprintf(dir, sizeof(dir), "%s/templates/%s", st.root, names[i]);
		if (s && snapshot__load(dir, s, &err) == 0) {
			uint64_t bytes = file_blocks(s->dirfd, SNAP_MEM_FILE) +
					 file_blocks(s->dirfd, SNAP_PAGES_FILE) +
					 file_blocks(s->dirfd, SNAP_STATE_FILE);
			if (fstatat(s->dirfd, SNAP_STATE_FILE, &sb, 0) == 0) {
				struct tm tm;
				localtime_r(&sb.st_mtime, &tm);
				strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", &tm);
			}
			fmt_size(s->hdr.mem_size, mem, sizeof(mem));
			fmt_size(bytes, stored, sizeof(stored));
			printf("%-24s %-16.16s %8s %8s  %s\n", names[i], s->id, mem, stored, created);
			snapshot__close(s);
		} else {
			printf("%-24s %-16s %8s %8s  (unreadable: %s)\n", names[i], "-", "-", "-", err.msg);
		}
		free(s);
		free(names[i]);
	}
	free(names);
	return 0;
}

static int template_inspect(const struct small_opts *o)
{
	struct sb_err err = { "" };
	struct snapshot *s = malloc(sizeof(*s));
	char dir[PATH_MAX];
	const struct snap_vcpu *v;
	int ret;

	if (!s)
		return EXIT_SNAPBOX;
	ret = load_template(o, s, dir, sizeof(dir), &err);
	if (ret < 0) {
		free(s);
		return fail(&err, ret == -EBADMSG ? EXIT_DAMAGED : EXIT_SNAPBOX);
	}
	v = &s->vcpu;
	printf("template   %s\n", o->name);
	printf("directory  %s\n", dir);
	printf("id         %s\n", s->id);
	printf("backend    %s\n", snapshot__backend_name(s->hdr.backend));
	printf("format     %u.%u, guest ABI %u, x86-64\n", s->hdr.major, s->hdr.minor,
	       s->hdr.abi_version);
	printf("RAM        %llu MiB: %llu pages, %llu zero, %llu unique, %llu duplicate\n",
	       (unsigned long long)(s->hdr.mem_size >> 20), (unsigned long long)s->pages.n_pages,
	       (unsigned long long)s->pages.zero_pages, (unsigned long long)s->pages.unique_pages,
	       (unsigned long long)s->pages.dup_pages);
	printf("stored     mem.img %llu KiB, pages.idx %llu KiB, state.bin %llu bytes\n",
	       (unsigned long long)file_blocks(s->dirfd, SNAP_MEM_FILE) / 1024,
	       (unsigned long long)file_blocks(s->dirfd, SNAP_PAGES_FILE) / 1024,
	       (unsigned long long)s->state_bytes);
	if (s->hdr.backend == SNAP_BACKEND_PROC) {
		const struct sb_proc_cpu *c = &s->proc.cpu;
		printf("cpu        rip 0x%llx rsp 0x%llx rflags 0x%llx fs_base 0x%llx (user mode, "
		       "a sandbox process)\n",
		       (unsigned long long)c->gpr[SB_PROC_RIP], (unsigned long long)c->gpr[SB_PROC_RSP],
		       (unsigned long long)c->gpr[17], (unsigned long long)c->fs_base);
		printf("xsave      features 0x%llx, %u bytes\n", (unsigned long long)c->xfeatures,
		       c->xstate_size);
		goto path;
	}
	printf("vcpu 0     rip 0x%llx rsp 0x%llx rflags 0x%llx cr3 0x%llx efer 0x%llx\n",
	       (unsigned long long)v->regs.rip, (unsigned long long)v->regs.rsp,
	       (unsigned long long)v->regs.rflags, (unsigned long long)v->sregs.cr3,
	       (unsigned long long)v->sregs.efer);
	printf("           cs 0x%x (cpl %u), fs_base 0x%llx, %u MSRs, mp_state %u, %s\n",
	       v->sregs.cs.selector, v->sregs.cs.selector & 3, (unsigned long long)v->sregs.fs.base,
	       v->n_msrs, v->mp_state.mp_state,
	       v->flags & SNAP_VCPU_HAS_XSAVE ? "xsave" : "fpu (no xsave)");
	printf("cpuid      %u entries, hash %016llx\n", s->nent, (unsigned long long)s->hdr.cpuid_hash);
path:
	if (s->hc.syscall_path)
		printf("syscalls   %s: %s\n", hypercall__syscall_path_token(s->hc.syscall_path),
		       hypercall__syscall_path_text(s->hc.syscall_path));
	else
		printf("syscalls   path not reported%s\n",
		       s->hc_version < 2 ? " (template made before guest ABI 3)" : "");
	{
		char pol[96];

		snap_policy__describe(&s->policy, pol, sizeof(pol));
		printf("recycle    %s%s\n", pol,
		       s->hdr.minor < 2 ? " (template made before format 1.2: no policy)" : "");
	}
	if (!s->layers.n_layers)
		printf("layers     none: the root file system is in RAM (template made before format 1.3)\n");
	for (unsigned i = 0; i < s->layers.n_layers; i++) {
		char rel[64];

		snapshot__layer_path(s, i, rel, sizeof(rel));
		printf("%s %s, %llu KiB at gpa 0x%llx%s\n", i ? "          " : "layers    ", rel,
		       (unsigned long long)(s->layers.layers[i].size >> 10),
		       (unsigned long long)s->layers.layers[i].gpa,
		       i == s->layers.n_layers - 1 ? " (top)" : i == 0 ? " (bottom)" : "");
	}
	if (s->hdr.minor < 4)
		printf("overlay    none (template made before format 1.4)\n");
	else
		printf("overlay    %u runs, %llu pages (%llu KiB) mapped from the layers, not stored\n",
		       s->n_runs, (unsigned long long)s->overlay_pages,
		       (unsigned long long)(s->overlay_pages * SNAP_PAGE >> 10));
	for (uint32_t i = 0; i < s->n_runs; i++) {
		const struct snap_overlay_run *r = &s->runs[i];

		if (i == 16 && s->n_runs > 17) {
			printf("           ... %u more runs\n", s->n_runs - 16);
			break;
		}
		printf("           gpa 0x%llx +%u pages: layer %u at 0x%llx\n", (unsigned long long)r->gpa,
		       r->npages, r->layer, (unsigned long long)r->img_off);
	}
	if (s->hdr.minor < 5)
		printf("hotset     none (template made before format 1.5)\n");
	else if (!(s->hotset.flags & SNAP_HOTSET_TRAINED))
		printf("hotset     none (made without --warmup-request)\n");
	else
		printf("hotset     %u ranges, %llu pages (%llu KiB) written by the training request\n",
		       s->hotset.n_ranges, (unsigned long long)s->hotset.pages,
		       (unsigned long long)(s->hotset.pages * SNAP_PAGE >> 10));
	for (uint32_t i = 0; i < s->hotset.n_ranges; i++) {
		if (i == 8 && s->hotset.n_ranges > 9) {
			printf("           ... %u more ranges\n", s->hotset.n_ranges - 8);
			break;
		}
		printf("           gpa 0x%llx +%u pages\n", (unsigned long long)s->hot[i].gpa,
		       s->hot[i].npages);
	}
	if (s->hc.flags & HC_STATE_PENDING_READ)
		printf("ready      stdin read pending (%s, struct at gpa 0x%llx)\n",
		       s->hc.flags & HC_STATE_PENDING_STDIN ? "STDIN" : "READ",
		       (unsigned long long)s->hc.pending_read_gpa);
	printf("sections   %-10s %7s %8s %8s  %s\n", "TYPE", "VERSION", "OFFSET", "LENGTH", "XXH3");
	{
		/* re-read the table for display (already validated by load) */
		struct snap_section t[SNAP_MAX_SECTIONS];
		int fd = openat(s->dirfd, SNAP_STATE_FILE, O_RDONLY | O_CLOEXEC);
		size_t tl = s->hdr.n_sections * sizeof(t[0]);
		if (fd >= 0 && pread(fd, t, tl, sizeof(s->hdr)) == (ssize_t)tl)
			for (uint32_t i = 0; i < s->hdr.n_sections; i++)
				printf("           %-10s %7u %8llu %8llu  %016llx\n",
				       snapshot__section_name(t[i].type), t[i].version,
				       (unsigned long long)t[i].offset, (unsigned long long)t[i].length,
				       (unsigned long long)t[i].hash);
		if (fd >= 0)
			close(fd);
	}
	snapshot__close(s);
	free(s);
	return 0;
}

static int template_verify(const struct small_opts *o)
{
	struct sb_err err = { "" };
	struct snapshot *s = malloc(sizeof(*s));
	char dir[PATH_MAX];
	uint64_t bad = 0;
	int ret;

	if (!s)
		return EXIT_SNAPBOX;
	s->dirfd = -1;
	ret = load_template(o, s, dir, sizeof(dir), &err);
	if (ret == 0)
		ret = snap_image__verify(s, &bad, &err);
	for (unsigned i = 0; ret == 0 && i < s->layers.n_layers; i++) {
		struct sbfs_map lm;
		char rel[64];
		int fd = snapshot__open_layer(s, i, &err);

		snapshot__layer_path(s, i, rel, sizeof(rel));
		ret = fd < 0 ? fd : sbfs_map__fd(&lm, fd, rel, &err);
		if (ret == 0) {
			ret = sbfs__verify(lm.map, lm.size, &err);
			if (ret < 0) {
				struct sb_err e = err;
				err__set(&err, ret, "%s: %s", rel, e.msg);
			}
			sbfs_map__close(&lm);
		}
	}
	if (ret == 0)
		snapshot__close(s);
	if (ret == 0)
		printf("template %s: ok (id %s; state, index, %llu pages (%llu of them in the layers) "
		       "and %u layer image%s verified)\n",
		       o->name, s->id, (unsigned long long)s->pages.n_pages,
		       (unsigned long long)s->overlay_pages, s->layers.n_layers,
		       s->layers.n_layers == 1 ? "" : "s");
	else if (s->dirfd >= 0)
		snapshot__close(s);
	free(s);
	if (ret == -EBADMSG) {
		if (bad > 1)
			fprintf(stderr, "snapbox: template %s is damaged: %s (%llu bad pages)\n", o->name,
				err.msg, (unsigned long long)bad);
		else
			fprintf(stderr, "snapbox: template %s is damaged: %s\n", o->name, err.msg);
		return EXIT_DAMAGED;
	}
	return ret < 0 ? fail(&err, ret == -ENOENT ? EXIT_SNAPBOX : EXIT_DAMAGED) : 0;
}

static int template_rm(const struct small_opts *o)
{
	struct sb_err err = { "" };
	struct store st;

	if (store__open(&st, o->store, &err) < 0 || store__remove(&st, o->name, &err) < 0)
		return fail(&err, EXIT_SNAPBOX);
	return 0;
}

int cmd_template(int argc, char **argv)
{
	struct small_opts o;
	const char *sub = argc > 1 ? argv[1] : "";
	int ret;

	if (!strcmp(sub, "create"))
		return cmd_template_create(argc - 1, argv + 1);
	if (strcmp(sub, "ls") && strcmp(sub, "inspect") && strcmp(sub, "verify") && strcmp(sub, "rm"))
		return usage_error("template: expected create, ls, inspect, verify or rm%s", "");
	ret = parse_small(argc - 1, argv + 1, &o, false, sub);
	if (ret >= 0)
		return ret;
	if (!strcmp(sub, "ls"))
		return template_ls(&o);
	if (!strcmp(sub, "inspect"))
		return template_inspect(&o);
	if (!strcmp(sub, "verify"))
		return template_verify(&o);
	return template_rm(&o);
}

/* ---- run: clone a sandbox ---------------------------------------------------- */

int cmd_run(int argc, char **argv, uint64_t t0)
{
	struct sb_err err = { "" };
	struct small_opts o;
	struct snapshot *snap = NULL;
	const struct backend *be = NULL;
	struct machine *m = NULL;
	struct jail_config jc;
	struct machine_opts mo;
	char dir[PATH_MAX], calls[512];
	uint64_t t_loaded = 0, t_restored = 0, t_end;
	int ret = parse_small(argc, argv, &o, true, "run");

	if (ret >= 0)
		return ret;
	if (o.server && (o.store || o.stats || o.jail.any))
		return usage_error("run --server: --store, --stats and the jail options are the "
				   "service's business%s", "");
	if (o.server)
		return cmd_run_remote(client__socket_path(o.server), o.name, o.timeout_ns);
	snap = malloc(sizeof(*snap));
	if (!snap) {
		ret = EXIT_SNAPBOX;
		goto out;
	}
	ret = load_template(&o, snap, dir, sizeof(dir), &err);
	/* the template's own backend; another one asked for is refused */
	if (ret == 0 && !(be = backend__of_snapshot(snap, &err)))
		ret = -EPROTONOSUPPORT;
	if (ret == 0 && o.backend && strcmp(o.backend, "auto") && strcmp(o.backend, be->name))
		ret = err__set(&err, -EPROTOTYPE,
			       "template %s was made by the %s backend and runs only there, not on %s",
			       o.name, be->name, o.backend);
	if (ret == 0)
		ret = be->check(snap, &err);
	if (ret == 0) {
		int usage = jail_opts__machine(&o.jail, be->name, snap->hdr.mem_size, &jc, &mo);

		if (usage >= 0) {
			ret = usage;
			goto out_snap;
		}
	}
	t_loaded = now_ns();
	if (ret == 0 && !(m = machine__new_clone_opts(be, snap, &mo, &err)))
		ret = -1;
	if (ret < 0) {
		ret = fail(&err, EXIT_SNAPBOX);
		goto out_snap;
	}
	signal(SIGPIPE, SIG_IGN);
	m->hc.program = o.name;
	t_restored = now_ns();
	ret = timeout__start(&m->timeout, o.timeout_ns, &err);
	if (ret == 0)
		ret = hypercall__complete_pending(&m->hc, &err);
	if (ret == -ETIMEDOUT)
		ret = 124, err__set(&err, 0, "timed out reading the request");
	else if (ret == HC_CONTINUE)
		ret = be->run(m, &err);
	timeout__stop(&m->timeout);
	t_end = now_ns();
	if (o.stats) {
		fprintf(stderr, "stats: load_us=%llu clone_us=%llu run_us=%llu total_us=%llu\n",
			(unsigned long long)(t_loaded - t0) / 1000,
			(unsigned long long)(t_restored - t_loaded) / 1000,
			(unsigned long long)(t_end - t_restored) / 1000,
			(unsigned long long)(t_end - t0) / 1000);
		/* the guest reports once per boot: a clone shows its template's */
		fprintf(stderr, "stats: syscall_path=%s: %s, observed when the template was created\n",
			hypercall__syscall_path_token(m->hc.st.syscall_path),
			hypercall__syscall_path_text(m->hc.st.syscall_path));
		hypercall__describe_calls(&m->hc, calls, sizeof(calls));
		fprintf(stderr, "stats: hypercalls: %s (from the ready point)\n", calls);
		jail_opts__stats(m);
	}
	if (ret < 0)
		ret = fail(&err, EXIT_SNAPBOX);
	else if (err.msg[0])
		fprintf(stderr, "snapbox: %s\n", err.msg);
	fflush(stdout);
	fflush(stderr);
	snapshot__close(snap);
	free(snap);
	be->destroy_detached(m); /* off the caller's path */
	return ret;
out_snap:
	snapshot__close(snap);
out:
	free(snap);
	return ret;
}
