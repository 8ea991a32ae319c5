/* libFuzzer: bytes off the wire of a data-transfer connection. The header
 * reader must bound the length, reject bad magic and bad encodings, and
 * never crash; the frame decoder must reject any length over a chunk. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cdl_dt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 60000) /* what one pipe buffer holds */
		return 0;
	int p[2];
	if (pipe(p) < 0)
		return 0;
	if (size && write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	Caudal__DtHeader *h = NULL;
	if (cdl_dt_recv_header(p[0], &h) == 0) {
		if (!h || h->n_targets > CDL_DT_MAX_TARGETS)
			abort();
		protobuf_c_message_free_unpacked(&h->base, NULL);
	}
	close(p[0]);
	if (size >= CDL_DT_FRAME) {
		cdl_dt_frame f;
		if (cdl_dt_frame_decode(data, &f) == 0 && f.len > CDL_CHUNK)
			abort();
	}
	return 0;
}
