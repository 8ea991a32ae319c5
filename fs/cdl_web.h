/* cdl_web: what the namenode's and the datanodes' WebHDFS share (issue 10;
 * the Hadoop WebHDFS REST API): the tickets a namenode's redirect carries
 * (caudal.proto WebTicketId, docs/decisions.md "Security"), the JSON of
 * FileStatus and RemoteException, the HTTP status and exception name of an
 * errno, and the checks of a request's path and parameters.
 *
 * A ticket is a packed WebTicketId, then CDL_TOKEN_MAC bytes of HMAC-SHA256
 * under the block-token key it names (datanodes hold those keys), then
 * CDL_TOKEN_MAC bytes under a secret only the namenode holds. On a URL it
 * travels as base64url without padding. */
#ifndef CDL_WEB_H
#define CDL_WEB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caudal.pb-c.h"
#include "cdl_sec.h"
#include "cdl_token.h"

#define CDL_WEB_PREFIX	   "/webhdfs/v1"
#define CDL_WEB_PATH_MAX   4096 /* bytes of a path (CDL_PATH_MAX) */
#define CDL_WEB_TICKET_MAX 4096 /* bytes of a ticket, before base64 */
#define CDL_WEB_NNKEY	   32	/* bytes of the namenode's own ticket secret */
#define CDL_WEB_PARAM_MAX  8192 /* bytes of one query parameter's value */
#define CDL_WEB_USER_MAX   127	/* bytes of a user name (cdl_peer.name) */

/* Sign id (key_id and expiry_ms are set here: now_ms + lifetime_ms, never
 * past the key's own expiry) with the block-token keyring's signing key
 * and nnkey; *out is the base64url text, malloc'd. 0, -ENOKEY (no key
 * yet), -EINVAL (too long). */
int cdl_ticket_sign(cdl_keyring *kr, const uint8_t nnkey[CDL_WEB_NNKEY], Caudal__WebTicketId *id,
		    int64_t now_ms, int64_t lifetime_ms, char **out);
/* Check a ticket's bytes: its length and form, the keyring MAC, and when
 * nnkey is given the namenode's MAC, and that now_ms is before its expiry
 * plus grace_ms. 0 with *out (free with caudal__web_ticket_id__free_unpacked),
 * or -EACCES with *why (a static string). */
int cdl_ticket_verify(cdl_keyring *kr, const uint8_t *nnkey, const uint8_t *tok, size_t len,
		      int64_t now_ms, int64_t grace_ms, Caudal__WebTicketId **out,
		      const char **why);

/* base64url (RFC 4648 §5) without padding. encode: malloc'd string.
 * decode: 0 and *out (malloc'd, *outlen bytes), or -EINVAL for any byte
 * outside the alphabet, a bad length, or more than max bytes. */
char *cdl_b64url_encode(const uint8_t *in, size_t len);
int cdl_b64url_decode(const char *in, size_t max, uint8_t **out, size_t *outlen);

/* Identities as tickets name them: "user:alice", "admin:root" (a peer's
 * certificate), "insecure:alice" (user.name on an insecure cluster). */
void cdl_web_ident(const cdl_peer *p, char *out, size_t len);
/* Parse one back into p (addr untouched); false when malformed. */
bool cdl_web_ident_parse(const char *s, cdl_peer *p);

/* The HTTP status, the exception's simple name and its Java class for an
 * errno (positive or negative), as Hadoop's WebHDFS ExceptionHandler
 * answers them: FileNotFoundException 404, AccessControlException 403, ... */
void cdl_web_errno(int err, unsigned *status, const char **exception, const char **java);
/* {"RemoteException":{"exception":...,"javaClassName":...,"message":...}},
 * compact, malloc'd. */
char *cdl_web_exception_json(const char *exception, const char *java, const char *message);
/* The RemoteException body for err (+ or -errno) with msg (NULL: its
 * strerror), malloc'd, and its HTTP status in *status: what both WebHDFS
 * sides answer an error with. */
char *cdl_web_error(int err, const char *msg, unsigned *status);

/* A JSON string of any bytes: valid UTF-8 as it is, each byte of an
 * invalid sequence as U+FFFD (JSON strings are Unicode). */
json_t *cdl_web_jstr(const char *s);
/* The FileStatus object of an inode: pathSuffix (may be ""), type,
 * length, owner and group names (uid and gid when the name is unknown on
 * this host), permission as octal text, times in ms, blockSize,
 * replication, fileId, and symlink when link is not NULL. */
json_t *cdl_web_file_status(const Caudal__Attr *a, const char *suffix, const char *link);
/* Dump j compactly (and decref it); malloc'd with a trailing newline. */
char *cdl_web_dump(json_t *j);

/* The file system path of a WebHDFS URL ("/webhdfs/v1/a/b" -> "/a/b";
 * "/webhdfs/v1" and "/webhdfs/v1/" -> "/"): repeated and trailing slashes
 * go; NULL with *why for what Caudal cannot name (a control character, a
 * '.' or '..' component, longer than CDL_WEB_PATH_MAX). malloc'd. */
char *cdl_web_path(const char *url, const char **why);
/* A path given as a parameter (RENAME destination): the same rules, and it
 * must be absolute. */
char *cdl_web_param_path(const char *s, const char **why);
/* Unsigned decimal in [0, max]; false otherwise (empty, sign, garbage,
 * overflow). */
bool cdl_web_uint(const char *s, uint64_t max, uint64_t *out);
/* A signed decimal (SETTIMES: -1 means unchanged). */
bool cdl_web_int(const char *s, int64_t *out);
/* "true"/"false" (case-insensitive); false when neither. */
bool cdl_web_bool(const char *s, bool *out);
/* Octal permission "755" (at most 01777); false otherwise. */
bool cdl_web_perm(const char *s, uint32_t *out);

#endif
