/* nn_place: see nn_place.h. */
#include "nn_place.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_util.h"

struct nn_topology {
	size_t n;
	char **host;
	char **rack;
};

int nn_topology_load(const char *file, nn_topology **out, char *err, size_t errlen)
{
	nn_topology *t = xcalloc(1, sizeof(*t));
	*out = NULL;
	if (!file || !*file) {
		*out = t;
		return 0;
	}
	FILE *f = fopen(file, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "cannot open topology file '%s': %s", file, strerror(e));
		nn_topology_free(t);
		return -e;
	}
	char line[1024];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *save, *h = strtok_r(line, " \t\r\n", &save);
		if (!h || h[0] == '#')
			continue;
		char *r = strtok_r(NULL, " \t\r\n", &save);
		if (!r || r[0] != '/' || strtok_r(NULL, " \t\r\n", &save)) {
			snprintf(err, errlen, "%s line %d: expected 'host /rack'", file, lineno);
			rc = -EINVAL;
			break;
		}
		t->host = xrealloc(t->host, (t->n + 1) * sizeof(char *));
		t->rack = xrealloc(t->rack, (t->n + 1) * sizeof(char *));
		t->host[t->n] = xstrdup(h);
		t->rack[t->n] = xstrdup(r);
		t->n++;
	}
	fclose(f);
	if (rc < 0) {
		nn_topology_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

const char *nn_topology_rack(const nn_topology *t, const char *host)
{
	for (size_t i = 0; t && i < t->n; i++)
		if (!strcmp(t->host[i], host))
			return t->rack[i];
	return NN_DEFAULT_RACK;
}

void nn_topology_free(nn_topology *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->host[i]);
		free(t->rack[i]);
	}
	free(t->host);
	free(t->rack);
	free(t);
}

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64*: placement only needs a cheap spread, not security */
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* A usable node on a host no chosen node uses, matching the rack rule
 * (rack_eq: same rack as `rack`; rack_ne: a different one; NULL: any).
 * Among matches, take two at random and keep the one with more room. */
static int pick(const nn_candidate *c, size_t n, const int *sel, size_t nsel, const char *rack_eq,
		const char *rack_ne, uint64_t *seed)
{
	int *ok = xmalloc(n * sizeof(int));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (!c[i].usable)
			continue;
		bool dup = false;
		for (size_t j = 0; j < nsel; j++)
			if (!strcmp(c[sel[j]].host, c[i].host))
				dup = true;
		if (dup)
			continue;
		if (rack_eq && strcmp(c[i].rack, rack_eq))
			continue;
		if (rack_ne && !strcmp(c[i].rack, rack_ne))
			continue;
		ok[m++] = (int)i;
	}
	int r = -1;
	if (m) {
		int a = ok[next_rand(seed) % m], b = ok[next_rand(seed) % m];
		r = c[a].remaining >= c[b].remaining ? a : b;
	}
	free(ok);
	return r;
}

size_t nn_place_choose(const nn_candidate *c, size_t n, const char *writer_host, const int *chosen,
		       size_t nchosen, size_t want, int *out, uint64_t *seed)
{
	int *sel = xmalloc((nchosen + want + 1) * sizeof(int));
	size_t nsel = nchosen, got = 0;
	if (nchosen)
		memcpy(sel, chosen, nchosen * sizeof(int));
	while (got < want) {
		int t = -1;
		size_t have = nsel;
		if (have == 0 && writer_host) {
			for (size_t i = 0; i < n; i++)
				if (c[i].usable && !strcmp(c[i].host, writer_host)) {
					t = (int)i;
					break;
				}
		}
		if (t < 0 && have == 1) /* second replica: another rack */
			t = pick(c, n, sel, nsel, NULL, c[sel[0]].rack, seed);
		if (t < 0 && have == 2 && !strcmp(c[sel[0]].rack, c[sel[1]].rack))
			/* the first two share a rack (a fallback or re-replication):
			 * the third goes to another rack if there is one */
			t = pick(c, n, sel, nsel, NULL, c[sel[0]].rack, seed);
		if (t < 0 && have == 2) /* third: the second's rack, another host */
			t = pick(c, n, sel, nsel, c[sel[1]].rack, NULL, seed);
		if (t < 0)
			t = pick(c, n, sel, nsel, NULL, NULL, seed);
		if (t < 0)
			break;
		sel[nsel++] = t;
		out[got++] = t;
	}
	free(sel);
	return got;
}
