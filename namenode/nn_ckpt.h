/* nn_ckpt: checkpoints of the namenode's metadata [Secondary NameNode].
 *
 * Namenode side: NamenodeProtocol. CheckpointBegin makes a consistent
 * RocksDB checkpoint (hard links, cheap) in a sibling folder of the
 * metadata directory; CheckpointRead serves its files in pieces;
 * CheckpointEnd (or a session older than ten minutes) removes it. One
 * session at a time; its own mutex.
 *
 * Checkpointer side: nn_ckpt_run fetches a checkpoint into
 * DIR/ckpt-<txid> (written under a temporary name, fsynced, then renamed)
 * and keeps the newest `keep`. nn_ckpt_restore copies one back into an
 * empty metadata directory. */
#ifndef NN_CKPT_H
#define NN_CKPT_H

#include <stdint.h>

#include "cdl_rpc.h"
#include "nn_ns.h"

int nn_ckpt_register(nn_ns *ns, cdl_rpc_server *srv);
void nn_ckpt_shutdown(void);

/* One checkpoint from the namenode at addr into dir. 0 or -errno. */
int nn_ckpt_fetch(const char *addr, const char *dir, int keep, int timeout_ms, uint64_t *txid);
/* Copy checkpoint folder src into metadata folder dst (absent or empty). */
int nn_ckpt_restore(const char *src, const char *dst);

#endif
