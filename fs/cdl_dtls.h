/* cdl_dtls: TLS on the data port (`encrypt_data = yes`; DESIGN.md,
 * "Security": "TLS on the data port is an option").
 *
 * The data-transfer code reads and writes plain file descriptors, and a
 * write keeps two threads on one socket (the receiver reads packets while
 * the responder writes acks), which one OpenSSL connection does not allow.
 * So a TLS connection is handed to a relay thread that owns the SSL object
 * alone and copies between it and one end of a socketpair; the caller gets
 * the other end and uses it as before, timeouts and shutdown included. The
 * kernel's TLS offload would save the relay, but this kernel has none.
 *
 * The server side presents this process's certificate (cdl_sec); the client
 * side checks the datanode's certificate against the cluster CA and the
 * host it connected to. Tokens, not certificates, say what a caller may do,
 * so the server asks for no client certificate.
 *
 * Threads: cdl_dtls_init once at start-up (before any wrap); the rest from
 * any thread. Each wrapped connection has its own relay thread, which ends
 * when either side closes. */
#ifndef CDL_DTLS_H
#define CDL_DTLS_H

#include <stdbool.h>

/* The first byte of a TLS handshake record; a plaintext header starts
 * with 'C' (CDL_DT_MAGIC). */
#define CDL_DTLS_RECORD_HANDSHAKE 0x16

/* Make the client and server contexts from the process's TLS identity.
 * 0, or -EINVAL (logged) when there is none (insecure mode) or it does not
 * load. */
int cdl_dtls_init(void);
/* Whether cdl_dtls_init succeeded. */
bool cdl_dtls_ready(void);
/* Whether this process opens data connections with TLS (set once, by the
 * datanode's config or when the namenode says the cluster encrypts);
 * installs the relay as cdl_dt_connect's wrapper. */
void cdl_dtls_set_client(bool on);
bool cdl_dtls_client(void);

/* Run the TLS handshake on the connected socket fd (as the server, or as
 * a client checking that the certificate names host) within timeout_ms,
 * then start the relay. On success fd belongs to the relay and the return
 * is the caller's end of the socketpair; on failure fd is closed and the
 * return is -errno (-EACCES: the peer's certificate was refused,
 * -EPROTO: the handshake failed). */
int cdl_dtls_wrap(int fd, bool server, const char *host, int timeout_ms);

#endif
