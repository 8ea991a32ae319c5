/* nn_hosts: see nn_hosts.h. */
#include "nn_hosts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cdl_log.h"
#include "cdl_util.h"

#define LINE_MAX_LEN 4096
#define HOST_MAX     253 /* a DNS name */
#define ADDRS_MAX    16	 /* addresses kept per name */

struct entry {
	char *host;    /* as written (without brackets) */
	unsigned port; /* 0: any */
	char **addrs;  /* what a name resolved to */
	size_t naddrs;
};

struct nn_hosts {
	struct entry *e;
	size_t n;
};

void nn_hosts_free(nn_hosts *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->e[i].host);
		for (size_t j = 0; j < h->e[i].naddrs; j++)
			free(h->e[i].addrs[j]);
		free(h->e[i].addrs);
	}
	free(h->e);
	free(h);
}

size_t nn_hosts_count(const nn_hosts *h)
{
	return h ? h->n : 0;
}

/* A host name: letters, digits, '-', '_' and '.', labels not empty. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > HOST_MAX || s[0] == '.' || s[0] == '-' || strstr(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* The addresses name resolves to (none when it does not: a warning). */
static void resolve(struct entry *e, const char *file, int lineno)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, e->host, buf) == 1 || inet_pton(AF_INET6, e->host, buf) == 1)
		return; /* an address is matched as written */
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(e->host, NULL, &hints, &res);
	if (rc != 0) {
		cdl_warn("hosts file '%s' line %d: '%s' does not resolve (%s): it matches by name "
			 "only",
			 file, lineno, e->host, gai_strerror(rc));
		return;
	}
	for (struct addrinfo *a = res; a && e->naddrs < ADDRS_MAX; a = a->ai_next) {
		char s[INET6_ADDRSTRLEN];
		const void *p = a->ai_family == AF_INET
				    ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
				    : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    !inet_ntop(a->ai_family, p, s, sizeof(s)))
			continue;
		e->addrs = xrealloc(e->addrs, (e->naddrs + 1) * sizeof(char *));
		e->addrs[e->naddrs++] = xstrdup(s);
	}
	freeaddrinfo(res);
}

/* One entry (tok, modified) into e; a reason when it is not one. */
static const char *parse_entry(char *tok, struct entry *e)
{
	char *host = tok, *port = NULL;
	unsigned char buf[16];
	if (tok[0] == '[') {
		char *close = strchr(tok, ']');
		if (!close || (close[1] && close[1] != ':'))
			return "an IPv6 address with a port is written [ADDR]:PORT";
		*close = '\0';
		host = tok + 1;
		port = close[1] ? close + 2 : NULL;
		if (inet_pton(AF_INET6, host, buf) != 1)
			return "not an IPv6 address in the brackets";
	} else if (strchr(tok, ':') != strrchr(tok, ':')) {
		if (inet_pton(AF_INET6, tok, buf) != 1)
			return "not an IPv6 address";
	} else if ((port = strchr(tok, ':'))) {
		*port++ = '\0';
	}
	if (inet_pton(AF_INET6, host, buf) != 1 && !name_ok(host))
		return "not a host name or address";
	e->port = 0;
	if (port) {
		char *end;
		errno = 0;
		long v = strtol(port, &end, 10);
		if (errno || end == port || *end || v < 1 || v > 65535)
			return "the port is not 1..65535";
		e->port = (unsigned)v;
	}
	e->host = xstrdup(host);
	return NULL;
}

int nn_hosts_load(const char *file, nn_hosts **out, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(file, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "cannot open hosts file '%s': %s", file, strerror(e));
		return -e;
	}
	nn_hosts *h = xcalloc(1, sizeof(*h));
	char *line = xmalloc(LINE_MAX_LEN + 2);
	int lineno = 0, rc = 0;
	size_t total = 0;
	while (rc == 0 && fgets(line, LINE_MAX_LEN + 2, f)) {
		lineno++;
		size_t len = strlen(line);
		total += len;
		if (total > NN_HOSTS_MAX_BYTES) {
			snprintf(err, errlen, "hosts file '%s': larger than %d bytes", file,
				 NN_HOSTS_MAX_BYTES);
			rc = -EFBIG;
			break;
		}
		if (len > LINE_MAX_LEN && line[len - 1] != '\n') {
			snprintf(err, errlen, "hosts file '%s' line %d: longer than %d bytes", file,
				 lineno, LINE_MAX_LEN);
			rc = -EINVAL;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		for (char *save, *tok = strtok_r(line, " \t\r\n", &save); tok;
		     tok = strtok_r(NULL, " \t\r\n", &save)) {
			if (h->n == NN_HOSTS_MAX_ENTRIES) {
				snprintf(err, errlen,
					 "hosts file '%s' line %d: more than %d entries", file,
					 lineno, NN_HOSTS_MAX_ENTRIES);
				rc = -EINVAL;
				break;
			}
			char shown[64];
			snprintf(shown, sizeof(shown), "%s", tok);
			struct entry e = {0};
			const char *why = parse_entry(tok, &e);
			if (why) {
				snprintf(err, errlen, "hosts file '%s' line %d: '%s': %s", file,
					 lineno, shown, why);
				rc = -EINVAL;
				break;
			}
			resolve(&e, file, lineno);
			if (h->n % 64 == 0)
				h->e = xrealloc(h->e, (h->n + 64) * sizeof(*h->e));
			h->e[h->n++] = e;
		}
	}
	if (rc == 0 && ferror(f)) {
		int e = errno;
		snprintf(err, errlen, "cannot read hosts file '%s': %s", file, strerror(e));
		rc = -e;
	}
	fclose(f);
	free(line);
	if (rc < 0) {
		nn_hosts_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

bool nn_hosts_match(const nn_hosts *h, const char *host, unsigned port)
{
	for (size_t i = 0; h && i < h->n; i++) {
		const struct entry *e = &h->e[i];
		if (e->port && e->port != port)
			continue;
		if (!strcasecmp(e->host, host))
			return true;
		for (size_t j = 0; j < e->naddrs; j++)
			if (!strcmp(e->addrs[j], host))
				return true;
	}
	return false;
}
