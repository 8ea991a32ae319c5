/* cdl_checksum: XXH3-64 over data chunks. Blocks are checksummed per
 * CDL_CHUNK (64 KiB) chunk; the sidecar file is an array of little-endian
 * uint64, one per chunk. Stateless and thread-safe. */
#ifndef CDL_CHECKSUM_H
#define CDL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define CDL_CHUNK (64 * 1024)

uint64_t cdl_xxh3(const void *data, size_t len);

#endif
