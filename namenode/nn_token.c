/* nn_token: the namenode's block access tokens. See nn_token.h. */
#include "nn_token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdl_log.h"

struct nn_token {
	cdl_keyring *kr;
	int64_t lifetime_ms, roll_ms;
};

nn_token *nn_token_new(int64_t lifetime_ms, int64_t roll_ms)
{
	nn_token *t = xcalloc(1, sizeof(*t));
	t->kr = cdl_keyring_new();
	t->lifetime_ms = lifetime_ms > 0 ? lifetime_ms : 600000;
	t->roll_ms = roll_ms > 0 ? roll_ms : 3600000;
	return t;
}

void nn_token_free(nn_token *t)
{
	if (!t)
		return;
	cdl_keyring_free(t->kr);
	free(t);
}

/* Roll the key if due; logs a failure (the old key, if any, still signs). */
static void roll(nn_token *t, int64_t now)
{
	int rc = cdl_keyring_roll(t->kr, now, t->roll_ms, t->lifetime_ms);
	if (rc < 0)
		cdl_err("cannot make a block-token key: %s", strerror(-rc));
}

ProtobufCBinaryData nn_token_make(nn_token *t, cdl_arena *a, uint64_t block, uint64_t gen,
				  uint32_t modes, uint64_t max_length,
				  Caudal__DatanodeInfo *const *dns, size_t ndns)
{
	ProtobufCBinaryData tok = {0, NULL};
	if (ndns > CDL_TOKEN_MAX_NODES)
		ndns = CDL_TOKEN_MAX_NODES;
	Caudal__DtTarget nodes[CDL_TOKEN_MAX_NODES];
	const Caudal__DtTarget *np[CDL_TOKEN_MAX_NODES];
	for (size_t i = 0; i < ndns; i++) {
		caudal__dt_target__init(&nodes[i]);
		nodes[i].host = dns[i]->host;
		nodes[i].port = dns[i]->data_port;
		nodes[i].id = dns[i]->id;
		np[i] = &nodes[i];
	}
	cdl_token_spec spec = {.block = block,
			       .gen = gen,
			       .modes = modes,
			       .max_length = max_length,
			       .nodes = np,
			       .nnodes = ndns,
			       .lifetime_ms = t->lifetime_ms};
	int64_t now = cdl_token_now_ms();
	roll(t, now);
	ProtobufCBinaryData out;
	int rc = cdl_token_sign(t->kr, &spec, now, &out);
	if (rc < 0) {
		cdl_err("cannot sign a token for block %llu: %s", (unsigned long long)block,
			strerror(-rc));
		return tok;
	}
	tok.data = cdl_arena_alloc(a, out.len);
	memcpy(tok.data, out.data, out.len);
	tok.len = out.len;
	free(out.data);
	return tok;
}

void nn_token_located(nn_token *t, cdl_arena *a, Caudal__LocatedBlock *lb, uint32_t modes,
		      uint64_t max_length)
{
	lb->token = nn_token_make(t, a, lb->id, lb->gen, modes, max_length, lb->locs, lb->n_locs);
}

Caudal__BlockKey **nn_token_keys(nn_token *t, cdl_arena *a, size_t *n)
{
	int64_t now = cdl_token_now_ms();
	roll(t, now);
	return cdl_keyring_export(t->kr, a, now, n);
}

cdl_keyring *nn_token_keyring(nn_token *t)
{
	roll(t, cdl_token_now_ms());
	return t->kr;
}
