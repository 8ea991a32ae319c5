/* cdl_config: one table per program drives the config file (inih, INI
 * format), command-line --key=value overrides, --help and a dump of the
 * effective values. A value of the wrong type or out of range is an error
 * naming the key. Used at start-up from one thread. */
#ifndef CDL_CONFIG_H
#define CDL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum cdl_cfg_type { CDL_CFG_INT, CDL_CFG_STR, CDL_CFG_BOOL };

typedef struct cdl_cfg_key {
	const char *name; /* key as written in the file and after "--" */
	enum cdl_cfg_type type;
	void *field;	  /* int64_t *, char ** (owned, freed by cdl_config_release) or bool * */
	const char *def;  /* default, as text */
	int64_t min, max; /* bounds for CDL_CFG_INT */
	const char *help;
} cdl_cfg_key;

/* Set every field to its default. */
void cdl_config_defaults(const cdl_cfg_key *tab);
/* Apply one key; 0 or -EINVAL with a message in err (size errlen). */
int cdl_config_set(const cdl_cfg_key *tab, const char *name, const char *value, char *err,
		   size_t errlen);
/* Load an INI file; keys are read from [section] and from the unnamed
 * top section. Unknown keys in that section are errors. 0 or -errno. */
int cdl_config_load(const cdl_cfg_key *tab, const char *file, const char *section, char *err,
		    size_t errlen);
/* The same for [section] alone (the unnamed top section is skipped). */
int cdl_config_load_only(const cdl_cfg_key *tab, const char *file, const char *section, char *err,
			 size_t errlen);
/* Consume --key=value and --key value arguments (and --config FILE first,
 * and --help). With --instance NAME, each file's [section.NAME] is applied
 * after its [section] (one daemon of several of a kind on a host: the
 * systemd template units' instance). Positional arguments are compacted to the front of argv and
 * their count returned in *npos. Returns 0, 1 if --help was printed, or
 * -EINVAL with a message in err. */
int cdl_config_args(const cdl_cfg_key *tab, const char *section, int argc, char **argv, int *npos,
		    char *err, size_t errlen);
/* --help: a usage line naming the program and the section, then the keys. */
void cdl_config_usage(const cdl_cfg_key *tab, const char *section, FILE *out);
void cdl_config_dump(const cdl_cfg_key *tab, FILE *out);
void cdl_config_release(const cdl_cfg_key *tab);

#endif
