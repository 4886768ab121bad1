/* SPDX-License-Identifier: MIT */
/*
 * What each layer of the proc backend's jail (backend/proc/jail.h) costs:
 * jail__prepare (cgroup mkdir + limits), the clone in the parent (namespace
 * creation happens there), clone -> the child's exec'd stub has exited and
 * is reaped (the child's own setup: mounts, pivot_root, ids, user
 * namespace, exec), and jail__cleanup (cgroup rmdir).  The program run is
 * the proc stub itself, which exits at once without its channel.
 *
 *   build/bench/jail_cost [ROUNDS] [STUB] [no-new-netns]   (root for all but "none")
 *
 * Creating a network namespace per sandbox also leaves work behind: the
 * kernel tears each one down later in a workqueue, which slows everything
 * else down (compare a run with and without no-new-netns).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/proc/jail.h"
#include "common.h"

struct cfg {
	const char *name;
	unsigned layers;
	bool shared_net;
};

int main(int argc, char **argv)
{
	static const struct cfg cfgs[] = {
		{ "none", 0, false },
		{ "pid", JAIL_PID, false },
		{ "mnt", JAIL_MNT, false },
		{ "user", JAIL_USER, false },
		{ "net (new netns)", JAIL_NET, false },
		{ "net (shared netns)", JAIL_NET, true },
		{ "cgroup", JAIL_CGROUP, false },
		{ "all, new netns", JAIL_ALL, false },
		{ "all, shared netns", JAIL_ALL, true },
	};
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	const char *stub = argc > 2 ? argv[2] : "build/guest/proc-stub";
	enum { NCFG = sizeof(cfgs) / sizeof(cfgs[0]) };
	double *v[NCFG][5];
	char desc[NCFG][512];
	char *const sargv[] = { "snapbox-sandbox", NULL }, *const senv[] = { NULL };
	struct sb_err err = { "" };
	int netns = -1;
	bool no_new_netns = argc > 3 && !strcmp(argv[3], "no-new-netns");

	if (access(stub, X_OK) < 0) {
		fprintf(stderr, "jail_cost: %s: not executable (make first)\n", stub);
		return 1;
	}
	if (geteuid() == 0) {
		double t = bench_now_us();

		netns = jail__make_netns(&err);
		printf("jail__make_netns (once, for sharing): %.0f us\n", bench_now_us() - t);
		if (netns < 0)
			fprintf(stderr, "jail_cost: %s\n", err.msg);
	}
	printf("%d rounds each; medians (p90) in us; the child runs %s\n", rounds, stub);
	printf("%-20s %14s %14s %16s %14s %14s\n", "layers", "prepare", "clone(parent)",
	       "clone->reaped", "cleanup", "total");
	for (size_t c = 0; c < NCFG; c++)
		for (int k = 0; k < 5; k++)
			v[c][k] = calloc((size_t)rounds, sizeof(double));
	/* round-robin over the configurations, so that background work (the
	 * kernel tears network namespaces down in a workqueue) and noise fall
	 * on all of them alike */
	for (int i = 0; i < rounds; i++) {
		for (size_t c = 0; c < NCFG; c++) {
			struct jail_config jc;
			struct jail j;
			double t0, t1, t2, t3, t4;
			pid_t pid;
			int st;

			if ((cfgs[c].layers && geteuid() != 0) ||
			    (no_new_netns && (cfgs[c].layers & JAIL_NET) && !cfgs[c].shared_net))
				continue;
			jail__default_config(&jc);
			jc.layers = cfgs[c].layers;
			jc.mem_max = 256 << 20;
			jc.cpu_max_pct = 100;
			jc.netns_fd = cfgs[c].shared_net ? netns : -1;
			t0 = bench_now_us();
			if (jail__prepare(&j, &jc, &err) < 0) {
				fprintf(stderr, "jail_cost: %s\n", err.msg);
				return 1;
			}
			t1 = bench_now_us();
			pid = jail__fork(&j);
			if (pid == 0)
				_exit(jail__exec(&j, stub, sargv, senv, -1));
			t2 = bench_now_us();
			waitpid(pid, &st, 0);
			t3 = bench_now_us();
			if (i == 0 && WIFEXITED(st) && jail__exit_reason(WEXITSTATUS(st)))
				fprintf(stderr, "jail_cost: %s: child %s\n", cfgs[c].name,
					jail__exit_reason(WEXITSTATUS(st)));
			if (i == 0)
				jail__describe(&j, desc[c], sizeof(desc[c]));
			jail__cleanup(&j);
			t4 = bench_now_us();
			v[c][0][i] = t1 - t0;
			v[c][1][i] = t2 - t1;
			v[c][2][i] = t3 - t1;
			v[c][3][i] = t4 - t3;
			v[c][4][i] = t4 - t0;
		}
	}
	for (size_t c = 0; c < NCFG; c++) {
		struct stats s[5];

		if ((cfgs[c].layers && geteuid() != 0) ||
		    (no_new_netns && (cfgs[c].layers & JAIL_NET) && !cfgs[c].shared_net))
			continue;
		for (int k = 0; k < 5; k++)
			bench_stats(v[c][k], rounds, &s[k]);
		printf("%-20s %6.0f (%5.0f) %6.0f (%5.0f) %7.0f (%6.0f) %6.0f (%5.0f) %6.0f (%5.0f)   [%s]\n",
		       cfgs[c].name, s[0].median, s[0].p90, s[1].median, s[1].p90, s[2].median,
		       s[2].p90, s[3].median, s[3].p90, s[4].median, s[4].p90, desc[c]);
	}
	return 0;
}
