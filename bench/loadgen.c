/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Load generator and backend sink for snimux's own benchmark.  Clients
 * send a real ClientHello and a short request; the sink answers with a
 * short reply, a stream of bytes, or one byte and then silence.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * What follows the hello on the wire: 4 bytes of magic, the operation,
 * 3 bytes of padding and a 64-bit big-endian byte count.
 */
#define REQ_LEN		16
#define REQ_MAGIC	"SNXB"
#define OP_REPLY	'R'	/* answer <count> bytes, wait for the end */
#define OP_STREAM	'S'	/* send <count> bytes, then half-close */
#define OP_IDLE		'I'	/* answer one byte, then stay silent */

#define IO_SIZE		(256 * 1024)
#define MAX_EVENTS	256
#define HELLO_MAX	16384
#define GRACE_NS	(3ULL * 1000000000ULL)

enum mode { M_SINK, M_CONN, M_BULK, M_IDLE };

struct opts {
	enum mode	 mode;
	int		 port;
	int		 threads;
	int		 conc;
	uint64_t	 count;
	double		 secs;
	uint64_t	 bytes;
	const char	*hello_path;
	const char	*name;
};

/* One client connection. */
struct cconn {
	int		 fd;
	int		 state;
	int		 next_free;
	uint64_t	 start_ns;
	uint64_t	 first_ns;
	uint64_t	 got;
};

#define CS_FREE		0
#define CS_CONNECT	1
#define CS_WAIT		2
#define CS_HELD		3

/* One client thread and what it measured. */
struct cthread {
	pthread_t	 th;
	int		 ep;
	struct cconn	*slots;
	int		 nslots;
	int		 free_head;
	int		 conc;
	int		 inflight;
	uint64_t	 target;
	uint64_t	 started;
	uint64_t	 done;
	uint64_t	 errors;
	uint64_t	 bytes;
	uint64_t	 last_ns;
	uint32_t	*lat;
	size_t		 nlat;
	size_t		 lat_size;
	uint8_t		*buf;
};

/* One sink connection. */
struct sconn {
	int		 fd;
	int		 state;
	uint64_t	 pos;		/* bytes of hello + request read */
	uint64_t	 hello_len;	/* record header included */
	uint8_t		 hdr[5];
	uint8_t		 req[REQ_LEN];
	uint64_t	 left;		/* bytes still to stream */
};

#define SS_REQ		0
#define SS_SEND		1
#define SS_DRAIN	2

static struct opts	 opt;
static uint8_t		*msg;		/* hello followed by the request */
static size_t		 msg_len;
static uint64_t		 want_len;	/* bytes each client waits for */
static uint64_t		 t0_ns;
static uint64_t		 stop_ns;	/* no new connection after this */
static uint64_t		 hard_ns;	/* give up on the rest after this */
static uint8_t		 fill[IO_SIZE];

static void
die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
diex(const char *what)
{
	fprintf(stderr, "loadgen: %s\n", what);
	exit(1);
}

static uint64_t
ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
put_u16(uint8_t *p, size_t v)
{
	p[0] = (v >> 8) & 0xff;
	p[1] = v & 0xff;
}

static void
put_u24(uint8_t *p, size_t v)
{
	p[0] = (v >> 16) & 0xff;
	put_u16(p + 1, v);
}

static size_t
get_u16(const uint8_t *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/*
 * Offset of the extensions block (its 2-byte length) of the one-record
 * ClientHello <h> of <len> bytes, or 0 when it has none.
 */
static size_t
hello_ext_off(const uint8_t *h, size_t len)
{
	size_t off = 5 + 4 + 2 + 32;

	if (off + 1 > len)
		return 0;
	off += 1 + h[off];			/* session id */
	if (off + 2 > len)
		return 0;
	off += 2 + get_u16(h + off);		/* cipher suites */
	if (off + 1 > len)
		return 0;
	off += 1 + h[off];			/* compression methods */
	return off + 2 <= len ? off : 0;
}

/*
 * Rewrite the server_name extension of hello <h> (one record, <len>
 * bytes) to carry <name>, fixing every enclosing length.  The result is
 * stored in <out>; returns its length.
 */
static size_t
hello_patch(const uint8_t *h, size_t len, const char *name, uint8_t *out)
{
	size_t eo, p, end, et, el, nl = strlen(name), newlen;

	if ((eo = hello_ext_off(h, len)) == 0)
		diex("hello has no extensions");
	end = eo + 2 + get_u16(h + eo);
	if (end != len)
		diex("hello must be one record, nothing after it");
	for (p = eo + 2; p + 4 <= end; p += 4 + el) {
		et = get_u16(h + p);
		el = get_u16(h + p + 2);
		if (et == 0)
			break;
	}
	if (p + 4 > end)
		diex("hello has no server_name extension");
	newlen = len - el + nl + 5;
	if (newlen > HELLO_MAX)
		diex("hello too large");
	memcpy(out, h, p);
	put_u16(out + p, 0);
	put_u16(out + p + 2, nl + 5);
	put_u16(out + p + 4, nl + 3);
	out[p + 6] = 0;
	put_u16(out + p + 7, nl);
	memcpy(out + p + 9, name, nl);
	memcpy(out + p + 9 + nl, h + p + 4 + el, len - (p + 4 + el));
	put_u16(out + 3, newlen - 5);
	put_u24(out + 6, newlen - 9);
	put_u16(out + eo, newlen - eo - 2);
	return newlen;
}

/* Build the message every client sends: the hello, then the request. */
static void
msg_build(int op, uint64_t count)
{
	uint8_t raw[HELLO_MAX];
	ssize_t n;
	int fd, i;

	if ((fd = open(opt.hello_path, O_RDONLY)) == -1)
		die(opt.hello_path);
	if ((n = read(fd, raw, sizeof(raw))) < 9 || raw[0] != 22)
		diex("hello file: not a TLS handshake record");
	close(fd);
	if ((size_t)n != 5 + get_u16(raw + 3))
		diex("hello file: must hold exactly one record");
	if ((msg = malloc(HELLO_MAX + REQ_LEN)) == NULL)
		die("malloc");
	if (opt.name != NULL)
		msg_len = hello_patch(raw, (size_t)n, opt.name, msg);
	else {
		memcpy(msg, raw, (size_t)n);
		msg_len = (size_t)n;
	}
	memcpy(msg + msg_len, REQ_MAGIC, 4);
	msg[msg_len + 4] = (uint8_t)op;
	memset(msg + msg_len + 5, 0, 3);
	for (i = 0; i < 8; i++)
		msg[msg_len + 8 + i] = (count >> (56 - 8 * i)) & 0xff;
	msg_len += REQ_LEN;
}

static void
addr_init(struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(opt.port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void
ep_add(int ep, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = ptr;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl");
}

static void
ep_mod(int ep, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = ptr;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == -1)
		die("epoll_ctl");
}

/* Sink: the bytes of hello and request; 1 once the request is whole. */
static int
sink_feed(struct sconn *s, const uint8_t *p, size_t n)
{
	size_t i = 0, skip;

	while (i < n) {
		if (s->pos < 5) {
			s->hdr[s->pos++] = p[i++];
			if (s->pos == 5)
				s->hello_len = 5 + get_u16(s->hdr + 3);
			continue;
		}
		if (s->pos < s->hello_len) {
			skip = s->hello_len - s->pos;
			if (skip > n - i)
				skip = n - i;
			i += skip;
			s->pos += skip;
			continue;
		}
		s->req[s->pos - s->hello_len] = p[i++];
		if (++s->pos - s->hello_len == REQ_LEN)
			return 1;
	}
	return 0;
}

static void
sink_close(struct sconn *s)
{
	close(s->fd);
	free(s);
}

/* Sink: stream what is left; 0 while more is to come, -1 on error. */
static int
sink_send(int ep, struct sconn *s)
{
	ssize_t n;

	while (s->left > 0) {
		n = send(s->fd, fill, s->left < IO_SIZE ? s->left : IO_SIZE,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN) {
			if (s->state != SS_SEND)
				ep_mod(ep, s->fd, EPOLLOUT, s);
			s->state = SS_SEND;
			return 0;
		}
		if (n == -1)
			return -1;
		s->left -= (uint64_t)n;
	}
	if (s->state == SS_SEND)
		ep_mod(ep, s->fd, EPOLLIN, s);
	s->state = SS_DRAIN;
	return 0;
}

/* Sink: act on a complete request. */
static int
sink_request(int ep, struct sconn *s)
{
	uint64_t count = 0;
	int i;

	if (memcmp(s->req, REQ_MAGIC, 4) != 0)
		return -1;
	for (i = 0; i < 8; i++)
		count = count << 8 | s->req[8 + i];
	switch (s->req[4]) {
	case OP_REPLY:
		s->left = count < IO_SIZE ? count : IO_SIZE;
		return sink_send(ep, s);
	case OP_STREAM:
		s->left = count;
		if (sink_send(ep, s) == -1)
			return -1;
		if (s->state == SS_DRAIN)
			shutdown(s->fd, SHUT_WR);
		return 0;
	case OP_IDLE:
		s->left = 1;
		return sink_send(ep, s);
	}
	return -1;
}

static void
sink_event(int ep, struct sconn *s, uint32_t events, uint8_t *buf)
{
	ssize_t n;

	if (s->state == SS_SEND) {
		if (sink_send(ep, s) == -1)
			goto fail;
		if (s->state == SS_DRAIN && s->req[4] == OP_STREAM)
			shutdown(s->fd, SHUT_WR);
		return;
	}
	(void)events;
	n = read(s->fd, buf, IO_SIZE);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		goto fail;
	if (s->state == SS_REQ && sink_feed(s, buf, (size_t)n) == 1 &&
	    sink_request(ep, s) == -1)
		goto fail;
	return;
fail:
	sink_close(s);
}

static void
sink_accept(int ep, int lfd)
{
	struct sconn *s;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) != -1) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			die("calloc");
		s->fd = fd;
		s->hello_len = UINT64_MAX;
		ep_add(ep, fd, EPOLLIN, s);
	}
	if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
		fprintf(stderr, "loadgen: accept: %s\n", strerror(errno));
}

static int
sink_listen(void)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	addr_init(&sin);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind");
	if (listen(fd, 4096) == -1)
		die("listen");
	return fd;
}

static void *
sink_main(void *arg)
{
	struct epoll_event ev[MAX_EVENTS];
	uint8_t *buf;
	int ep, lfd = (int)(intptr_t)arg, n, i;

	if ((ep = epoll_create1(0)) == -1)
		die("epoll_create1");
	if ((buf = malloc(IO_SIZE)) == NULL)
		die("malloc");
	ep_add(ep, lfd, EPOLLIN, NULL);
	for (;;) {
		if ((n = epoll_wait(ep, ev, MAX_EVENTS, -1)) == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++)
			if (ev[i].data.ptr == NULL)
				sink_accept(ep, lfd);
			else
				sink_event(ep, ev[i].data.ptr, ev[i].events,
				    buf);
	}
	return NULL;
}

/*
 * Sink: one listening socket and event loop per thread; prints "ready"
 * once every socket listens, then serves until killed.
 */
static void
sink_run(void)
{
	pthread_t th;
	int i, *lfds;

	if ((lfds = calloc(opt.threads, sizeof(*lfds))) == NULL)
		die("calloc");
	for (i = 0; i < opt.threads; i++)
		lfds[i] = sink_listen();
	for (i = 1; i < opt.threads; i++)
		if ((errno = pthread_create(&th, NULL, sink_main,
		    (void *)(intptr_t)lfds[i])) != 0)
			die("pthread_create");
	printf("ready port=%d threads=%d\n", opt.port, opt.threads);
	fflush(stdout);
	sink_main((void *)(intptr_t)lfds[0]);
}

static void
lat_add(struct cthread *t, uint64_t us)
{
	uint32_t *p;
	size_t n;

	if (t->nlat == t->lat_size) {
		n = t->lat_size ? t->lat_size * 2 : 4096;
		if ((p = realloc(t->lat, n * sizeof(*p))) == NULL)
			die("realloc");
		t->lat = p;
		t->lat_size = n;
	}
	t->lat[t->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void
slot_release(struct cthread *t, struct cconn *c)
{
	close(c->fd);
	c->fd = -1;
	c->state = CS_FREE;
	c->next_free = t->free_head;
	t->free_head = (int)(c - t->slots);
	t->inflight--;
}

static void
client_fail(struct cthread *t, struct cconn *c)
{
	t->errors++;
	slot_release(t, c);
}

/* A connection got all it waited for. */
static void
client_done(struct cthread *t, struct cconn *c)
{
	uint64_t now = ns_now();

	t->done++;
	t->last_ns = now;
	if (opt.mode == M_CONN)
		lat_add(t, (c->first_ns - c->start_ns) / 1000);
	if (opt.mode == M_IDLE) {
		c->state = CS_HELD;
		t->inflight--;
		return;
	}
	slot_release(t, c);
}

static void
client_start(struct cthread *t)
{
	struct sockaddr_in sin;
	struct cconn *c;
	int i = t->free_head;

	c = &t->slots[i];
	t->free_head = c->next_free;
	t->inflight++;
	t->started++;
	c->got = 0;
	c->start_ns = ns_now();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd == -1) {
		t->errors++;
		c->state = CS_FREE;
		c->next_free = t->free_head;
		t->free_head = i;
		t->inflight--;
		return;
	}
	addr_init(&sin);
	c->state = CS_CONNECT;
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS) {
		client_fail(t, c);
		return;
	}
	ep_add(t->ep, c->fd, EPOLLIN | EPOLLOUT | EPOLLET, c);
}

static void
client_read(struct cthread *t, struct cconn *c)
{
	ssize_t n;

	for (;;) {
		n = read(c->fd, t->buf, IO_SIZE);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			client_fail(t, c);
			return;
		}
		if (c->got == 0)
			c->first_ns = ns_now();
		c->got += (uint64_t)n;
		t->bytes += (uint64_t)n;
		if (c->got >= want_len) {
			client_done(t, c);
			return;
		}
	}
}

static void
client_event(struct cthread *t, struct cconn *c, uint32_t events)
{
	ssize_t n;

	if (c->state == CS_HELD) {
		/* A held connection that ends early counts as a failure. */
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			t->done--;
			t->inflight++;
			client_fail(t, c);
		}
		return;
	}
	if (c->state == CS_CONNECT) {
		if (events & EPOLLERR) {
			client_fail(t, c);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		n = send(c->fd, msg, msg_len, MSG_NOSIGNAL);
		if (n != (ssize_t)msg_len) {
			client_fail(t, c);
			return;
		}
		c->state = CS_WAIT;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(t, c);
}

static int
client_more(struct cthread *t, uint64_t now)
{
	return t->started < t->target && now < stop_ns;
}

static void *
client_main(void *arg)
{
	struct cthread *t = arg;
	struct epoll_event ev[MAX_EVENTS];
	uint64_t now;
	int n, i;

	for (;;) {
		now = ns_now();
		while (t->inflight < t->conc && client_more(t, now) &&
		    t->free_head != -1)
			client_start(t);
		if (t->inflight == 0 && !client_more(t, now))
			break;
		if (now >= hard_ns)
			break;
		if ((n = epoll_wait(t->ep, ev, MAX_EVENTS, 50)) == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++)
			client_event(t, ev[i].data.ptr, ev[i].events);
	}
	return NULL;
}

static void
cthread_init(struct cthread *t, int nslots, int conc, uint64_t target)
{
	int i;

	memset(t, 0, sizeof(*t));
	if ((t->ep = epoll_create1(0)) == -1)
		die("epoll_create1");
	if ((t->slots = calloc(nslots, sizeof(*t->slots))) == NULL ||
	    (t->buf = malloc(IO_SIZE)) == NULL)
		die("calloc");
	for (i = 0; i < nslots; i++) {
		t->slots[i].fd = -1;
		t->slots[i].next_free = i + 1 < nslots ? i + 1 : -1;
	}
	t->nslots = nslots;
	t->conc = conc;
	t->target = target;
}

static void
cthread_free(struct cthread *t)
{
	int i;

	for (i = 0; i < t->nslots; i++)
		if (t->slots[i].fd != -1)
			close(t->slots[i].fd);
	close(t->ep);
	free(t->slots);
	free(t->buf);
	free(t->lat);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* Merge the threads' results and print one key=value line. */
static void
client_report(struct cthread *ts, int nt)
{
	uint64_t done = 0, errors = 0, bytes = 0, last = t0_ns;
	size_t nlat = 0, k = 0;
	uint32_t *all;
	double secs;
	int i;

	for (i = 0; i < nt; i++) {
		done += ts[i].done;
		errors += ts[i].errors;
		bytes += ts[i].bytes;
		nlat += ts[i].nlat;
		if (ts[i].last_ns > last)
			last = ts[i].last_ns;
	}
	if ((all = malloc((nlat ? nlat : 1) * sizeof(*all))) == NULL)
		die("malloc");
	for (i = 0; i < nt; i++) {
		if (ts[i].nlat > 0)
			memcpy(all + k, ts[i].lat, ts[i].nlat * sizeof(*all));
		k += ts[i].nlat;
	}
	qsort(all, nlat, sizeof(*all), cmp_u32);
	secs = (double)(last - t0_ns) / 1e9;
	printf("done=%llu errors=%llu secs=%.4f rate=%.1f bytes=%llu "
	    "mbps=%.1f p50_us=%u p90_us=%u p99_us=%u max_us=%u\n",
	    (unsigned long long)done, (unsigned long long)errors, secs,
	    secs > 0 ? (double)done / secs : 0.0, (unsigned long long)bytes,
	    secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
	    pct(all, nlat, 0.50), pct(all, nlat, 0.90), pct(all, nlat, 0.99),
	    nlat ? all[nlat - 1] : 0);
	fflush(stdout);
	free(all);
}

/* Clients: new connections, or bulk streams; report when done. */
static void
client_run(void)
{
	struct cthread *ts;
	uint64_t per;
	int i, nt = opt.threads, conc;

	if (opt.mode == M_BULK) {
		opt.conc = (int)opt.count;
		nt = 1;
	}
	if ((ts = calloc(nt, sizeof(*ts))) == NULL)
		die("calloc");
	for (i = 0; i < nt; i++) {
		per = opt.count / nt + ((uint64_t)i < opt.count % nt);
		conc = opt.conc / nt + (i < opt.conc % nt);
		cthread_init(&ts[i], conc > 0 ? conc : 1, conc > 0 ? conc : 1,
		    per);
	}
	t0_ns = ns_now();
	stop_ns = t0_ns + (uint64_t)(opt.secs * 1e9);
	hard_ns = stop_ns + GRACE_NS;
	for (i = 0; i < nt; i++)
		if ((errno = pthread_create(&ts[i].th, NULL, client_main,
		    &ts[i])) != 0)
			die("pthread_create");
	for (i = 0; i < nt; i++)
		pthread_join(ts[i].th, NULL);
	client_report(ts, nt);
	for (i = 0; i < nt; i++)
		cthread_free(&ts[i]);
	free(ts);
}

/* Wait for a line (or the end) on stdin, at most <secs> seconds. */
static void
stdin_wait(double secs)
{
	struct pollfd pfd = { 0, POLLIN, 0 };
	char line[64];

	if (poll(&pfd, 1, (int)(secs * 1000)) > 0)
		(void)read(0, line, sizeof(line));
}

/* Idle: open and hold <count> relayed connections until told to stop. */
static void
idle_run(void)
{
	struct cthread t;
	uint64_t k = opt.count;

	cthread_init(&t, (int)k, opt.conc > 0 ? opt.conc : 128, k);
	t0_ns = ns_now();
	stop_ns = t0_ns + (uint64_t)(opt.secs * 1e9);
	hard_ns = stop_ns + GRACE_NS;
	client_main(&t);
	printf("ready held=%llu errors=%llu secs=%.3f\n",
	    (unsigned long long)t.done, (unsigned long long)t.errors,
	    (double)(ns_now() - t0_ns) / 1e9);
	fflush(stdout);
	stdin_wait(600);
	cthread_free(&t);
	printf("closed\n");
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen sink -p PORT [-t THREADS]\n"
	    "       loadgen conn -p PORT -H HELLO.bin [-N NAME] [-c CONC]"
	    " [-n COUNT]\n"
	    "               [-d SECS] [-b REPLY_BYTES] [-t THREADS]\n"
	    "       loadgen bulk -p PORT -H HELLO.bin [-N NAME] -n STREAMS"
	    " -b BYTES [-d SECS]\n"
	    "       loadgen idle -p PORT -H HELLO.bin [-N NAME] -n CONNS"
	    " [-c CONC] [-d SECS]\n");
	exit(2);
}

static void
opts_parse(int argc, char **argv)
{
	int ch;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "sink") == 0)
		opt.mode = M_SINK;
	else if (strcmp(argv[1], "conn") == 0)
		opt.mode = M_CONN;
	else if (strcmp(argv[1], "bulk") == 0)
		opt.mode = M_BULK;
	else if (strcmp(argv[1], "idle") == 0)
		opt.mode = M_IDLE;
	else
		usage();
	opt.threads = 1;
	opt.conc = 16;
	opt.count = 1000;
	opt.secs = 10;
	opt.bytes = 100;
	optind = 2;
	while ((ch = getopt(argc, argv, "b:c:d:H:n:N:p:t:")) != -1) {
		switch (ch) {
		case 'b':
			opt.bytes = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			opt.conc = atoi(optarg);
			break;
		case 'd':
			opt.secs = atof(optarg);
			break;
		case 'H':
			opt.hello_path = optarg;
			break;
		case 'n':
			opt.count = strtoull(optarg, NULL, 10);
			break;
		case 'N':
			opt.name = optarg;
			break;
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 't':
			opt.threads = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (opt.port <= 0 || opt.threads < 1 ||
	    (opt.mode != M_SINK && opt.hello_path == NULL))
		usage();
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	opts_parse(argc, argv);
	switch (opt.mode) {
	case M_SINK:
		sink_run();
		break;
	case M_CONN:
		msg_build(OP_REPLY, opt.bytes);
		want_len = opt.bytes;
		client_run();
		break;
	case M_BULK:
		msg_build(OP_STREAM, opt.bytes);
		want_len = opt.bytes;
		client_run();
		break;
	case M_IDLE:
		msg_build(OP_IDLE, 1);
		want_len = 1;
		idle_run();
		break;
	}
	free(msg);
	return 0;
}
