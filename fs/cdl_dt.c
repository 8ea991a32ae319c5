/* cdl_dt: the TCP data-transfer protocol, client side and framing helpers
 * shared with the datanode. See cdl_dt.h for the wire format. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cdl_dt.h"
#include "cdl_log.h"
#include "cdl_util.h"

/* Packets a writer keeps in flight before it waits for an ack (4 MiB). */
#define DT_WINDOW 64
/* Socket buffer size asked for on data connections. */
#define DT_SOCKBUF (4 * 1024 * 1024)

/* A timed-out blocking socket call reports EAGAIN; callers see ETIMEDOUT. */
static int dt_errno(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK)
		return -ETIMEDOUT;
	return -e;
}

int cdl_dt_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		} else if (r == 0) {
			return -ECONNRESET;
		} else if (errno != EINTR) {
			return dt_errno(errno);
		}
	}
	return 0;
}

/* Send (or receive) all of iov: a short transfer moves on past the bytes
 * done. 0 or -errno; -ECONNRESET when the peer closed first. */
static int dt_iov_full(int fd, struct iovec *iov, int cnt, bool in)
{
	while (cnt > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
		ssize_t r = in ? recvmsg(fd, &mh, 0) : sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (r == 0 && in)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return dt_errno(errno);
		}
		size_t done = (size_t)r;
		while (cnt > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

int cdl_dt_readv_full(int fd, struct iovec *iov, int cnt)
{
	return dt_iov_full(fd, iov, cnt, true);
}

int cdl_dt_writev_full(int fd, struct iovec *iov, int cnt)
{
	return dt_iov_full(fd, iov, cnt, false);
}

static int dt_write_full(int fd, const void *buf, size_t n)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	return cdl_dt_writev_full(fd, &iov, 1);
}

int cdl_dt_tune(int fd, int io_timeout_ms)
{
	int one = 1, sz = DT_SOCKBUF;
	struct timeval tv = {.tv_sec = io_timeout_ms / 1000,
			     .tv_usec = (io_timeout_ms % 1000) * 1000};
	/* a TLS connection's caller holds a socketpair (cdl_dtls.h): no TCP options */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOPROTOOPT)
		return -errno;
	/* Best effort: the kernel caps these at wmem_max/rmem_max. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (io_timeout_ms > 0) {
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			return -errno;
	}
	return 0;
}

/* Applied to every connection made (cdl_dt_set_wrap); NULL: plain TCP. */
static cdl_dt_wrap_fn dt_wrap;

void cdl_dt_set_wrap(cdl_dt_wrap_fn fn)
{
	__atomic_store_n(&dt_wrap, fn, __ATOMIC_RELEASE);
}

/* Connect one resolved address without blocking longer than timeout_ms. */
static int dt_connect_addr(const struct addrinfo *ai, int timeout_ms)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int sz = DT_SOCKBUF;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			close(fd);
			return e;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int r;
		do
			r = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			int e = r < 0 ? -errno : (soerr ? -soerr : -errno);
			close(fd);
			return e;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int cdl_dt_connect(const char *host, int port, int timeout_ms, int io_timeout_ms)
{
	if (!host || !*host || port <= 0 || port > 65535)
		return -EINVAL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g != 0)
		return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	int fd = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = dt_connect_addr(ai, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fd;
	int rc = cdl_dt_tune(fd, io_timeout_ms);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	cdl_dt_wrap_fn wrap = __atomic_load_n(&dt_wrap, __ATOMIC_ACQUIRE);
	if (wrap) {
		/* encrypt_data: the caller talks to the TLS relay instead */
		fd = wrap(fd, host, timeout_ms);
		if (fd < 0)
			return fd;
		if ((rc = cdl_dt_tune(fd, io_timeout_ms)) < 0) {
			close(fd);
			return rc;
		}
	}
	return fd;
}

int cdl_dt_listen(const char *host, int port, int *bound_port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int g = getaddrinfo(host && *host ? host : NULL, ps, &hints, &res);
	if (g != 0)
		return g == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	int fd = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		int one = 1, sz = DT_SOCKBUF;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Inherited by accepted sockets, so set before listen. */
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		int e = -errno;
		close(fd);
		fd = e;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fd;
	if (bound_port) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		*bound_port = ss.ss_family == AF_INET6
				  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
				  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
}

/* Send a 4-byte length and a packed message, after an optional magic. */
static int dt_send_msg(int fd, const char *magic, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	if (n > CDL_DT_MAX_HEADER)
		return -EMSGSIZE;
	uint8_t *buf = xmalloc(8 + n + 1);
	size_t off = 0;
	if (magic) {
		memcpy(buf, magic, 4);
		off = 4;
	}
	cdl_put_be32(buf + off, (uint32_t)n);
	off += 4;
	protobuf_c_message_pack(m, buf + off);
	int rc = dt_write_full(fd, buf, off + n);
	free(buf);
	return rc;
}

/* Read a bounded length (min..CDL_DT_MAX_HEADER) and the bytes after it.
 * *buf is the caller's. */
static int dt_recv_body(int fd, uint32_t min, uint8_t **buf, size_t *len)
{
	uint8_t lb[4];
	int rc = cdl_dt_read_full(fd, lb, 4);
	if (rc < 0)
		return rc;
	uint32_t n = cdl_get_be32(lb);
	if (n < min || n > CDL_DT_MAX_HEADER)
		return -EPROTO;
	*buf = xmalloc(n + 1);
	rc = cdl_dt_read_full(fd, *buf, n);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
		return rc;
	}
	*len = n;
	return 0;
}

int cdl_dt_send_header(int fd, const Caudal__DtHeader *h)
{
	if (h->n_targets > CDL_DT_MAX_TARGETS)
		return -E2BIG;
	return dt_send_msg(fd, CDL_DT_MAGIC, &h->base);
}

int cdl_dt_recv_header(int fd, Caudal__DtHeader **h)
{
	uint8_t magic[4];
	int rc = cdl_dt_read_full(fd, magic, 4);
	if (rc < 0)
		return rc;
	if (memcmp(magic, CDL_DT_MAGIC, 4) != 0)
		return -EPROTO;
	uint8_t *buf;
	size_t n;
	rc = dt_recv_body(fd, 1, &buf, &n);
	if (rc < 0)
		return rc;
	Caudal__DtHeader *m = caudal__dt_header__unpack(NULL, n, buf);
	free(buf);
	if (!m)
		return -EPROTO;
	if (m->n_targets > CDL_DT_MAX_TARGETS) {
		protobuf_c_message_free_unpacked(&m->base, NULL);
		return -EPROTO;
	}
	*h = m;
	return 0;
}

int cdl_dt_send_reply(int fd, const Caudal__DtReply *r)
{
	return dt_send_msg(fd, NULL, &r->base);
}

int cdl_dt_recv_reply(int fd, Caudal__DtReply **r)
{
	uint8_t *buf;
	size_t n;
	/* an all-default reply (err 0, length 0) packs to nothing */
	int rc = dt_recv_body(fd, 0, &buf, &n);
	if (rc < 0)
		return rc;
	Caudal__DtReply *m = caudal__dt_reply__unpack(NULL, n, buf);
	free(buf);
	if (!m)
		return -EPROTO;
	*r = m;
	return 0;
}

void cdl_dt_frame_encode(uint8_t out[CDL_DT_FRAME], const cdl_dt_frame *f)
{
	cdl_put_be32(out, f->len);
	cdl_put_be32(out + 4, f->flags);
	cdl_put_be64(out + 8, f->seq);
	cdl_put_be64(out + 16, f->sum);
}

int cdl_dt_frame_decode(const uint8_t in[CDL_DT_FRAME], cdl_dt_frame *f)
{
	f->len = cdl_get_be32(in);
	f->flags = cdl_get_be32(in + 4);
	f->seq = cdl_get_be64(in + 8);
	f->sum = cdl_get_be64(in + 16);
	if (f->len > CDL_CHUNK || (f->flags & ~(CDL_DT_LAST | CDL_DT_SYNC)))
		return -EPROTO;
	return 0;
}

int cdl_dt_send_frame(int fd, const cdl_dt_frame *f, const void *payload)
{
	if (f->len > CDL_CHUNK)
		return -EINVAL;
	uint8_t hdr[CDL_DT_FRAME];
	cdl_dt_frame_encode(hdr, f);
	struct iovec iov[2] = {{.iov_base = hdr, .iov_len = CDL_DT_FRAME},
			       {.iov_base = (void *)payload, .iov_len = f->len}};
	return cdl_dt_writev_full(fd, iov, f->len ? 2 : 1);
}

int cdl_dt_recv_frame(int fd, cdl_dt_frame *f)
{
	uint8_t hdr[CDL_DT_FRAME];
	int rc = cdl_dt_read_full(fd, hdr, CDL_DT_FRAME);
	if (rc < 0)
		return rc;
	return cdl_dt_frame_decode(hdr, f);
}

int cdl_dt_recv_payload(int fd, const cdl_dt_frame *f, void *buf)
{
	if (f->len > CDL_CHUNK)
		return -EPROTO;
	int rc = cdl_dt_read_full(fd, buf, f->len);
	if (rc < 0)
		return rc;
	return cdl_xxh3(buf, f->len) == f->sum ? 0 : -EBADMSG;
}

int cdl_dt_send_ack(int fd, const cdl_dt_ack *a)
{
	uint8_t b[CDL_DT_ACK];
	cdl_put_be64(b, a->seq);
	cdl_put_be32(b + 8, a->err);
	cdl_put_be32(b + 12, a->bad);
	return dt_write_full(fd, b, sizeof(b));
}

int cdl_dt_recv_ack(int fd, cdl_dt_ack *a)
{
	uint8_t b[CDL_DT_ACK];
	int rc = cdl_dt_read_full(fd, b, sizeof(b));
	if (rc < 0)
		return rc;
	a->seq = cdl_get_be64(b);
	a->err = cdl_get_be32(b + 8);
	a->bad = cdl_get_be32(b + 12);
	if (a->bad > CDL_DT_MAX_TARGETS + 1)
		return -EPROTO;
	return 0;
}

/* ---------------------------------------------------------------- reader */

struct cdl_block_reader {
	int fd;
	uint64_t pos;	 /* next byte the caller gets */
	uint64_t end;	 /* end of the range (exclusive) */
	uint64_t replen; /* replica length the server announced */
	uint64_t next;	 /* block offset of the next frame expected */
	uint8_t *buf;	 /* current chunk */
	uint64_t bstart; /* block offset of buf[0] */
	size_t blen;	 /* bytes in buf */
	int err;	 /* sticky error */
};

int cdl_block_reader_open(const char *host, int port, uint64_t block, uint64_t gen, uint64_t offset,
			  uint64_t length, const ProtobufCBinaryData *token, int timeout_ms,
			  cdl_block_reader **out)
{
	int fd = cdl_dt_connect(host, port, timeout_ms, timeout_ms);
	if (fd < 0)
		return fd;
	Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
	h.op = CAUDAL__DT_OP__DT_READ;
	h.block = block;
	h.gen = gen;
	h.offset = offset;
	h.length = length;
	if (token)
		h.token = *token;
	int rc = cdl_dt_send_header(fd, &h);
	Caudal__DtReply *rep = NULL;
	if (rc == 0)
		rc = cdl_dt_recv_reply(fd, &rep);
	if (rc == 0 && !rep)
		rc = -EPROTO;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	if (rep->err) {
		rc = rep->err > 4095 ? -EIO : -(int)rep->err;
		cdl_debug("read of block %llu from '%s:%d' refused: %s", (unsigned long long)block,
			  host, port, rep->message && *rep->message ? rep->message : strerror(-rc));
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		close(fd);
		return rc;
	}
	cdl_block_reader *r = xcalloc(1, sizeof(*r));
	r->fd = fd;
	r->replen = rep->length;
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	r->pos = offset;
	if (offset >= r->replen)
		r->end = offset;
	else if (length == 0 || length > r->replen - offset)
		r->end = r->replen;
	else
		r->end = offset + length;
	r->next = offset / CDL_CHUNK * CDL_CHUNK;
	r->bstart = r->next;
	r->buf = xmalloc(CDL_CHUNK);
	*out = r;
	return 0;
}

/* Receive the next frame's header and check it is the chunk we expect. */
static int reader_next_frame(cdl_block_reader *r, cdl_dt_frame *f)
{
	int rc = cdl_dt_recv_frame(r->fd, f);
	if (rc < 0)
		return rc;
	if (f->seq != r->next || f->len == 0)
		return -EPROTO;
	/* Every chunk is whole except the replica's last one. */
	if (f->len != CDL_CHUNK && f->seq + f->len != r->replen)
		return -EPROTO;
	if (f->seq + f->len > r->replen)
		return -EPROTO;
	return 0;
}

/* Frames received with one readv when the caller wants several whole
 * chunks (4 MiB). */
#define READ_RUN 64

/* The length of the frame at block offset at (< replen): whole but the last. */
static size_t frame_len(const cdl_block_reader *r, uint64_t at)
{
	return r->replen - at < CDL_CHUNK ? (size_t)(r->replen - at) : CDL_CHUNK;
}

/* Several whole chunks the caller wants go straight to its buffer with one
 * readv. The server sends every chunk but the replica's last whole, so
 * where each frame falls is known before it arrives: only the sums are
 * new, and every header is still checked. Returns bytes read, 0 when this
 * does not apply (fewer than two such chunks), or -errno. */
static ssize_t reader_run(cdl_block_reader *r, void *buf, size_t n)
{
	if (r->pos != r->next)
		return 0;
	uint8_t hdr[READ_RUN][CDL_DT_FRAME] = {{0}};
	struct iovec iov[2 * READ_RUN];
	int k = 0;
	uint64_t at = r->next;
	size_t got = 0;
	while (k < READ_RUN && at < r->replen) {
		size_t len = frame_len(r, at);
		if (at + len > r->end || got + len > n)
			break;
		iov[2 * k] = (struct iovec){hdr[k], CDL_DT_FRAME};
		iov[2 * k + 1] = (struct iovec){(uint8_t *)buf + got, len};
		got += len;
		at += len;
		k++;
	}
	if (k < 2)
		return 0;
	int rc = cdl_dt_readv_full(r->fd, iov, 2 * k);
	if (rc < 0)
		return r->err = rc;
	at = r->next;
	got = 0;
	for (int i = 0; i < k; i++) {
		cdl_dt_frame f;
		size_t len = frame_len(r, at);
		if (cdl_dt_frame_decode(hdr[i], &f) < 0 || f.seq != at || f.len != len)
			return r->err = -EPROTO;
		if (cdl_xxh3((uint8_t *)buf + got, len) != f.sum)
			return r->err = -EBADMSG;
		got += len;
		at += len;
	}
	r->next = at;
	r->pos = at;
	r->blen = 0;
	return (ssize_t)got;
}

ssize_t cdl_block_reader_read(cdl_block_reader *r, void *buf, size_t n)
{
	if (r->err)
		return r->err;
	if (r->pos >= r->end || n == 0)
		return 0;
	/* Data left over from the current chunk. */
	if (r->pos >= r->bstart && r->pos < r->bstart + r->blen) {
		size_t off = (size_t)(r->pos - r->bstart);
		size_t k = r->blen - off;
		if (k > n)
			k = n;
		if (k > r->end - r->pos)
			k = (size_t)(r->end - r->pos);
		memcpy(buf, r->buf + off, k);
		r->pos += k;
		return (ssize_t)k;
	}
	ssize_t run = reader_run(r, buf, n);
	if (run != 0)
		return run;
	cdl_dt_frame f;
	int rc = reader_next_frame(r, &f);
	if (rc < 0)
		return r->err = rc;
	/* A whole chunk the caller wants entirely goes straight to its buffer. */
	if (f.seq == r->pos && f.seq + f.len <= r->end && n >= f.len) {
		rc = cdl_dt_recv_payload(r->fd, &f, buf);
		if (rc < 0)
			return r->err = rc;
		r->next += f.len;
		r->pos += f.len;
		r->blen = 0;
		return (ssize_t)f.len;
	}
	rc = cdl_dt_recv_payload(r->fd, &f, r->buf);
	if (rc < 0)
		return r->err = rc;
	r->next += f.len;
	r->bstart = f.seq;
	r->blen = f.len;
	if (r->pos < r->bstart || r->pos >= r->bstart + r->blen)
		return r->err = -EPROTO;
	return cdl_block_reader_read(r, buf, n);
}

uint64_t cdl_block_reader_pos(const cdl_block_reader *r)
{
	return r->pos;
}

uint64_t cdl_block_reader_length(const cdl_block_reader *r)
{
	return r->replen;
}

void cdl_block_reader_close(cdl_block_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	free(r->buf);
	free(r);
}

/* ---------------------------------------------------------------- writer */

/* Slots of the packet ring: DT_WINDOW unacknowledged packets plus the one
 * being filled. */
#define DT_SLOTS (DT_WINDOW + 1)

/* A packet kept until it is acknowledged, to be resent by a recovery. */
typedef struct wpkt {
	uint8_t *data; /* CDL_CHUNK bytes, allocated on first use */
	uint32_t len, flags;
	uint64_t sum;
} wpkt;

struct cdl_block_writer {
	int fd;
	uint64_t block, gen;
	char *client;
	int timeout_ms;
	/* Packets [acked, next_seq) are sent and kept; the one being filled
	 * is ring[next_seq % DT_SLOTS]. Sequence numbers count from the
	 * block's first packet; on the wire they count from `base`, the first
	 * packet sent on the current connection. */
	wpkt ring[DT_SLOTS];
	size_t blen;	      /* bytes in the packet being filled */
	uint64_t bytes;	      /* accepted from the caller */
	uint64_t sent;	      /* bytes in sent packets */
	uint64_t next_seq;    /* sequence number of the next packet */
	uint64_t acked;	      /* packets [0, acked) are acknowledged */
	uint64_t acked_bytes; /* bytes in them: what every node holds */
	uint64_t base;	      /* wire sequence 0 of the current connection */
	bool last_sent;	      /* the CDL_DT_LAST packet is in the ring */
	int err;	      /* sticky error, cleared by a recovery */
	int bad;	      /* 1-based failed target, 0 unknown */
};

/* Connect to targets[0] and send a DT_WRITE header (a recovery one when
 * recover is set). Returns the socket, or -errno with *bad set to the
 * 1-based position of the node that failed. */
static int writer_connect(const Caudal__DtTarget *const *targets, size_t ntargets, uint64_t block,
			  uint64_t gen, const ProtobufCBinaryData *token, const char *client,
			  int timeout_ms, bool recover, uint64_t recover_gen,
			  uint64_t recover_offset, int *bad)
{
	*bad = 0;
	if (ntargets < 1 || ntargets > CDL_DT_MAX_TARGETS + 1)
		return -EINVAL;
	int fd = cdl_dt_connect(targets[0]->host, (int)targets[0]->port, timeout_ms, timeout_ms);
	if (fd < 0) {
		*bad = 1;
		return fd;
	}
	Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
	h.op = CAUDAL__DT_OP__DT_WRITE;
	h.block = block;
	h.gen = gen;
	h.client = (char *)(client ? client : "");
	h.n_targets = ntargets - 1;
	h.targets = (Caudal__DtTarget **)(targets + 1);
	h.recover = recover;
	h.recover_gen = recover_gen;
	h.recover_offset = recover_offset;
	if (token)
		h.token = *token;
	int rc = cdl_dt_send_header(fd, &h);
	Caudal__DtReply *rep = NULL;
	if (rc == 0)
		rc = cdl_dt_recv_reply(fd, &rep);
	if (rc == 0 && !rep)
		rc = -EPROTO;
	if (rc != 0) {
		close(fd);
		*bad = 1;
		return rc;
	}
	if (rep->err) {
		rc = rep->err > 4095 ? -EIO : -(int)rep->err;
		cdl_debug("%s of block %llu refused by '%s:%u': %s", recover ? "recovery" : "write",
			  (unsigned long long)block, targets[0]->host, targets[0]->port,
			  rep->message && *rep->message ? rep->message : strerror(-rc));
		*bad = rep->bad_target && rep->bad_target <= ntargets - 1 ? (int)rep->bad_target + 1
									  : 1;
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		close(fd);
		return rc;
	}
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return fd;
}

int cdl_block_writer_open_ex(const Caudal__DtTarget *const *targets, size_t ntargets,
			     uint64_t block, uint64_t gen, const ProtobufCBinaryData *token,
			     const char *client, int timeout_ms, cdl_block_writer **out, int *bad)
{
	int fd = writer_connect(targets, ntargets, block, gen, token, client, timeout_ms, false, 0,
				0, bad);
	if (fd < 0)
		return fd;
	cdl_block_writer *w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->block = block;
	w->gen = gen;
	w->client = xstrdup(client ? client : "");
	w->timeout_ms = timeout_ms;
	*out = w;
	return 0;
}

int cdl_block_writer_open(const Caudal__DtTarget *const *targets, size_t ntargets, uint64_t block,
			  uint64_t gen, const ProtobufCBinaryData *token, const char *client,
			  int timeout_ms, cdl_block_writer **out)
{
	int bad;
	return cdl_block_writer_open_ex(targets, ntargets, block, gen, token, client, timeout_ms,
					out, &bad);
}

static wpkt *slot_of(cdl_block_writer *w, uint64_t seq)
{
	wpkt *p = &w->ring[seq % DT_SLOTS];
	if (!p->data)
		p->data = xmalloc(CDL_CHUNK);
	return p;
}

/* Count packet `acked` as acknowledged. */
static void writer_acked(cdl_block_writer *w)
{
	w->acked_bytes += w->ring[w->acked % DT_SLOTS].len;
	w->acked++;
}

/* Read one ack and check it is the next one in order. Sets the sticky
 * error and the failed target on a failure ack. */
static int writer_recv_ack(cdl_block_writer *w)
{
	cdl_dt_ack a;
	int rc = cdl_dt_recv_ack(w->fd, &a);
	if (rc < 0) {
		if (!w->bad)
			w->bad = 1;
		return w->err = rc;
	}
	if (a.err) {
		w->bad = a.bad ? (int)a.bad : 1;
		return w->err = a.err > 4095 ? -EIO : -(int)a.err;
	}
	if (a.seq != w->acked - w->base) {
		w->bad = 1;
		return w->err = -EPROTO;
	}
	writer_acked(w);
	return 0;
}

/* After a failed send, an error ack may already be waiting and say which
 * node failed (and good acks before it still count); read what is there
 * without waiting long. */
static void writer_salvage_ack(cdl_block_writer *w)
{
	struct pollfd p = {.fd = w->fd, .events = POLLIN};
	while (w->acked < w->next_seq && poll(&p, 1, 200) == 1) {
		cdl_dt_ack a;
		if (cdl_dt_recv_ack(w->fd, &a) < 0)
			break;
		if (a.err) {
			w->bad = a.bad ? (int)a.bad : 1;
			return;
		}
		if (a.seq != w->acked - w->base)
			break;
		writer_acked(w);
	}
	if (!w->bad)
		w->bad = 1;
}

/* Send packet seq (kept in the ring) on the current connection. */
static int writer_send_slot(cdl_block_writer *w, uint64_t seq)
{
	const wpkt *p = &w->ring[seq % DT_SLOTS];
	cdl_dt_frame f = {.len = p->len, .flags = p->flags, .seq = seq - w->base, .sum = p->sum};
	int rc = cdl_dt_send_frame(w->fd, &f, p->data);
	if (rc < 0) {
		w->err = rc;
		writer_salvage_ack(w);
	}
	return rc;
}

/* Turn the buffered bytes into a packet with flags, keeping at most
 * DT_WINDOW packets unacknowledged, and send it. Once a packet is in the
 * ring it counts as sent: a failed send leaves it for a recovery. */
static int writer_send_packet(cdl_block_writer *w, uint32_t flags)
{
	if (w->err)
		return w->err;
	while (w->next_seq - w->acked >= DT_WINDOW) {
		int rc = writer_recv_ack(w);
		if (rc < 0)
			return rc;
	}
	wpkt *p = slot_of(w, w->next_seq);
	p->len = (uint32_t)w->blen;
	p->flags = flags;
	p->sum = cdl_xxh3(p->data, w->blen);
	uint64_t seq = w->next_seq++;
	w->sent += w->blen;
	w->blen = 0;
	if (flags & CDL_DT_LAST)
		w->last_sent = true;
	return writer_send_slot(w, seq);
}

static int writer_wait_all(cdl_block_writer *w)
{
	while (!w->err && w->acked < w->next_seq)
		writer_recv_ack(w);
	return w->err;
}

int cdl_block_writer_write(cdl_block_writer *w, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	if (w->err)
		return w->err;
	if (w->last_sent)
		return -EINVAL;
	while (n > 0 || w->blen == CDL_CHUNK - (size_t)(w->sent % CDL_CHUNK)) {
		/* Packets end on chunk boundaries, even after a short hsync packet. */
		size_t cap = CDL_CHUNK - (size_t)(w->sent % CDL_CHUNK);
		size_t k = cap - w->blen;
		if (k > n)
			k = n;
		memcpy(slot_of(w, w->next_seq)->data + w->blen, p, k);
		w->blen += k;
		w->bytes += k;
		p += k;
		n -= k;
		if (w->blen == cap) {
			int rc = writer_send_packet(w, 0);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int cdl_block_writer_sync(cdl_block_writer *w)
{
	if (w->last_sent)
		return writer_wait_all(w);
	int rc = writer_send_packet(w, CDL_DT_SYNC);
	if (rc < 0)
		return rc;
	return writer_wait_all(w);
}

int cdl_block_writer_finish(cdl_block_writer *w, bool sync, uint64_t *length)
{
	int rc = w->err;
	if (rc == 0 && !w->last_sent)
		rc = writer_send_packet(w, CDL_DT_LAST | (sync ? CDL_DT_SYNC : 0));
	if (rc == 0)
		rc = writer_wait_all(w);
	if (length)
		*length = w->bytes;
	return rc;
}

int cdl_block_writer_recover(cdl_block_writer *w, const Caudal__DtTarget *const *targets,
			     size_t ntargets, uint64_t gen, const ProtobufCBinaryData *token,
			     int *bad)
{
	return cdl_block_writer_recover_from(w, targets, ntargets, w->gen, gen, token, bad);
}

int cdl_block_writer_recover_from(cdl_block_writer *w, const Caudal__DtTarget *const *targets,
				  size_t ntargets, uint64_t from_gen, uint64_t gen,
				  const ProtobufCBinaryData *token, int *bad)
{
	*bad = 0;
	if (gen <= w->gen || from_gen > w->gen)
		return -EINVAL;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	w->bad = 0;
	int fd = writer_connect(targets, ntargets, w->block, gen, token, w->client, w->timeout_ms,
				true, from_gen, w->acked_bytes, bad);
	if (fd < 0) {
		w->bad = *bad;
		return w->err = fd;
	}
	cdl_debug("block %llu: resumed at %llu bytes under generation %llu, resending %llu "
		  "packet(s)",
		  (unsigned long long)w->block, (unsigned long long)w->acked_bytes,
		  (unsigned long long)gen, (unsigned long long)(w->next_seq - w->acked));
	w->fd = fd;
	w->gen = gen;
	w->base = w->acked;
	w->err = 0;
	for (uint64_t seq = w->acked; seq < w->next_seq; seq++) {
		int rc = writer_send_slot(w, seq);
		if (rc < 0) {
			*bad = w->bad;
			return rc;
		}
	}
	return 0;
}

int cdl_block_writer_close(cdl_block_writer *w, bool sync, uint64_t *length)
{
	return cdl_block_writer_close_ex(w, sync, length, NULL);
}

int cdl_block_writer_close_ex(cdl_block_writer *w, bool sync, uint64_t *length, int *bad)
{
	int rc = cdl_block_writer_finish(w, sync, length);
	if (bad)
		*bad = rc < 0 ? w->bad : 0;
	cdl_block_writer_abort(w);
	return rc;
}

void cdl_block_writer_abort(cdl_block_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < DT_SLOTS; i++)
		free(w->ring[i].data);
	free(w->client);
	free(w);
}

uint64_t cdl_block_writer_bytes(const cdl_block_writer *w)
{
	return w->bytes;
}

uint64_t cdl_block_writer_acked(const cdl_block_writer *w)
{
	return w->acked_bytes;
}

uint64_t cdl_block_writer_gen(const cdl_block_writer *w)
{
	return w->gen;
}

int cdl_block_writer_bad_target(const cdl_block_writer *w)
{
	return w->bad;
}

/* ---------------------------------------------------------------- transfer */

int cdl_block_transfer(const char *host, int port, uint64_t block, uint64_t gen, uint64_t length,
		       const Caudal__DtTarget *const *targets, size_t ntargets,
		       const ProtobufCBinaryData *token, const char *client, int timeout_ms)
{
	if (ntargets < 1 || ntargets > CDL_DT_MAX_TARGETS)
		return -EINVAL;
	/* the survivor answers once the copy is stored: allow for 10 MB/s */
	int64_t wait = (int64_t)timeout_ms + (int64_t)(length >> 20) * 100;
	int io_ms = wait > 600000 ? 600000 : (int)wait;
	int fd = cdl_dt_connect(host, port, timeout_ms, io_ms);
	if (fd < 0)
		return fd;
	Caudal__DtHeader h = CAUDAL__DT_HEADER__INIT;
	h.op = CAUDAL__DT_OP__DT_TRANSFER;
	h.block = block;
	h.gen = gen;
	h.length = length;
	h.client = (char *)(client ? client : "");
	h.n_targets = ntargets;
	h.targets = (Caudal__DtTarget **)targets;
	if (token)
		h.token = *token;
	Caudal__DtReply *rep = NULL;
	int rc = cdl_dt_send_header(fd, &h);
	if (rc == 0)
		rc = cdl_dt_recv_reply(fd, &rep);
	if (rc == 0 && !rep)
		rc = -EPROTO;
	if (rc == 0 && rep->err) {
		rc = rep->err > 4095 ? -EIO : -(int)rep->err;
		cdl_debug("transfer of block %llu refused by '%s:%d': %s",
			  (unsigned long long)block, host, port,
			  rep->message && *rep->message ? rep->message : strerror(-rc));
	}
	if (rep)
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	close(fd);
	return rc;
}
