/* The exports file: rules by certificate pattern and by network, the first
 * match wins, ro and maproot, no match means no rule, and every malformed
 * line is refused with its number. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_exports.h"
#include "test.h"

static char path[64];

static int load(const char *text, nn_exports **e, char *err, size_t n)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return nn_exports_load(path, e, err, n);
}

static cdl_peer peer(enum cdl_role role, const char *name, const char *addr)
{
	cdl_peer p;
	memset(&p, 0, sizeof(p));
	p.role = role;
	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.addr, sizeof(p.addr), "%s", addr);
	return p;
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/caudal-test-exports-%d", (int)getpid());
	char err[256];
	nn_exports *e = NULL;
	CHECK_EQ(load("# the local mount may do anything\n"
		      "mount:127.0.0.1   rw\n"
		      "mount:10.1.*      ro,maproot=65534:65533   # squashed, read-only\n"
		      "192.168.0.0/16    maproot=1000\n"
		      "tasktracker:*\n",
		      &e, err, sizeof(err)),
		 0);
	cdl_peer p = peer(CDL_ROLE_MOUNT, "127.0.0.1", "127.0.0.1");
	const nn_export_rule *r = nn_exports_match(e, &p);
	CHECK(r && !r->ro && !r->maproot);
	p = peer(CDL_ROLE_MOUNT, "10.1.2.3", "10.1.2.3");
	r = nn_exports_match(e, &p);
	CHECK(r && r->ro && r->maproot && r->root_uid == 65534 && r->root_gid == 65533);
	/* a network rule matches the address, whatever the certificate says */
	p = peer(CDL_ROLE_MOUNT, "laptop", "192.168.7.9");
	r = nn_exports_match(e, &p);
	CHECK(r && !r->ro && r->maproot && r->root_uid == 1000 && r->root_gid == 1000);
	p = peer(CDL_ROLE_MOUNT, "laptop", "192.169.7.9");
	CHECK(nn_exports_match(e, &p) == NULL);
	p = peer(CDL_ROLE_TASKTRACKER, "127.0.0.3", "127.0.0.1");
	r = nn_exports_match(e, &p);
	CHECK(r && !r->ro && !r->maproot);
	/* the role is part of the pattern: a tasktracker is not a mount */
	p = peer(CDL_ROLE_TASKTRACKER, "127.0.0.1", "10.0.0.1");
	CHECK(nn_exports_match(e, &p) != NULL);
	p = peer(CDL_ROLE_JOBTRACKER, "127.0.0.1", "10.0.0.1");
	CHECK(nn_exports_match(e, &p) == NULL);
	nn_exports_free(e);

	/* the first match wins */
	CHECK_EQ(load("mount:*  ro\nmount:127.0.0.1 rw\n", &e, err, sizeof(err)), 0);
	p = peer(CDL_ROLE_MOUNT, "127.0.0.1", "127.0.0.1");
	r = nn_exports_match(e, &p);
	CHECK(r && r->ro);
	nn_exports_free(e);

	/* IPv6 networks */
	CHECK_EQ(load("fd00::/8 ro\n", &e, err, sizeof(err)), 0);
	p = peer(CDL_ROLE_MOUNT, "x", "fd12::1");
	CHECK(nn_exports_match(e, &p) != NULL);
	p = peer(CDL_ROLE_MOUNT, "x", "fe80::1");
	CHECK(nn_exports_match(e, &p) == NULL);
	nn_exports_free(e);

	/* bad lines name themselves */
	const char *bad[] = {
	    "mount:127.0.0.1 rw\nwizard:x rw\n",
	    "mount:x bogus\n",
	    "mount:x maproot=\n",
	    "mount:x maproot=abc\n",
	    "10.0.0.0/33 rw\n",
	    "mount:x rw extra\n",
	    "justaname rw\n",
	    "mount:x maproot=4294967295\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = NULL;
		CHECK_EQ(load(bad[i], &e, err, sizeof(err)), -EINVAL);
		CHECK(e == NULL);
		CHECK(strstr(err, "line ") != NULL);
	}
	CHECK_EQ(load("wizard:x rw\n", &e, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 1") != NULL);
	CHECK_EQ(load("mount:a rw\n\n# c\nmount:b nope\n", &e, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 4") != NULL);
	/* a line longer than the buffer is an error, not two rules */
	char *huge = malloc(5000);
	memset(huge, 'a', 4998);
	memcpy(huge, "mount:", 6);
	huge[4998] = '\n';
	huge[4999] = '\0';
	CHECK_EQ(load(huge, &e, err, sizeof(err)), -EINVAL);
	free(huge);
	CHECK_EQ(nn_exports_load("/nonexistent/exports", &e, err, sizeof(err)), -ENOENT);
	unlink(path);
	return TEST_DONE();
}
