/* nn_exports: see nn_exports.h. */
#include "nn_exports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

/* Rules an exports file may hold: a bound on what a file makes us keep. */
#define MAX_RULES 4096

struct rule {
	bool net;		/* WHO is a network (else a certificate pattern) */
	int family;		/* AF_INET or AF_INET6, for networks */
	unsigned char addr[16]; /* network address */
	int bits;		/* prefix length */
	char *pattern;		/* certificate "ROLE:NAME" pattern */
	nn_export_rule r;
};

struct nn_exports {
	struct rule *rules;
	size_t n;
};

static int parse_net(const char *s, struct rule *ru)
{
	char buf[80];
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, ru->addr) == 1) {
		ru->family = AF_INET;
		ru->bits = 32;
	} else if (inet_pton(AF_INET6, buf, ru->addr) == 1) {
		ru->family = AF_INET6;
		ru->bits = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || b < 0 || b > ru->bits)
			return -EINVAL;
		ru->bits = (int)b;
	}
	ru->net = true;
	return 0;
}

static bool parse_uint32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v > UINT32_MAX - 2)
		return false;
	*out = (uint32_t)v;
	return true;
}

static int parse_opts(char *s, nn_export_rule *r, const char **why)
{
	for (char *save, *o = strtok_r(s, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "ro")) {
			r->ro = true;
		} else if (!strcmp(o, "rw")) {
			r->ro = false;
		} else if (!strncmp(o, "maproot=", 8)) {
			char *colon = strchr(o + 8, ':');
			if (colon)
				*colon = '\0';
			if (!parse_uint32(o + 8, &r->root_uid) ||
			    (colon && !parse_uint32(colon + 1, &r->root_gid))) {
				*why = "maproot wants UID or UID:GID";
				return -EINVAL;
			}
			if (!colon)
				r->root_gid = r->root_uid;
			r->maproot = true;
		} else {
			*why = "unknown option (rw, ro, maproot=UID[:GID])";
			return -EINVAL;
		}
	}
	return 0;
}

void nn_exports_free(nn_exports *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->rules[i].pattern);
	free(e->rules);
	free(e);
}

int nn_exports_load(const char *file, nn_exports **out, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(file, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "cannot open exports file '%s': %s", file, strerror(e));
		return -e;
	}
	nn_exports *e = xcalloc(1, sizeof(*e));
	char line[1024];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		const char *why = NULL;
		if (!strchr(line, '\n') && !feof(f)) {
			why = "line too long";
			goto bad;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save, *who = strtok_r(line, " \t\r\n", &save);
		if (!who)
			continue;
		char *opts = strtok_r(NULL, " \t\r\n", &save);
		if (strtok_r(NULL, " \t\r\n", &save)) {
			why = "more than WHO and OPTIONS";
			goto bad;
		}
		if (e->n == MAX_RULES) {
			why = "too many rules";
			goto bad;
		}
		struct rule ru;
		memset(&ru, 0, sizeof(ru));
		if (parse_net(who, &ru) < 0) {
			/* a certificate pattern: ROLE:NAME, the role spelled out */
			const char *colon = strchr(who, ':');
			char role[32];
			size_t rl = colon ? (size_t)(colon - who) : 0;
			if (strcmp(who, "*") != 0) {
				if (!colon || rl == 0 || rl >= sizeof(role)) {
					why =
					    "WHO is ROLE:NAME (a pattern), an address or ADDR/BITS";
					goto bad;
				}
				memcpy(role, who, rl);
				role[rl] = '\0';
				if (cdl_role_parse(role) == CDL_ROLE_NONE &&
				    strcmp(role, "*") != 0) {
					why = "unknown role";
					goto bad;
				}
			}
			ru.pattern = xstrdup(who);
		}
		if (opts && parse_opts(opts, &ru.r, &why) < 0) {
			free(ru.pattern);
			goto bad;
		}
		e->rules = xrealloc(e->rules, (e->n + 1) * sizeof(*e->rules));
		e->rules[e->n++] = ru;
		continue;
	bad:
		snprintf(err, errlen, "exports file '%s' line %d: %s", file, lineno, why);
		rc = -EINVAL;
		break;
	}
	fclose(f);
	if (rc < 0) {
		nn_exports_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

static bool net_match(const struct rule *ru, const char *addr)
{
	unsigned char a[16];
	int fam = inet_pton(AF_INET, addr, a) == 1    ? AF_INET
		  : inet_pton(AF_INET6, addr, a) == 1 ? AF_INET6
						      : 0;
	if (fam != ru->family)
		return false;
	int full = ru->bits / 8, rest = ru->bits % 8;
	if (memcmp(a, ru->addr, (size_t)full) != 0)
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((a[full] & mask) != (ru->addr[full] & mask))
			return false;
	}
	return true;
}

const nn_export_rule *nn_exports_match(const nn_exports *e, const cdl_peer *p)
{
	char who[200];
	snprintf(who, sizeof(who), "%s:%s", cdl_role_name(p->role), p->name);
	for (size_t i = 0; i < e->n; i++) {
		const struct rule *ru = &e->rules[i];
		if (ru->net ? net_match(ru, p->addr) : fnmatch(ru->pattern, who, 0) == 0)
			return &ru->r;
	}
	return NULL;
}
