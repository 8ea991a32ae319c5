/* Unit test of TLS on the data port (fs/cdl_dtls.h, encrypt_data): a CA
 * and a datanode certificate for 127.0.0.2 made in a temporary folder, two
 * datanode servers that take TLS only and one that takes both. A plaintext
 * write to a TLS-only server is refused; with TLS a pipeline write through
 * both (the first forwards over TLS too) reads back the same from each; a
 * datanode reached under a name its certificate does not carry is refused;
 * a server that does not require TLS serves both kinds. Prints what a
 * write and a read cost with and without TLS. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_dtls.h"
#include "cdl_log.h"
#include "cdl_sec.h"
#include "cdl_util.h"
#include "dn_store.h"
#include "dn_xfer.h"
#include "test.h"

#define TMO 10000

typedef struct node {
	char dir[256];
	dn_store *s;
	dn_xfer *x;
	Caudal__DtTarget t;
} node;

/* A server bound to bind_host, reached at 127.0.0.2 (its certificate's). */
static int start(node *n, const char *root, const char *name, const char *bind_host,
		 bool require_tls)
{
	snprintf(n->dir, sizeof(n->dir), "%s/%s", root, name);
	int rc = dn_store_open(n->dir, &n->s);
	if (rc < 0)
		return rc;
	dn_xfer_opts o = {.host = bind_host,
			  .port = 0,
			  .max_xceivers = 64,
			  .io_timeout_ms = TMO,
			  .require_tls = require_tls};
	if ((rc = dn_xfer_start(n->s, &o, &n->x)) < 0)
		return rc;
	caudal__dt_target__init(&n->t);
	n->t.host = "127.0.0.2";
	n->t.port = (uint32_t)dn_xfer_port(n->x);
	n->t.id = (char *)dn_store_id(n->s);
	return 0;
}

static void stop(node *n)
{
	dn_xfer_stop(n->x);
	dn_store_free(n->s);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

static int write_block(const Caudal__DtTarget *const *pipe, size_t np, uint64_t id,
		       const uint8_t *data, size_t len)
{
	cdl_block_writer *w;
	int rc = cdl_block_writer_open(pipe, np, id, 1, NULL, "test", TMO, &w);
	if (rc < 0)
		return rc;
	for (size_t off = 0; off < len && rc == 0; off += 1 << 20)
		rc = cdl_block_writer_write(w, data + off,
					    len - off < (1 << 20) ? len - off : 1 << 20);
	uint64_t got = 0;
	if (rc < 0) {
		cdl_block_writer_abort(w);
		return rc;
	}
	rc = cdl_block_writer_close(w, false, &got);
	return rc == 0 && got != len ? -EIO : rc;
}

/* Read the whole replica from host:port and compare it with data. */
static int read_same(const char *host, uint32_t port, uint64_t id, const uint8_t *data, size_t len)
{
	cdl_block_reader *r;
	int rc = cdl_block_reader_open(host, (int)port, id, 1, 0, 0, NULL, TMO, &r);
	if (rc < 0)
		return rc;
	uint8_t *buf = xmalloc(len + 1);
	size_t got = 0;
	ssize_t k;
	while ((k = cdl_block_reader_read(r, buf + got, len + 1 - got)) > 0)
		got += (size_t)k;
	cdl_block_reader_close(r);
	rc = k < 0 ? (int)k : got != len || memcmp(buf, data, len) ? -EIO : 0;
	free(buf);
	return rc;
}

/* MB/s of writing then reading len bytes through one node. */
static void measure(node *n, uint64_t id, const uint8_t *data, size_t len, const char *what)
{
	const Caudal__DtTarget *one[1] = {&n->t};
	int64_t t0 = cdl_now_ms();
	int wr = write_block(one, 1, id, data, len);
	int64_t t1 = cdl_now_ms();
	int rd = read_same("127.0.0.2", n->t.port, id, data, len);
	int64_t t2 = cdl_now_ms();
	CHECK_EQ(wr, 0);
	CHECK_EQ(rd, 0);
	printf("%s: write %.0f MB/s, read %.0f MB/s\n", what,
	       (double)len / 1e3 / (double)(t1 - t0 ? t1 - t0 : 1),
	       (double)len / 1e3 / (double)(t2 - t1 ? t2 - t1 : 1));
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[512];
	snprintf(root, sizeof(root), "%s/test_dn_dtls.XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	char *crt = xasprintf("%s/dn.crt", root), *key = xasprintf("%s/dn.key", root);
	char *ca = xasprintf("%s/ca.crt", root);
	CHECK_EQ(cdl_dtls_init(), -EINVAL); /* no identity yet */
	CHECK_EQ(cdl_cert_create_ca(root, "test"), 0);
	CHECK_EQ(cdl_cert_create(root, CDL_ROLE_DATANODE, "127.0.0.2", "127.0.0.2", crt, key, 1),
		 0);
	CHECK_EQ(cdl_sec_use(ca, crt, key), 0);
	CHECK_EQ(cdl_dtls_init(), 0);

	node a, b, both;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&both, 0, sizeof(both));
	if (start(&a, root, "a", "127.0.0.2", true) < 0 ||
	    start(&b, root, "b", "127.0.0.2", true) < 0 ||
	    start(&both, root, "both", "0.0.0.0", false) < 0) {
		fprintf(stderr, "cannot start the datanodes\n");
		return 1;
	}
	const Caudal__DtTarget *ab[2] = {&a.t, &b.t};
	size_t len = 5 * CDL_CHUNK + 77;
	uint8_t *data = xmalloc(len);
	fill(data, len, 1);

	/* plaintext to a TLS-only datanode: refused */
	CHECK(!cdl_dtls_client());
	CHECK_EQ(write_block(ab, 2, 1, data, len), -EACCES);
	CHECK(!dn_store_has(a.s, 1, 1, NULL));

	/* TLS: the pipeline a -> b, read back from each */
	cdl_dtls_set_client(true);
	CHECK(cdl_dtls_client());
	CHECK_EQ(write_block(ab, 2, 2, data, len), 0);
	CHECK_EQ(read_same("127.0.0.2", a.t.port, 2, data, len), 0);
	CHECK_EQ(read_same("127.0.0.2", b.t.port, 2, data, len), 0);
	uint64_t have = 0;
	CHECK(dn_store_has(b.s, 2, 1, &have) && have == len);

	/* a server that does not require TLS takes both */
	const Caudal__DtTarget *one[1] = {&both.t};
	CHECK_EQ(write_block(one, 1, 3, data, len), 0);
	/* reached at an address its certificate does not name: refused */
	CHECK_EQ(read_same("127.0.0.1", both.t.port, 3, data, len), -EACCES);
	cdl_dtls_set_client(false);
	CHECK_EQ(read_same("127.0.0.1", both.t.port, 3, data, len), 0);
	CHECK_EQ(write_block(one, 1, 4, data, len), 0);

	/* what TLS costs (one stream, loopback; printed, not asserted) */
	size_t big = 64u << 20;
	uint8_t *bd = xmalloc(big);
	fill(bd, big, 7);
	measure(&both, 10, bd, big, "plaintext");
	cdl_dtls_set_client(true);
	measure(&both, 11, bd, big, "TLS");
	cdl_dtls_set_client(false);
	free(bd);

	free(data);
	stop(&a);
	stop(&b);
	stop(&both);
	char *cmd = xasprintf("rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", root);
	free(cmd);
	free(crt);
	free(key);
	free(ca);
	return TEST_DONE();
}
