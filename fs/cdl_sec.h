/* cdl_sec: who a peer is. The cluster CA, the certificates it signs (one
 * per daemon and per client, each naming a role and a host or user name),
 * and the process-wide TLS identity every gRPC server and channel of this
 * process uses (cdl_rpc reads it).
 *
 * A certificate's subject common name is "ROLE:NAME": "datanode:127.0.0.2",
 * "mount:127.0.0.1", "admin:root", "user:alice". Daemon certificates carry
 * their host as an IP (or DNS) subject alternative name too, which is what
 * a client checks when it connects to that host.
 *
 * cdl_sec_use is called once at start-up, before the first server or
 * channel is made; the identity is read-only after that. */
#ifndef CDL_SEC_H
#define CDL_SEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cdl_role {
	CDL_ROLE_NONE = 0,    /* no identity: refused everywhere */
	CDL_ROLE_NAMENODE,    /* a namenode, or its checkpointer */
	CDL_ROLE_DATANODE,    /* a datanode on the certificate's host */
	CDL_ROLE_JOBTRACKER,  /* the jobtracker */
	CDL_ROLE_TASKTRACKER, /* a tasktracker on the certificate's host */
	CDL_ROLE_MOUNT,	      /* a mount: may act for any uid (within exports) */
	CDL_ROLE_ADMIN,	      /* the cluster's superuser */
	CDL_ROLE_USER,	      /* one user, acting only as that user */
	CDL_ROLE_INSECURE,    /* plaintext (insecure = yes): every claim believed */
	CDL_ROLE_N
};
#define CDL_ROLE_BIT(r) (1u << (r))

/* The authenticated caller of an RPC. */
typedef struct cdl_peer {
	enum cdl_role role;
	char name[128]; /* after "ROLE:" in the certificate: host or user name */
	char addr[64];	/* the peer's IP address as the server saw it */
} cdl_peer;

/* "datanode" -> CDL_ROLE_DATANODE; CDL_ROLE_NONE when unknown. */
enum cdl_role cdl_role_parse(const char *s);
const char *cdl_role_name(enum cdl_role r);
/* Split a certificate common name "ROLE:NAME" into p (addr untouched);
 * false when it is not of that form or names no known role. */
bool cdl_peer_from_cn(const char *cn, size_t len, cdl_peer *p);

/* This process's TLS identity: PEM files of the CA, our certificate and its
 * key. 0, or -errno with a logged line naming the file. */
int cdl_sec_use(const char *ca_file, const char *cert_file, const char *key_file);
/* Run without TLS (config `insecure = yes`); logs a warning. */
void cdl_sec_use_insecure(void);
/* Whether cdl_sec_use succeeded (else channels and servers are plaintext). */
bool cdl_sec_enabled(void);
/* The loaded PEM text (NULL when not enabled); lent. */
const char *cdl_sec_ca_pem(void);
const char *cdl_sec_cert_pem(void);
const char *cdl_sec_key_pem(void);

/* Start-up step for daemons: use the given files, or run insecure when
 * insecure is set; with neither, -EINVAL and a line saying what to set. */
int cdl_sec_daemon_init(const char *ca, const char *cert, const char *key, bool insecure);

/* For client programs (caudal, the mount, tools): find an identity from
 * CAUDAL_CA/CAUDAL_CERT/CAUDAL_KEY, else under home/certs (as_name.* when
 * given, e.g. "mount"; else admin.* for root, users/NAME.* for anyone
 * else), else ~/.caudal/NAME.* (NAME: this process's user); insecure when
 * CAUDAL_INSECURE=1. 0 or -ENOENT with a message in err. */
int cdl_sec_client_init(const char *home, const char *as_name, char *err, size_t errlen);

/* ---- making certificates (OpenSSL) */

/* A new CA in dir (ca.crt 0644, ca.key 0600), unless one is there. */
int cdl_cert_create_ca(const char *dir, const char *cluster_name);
/* A certificate signed by the CA in dir: "ROLE:NAME" with host (may be
 * NULL) as subject alternative name; written to crt_path and key_path
 * (0600). Valid for days days. */
int cdl_cert_create(const char *dir, enum cdl_role role, const char *name, const char *host,
		    const char *crt_path, const char *key_path, int days);
/* One line per certificate file in dir (and dir/users): file, subject,
 * expiry. */
int cdl_cert_list(const char *dir, FILE *out);

#endif
