/* SPDX-License-Identifier: MIT */
/*
 * Template create time: a 256 MiB guest whose program has touched 64 MiB
 * (distinct data in every page, so nothing is zero or duplicate) before its
 * ready point.  The guest program is built here from the C source below
 * (musl-gcc -static -O2) into a temporary --rootfs directory as /touch, then
 *   snapbox template create tN --store TMP --rootfs DIR -- /touch 64
 * is run R times (new name each time; removed after each run).  Prints the
 * wall time of the CLI (fork+exec to exit), its own "boot to ready point"
 * and "snapshot" times and the RAM scan / write rates it reports, and the
 * touched data saved per second.  Reference, interleaved: the Lua handler
 * template (a few hundred non-zero pages).
 * Usage: build/bench/snapshot [runs] [MiB touched]  (defaults 10, 64).
 * Run from the repository root; SNAPBOX=path overrides build/snapbox;
 * SNAPBOX_BENCH_DIR=dir puts the store there (default /tmp; the store's file
 * system matters: it is written and fdatasync'ed).
 */
#include "common.h"
#include "clonekit.h"

static const char touch_src[] =
	"#include <stdio.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"#include <unistd.h>\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 64, n = mib << 20;\n"
	"	unsigned long *p = malloc(n), x = 0x9e3779b97f4a7c15UL;\n"
	"	char buf[256];\n"
	"	if (!p && n) { fputs(\"touch: out of memory\\n\", stderr); return 1; }\n"
	"	for (size_t i = 0; i < n / sizeof(*p); i++) {\n"
	"		x ^= x << 13; x ^= x >> 7; x ^= x << 17;\n"
	"		p[i] = x;\n"
	"	}\n"
	"	ssize_t k = read(0, buf, sizeof(buf));\n"
	"	printf(\"touched %zu MiB, read %zd, %lx\\n\", mib, k, p[n / sizeof(*p) / 2]);\n"
	"	return 0;\n"
	"}\n";

static char *const tmp = ck_tmpdir;
static char store[PATH_MAX + 16], rootfs[PATH_MAX + 16];

static double after(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	return p ? atof(p + strlen(key)) : -1;
}

struct run {
	double wall_ms, boot_ms, snap_ms, scan_mbs, write_mbs, stored_mib;
};

static int one(const char *name, char *const extra[], char *const prog[], struct run *r)
{
	struct ck_spawn sp;
	char dir[PATH_MAX + 300];

	if (ck_template_create(store, name, extra, prog, false, &sp) < 0)
		return -1;
	r->wall_ms = sp.total_us / 1e3;
	r->boot_ms = after(sp.out, "boot to ready point ");
	r->snap_ms = after(sp.out, "; snapshot ");
	r->scan_mbs = after(sp.out, "RAM scanned at ");
	r->write_mbs = after(sp.out, "written at ");
	const char *st = strstr(sp.out, "duplicate; ");
	r->stored_mib = st ? atof(st + 11) : -1;
	if (r->snap_ms < 0 || r->scan_mbs < 0) {
		fprintf(stderr, "cannot parse the CLI's report:\n%s\n", sp.out);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/templates/%s", store, name);
	ck_rmtree(dir);
	return 0;
}

static void report(const char *what, struct run *r, int n, double touched_mib)
{
	double v[5][64];
	const char *lbl[5] = { "CLI wall time (fork+exec to exit)", "  boot to ready point",
			       "  snapshot (save)", "  RAM scan rate (CLI)", "  write rate (CLI)" };
	const char *unit[5] = { "ms", "ms", "ms", "MB/s", "MB/s" };
	struct stats s;

	for (int i = 0; i < n; i++) {
		v[0][i] = r[i].wall_ms, v[1][i] = r[i].boot_ms, v[2][i] = r[i].snap_ms;
		v[3][i] = r[i].scan_mbs, v[4][i] = r[i].write_mbs;
	}
	printf("%s: %.1f MiB stored\n", what, r[0].stored_mib);
	for (int k = 0; k < 5; k++) {
		bench_stats(v[k], n, &s);
		bench_print(lbl[k], unit[k], &s);
		if (k == 2 && touched_mib > 0)
			printf("  touched data saved: %.0f MB/s (median snapshot time)\n",
			       touched_mib * 1.048576 / (s.median / 1e3));
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10;
	int mib = argc > 2 ? atoi(argv[2]) : 64;
	const char *base = getenv("SNAPBOX_BENCH_DIR");
	struct run rt[64], rh[64];
	struct ck_spawn sp;
	char src[PATH_MAX + 64], bin[PATH_MAX + 64], mibs[16];

	if (n < 1 || n > 64)
		n = 10;
	if (mib < 0 || mib > 200)
		mib = 64;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (ck_tmpdir_create(base, "snapshot", NULL) < 0)
		return 1;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
	snprintf(src, sizeof(src), "%s/touch.c", tmp);
	snprintf(bin, sizeof(bin), "%s/touch", rootfs);
	snprintf(mibs, sizeof(mibs), "%d", mib);
	if (mkdir(store, 0755) < 0 || mkdir(rootfs, 0755) < 0) {
		fprintf(stderr, "mkdir in %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	FILE *f = fopen(src, "w");
	if (!f || fputs(touch_src, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "write %s: %s\n", src, strerror(errno));
		return 1;
	}
	char *cc[] = { "musl-gcc", "-static", "-O2", "-o", bin, src, NULL };
	if (ck_spawn(cc, NULL, 0, 60, &sp) < 0 || sp.status != 0) {
		fprintf(stderr, "musl-gcc -static failed (status %d; is musl-tools installed?): %s%s\n",
			sp.status, sp.out, sp.err);
		return 1;
	}
	/* check the guest program: boot it once with a request */
	char *chk[] = { (char *)ck_snapbox(), "boot", "--rootfs", rootfs, "--", "/touch", mibs, NULL };
	if (ck_spawn(chk, "x", 1, 60, &sp) < 0 || sp.status != 0 || !strstr(sp.out, "touched")) {
		fprintf(stderr, "snapbox boot -- /touch %s failed (status %d): %s%s\n", mibs, sp.status,
			sp.out, sp.err);
		return 1;
	}
	printf("# template create: 256 MiB guest, /touch %d (%d MiB of distinct data touched), %d runs "
	       "each, interleaved with the Lua handler; store %s (CLI %s)\n",
	       mib, mib, n, store, ck_snapbox());
	char *extra[] = { "--rootfs", rootfs, NULL };
	char *tprog[] = { "/touch", mibs, NULL };
	char *hprog[] = { "/bin/lua", "/app/handler.lua", NULL };
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "t%d", i);
		if (one(name, extra, tprog, &rt[i]) < 0)
			return 1;
		snprintf(name, sizeof(name), "h%d", i);
		if (one(name, NULL, hprog, &rh[i]) < 0)
			return 1;
	}
	char what[64];
	snprintf(what, sizeof(what), "/touch %d", mib);
	report(what, rt, n, mib);
	report("/bin/lua /app/handler.lua (reference)", rh, n, 0);
	return 0;
}
