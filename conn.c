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
#include <unistd.h>

#include "parse_hello.h"
#include "snimux.h"

#define RELAY_CHUNK	(64 * 1024)
#define RELAY_PIPE_SIZE	(256 * 1024)
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
	TAILQ_ENTRY(conn)	 fdwait;	/* if <waiting> */
	struct worker		*w;
	struct config		*cf;
	struct route		*route;
	struct buf		*pend[2];	/* copied bytes waiting */
	struct relay_pipe	*pipe[2];	/* spliced bytes waiting */
	size_t			 inpipe[2];
	char			*sni;		/* validated name, or NULL */
	struct hello_scan	 scan;		/* while reading the hello */
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
	uint8_t			 tlist;		/* index in w->timers */
	uint8_t			 eof[2];	/* source sent everything */
	uint8_t			 refused;
	uint8_t			 copy;		/* no splice for this one */
	uint8_t			 waiting;	/* in the worker's fdwait */
	uint8_t			 fdretry;	/* taken from fdwait to retry */
};

const char *const hello_fail_names[FAIL_NREASONS] = {
	"timeout", "invalid", "not_tls", "too_large", "refused", "aborted",
	"limit"
};

const char *const conn_end_names[END_NREASONS] = {
	"eof", "reset", "idle", "drain", "connect", "error"
};

static _Atomic uint64_t	conn_open;	/* client connections, all workers */
static _Atomic uint64_t	conn_ids;	/* the last connection number */
static uint64_t		conn_max = UINT64_MAX;
static size_t		pipes_max = 64;

static void	conn_event(int, int, void *);
static void	conn_close(struct conn *, const char *);
static void	conn_end(struct conn *, enum conn_end);
static void	conn_connect_next(struct conn *);
static int	relay_flush(struct conn *, int);
static void	relay_done(struct conn *, int);

/*
 * Set the limits shared by every worker: at most <max_conns> client
 * connections and <max_pipes> relay pipes per worker.
 */
void
conn_limits(uint64_t max_conns, size_t max_pipes)
{
	conn_max = max_conns;
	pipes_max = max_pipes;
}

/* Client connections open now, in every worker. */
uint64_t
conn_open_total(void)
{
	return atomic_load_explicit(&conn_open, memory_order_relaxed);
}

/* Prepare the connection state of worker <w>.  0, or -1 with errno. */
int
conn_worker_init(struct worker *w)
{
	int i;

	TAILQ_INIT(&w->all);
	TAILQ_INIT(&w->fdwait);
	for (i = 0; i < TIMER_LISTS; i++)
		TAILQ_INIT(&w->timers[i].conns);
	SLIST_INIT(&w->pipes);
	if ((w->chunk = malloc(RELAY_CHUNK)) == NULL)
		return -1;
	w->now = now_ms();
	return 0;
}

/* Free what conn_worker_init() and the relay pool hold. */
void
conn_worker_free(struct worker *w)
{
	struct relay_pipe *p;

	while ((p = SLIST_FIRST(&w->pipes)) != NULL) {
		SLIST_REMOVE_HEAD(&w->pipes, next);
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
	}
	free(w->chunk);
	free(w->scratch);
	w->chunk = w->scratch = NULL;
}

static struct stats_cell *
conn_cell(const struct conn *c)
{
	return &c->route->stats->cell[c->w->idx];
}

/*
 * The timer list of worker <w> for deadlines set <ms> from their start:
 * the one with that timeout, else an empty one, else the one with the
 * nearest timeout (insertions there walk further, which happens only
 * when reloads changed timeouts more often than older connections went).
 */
static unsigned
timer_list_for(struct worker *w, uint64_t ms)
{
	unsigned i, empty = TIMER_LISTS, near = 0;
	uint64_t d, best = UINT64_MAX;

	for (i = 0; i < TIMER_LISTS; i++) {
		if (w->timers[i].ms == ms)
			return i;
		if (TAILQ_EMPTY(&w->timers[i].conns)) {
			if (empty == TIMER_LISTS)
				empty = i;
			continue;
		}
		d = w->timers[i].ms > ms ? w->timers[i].ms - ms :
		    ms - w->timers[i].ms;
		if (d < best) {
			best = d;
			near = i;
		}
	}
	if (empty == TIMER_LISTS)
		return near;
	w->timers[empty].ms = ms;
	return empty;
}

/*
 * Put <c> in timer queue <q> (Q_NONE: none) with a timeout of <ms> that
 * ends at <deadline>.  Connections are listed by timeout, so that a
 * reload that shortens one does not make new deadlines walk past the
 * older, later ones (unless more timeout values are alive than there
 * are lists).  Within a list a new deadline is nearly always the latest
 * and the walk from the tail stops at once: idle deadlines move to the
 * tail with traffic (relay_count()), and the few that lag behind move up
 * past at most a second's worth.
 */
static void
timer_put(struct conn *c, enum conn_queue q, uint64_t ms, uint64_t deadline)
{
	struct worker *w = c->w;
	struct conn_list *l;
	struct conn *prev;

	if (c->queue != Q_NONE)
		TAILQ_REMOVE(&w->timers[c->tlist].conns, c, timer);
	c->queue = q;
	c->deadline_ms = deadline;
	if (q == Q_NONE)
		return;
	c->tlist = (uint8_t)timer_list_for(w, ms);
	l = &w->timers[c->tlist].conns;
	prev = TAILQ_LAST(l, conn_list);
	while (prev != NULL && prev->deadline_ms > deadline)
		prev = TAILQ_PREV(prev, conn_list, timer);
	if (prev == NULL)
		TAILQ_INSERT_HEAD(l, c, timer);
	else
		TAILQ_INSERT_AFTER(l, prev, c, timer);
}

static void
timer_set(struct conn *c, enum conn_queue q, uint64_t ms)
{
	timer_put(c, q, ms, c->w->now + ms);
}

static int
relay_pending(const struct conn *c, int dir)
{
	return c->pend[dir] != NULL || c->pipe[dir] != NULL;
}

/* Watch what the state needs.  -1 when that failed and <c> is gone. */
static int
conn_watch(struct conn *c)
{
	struct loop *l = c->w->loop;
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
		if (!c->eof[C2B] && !relay_pending(c, C2B))
			cm |= LOOP_READ;
		if (relay_pending(c, B2C))
			cm |= LOOP_WRITE;
		if (!c->eof[B2C] && !relay_pending(c, B2C))
			bm |= LOOP_READ;
		if (relay_pending(c, C2B))
			bm |= LOOP_WRITE;
		break;
	}
	if (loop_watch(l, c->cfd, cm, conn_event, c) == -1 ||
	    (c->bfd != -1 && loop_watch(l, c->bfd, bm, conn_event, c) == -1)) {
		c->err = errno;
		c->err_op = "watch";
		conn_end(c, END_ERROR);
		return -1;
	}
	return 0;
}

static void
fail_count(struct worker *w, enum hello_fail why)
{
	CTR_ADD(w->hello_failures[why], 1);
}

static void
conn_fail(struct conn *c, enum hello_fail why)
{
	fail_count(c->w, why);
	conn_close(c, hello_fail_names[why]);
}

/* End a connection that got past its hello, and count how it ended. */
static void
conn_end(struct conn *c, enum conn_end why)
{
	/* A refused client was counted when its alert went out. */
	if (c->refused) {
		conn_close(c, "refused");
		return;
	}
	CTR_ADD(c->w->endings[why], 1);
	conn_close(c, conn_end_names[why]);
}

static struct relay_pipe *
pipe_take(struct worker *w)
{
	struct relay_pipe *p;

	if ((p = SLIST_FIRST(&w->pipes)) != NULL) {
		SLIST_REMOVE_HEAD(&w->pipes, next);
		w->npipes_free--;
		w->npipes_used++;
		return p;
	}
	if (w->npipes_used >= pipes_max || (p = malloc(sizeof(*p))) == NULL)
		return NULL;
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		free(p);
		return NULL;
	}
	pipe_set_size(p->fd[0], RELAY_PIPE_SIZE);
	w->npipes_used++;
	return p;
}

/* Return an empty pipe to the pool; one still holding bytes is closed. */
static void
pipe_give(struct worker *w, struct relay_pipe *p, int empty)
{
	w->npipes_used--;
	if (empty && w->npipes_free < pipes_max / 2) {
		SLIST_INSERT_HEAD(&w->pipes, p, next);
		w->npipes_free++;
		return;
	}
	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

/* The access line of <c>, which ended as <end>. */
static void
conn_log(const struct conn *c, const char *end)
{
	char client[64], errtext[160] = "";
	const char *backend = "-";

	if (c->route != NULL && !c->refused &&
	    c->backend < c->route->nbackends)
		backend = c->route->backends[c->backend].text;
	addr_format((const struct sockaddr *)&c->peer, client, sizeof(client));
	if (c->err_op != NULL)
		snprintf(errtext, sizeof(errtext), " err=\"%s: %s\"",
		    c->err_op, strerror(c->err));
	log_info("conn=%llu client=%s sni=%s route=%s backend=%s "
	    "c2b=%llu b2c=%llu ms=%llu end=%s%s", (unsigned long long)c->id,
	    client, c->sni ? c->sni : "-",
	    c->route ? c->route->pattern : "-", backend,
	    (unsigned long long)c->bytes[C2B],
	    (unsigned long long)c->bytes[B2C],
	    (unsigned long long)(c->w->now - c->start_ms), end, errtext);
}

/* A new connection's number, time and client address. */
static void
conn_init(struct conn *c, struct worker *w, const struct sockaddr *sa,
    socklen_t salen)
{
	c->w = w;
	c->id = atomic_fetch_add_explicit(&conn_ids, 1,
	    memory_order_relaxed) + 1;
	c->start_ms = w->now;
	if (salen > sizeof(c->peer))
		salen = sizeof(c->peer);
	memcpy(&c->peer, sa, salen);
}

/*
 * The one place that ends a connection: closes both sides, logs the
 * access line with how it ended (<end>) and updates the counters.
 */
static void
conn_close(struct conn *c, const char *end)
{
	struct worker *w = c->w;
	int d;

	if (c->route != NULL && !c->refused)
		CTR_ADD(conn_cell(c)->active, -1);
	conn_log(c, end);

	loop_close(w->loop, c->cfd);
	if (c->bfd != -1)
		loop_close(w->loop, c->bfd);
	for (d = C2B; d <= B2C; d++) {
		free(c->pend[d]);
		if (c->pipe[d] != NULL)
			pipe_give(w, c->pipe[d], c->inpipe[d] == 0);
	}
	timer_set(c, Q_NONE, 0);
	if (c->waiting)
		TAILQ_REMOVE(&w->fdwait, c, fdwait);
	TAILQ_REMOVE(&w->all, c, all);
	w->fd_freed = 1;
	free(c->sni);
	config_unref(c->cf);
	free(c);
	CTR_ADD(w->nconns, -1);
	atomic_fetch_sub_explicit(&conn_open, 1, memory_order_relaxed);
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
	fail_count(c->w, FAIL_REFUSED);
	(void)send(c->cfd, alert, sizeof(alert), MSG_NOSIGNAL);
	shutdown(c->cfd, SHUT_WR);
	c->state = CONN_LINGER;
	free(c->pend[C2B]);
	c->pend[C2B] = NULL;
	conn_watch(c);
}

/* Count the connection on route <rt> and connect to its backends. */
static void
conn_forward(struct conn *c, struct route *rt)
{
	c->route = rt;
	if (rt == &c->cf->nottls)
		CTR_ADD(conn_cell(c)->total, 1);
	CTR_ADD(conn_cell(c)->active, 1);
	c->backend = 0;
	conn_connect_next(c);
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
			conn_end(c, END_ERROR);
			return;
		}
		rt = table_lookup(cf->table, c->sni, h->sni_len);
	}
	if (rt == NULL)
		rt = (r == HELLO_SNI) ? &cf->unknown : &cf->nosni;
	c->route = rt;
	CTR_ADD(conn_cell(c)->total, 1);
	if (rt->refuse || rt->nbackends == 0) {
		/* RFC 8446 section 6.2: unrecognized_name, handshake_failure */
		conn_refuse(c, h->record_version,
		    r == HELLO_SNI ? 112 : 40);
		return;
	}
	conn_forward(c, rt);
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

/* Make room for more hello bytes, up to the cap.  -1 when it is closed. */
static int
conn_hello_room(struct conn *c)
{
	struct buf *b = c->pend[C2B];
	size_t cap = c->cf->hello_max, size;

	if (b != NULL && b->len < b->size)
		return 0;
	if (b != NULL && b->size >= cap) {
		conn_fail(c, FAIL_TOO_LARGE);
		return -1;
	}
	size = b == NULL ? HELLO_FIRST : b->size * 2;
	if (size > cap)
		size = cap;
	if ((b = buf_grow(b, size)) == NULL) {
		c->err = errno;
		c->err_op = "hello";
		conn_end(c, END_ERROR);
		return -1;
	}
	c->pend[C2B] = b;
	return 0;
}

static int
scratch_room(struct worker *w, size_t cap)
{
	if (w->scratch_size >= cap)
		return 0;
	free(w->scratch);
	if ((w->scratch = malloc(cap)) == NULL) {
		w->scratch_size = 0;
		return -1;
	}
	w->scratch_size = cap;
	return 0;
}

static void
conn_hello_read(struct conn *c)
{
	struct worker *w = c->w;
	struct buf *b;
	struct hello h;
	enum hello_result r;
	ssize_t n;

	if (conn_hello_room(c) == -1)
		return;
	b = c->pend[C2B];
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
	if (scratch_room(w, c->cf->hello_max) == -1) {
		c->err = errno;
		c->err_op = "hello";
		conn_end(c, END_ERROR);
		return;
	}
	r = hello_parse(&c->scan, b->data, b->len, w->scratch,
	    w->scratch_size, &h);
	switch (r) {
	case HELLO_NEED_MORE:
		if (b->len >= c->cf->hello_max)
			conn_fail(c, FAIL_TOO_LARGE);
		return;
	case HELLO_NOT_TLS:
		if (c->cf->nottls.nbackends == 0) {
			conn_fail(c, FAIL_NOT_TLS);
			return;
		}
		conn_forward(c, &c->cf->nottls);
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
	CTR_ADD(conn_cell(c)->backend_failures, 1);
	c->err_op = op;
	c->err = err;
	log_info("conn=%llu backend=%s %s: %s", (unsigned long long)c->id,
	    c->route->backends[c->backend].text, op, strerror(err));
	if (c->bfd != -1)
		loop_close(c->w->loop, c->bfd);
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
	c->active_ms = c->w->now;
	c->copy = c->cf->relay == RELAY_COPY;
	timer_set(c, Q_IDLE, c->cf->idle_ms);
	/* The hello, and whatever followed it, goes out first. */
	relay_done(c, relay_flush(c, C2B));
}

/* Has the connection on socket <fd>, begun without blocking, been made? */
static int
connected_now(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/*
 * The process is out of descriptors (or socket buffers) for the backend
 * socket of <c>.  The client keeps its place: it waits, its hello still
 * in hand, until a descriptor is free or its connect timeout passes, and
 * the worker stops accepting meanwhile.  <first>: back at the head of
 * the queue, when a retry found none either.
 */
static void
conn_fdwait(struct conn *c, int first)
{
	struct worker *w = c->w;

	/* A retry keeps its deadline; a fresh wait gets a whole one. */
	c->state = CONN_CONNECT;
	if (!first)
		timer_set(c, Q_CONNECT, c->cf->connect_ms);
	c->err = errno;
	c->err_op = "socket";
	if (first)
		TAILQ_INSERT_HEAD(&w->fdwait, c, fdwait);
	else
		TAILQ_INSERT_TAIL(&w->fdwait, c, fdwait);
	c->waiting = 1;
	w->fd_short = 1;
	/* Until then its client is not read: nothing could go anywhere. */
	conn_watch(c);
	worker_accept_pause(w);
}

/*
 * Try again the connections of worker <w> that wait for a descriptor,
 * oldest first, until one finds none.  Returns how many still wait.
 */
int
conn_fdwait_retry(struct worker *w)
{
	struct conn *c;
	int n = 0;

	w->fd_freed = 0;
	w->fd_short = 0;
	while (!w->fd_short && (c = TAILQ_FIRST(&w->fdwait)) != NULL) {
		TAILQ_REMOVE(&w->fdwait, c, fdwait);
		c->waiting = 0;
		c->fdretry = 1;
		conn_connect_next(c);
	}
	TAILQ_FOREACH(c, &w->fdwait, fdwait)
		n++;
	return n;
}

/* Connect to the route's backend number c->backend, or the next ones. */
static void
conn_connect_next(struct conn *c)
{
	const struct backend *b;
	int retry = c->fdretry;

	c->fdretry = 0;
	for (; c->backend < c->route->nbackends; c->backend++) {
		b = &c->route->backends[c->backend];
		c->bfd = socket(b->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->bfd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				conn_fdwait(c, retry);
				return;
			}
			/* Such as no IPv6 here: the next may do. */
			conn_backend_failed(c, "socket", errno);
			return;
		}
		c->err_op = NULL;
		if (connect(c->bfd, (const struct sockaddr *)&b->addr,
		    b->addr_len) == 0) {
			conn_relay_start(c);
			return;
		}
		if (errno == EINPROGRESS) {
			/*
			 * A near backend (loopback, the same host) has often
			 * accepted by now: then there is nothing to wait for.
			 */
			if (connected_now(c->bfd)) {
				conn_relay_start(c);
				return;
			}
			c->state = CONN_CONNECT;
			timer_set(c, Q_CONNECT, c->cf->connect_ms);
			conn_watch(c);
			return;
		}
		conn_backend_failed(c, "connect", errno);
		return;
	}
	c->backend = c->route->nbackends;
	conn_end(c, END_CONNECT);
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
	/* When the other way is done too, closing says the same. */
	if (c->eof[dir] && !relay_pending(c, dir) &&
	    !(c->eof[!dir] && !relay_pending(c, !dir)))
		shutdown(relay_fd(c, dir, 1), SHUT_WR);
}

static void
relay_count(struct conn *c, int dir, size_t n)
{
	uint64_t now = c->w->now;

	c->bytes[dir] += n;
	if (dir == C2B)
		CTR_ADD(conn_cell(c)->c2b_bytes, n);
	else
		CTR_ADD(conn_cell(c)->b2c_bytes, n);
	c->active_ms = now;
	/*
	 * Traffic moves the idle deadline to the tail of its queue, at most
	 * once a second; conn_timers_run() settles the last second exactly.
	 */
	if (c->queue == Q_IDLE &&
	    c->deadline_ms + 1000 <= now + c->cf->idle_ms)
		timer_set(c, Q_IDLE, c->cf->idle_ms);
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
	relay_count(c, dir, (size_t)n);
	return (int)n;
}

/* Splice what waits in the direction's pipe to its destination. */
static int
splice_out(struct conn *c, int dir)
{
	struct relay_pipe *p = c->pipe[dir];
	ssize_t n;

	n = splice(p->fd[0], NULL, relay_fd(c, dir, 1), NULL, c->inpipe[dir],
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		c->err = errno;
		c->err_op = "splice";
		return -1;
	}
	relay_count(c, dir, (size_t)n);
	c->inpipe[dir] -= (size_t)n;
	if (c->inpipe[dir] == 0) {
		pipe_give(c->w, p, 1);
		c->pipe[dir] = NULL;
		relay_shut(c, dir);
	}
	return 0;
}

/*
 * Zero-copy step: move what the source has into a pipe and on to the
 * destination.  Returns 1 when splice cannot serve this connection and
 * the copy relay must, 0 when done, -1 when the relay must end.
 */
static int
splice_read(struct conn *c, int dir)
{
	struct relay_pipe *p;
	ssize_t n;

	if ((p = pipe_take(c->w)) == NULL)
		return 1;
	n = splice(relay_fd(c, dir, 0), NULL, p->fd[1], NULL,
	    RELAY_PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n <= 0) {
		pipe_give(c->w, p, 1);
		if (n == 0) {
			c->eof[dir] = 1;
			relay_shut(c, dir);
			return 0;
		}
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno == EINVAL || errno == ENOSYS) {
			c->copy = 1;
			return 1;
		}
		c->err = errno;
		c->err_op = "splice";
		return -1;
	}
	c->pipe[dir] = p;
	c->inpipe[dir] = (size_t)n;
	return splice_out(c, dir);
}

/* Move what one side has to the other.  -1 when the relay must end. */
static int
relay_read(struct conn *c, int dir)
{
	uint8_t *chunk = c->w->chunk;
	ssize_t n;
	int w;

	if (!c->copy && (w = splice_read(c, dir)) != 1)
		return w;
	n = read(relay_fd(c, dir, 0), chunk, RELAY_CHUNK);
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
	if ((w = relay_send(c, dir, chunk, (size_t)n)) == -1)
		return -1;
	if (w < n) {
		if ((c->pend[dir] = buf_grow(NULL, (size_t)(n - w))) == NULL) {
			c->err = errno;
			c->err_op = "relay";
			return -1;
		}
		memcpy(c->pend[dir]->data, chunk + w, (size_t)(n - w));
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

	if (c->pipe[dir] != NULL)
		return splice_out(c, dir);
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
		/* Out of memory is snimux's failure, not the peers'. */
		conn_end(c, c->err == ENOMEM || c->err == ENOBUFS ?
		    END_ERROR : END_RESET);
		return;
	}
	if (c->eof[C2B] && c->eof[B2C] && !relay_pending(c, C2B) &&
	    !relay_pending(c, B2C)) {
		conn_end(c, END_EOF);
		return;
	}
	conn_watch(c);
}

static void
conn_linger_read(struct conn *c)
{
	ssize_t n;

	n = read(c->cfd, c->w->chunk, RELAY_CHUNK);
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

	c->w->now = loop_now(c->w->loop);
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
	if (rc == 0 && (mask & LOOP_READ) && !relay_pending(c, in) &&
	    !c->eof[in])
		rc = relay_read(c, in);
	relay_done(c, rc);
}

/*
 * The access line of a client closed as soon as it was accepted (over
 * max-connections, or no memory for it): it still gets a number.
 */
static void
conn_log_unserved(struct worker *w, const struct sockaddr *sa,
    socklen_t salen, const char *end, const char *op, int err)
{
	struct conn c;

	memset(&c, 0, sizeof(c));
	conn_init(&c, w, sa, salen);
	c.err_op = op;
	c.err = err;
	conn_log(&c, end);
}

static void
conn_new(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		conn_log_unserved(w, sa, salen, "error", "accept", errno);
		CTR_ADD(w->endings[END_ERROR], 1);
		close(fd);
		atomic_fetch_sub_explicit(&conn_open, 1, memory_order_relaxed);
		return;
	}
	conn_init(c, w, sa, salen);
	c->cfd = fd;
	c->bfd = -1;
	c->cf = w->cf;
	config_ref(c->cf);
	hello_init(&c->scan);
	if (!ACCEPT_KEEPS_NODELAY)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	TAILQ_INSERT_TAIL(&w->all, c, all);
	CTR_ADD(w->nconns, 1);
	c->state = CONN_HELLO;
	timer_set(c, Q_HELLO, c->cf->hello_ms);
	/*
	 * A client writes its hello right after connecting, so by the time
	 * it is accepted the hello has often arrived: read it now rather
	 * than after one more turn of the loop.
	 */
	if (conn_watch(c) == 0)
		conn_hello_read(c);
}

/*
 * Accept the clients waiting on listening socket <lfd> into worker <w>.
 * Returns 0, or -1 with errno set when the process is out of descriptors
 * (EMFILE, ENFILE) and should stop accepting for a while.
 */
int
conn_accept(struct worker *w, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, i;

	w->now = loop_now(w->loop);
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
		if (atomic_fetch_add_explicit(&conn_open, 1,
		    memory_order_relaxed) >= conn_max) {
			/* Over the limit: closed at once, never queued. */
			atomic_fetch_sub_explicit(&conn_open, 1,
			    memory_order_relaxed);
			fail_count(w, FAIL_LIMIT);
			conn_log_unserved(w, (struct sockaddr *)&ss, len,
			    "limit", NULL, 0);
			close(fd);
			continue;
		}
		conn_new(w, fd, (struct sockaddr *)&ss, len);
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
		if (c->waiting) {
			/* No descriptor came free in time. */
			CTR_ADD(conn_cell(c)->backend_failures, 1);
			conn_end(c, END_ERROR);
			break;
		}
		conn_backend_failed(c, "connect", ETIMEDOUT);
		break;
	case CONN_RELAY:
		conn_end(c, END_IDLE);
		break;
	}
}

/*
 * Record the time <now> in worker <w> and end its connections whose
 * timeout has passed.  Returns the milliseconds until the next deadline,
 * or -1 when no connection has one.
 */
int
conn_timers_run(struct worker *w, uint64_t now)
{
	struct conn *c;
	uint64_t next = UINT64_MAX;
	int i;

	w->now = now;
	for (i = 0; i < TIMER_LISTS; i++) {
		while ((c = TAILQ_FIRST(&w->timers[i].conns)) != NULL &&
		    c->deadline_ms <= now) {
			/* Idle deadlines move with traffic; requeue those. */
			if (c->queue == Q_IDLE &&
			    c->active_ms + c->cf->idle_ms > now) {
				timer_put(c, Q_IDLE, c->cf->idle_ms,
				    c->active_ms + c->cf->idle_ms);
				continue;
			}
			conn_expire(c);
		}
	}
	/* Looked at once all are done: an expiry may start a new timer. */
	for (i = 0; i < TIMER_LISTS; i++) {
		c = TAILQ_FIRST(&w->timers[i].conns);
		if (c != NULL && c->deadline_ms < next)
			next = c->deadline_ms;
	}
	if (next == UINT64_MAX)
		return -1;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

/* End every connection of worker <w>, as at the end of a drain. */
void
conn_drain_all(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->all)) != NULL)
		conn_end(c, END_DRAIN);
}
