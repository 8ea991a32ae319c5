/* dn_scan: the block scanner. Re-reads every finalized replica at a bounded
 * rate, checks each chunk against its sidecar and has the store mark a
 * replica that fails corrupt (which reports it to the namenode and stops
 * serving it).
 *
 * Owns one thread, started and stopped from the main thread. dn_scan_once
 * runs a pass on the caller's thread (tests, tools). */
#ifndef DN_SCAN_H
#define DN_SCAN_H

#include <stdint.h>

#include "dn_store.h"

typedef struct dn_scan dn_scan;

/* Scan at rate bytes/s, a pass every period_ms (measured from the start of
 * the previous one). rate 0 disables the scanner (*out = NULL). 0 or
 * -errno. */
int dn_scan_start(dn_store *s, int64_t rate, int64_t period_ms, dn_scan **out);
void dn_scan_stop(dn_scan *sc);
/* One unthrottled pass; returns the number of replicas found corrupt. */
int dn_scan_once(dn_store *s);
/* Re-read one finalized replica now (a client said it is bad); a corrupt
 * one is marked, which reports it. 1 corrupt, 0 good, -errno (-ENOENT not
 * held, -EAGAIN being written or of another generation). */
int dn_scan_verify(dn_store *s, uint64_t id, uint64_t gen);

#endif
