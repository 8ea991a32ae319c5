/* cdl_web: WebHDFS tickets, JSON and checks. See cdl_web.h. */
#include "cdl_web.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cdl_util.h"

/* ---------------------------------------------------------------- tickets */

static void nn_mac(const uint8_t key[CDL_WEB_NNKEY], const uint8_t *data, size_t len,
		   uint8_t mac[CDL_TOKEN_MAC])
{
	unsigned int ml = CDL_TOKEN_MAC;
	if (!HMAC(EVP_sha256(), key, CDL_WEB_NNKEY, data, len, mac, &ml))
		abort(); /* only fails when OpenSSL cannot allocate */
}

int cdl_ticket_sign(cdl_keyring *kr, const uint8_t nnkey[CDL_WEB_NNKEY], Caudal__WebTicketId *id,
		    int64_t now_ms, int64_t lifetime_ms, char **out)
{
	uint32_t kid;
	int64_t kexp;
	int rc = cdl_keyring_signer(kr, now_ms, &kid, &kexp);
	if (rc < 0)
		return rc;
	id->key_id = kid;
	id->expiry_ms = now_ms + lifetime_ms;
	if (id->expiry_ms > kexp)
		id->expiry_ms = kexp;
	size_t len = caudal__web_ticket_id__get_packed_size(id);
	if (len + 2 * CDL_TOKEN_MAC > CDL_WEB_TICKET_MAX)
		return -EINVAL;
	uint8_t *buf = xmalloc(len + 2 * CDL_TOKEN_MAC);
	caudal__web_ticket_id__pack(id, buf);
	rc = cdl_keyring_mac(kr, kid, now_ms, buf, len, buf + len);
	if (rc == 0) {
		nn_mac(nnkey, buf, len, buf + len + CDL_TOKEN_MAC);
		*out = cdl_b64url_encode(buf, len + 2 * CDL_TOKEN_MAC);
	}
	OPENSSL_cleanse(buf, len + 2 * CDL_TOKEN_MAC);
	free(buf);
	return rc;
}

int cdl_ticket_verify(cdl_keyring *kr, const uint8_t *nnkey, const uint8_t *tok, size_t len,
		      int64_t now_ms, int64_t grace_ms, Caudal__WebTicketId **out, const char **why)
{
	*out = NULL;
	if (!tok || len == 0) {
		*why = "no ticket";
		return -EACCES;
	}
	if (len > CDL_WEB_TICKET_MAX) {
		*why = "ticket too long";
		return -EACCES;
	}
	if (len <= 2 * CDL_TOKEN_MAC) {
		*why = "ticket truncated";
		return -EACCES;
	}
	size_t n = len - 2 * CDL_TOKEN_MAC;
	Caudal__WebTicketId *id = caudal__web_ticket_id__unpack(NULL, n, tok);
	if (!id) {
		*why = "ticket is garbage";
		return -EACCES;
	}
	uint8_t mac[CDL_TOKEN_MAC];
	if (cdl_keyring_mac(kr, id->key_id, now_ms, tok, n, mac) < 0) {
		*why = "ticket signed by an unknown or expired key";
		goto refuse;
	}
	if (CRYPTO_memcmp(mac, tok + n, CDL_TOKEN_MAC) != 0) {
		*why = "ticket has a bad signature";
		goto refuse;
	}
	if (nnkey) {
		nn_mac(nnkey, tok, n, mac);
		if (CRYPTO_memcmp(mac, tok + n + CDL_TOKEN_MAC, CDL_TOKEN_MAC) != 0) {
			*why = "ticket has a bad namenode signature";
			goto refuse;
		}
	}
	if (id->expiry_ms + grace_ms <= now_ms) {
		*why = "ticket expired";
		goto refuse;
	}
	if (!id->user || !id->path || !id->datanode || id->op == CAUDAL__WEB_OP__WEB_NONE) {
		*why = "ticket incomplete";
		goto refuse;
	}
	*out = id;
	return 0;
refuse:
	caudal__web_ticket_id__free_unpacked(id, NULL);
	return -EACCES;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cdl_b64url_encode(const uint8_t *in, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

static int b64val(unsigned char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int cdl_b64url_decode(const char *in, size_t max, uint8_t **out, size_t *outlen)
{
	size_t n = strlen(in);
	if (n % 4 == 1 || n / 4 * 3 + 2 > max + 2)
		return -EINVAL;
	uint8_t *buf = xmalloc(n / 4 * 3 + 3);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (o > max || acc != 0) { /* leftover bits must be zero: one text per value */
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = o;
	return 0;
}

void cdl_web_ident(const cdl_peer *p, char *out, size_t len)
{
	snprintf(out, len, "%s:%s",
		 p->role == CDL_ROLE_INSECURE ? "insecure" : cdl_role_name(p->role), p->name);
}

bool cdl_web_ident_parse(const char *s, cdl_peer *p)
{
	if (!strncmp(s, "insecure:", 9)) {
		size_t n = strlen(s + 9);
		if (n == 0 || n >= sizeof(p->name))
			return false;
		p->role = CDL_ROLE_INSECURE;
		memcpy(p->name, s + 9, n + 1);
		return true;
	}
	return cdl_peer_from_cn(s, strlen(s), p);
}

/* ---------------------------------------------------------------- errors */

void cdl_web_errno(int err, unsigned *status, const char **exception, const char **java)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENOENT:
	case EISDIR:
		*status = 404;
		*exception = "FileNotFoundException";
		*java = "java.io.FileNotFoundException";
		return;
	case EACCES:
	case EPERM:
	case EROFS:
		*status = 403;
		*exception = "AccessControlException";
		*java = "org.apache.hadoop.security.AccessControlException";
		return;
	case EEXIST:
		*status = 403;
		*exception = "FileAlreadyExistsException";
		*java = "org.apache.hadoop.fs.FileAlreadyExistsException";
		return;
	case ENOTDIR:
		*status = 403;
		*exception = "ParentNotDirectoryException";
		*java = "org.apache.hadoop.fs.ParentNotDirectoryException";
		return;
	case ENOTEMPTY:
		*status = 403;
		*exception = "PathIsNotEmptyDirectoryException";
		*java = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException";
		return;
	case EBUSY:
		*status = 403;
		*exception = "AlreadyBeingCreatedException";
		*java = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException";
		return;
	case EAGAIN:
		*status = 403;
		*exception = "SafeModeException";
		*java = "org.apache.hadoop.hdfs.server.namenode.SafeModeException";
		return;
	case EINVAL:
	case ENAMETOOLONG:
	case ERANGE:
	case E2BIG:
		*status = 400;
		*exception = "IllegalArgumentException";
		*java = "java.lang.IllegalArgumentException";
		return;
	case ENOTSUP:
	case ENOSYS:
		*status = 400;
		*exception = "UnsupportedOperationException";
		*java = "java.lang.UnsupportedOperationException";
		return;
	default: /* HDFS answers every other IOException 403 */
		*status = 403;
		*exception = "IOException";
		*java = "java.io.IOException";
		return;
	}
}

char *cdl_web_error(int err, const char *msg, unsigned *status)
{
	const char *ex, *java;
	cdl_web_errno(err, status, &ex, &java);
	return cdl_web_exception_json(ex, java, msg ? msg : strerror(err < 0 ? -err : err));
}

char *cdl_web_exception_json(const char *exception, const char *java, const char *message)
{
	json_t *e = json_object();
	json_object_set_new(e, "exception", json_string(exception));
	json_object_set_new(e, "javaClassName", json_string(java));
	json_object_set_new(e, "message", cdl_web_jstr(message));
	json_t *j = json_object();
	json_object_set_new(j, "RemoteException", e);
	return cdl_web_dump(j);
}

/* ---------------------------------------------------------------- JSON */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t min, cp;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		len = 2, min = 0x80, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		len = 3, min = 0x800, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		len = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *cdl_web_jstr(const char *s)
{
	size_t n = strlen(s);
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	/* invalid UTF-8: each bad byte becomes U+FFFD */
	char *buf = xmalloc(n * 3 + 1);
	size_t o = 0;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len(u + i, n - i);
		if (l) {
			memcpy(buf + o, u + i, l);
			o += l;
			i += l;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j ? j : json_string("");
}

json_t *cdl_web_file_status(const Caudal__Attr *a, const char *suffix, const char *link)
{
	json_t *j = json_object();
	char buf[512];
	json_object_set_new(j, "pathSuffix", cdl_web_jstr(suffix));
	const char *type = S_ISDIR(a->mode) ? "DIRECTORY" : S_ISLNK(a->mode) ? "SYMLINK" : "FILE";
	json_object_set_new(j, "type", json_string(type));
	json_object_set_new(j, "length", json_integer(S_ISREG(a->mode) ? (json_int_t)a->size : 0));
	struct passwd pw, *pp = NULL;
	struct group gr, *gp = NULL;
	char owner[32], group[32];
	if (getpwuid_r(a->uid, &pw, buf, sizeof(buf), &pp) == 0 && pp)
		json_object_set_new(j, "owner", cdl_web_jstr(pp->pw_name));
	else
		snprintf(owner, sizeof(owner), "%u", a->uid),
		    json_object_set_new(j, "owner", json_string(owner));
	if (getgrgid_r(a->gid, &gr, buf, sizeof(buf), &gp) == 0 && gp)
		json_object_set_new(j, "group", cdl_web_jstr(gp->gr_name));
	else
		snprintf(group, sizeof(group), "%u", a->gid),
		    json_object_set_new(j, "group", json_string(group));
	char perm[8];
	snprintf(perm, sizeof(perm), "%o", a->mode & 07777);
	json_object_set_new(j, "permission", json_string(perm));
	json_object_set_new(j, "accessTime", json_integer(a->atime_ns / 1000000));
	json_object_set_new(j, "modificationTime", json_integer(a->mtime_ns / 1000000));
	json_object_set_new(j, "blockSize",
			    json_integer(S_ISREG(a->mode) ? (json_int_t)a->block_size : 0));
	json_object_set_new(j, "replication",
			    json_integer(S_ISREG(a->mode) ? (json_int_t)a->replication : 0));
	json_object_set_new(j, "fileId", json_integer((json_int_t)a->ino));
	if (S_ISDIR(a->mode))
		json_object_set_new(j, "childrenNum", json_integer(0));
	json_object_set_new(j, "storagePolicy", json_integer(0));
	if (link)
		json_object_set_new(j, "symlink", cdl_web_jstr(link));
	return j;
}

char *cdl_web_dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (!s)
		abort(); /* only on allocation failure */
	char *out = xasprintf("%s\n", s);
	free(s);
	return out;
}

/* ---------------------------------------------------------------- checks */

static char *clean_path(const char *p, const char **why)
{
	size_t n = strlen(p);
	if (n > CDL_WEB_PATH_MAX) {
		*why = "path too long";
		return NULL;
	}
	char *out = xmalloc(n + 2);
	size_t o = 0;
	out[o++] = '/';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "path contains a control character";
			free(out);
			return NULL;
		}
		if (c == '/' && out[o - 1] == '/')
			continue;
		out[o++] = (char)c;
	}
	if (o > 1 && out[o - 1] == '/')
		o--;
	out[o] = '\0';
	if (cdl_path_check(out, why) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *cdl_web_path(const char *url, const char **why)
{
	size_t pl = strlen(CDL_WEB_PREFIX);
	if (strncmp(url, CDL_WEB_PREFIX, pl) || (url[pl] && url[pl] != '/')) {
		*why = "not a WebHDFS path";
		return NULL;
	}
	return clean_path(url + pl, why);
}

char *cdl_web_param_path(const char *s, const char **why)
{
	if (s[0] != '/') {
		*why = "path is not absolute";
		return NULL;
	}
	return clean_path(s, why);
}

bool cdl_web_uint(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 20)
		return false;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

bool cdl_web_int(const char *s, int64_t *out)
{
	if (!s)
		return false;
	bool neg = s[0] == '-';
	uint64_t v;
	if (!cdl_web_uint(s + neg, (uint64_t)INT64_MAX, &v))
		return false;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

bool cdl_web_bool(const char *s, bool *out)
{
	if (s && !strcasecmp(s, "true"))
		*out = true;
	else if (s && !strcasecmp(s, "false"))
		*out = false;
	else
		return false;
	return true;
}

bool cdl_web_perm(const char *s, uint32_t *out)
{
	if (!s || !*s || strlen(s) > 4)
		return false;
	uint32_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return false;
		v = v * 8 + (uint32_t)(*p - '0');
	}
	if (v > 01777)
		return false;
	*out = v;
	return true;
}
