/* SPDX-License-Identifier: MIT */
/* A template's policy as text (snapshot/policy.h): parsed strictly. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "snapshot/policy.h"

/* Decimal digits only (at least one), no sign, no overflow past UINT64_MAX/10. */
static int parse_digits(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 19)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return 0;
}

int snap_policy__parse_duration_ms(const char *s, uint32_t *ms)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	size_t n = strspn(s, "0123456789");
	uint64_t v;

	if (parse_digits(s, n, &v) < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].unit))
			continue;
		if (v == 0 || v > SNAP_POLICY_MAX_IDLE_MS / units[i].ms)
			return -ERANGE;
		*ms = (uint32_t)(v * units[i].ms);
		return 0;
	}
	return -EINVAL;
}

/* One "key=value" item of an "on,..." policy (n bytes at item). */
static int parse_item(const char *item, size_t n, struct snap_policy *p, bool *seen_max,
		      bool *seen_idle, struct sb_err *err)
{
	char buf[80];
	uint64_t v;

	if (n == 0)
		return err__set(err, -EINVAL, "an empty setting (expected %s)", SNAP_POLICY_SYNTAX);
	if (n >= sizeof(buf))
		return err__set(err, -EINVAL, "setting '%.32s...' is too long (expected %s)", item,
				SNAP_POLICY_SYNTAX);
	memcpy(buf, item, n);
	buf[n] = 0;
	if (!strncmp(buf, "max=", 4)) {
		if (*seen_max)
			return err__set(err, -EINVAL, "max= given twice");
		*seen_max = true;
		if (parse_digits(buf + 4, n - 4, &v) < 0 || v < 1 || v > SNAP_POLICY_MAX_REUSES)
			return err__set(err, -EINVAL, "%s: expected a number of reuses from 1 to %u "
					"(leave max= out for no limit)", buf, SNAP_POLICY_MAX_REUSES);
		p->max_reuses = (uint32_t)v;
		return 0;
	}
	if (!strncmp(buf, "idle=", 5)) {
		uint32_t ms;

		if (*seen_idle)
			return err__set(err, -EINVAL, "idle= given twice");
		*seen_idle = true;
		if (snap_policy__parse_duration_ms(buf + 5, &ms) < 0)
			return err__set(err, -EINVAL, "%s: expected a duration such as 500ms, 30s or 5m, "
					"from 1ms to 24h", buf);
		p->idle_ms = ms;
		return 0;
	}
	return err__set(err, -EINVAL, "unknown setting '%s' (expected max=N or idle=DURATION)", buf);
}

int snap_policy__parse(const char *s, bool allow_default, struct snap_policy *p,
		       struct sb_err *err)
{
	size_t n = strcspn(s, ",");
	bool seen_max = false, seen_idle = false;

	memset(p, 0, sizeof(*p));
	if (n == 3 && !strncmp(s, "off", 3))
		p->recycle = SNAP_RECYCLE_OFF;
	else if (n == 2 && !strncmp(s, "on", 2))
		p->recycle = SNAP_RECYCLE_ON;
	else if (allow_default && n == 7 && !strncmp(s, "default", 7))
		p->recycle = SNAP_RECYCLE_DEFAULT;
	else
		return err__set(err, -EINVAL, "expected %s%s", SNAP_POLICY_SYNTAX,
				allow_default ? ", or default" : "");
	if (s[n] && p->recycle != SNAP_RECYCLE_ON)
		return err__set(err, -EINVAL, "only on takes max= and idle=");
	while (s[n]) {
		const char *item = s + n + 1;
		size_t k = strcspn(item, ",");
		int ret = parse_item(item, k, p, &seen_max, &seen_idle, err);

		if (ret < 0) {
			memset(p, 0, sizeof(*p));
			return ret;
		}
		n += 1 + k;
	}
	return 0;
}

static void fmt_idle(uint32_t ms, const char *sep, char *buf, size_t len)
{
	if (ms % 1000)
		snprintf(buf, len, "%u%sms", ms, sep);
	else
		snprintf(buf, len, "%u%ss", ms / 1000, sep);
}

void snap_policy__format(const struct snap_policy *p, char *buf, size_t len)
{
	char max[32] = "", idle[32] = "";

	if (p->recycle == SNAP_RECYCLE_DEFAULT) {
		snprintf(buf, len, "default");
		return;
	}
	if (p->recycle != SNAP_RECYCLE_ON) {
		snprintf(buf, len, "off");
		return;
	}
	if (p->max_reuses)
		snprintf(max, sizeof(max), ",max=%u", p->max_reuses);
	if (p->idle_ms) {
		strcpy(idle, ",idle=");
		fmt_idle(p->idle_ms, "", idle + 6, sizeof(idle) - 6);
	}
	snprintf(buf, len, "on%s%s", max, idle);
}

void snap_policy__describe(const struct snap_policy *p, char *buf, size_t len)
{
	char max[48], idle[32];

	if (p->recycle == SNAP_RECYCLE_DEFAULT) {
		snprintf(buf, len, "service default");
		return;
	}
	if (p->recycle != SNAP_RECYCLE_ON) {
		snprintf(buf, len, "off");
		return;
	}
	if (p->max_reuses)
		snprintf(max, sizeof(max), "max %u reuse%s", p->max_reuses, p->max_reuses == 1 ? "" : "s");
	else
		snprintf(max, sizeof(max), "no reuse limit");
	fmt_idle(p->idle_ms ? p->idle_ms : SNAP_POLICY_DEFAULT_IDLE_MS, " ", idle, sizeof(idle));
	snprintf(buf, len, "on (%s, idle %s%s)", max, idle, p->idle_ms ? "" : " by default");
}

struct snap_policy snap_policy__effective(const struct snap_policy *tmpl,
					  const struct snap_policy *def)
{
	struct snap_policy e = { .recycle = SNAP_RECYCLE_OFF };

	if (tmpl && tmpl->recycle != SNAP_RECYCLE_DEFAULT)
		e = *tmpl;
	else if (def && def->recycle != SNAP_RECYCLE_DEFAULT)
		e = *def;
	if (e.recycle != SNAP_RECYCLE_ON) {
		memset(&e, 0, sizeof(e));
		e.recycle = SNAP_RECYCLE_OFF;
		return e;
	}
	if (!e.idle_ms)
		e.idle_ms = SNAP_POLICY_DEFAULT_IDLE_MS;
	memset(e.reserved, 0, sizeof(e.reserved));
	return e;
}
