/* The namenode's soft state: the block map under heavy churn, the
 * replication monitor's decisions (copy an under-replicated block, drop an
 * excess replica, declare a silent datanode dead, not blame datanodes for
 * the namenode's own stall) and block reports. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdl_log.h"
#include "cdl_util.h"
#include "nn_blocks.h"
#include "test.h"

static nn_dn *reg(nn_blocks *b, const char *id, const char *host, int64_t now)
{
	Caudal__DatanodeInfo info = CAUDAL__DATANODE_INFO__INIT;
	info.id = (char *)id;
	info.host = (char *)host;
	info.data_port = 9866;
	info.remaining = 1ULL << 40;
	return nn_dn_register(b, &info, now);
}

static int count_cmds(nn_blocks *b, nn_dn *d, int type, cdl_arena *a)
{
	Caudal__HeartbeatReply r = CAUDAL__HEARTBEAT_REPLY__INIT;
	nn_dn_take_commands(b, d, &r, a, 1000);
	int n = 0;
	for (size_t i = 0; i < r.n_commands; i++)
		if ((int)r.commands[i]->type == type)
			n += type == CAUDAL__COMMAND_TYPE__CMD_DELETE ? (int)r.commands[i]->n_blocks
								      : 1;
	return n;
}

/* The balancer's moves: the rack rule, the byte and block bounds, blocks
 * in flight or being written left alone, and the source's replica dropped
 * as the excess once the copy is in. */
static void test_move(void)
{
	char path[] = "/tmp/caudal-topo-XXXXXX", err[128];
	int fd = mkstemp(path);
	const char *txt = "10.1.0.1 /r1\n10.1.0.2 /r1\n10.1.0.3 /r2\n10.1.0.4 /r2\n";
	CHECK(write(fd, txt, strlen(txt)) == (ssize_t)strlen(txt));
	close(fd);
	nn_topology *topo;
	CHECK_EQ(nn_topology_load(path, &topo, err, sizeof(err)), 0);
	unlink(path);
	nn_blocks *b = nn_blocks_new(topo, 10000);
	int64_t now = 5000000;
	nn_dn *d1 = reg(b, "m1", "10.1.0.1", now), *d2 = reg(b, "m2", "10.1.0.2", now);
	nn_dn *d3 = reg(b, "m3", "10.1.0.3", now), *d4 = reg(b, "m4", "10.1.0.4", now);
	cdl_arena a;
	cdl_arena_init(&a);
	/* A: r1 r1 r2; B: r1 r2 with replication 2; C: being written; D: empty */
	nn_blk *ka = nn_blk_add(b, 1, 1, 100, 1, 3);
	nn_blk_add_loc(b, ka, d1->idx);
	nn_blk_add_loc(b, ka, d2->idx);
	nn_blk_add_loc(b, ka, d3->idx);
	nn_blk *kb = nn_blk_add(b, 2, 1, 100, 2, 2);
	nn_blk_add_loc(b, kb, d1->idx);
	nn_blk_add_loc(b, kb, d3->idx);
	nn_blk *kc = nn_blk_add(b, 3, 1, 100, 3, 1);
	kc->uc = true;
	nn_blk_add_loc(b, kc, d3->idx);
	nn_blk *kd = nn_blk_add(b, 4, 1, 0, 4, 1);
	nn_blk_add_loc(b, kd, d3->idx);
	uint32_t n = 9;
	/* d3 -> d2: A is on d2 already, B would lose rack r2 */
	CHECK_EQ(nn_blocks_move(b, d3, d2, 1 << 20, 100, now, &n), 0);
	CHECK_EQ(n, 0);
	/* d3 -> d4 within r2, at most 150 bytes: one block now, the other next */
	CHECK_EQ(nn_blocks_move(b, d3, d4, 150, 100, now, &n), 100);
	CHECK_EQ(n, 1);
	CHECK_EQ(nn_blocks_move(b, d3, d4, 1 << 20, 100, now, &n), 100);
	CHECK_EQ(n, 1);
	CHECK(ka->move_from == d3->idx + 1 && kb->move_from == d3->idx + 1);
	CHECK_EQ(nn_blocks_move(b, d3, d4, 1 << 20, 100, now, &n), 0); /* both in flight */
	CHECK_EQ(count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_REPLICATE, &a), 2);
	/* the copy of A lands on d4: d3's replica is the one that goes, though
	 * d1 is fuller */
	d1->remaining = 1;
	Caudal__Replica rep = CAUDAL__REPLICA__INIT;
	rep.id = 1;
	rep.gen = 1;
	rep.length = 100;
	nn_dn_received(b, d4, &rep);
	nn_blocks_monitor(b, now + 100, false);
	CHECK_EQ(nn_blk_live(b, ka), 3);
	CHECK_EQ(count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 1);
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 0);
	CHECK_EQ(ka->move_from, 0);
	/* without a hint the excess leaves a rack's second replica, not a
	 * rack's only one, even on the fullest node */
	nn_blk *ke = nn_blk_add(b, 5, 1, 100, 5, 2);
	nn_blk_add_loc(b, ke, d1->idx);
	nn_blk_add_loc(b, ke, d3->idx);
	nn_blk_add_loc(b, ke, d4->idx);
	d1->remaining = 1; /* the fullest, and r1's only replica */
	nn_blocks_monitor(b, now + 200, false);
	CHECK_EQ(nn_blk_live(b, ke), 2);
	bool on_d1 = false;
	for (int i = 0; i < ke->nloc; i++)
		on_d1 |= ke->locs[i] == d1->idx;
	CHECK(on_d1);
	/* bounds: at most max_blocks in one call */
	for (uint64_t id = 100; id < 700; id++) {
		nn_blk *k = nn_blk_add(b, id, 1, 10, id, 1);
		nn_blk_add_loc(b, k, d2->idx);
	}
	CHECK_EQ(nn_blocks_move(b, d2, d1, UINT64_MAX, 256, now, &n), 2560);
	CHECK_EQ(n, 256);
	cdl_arena_release(&a);
	nn_blocks_free(b);
	nn_topology_free(topo);
}

int main(void)
{
	cdl_log_init("test", CDL_LOG_ERROR);
	nn_topology *topo;
	char err[64];
	nn_topology_load(NULL, &topo, err, sizeof(err));
	nn_blocks *b = nn_blocks_new(topo, 10000);

	/* churn: many adds and removes, lookups stay right */
	for (uint64_t id = 1; id <= 200000; id++)
		nn_blk_add(b, id, 1, 10, id, 3);
	for (uint64_t id = 1; id <= 200000; id++)
		if (id % 10)
			nn_blk_remove(b, id);
	for (uint64_t id = 200001; id <= 300000; id++)
		nn_blk_add(b, id, 1, 10, id, 3);
	long bad = 0;
	for (uint64_t id = 1; id <= 300000; id++) {
		bool want = id > 200000 || id % 10 == 0;
		if ((nn_blk_get(b, id) != NULL) != want)
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(b->nblocks, 120000);
	for (uint64_t id = 1; id <= 300000; id++)
		nn_blk_remove(b, id);
	CHECK_EQ(b->nblocks, 0);

	/* replication decisions */
	int64_t now = 1000000;
	nn_dn *d1 = reg(b, "d1", "10.0.0.1", now);
	nn_dn *d2 = reg(b, "d2", "10.0.0.2", now);
	nn_dn *d3 = reg(b, "d3", "10.0.0.3", now);
	cdl_arena a;
	cdl_arena_init(&a);
	nn_blk *k = nn_blk_add(b, 7, 1, 100, 42, 3);
	nn_blk_add_loc(b, k, d1->idx);
	nn_blocks_monitor(b, now, true); /* safe mode: nothing scheduled */
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_REPLICATE, &a), 0);
	nn_blocks_monitor(b, now, false);
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_REPLICATE, &a), 1);
	nn_blocks_monitor(b, now + 100, false); /* pending: not scheduled twice */
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_REPLICATE, &a), 0);
	Caudal__Replica rep = CAUDAL__REPLICA__INIT;
	rep.id = 7;
	rep.gen = 1;
	rep.length = 100;
	nn_dn_received(b, d2, &rep);
	nn_dn_received(b, d3, &rep);
	CHECK_EQ(nn_blk_live(b, k), 3);
	/* excess after setrep 2: one replica goes */
	k->repl = 2;
	nn_blocks_monitor(b, now + 200, false);
	CHECK_EQ(nn_blk_live(b, k), 2);
	int dels = count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a) +
		   count_cmds(b, d2, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a) +
		   count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a);
	CHECK_EQ(dels, 1);
	/* a stale generation in a report is deleted, not counted */
	Caudal__Replica stale = rep;
	stale.gen = 0;
	Caudal__Replica *reps[1] = {&stale};
	nn_dn_block_report(b, d1, reps, 1);
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 1);

	/* a silent datanode is declared dead; heartbeats keep the others */
	Caudal__DatanodeInfo hb = CAUDAL__DATANODE_INFO__INIT;
	hb.remaining = 1ULL << 40;
	for (int64_t t = now; t <= now + 12000; t += 1000) {
		nn_dn_heartbeat(b, d1, &hb, t);
		nn_dn_heartbeat(b, d2, &hb, t);
		nn_blocks_monitor(b, t, false);
	}
	CHECK(!d3->alive);
	CHECK(d1->alive && d2->alive);
	/* back from the dead: asked for a block report */
	nn_dn_heartbeat(b, d3, &hb, now + 12500);
	CHECK(d3->alive);
	CHECK_EQ(count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_REPORT, &a), 1);
	/* the namenode stalled for longer than the dead interval: nobody dies */
	nn_blocks_monitor(b, now + 40000, false);
	CHECK(d1->alive && d2->alive && d3->alive);

	/* a block being written: a replica stamped newer than the record (a
	 * pipeline recovery whose commit did not come) is kept when the stamp
	 * was handed out for it or is close above the record, and noted in
	 * k->ahead; far above and never handed out, or older, it is stale */
	nn_blk *w = nn_blk_add(b, 9, 5, 0, 43, 3);
	w->uc = true;
	Caudal__Replica r9 = CAUDAL__REPLICA__INIT, *r9s[1] = {&r9};
	r9.id = 9;
	r9.length = 65536;
	r9.gen = 5 + NN_GEN_AHEAD_MAX;
	nn_dn_block_report(b, d1, r9s, 1);
	CHECK_EQ(count_cmds(b, d1, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 0);
	CHECK_EQ(w->nloc, 1);
	CHECK_EQ(w->ahead, NN_GEN_AHEAD_MAX);
	r9.gen = 5 + NN_GEN_AHEAD_MAX + 1;
	nn_dn_received(b, d2, &r9);
	CHECK_EQ(count_cmds(b, d2, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 1);
	CHECK_EQ(w->nloc, 1);
	nn_blk_offer(b, 9, 5 + 1000, -1);
	r9.gen = 5 + 1000;
	nn_dn_received(b, d2, &r9);
	CHECK_EQ(count_cmds(b, d2, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 0);
	CHECK_EQ(w->nloc, 2);
	CHECK_EQ(w->ahead, 1000);
	r9.gen = 4;
	nn_dn_received(b, d3, &r9);
	CHECK_EQ(count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 1);
	/* once the block is finished a newer stamp is stale like any other */
	w->uc = false;
	w->len = 65536;
	r9.gen = 6;
	nn_dn_received(b, d3, &r9);
	CHECK_EQ(count_cmds(b, d3, CAUDAL__COMMAND_TYPE__CMD_DELETE, &a), 1);

	/* handed-out replacements are remembered per block, the oldest
	 * forgotten past the bound */
	nn_blk_offer(b, 9, 7, d3->idx);
	CHECK(nn_blk_offered_dn(b, 9, d3->idx));
	CHECK(!nn_blk_offered_dn(b, 9, d1->idx));
	CHECK(!nn_blk_offered_dn(b, 10, d3->idx));
	for (int i = 0; i < NN_MAX_OFFERS; i++)
		nn_blk_offer(b, 100 + (uint64_t)i, 1, d1->idx);
	CHECK(!nn_blk_offered_dn(b, 9, d3->idx));
	CHECK(nn_blk_offered_dn(b, 100 + NN_MAX_OFFERS - 1, d1->idx));

	/* replacements: live, in service, outside the pipeline, the block's
	 * locations and the excluded */
	nn_dn *d4 = reg(b, "d4", "10.0.0.4", now + 40000);
	nn_dn *d5 = reg(b, "d5", "10.0.0.5", now + 40000);
	nn_blk *p = nn_blk_add(b, 11, 1, 0, 44, 3);
	p->uc = true;
	nn_blk_add_loc(b, p, d1->idx);
	int pipe[1] = {d2->idx}, more[8];
	char *ex[1] = {"d4"};
	size_t got = nn_blocks_choose_more(b, p, pipe, 1, ex, 1, 3, more);
	CHECK_EQ(got, 2);
	for (size_t i = 0; i < got; i++)
		CHECK(more[i] == d3->idx || more[i] == d5->idx);
	d5->decommissioning = true;
	got = nn_blocks_choose_more(b, p, pipe, 1, ex, 1, 3, more);
	CHECK_EQ(got, 1);
	CHECK_EQ(more[0], d3->idx);
	(void)d4;

	cdl_arena_release(&a);
	nn_blocks_free(b);
	nn_topology_free(topo);
	test_move();
	return TEST_DONE();
}
