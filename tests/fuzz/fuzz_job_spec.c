/* libFuzzer: job spec files as a user may write them. The parser must
 * accept or refuse with a message, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>

#include "job_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	job_spec spec;
	char err[512];
	err[0] = '\0';
	int rc = job_spec_parse((const char *)data, size, &spec, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort(); /* a refusal always says why */
	job_spec_release(&spec);
	return 0;
}
