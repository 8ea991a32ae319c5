/* cdl_config: see cdl_config.h. */
#include "cdl_config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cdl_util.h"

static const cdl_cfg_key *find_key(const cdl_cfg_key *tab, const char *name)
{
	for (; tab->name; tab++)
		if (!strcmp(tab->name, name))
			return tab;
	return NULL;
}

/* Integers accept k/m/g suffixes (powers of 1024) so sizes read naturally. */
static int parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	int64_t mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024LL * 1024 * 1024, end++;
	if (*end)
		return -EINVAL;
	if (v > INT64_MAX / mul || v < INT64_MIN / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int cdl_config_set(const cdl_cfg_key *tab, const char *name, const char *value, char *err,
		   size_t errlen)
{
	const cdl_cfg_key *k = find_key(tab, name);
	if (!k) {
		snprintf(err, errlen, "unknown config key '%s'", name);
		return -EINVAL;
	}
	switch (k->type) {
	case CDL_CFG_INT: {
		int64_t v;
		if (parse_int(value, &v) < 0) {
			snprintf(err, errlen, "config key '%s': '%s' is not an integer", name,
				 value);
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(err, errlen,
				 "config key '%s': %" PRId64 " is out of range [%" PRId64
				 ", %" PRId64 "]",
				 name, v, k->min, k->max);
			return -EINVAL;
		}
		*(int64_t *)k->field = v;
		break;
	}
	case CDL_CFG_STR: {
		char **f = k->field;
		free(*f);
		*f = xstrdup(value);
		break;
	}
	case CDL_CFG_BOOL: {
		bool *b = k->field;
		if (!strcasecmp(value, "1") || !strcasecmp(value, "true") ||
		    !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
			*b = true;
		else if (!strcasecmp(value, "0") || !strcasecmp(value, "false") ||
			 !strcasecmp(value, "no") || !strcasecmp(value, "off"))
			*b = false;
		else {
			snprintf(err, errlen, "config key '%s': '%s' is not a boolean", name,
				 value);
			return -EINVAL;
		}
		break;
	}
	}
	return 0;
}

void cdl_config_defaults(const cdl_cfg_key *tab)
{
	char err[256];
	for (const cdl_cfg_key *k = tab; k->name; k++) {
		if (k->type == CDL_CFG_STR)
			*(char **)k->field = NULL;
		if (k->def && cdl_config_set(tab, k->name, k->def, err, sizeof(err)) < 0) {
			fprintf(stderr, "bug: default of %s\n", err);
			abort();
		}
	}
}

struct load_ctx {
	const cdl_cfg_key *tab;
	const char *section;
	char *err;
	size_t errlen;
	int failed;
	bool only; /* the named section alone, not the unnamed top one */
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *c = user;
	if ((section[0] || c->only) && strcmp(section, c->section))
		return 1; /* another program's section */
	if (cdl_config_set(c->tab, name, value, c->err, c->errlen) < 0) {
		c->failed = 1;
		return 0;
	}
	return 1;
}

static int load(const cdl_cfg_key *tab, const char *file, const char *section, bool only, char *err,
		size_t errlen)
{
	char inner[256] = "";
	struct load_ctx c = {tab, section, inner, sizeof(inner), 0, only};
	int rc = ini_parse(file, ini_cb, &c);
	if (rc == -1) {
		snprintf(err, errlen, "cannot open config file '%s'", file);
		return -ENOENT;
	}
	if (rc != 0) {
		if (c.failed)
			snprintf(err, errlen, "%s line %d: %s", file, rc, inner);
		else
			snprintf(err, errlen, "%s line %d: syntax error", file, rc);
		return -EINVAL;
	}
	return 0;
}

int cdl_config_load(const cdl_cfg_key *tab, const char *file, const char *section, char *err,
		    size_t errlen)
{
	return load(tab, file, section, false, err, errlen);
}

int cdl_config_load_only(const cdl_cfg_key *tab, const char *file, const char *section, char *err,
			 size_t errlen)
{
	return load(tab, file, section, true, err, errlen);
}

/* The value of --NAME VALUE or --NAME=VALUE at argv[i], or NULL. */
static const char *meta_arg(int argc, char **argv, int i, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, name, n))
		return NULL;
	const char *rest = argv[i] + 2 + n;
	if (!*rest)
		return i + 1 < argc ? argv[i + 1] : NULL;
	return *rest == '=' ? rest + 1 : NULL;
}

int cdl_config_args(const cdl_cfg_key *tab, const char *section, int argc, char **argv, int *npos,
		    char *err, size_t errlen)
{
	const char *instance = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cdl_config_usage(tab, section, stdout);
			return 1;
		}
		const char *v = meta_arg(argc, argv, i, "instance");
		if (v)
			instance = v;
		else if (!strcmp(argv[i], "--instance")) {
			snprintf(err, errlen, "option '--instance' needs a value");
			return -EINVAL;
		}
	}
	char sub[128] = "";
	if (instance) {
		size_t n = strlen(instance);
		bool ok = n > 0 && n <= 64;
		for (size_t j = 0; ok && j < n; j++)
			ok = isalnum((unsigned char)instance[j]) || strchr("-_.", instance[j]);
		if (!ok) {
			snprintf(err, errlen,
				 "--instance '%.64s': want 1-64 letters, digits, '-', '_' or '.'",
				 instance);
			return -EINVAL;
		}
		snprintf(sub, sizeof(sub), "%s.%s", section, instance);
	}
	/* Config files are applied first so flags override them wherever they
	 * are; in each, [section] and then [section.instance]. */
	for (int i = 1; i < argc; i++) {
		const char *file = meta_arg(argc, argv, i, "config");
		if (!file && !strcmp(argv[i], "--config")) {
			snprintf(err, errlen, "option '--config' needs a value");
			return -EINVAL;
		}
		if (file) {
			int rc = cdl_config_load(tab, file, section, err, errlen);
			if (rc == 0 && *sub)
				rc = cdl_config_load_only(tab, file, sub, err, errlen);
			if (rc < 0)
				return rc;
		}
	}
	int pos = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (!strcmp(a, "--config") || !strcmp(a, "--instance")) {
			i++;
			continue;
		}
		if (!strncmp(a, "--config=", 9) || !strncmp(a, "--instance=", 11))
			continue;
		if (strncmp(a, "--", 2) || !a[2]) {
			argv[pos++] = a;
			continue;
		}
		char name[128];
		const char *val;
		const char *eq = strchr(a + 2, '=');
		size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (nlen >= sizeof(name)) {
			snprintf(err, errlen, "option '%s' is too long", a);
			return -EINVAL;
		}
		memcpy(name, a + 2, nlen);
		name[nlen] = '\0';
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = '_';
		const cdl_cfg_key *k = find_key(tab, name);
		if (eq)
			val = eq + 1;
		else if (k && k->type == CDL_CFG_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "option '--%s' needs a value", name);
			return -EINVAL;
		}
		int rc = cdl_config_set(tab, name, val, err, errlen);
		if (rc < 0)
			return rc;
	}
	*npos = pos;
	return 0;
}

void cdl_config_usage(const cdl_cfg_key *tab, const char *section, FILE *out)
{
	fprintf(out,
		"usage: %s [--config FILE] [--instance NAME] [--KEY=VALUE | --KEY VALUE]...\n"
		"Settings come from the [%s] section of each --config FILE (and its unnamed\n"
		"top section), then from [%s.NAME] with --instance NAME (one of several\n"
		"daemons of a kind on a host, as the systemd template units run them), then\n"
		"from the flags, which win.\n"
		"options:\n",
		program_invocation_short_name, section, section);
	for (const cdl_cfg_key *k = tab; k->name; k++)
		fprintf(out, "  --%-20s %s (default %s)\n", k->name, k->help,
			k->def && *k->def ? k->def : "none");
}

void cdl_config_dump(const cdl_cfg_key *tab, FILE *out)
{
	for (const cdl_cfg_key *k = tab; k->name; k++) {
		switch (k->type) {
		case CDL_CFG_INT:
			fprintf(out, "%s = %" PRId64 "\n", k->name, *(int64_t *)k->field);
			break;
		case CDL_CFG_STR:
			fprintf(out, "%s = %s\n", k->name,
				*(char **)k->field ? *(char **)k->field : "");
			break;
		case CDL_CFG_BOOL:
			fprintf(out, "%s = %s\n", k->name, *(bool *)k->field ? "true" : "false");
			break;
		}
	}
}

void cdl_config_release(const cdl_cfg_key *tab)
{
	for (const cdl_cfg_key *k = tab; k->name; k++)
		if (k->type == CDL_CFG_STR) {
			free(*(char **)k->field);
			*(char **)k->field = NULL;
		}
}
