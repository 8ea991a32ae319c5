/* cdl_checksum: see cdl_checksum.h. */
#include "cdl_checksum.h"

#include <xxhash.h>

uint64_t cdl_xxh3(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}
