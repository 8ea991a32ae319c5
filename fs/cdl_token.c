/* cdl_token: block access tokens. See cdl_token.h. */
#include "cdl_token.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "cdl_util.h"

typedef struct key {
	uint32_t id;
	uint8_t secret[CDL_TOKEN_SECRET];
	int64_t active_ms; /* namenode: when it starts signing; 0 when received */
	int64_t expiry_ms; /* no token it signed is valid after this */
} key;

struct cdl_keyring {
	pthread_mutex_t mu;
	key keys[CDL_KEYRING_MAX]; /* oldest first; on the namenode keys[n - 1] is the next one */
	size_t n;
};

int64_t cdl_token_now_ms(void)
{
	return cdl_wall_ns() / 1000000;
}

cdl_keyring *cdl_keyring_new(void)
{
	cdl_keyring *kr = xcalloc(1, sizeof(*kr));
	pthread_mutex_init(&kr->mu, NULL);
	return kr;
}

void cdl_keyring_free(cdl_keyring *kr)
{
	if (!kr)
		return;
	OPENSSL_cleanse(kr->keys, sizeof(kr->keys));
	pthread_mutex_destroy(&kr->mu);
	free(kr);
}

/* Drop keys[i], keeping the order. Called with kr->mu held. */
static void drop_key(cdl_keyring *kr, size_t i)
{
	memmove(&kr->keys[i], &kr->keys[i + 1], (kr->n - i - 1) * sizeof(key));
	kr->n--;
	OPENSSL_cleanse(&kr->keys[kr->n], sizeof(key));
}

/* Forget expired keys. Called with kr->mu held. */
static void drop_expired(cdl_keyring *kr, int64_t now_ms)
{
	for (size_t i = 0; i < kr->n;)
		if (kr->keys[i].expiry_ms <= now_ms)
			drop_key(kr, i);
		else
			i++;
}

/* Append k as the newest key, dropping the oldest when full. Called with
 * kr->mu held. */
static void push_key(cdl_keyring *kr, const key *k)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->keys[i].id == k->id) {
			drop_key(kr, i);
			break;
		}
	if (kr->n == CDL_KEYRING_MAX)
		drop_key(kr, 0);
	kr->keys[kr->n++] = *k;
}

/* Make a random key that starts signing at active_ms. Called with kr->mu
 * held. */
static int make_key(cdl_keyring *kr, int64_t active_ms, int64_t roll_ms, int64_t lifetime_ms)
{
	int rc = 0;
	key k = {.active_ms = active_ms, .expiry_ms = active_ms + roll_ms + lifetime_ms};
	if (RAND_bytes(k.secret, sizeof(k.secret)) != 1 ||
	    RAND_bytes((unsigned char *)&k.id, sizeof(k.id)) != 1) {
		rc = -EIO;
	} else {
		/* a fresh random id, unlike any key still held */
		for (size_t i = 0; i < kr->n; i++)
			if (kr->keys[i].id == k.id) {
				k.id++;
				i = (size_t)-1;
			}
		push_key(kr, &k);
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int cdl_keyring_roll(cdl_keyring *kr, int64_t now_ms, int64_t roll_ms, int64_t lifetime_ms)
{
	int rc = 0;
	pthread_mutex_lock(&kr->mu);
	drop_expired(kr, now_ms);
	if (kr->n == 0)
		rc = make_key(kr, now_ms, roll_ms, lifetime_ms);
	/* the next key is made a roll ahead, so that datanodes hold it before
	 * the first token it signs reaches them */
	if (rc == 0 && kr->keys[kr->n - 1].active_ms <= now_ms) {
		int64_t next = kr->keys[kr->n - 1].active_ms + roll_ms;
		rc = make_key(kr, next > now_ms ? next : now_ms + roll_ms, roll_ms, lifetime_ms);
	}
	pthread_mutex_unlock(&kr->mu);
	return rc;
}

Caudal__BlockKey **cdl_keyring_export(cdl_keyring *kr, struct cdl_arena *a, int64_t now_ms,
				      size_t *n)
{
	pthread_mutex_lock(&kr->mu);
	drop_expired(kr, now_ms);
	Caudal__BlockKey **v = cdl_arena_alloc(a, (kr->n + 1) * sizeof(*v));
	for (size_t i = 0; i < kr->n; i++) {
		Caudal__BlockKey *k = cdl_arena_alloc(a, sizeof(*k));
		caudal__block_key__init(k);
		k->id = kr->keys[i].id;
		k->expiry_ms = kr->keys[i].expiry_ms;
		k->secret.len = CDL_TOKEN_SECRET;
		k->secret.data = cdl_arena_alloc(a, CDL_TOKEN_SECRET);
		memcpy(k->secret.data, kr->keys[i].secret, CDL_TOKEN_SECRET);
		v[i] = k;
	}
	*n = kr->n;
	pthread_mutex_unlock(&kr->mu);
	return v;
}

size_t cdl_keyring_set(cdl_keyring *kr, Caudal__BlockKey *const *keys, size_t n)
{
	if (n == 0)
		return cdl_keyring_count(kr);
	pthread_mutex_lock(&kr->mu);
	OPENSSL_cleanse(kr->keys, sizeof(kr->keys));
	kr->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!keys[i] || keys[i]->secret.len != CDL_TOKEN_SECRET)
			continue;
		key k = {.id = keys[i]->id, .expiry_ms = keys[i]->expiry_ms};
		memcpy(k.secret, keys[i]->secret.data, CDL_TOKEN_SECRET);
		push_key(kr, &k);
		OPENSSL_cleanse(&k, sizeof(k));
	}
	size_t kept = kr->n;
	pthread_mutex_unlock(&kr->mu);
	return kept;
}

void cdl_keyring_add(cdl_keyring *kr, uint32_t id, const uint8_t secret[CDL_TOKEN_SECRET],
		     int64_t expiry_ms)
{
	key k = {.id = id, .expiry_ms = expiry_ms};
	memcpy(k.secret, secret, CDL_TOKEN_SECRET);
	pthread_mutex_lock(&kr->mu);
	push_key(kr, &k);
	pthread_mutex_unlock(&kr->mu);
	OPENSSL_cleanse(&k, sizeof(k));
}

size_t cdl_keyring_count(cdl_keyring *kr)
{
	pthread_mutex_lock(&kr->mu);
	size_t n = kr->n;
	pthread_mutex_unlock(&kr->mu);
	return n;
}

/* Copy the key `id` (or with signing, the newest key active at now_ms)
 * if it is held and unexpired. */
static bool get_key(cdl_keyring *kr, bool signing, uint32_t id, int64_t now_ms, key *out)
{
	bool found = false;
	pthread_mutex_lock(&kr->mu);
	for (size_t i = kr->n; i-- > 0;) {
		if (signing ? kr->keys[i].active_ms > now_ms : kr->keys[i].id != id)
			continue;
		if (kr->keys[i].expiry_ms > now_ms) {
			*out = kr->keys[i];
			found = true;
		}
		break;
	}
	pthread_mutex_unlock(&kr->mu);
	return found;
}

static void mac_of(const key *k, const uint8_t *data, size_t len, uint8_t mac[CDL_TOKEN_MAC])
{
	unsigned int ml = CDL_TOKEN_MAC;
	if (!HMAC(EVP_sha256(), k->secret, CDL_TOKEN_SECRET, data, len, mac, &ml))
		abort(); /* only fails when OpenSSL cannot allocate */
}

int cdl_keyring_signer(cdl_keyring *kr, int64_t now_ms, uint32_t *id, int64_t *expiry_ms)
{
	key k;
	if (!get_key(kr, true, 0, now_ms, &k))
		return -ENOKEY;
	*id = k.id;
	*expiry_ms = k.expiry_ms;
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

int cdl_keyring_mac(cdl_keyring *kr, uint32_t id, int64_t now_ms, const void *data, size_t len,
		    uint8_t mac[CDL_TOKEN_MAC])
{
	key k;
	if (!get_key(kr, false, id, now_ms, &k))
		return -ENOKEY;
	mac_of(&k, data, len, mac);
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

int cdl_token_sign(cdl_keyring *kr, const cdl_token_spec *spec, int64_t now_ms,
		   ProtobufCBinaryData *out)
{
	if (spec->nnodes > CDL_TOKEN_MAX_NODES)
		return -EINVAL;
	key k;
	if (!get_key(kr, true, 0, now_ms, &k))
		return -ENOKEY;
	Caudal__BlockTokenId id = CAUDAL__BLOCK_TOKEN_ID__INIT;
	id.key_id = k.id;
	id.expiry_ms = now_ms + spec->lifetime_ms;
	/* a token never outlives its key */
	if (id.expiry_ms > k.expiry_ms)
		id.expiry_ms = k.expiry_ms;
	id.block = spec->block;
	id.gen = spec->gen;
	id.modes = spec->modes;
	id.max_length = spec->max_length;
	id.n_nodes = spec->nnodes;
	id.nodes = (Caudal__DtTarget **)spec->nodes;
	size_t len = caudal__block_token_id__get_packed_size(&id);
	if (len + CDL_TOKEN_MAC > CDL_TOKEN_MAX) {
		OPENSSL_cleanse(&k, sizeof(k));
		return -EINVAL;
	}
	uint8_t *buf = xmalloc(len + CDL_TOKEN_MAC);
	caudal__block_token_id__pack(&id, buf);
	mac_of(&k, buf, len, buf + len);
	OPENSSL_cleanse(&k, sizeof(k));
	out->data = buf;
	out->len = len + CDL_TOKEN_MAC;
	return 0;
}

int cdl_token_verify(cdl_keyring *kr, const ProtobufCBinaryData *tok, int64_t now_ms,
		     Caudal__BlockTokenId **out, const char **why)
{
	*out = NULL;
	if (!tok || tok->len == 0) {
		*why = "no block token";
		return -EACCES;
	}
	if (tok->len > CDL_TOKEN_MAX) {
		*why = "block token too long";
		return -EACCES;
	}
	if (tok->len <= CDL_TOKEN_MAC) {
		*why = "block token truncated";
		return -EACCES;
	}
	size_t len = tok->len - CDL_TOKEN_MAC;
	Caudal__BlockTokenId *id = caudal__block_token_id__unpack(NULL, len, tok->data);
	if (!id) {
		*why = "block token is garbage";
		return -EACCES;
	}
	key k;
	if (!get_key(kr, false, id->key_id, now_ms, &k)) {
		*why = "block token signed by an unknown or expired key";
		goto refuse;
	}
	uint8_t mac[CDL_TOKEN_MAC];
	mac_of(&k, tok->data, len, mac);
	OPENSSL_cleanse(&k, sizeof(k));
	if (CRYPTO_memcmp(mac, tok->data + len, CDL_TOKEN_MAC) != 0) {
		*why = "block token has a bad signature";
		goto refuse;
	}
	if (id->expiry_ms <= now_ms) {
		*why = "block token expired";
		goto refuse;
	}
	if (id->n_nodes > CDL_TOKEN_MAX_NODES) {
		*why = "block token names too many datanodes";
		goto refuse;
	}
	*out = id;
	return 0;
refuse:
	caudal__block_token_id__free_unpacked(id, NULL);
	return -EACCES;
}

int cdl_token_check(cdl_keyring *kr, const ProtobufCBinaryData *tok, int64_t now_ms, uint64_t block,
		    uint64_t gen, uint32_t modes, Caudal__BlockTokenId **out, const char **why)
{
	Caudal__BlockTokenId *id;
	int rc = cdl_token_verify(kr, tok, now_ms, &id, why);
	if (rc < 0)
		return rc;
	if (id->block != block) {
		*why = "block token is for another block";
		goto refuse;
	}
	if (gen == 0 || id->gen != gen) {
		*why = "block token is for another generation";
		goto refuse;
	}
	if (!(id->modes & modes)) {
		*why = "block token does not grant this access";
		goto refuse;
	}
	*out = id;
	return 0;
refuse:
	caudal__block_token_id__free_unpacked(id, NULL);
	*out = NULL;
	return -EACCES;
}

bool cdl_token_names_id(const Caudal__BlockTokenId *id, const char *dn_id)
{
	if (!dn_id || !*dn_id)
		return false;
	for (size_t i = 0; i < id->n_nodes; i++)
		if (id->nodes[i]->id && !strcmp(id->nodes[i]->id, dn_id))
			return true;
	return false;
}

bool cdl_token_names_addr(const Caudal__BlockTokenId *id, const char *host, uint32_t port)
{
	if (!host || !*host)
		return false;
	for (size_t i = 0; i < id->n_nodes; i++)
		if (id->nodes[i]->host && id->nodes[i]->port == port &&
		    !strcmp(id->nodes[i]->host, host))
			return true;
	return false;
}
