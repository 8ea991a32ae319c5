/* Placement: writer-local first replica, second on another rack, third on
 * the second's rack on another host; distinct hosts; exclusions; topology
 * file parsing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "nn_place.h"
#include "test.h"

int main(void)
{
	nn_candidate c[7] = {
		{"10.0.0.1", "/r1", 100, true}, {"10.0.0.2", "/r1", 100, true},
		{"10.0.0.3", "/r2", 100, true}, {"10.0.0.4", "/r2", 100, true},
		{"10.0.0.5", "/r3", 100, true}, {"10.0.0.6", "/r3", 100, true},
		{"10.0.0.7", "/r4", 100, false},
	};
	uint64_t seed = 42;
	for (int round = 0; round < 200; round++) {
		int out[3];
		size_t n = nn_place_choose(c, 7, "10.0.0.2", NULL, 0, 3, out, &seed);
		CHECK_EQ(n, 3);
		CHECK_EQ(out[0], 1);                              /* the writer's host */
		CHECK(strcmp(c[out[1]].rack, c[out[0]].rack));    /* another rack */
		CHECK(!strcmp(c[out[2]].rack, c[out[1]].rack));   /* the second's rack */
		CHECK(strcmp(c[out[2]].host, c[out[1]].host));    /* another host */
		CHECK(out[0] != 6 && out[1] != 6 && out[2] != 6); /* unusable never chosen */
	}
	/* a writer that is not a datanode: any first node, rules still hold */
	int out[7];
	size_t n = nn_place_choose(c, 7, "192.168.1.1", NULL, 0, 3, out, &seed);
	CHECK_EQ(n, 3);
	CHECK(strcmp(c[out[1]].rack, c[out[0]].rack));
	/* more wanted than usable hosts: as many as there are, all distinct */
	n = nn_place_choose(c, 7, NULL, NULL, 0, 7, out, &seed);
	CHECK_EQ(n, 6);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			CHECK(strcmp(c[out[i]].host, c[out[j]].host));
	/* re-replication avoids hosts that already hold the block */
	int have[2] = {0, 2};
	n = nn_place_choose(c, 7, NULL, have, 2, 1, out, &seed);
	CHECK_EQ(n, 1);
	CHECK(!strcmp(c[out[0]].rack, "/r2")); /* third replica: second's rack */
	CHECK(out[0] == 3);
	/* the two holders share a rack: the third copy goes to another rack */
	int same[2] = {0, 1};
	for (int round = 0; round < 50; round++) {
		n = nn_place_choose(c, 7, NULL, same, 2, 1, out, &seed);
		CHECK_EQ(n, 1);
		CHECK(strcmp(c[out[0]].rack, "/r1"));
	}
	/* the second's rack has no other usable host: fall back to any */
	c[5].usable = false;
	int have2[2] = {1, 4};
	n = nn_place_choose(c, 7, NULL, have2, 2, 1, out, &seed);
	CHECK_EQ(n, 1);
	CHECK(out[0] != 1 && out[0] != 4 && out[0] != 5 && out[0] != 6);
	/* one rack only (the default): distinct hosts still */
	nn_candidate flat[3] = {{"a", "/default-rack", 1, true},
				{"b", "/default-rack", 1, true},
				{"c", "/default-rack", 1, true}};
	n = nn_place_choose(flat, 3, "b", NULL, 0, 3, out, &seed);
	CHECK_EQ(n, 3);
	CHECK_EQ(out[0], 1);
	CHECK(out[1] != out[2] && out[1] != 1 && out[2] != 1);

	/* topology file */
	char path[] = "/tmp/caudal-topo-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "# hosts\n127.0.0.2 /rackA\n127.0.0.3\t/rackB\n\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	nn_topology *t;
	char err[256];
	CHECK_EQ(nn_topology_load(path, &t, err, sizeof(err)), 0);
	CHECK(!strcmp(nn_topology_rack(t, "127.0.0.2"), "/rackA"));
	CHECK(!strcmp(nn_topology_rack(t, "127.0.0.3"), "/rackB"));
	CHECK(!strcmp(nn_topology_rack(t, "127.0.0.9"), NN_DEFAULT_RACK));
	nn_topology_free(t);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "127.0.0.2 rackA\n", 16) == 16);
	close(fd);
	CHECK_EQ(nn_topology_load(path, &t, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "line 1") != NULL);
	nn_topology_free(t);
	unlink(path);
	return TEST_DONE();
}
