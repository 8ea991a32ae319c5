/* nn_token: the namenode's block access tokens (fs/cdl_token.h). Owns the
 * keyring that signs them: a new random key every token_key_roll_ms, old
 * keys kept until the last token they signed expires. Tokens go into every
 * LocatedBlock handed to a client (read for GetBlocks, write for AddBlock
 * and UpdatePipeline) and into every CMD_REPLICATE (copy); the keys go to
 * datanodes in register and heartbeat replies.
 *
 * Threads: any RPC worker (the keyring has its own mutex); replies are
 * built in the call's arena. */
#ifndef NN_TOKEN_H
#define NN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"
#include "cdl_token.h"
#include "cdl_util.h"

typedef struct nn_token nn_token;

/* lifetime_ms: how long a token is valid (0: 10 min); roll_ms: how often
 * the signing key changes (0: 1 hour). */
nn_token *nn_token_new(int64_t lifetime_ms, int64_t roll_ms);
void nn_token_free(nn_token *t);

/* A token for (block, gen) granting `modes` (CDL_TOKEN_* bits) on the
 * datanodes dns, with replicas of at most max_length bytes, allocated in a.
 * On a failure to sign (no random bytes) logs and leaves it empty: the
 * datanodes then refuse the operation. */
ProtobufCBinaryData nn_token_make(nn_token *t, cdl_arena *a, uint64_t block, uint64_t gen,
				  uint32_t modes, uint64_t max_length,
				  Caudal__DatanodeInfo *const *dns, size_t ndns);
/* Set lb->token for its id, gen and locations. */
void nn_token_located(nn_token *t, cdl_arena *a, Caudal__LocatedBlock *lb, uint32_t modes,
		      uint64_t max_length);
/* The keys datanodes need now (rolling first if due), in a. */
Caudal__BlockKey **nn_token_keys(nn_token *t, cdl_arena *a, size_t *n);

/* The keyring (rolled first if due), for other things signed under the
 * block-token keys (WebHDFS tickets, nn_web.h). */
cdl_keyring *nn_token_keyring(nn_token *t);

#endif
