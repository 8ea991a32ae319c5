/* cdl_dtls: TLS on the data port. See cdl_dtls.h. */
#include "cdl_dtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_sec.h"
#include "cdl_util.h"

/* Plaintext held by the relay in each direction. */
#define RELAY_BUF 65536

static SSL_CTX *server_ctx, *client_ctx;
static int dtls_init_locked(void);
static bool client_on;

static int client_wrap(int fd, const char *host, int timeout_ms)
{
	return cdl_dtls_wrap(fd, false, host, timeout_ms);
}

bool cdl_dtls_ready(void)
{
	return __atomic_load_n(&client_ctx, __ATOMIC_ACQUIRE) != NULL;
}

void cdl_dtls_set_client(bool on)
{
	__atomic_store_n(&client_on, on, __ATOMIC_RELAXED);
	cdl_dt_set_wrap(on ? client_wrap : NULL);
}

bool cdl_dtls_client(void)
{
	return __atomic_load_n(&client_on, __ATOMIC_RELAXED);
}

/* Every certificate of a PEM text into store; the number added. */
static int add_pem_certs(X509_STORE *store, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	int n = 0;
	X509 *x;
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		n += X509_STORE_add_cert(store, x) == 1;
		X509_free(x);
	}
	ERR_clear_error(); /* the read that ends the loop leaves an error */
	BIO_free(b);
	return n;
}

/* Our certificate and key from their PEM text into ctx. */
static int use_identity(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
	int rc = -EINVAL;
	BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	if (cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 &&
	    SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1)
		rc = 0;
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

int cdl_dtls_init(void)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&once);
	int rc = dtls_init_locked();
	pthread_mutex_unlock(&once);
	return rc;
}

/* cdl_dtls_init under its mutex (the mount's threads may race to it). */
static int dtls_init_locked(void)
{
	if (cdl_dtls_ready())
		return 0;
	if (!cdl_sec_enabled() || !cdl_sec_ca_pem() || !cdl_sec_cert_pem() || !cdl_sec_key_pem()) {
		cdl_err("encrypted data transfer needs this process's TLS certificate "
			"(it runs insecure)");
		return -EINVAL;
	}
	SSL_CTX *s = SSL_CTX_new(TLS_server_method()), *c = SSL_CTX_new(TLS_client_method());
	if (!s || !c)
		goto fail;
	SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	/* one connection carries one operation: tickets would never be used */
	SSL_CTX_set_num_tickets(s, 0);
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	if (use_identity(s, cdl_sec_cert_pem(), cdl_sec_key_pem()) < 0) {
		cdl_err("cannot use this process's certificate for the data port");
		goto fail;
	}
	if (add_pem_certs(SSL_CTX_get_cert_store(c), cdl_sec_ca_pem()) < 1) {
		cdl_err("cannot load the cluster CA for the data port");
		goto fail;
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	server_ctx = s;
	__atomic_store_n(&client_ctx, c, __ATOMIC_RELEASE); /* published last */
	return 0;
fail:
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	return -EINVAL;
}

/* ---------------------------------------------------------------- relay */

typedef struct relay {
	SSL *ssl;
	int net; /* the TCP socket (non-blocking) */
	int app; /* the relay's end of the socketpair (non-blocking) */
	uint8_t to_app[RELAY_BUF], to_net[RELAY_BUF];
	size_t app_off, app_len; /* plaintext from the peer not yet given to the caller */
	size_t net_off, net_len; /* plaintext from the caller not yet sent */
} relay;

/* Move bytes both ways until either side is done: the peer closed or
 * failed (what it sent is delivered, then the caller sees EOF), or the
 * caller closed its end (what it wrote is sent, then close_notify). Owns
 * r and both sockets. */
static void *relay_main(void *arg)
{
	relay *r = arg;
	bool net_eof = false, app_eof = false;
	for (;;) {
		bool moved = false;
		short net_ev = 0, app_ev = 0;
		if (!net_eof && r->app_len == 0) {
			int n = SSL_read(r->ssl, r->to_app, sizeof(r->to_app));
			if (n > 0) {
				r->app_off = 0;
				r->app_len = (size_t)n;
				moved = true;
			} else {
				int e = SSL_get_error(r->ssl, n);
				if (e == SSL_ERROR_WANT_READ)
					net_ev |= POLLIN;
				else if (e == SSL_ERROR_WANT_WRITE)
					net_ev |= POLLOUT;
				else
					net_eof = moved = true;
			}
		}
		if (r->app_len) {
			ssize_t w = send(r->app, r->to_app + r->app_off, r->app_len, MSG_NOSIGNAL);
			if (w > 0) {
				r->app_off += (size_t)w;
				r->app_len -= (size_t)w;
				moved = true;
			} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				app_ev |= POLLOUT;
			} else {
				break; /* the caller is gone */
			}
		} else if (net_eof) {
			break; /* all delivered: the caller sees EOF when we close */
		}
		if (!app_eof && r->net_len == 0) {
			ssize_t n = recv(r->app, r->to_net, sizeof(r->to_net), 0);
			if (n > 0) {
				r->net_off = 0;
				r->net_len = (size_t)n;
				moved = true;
			} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				app_ev |= POLLIN;
			} else {
				app_eof = moved = true;
			}
		}
		if (r->net_len && !net_eof) {
			int w = SSL_write(r->ssl, r->to_net + r->net_off, (int)r->net_len);
			if (w > 0) {
				r->net_off += (size_t)w;
				r->net_len -= (size_t)w;
				moved = true;
			} else {
				int e = SSL_get_error(r->ssl, w);
				if (e == SSL_ERROR_WANT_WRITE)
					net_ev |= POLLOUT;
				else if (e == SSL_ERROR_WANT_READ)
					net_ev |= POLLIN;
				else
					break; /* the peer is gone */
			}
		} else if (app_eof) {
			(void)SSL_shutdown(r->ssl); /* best effort close_notify */
			break;
		}
		if (moved)
			continue;
		if (!net_ev && !app_ev)
			break; /* nothing to wait for: cannot happen, but never spin */
		/* a socket we wait nothing from is left out, so that its hang-up
		 * does not wake us before its buffered data is wanted */
		struct pollfd p[2] = {{.fd = net_ev ? r->net : -1, .events = net_ev},
				      {.fd = app_ev ? r->app : -1, .events = app_ev}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & POLLERR) && !(p[0].revents & POLLIN))
			net_eof = true;
		if ((p[1].revents & POLLERR) && !(p[1].revents & POLLIN))
			app_eof = true;
	}
	SSL_free(r->ssl);
	close(r->net);
	close(r->app);
	free(r);
	ERR_clear_error();
	return NULL;
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int cdl_dtls_wrap(int fd, bool server, const char *host, int timeout_ms)
{
	int rc = -EPROTO;
	int sp[2] = {-1, -1};
	SSL *ssl = NULL;
	if (!cdl_dtls_ready()) {
		rc = -EINVAL;
		goto close_fd;
	}
	ssl = SSL_new(server ? server_ctx : client_ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		goto free_ssl;
	if (!server) {
		unsigned char ip[16];
		bool is_ip =
		    inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
		if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
			  : SSL_set1_host(ssl, host) != 1)
			goto free_ssl;
		if (!is_ip)
			(void)SSL_set_tlsext_host_name(ssl, host);
	}
	/* the handshake on the blocking socket, within the timeout */
	int fl = fcntl(fd, F_GETFL);
	(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	set_timeouts(fd, timeout_ms);
	if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1) {
		long v = server ? X509_V_OK : SSL_get_verify_result(ssl);
		if (v != X509_V_OK) {
			cdl_warn("data connection to '%s': certificate refused: %s", host,
				 X509_verify_cert_error_string(v));
			rc = -EACCES;
		}
		ERR_clear_error();
		goto free_ssl;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = -errno;
		goto free_ssl;
	}
	(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	(void)fcntl(sp[1], F_SETFL, fcntl(sp[1], F_GETFL) | O_NONBLOCK);
	int sz = RELAY_BUF * 4;
	(void)setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	relay *r = xcalloc(1, sizeof(*r));
	r->ssl = ssl;
	r->net = fd;
	r->app = sp[1];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int e = pthread_create(&t, &attr, relay_main, r);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		free(r);
		close(sp[1]);
		close(sp[0]);
		rc = -e;
		goto free_ssl;
	}
	return sp[0];
free_ssl:
	SSL_free(ssl);
close_fd:
	close(fd);
	return rc;
}
