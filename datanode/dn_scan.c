/* dn_scan: the block scanner. See dn_scan.h. */
#include "dn_scan.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cdl_checksum.h"
#include "cdl_log.h"
#include "cdl_util.h"

struct dn_scan {
	dn_store *s;
	int64_t rate, period_ms;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

/* Sleep up to ms unless stopped; true if stopped. NULL sc: never sleeps. */
static bool pause_ms(dn_scan *sc, int64_t ms)
{
	if (!sc)
		return false;
	pthread_mutex_lock(&sc->mu);
	if (!sc->stop && ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
	}
	bool stop = sc->stop;
	pthread_mutex_unlock(&sc->mu);
	return stop;
}

/* One pass. With sc, throttled to sc->rate and interruptible; returns the
 * number of corrupt replicas found, or -ECANCELED when stopped. */
static int scan_pass(dn_store *s, dn_scan *sc)
{
	dn_replica_info *v;
	size_t n = dn_store_list(s, &v);
	uint8_t *buf = xmalloc(CDL_CHUNK);
	int bad = 0;
	uint64_t bytes = 0;
	int64_t t0 = cdl_now_ms();
	for (size_t i = 0; i < n; i++) {
		dn_rd rd;
		int rc = dn_store_open_read(s, v[i].id, v[i].gen, &rd);
		if (rc == -EBADMSG)
			bad++; /* the sidecar did not fit: already marked */
		if (rc < 0)
			continue;
		if (rd.rbw || rd.gen != v[i].gen) {
			dn_rd_release(&rd);
			continue;
		}
		uint64_t nchunks = (rd.len + CDL_CHUNK - 1) / CDL_CHUNK;
		for (uint64_t idx = 0; idx < nchunks; idx++) {
			size_t k;
			uint64_t sum;
			rc = dn_rd_chunk(&rd, idx, buf, &k, &sum);
			if (rc == -EBADMSG) {
				char why[80];
				snprintf(why, sizeof(why),
					 "scanner: checksum mismatch in chunk %" PRIu64, idx);
				if (dn_store_mark_corrupt(s, rd.id, rd.gen, why) == 0)
					bad++;
				break;
			}
			if (rc < 0)
				break;
			bytes += k;
			if (sc && sc->rate > 0) {
				int64_t due = t0 + (int64_t)(bytes * 1000 / (uint64_t)sc->rate);
				int64_t now = cdl_now_ms();
				if (due > now && pause_ms(sc, due - now)) {
					dn_rd_release(&rd);
					free(buf);
					free(v);
					return -ECANCELED;
				}
			}
			if (sc && pause_ms(sc, 0)) {
				dn_rd_release(&rd);
				free(buf);
				free(v);
				return -ECANCELED;
			}
		}
		dn_rd_release(&rd);
	}
	free(buf);
	free(v);
	cdl_debug("scan pass: %zu replicas, %" PRIu64 " bytes, %d corrupt in %" PRId64 " ms", n,
		  bytes, bad, cdl_now_ms() - t0);
	return bad;
}

int dn_scan_once(dn_store *s)
{
	return scan_pass(s, NULL);
}

int dn_scan_verify(dn_store *s, uint64_t id, uint64_t gen)
{
	dn_rd rd;
	int rc = dn_store_open_read(s, id, gen, &rd);
	if (rc == -EBADMSG)
		return 1; /* the sidecar did not fit: already marked */
	if (rc < 0)
		return rc;
	if (rd.rbw || rd.gen != gen) {
		dn_rd_release(&rd);
		return -EAGAIN; /* being written, or another generation */
	}
	uint8_t *buf = xmalloc(CDL_CHUNK);
	uint64_t nchunks = (rd.len + CDL_CHUNK - 1) / CDL_CHUNK;
	int bad = 0;
	for (uint64_t idx = 0; idx < nchunks; idx++) {
		size_t k;
		uint64_t sum;
		rc = dn_rd_chunk(&rd, idx, buf, &k, &sum);
		if (rc == -EBADMSG) {
			char why[80];
			snprintf(why, sizeof(why), "verify: checksum mismatch in chunk %" PRIu64,
				 idx);
			bad = dn_store_mark_corrupt(s, rd.id, rd.gen, why) == 0;
			break;
		}
		if (rc < 0) {
			bad = rc;
			break;
		}
	}
	dn_rd_release(&rd);
	free(buf);
	return bad;
}

static void *scan_main(void *arg)
{
	dn_scan *sc = arg;
	for (;;) {
		int64_t start = cdl_now_ms();
		int bad = scan_pass(sc->s, sc);
		if (bad == -ECANCELED)
			break;
		if (bad > 0)
			cdl_warn("scanner found %d corrupt replicas", bad);
		if (pause_ms(sc, start + sc->period_ms - cdl_now_ms()))
			break;
	}
	return NULL;
}

int dn_scan_start(dn_store *s, int64_t rate, int64_t period_ms, dn_scan **out)
{
	*out = NULL;
	if (rate <= 0)
		return 0;
	dn_scan *sc = xcalloc(1, sizeof(*sc));
	sc->s = s;
	sc->rate = rate;
	sc->period_ms = period_ms > 0 ? period_ms : 1000;
	pthread_mutex_init(&sc->mu, NULL);
	cdl_cond_init_mono(&sc->cv);
	if (pthread_create(&sc->thr, NULL, scan_main, sc) != 0) {
		cdl_err("cannot start the block scanner thread");
		pthread_mutex_destroy(&sc->mu);
		pthread_cond_destroy(&sc->cv);
		free(sc);
		return -EAGAIN;
	}
	*out = sc;
	return 0;
}

void dn_scan_stop(dn_scan *sc)
{
	if (!sc)
		return;
	pthread_mutex_lock(&sc->mu);
	sc->stop = true;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	pthread_join(sc->thr, NULL);
	pthread_mutex_destroy(&sc->mu);
	pthread_cond_destroy(&sc->cv);
	free(sc);
}
