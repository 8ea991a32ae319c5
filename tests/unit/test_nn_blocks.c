/* The namenode's soft state: the block map under heavy churn, the
 * replication monitor's decisions (copy an under-replicated block, drop an
 * excess replica, declare a silent datanode dead, not blame datanodes for
 * the namenode's own stall) and block reports. */
#include <stdlib.h>
#include <string.h>

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

	cdl_arena_release(&a);
	nn_blocks_free(b);
	nn_topology_free(topo);
	return TEST_DONE();
}
