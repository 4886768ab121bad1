/* SPDX-License-Identifier: MIT */
/*
 * Overlays (format 1.4): what keeping a template's layer pages out of
 * mem.img saves, and what mapping them costs a clone.  For each usable
 * backend, two templates of the Lua handler (256 MiB) made in this run: the
 * default (lua's text and read-only data mapped from the base layer's image
 * at clone time) and its peer `--private-rootfs` (every page in mem.img, as
 * before format 1.4).  Prints their stored size (mem.img blocks) and overlay
 * pages, then, interleaved round by round, in-process through backend.h:
 *   clone_into        the template mapped into a shell made before the
 *                     clock (proc: its stub waiting on the channel), state
 *                     restored -- the overlay mmaps are in here;
 *   clone -> response clone_into, the request (a memfd) and the run to the
 *                     program's exit (proc: with the sandbox's reap).
 * Usage: build/bench/overlay [rounds]  (default 200).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox.
 */
#include "common.h"
#include "clonekit.h"
#include "backend/proc/proc.h"
#include <sys/mman.h>

#define REQ "{\"n\": 30}"
#define WANT "{\"n\": 30, \"fib\": 832040, \"prime\": 113}\n"

enum { V_OVERLAY, V_PRIVATE, V_N };
static const char *const vname[V_N] = { "overlays", "--private-rootfs" };

static struct machine *shell(const struct backend *be, uint64_t size)
{
	struct sb_err err = { "" };
	struct machine *m = machine__new(be, size, RAM_RESERVED, &err);

	if (!m) {
		fprintf(stderr, "%s shell: %s\n", be->name, err.msg);
		return NULL;
	}
	if (be == &proc_backend) { /* until its stub waits on the channel */
		char p[64], buf[512];

		snprintf(p, sizeof(p), "/proc/%d/stat", (int)((struct proc_machine *)m)->pid);
		for (int i = 0; i < 5000; i++) {
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			char *s;

			if (fd >= 0)
				close(fd);
			buf[n > 0 ? n : 0] = 0;
			s = strrchr(buf, ')');
			if (strstr(buf, "(proc-stub)") && s && s[2] == 'S')
				break;
			usleep(20);
		}
	}
	return m;
}

/* One clone of snap into a fresh shell: 0 and the two times, or -1. */
static int one(const struct backend *be, const struct snapshot *snap, double *clone_us,
	       double *total_us)
{
	struct sb_err err = { "" };
	struct machine *m = shell(be, snap->hdr.mem_size);
	int in = memfd_create("bench-req", MFD_CLOEXEC), out[2], ret;
	char buf[256];
	ssize_t n;
	double t0, t1;

	if (!m || in < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    write(in, REQ, strlen(REQ)) != (ssize_t)strlen(REQ) || lseek(in, 0, SEEK_SET) < 0)
		return -1;
	t0 = bench_now_us();
	ret = machine__clone_into(m, snap, &err);
	t1 = bench_now_us();
	if (ret == 0) {
		m->hc.stdin_fd = in;
		m->hc.stdout_fd = out[1];
		m->hc.program = "bench";
		ret = hypercall__complete_pending(&m->hc, &err);
		if (ret == HC_CONTINUE)
			ret = be->run(m, &err);
	}
	*total_us = bench_now_us() - t0;
	*clone_us = t1 - t0;
	close(out[1]);
	n = read(out[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	close(out[0]);
	close(in);
	if (ret != 0 || strcmp(buf, WANT)) {
		fprintf(stderr, "%s clone: status %d (%s), answer %s\n", be->name, ret, err.msg, buf);
		ret = -1;
	}
	machine__free(m);
	return ret;
}

static uint64_t blocks(const char *store, const char *name)
{
	char p[PATH_MAX + 300];
	struct stat st;

	snprintf(p, sizeof(p), "%s/templates/%s/mem.img", store, name);
	return stat(p, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

int main(int argc, char **argv)
{
	static struct snapshot snap[2][V_N];
	static char *const lua[] = { "/bin/lua", "/app/handler.lua", NULL };
	const struct backend *bes[2] = { &proc_backend, &kvm_backend };
	int rounds = argc > 1 ? atoi(argv[1]) : 200, nb = 0, bad = 0;
	double *v[2][V_N][2];
	char why[256];

	if (ck_tmpdir_create(NULL, "overlay", NULL) < 0)
		return 1;
	ck_link_guest();
	if (kvm_backend.available(why, sizeof(why)))
		nb = 2;
	else
		nb = 1, printf("# kvm: not usable here (%s)\n", why);
	printf("# Lua handler template (256 MiB), %d rounds, interleaved\n", rounds);
	for (int b = 0; b < nb; b++)
		for (int k = 0; k < V_N; k++) {
			char name[64], be_opt[32];
			char *extra[] = { "--backend", be_opt, k == V_PRIVATE ? "--private-rootfs" : NULL,
					  NULL };
			struct ck_spawn r;

			snprintf(be_opt, sizeof(be_opt), "%s", bes[b]->name);
			snprintf(name, sizeof(name), "lua-%s-%d", bes[b]->name, k);
			if (ck_template_create(ck_tmpdir, name, extra, lua, false, &r) < 0)
				return 1;
			char dir[PATH_MAX + 300];
			struct sb_err err = { "" };
			snprintf(dir, sizeof(dir), "%s/templates/%s", ck_tmpdir, name);
			if (snapshot__load(dir, &snap[b][k], &err) < 0) {
				fprintf(stderr, "load %s: %s\n", dir, err.msg);
				return 1;
			}
			printf("%-5s %-17s mem.img %6.1f KiB stored, %4llu overlay pages in %u runs\n",
			       bes[b]->name, vname[k], blocks(ck_tmpdir, name) / 1024.0,
			       (unsigned long long)snap[b][k].overlay_pages, snap[b][k].n_runs);
			for (int t = 0; t < 2; t++)
				v[b][k][t] = calloc((size_t)rounds, sizeof(double));
		}
	for (int i = 0; i < rounds; i++)
		for (int b = 0; b < nb; b++)
			for (int k = 0; k < V_N; k++) {
				int kk = i % 2 ? V_N - 1 - k : k; /* alternate who goes first */

				if (one(bes[b], &snap[b][kk], &v[b][kk][0][i], &v[b][kk][1][i]) < 0)
					bad++;
			}
	for (int b = 0; b < nb; b++)
		for (int k = 0; k < V_N; k++) {
			struct stats s;
			char label[128];

			bench_stats(v[b][k][0], rounds, &s);
			snprintf(label, sizeof(label), "%s %s: clone_into", bes[b]->name, vname[k]);
			bench_print(label, "us", &s);
			bench_stats(v[b][k][1], rounds, &s);
			snprintf(label, sizeof(label), "%s %s: clone -> response", bes[b]->name, vname[k]);
			bench_print(label, "us", &s);
		}
	if (bad)
		printf("# %d clones failed\n", bad);
	return bad ? 1 : 0;
}
