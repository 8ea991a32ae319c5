/* nn_hosts: the datanode hosts files, as HDFS's dfs.hosts and
 * dfs.hosts.exclude. One or more entries per line, separated by blanks;
 * '#' starts a comment. An entry is a host name or address, or
 * "HOST:PORT" (an IPv6 address with a port as "[ADDR]:PORT") naming one
 * datanode by its data port. A name matches by itself or by any address it
 * resolved to when the file was read.
 *
 *     # the datanodes of rack 1
 *     10.0.1.11 10.0.1.12
 *     dn13.example.org
 *     10.0.1.14:9866
 *
 * Read at start and by `caudal refresh-nodes`; a list is replaced whole,
 * and only while the namespace lock is held. */
#ifndef NN_HOSTS_H
#define NN_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds of a hosts file. */
#define NN_HOSTS_MAX_BYTES   (1 << 20)
#define NN_HOSTS_MAX_ENTRIES 100000

typedef struct nn_hosts nn_hosts;

/* Parse file; 0, or -EINVAL / -errno with a message naming the file and
 * the line in err (every bad line is a failure: a list half read would
 * let in or drain the wrong nodes). */
int nn_hosts_load(const char *file, nn_hosts **out, char *err, size_t errlen);
/* Does an entry name host (an address, as a datanode registers) with data
 * port port? */
bool nn_hosts_match(const nn_hosts *h, const char *host, unsigned port);
size_t nn_hosts_count(const nn_hosts *h);
void nn_hosts_free(nn_hosts *h);

#endif
