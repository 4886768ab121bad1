/* SPDX-License-Identifier: MIT */
/*
 * A template's policy (struct snap_policy, snapshot/format.h) as people and
 * clients write it: `--recycle` of `template create` and `serve`, the
 * API's "recycle" field, template.json, `template inspect`.
 *
 *   off
 *   on[,max=N][,idle=DURATION]     N: 1 to 1000000000 reuses (absent: no limit)
 *                                  DURATION: digits and a unit, ms s m h
 *                                  (500ms, 30s, 5m), 1ms to 24h (absent: 60 s)
 *   default                        (templates only) not set: the service decides
 *
 * Lower case, no spaces, each setting at most once, in any order.
 */
#ifndef SNAP_POLICY_H
#define SNAP_POLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "snapshot/format.h"

#define SNAP_POLICY_SYNTAX "off or on[,max=N][,idle=DURATION]"

/* Parse s into *p (zeroed first); "default" only if allow_default.  0, or
 * -EINVAL with a one-line reason in err (naming neither the option nor the
 * whole value: the caller says "--recycle VALUE: " or the like first). */
int snap_policy__parse(const char *s, bool allow_default, struct snap_policy *p,
		       struct sb_err *err);

/* "500ms", "30s", "5m", "1h" -> milliseconds, 1 to SNAP_POLICY_MAX_IDLE_MS:
 * 0 or -EINVAL/-ERANGE. */
int snap_policy__parse_duration_ms(const char *s, uint32_t *ms);

/* The form parse reads back: "default", "off", "on", "on,max=100,idle=5s". */
void snap_policy__format(const struct snap_policy *p, char *buf, size_t len);

/* For people: "service default", "off", "on (max 1000 reuses, idle 60 s)". */
void snap_policy__describe(const struct snap_policy *p, char *buf, size_t len);

/* What a run of a template with policy tmpl gets from a service whose
 * default is def: tmpl unless it is "not set", else def (off if that is not
 * set either); recycle OFF or ON, and an ON policy's idle_ms filled in. */
struct snap_policy snap_policy__effective(const struct snap_policy *tmpl,
					  const struct snap_policy *def);
#endif
