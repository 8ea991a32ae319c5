/* Unit test of WebHDFS's shared pieces (fs/cdl_web.h): a ticket signed by
 * the namenode verifies with the same keys and gives back what it names;
 * a ticket with any byte changed, one signed with another block-token key
 * or another namenode key, a truncated or oversized one, and one past its
 * expiry (and its grace) are refused; base64url round-trips and refuses
 * bytes outside its alphabet; JSON escapes every name (quotes, controls,
 * bytes that are not UTF-8); the errno -> status and exception table; the
 * path and parameter checks refuse '..', control characters (a %00 the
 * HTTP layer turned into 0x7f), overlong paths and malformed numbers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cdl_util.h"
#include "cdl_web.h"
#include "test.h"

static void test_tickets(void)
{
	cdl_keyring *kr = cdl_keyring_new();
	int64_t now = cdl_token_now_ms();
	CHECK_EQ(cdl_keyring_roll(kr, now, 3600000, 600000), 0);
	uint8_t nnkey[CDL_WEB_NNKEY], other[CDL_WEB_NNKEY];
	memset(nnkey, 7, sizeof(nnkey));
	memset(other, 8, sizeof(other));

	Caudal__WebTicketId id = CAUDAL__WEB_TICKET_ID__INIT;
	id.user = "user:alice";
	id.op = CAUDAL__WEB_OP__WEB_CREATE;
	id.path = "/a/b";
	id.datanode = "dn-1";
	id.nonce = 42;
	char *txt = NULL;
	CHECK_EQ(cdl_ticket_sign(kr, nnkey, &id, now, 60000, &txt), 0);
	uint8_t *raw;
	size_t len;
	CHECK_EQ(cdl_b64url_decode(txt, CDL_WEB_TICKET_MAX, &raw, &len), 0);

	Caudal__WebTicketId *got = NULL;
	const char *why = NULL;
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, len, now, 0, &got, &why), 0);
	CHECK(got && !strcmp(got->user, "user:alice") && !strcmp(got->path, "/a/b") &&
	      got->op == CAUDAL__WEB_OP__WEB_CREATE && !strcmp(got->datanode, "dn-1"));
	CHECK(got && got->expiry_ms == now + 60000);
	caudal__web_ticket_id__free_unpacked(got, NULL);
	/* a datanode checks the block-token MAC only */
	CHECK_EQ(cdl_ticket_verify(kr, NULL, raw, len, now, 0, &got, &why), 0);
	caudal__web_ticket_id__free_unpacked(got, NULL);

	/* every byte matters: the id, either MAC */
	int refused = 0;
	for (size_t i = 0; i < len; i++) {
		raw[i] ^= 0x20;
		if (cdl_ticket_verify(kr, nnkey, raw, len, now, 0, &got, &why) == -EACCES && !got)
			refused++;
		raw[i] ^= 0x20;
	}
	CHECK_EQ(refused, (long long)len);
	/* another namenode key: the namenode refuses, a datanode cannot tell */
	CHECK_EQ(cdl_ticket_verify(kr, other, raw, len, now, 0, &got, &why), -EACCES);
	CHECK(why && strstr(why, "namenode"));
	/* another block-token keyring: refused by both */
	cdl_keyring *kr2 = cdl_keyring_new();
	CHECK_EQ(cdl_keyring_roll(kr2, now, 3600000, 600000), 0);
	CHECK_EQ(cdl_ticket_verify(kr2, NULL, raw, len, now, 0, &got, &why), -EACCES);
	cdl_keyring_free(kr2);
	/* expiry, and the grace the namenode gives an operation under way */
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, len, now + 60000, 0, &got, &why), -EACCES);
	CHECK(why && strstr(why, "expired"));
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, len, now + 60000, 1000, &got, &why), 0);
	caudal__web_ticket_id__free_unpacked(got, NULL);
	/* truncated, empty, oversized */
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, len - 1, now, 0, &got, &why), -EACCES);
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, 10, now, 0, &got, &why), -EACCES);
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, NULL, 0, now, 0, &got, &why), -EACCES);
	CHECK_EQ(cdl_ticket_verify(kr, nnkey, raw, CDL_WEB_TICKET_MAX + 1, now, 0, &got, &why),
		 -EACCES);
	/* a ticket never outlives its key */
	char *txt2 = NULL;
	CHECK_EQ(cdl_ticket_sign(kr, nnkey, &id, now, INT64_MAX / 4, &txt2), 0);
	free(txt2);
	CHECK(id.expiry_ms <= now + 3600000 + 600000);
	free(raw);
	free(txt);
	/* no key yet: no ticket */
	cdl_keyring *empty = cdl_keyring_new();
	CHECK_EQ(cdl_ticket_sign(empty, nnkey, &id, now, 60000, &txt), -ENOKEY);
	cdl_keyring_free(empty);
	cdl_keyring_free(kr);
}

static void test_b64(void)
{
	for (size_t n = 0; n < 40; n++) {
		uint8_t in[40];
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(i * 37 + 200);
		char *s = cdl_b64url_encode(in, n);
		uint8_t *out;
		size_t ol;
		CHECK_EQ(cdl_b64url_decode(s, 100, &out, &ol), 0);
		CHECK(ol == n && !memcmp(in, out, n));
		CHECK(!strpbrk(s, "+/="));
		free(out);
		free(s);
	}
	uint8_t *out;
	size_t ol;
	CHECK_EQ(cdl_b64url_decode("ab+d", 100, &out, &ol), -EINVAL);
	CHECK_EQ(cdl_b64url_decode("abcde", 100, &out, &ol), -EINVAL);
	CHECK_EQ(cdl_b64url_decode("ab%d", 100, &out, &ol), -EINVAL);
	CHECK_EQ(cdl_b64url_decode("AAAAAAAA", 3, &out, &ol), -EINVAL);
	/* non-zero leftover bits: a second spelling of the same bytes */
	CHECK_EQ(cdl_b64url_decode("AB", 100, &out, &ol), -EINVAL);
}

static void test_json(void)
{
	char *s = cdl_web_dump(cdl_web_jstr("q\"b\\s\n\t\x01 \xc3\xa4"));
	CHECK(!strcmp(s, "\"q\\\"b\\\\s\\n\\t\\u0001 \xc3\xa4\"\n"));
	free(s);
	s = cdl_web_dump(cdl_web_jstr("a\xff\xfe"
				      "b\xc3"));
	CHECK(!strcmp(s, "\"a\xef\xbf\xbd\xef\xbf\xbd"
			 "b\xef\xbf\xbd\"\n"));
	free(s);
	s = cdl_web_exception_json("FileNotFoundException", "java.io.FileNotFoundException",
				   "no \"x\"");
	CHECK(!strcmp(s, "{\"RemoteException\":{\"exception\":\"FileNotFoundException\","
			 "\"javaClassName\":\"java.io.FileNotFoundException\","
			 "\"message\":\"no \\\"x\\\"\"}}\n"));
	free(s);
	Caudal__Attr a = CAUDAL__ATTR__INIT;
	a.ino = 77;
	a.mode = S_IFREG | 01640;
	a.uid = 0;
	a.gid = 0;
	a.size = 1234;
	a.mtime_ns = 5000000000LL;
	a.atime_ns = 7000000;
	a.block_size = 1 << 20;
	a.replication = 2;
	s = cdl_web_dump(cdl_web_file_status(&a, "f", NULL));
	CHECK(strstr(s, "\"type\":\"FILE\"") && strstr(s, "\"length\":1234") &&
	      strstr(s, "\"permission\":\"1640\"") && strstr(s, "\"modificationTime\":5000") &&
	      strstr(s, "\"accessTime\":7,") && strstr(s, "\"fileId\":77") &&
	      strstr(s, "\"owner\":\"root\"") && strstr(s, "\"replication\":2") &&
	      strstr(s, "\"pathSuffix\":\"f\""));
	free(s);
	a.mode = S_IFLNK | 0777;
	s = cdl_web_dump(cdl_web_file_status(&a, "", "/t"));
	CHECK(strstr(s, "\"type\":\"SYMLINK\"") && strstr(s, "\"symlink\":\"/t\"") &&
	      strstr(s, "\"length\":0"));
	free(s);

	unsigned code;
	const char *ex, *java;
	cdl_web_errno(-ENOENT, &code, &ex, &java);
	CHECK(code == 404 && !strcmp(ex, "FileNotFoundException"));
	cdl_web_errno(EACCES, &code, &ex, &java);
	CHECK(code == 403 && !strcmp(ex, "AccessControlException"));
	cdl_web_errno(-EEXIST, &code, &ex, &java);
	CHECK(code == 403 && !strcmp(ex, "FileAlreadyExistsException"));
	cdl_web_errno(-EINVAL, &code, &ex, &java);
	CHECK(code == 400 && !strcmp(ex, "IllegalArgumentException"));
	cdl_web_errno(-EIO, &code, &ex, &java);
	CHECK(code == 403 && !strcmp(ex, "IOException"));
}

static void test_checks_(void)
{
	const char *why;
	char *p = cdl_web_path("/webhdfs/v1", &why);
	CHECK(p && !strcmp(p, "/"));
	free(p);
	p = cdl_web_path("/webhdfs/v1//a///b/", &why);
	CHECK(p && !strcmp(p, "/a/b"));
	free(p);
	CHECK(!cdl_web_path("/webhdfs/v1/a/../b", &why));
	CHECK(!cdl_web_path("/webhdfs/v1/a/./b", &why));
	CHECK(!cdl_web_path("/webhdfs/v1/a\x7f"
			    "b",
			    &why)); /* a %00 */
	CHECK(!cdl_web_path("/webhdfs/v1/a\tb", &why));
	CHECK(!cdl_web_path("/webhdfs/v1x/a", &why));
	char *longp = xmalloc(CDL_WEB_PATH_MAX + 32);
	memcpy(longp, "/webhdfs/v1", 12);
	for (size_t i = strlen(longp); i < CDL_WEB_PATH_MAX + 20; i += 2)
		memcpy(longp + i, "/a", 3);
	CHECK(!cdl_web_path(longp, &why));
	free(longp);
	CHECK(!cdl_web_param_path("rel", &why));
	p = cdl_web_param_path("/x//y", &why);
	CHECK(p && !strcmp(p, "/x/y"));
	free(p);

	uint64_t v;
	CHECK(cdl_web_uint("0", 10, &v) && v == 0);
	CHECK(cdl_web_uint("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
	CHECK(!cdl_web_uint("18446744073709551616", UINT64_MAX, &v));
	CHECK(!cdl_web_uint("99999999999999999999999", UINT64_MAX, &v));
	CHECK(!cdl_web_uint("-1", 10, &v));
	CHECK(!cdl_web_uint("1x", 10, &v));
	CHECK(!cdl_web_uint("", 10, &v));
	CHECK(!cdl_web_uint("11", 10, &v));
	int64_t sv;
	CHECK(cdl_web_int("-1", &sv) && sv == -1);
	CHECK(!cdl_web_int("--1", &sv));
	uint32_t perm;
	CHECK(cdl_web_perm("755", &perm) && perm == 0755);
	CHECK(cdl_web_perm("1777", &perm) && perm == 01777);
	CHECK(!cdl_web_perm("7777", &perm));
	CHECK(!cdl_web_perm("8", &perm));
	bool b;
	CHECK(cdl_web_bool("TRUE", &b) && b);
	CHECK(!cdl_web_bool("yes", &b));

	cdl_peer pe = {.role = CDL_ROLE_INSECURE};
	memcpy(pe.name, "bob", 4);
	char ident[160];
	cdl_web_ident(&pe, ident, sizeof(ident));
	CHECK(!strcmp(ident, "insecure:bob"));
	cdl_peer back;
	CHECK(cdl_web_ident_parse(ident, &back) && back.role == CDL_ROLE_INSECURE &&
	      !strcmp(back.name, "bob"));
	CHECK(cdl_web_ident_parse("user:alice", &back) && back.role == CDL_ROLE_USER);
	CHECK(!cdl_web_ident_parse("nonsense", &back));
	CHECK(!cdl_web_ident_parse("insecure:", &back));
}

int main(void)
{
	test_tickets();
	test_b64();
	test_json();
	test_checks_();
	return TEST_DONE();
}
