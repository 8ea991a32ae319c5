/* The namespace on a temporary RocksDB, driven through the real RPC layer:
 * directories, files, rename, delete, permissions, xattrs, leases, blocks
 * with registered datanodes, events, and persistence across a reopen. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caudal.pb-c.h"
#include "cdl_log.h"
#include "cdl_rpc.h"
#include "nn_ckpt.h"
#include "nn_check.h"
#include "nn_ns.h"
#include "test.h"
#include "nn_harness.h"

static cdl_rpc_client *cl, *dl;
static nn_ns *ns;
static cdl_rpc_server *srv;
static char dir[] = "/tmp/caudal-test-nn-XXXXXX";

static struct nn_harness nnh;

static void start(void)
{
	nn_conf c = nn_harness_conf(dir);
	nn_harness_start(&nnh, &c, 0);
	ns = nnh.ns, srv = nnh.srv, cl = nnh.cl, dl = nnh.dl;
}

static void stop_nn(void)
{
	nn_harness_stop(&nnh);
}

static Caudal__Cred root = CAUDAL__CRED__INIT;
static Caudal__Cred user = CAUDAL__CRED__INIT;

static const Caudal__Cred root_cred = CAUDAL__CRED__INIT;

/* Calls method m over the plaintext test server. A request without a Cred
 * acts as root here, as the client library fills in the caller's own; the
 * namenode itself refuses requests that carry none (see anon_refused). */
static void *call(const char *m, const void *req)
{
	return nn_harness_call(cl, m, req, &root_cred, 5000);
}

static void rfree(void *r)
{
	protobuf_c_message_free_unpacked(r, NULL);
}

static int mkdir_p(const char *path, bool parents, const Caudal__Cred *cred)
{
	Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0755;
	q.parents = parents;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Mkdir", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int create(const char *path, const char *client, bool overwrite, uint64_t *ino,
		  const Caudal__Cred *cred)
{
	Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = 0644;
	q.client = (char *)client;
	q.overwrite = overwrite;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Create", &q);
	int e = (int)r->err;
	if (!e && ino)
		*ino = r->attr->ino;
	rfree(r);
	return e;
}

static int complete(uint64_t ino, const char *client, uint64_t blk, uint64_t len)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	last.id = blk;
	last.length = len;
	q.last = &last;
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int stat_path(const char *path, Caudal__Attr *out, const Caudal__Cred *cred)
{
	Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("GetAttr", &q);
	int e = (int)r->err;
	if (!e && out) {
		*out = *r->attr;
	}
	rfree(r);
	return e;
}

static int del_as(const char *path, bool recursive, uint32_t kind, const Caudal__Cred *cred);

static int del(const char *path, bool recursive, uint32_t kind)
{
	return del_as(path, recursive, kind, NULL);
}

static int del_as(const char *path, bool recursive, uint32_t kind, const Caudal__Cred *cred)
{
	Caudal__DeleteRequest q = CAUDAL__DELETE_REQUEST__INIT;
	q.cred = (Caudal__Cred *)cred;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.recursive = recursive;
	q.kind = kind;
	Caudal__Status *r = call("Delete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int ren(const char *a, const char *b)
{
	Caudal__RenameRequest q = CAUDAL__RENAME_REQUEST__INIT;
	Caudal__Target s = CAUDAL__TARGET__INIT, d = CAUDAL__TARGET__INIT;
	s.path = (char *)a;
	d.path = (char *)b;
	q.src = &s;
	q.dst = &d;
	Caudal__Status *r = call("Rename", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int set_mode(const char *path, uint32_t mode, const Caudal__Cred *cred)
{
	Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
	q.mode = mode;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("SetAttr", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static uint64_t ino_of(const char *path)
{
	Caudal__Attr at;
	CHECK_EQ(stat_path(path, &at, &root), 0);
	return at.ino;
}

/* GetAttr of a target named by inode id (parent 0) or by parent id + name. */
static int stat_id(uint64_t ino, uint64_t parent, const char *name, const Caudal__Cred *cred)
{
	Caudal__GetAttrRequest q = CAUDAL__GET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.ino = ino;
	t.parent = parent;
	t.name = (char *)(name ? name : "");
	q.target = &t;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("GetAttr", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* The root of a new namespace is 0755 root:root: other users may not
 * create, remove or rename entries there. Operations that name an inode by
 * id check search permission on every directory above it, so a file under
 * a 0700 directory stays out of reach of a user who learns its id. */
static void test_root_and_ids(void)
{
	Caudal__Cred nobody = CAUDAL__CRED__INIT;
	nobody.uid = 65534;
	nobody.gid = 65534;
	Caudal__Attr at;
	CHECK_EQ(stat_path("/", &at, &nobody), 0);
	CHECK_EQ(at.mode, S_IFDIR | 0755);
	CHECK(at.uid == 0 && at.gid == 0);
	CHECK_EQ(mkdir_p("/rootsdir", false, &root), 0);
	uint64_t fino;
	CHECK_EQ(create("/rootsfile", "c1", false, &fino, &root), 0);
	CHECK_EQ(complete(fino, "c1", 0, 0), 0);
	CHECK_EQ(create("/nobodys", "c9", false, NULL, &nobody), EACCES);
	CHECK_EQ(mkdir_p("/nobodys", false, &nobody), EACCES);
	CHECK_EQ(del_as("/rootsfile", false, 0, &nobody), EACCES);
	CHECK_EQ(del_as("/rootsdir", true, 0, &nobody), EACCES);
	{
		Caudal__RenameRequest q = CAUDAL__RENAME_REQUEST__INIT;
		Caudal__Target s1 = CAUDAL__TARGET__INIT, d1 = CAUDAL__TARGET__INIT;
		s1.path = "/rootsdir";
		d1.path = "/rootsdir2";
		q.src = &s1;
		q.dst = &d1;
		q.cred = &nobody;
		Caudal__Status *r = call("Rename", &q);
		CHECK_EQ(r->err, EACCES);
		rfree(r);
	}
	CHECK_EQ(stat_path("/rootsdir", NULL, &root), 0);
	CHECK_EQ(stat_path("/rootsfile", NULL, &root), 0);

	/* /vault 0700 root; inside it /vault/open 0777 holding a 0600 file
	 * and a 0755 directory: all of it unreachable for nobody */
	CHECK_EQ(mkdir_p("/vault/open/sub", true, &root), 0);
	CHECK_EQ(set_mode("/vault", 0700, &root), 0);
	CHECK_EQ(set_mode("/vault/open", 0777, &root), 0);
	uint64_t sino;
	CHECK_EQ(create("/vault/open/secret", "c1", false, &sino, &root), 0);
	CHECK_EQ(complete(sino, "c1", 0, 0), 0);
	CHECK_EQ(set_mode("/vault/open/secret", 0600, &root), 0);
	uint64_t vino = ino_of("/vault"), oino = ino_of("/vault/open");
	uint64_t subino = ino_of("/vault/open/sub");
	CHECK_EQ(stat_path("/vault/open/secret", NULL, &nobody), EACCES); /* by path */
	CHECK_EQ(stat_id(sino, 0, NULL, &nobody), EACCES);
	CHECK_EQ(stat_id(subino, 0, NULL, &nobody), EACCES);
	CHECK_EQ(stat_id(oino, 0, NULL, &nobody), EACCES);
	CHECK_EQ(stat_id(0, oino, "secret", &nobody), EACCES);
	CHECK_EQ(stat_id(0, vino, "open", &nobody), EACCES);
	/* the directory itself may be stat'ed by id: only what is above counts */
	CHECK_EQ(stat_id(vino, 0, NULL, &nobody), 0);
	{
		Caudal__GetBlocksRequest q = CAUDAL__GET_BLOCKS_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.ino = sino;
		q.target = &t;
		q.cred = &nobody;
		Caudal__GetBlocksReply *r = call("GetBlocks", &q);
		CHECK_EQ(r->err, EACCES);
		CHECK(r->attr == NULL && r->n_blocks == 0);
		rfree(r);
	}
	{
		Caudal__ReaddirRequest q = CAUDAL__READDIR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.ino = oino;
		q.target = &t;
		q.cred = &nobody;
		Caudal__ReaddirReply *r = call("Readdir", &q);
		CHECK_EQ(r->err, EACCES);
		CHECK_EQ(r->n_entries, 0);
		rfree(r);
	}
	/* a change addressed by parent id + name: /vault/open is 0777, so only
	 * the search check on /vault stops these */
	{
		Caudal__DeleteRequest q = CAUDAL__DELETE_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.parent = oino;
		t.name = "secret";
		q.target = &t;
		q.cred = &nobody;
		Caudal__Status *r = call("Delete", &q);
		CHECK_EQ(r->err, EACCES);
		rfree(r);
	}
	{
		Caudal__MkdirRequest q = CAUDAL__MKDIR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.parent = oino;
		t.name = "planted";
		q.target = &t;
		q.mode = 0755;
		q.cred = &nobody;
		Caudal__AttrReply *r = call("Mkdir", &q);
		CHECK_EQ(r->err, EACCES);
		rfree(r);
	}
	CHECK_EQ(stat_path("/vault/open/secret", NULL, &root), 0);
	CHECK_EQ(stat_path("/vault/open/planted", NULL, &root), ENOENT);

	/* root reaches everything by id */
	CHECK_EQ(stat_id(sino, 0, NULL, &root), 0);
	CHECK_EQ(stat_id(0, oino, "secret", &root), 0);
	/* a member of the directory's group (a supplementary group) may search */
	CHECK_EQ(set_mode("/vault", 0710, &root), 0);
	{
		Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.path = "/vault";
		q.target = &t;
		q.valid = CAUDAL__SET_ATTR_FIELD__SA_GID;
		q.gid = 777;
		q.cred = &root;
		Caudal__AttrReply *r = call("SetAttr", &q);
		CHECK_EQ(r->err, 0);
		rfree(r);
	}
	uint32_t groups[2] = {12, 777};
	Caudal__Cred member = nobody;
	member.groups = groups;
	member.n_groups = 2;
	CHECK_EQ(stat_id(subino, 0, NULL, &member), 0);
	CHECK_EQ(stat_id(0, oino, "secret", &member), 0);
	CHECK_EQ(stat_id(subino, 0, NULL, &nobody), EACCES);

	/* honest use by id in a tree the user may enter */
	CHECK_EQ(mkdir_p("/pub/nb", false, &nobody), 0);
	uint64_t nbino = ino_of("/pub/nb");
	{
		Caudal__CreateRequest q = CAUDAL__CREATE_REQUEST__INIT;
		Caudal__Target t = CAUDAL__TARGET__INIT;
		t.parent = nbino;
		t.name = "f";
		q.target = &t;
		q.mode = 0600;
		q.client = "c9";
		q.cred = &nobody;
		Caudal__AttrReply *r = call("Create", &q);
		CHECK_EQ(r->err, 0);
		if (!r->err)
			CHECK_EQ(complete(r->attr->ino, "c9", 0, 0), 0);
		rfree(r);
	}
	CHECK_EQ(stat_id(0, nbino, "f", &nobody), 0);
	CHECK_EQ(stat_id(ino_of("/pub/nb/f"), 0, NULL, &nobody), 0);
	CHECK_EQ(del_as("/pub/nb", true, 0, &nobody), 0);
}

static void register_dn(const char *id, const char *host)
{
	Caudal__RegisterRequest q = CAUDAL__REGISTER_REQUEST__INIT;
	Caudal__DatanodeInfo n = CAUDAL__DATANODE_INFO__INIT;
	n.id = (char *)id;
	n.host = (char *)host;
	n.data_port = 9866;
	n.capacity = 1ULL << 40;
	n.remaining = 1ULL << 39;
	q.node = &n;
	ProtobufCMessage *r;
	CHECK_EQ(cdl_rpc_call_name(dl, "RegisterDatanode", &q.base, &r, 5000), 0);
	CHECK_EQ(((Caudal__RegisterReply *)r)->err, 0);
	rfree(r);
}

static int set_size(uint64_t ino, uint64_t size, const char *client, Caudal__Attr *out)
{
	Caudal__SetAttrRequest q = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.ino = ino;
	q.target = &t;
	q.valid = CAUDAL__SET_ATTR_FIELD__SA_SIZE;
	q.size = size;
	q.client = (char *)client;
	q.cred = &root;
	Caudal__AttrReply *r = call("SetAttr", &q);
	int e = (int)r->err;
	if (!e && out)
		*out = *r->attr;
	rfree(r);
	return e;
}

/* Sparse growth (issue 9): a truncate that grows records a hole (a block
 * entry with id 0) whatever the size, up to max_file_size (EFBIG past it);
 * holes store nothing, merge, shrink, are followed by new blocks, are
 * listed by GetBlocks without replicas, and keep nn_check and fsck clean.
 * ino is a closed file of one 12345-byte block blk. */
static void test_sparse(uint64_t ino, uint64_t blk)
{
	Caudal__Attr at;
	CHECK_EQ(set_size(ino, (uint64_t)1 << 40, NULL, &at), 0);
	CHECK_EQ(at.size, (uint64_t)1 << 40);
	CHECK_EQ(at.stored, 12345);
	CHECK_EQ(at.blocks, 2);
	CHECK_EQ(set_size(ino, ((uint64_t)1 << 50) + 1, NULL, NULL), EFBIG);
	CHECK_EQ(set_size(ino, ((uint64_t)1 << 41), NULL, &at), 0);
	CHECK_EQ(at.blocks, 2);			      /* the trailing hole grew, no second one */
	CHECK_EQ(set_size(ino, 20000, NULL, &at), 0); /* shrink into the hole */
	CHECK_EQ(at.size, 20000);
	CHECK_EQ(at.stored, 12345);

	/* a new block after the hole, then the block list */
	Caudal__OpenWriteRequest ap = CAUDAL__OPEN_WRITE_REQUEST__INIT;
	Caudal__Target apt = CAUDAL__TARGET__INIT;
	apt.ino = ino;
	ap.target = &apt;
	ap.client = "c1";
	ap.cred = &root;
	Caudal__AttrReply *apr = call("Append", &ap);
	CHECK_EQ(apr->err, 0);
	rfree(apr);
	/* growing while a block is being written is refused: the hole would
	 * follow bytes not settled yet */
	Caudal__AddBlockRequest ab = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	ab.ino = ino;
	ab.client = "c1";
	Caudal__AddBlockReply *abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, 0);
	uint64_t b2 = abr->err ? 0 : abr->block->id;
	CHECK(!abr->err && abr->block->offset == 20000);
	rfree(abr);
	CHECK_EQ(set_size(ino, 30000, "c1", NULL), EBUSY);
	CHECK_EQ(complete(ino, "c1", b2, 100), 0);

	Caudal__GetBlocksRequest gq = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	Caudal__Target gt = CAUDAL__TARGET__INIT;
	gt.ino = ino;
	gq.target = &gt;
	gq.cred = &root;
	Caudal__GetBlocksReply *gr = call("GetBlocks", &gq);
	CHECK_EQ(gr->err, 0);
	CHECK_EQ(gr->n_blocks, 3);
	if (gr->n_blocks == 3) {
		CHECK_EQ(gr->blocks[0]->id, blk);
		CHECK_EQ(gr->blocks[1]->id, 0);
		CHECK_EQ(gr->blocks[1]->offset, 12345);
		CHECK_EQ(gr->blocks[1]->length, 20000 - 12345);
		CHECK_EQ(gr->blocks[1]->n_locs, 0);
		CHECK_EQ(gr->blocks[2]->id, b2);
		CHECK_EQ(gr->blocks[2]->offset, 20000);
	}
	rfree(gr);

	nn_check_report rep;
	CHECK_EQ(nn_check_run(ns, 20, &rep), 0);
	CHECK_EQ(rep.violations, 0);
	if (rep.violations)
		fprintf(stderr, "%s\n", rep.text);
	nn_check_report_release(&rep);

	/* back to one block: the hole and the block after it go */
	CHECK_EQ(set_size(ino, 12345, NULL, &at), 0);
	CHECK_EQ(at.blocks, 1);
	CHECK_EQ(at.stored, 12345);
}

static int mknod_as(const char *path, uint32_t mode, uint64_t rdev, const Caudal__Cred *cred,
		    Caudal__Attr *out)
{
	Caudal__MknodRequest q = CAUDAL__MKNOD_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.mode = mode;
	q.rdev = rdev;
	q.cred = (Caudal__Cred *)cred;
	Caudal__AttrReply *r = call("Mknod", &q);
	int e = (int)r->err;
	if (!e && out)
		*out = *r->attr;
	rfree(r);
	return e;
}

/* ---- small files inline (issue 9) */

static int complete_inline(uint64_t ino, const char *client, const void *data, size_t len,
			   bool keep)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	q.ino = ino;
	q.client = (char *)client;
	q.keep_lease = keep;
	q.inline_data.data = (uint8_t *)data;
	q.inline_data.len = len;
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

static int complete_keep(uint64_t ino, const char *client, uint64_t blk, uint64_t len)
{
	Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
	Caudal__Replica last = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	q.keep_lease = true;
	last.id = blk;
	last.length = len;
	q.last = &last;
	Caudal__AttrReply *r = call("Complete", &q);
	int e = (int)r->err;
	rfree(r);
	return e;
}

/* Append as client: the reply's attributes must carry the inline bytes
 * (exactly want_len of them, equal to want). */
static int append_inline(const char *path, const char *client, const void *want, size_t want_len)
{
	Caudal__OpenWriteRequest q = CAUDAL__OPEN_WRITE_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.client = (char *)client;
	Caudal__AttrReply *r = call("Append", &q);
	int e = (int)r->err;
	if (!e) {
		CHECK_EQ(r->attr->inline_data.len, want_len);
		CHECK_EQ(r->attr->size, want_len);
		CHECK_EQ(r->attr->blocks, 0);
		CHECK(want_len == 0 || !memcmp(r->attr->inline_data.data, want, want_len));
	}
	rfree(r);
	return e;
}

/* AddBlock naming the previous block prev (0: none) of length plen; the
 * new block's id in *blk. */
static int add_block_after(uint64_t ino, const char *client, uint64_t prev, uint64_t plen,
			   uint64_t *blk)
{
	Caudal__AddBlockRequest q = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	Caudal__Replica p = CAUDAL__REPLICA__INIT;
	q.ino = ino;
	q.client = (char *)client;
	if (prev) {
		p.id = prev;
		p.gen = 1;
		p.length = plen;
		q.previous = &p;
	}
	Caudal__AddBlockReply *r = call("AddBlock", &q);
	int e = (int)r->err;
	if (!e) {
		*blk = r->block->id;
		if (!prev)
			CHECK_EQ(r->block->offset, 0);
	}
	rfree(r);
	return e;
}

/* GetBlocks of path: its inline bytes must be want (want_len of them, no
 * block), or with want NULL there must be blocks and no inline bytes. */
static void expect_content(const char *path, const void *want, size_t want_len)
{
	Caudal__GetBlocksRequest q = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	Caudal__GetBlocksReply *r = call("GetBlocks", &q);
	CHECK_EQ(r->err, 0);
	if (!r->err && want) {
		CHECK_EQ(r->n_blocks, 0);
		CHECK_EQ(r->attr->size, want_len);
		CHECK_EQ(r->attr->stored, want_len);
		CHECK_EQ(r->attr->inline_max, 65536);
		CHECK_EQ(r->inline_data.len, want_len);
		CHECK(!want_len || !memcmp(r->inline_data.data, want, want_len));
	} else if (!r->err) {
		CHECK(r->n_blocks > 0);
		CHECK_EQ(r->inline_data.len, 0);
	}
	rfree(r);
}

static char *blocks_xattr(const char *path)
{
	Caudal__XattrRequest q = CAUDAL__XATTR_REQUEST__INIT;
	Caudal__Target t = CAUDAL__TARGET__INIT;
	t.path = (char *)path;
	q.target = &t;
	q.name = "user.caudal.blocks";
	Caudal__XattrReply *r = call("GetXattr", &q);
	CHECK_EQ(r->err, 0);
	char *s = r->value.len ? strndup((const char *)r->value.data, r->value.len) : strdup("");
	rfree(r);
	return s;
}

/* What each test datanode holds, as it told the namenode: lease
 * recovery asks it to move those replicas to a new stamp. */
static struct {
	const char *dn;
	uint64_t id, len;
} held[64];
static size_t nheld;

static void report_replica(const char *dn, uint64_t id, uint64_t gen, uint64_t len, bool deleted)
{
	Caudal__BlockReceivedRequest q = CAUDAL__BLOCK_RECEIVED_REQUEST__INIT;
	Caudal__Replica rp = CAUDAL__REPLICA__INIT;
	Caudal__Replica *rpp = &rp;
	rp.id = id;
	rp.gen = gen;
	rp.length = len;
	q.id = (char *)dn;
	if (deleted) {
		q.deleted = &rpp;
		q.n_deleted = 1;
	} else {
		q.received = &rpp;
		q.n_received = 1;
	}
	ProtobufCMessage *r;
	CHECK_EQ(cdl_rpc_call_name(dl, "BlockReceived", &q.base, &r, 5000), 0);
	CHECK_EQ(((Caudal__Status *)r)->err, 0);
	rfree(r);
}

static void block_received(const char *dn, uint64_t id, uint64_t len)
{
	report_replica(dn, id, 1, len, false);
	if (nheld < sizeof(held) / sizeof(held[0]))
		held[nheld++] = (typeof(held[0])){dn, id, len};
}

/* Expire every lease now (the lease monitor's work), and have the test
 * datanodes answer the recovery commands as honest ones do: a replica
 * they hold moves to the new stamp at its length, else they have none. */
static void expire_leases(void)
{
	int64_t was = ns->conf.lease_ms;
	ns->conf.lease_ms = 0;
	usleep(5000);
	nn_ns_tick(ns);
	ns->conf.lease_ms = was;
	static const char *dns[] = {"dn1", "dn2", "dn3"};
	for (int round = 0; round < 4; round++) {
		int cmds = 0;
		for (size_t d = 0; d < 3; d++) {
			Caudal__HeartbeatRequest q = CAUDAL__HEARTBEAT_REQUEST__INIT;
			Caudal__DatanodeInfo n = CAUDAL__DATANODE_INFO__INIT;
			n.id = (char *)dns[d];
			n.capacity = 1ULL << 40;
			n.remaining = 1ULL << 39;
			q.node = &n;
			ProtobufCMessage *r;
			CHECK_EQ(cdl_rpc_call_name(dl, "Heartbeat", &q.base, &r, 5000), 0);
			Caudal__HeartbeatReply *hr = (Caudal__HeartbeatReply *)r;
			for (size_t i = 0; i < hr->n_commands; i++) {
				const Caudal__Command *c = hr->commands[i];
				if (c->type != CAUDAL__COMMAND_TYPE__CMD_RECOVER || !c->block)
					continue;
				cmds++;
				size_t h = 0;
				while (h < nheld &&
				       (strcmp(held[h].dn, dns[d]) || held[h].id != c->block->id))
					h++;
				if (h < nheld)
					report_replica(dns[d], c->block->id, c->new_gen,
						       held[h].len, false);
				else
					report_replica(dns[d], c->block->id, c->new_gen, 0, true);
			}
			rfree(r);
		}
		nn_ns_tick(ns);
		if (!cmds)
			break;
	}
}

static void check_clean(void)
{
	nn_check_report rep;
	CHECK_EQ(nn_check_run(ns, 20, &rep), 0);
	CHECK_EQ(rep.violations, 0);
	if (rep.violations)
		fprintf(stderr, "%s\n", rep.text);
	nn_check_report_release(&rep);
}

/* Small files inline (issue 9): a file of at most inline_max bytes (and a
 * block) is sent whole in Complete and kept in its inode record; one byte
 * more is refused (it goes to blocks); an append extends the bytes or moves
 * the file into a first block, which replaces them only once settled at
 * least as long; lease recovery keeps whichever holds every byte; a huge
 * Complete is refused; nn_check and fsck know inline files. Needs the
 * datanodes registered. */
static void test_inline(void)
{
	int64_t was_max = ns->conf.inline_max;
	ns->conf.inline_max = 65536;
	char *big = malloc(200000);
	for (int i = 0; i < 200000; i++)
		big[i] = (char)('a' + i % 23);
	CHECK_EQ(mkdir_p("/inl", false, &root), 0);

	/* exactly the limit: inline; one more byte: refused, nothing changed */
	uint64_t ino;
	CHECK_EQ(create("/inl/max", "i1", false, &ino, &root), 0);
	CHECK_EQ(complete_inline(ino, "i1", big, 65537, false), EFBIG);
	CHECK_EQ(complete_inline(ino, "i1", big, 65536, false), 0);
	CHECK_EQ(complete_inline(ino, "i1", big, 65536, false), 0);   /* a retry */
	CHECK_EQ(complete_inline(ino, "i1", big, 100, false), EBADF); /* not what was closed */
	expect_content("/inl/max", big, 65536);
	char *x = blocks_xattr("/inl/max");
	CHECK(!strcmp(x, "inline 65536\n"));
	free(x);

	/* the abuse case: a Complete of 32 MiB is refused, whole */
	uint64_t hino;
	CHECK_EQ(create("/inl/huge", "i1", false, &hino, &root), 0);
	char *huge = calloc(1, 32u << 20);
	CHECK_EQ(complete_inline(hino, "i1", huge, 32u << 20, false), EFBIG);
	free(huge);
	/* 100 MiB never reaches the handler: the RPC layer refuses any
	 * message over CDL_RPC_MAX_MSG, and the namenode serves on */
	{
		size_t hl = 100u << 20;
		uint8_t *h = calloc(1, hl);
		Caudal__CompleteRequest q = CAUDAL__COMPLETE_REQUEST__INIT;
		q.ino = hino;
		q.client = "i1";
		q.inline_data.data = h;
		q.inline_data.len = hl;
		ProtobufCMessage *r = NULL;
		CHECK(cdl_rpc_call_name(cl, "Complete", &q.base, &r, 20000) < 0);
		if (r)
			rfree(r);
		free(h);
	}
	CHECK_EQ(complete_inline(hino, "i1", "ok", 2, false), 0);
	expect_content("/inl/huge", "ok", 2);
	/* not the lease holder; a block and inline bytes at once */
	uint64_t sino, blk;
	CHECK_EQ(create("/inl/s", "i1", false, &sino, &root), 0);
	CHECK_EQ(complete_inline(sino, "other", "zz", 2, true), EBUSY);
	CHECK_EQ(add_block_after(sino, "i1", 0, 0, &blk), 0);
	CHECK_EQ(complete_inline(sino, "i1", "zz", 2, false), EINVAL);
	CHECK_EQ(complete(sino, "i1", blk, 70000), 0);

	/* hsync of an inline file, then more, then close: bytes only grow */
	uint64_t gino;
	CHECK_EQ(create("/inl/grow", "i1", false, &gino, &root), 0);
	CHECK_EQ(complete_inline(gino, "i1", big, 1000, true), 0);
	expect_content("/inl/grow", big, 1000);
	CHECK_EQ(complete_inline(gino, "i1", big + 1, 2000, true), EINVAL); /* rewrites bytes */
	CHECK_EQ(complete_inline(gino, "i1", big, 999, true), EINVAL);	    /* shrinks */
	CHECK_EQ(complete_inline(gino, "i1", big, 4096, false), 0);
	expect_content("/inl/grow", big, 4096);

	/* append within the limit: the reply gives the old bytes */
	CHECK_EQ(append_inline("/inl/grow", "i2", big, 4096), 0);
	CHECK_EQ(complete_inline(gino, "i2", big, 8192, false), 0);
	expect_content("/inl/grow", big, 8192);

	/* append past the limit: old and new bytes into a first block; until
	 * it is settled at least as long, the inline bytes are the file */
	CHECK_EQ(append_inline("/inl/grow", "i3", big, 8192), 0);
	CHECK_EQ(add_block_after(gino, "i3", 0, 0, &blk), 0);
	expect_content("/inl/grow", big, 8192);
	x = blocks_xattr("/inl/grow");
	CHECK(!strcmp(x, "inline 8192\n"));
	free(x);
	check_clean();
	Caudal__Attr at;
	CHECK_EQ(set_size(gino, 100, "i3", &at), EBUSY);	/* not while moving */
	CHECK_EQ(complete_keep(gino, "i3", blk, 8000), EINVAL); /* shorter than the bytes */
	expect_content("/inl/grow", big, 8192);
	uint64_t blk2;
	CHECK_EQ(add_block_after(gino, "i3", 0, 0, &blk2), 0); /* the same empty block again */
	CHECK_EQ(blk2, blk);
	CHECK_EQ(complete_keep(gino, "i3", blk, 70000), 0); /* hsync: the block takes over */
	expect_content("/inl/grow", NULL, 0);
	CHECK_EQ(stat_path("/inl/grow", &at, &root), 0);
	CHECK_EQ(at.size, 70000);
	CHECK_EQ(at.blocks, 1);
	CHECK_EQ(complete(gino, "i3", blk, 70000), 0);
	check_clean();

	/* the writer dies moving the file, its block never reported: lease
	 * recovery drops the block, the inline bytes stay */
	uint64_t dino;
	CHECK_EQ(create("/inl/die1", "i1", false, &dino, &root), 0);
	CHECK_EQ(complete_inline(dino, "i1", big, 30000, false), 0);
	CHECK_EQ(append_inline("/inl/die1", "dead1", big, 30000), 0);
	CHECK_EQ(add_block_after(dino, "dead1", 0, 0, &blk), 0);
	/* its block reported with every inline byte: recovery keeps the block */
	uint64_t eino, eblk;
	CHECK_EQ(create("/inl/die2", "i1", false, &eino, &root), 0);
	CHECK_EQ(complete_inline(eino, "i1", big, 30000, false), 0);
	CHECK_EQ(append_inline("/inl/die2", "dead2", big, 30000), 0);
	CHECK_EQ(add_block_after(eino, "dead2", 0, 0, &eblk), 0);
	block_received("dn1", eblk, 30500);
	/* a block with fewer bytes than the inline ones never replaces them */
	uint64_t fino, fblk;
	CHECK_EQ(create("/inl/die3", "i1", false, &fino, &root), 0);
	CHECK_EQ(complete_inline(fino, "i1", big, 30000, false), 0);
	CHECK_EQ(append_inline("/inl/die3", "dead3", big, 30000), 0);
	CHECK_EQ(add_block_after(fino, "dead3", 0, 0, &fblk), 0);
	block_received("dn2", fblk, 20000);
	expire_leases();
	expect_content("/inl/die1", big, 30000);
	CHECK_EQ(stat_path("/inl/die1", &at, &root), 0);
	CHECK(!at.under_construction);
	expect_content("/inl/die2", NULL, 0);
	CHECK_EQ(stat_path("/inl/die2", &at, &root), 0);
	CHECK_EQ(at.size, 30500);
	CHECK(!at.under_construction);
	expect_content("/inl/die3", big, 30000);
	check_clean();

	/* the same holder appending again while its earlier writer was moving
	 * the file: that move is abandoned, the inline bytes stay */
	CHECK_EQ(append_inline("/inl/die1", "i4", big, 30000), 0);
	CHECK_EQ(add_block_after(dino, "i4", 0, 0, &blk), 0);
	CHECK_EQ(append_inline("/inl/die1", "i4", big, 30000), 0);
	CHECK_EQ(complete_inline(dino, "i4", big, 30001, false), 0);
	expect_content("/inl/die1", big, 30001);
	/* closed while moving, without its block: the inline bytes stay */
	CHECK_EQ(append_inline("/inl/die1", "i5", big, 30001), 0);
	CHECK_EQ(add_block_after(dino, "i5", 0, 0, &blk), 0);
	CHECK_EQ(complete(dino, "i5", 0, 0), 0);
	expect_content("/inl/die1", big, 30001);
	/* a second block before the first took the inline bytes: refused */
	CHECK_EQ(append_inline("/inl/die1", "i6", big, 30001), 0);
	CHECK_EQ(add_block_after(dino, "i6", 0, 0, &blk), 0);
	CHECK_EQ(add_block_after(dino, "i6", blk, 100, &blk2), EINVAL);
	CHECK_EQ(add_block_after(dino, "i6", blk, 65536, &blk2), 0);
	CHECK_EQ(complete(dino, "i6", blk2, 10), 0);
	expect_content("/inl/die1", NULL, 0);
	CHECK_EQ(stat_path("/inl/die1", &at, &root), 0);
	CHECK_EQ(at.size, 65546);
	check_clean();

	/* truncate: cut, grow with zeros within the limit; past it the bytes
	 * must move into a block first (EOPNOTSUPP) */
	uint64_t tino;
	CHECK_EQ(create("/inl/t", "i1", false, &tino, &root), 0);
	CHECK_EQ(complete_inline(tino, "i1", big, 5000, false), 0);
	CHECK_EQ(set_size(tino, 3000, "", &at), 0);
	expect_content("/inl/t", big, 3000);
	CHECK_EQ(set_size(tino, 65536, "", &at), 0);
	char *z = calloc(1, 65536);
	memcpy(z, big, 3000);
	expect_content("/inl/t", z, 65536);
	free(z);
	CHECK_EQ(set_size(tino, 65537, "", &at), EOPNOTSUPP);
	CHECK_EQ(set_size(tino, 0, "", &at), 0);
	CHECK_EQ(stat_path("/inl/t", &at, &root), 0);
	CHECK_EQ(at.size, 0);
	CHECK_EQ(at.blocks, 0);
	x = blocks_xattr("/inl/t");
	CHECK(!strcmp(x, ""));
	free(x);

	/* setrep is accepted and kept for when it becomes blocks */
	Caudal__SetReplicationRequest rq = CAUDAL__SET_REPLICATION_REQUEST__INIT;
	Caudal__Target rt = CAUDAL__TARGET__INIT;
	rt.path = "/inl/max";
	rq.target = &rt;
	rq.replication = 2;
	Caudal__Status *st = call("SetReplication", &rq);
	CHECK_EQ(st->err, 0);
	rfree(st);
	CHECK_EQ(stat_path("/inl/max", &at, &root), 0);
	CHECK_EQ(at.replication, 2);
	expect_content("/inl/max", big, 65536);

	/* fsck counts inline files and bytes */
	Caudal__FsckRequest fq = CAUDAL__FSCK_REQUEST__INIT;
	Caudal__Target ftg = CAUDAL__TARGET__INIT;
	ftg.path = "/inl";
	fq.target = &ftg;
	Caudal__FsckReply *fr = call("Fsck", &fq);
	CHECK_EQ(fr->err, 0);
	CHECK_EQ(fr->inline_files, 3); /* max, huge, die3 */
	CHECK_EQ(fr->inline_bytes, 65536 + 2 + 30000);
	rfree(fr);

	/* inline_max 0: off for new files; inline files stay readable */
	ns->conf.inline_max = 0;
	uint64_t oino;
	CHECK_EQ(create("/inl/off", "i1", false, &oino, &root), 0);
	CHECK_EQ(complete_inline(oino, "i1", "a", 1, false), EFBIG);
	CHECK_EQ(complete(oino, "i1", 0, 0), 0);
	CHECK_EQ(stat_path("/inl/off", &at, &root), 0);
	CHECK_EQ(at.inline_max, 0);
	CHECK_EQ(stat_path("/inl/huge", &at, &root), 0);
	CHECK_EQ(at.size, 2);
	check_clean();
	/* a rename over an inline file drops it from the counts */
	ns->conf.inline_max = 65536;
	uint64_t r1, r2;
	CHECK_EQ(create("/inl/r1", "i1", false, &r1, &root), 0);
	CHECK_EQ(complete_inline(r1, "i1", big, 10, false), 0);
	CHECK_EQ(create("/inl/r2", "i1", false, &r2, &root), 0);
	CHECK_EQ(complete_inline(r2, "i1", big, 20, false), 0);
	CHECK_EQ(ren("/inl/r1", "/inl/r2"), 0);
	expect_content("/inl/r2", big, 10);
	check_clean();
	CHECK_EQ(del("/inl/r2", false, 0), 0);
	ns->conf.inline_max = was_max;
	free(big);
	/* Statfs (caudal report) counts them too, through deletes */
	Caudal__Empty e = CAUDAL__EMPTY__INIT;
	Caudal__StatfsReply *sr = call("Statfs", &e);
	CHECK_EQ(sr->inline_files, 3);
	CHECK_EQ(sr->inline_bytes, 65536 + 2 + 30000);
	rfree(sr);
	CHECK_EQ(del("/inl/huge", false, 0), 0);
	check_clean();
	/* the rest of the test restarts expecting no block (no safe mode) */
	CHECK_EQ(del("/inl", true, 0), 0);
	sr = call("Statfs", &e);
	CHECK_EQ(sr->inline_files, 0);
	CHECK_EQ(sr->inline_bytes, 0);
	rfree(sr);
	check_clean();
}

/* Special files (issue 9): fifos and sockets for anyone who may create
 * there, devices for root only, no other type, no device number on a
 * fifo; a special file is never overwritten into a file with blocks. */
static void test_mknod(const Caudal__Cred *usr)
{
	Caudal__Attr at;
	CHECK_EQ(mkdir_p("/spec", false, &root), 0);
	CHECK_EQ(set_mode("/spec", 01777, &root), 0);
	CHECK_EQ(mknod_as("/spec/fifo", S_IFIFO | 0640, 0, usr, &at), 0);
	CHECK_EQ(at.mode, S_IFIFO | 0640);
	CHECK_EQ(at.uid, usr->uid);
	CHECK_EQ(mknod_as("/spec/sock", S_IFSOCK | 0755, 0, usr, NULL), 0);
	CHECK_EQ(mknod_as("/spec/dev", S_IFCHR | 0600, 0x0103, usr, NULL), EPERM);
	CHECK_EQ(mknod_as("/spec/dev", S_IFCHR | 0600, 0x0103, &root, &at), 0);
	CHECK_EQ(at.rdev, 0x0103);
	CHECK_EQ(stat_path("/spec/dev", &at, &root), 0);
	CHECK_EQ(at.rdev, 0x0103);
	CHECK_EQ(mknod_as("/spec/blk", S_IFBLK | 0600, 0x0700, &root, NULL), 0);
	CHECK_EQ(mknod_as("/spec/d", S_IFDIR | 0755, 0, &root, NULL), EINVAL);
	CHECK_EQ(mknod_as("/spec/l", S_IFLNK | 0777, 0, &root, NULL), EINVAL);
	CHECK_EQ(mknod_as("/spec/f2", S_IFIFO | 0644, 5, &root, NULL), EINVAL);
	CHECK_EQ(mknod_as("/spec/fifo", S_IFIFO | 0644, 0, &root, NULL), EEXIST);
	CHECK_EQ(mknod_as("/nope/fifo", S_IFIFO | 0644, 0, &root, NULL), ENOENT);
	CHECK_EQ(mknod_as("/x", S_IFIFO | 0644, 0, usr, NULL), EACCES); /* / is 0755 */
	CHECK_EQ(mknod_as("/spec/reg", S_IFREG | 0644, 0, usr, &at), 0);
	CHECK(!at.under_construction);
	CHECK_EQ(create("/spec/fifo", "c9", true, NULL, &root), EEXIST);
	CHECK_EQ(create("/spec/dev", "c9", true, NULL, &root), EEXIST);
	CHECK_EQ(stat_path("/spec/fifo", &at, &root), 0);
	CHECK_EQ(at.mode & S_IFMT, S_IFIFO);
	CHECK_EQ(at.blocks, 0);
}

/* A write by someone else clears setuid and setgid (the kernel asks with a
 * chmod as the writer): allowed to a caller who may write, if it only
 * takes those bits away; any other chmod by a non-owner is EPERM. */
static void test_suid_drop(const Caudal__Cred *usr)
{
	uint64_t ino;
	Caudal__Attr at;
	CHECK_EQ(create("/spec/suid", "c8", false, &ino, &root), 0);
	CHECK_EQ(complete(ino, "c8", 0, 0), 0);
	CHECK_EQ(set_mode("/spec/suid", 06777, &root), 0);
	CHECK_EQ(set_mode("/spec/suid", 06777, usr), EPERM); /* no change: still not the owner's */
	CHECK_EQ(set_mode("/spec/suid", 06776, usr), EPERM); /* takes another bit */
	CHECK_EQ(set_mode("/spec/suid", 0777, usr), 0);
	CHECK_EQ(stat_path("/spec/suid", &at, &root), 0);
	CHECK_EQ(at.mode & 07777, 0777);
	CHECK_EQ(set_mode("/spec/suid", 04755, &root), 0);
	CHECK_EQ(set_mode("/spec/suid", 0755, usr), EPERM); /* may not write it */
	CHECK_EQ(stat_path("/spec/suid", &at, &root), 0);
	CHECK_EQ(at.mode & 07777, 04755);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_WARN);
	cdl_rpc_global_init();
	CHECK(mkdtemp(dir) != NULL);
	user.uid = 1000;
	user.gid = 1000;
	start();

	Caudal__Attr at;
	CHECK_EQ(stat_path("/", &at, &root), 0);
	CHECK(S_ISDIR(at.mode));
	CHECK_EQ(mkdir_p("/a/b/c", false, &root), ENOENT);
	CHECK_EQ(mkdir_p("/a/b/c", true, &root), 0);
	CHECK_EQ(mkdir_p("/a/b/c", true, &root), 0);
	CHECK_EQ(mkdir_p("/a/b/c", false, &root), EEXIST);
	CHECK_EQ(stat_path("/a/b", &at, &root), 0);
	CHECK_EQ(at.nlink, 3);
	/* bad paths */
	CHECK_EQ(stat_path("a/b", NULL, &root), EINVAL);
	CHECK_EQ(stat_path("/a/../b", NULL, &root), EINVAL);
	CHECK_EQ(stat_path("/a//b", NULL, &root), EINVAL);
	char longname[300];
	memset(longname, 'x', sizeof(longname));
	longname[0] = '/';
	longname[299] = '\0';
	CHECK_EQ(mkdir_p(longname, false, &root), ENAMETOOLONG);

	/* files and leases */
	uint64_t ino;
	CHECK_EQ(create("/a/f", "c1", false, &ino, &root), 0);
	CHECK_EQ(create("/a/f", "c2", true, NULL, &root), EBUSY);
	/* the same holder retrying its create (reply lost) succeeds */
	CHECK_EQ(create("/a/f", "c1", false, NULL, &root), 0);
	/* blocks need datanodes */
	Caudal__AddBlockRequest ab = CAUDAL__ADD_BLOCK_REQUEST__INIT;
	ab.ino = ino;
	ab.client = "c1";
	Caudal__AddBlockReply *abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, ENOSPC);
	rfree(abr);
	register_dn("dn1", "127.0.0.2");
	register_dn("dn2", "127.0.0.3");
	register_dn("dn3", "127.0.0.4");
	ab.client_host = "127.0.0.3";
	abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, 0);
	uint64_t blk = 0;
	if (!abr->err) {
		CHECK_EQ(abr->block->n_locs, 3);
		CHECK(!strcmp(abr->block->locs[0]->host, "127.0.0.3")); /* writer-local first */
		CHECK(strcmp(abr->block->locs[1]->host, abr->block->locs[2]->host));
		blk = abr->block->id;
	}
	rfree(abr);
	/* the same request again (its reply lost): the same empty block */
	abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, 0);
	if (!abr->err)
		CHECK_EQ(abr->block->id, blk);
	rfree(abr);
	/* the writer could not reach a node of that pipeline: the empty block
	 * is abandoned and a new one handed out without the node */
	char *bad = "dn2";
	ab.excluded = &bad;
	ab.n_excluded = 1;
	abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, 0);
	if (!abr->err) {
		CHECK(abr->block->id != blk);
		CHECK_EQ(abr->block->n_locs, 2);
		for (size_t i = 0; i < abr->block->n_locs; i++)
			CHECK(strcmp(abr->block->locs[i]->id, "dn2"));
		blk = abr->block->id;
	}
	rfree(abr);
	ab.excluded = NULL;
	ab.n_excluded = 0;
	ab.client = "c2";
	abr = call("AddBlock", &ab);
	CHECK_EQ(abr->err, EBUSY);
	rfree(abr);
	CHECK_EQ(complete(ino, "c1", blk, 12345), 0);
	CHECK_EQ(complete(ino, "c1", blk, 12345), 0);	/* a retried Complete */
	CHECK_EQ(complete(ino, "c1", blk, 999), EBADF); /* not what was closed */
	CHECK_EQ(create("/a/f", "c1", false, NULL, &root), EEXIST);
	test_sparse(ino, blk);
	test_mknod(&user);
	test_suid_drop(&user);
	test_inline();
	CHECK_EQ(stat_path("/a/f", &at, &root), 0);
	CHECK_EQ(at.size, 12345);
	CHECK_EQ(at.blocks, 1); /* the abandoned block is gone */
	CHECK(!at.under_construction);

	Caudal__GetBlocksRequest gb = CAUDAL__GET_BLOCKS_REQUEST__INIT;
	Caudal__Target ft = CAUDAL__TARGET__INIT;
	ft.path = "/a/f";
	gb.target = &ft;
	gb.client_host = "127.0.0.4";
	Caudal__GetBlocksReply *gbr = call("GetBlocks", &gb);
	CHECK_EQ(gbr->err, 0);
	CHECK_EQ(gbr->n_blocks, 1);
	if (gbr->n_blocks) {
		CHECK_EQ(gbr->blocks[0]->length, 12345);
		CHECK_EQ(gbr->blocks[0]->n_locs, 2);
		CHECK(!strcmp(gbr->blocks[0]->locs[0]->host, "127.0.0.4")); /* closest first */
	}
	rfree(gbr);

	/* xattrs, including the caudal ones */
	Caudal__XattrRequest xq = CAUDAL__XATTR_REQUEST__INIT;
	xq.target = &ft;
	xq.name = "user.color";
	xq.value.data = (uint8_t *)"blue";
	xq.value.len = 4;
	Caudal__Status *st = call("SetXattr", &xq);
	CHECK_EQ(st->err, 0);
	rfree(st);
	Caudal__XattrReply *xr = call("GetXattr", &xq);
	CHECK_EQ(xr->err, 0);
	CHECK(xr->value.len == 4 && !memcmp(xr->value.data, "blue", 4));
	rfree(xr);
	xq.name = "user.caudal.replication";
	xq.value.data = (uint8_t *)"2";
	xq.value.len = 1;
	st = call("SetXattr", &xq);
	CHECK_EQ(st->err, 0);
	rfree(st);
	xr = call("GetXattr", &xq);
	CHECK(xr->value.len == 1 && xr->value.data[0] == '2');
	rfree(xr);
	xq.name = "user.caudal.blocks";
	xr = call("GetXattr", &xq);
	CHECK_EQ(xr->err, 0);
	CHECK(xr->value.len > 10 && memchr(xr->value.data, '\n', xr->value.len));
	rfree(xr);
	xq.name = "user.nope";
	xr = call("GetXattr", &xq);
	CHECK_EQ(xr->err, ENODATA);
	rfree(xr);

	/* permissions */
	CHECK_EQ(mkdir_p("/private", false, &root), 0);
	Caudal__SetAttrRequest sa = CAUDAL__SET_ATTR_REQUEST__INIT;
	Caudal__Target pt = CAUDAL__TARGET__INIT;
	pt.path = "/private";
	sa.target = &pt;
	sa.valid = CAUDAL__SET_ATTR_FIELD__SA_MODE;
	sa.mode = 0700;
	Caudal__AttrReply *ar = call("SetAttr", &sa);
	CHECK_EQ(ar->err, 0);
	rfree(ar);
	CHECK_EQ(create("/private/x", "u", false, NULL, &user), EACCES);
	CHECK_EQ(stat_path("/private/x", NULL, &user), EACCES);
	sa.cred = &user;
	ar = call("SetAttr", &sa);
	CHECK_EQ(ar->err, EPERM);
	rfree(ar);

	/* a recursive delete needs the right to empty every directory in it */
	CHECK_EQ(mkdir_p("/pub/priv", true, &root), 0);
	pt.path = "/pub";
	sa.cred = &root;
	sa.mode = 0777;
	ar = call("SetAttr", &sa);
	CHECK_EQ(ar->err, 0);
	rfree(ar);
	uint64_t pino;
	CHECK_EQ(create("/pub/priv/x", "c1", false, &pino, &root), 0);
	CHECK_EQ(complete(pino, "c1", 0, 0), 0);
	CHECK_EQ(del_as("/pub/priv", true, 0, &user), EACCES);
	/* moving someone else's directory to another parent changes its ".." */
	CHECK_EQ(mkdir_p("/pub/dest", false, &user), 0);
	{
		Caudal__RenameRequest q = CAUDAL__RENAME_REQUEST__INIT;
		Caudal__Target s1 = CAUDAL__TARGET__INIT, d1 = CAUDAL__TARGET__INIT;
		s1.path = "/pub/priv";
		d1.path = "/pub/dest/priv";
		q.src = &s1;
		q.dst = &d1;
		q.cred = &user;
		Caudal__Status *r = call("Rename", &q);
		CHECK_EQ(r->err, EACCES);
		rfree(r);
	}
	CHECK_EQ(stat_path("/pub/priv/x", NULL, &root), 0);
	CHECK_EQ(del_as("/pub/priv", true, 0, &root), 0);
	test_root_and_ids();

	/* rename, delete */
	CHECK_EQ(create("/a/g", "c1", false, &ino, &root), 0);
	CHECK_EQ(complete(ino, "c1", 0, 0), 0);
	CHECK_EQ(ren("/a/g", "/a/f"), 0); /* over an existing file */
	CHECK_EQ(stat_path("/a/g", NULL, &root), ENOENT);
	CHECK_EQ(stat_path("/a/f", &at, &root), 0);
	CHECK_EQ(at.ino, ino);
	CHECK_EQ(ren("/a", "/a/b/c/d"), EINVAL); /* into itself */
	CHECK_EQ(ren("/a/f", "/a/b"), EISDIR);
	CHECK_EQ(ren("/a/b", "/z"), 0);
	CHECK_EQ(stat_path("/z/c", NULL, &root), 0);
	CHECK_EQ(del("/z", false, 2), ENOTEMPTY);
	CHECK_EQ(del("/a/f", false, 2), ENOTDIR);
	CHECK_EQ(del("/z", true, 0), 0);
	CHECK_EQ(stat_path("/z/c", NULL, &root), ENOENT);

	/* readdir returns attributes, paged */
	for (int i = 0; i < 30; i++) {
		char p[64];
		snprintf(p, sizeof(p), "/many/d%02d", i);
		CHECK_EQ(mkdir_p(p, true, &root), 0);
	}
	Caudal__ReaddirRequest rq = CAUDAL__READDIR_REQUEST__INIT;
	Caudal__Target mt = CAUDAL__TARGET__INIT;
	mt.path = "/many";
	rq.target = &mt;
	rq.limit = 20;
	Caudal__ReaddirReply *rr = call("Readdir", &rq);
	CHECK_EQ(rr->n_entries, 20);
	CHECK(rr->more);
	CHECK(!strcmp(rr->entries[19]->name, "d19"));
	CHECK(S_ISDIR(rr->entries[0]->attr->mode));
	rq.after = "d19";
	rfree(rr);
	rr = call("Readdir", &rq);
	CHECK_EQ(rr->n_entries, 10);
	CHECK(!rr->more);
	rfree(rr);

	/* events: the log holds what happened, in order */
	Caudal__EventsRequest eq = CAUDAL__EVENTS_REQUEST__INIT;
	eq.from_txid = 1;
	Caudal__EventsReply *er = call("GetEvents", &eq);
	CHECK(er->n_events > 10);
	int closes = 0;
	for (size_t i = 0; i < er->n_events; i++)
		closes += er->events[i]->type == CAUDAL__EVENT_TYPE__EV_CLOSE &&
			  !strcmp(er->events[i]->path, "/a/f");
	CHECK(closes >= 1);
	uint64_t last = er->last_txid;
	rfree(er);
	/* a long poll with nothing new returns after its wait */
	eq.from_txid = last + 1;
	eq.wait_ms = 200;
	int64_t t0 = cdl_now_ms();
	er = call("GetEvents", &eq);
	CHECK_EQ(er->n_events, 0);
	CHECK(cdl_now_ms() - t0 >= 150);
	rfree(er);

	/* a checkpoint taken now, fetched the way the checkpointer does */
	char ckdir[600], target[64];
	snprintf(ckdir, sizeof(ckdir), "%s-ckpts", dir);
	snprintf(target, sizeof(target), "127.0.0.1:%d", cdl_rpc_server_port(srv));
	uint64_t cktxid = 0;
	CHECK_EQ(nn_ckpt_fetch(target, ckdir, 2, 10000, &cktxid), 0);
	CHECK_EQ(cktxid, last);
	CHECK_EQ(mkdir_p("/after-checkpoint", false, &root), 0);

	/* everything survives a restart */
	stop_nn();
	start();
	CHECK_EQ(stat_path("/a/f", &at, &root), 0);
	CHECK_EQ(at.ino, ino);
	CHECK_EQ(stat_path("/many/d29", NULL, &root), 0);
	CHECK_EQ(stat_path("/private", &at, &root), 0);
	CHECK_EQ(at.mode & 0777, 0700);
	CHECK_EQ(stat_path("/after-checkpoint", NULL, &root), 0);
	stop_nn();

	/* the checkpoint restores into a fresh metadata folder: it holds what
	 * was there when it was taken, and nothing later */
	char saved[sizeof(dir)], ckpt[700], cmd0[1500];
	memcpy(saved, dir, sizeof(dir));
	snprintf(ckpt, sizeof(ckpt), "%s/ckpt-%020llu", ckdir, (unsigned long long)cktxid);
	CHECK_EQ(nn_ckpt_restore(ckpt, saved), -ENOTEMPTY); /* never over live metadata */
	snprintf(cmd0, sizeof(cmd0), "rm -rf %s", dir);
	CHECK_EQ(system(cmd0), 0);
	CHECK_EQ(nn_ckpt_restore(ckpt, dir), 0);
	start();
	CHECK_EQ(stat_path("/a/f", &at, &root), 0);
	CHECK_EQ(at.ino, ino);
	CHECK_EQ(stat_path("/many/d29", NULL, &root), 0);
	CHECK_EQ(stat_path("/after-checkpoint", NULL, &root), ENOENT);

	/* a request that claims nobody is refused, never taken for root (the
	 * test server is plaintext: a claim is all the namenode has) */
	{
		Caudal__DeleteRequest dq = CAUDAL__DELETE_REQUEST__INIT;
		Caudal__Target dt = CAUDAL__TARGET__INIT;
		dt.path = "/a/f";
		dq.target = &dt;
		ProtobufCMessage *r = NULL;
		CHECK_EQ(cdl_rpc_call_name(cl, "Delete", &dq.base, &r, 5000), 0);
		CHECK(r && ((Caudal__Status *)r)->err == EACCES);
		if (r)
			rfree(r);
		CHECK_EQ(stat_path("/a/f", NULL, &root), 0);
	}
	stop_nn();
	snprintf(cmd0, sizeof(cmd0), "rm -rf %s %s-checkpoint", ckdir, dir);
	CHECK_EQ(system(cmd0), 0);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
	cdl_rpc_global_shutdown();
	return TEST_DONE();
}
