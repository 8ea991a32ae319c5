/* nn_place: rack topology and HDFS's default replica placement.
 * The topology is a file of "host rack" lines ('#' starts a comment);
 * hosts not listed are on /default-rack. Placement is a pure function
 * over a snapshot of candidate nodes, so it is unit-testable; callers hold
 * the namenode lock. */
#ifndef NN_PLACE_H
#define NN_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NN_DEFAULT_RACK "/default-rack"

typedef struct nn_topology nn_topology;

/* NULL file = everything on the default rack. 0, or -errno with a message
 * naming the line in err and *out NULL. */
int nn_topology_load(const char *file, nn_topology **out, char *err, size_t errlen);
const char *nn_topology_rack(const nn_topology *t, const char *host);
void nn_topology_free(nn_topology *t);

typedef struct nn_candidate {
	const char *host;
	const char *rack;
	uint64_t remaining; /* bytes free */
	bool usable;	    /* alive, not excluded, not decommissioning, has room */
} nn_candidate;

/* Choose up to want targets among c[0..n) and write their indices to out
 * in pipeline order. chosen[0..nchosen) are nodes that already hold the
 * block (re-replication): new targets avoid their hosts and follow the
 * rack rule relative to them. writer_host, if it is a usable candidate's
 * host, gets the first replica. Returns how many were chosen. seed makes
 * the random choice among equals reproducible in tests. */
size_t nn_place_choose(const nn_candidate *c, size_t n, const char *writer_host, const int *chosen,
		       size_t nchosen, size_t want, int *out, uint64_t *seed);

#endif
