/* netbed_switch: the switch of the multi-host test bed (cluster_netns.sh).
 *
 *   netbed_switch [-l LOCAL_US] [-r REMOTE_US] [-q MAX_MB] [-c FIFO] NETNS:IFNAME:RACK...
 *
 * Makes a TAP device IFNAME inside each named network namespace and
 * forwards Ethernet frames between them as a learning switch, holding each
 * frame LOCAL_US microseconds when both ends are on the same RACK and
 * REMOTE_US when they are not (one-way; a round trip costs twice). It
 * exists because this kernel has neither the netem nor the fq qdisc, so
 * `tc netem delay` cannot give the bed its latency.
 *
 * A link is cut by setting the TAP down inside its namespace (`ip link set
 * IFNAME down`): the host then sends nothing and frames for it are dropped
 * here, as a pulled cable. A silent partition, where both hosts keep their
 * links and frames between them are lost (a firewall or a broken switch
 * between them), is asked for on the control FIFO, one line each:
 * "cut NS1 NS2", "heal NS1 NS2", "isolate NS" (cut from every other port),
 * "rejoin NS" (heal them all). Frames beyond MAX_MB queued in all are dropped,
 * as a switch's full buffer would. The TAPs go when this process does
 * (SIGTERM, SIGINT or SIGKILL), so nothing outlives a test.
 *
 * Prints "ready" on stdout once every TAP exists. Single-threaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 32
#define MAX_FRAME 65600
#define MAX_MACS  256

struct frame {
	struct frame *next;
	uint64_t due_ns;
	size_t len;
	unsigned char data[];
};

/* One FIFO per (from, to) pair: each has a constant delay, so its frames
 * fall due in order. */
struct queue {
	struct frame *head, *tail;
};

static struct {
	int fd;
	char rack[64];
	char name[128];
} port[MAX_PORTS];
static int nports;
static struct queue q[MAX_PORTS][MAX_PORTS];
static bool cut[MAX_PORTS][MAX_PORTS]; /* frames from i to j are lost */
static struct {
	unsigned char mac[6];
	int port;
} macs[MAX_MACS];
static int nmacs;
static uint64_t local_ns = 500000, remote_ns = 5000000;
static size_t queued, max_queued = 64u << 20;
static uint64_t dropped;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "netbed_switch: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Makes TAP ifname inside network namespace ns; returns its fd. */
static int make_tap(int home, const char *ns, const char *ifname)
{
	char path[300];
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		die(path);
	if (setns(nsfd, CLONE_NEWNET) < 0)
		die("setns");
	close(nsfd);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		die("/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die(ifname);
	if (setns(home, CLONE_NEWNET) < 0)
		die("setns home");
	return fd;
}

static void learn(const unsigned char *mac, int p)
{
	if (mac[0] & 1)
		return; /* a group address is never a source */
	for (int i = 0; i < nmacs; i++)
		if (!memcmp(macs[i].mac, mac, 6)) {
			macs[i].port = p;
			return;
		}
	if (nmacs < MAX_MACS) {
		memcpy(macs[nmacs].mac, mac, 6);
		macs[nmacs++].port = p;
	}
}

static int port_of(const unsigned char *mac)
{
	if (mac[0] & 1)
		return -1;
	for (int i = 0; i < nmacs; i++)
		if (!memcmp(macs[i].mac, mac, 6))
			return macs[i].port;
	return -1;
}

static void enqueue(int from, int to, const unsigned char *buf, size_t len, uint64_t now)
{
	if (cut[from][to])
		return;
	if (queued + len > max_queued) {
		dropped++;
		return;
	}
	struct frame *f = malloc(sizeof(*f) + len);
	if (!f) {
		dropped++;
		return;
	}
	f->next = NULL;
	f->len = len;
	f->due_ns = now + (strcmp(port[from].rack, port[to].rack) ? remote_ns : local_ns);
	memcpy(f->data, buf, len);
	struct queue *qq = &q[from][to];
	if (qq->tail)
		qq->tail->next = f;
	else
		qq->head = f;
	qq->tail = f;
	queued += len;
}

/* Sends every frame that is due; returns the earliest due time left (0: none). */
static uint64_t release(uint64_t now)
{
	uint64_t next = 0;
	for (int i = 0; i < nports; i++)
		for (int j = 0; j < nports; j++) {
			struct queue *qq = &q[i][j];
			while (qq->head && qq->head->due_ns <= now) {
				struct frame *f = qq->head;
				/* a TAP that is down (cut link) or full drops it */
				if (write(port[j].fd, f->data, f->len) < 0)
					dropped++;
				qq->head = f->next;
				if (!qq->head)
					qq->tail = NULL;
				queued -= f->len;
				free(f);
			}
			if (qq->head && (!next || qq->head->due_ns < next))
				next = qq->head->due_ns;
		}
	return next;
}

static void receive(int p, uint64_t now)
{
	static unsigned char buf[MAX_FRAME];
	for (int n = 0; n < 64; n++) {
		ssize_t len = read(port[p].fd, buf, sizeof(buf));
		if (len < 0)
			return; /* EAGAIN, or EIO while the link is down */
		if (len < 14)
			continue;
		learn(buf + 6, p);
		int to = port_of(buf);
		if (to == p)
			continue;
		if (to >= 0) {
			enqueue(p, to, buf, (size_t)len, now);
			continue;
		}
		for (int j = 0; j < nports; j++)
			if (j != p)
				enqueue(p, j, buf, (size_t)len, now);
	}
}

static int port_named(const char *ns)
{
	for (int i = 0; i < nports; i++)
		if (!strcmp(port[i].name, ns))
			return i;
	return -1;
}

static void set_cut(int a, int b, bool on)
{
	cut[a][b] = cut[b][a] = on;
}

/* One control line; unknown ones are reported and ignored. */
static void control(char *line)
{
	char cmd[16], a[128], b[128];
	int n = sscanf(line, "%15s %127s %127s", cmd, a, b);
	int i = n >= 2 ? port_named(a) : -1, j = n >= 3 ? port_named(b) : -1;
	if (n == 3 && i >= 0 && j >= 0 && (!strcmp(cmd, "cut") || !strcmp(cmd, "heal"))) {
		set_cut(i, j, !strcmp(cmd, "cut"));
	} else if (n == 2 && i >= 0 && (!strcmp(cmd, "isolate") || !strcmp(cmd, "rejoin"))) {
		for (int k = 0; k < nports; k++)
			if (k != i)
				set_cut(i, k, !strcmp(cmd, "isolate"));
	} else {
		fprintf(stderr, "netbed_switch: bad control line '%s'\n", line);
		return;
	}
	fprintf(stderr, "netbed_switch: %s\n", line);
}

/* Reads what the control FIFO holds and runs each complete line. */
static void read_control(int fd)
{
	static char buf[4096];
	static size_t have;
	ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
	if (n <= 0)
		return;
	have += (size_t)n;
	buf[have] = '\0';
	char *start = buf, *nl;
	while ((nl = strchr(start, '\n'))) {
		*nl = '\0';
		control(start);
		start = nl + 1;
	}
	have -= (size_t)(start - buf);
	memmove(buf, start, have);
	if (have == sizeof(buf) - 1)
		have = 0; /* a line longer than the buffer: dropped */
}

int main(int argc, char **argv)
{
	const char *fifo = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "l:r:q:c:")) != -1) {
		if (opt == 'c') {
			fifo = optarg;
			continue;
		}
		long v = atol(optarg);
		if (v < 0 || v > 10000000) {
			fprintf(stderr, "netbed_switch: -%c %s: out of range\n", opt, optarg);
			return 2;
		}
		if (opt == 'l')
			local_ns = (uint64_t)v * 1000;
		else if (opt == 'r')
			remote_ns = (uint64_t)v * 1000;
		else if (opt == 'q' && v > 0 && v <= 4096)
			max_queued = (size_t)v << 20;
		else
			return 2;
	}
	if (optind >= argc || argc - optind > MAX_PORTS) {
		fprintf(stderr,
			"usage: netbed_switch [-l US] [-r US] [-q MB] [-c FIFO] "
			"NETNS:IFNAME:RACK... "
			"(at most %d)\n",
			MAX_PORTS);
		return 2;
	}
	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0)
		die("/proc/self/ns/net");
	for (int i = optind; i < argc; i++) {
		char ns[128], ifname[IFNAMSIZ], rack[64];
		if (sscanf(argv[i], "%127[^:]:%15[^:]:%63s", ns, ifname, rack) != 3) {
			fprintf(stderr, "netbed_switch: '%s' is not NETNS:IFNAME:RACK\n", argv[i]);
			return 2;
		}
		port[nports].fd = make_tap(home, ns, ifname);
		snprintf(port[nports].rack, sizeof(port[nports].rack), "%s", rack);
		snprintf(port[nports].name, sizeof(port[nports].name), "%s", ns);
		nports++;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* opened read-write so that it never reads as closed between writers */
	int cfd = fifo ? open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fifo && cfd < 0)
		die(fifo);
	struct pollfd pfd[MAX_PORTS + 1];
	for (int i = 0; i < nports; i++)
		pfd[i] = (struct pollfd){.fd = port[i].fd, .events = POLLIN};
	pfd[nports] = (struct pollfd){.fd = cfd, .events = POLLIN};
	printf("ready\n");
	fflush(stdout);
	uint64_t next = 0;
	while (!stop) {
		struct timespec ts = {1, 0}, *tsp = &ts;
		if (next) {
			uint64_t now = now_ns();
			uint64_t wait = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
		}
		int rc = ppoll(pfd, (nfds_t)nports + (cfd >= 0), tsp, NULL);
		if (rc < 0 && errno != EINTR)
			die("ppoll");
		uint64_t now = now_ns();
		if (rc > 0)
			for (int i = 0; i < nports; i++)
				if (pfd[i].revents & POLLIN)
					receive(i, now);
		if (rc > 0 && cfd >= 0 && (pfd[nports].revents & POLLIN))
			read_control(cfd);
		next = release(now_ns());
	}
	fprintf(stderr, "netbed_switch: stopping, %llu frames dropped\n",
		(unsigned long long)dropped);
	return 0;
}
