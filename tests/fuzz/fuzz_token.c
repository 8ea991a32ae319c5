/* libFuzzer: block access tokens as a datanode receives them in a
 * DtHeader. Bytes as they come must never verify (nobody outside knows the
 * key) and never crash the parser; with the first byte odd, the rest is
 * signed with the datanode's key first, so the checks after the MAC (expiry,
 * block, generation, mode, the named datanodes) see hostile identifiers. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[CDL_TOKEN_SECRET] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cdl_keyring *kr;
	if (!kr) {
		kr = cdl_keyring_new();
		cdl_keyring_add(kr, 1, secret, INT64_MAX);
	}
	if (size == 0 || size > CDL_TOKEN_MAX + 64)
		return 0;
	bool sign = data[0] & 1;
	uint8_t *tok = malloc(size + CDL_TOKEN_MAC);
	size_t len = size - 1;
	memcpy(tok, data + 1, len);
	if (sign) {
		unsigned int ml = CDL_TOKEN_MAC;
		HMAC(EVP_sha256(), secret, sizeof(secret), tok, len, tok + len, &ml);
		len += CDL_TOKEN_MAC;
	}
	ProtobufCBinaryData t = {len, tok};
	Caudal__BlockTokenId *id = NULL;
	const char *why = NULL;
	int rc = cdl_token_check(kr, &t, 1000, 7, 3, CDL_TOKEN_READ, &id, &why);
	if (rc == 0) {
		if (!sign || !id || id->block != 7 || id->gen != 3 ||
		    !(id->modes & CDL_TOKEN_READ) || id->expiry_ms <= 1000 ||
		    id->n_nodes > CDL_TOKEN_MAX_NODES)
			abort(); /* accepted what it must not */
		(void)cdl_token_names_id(id, "dn");
		(void)cdl_token_names_addr(id, "127.0.0.1", 9866);
		caudal__block_token_id__free_unpacked(id, NULL);
	} else if (id || !why) {
		abort();
	}
	free(tok);
	return 0;
}
