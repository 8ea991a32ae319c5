/* cdl_token: block access tokens (DESIGN.md, "Security"; HDFS's
 * BlockTokenSecretManager).
 *
 * A token is a packed Caudal__BlockTokenId (block, generation, modes, the
 * datanodes it may be used on, the largest replica it may write, expiry and
 * the id of the signing key) followed by CDL_TOKEN_MAC bytes of
 * HMAC-SHA256 over the packed bytes. The MAC covers exactly the bytes that
 * are parsed, so no canonical form is needed.
 *
 * A keyring holds the secret keys. The namenode's rolls (cdl_keyring_roll:
 * a new random key every roll interval, made one interval before it starts
 * signing so that every datanode holds it by then, the old ones kept until
 * the last token they signed has expired) and signs; a datanode's is
 * replaced by the set the namenode sends in every register and heartbeat
 * reply, and verifies. Expiry is wall-clock time (ms since the epoch), as the namenode
 * and the datanodes are different hosts.
 *
 * Threads: a keyring has its own mutex; every function may be called from
 * any thread. The secret is copied out under the mutex and the MAC computed
 * outside it. */
#ifndef CDL_TOKEN_H
#define CDL_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"

#define CDL_TOKEN_MAC	 32 /* HMAC-SHA256 */
#define CDL_TOKEN_SECRET 32 /* bytes of a key */
/* Longest token accepted (a DtHeader is at most 64 KiB anyway). */
#define CDL_TOKEN_MAX 8192
/* Most datanodes one token names. */
#define CDL_TOKEN_MAX_NODES 64
/* Most keys a keyring keeps (old keys beyond this are dropped). */
#define CDL_KEYRING_MAX 64

#define CDL_TOKEN_READ	  ((uint32_t)CAUDAL__BLOCK_ACCESS_MODE__BAM_READ)
#define CDL_TOKEN_WRITE	  ((uint32_t)CAUDAL__BLOCK_ACCESS_MODE__BAM_WRITE)
#define CDL_TOKEN_COPY	  ((uint32_t)CAUDAL__BLOCK_ACCESS_MODE__BAM_COPY)
#define CDL_TOKEN_REPLACE ((uint32_t)CAUDAL__BLOCK_ACCESS_MODE__BAM_REPLACE)

typedef struct cdl_keyring cdl_keyring;

cdl_keyring *cdl_keyring_new(void);
void cdl_keyring_free(cdl_keyring *kr);

/* Namenode: forget keys past their expiry, and keep a current key and the
 * next one: with none, one that signs from now on; whenever the newest key
 * has started signing, a next one that starts roll_ms after it. A key that
 * starts at t signs until t + roll_ms and expires at t + roll_ms +
 * lifetime_ms. 0, or -EIO when no random bytes could be had. */
int cdl_keyring_roll(cdl_keyring *kr, int64_t now_ms, int64_t roll_ms, int64_t lifetime_ms);
/* Namenode: the unexpired keys, for a register or heartbeat reply. The
 * array and the keys are allocated in arena a; *n is their number. */
struct cdl_arena;
Caudal__BlockKey **cdl_keyring_export(cdl_keyring *kr, struct cdl_arena *a, int64_t now_ms,
				      size_t *n);
/* Datanode: replace the keys with the namenode's set (keys with a secret
 * of the wrong size are skipped; an empty set changes nothing). Returns the
 * number of keys kept. */
size_t cdl_keyring_set(cdl_keyring *kr, Caudal__BlockKey *const *keys, size_t n);
/* Datanode and tests: add one key (replacing one with the same id). */
void cdl_keyring_add(cdl_keyring *kr, uint32_t id, const uint8_t secret[CDL_TOKEN_SECRET],
		     int64_t expiry_ms);
/* Keys held now. */
size_t cdl_keyring_count(cdl_keyring *kr);

/* What a new token grants; nodes are copied (host, port, id). */
typedef struct cdl_token_spec {
	uint64_t block, gen;
	uint32_t modes;	     /* CDL_TOKEN_* bits */
	uint64_t max_length; /* write/copy: most bytes one replica may hold */
	const Caudal__DtTarget *const *nodes;
	size_t nnodes;
	int64_t lifetime_ms; /* valid for this long from now */
} cdl_token_spec;

/* Sign a token with the current key, the newest one active at now_ms
 * (cdl_keyring_roll must have made one). *out is malloc'd (out->data),
 * the caller frees it. 0, -ENOKEY with no key, -EINVAL when the spec
 * names too many nodes. */
int cdl_token_sign(cdl_keyring *kr, const cdl_token_spec *spec, int64_t now_ms,
		   ProtobufCBinaryData *out);

/* Check a token's MAC and expiry and unpack what it grants (*id, freed by
 * the caller with caudal__block_token_id__free_unpacked). Returns 0 or
 * -EACCES with *why saying what was wrong (a static string): empty,
 * oversized or truncated token, garbage, unknown or expired key, bad MAC,
 * expired token. */
int cdl_token_verify(cdl_keyring *kr, const ProtobufCBinaryData *tok, int64_t now_ms,
		     Caudal__BlockTokenId **id, const char **why);

/* cdl_token_verify, and the token must grant one of the `modes` bits on
 * exactly (block, gen), gen not 0. Same returns. */
int cdl_token_check(cdl_keyring *kr, const ProtobufCBinaryData *tok, int64_t now_ms, uint64_t block,
		    uint64_t gen, uint32_t modes, Caudal__BlockTokenId **id, const char **why);

/* Whether the token names a datanode with this id (self check), or with
 * this host and port (a pipeline target). */
bool cdl_token_names_id(const Caudal__BlockTokenId *id, const char *dn_id);
bool cdl_token_names_addr(const Caudal__BlockTokenId *id, const char *host, uint32_t port);

/* Other signed things (WebHDFS tickets) under the same keys: the id and
 * expiry of the key that signs at now_ms (-ENOKEY without one), and the
 * HMAC-SHA256 of data under key id (-ENOKEY when it is not held or has
 * expired). */
int cdl_keyring_signer(cdl_keyring *kr, int64_t now_ms, uint32_t *id, int64_t *expiry_ms);
int cdl_keyring_mac(cdl_keyring *kr, uint32_t id, int64_t now_ms, const void *data, size_t len,
		    uint8_t mac[CDL_TOKEN_MAC]);

/* Wall-clock ms since the epoch: the clock token expiries use. */
int64_t cdl_token_now_ms(void);

#endif
