/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * The connection: read the ClientHello, choose the route, connect to a
 * backend, hand it the hello bytes as received, then relay both ways.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "parse_hello.h"
#include "snimux.h"

#define RELAY_CHUNK	(64 * 1024)
#define HELLO_FIRST	2048
#define ACCEPT_BATCH	64

/* Relay directions, and the index of each in the per-direction arrays. */
#define C2B	0
#define B2C	1

enum conn_state {
	CONN_HELLO,	/* reading the ClientHello */
	CONN_CONNECT,	/* waiting for the backend to accept */
	CONN_RELAY,	/* moving bytes both ways */
	CONN_LINGER	/* alert sent; waiting for the client to go */
};

enum conn_queue {
	Q_NONE,
	Q_HELLO,
	Q_CONNECT,
	Q_IDLE
};

/* Bytes read from one side and not yet written to the other. */
struct buf {
	size_t		off;
	size_t		len;
	size_t		size;
	uint8_t		data[];
};

struct conn {
	TAILQ_ENTRY(conn)	 timer;		/* in one timer queue */
	TAILQ_ENTRY(conn)	 all;
	struct config		*cf;
	struct route		*route;
	struct buf		*pend[2];
	char			*sni;		/* validated name, or NULL */
	struct hello_scan	 scan;
	uint64_t		 id;
	uint64_t		 start_ms;
	uint64_t		 deadline_ms;
	uint64_t		 active_ms;	/* last byte moved */
	uint64_t		 bytes[2];
	struct sockaddr_in6	 peer;		/* room for either family */
	const char		*err_op;
	int			 err;
	int			 cfd;
	int			 bfd;
	unsigned		 backend;	/* index being tried */
	uint8_t			 state;
	uint8_t			 queue;
	uint8_t			 eof[2];	/* source sent everything */
	uint8_t			 refused;
};

TAILQ_HEAD(conn_list, conn);

static struct loop	*conn_loop;
static struct conn_list	 conn_all = TAILQ_HEAD_INITIALIZER(conn_all);
static struct conn_list	 conn_q[4] = {
	TAILQ_HEAD_INITIALIZER(conn_q[0]),
	TAILQ_HEAD_INITIALIZER(conn_q[1]),
	TAILQ_HEAD_INITIALIZER(conn_q[2]),
	TAILQ_HEAD_INITIALIZER(conn_q[3])
};
static uint64_t		 conn_now;
static uint64_t		 conn_nextid;
static uint64_t		 conn_count;
static uint8_t		 relay_chunk[RELAY_CHUNK];
static uint8_t		*hello_scratch;
static size_t		 hello_scratch_size;

uint64_t hello_failures[FAIL_NREASONS];
const char *const hello_fail_names[FAIL_NREASONS] = {
	"timeout", "invalid", "not_tls", "too_large", "refused", "aborted"
};

static void	conn_event(int, int, void *);
static void	conn_close(struct conn *, const char *);
static void	conn_connect_next(struct conn *);
static int	relay_flush(struct conn *, int);
static void	relay_done(struct conn *, int);

/* Set the loop that every connection uses. */
void
conn_init(struct loop *l)
{
	conn_loop = l;
	conn_now = now_ms();
}

/* Number of open client connections. */
uint64_t
conn_active(void)
{
	return conn_count;
}

static void
timer_set(struct conn *c, enum conn_queue q, uint64_t ms)
{
	if (c->queue != Q_NONE)
		TAILQ_REMOVE(&conn_q[c->queue], c, timer);
	c->queue = q;
	c->deadline_ms = conn_now + ms;
	if (q != Q_NONE)
		TAILQ_INSERT_TAIL(&conn_q[q], c, timer);
}

static void
conn_watch(struct conn *c)
{
	int cm = 0, bm = 0;

	switch (c->state) {
	case CONN_HELLO:
	case CONN_LINGER:
		cm = LOOP_READ;
		break;
	case CONN_CONNECT:
		bm = LOOP_WRITE;
		break;
	case CONN_RELAY:
		if (!c->eof[C2B] && c->pend[C2B] == NULL)
			cm |= LOOP_READ;
		if (c->pend[B2C] != NULL)
			cm |= LOOP_WRITE;
		if (!c->eof[B2C] && c->pend[B2C] == NULL)
			bm |= LOOP_READ;
		if (c->pend[C2B] != NULL)
			bm |= LOOP_WRITE;
		break;
	}
	if (loop_watch(conn_loop, c->cfd, cm, conn_event, c) == -1 ||
	    (c->bfd != -1 &&
	    loop_watch(conn_loop, c->bfd, bm, conn_event, c) == -1)) {
		c->err = errno;
		c->err_op = "watch";
		conn_close(c, "error");
	}
}

static void
conn_fail(struct conn *c, enum hello_fail why)
{
	hello_failures[why]++;
	conn_close(c, hello_fail_names[why]);
}

/*
 * The one place that ends a connection: closes both sides, logs the
 * access line with how it ended (<end>) and updates the counters.
 */
static void
conn_close(struct conn *c, const char *end)
{
	char client[64], errtext[160] = "";
	const char *backend = "-";

	if (c->route != NULL && !c->refused) {
		c->route->stats->active--;
		if (c->backend < c->route->nbackends)
			backend = c->route->backends[c->backend].text;
	}
	addr_format((struct sockaddr *)&c->peer, client, sizeof(client));
	if (c->err_op != NULL)
		snprintf(errtext, sizeof(errtext), " err=\"%s: %s\"",
		    c->err_op, strerror(c->err));
	log_info("conn=%llu client=%s sni=%s route=%s backend=%s c2b=%llu "
	    "b2c=%llu ms=%llu end=%s%s", (unsigned long long)c->id, client,
	    c->sni ? c->sni : "-", c->route ? c->route->pattern : "-",
	    backend, (unsigned long long)c->bytes[C2B],
	    (unsigned long long)c->bytes[B2C],
	    (unsigned long long)(conn_now - c->start_ms), end, errtext);

	loop_unwatch(conn_loop, c->cfd);
	close(c->cfd);
	if (c->bfd != -1) {
		loop_unwatch(conn_loop, c->bfd);
		close(c->bfd);
	}
	timer_set(c, Q_NONE, 0);
	TAILQ_REMOVE(&conn_all, c, all);
	free(c->pend[C2B]);
	free(c->pend[B2C]);
	free(c->sni);
	config_unref(c->cf);
	free(c);
	conn_count--;
}

/* Send a fatal TLS alert, then wait for the client to hang up. */
static void
conn_refuse(struct conn *c, unsigned version, uint8_t desc)
{
	uint8_t alert[7] = { 21, 3, 1, 0, 2, 2, 0 };

	if (version >= 0x0300 && version <= 0x0304)
		alert[2] = version & 0xff;
	alert[6] = desc;
	c->refused = 1;
	hello_failures[FAIL_REFUSED]++;
	(void)send(c->cfd, alert, sizeof(alert), MSG_NOSIGNAL);
	shutdown(c->cfd, SHUT_WR);
	c->state = CONN_LINGER;
	free(c->pend[C2B]);
	c->pend[C2B] = NULL;
	conn_watch(c);
}

/* Pick the route for a complete hello and start on its first backend. */
static void
conn_route(struct conn *c, enum hello_result r, const struct hello *h)
{
	struct config *cf = c->cf;
	struct route *rt = NULL;

	if (r == HELLO_SNI) {
		if ((c->sni = strndup((const char *)h->sni, h->sni_len)) ==
		    NULL) {
			c->err = errno;
			c->err_op = "hello";
			conn_close(c, "error");
			return;
		}
		rt = table_lookup(cf->table, c->sni, h->sni_len);
	}
	if (rt == NULL)
		rt = (r == HELLO_SNI) ? &cf->unknown : &cf->nosni;
	c->route = rt;
	rt->stats->total++;
	if (rt->refuse || rt->nbackends == 0) {
		/* RFC 6066 section 3: unrecognized_name (112). */
		conn_refuse(c, h->record_version,
		    r == HELLO_SNI ? 112 : 40);
		return;
	}
	rt->stats->active++;
	c->backend = 0;
	conn_connect_next(c);
}

static struct buf *
buf_grow(struct buf *b, size_t size)
{
	struct buf *nb;

	if ((nb = realloc(b, sizeof(*b) + size)) == NULL)
		return NULL;
	if (b == NULL)
		nb->off = nb->len = 0;
	nb->size = size;
	return nb;
}

static void
conn_hello_read(struct conn *c)
{
	struct buf *b = c->pend[C2B];
	size_t cap = c->cf->hello_max, size;
	struct hello h;
	enum hello_result r;
	ssize_t n;

	if (b == NULL || b->len == b->size) {
		if (b != NULL && b->size >= cap) {
			conn_fail(c, FAIL_TOO_LARGE);
			return;
		}
		size = b == NULL ? HELLO_FIRST : b->size * 2;
		if (size > cap)
			size = cap;
		if ((b = buf_grow(b, size)) == NULL) {
			c->err = errno;
			c->err_op = "hello";
			conn_close(c, "error");
			return;
		}
		c->pend[C2B] = b;
	}
	n = read(c->cfd, b->data + b->len, b->size - b->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		c->err = errno;
		c->err_op = "read";
		conn_fail(c, FAIL_ABORTED);
		return;
	}
	if (n == 0) {
		/* The end of the input inside a hello makes it truncated. */
		conn_fail(c, b->len > 0 ? FAIL_INVALID : FAIL_ABORTED);
		return;
	}
	b->len += (size_t)n;
	if (hello_scratch_size < cap) {
		free(hello_scratch);
		if ((hello_scratch = malloc(cap)) == NULL) {
			hello_scratch_size = 0;
			c->err = errno;
			c->err_op = "hello";
			conn_close(c, "error");
			return;
		}
		hello_scratch_size = cap;
	}
	r = hello_parse(&c->scan, b->data, b->len, hello_scratch,
	    hello_scratch_size, &h);
	switch (r) {
	case HELLO_NEED_MORE:
		if (b->len >= cap)
			conn_fail(c, FAIL_TOO_LARGE);
		return;
	case HELLO_NOT_TLS:
		conn_fail(c, FAIL_NOT_TLS);
		return;
	case HELLO_INVALID:
		/* A declared hello beyond the cap is too large, not bad. */
		if (h.why == hello_why_scratch) {
			conn_fail(c, FAIL_TOO_LARGE);
			return;
		}
		log_debug("conn=%llu invalid hello: %s at byte %zu",
		    (unsigned long long)c->id, h.why, h.off);
		conn_fail(c, FAIL_INVALID);
		return;
	case HELLO_SNI:
	case HELLO_NO_SNI:
		conn_route(c, r, &h);
		return;
	}
}

static void
conn_backend_failed(struct conn *c, const char *op, int err)
{
	c->route->stats->backend_failures++;
	c->err_op = op;
	c->err = err;
	log_info("conn=%llu backend=%s %s: %s", (unsigned long long)c->id,
	    c->route->backends[c->backend].text, op, strerror(err));
	loop_unwatch(conn_loop, c->bfd);
	close(c->bfd);
	c->bfd = -1;
	c->backend++;
	conn_connect_next(c);
}

static void
conn_relay_start(struct conn *c)
{
	int one = 1;

	setsockopt(c->bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = CONN_RELAY;
	c->err_op = NULL;
	c->active_ms = conn_now;
	timer_set(c, Q_IDLE, c->cf->idle_ms);
	/* The hello, and whatever followed it, goes out first. */
	relay_done(c, relay_flush(c, C2B));
}

/* Connect to the route's backend number c->backend, or the next ones. */
static void
conn_connect_next(struct conn *c)
{
	const struct backend *b;

	for (; c->backend < c->route->nbackends; c->backend++) {
		b = &c->route->backends[c->backend];
		c->bfd = socket(b->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->bfd == -1) {
			c->err = errno;
			c->err_op = "socket";
			conn_close(c, "error");
			return;
		}
		if (connect(c->bfd, (const struct sockaddr *)&b->addr,
		    b->addr_len) == 0) {
			conn_relay_start(c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->state = CONN_CONNECT;
			timer_set(c, Q_CONNECT, c->cf->connect_ms);
			conn_watch(c);
			return;
		}
		conn_backend_failed(c, "connect", errno);
		return;
	}
	c->backend = c->route->nbackends;
	conn_close(c, "connect");
}

static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		conn_backend_failed(c, "connect", err);
		return;
	}
	conn_relay_start(c);
}

static int
relay_fd(const struct conn *c, int dir, int dst)
{
	return (dir == C2B) == (dst == 0) ? c->cfd : c->bfd;
}

/* Finish a direction whose source has ended and whose bytes are out. */
static void
relay_shut(struct conn *c, int dir)
{
	if (c->eof[dir] && c->pend[dir] == NULL)
		shutdown(relay_fd(c, dir, 1), SHUT_WR);
}

static int
relay_send(struct conn *c, int dir, const uint8_t *p, size_t len)
{
	ssize_t n;

	n = send(relay_fd(c, dir, 1), p, len, MSG_NOSIGNAL);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		c->err = errno;
		c->err_op = "send";
		return -1;
	}
	c->bytes[dir] += (uint64_t)n;
	if (dir == C2B)
		c->route->stats->c2b_bytes += (uint64_t)n;
	else
		c->route->stats->b2c_bytes += (uint64_t)n;
	c->active_ms = conn_now;
	return (int)n;
}

/* Move what one side has to the other.  -1 when the relay must end. */
static int
relay_read(struct conn *c, int dir)
{
	ssize_t n;
	int w;

	n = read(relay_fd(c, dir, 0), relay_chunk, sizeof(relay_chunk));
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		c->err = errno;
		c->err_op = "read";
		return -1;
	}
	if (n == 0) {
		c->eof[dir] = 1;
		relay_shut(c, dir);
		return 0;
	}
	if ((w = relay_send(c, dir, relay_chunk, (size_t)n)) == -1)
		return -1;
	if (w < n) {
		if ((c->pend[dir] = buf_grow(NULL, (size_t)(n - w))) == NULL) {
			c->err = errno;
			c->err_op = "relay";
			return -1;
		}
		memcpy(c->pend[dir]->data, relay_chunk + w, (size_t)(n - w));
		c->pend[dir]->len = (size_t)(n - w);
	}
	return 0;
}

/* Write out what is pending in one direction.  -1 when it must end. */
static int
relay_flush(struct conn *c, int dir)
{
	struct buf *b = c->pend[dir];
	int w;

	if (b == NULL)
		return 0;
	w = relay_send(c, dir, b->data + b->off, b->len - b->off);
	if (w == -1)
		return -1;
	b->off += (size_t)w;
	if (b->off == b->len) {
		free(b);
		c->pend[dir] = NULL;
		relay_shut(c, dir);
	}
	return 0;
}

/* After relay steps: end the connection, or watch what is needed now. */
static void
relay_done(struct conn *c, int rc)
{
	if (rc == -1) {
		conn_close(c, "reset");
		return;
	}
	if (c->eof[C2B] && c->eof[B2C] && c->pend[C2B] == NULL &&
	    c->pend[B2C] == NULL) {
		conn_close(c, "eof");
		return;
	}
	conn_watch(c);
}

static void
conn_linger_read(struct conn *c)
{
	ssize_t n;

	n = read(c->cfd, relay_chunk, sizeof(relay_chunk));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		conn_close(c, "refused");
}

static void
conn_event(int fd, int mask, void *arg)
{
	struct conn *c = arg;
	int in, out, rc = 0;

	conn_now = loop_now(conn_loop);

	switch (c->state) {
	case CONN_HELLO:
		conn_hello_read(c);
		return;
	case CONN_LINGER:
		conn_linger_read(c);
		return;
	case CONN_CONNECT:
		conn_connected(c);
		return;
	case CONN_RELAY:
		break;
	}

	/* Readable side <fd> feeds direction <in>; writable, drains <out>. */
	in = (fd == c->cfd) ? C2B : B2C;
	out = (fd == c->cfd) ? B2C : C2B;
	if (mask & LOOP_WRITE)
		rc = relay_flush(c, out);
	if (rc == 0 && (mask & LOOP_READ) && c->pend[in] == NULL &&
	    !c->eof[in])
		rc = relay_read(c, in);
	relay_done(c, rc);
}

static void
conn_new(int fd, const struct sockaddr *sa, socklen_t salen,
    struct config *cf)
{
	struct conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("accept: dropping a client");
		close(fd);
		return;
	}
	c->id = ++conn_nextid;
	c->cfd = fd;
	c->bfd = -1;
	c->start_ms = conn_now;
	if (salen > sizeof(c->peer))
		salen = sizeof(c->peer);
	memcpy(&c->peer, sa, salen);
	c->cf = cf;
	config_ref(cf);
	hello_init(&c->scan);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	TAILQ_INSERT_TAIL(&conn_all, c, all);
	conn_count++;
	c->state = CONN_HELLO;
	timer_set(c, Q_HELLO, cf->hello_ms);
	conn_watch(c);
}

/*
 * Accept the clients waiting on listening socket <lfd>, each to be
 * routed by <cf>.  Returns 0, or -1 with errno set when the process is
 * out of descriptors (EMFILE, ENFILE) and should stop accepting a while.
 */
int
conn_accept(int lfd, struct config *cf)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, i;

	conn_now = loop_now(conn_loop);
	for (i = 0; i < ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				return -1;
			/* EAGAIN, or a client that left before accept. */
			return 0;
		}
		conn_new(fd, (struct sockaddr *)&ss, len, cf);
	}
	return 0;
}

static void
conn_expire(struct conn *c)
{
	switch (c->state) {
	case CONN_HELLO:
		conn_fail(c, FAIL_TIMEOUT);
		break;
	case CONN_LINGER:
		conn_close(c, "refused");
		break;
	case CONN_CONNECT:
		conn_backend_failed(c, "connect", ETIMEDOUT);
		break;
	case CONN_RELAY:
		conn_close(c, "idle");
		break;
	}
}

/*
 * Record the time <now> and end the connections whose timeout has
 * passed.  Returns the milliseconds until the next deadline, or -1 when
 * no connection has one.
 */
int
conn_timers_run(uint64_t now)
{
	struct conn *c;
	uint64_t next = UINT64_MAX;
	int q;

	conn_now = now;
	for (q = Q_HELLO; q <= Q_IDLE; q++) {
		while ((c = TAILQ_FIRST(&conn_q[q])) != NULL &&
		    c->deadline_ms <= now) {
			/* Idle deadlines move with traffic; requeue those. */
			if (q == Q_IDLE &&
			    c->active_ms + c->cf->idle_ms > now) {
				timer_set(c, Q_IDLE, c->active_ms +
				    c->cf->idle_ms - now);
				continue;
			}
			conn_expire(c);
		}
		if (c != NULL && c->deadline_ms < next)
			next = c->deadline_ms;
	}
	if (next == UINT64_MAX)
		return -1;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

/* End every connection still open, as at the end of a drain. */
void
conn_drain_all(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&conn_all)) != NULL)
		conn_close(c, "drain");
}
