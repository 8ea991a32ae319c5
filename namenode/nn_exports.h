/* nn_exports: which mounts (and job daemons) may act for other users, and
 * how, in the spirit of MooseFS's mfsexports.cfg. Read once at start-up;
 * read-only after, so any thread may match against it.
 *
 * One rule per line, the first that matches a caller wins:
 *
 *     # WHO                 OPTIONS
 *     mount:127.0.0.1       rw
 *     mount:10.1.*          ro,maproot=65534:65534
 *     192.168.0.0/16        rw,maproot=65534
 *
 * WHO is a certificate's "ROLE:NAME" (a shell pattern, fnmatch) or a
 * network, "ADDR/BITS" or one address, matched against the caller's IP.
 * OPTIONS, comma-separated: `rw` (default) or `ro` (every change refused
 * with EROFS), `maproot=UID[:GID]` (a caller claiming uid 0 acts as UID,
 * the root squash of NFS). A caller that no rule matches may not act for
 * anyone. Without an exports file every mount and job daemon certificate
 * may act for any uid, read and write (the local cluster's default). */
#ifndef NN_EXPORTS_H
#define NN_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cdl_sec.h"

typedef struct nn_export_rule {
	bool ro;      /* refuse every change with EROFS */
	bool maproot; /* a claimed uid 0 acts as root_uid:root_gid */
	uint32_t root_uid, root_gid;
} nn_export_rule;

typedef struct nn_exports nn_exports;

/* Parse file; 0, or -EINVAL / -errno with a message naming the line in err. */
int nn_exports_load(const char *file, nn_exports **out, char *err, size_t errlen);
/* The first rule matching p; NULL when none does. */
const nn_export_rule *nn_exports_match(const nn_exports *e, const cdl_peer *p);
void nn_exports_free(nn_exports *e);

#endif
