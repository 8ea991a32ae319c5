/* Unit test of block access tokens (fs/cdl_token.h): a token signed by the
 * namenode's keyring verifies on a datanode's keyring that got its keys by
 * export/set, and is refused for a wrong key, an expired token or key, a
 * wrong block, generation or mode, generation 0, a flipped bit, a
 * truncated token and garbage; keys roll and old ones stay valid until
 * their tokens expire. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caudal.pb-c.h"
#include "cdl_token.h"
#include "cdl_util.h"
#include "test.h"

#define LIFE 600000
#define ROLL 3600000

static Caudal__DtTarget node(const char *host, uint32_t port, const char *id)
{
	Caudal__DtTarget t = CAUDAL__DT_TARGET__INIT;
	t.host = (char *)host;
	t.port = port;
	t.id = (char *)id;
	return t;
}

/* Sign (block 7, gen 3, read|write, 1 MiB) on two nodes at now. */
static ProtobufCBinaryData sign(cdl_keyring *kr, int64_t now)
{
	Caudal__DtTarget a = node("127.0.0.2", 9866, "dn-a"), b = node("127.0.0.3", 9867, "dn-b");
	const Caudal__DtTarget *nodes[2] = {&a, &b};
	cdl_token_spec spec = {.block = 7,
			       .gen = 3,
			       .modes = CDL_TOKEN_READ | CDL_TOKEN_WRITE,
			       .max_length = 1 << 20,
			       .nodes = nodes,
			       .nnodes = 2,
			       .lifetime_ms = LIFE};
	ProtobufCBinaryData t = {0, NULL};
	CHECK_EQ(cdl_token_sign(kr, &spec, now, &t), 0);
	return t;
}

/* Give dn the keys nn holds, as a heartbeat reply does. */
static void push_keys(cdl_keyring *nn, cdl_keyring *dn, int64_t now)
{
	cdl_arena a;
	cdl_arena_init(&a);
	size_t n;
	Caudal__BlockKey **keys = cdl_keyring_export(nn, &a, now, &n);
	CHECK_EQ(cdl_keyring_set(dn, keys, n), n);
	cdl_arena_release(&a);
}

static int check(cdl_keyring *kr, const ProtobufCBinaryData *t, int64_t now, uint64_t block,
		 uint64_t gen, uint32_t modes)
{
	Caudal__BlockTokenId *id = NULL;
	const char *why = NULL;
	int rc = cdl_token_check(kr, t, now, block, gen, modes, &id, &why);
	if (rc == 0) {
		CHECK(id != NULL);
		caudal__block_token_id__free_unpacked(id, NULL);
	} else {
		CHECK(id == NULL && why && *why);
	}
	return rc;
}

int main(void)
{
	int64_t now = cdl_token_now_ms();
	cdl_keyring *nn = cdl_keyring_new(), *dn = cdl_keyring_new(), *other = cdl_keyring_new();

	/* no key yet: nothing is signed */
	Caudal__DtTarget a = node("h", 1, "x");
	const Caudal__DtTarget *ap[1] = {&a};
	cdl_token_spec spec = {.block = 1, .gen = 1, .modes = 1, .nodes = ap, .nnodes = 1};
	ProtobufCBinaryData none;
	CHECK_EQ(cdl_token_sign(nn, &spec, now, &none), -ENOKEY);

	CHECK_EQ(cdl_keyring_roll(nn, now, ROLL, LIFE), 0);
	CHECK_EQ(cdl_keyring_count(nn), 2); /* the current key and the next */
	CHECK_EQ(cdl_keyring_roll(other, now, ROLL, LIFE), 0);
	push_keys(nn, dn, now);

	/* a good token: what it grants, on whom */
	ProtobufCBinaryData t = sign(nn, now);
	CHECK(t.len > CDL_TOKEN_MAC);
	CHECK_EQ(check(dn, &t, now, 7, 3, CDL_TOKEN_READ), 0);
	CHECK_EQ(check(dn, &t, now + 1000, 7, 3, CDL_TOKEN_WRITE | CDL_TOKEN_COPY), 0);
	Caudal__BlockTokenId *id = NULL;
	const char *why = NULL;
	CHECK_EQ(cdl_token_verify(dn, &t, now, &id, &why), 0);
	if (id) {
		CHECK_EQ(id->max_length, 1 << 20);
		CHECK(cdl_token_names_id(id, "dn-a") && cdl_token_names_id(id, "dn-b"));
		CHECK(!cdl_token_names_id(id, "dn-c") && !cdl_token_names_id(id, ""));
		CHECK(cdl_token_names_addr(id, "127.0.0.3", 9867));
		CHECK(!cdl_token_names_addr(id, "127.0.0.3", 9866));
		CHECK(!cdl_token_names_addr(id, "10.0.0.1", 22));
		caudal__block_token_id__free_unpacked(id, NULL);
	}

	/* wrong block, generation, generation 0, mode */
	CHECK_EQ(check(dn, &t, now, 8, 3, CDL_TOKEN_READ), -EACCES);
	CHECK_EQ(check(dn, &t, now, 7, 4, CDL_TOKEN_READ), -EACCES);
	CHECK_EQ(check(dn, &t, now, 7, 0, CDL_TOKEN_READ), -EACCES);
	CHECK_EQ(check(dn, &t, now, 7, 3, CDL_TOKEN_COPY), -EACCES);
	CHECK_EQ(check(dn, &t, now, 7, 3, CDL_TOKEN_REPLACE), -EACCES);

	/* expired */
	CHECK_EQ(check(dn, &t, now + LIFE, 7, 3, CDL_TOKEN_READ), -EACCES);
	CHECK_EQ(check(dn, &t, now + LIFE - 1, 7, 3, CDL_TOKEN_READ), 0);

	/* a keyring without the key, and a key under the same id with another secret */
	CHECK_EQ(check(other, &t, now, 7, 3, CDL_TOKEN_READ), -EACCES);
	{
		CHECK_EQ(cdl_token_verify(dn, &t, now, &id, &why), 0);
		uint32_t kid = id ? id->key_id : 0;
		if (id)
			caudal__block_token_id__free_unpacked(id, NULL);
		cdl_keyring *forged = cdl_keyring_new();
		uint8_t secret[CDL_TOKEN_SECRET];
		memset(secret, 0x5a, sizeof(secret));
		cdl_keyring_add(forged, kid, secret, now + LIFE);
		CHECK_EQ(check(forged, &t, now, 7, 3, CDL_TOKEN_READ), -EACCES);
		cdl_keyring_free(forged);
	}

	/* every single flipped bit of the token is caught */
	{
		uint8_t *copy = xmalloc(t.len);
		ProtobufCBinaryData c = {t.len, copy};
		int accepted = 0;
		for (size_t i = 0; i < t.len * 8; i++) {
			memcpy(copy, t.data, t.len);
			copy[i / 8] ^= (uint8_t)(1u << (i % 8));
			accepted += check(dn, &c, now, 7, 3, CDL_TOKEN_READ) == 0;
		}
		CHECK_EQ(accepted, 0);
		free(copy);
	}

	/* truncated at every length, empty, oversized, garbage */
	{
		int accepted = 0;
		for (size_t n = 0; n < t.len; n++) {
			ProtobufCBinaryData c = {n, t.data};
			accepted += check(dn, &c, now, 7, 3, CDL_TOKEN_READ) == 0;
		}
		CHECK_EQ(accepted, 0);
		CHECK_EQ(check(dn, NULL, now, 7, 3, CDL_TOKEN_READ), -EACCES);
		uint8_t *big = xcalloc(1, CDL_TOKEN_MAX + 1);
		memcpy(big, t.data, t.len);
		ProtobufCBinaryData c = {CDL_TOKEN_MAX + 1, big};
		CHECK_EQ(check(dn, &c, now, 7, 3, CDL_TOKEN_READ), -EACCES);
		for (int i = 0; i < CDL_TOKEN_MAX + 1; i++)
			big[i] = (uint8_t)(i * 131 + 7);
		for (size_t n = 1; n <= 4096; n *= 2) {
			ProtobufCBinaryData g = {n, big};
			CHECK_EQ(check(dn, &g, now, 7, 3, CDL_TOKEN_READ), -EACCES);
		}
		free(big);
	}

	/* key roll: the next key signs after roll_ms, and a datanode that got
	 * the keys before the roll already holds it; tokens of the old key stay
	 * valid until they expire, then the old key is dropped */
	{
		cdl_keyring *early = cdl_keyring_new();
		push_keys(nn, early, now);
		CHECK_EQ(cdl_keyring_roll(nn, now + ROLL - 1, ROLL, LIFE), 0);
		CHECK_EQ(cdl_keyring_count(nn), 2);
		int64_t later = now + ROLL;
		CHECK_EQ(cdl_keyring_roll(nn, later, ROLL, LIFE), 0);
		CHECK_EQ(cdl_keyring_count(nn), 3);
		ProtobufCBinaryData rolled = sign(nn, later);
		CHECK_EQ(check(early, &rolled, later, 7, 3, CDL_TOKEN_READ), 0);
		Caudal__BlockTokenId *i0 = NULL, *i3 = NULL;
		CHECK_EQ(cdl_token_verify(early, &t, now, &i0, &why), 0);
		CHECK_EQ(cdl_token_verify(early, &rolled, later, &i3, &why), 0);
		CHECK(i0 && i3 && i0->key_id != i3->key_id);
		if (i0)
			caudal__block_token_id__free_unpacked(i0, NULL);
		if (i3)
			caudal__block_token_id__free_unpacked(i3, NULL);
		free(rolled.data);
		cdl_keyring_free(early);
		ProtobufCBinaryData t2 = sign(nn, later);
		Caudal__BlockTokenId *i1 = NULL, *i2 = NULL;
		push_keys(nn, dn, later);
		CHECK_EQ(cdl_token_verify(dn, &t, later, &i1, &why), -EACCES); /* t expired */
		CHECK_EQ(cdl_token_verify(dn, &t2, later, &i2, &why), 0);
		if (i2)
			caudal__block_token_id__free_unpacked(i2, NULL);
		/* a token the old key signed just before the roll */
		cdl_keyring *nn2 = cdl_keyring_new();
		CHECK_EQ(cdl_keyring_roll(nn2, now, ROLL, LIFE), 0);
		ProtobufCBinaryData before = sign(nn2, now + ROLL - 1);
		CHECK_EQ(cdl_keyring_roll(nn2, now + ROLL, ROLL, LIFE), 0);
		push_keys(nn2, dn, now + ROLL);
		CHECK_EQ(check(dn, &before, now + ROLL + LIFE - 10, 7, 3, CDL_TOKEN_READ), 0);
		CHECK_EQ(check(dn, &before, now + ROLL + LIFE, 7, 3, CDL_TOKEN_READ), -EACCES);
		/* once past its expiry the old key is dropped from the export */
		CHECK_EQ(cdl_keyring_roll(nn2, now + ROLL + LIFE, ROLL, LIFE), 0);
		CHECK_EQ(cdl_keyring_count(nn2), 2);
		push_keys(nn2, dn, now + ROLL + LIFE);
		CHECK_EQ(cdl_keyring_count(dn), 2);
		CHECK_EQ(check(dn, &before, now + ROLL + 1, 7, 3, CDL_TOKEN_READ), -EACCES);
		free(before.data);
		cdl_keyring_free(nn2);
		free(t2.data);
	}

	/* an empty key set leaves a datanode's keys alone; a bad secret size is skipped */
	{
		size_t had = cdl_keyring_count(dn);
		CHECK_EQ(cdl_keyring_set(dn, NULL, 0), had);
		Caudal__BlockKey k = CAUDAL__BLOCK_KEY__INIT;
		uint8_t s[5] = {1, 2, 3, 4, 5};
		k.id = 1;
		k.secret.data = s;
		k.secret.len = sizeof(s);
		k.expiry_ms = now + LIFE;
		Caudal__BlockKey *kp[1] = {&k};
		CHECK_EQ(cdl_keyring_set(dn, kp, 1), 0);
	}

	/* the cost a datanode pays per connection (printed, not asserted) */
	{
		ProtobufCBinaryData v = sign(nn, now + ROLL + 1);
		push_keys(nn, dn, now + ROLL + 1);
		int64_t t0 = cdl_wall_ns();
		int ok = 0;
		for (int i = 0; i < 20000; i++)
			ok += check(dn, &v, now + ROLL + 2, 7, 3, CDL_TOKEN_READ) == 0;
		CHECK_EQ(ok, 20000);
		printf("token check: %.2f us each (%zu-byte token)\n",
		       (double)(cdl_wall_ns() - t0) / 20000 / 1000, v.len);
		free(v.data);
	}

	free(t.data);
	cdl_keyring_free(nn);
	cdl_keyring_free(dn);
	cdl_keyring_free(other);
	return TEST_DONE();
}
