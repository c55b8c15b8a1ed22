/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Configuration reader: one directive a line, errors as FILE:LINE: message.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

#define CONFIG_MAXWORDS	256

/* The settings that take one value: giving one twice is an error. */
enum once {
	ONCE_HELLO_MS, ONCE_CONNECT_MS, ONCE_IDLE_MS, ONCE_DRAIN_MS,
	ONCE_HELLO_MAX, ONCE_WORKERS, ONCE_RELAY, ONCE_MAX_CONNS,
	ONCE_NO_SNI, ONCE_UNKNOWN_SNI, ONCE_N
};

struct parse {
	struct config	*cf;
	const char	*file;
	int		 line;
	int		 nerrors;
	int		 default_line;
	int		 once[ONCE_N];	/* line of each setting, or 0 */
	size_t		 routes_size;
	size_t		 listens_size;
};

static void config_error(struct parse *, const char *, ...)
    SNIMUX_PRINTF(2, 3);

static void
config_error(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	/* Errors about the whole file (an empty one) go on its first line. */
	fprintf(stderr, "%s:%d: ", p->file, p->line > 0 ? p->line : 1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	p->nerrors++;
}

/*
 * Note that setting <which> (written <name>) is given on this line.
 * Returns -1, with an error, when an earlier line gave it already.
 */
static int
config_once(struct parse *p, enum once which, const char *name)
{
	if (p->once[which] != 0) {
		config_error(p, "duplicate '%s' (first on line %d)", name,
		    p->once[which]);
		return -1;
	}
	p->once[which] = p->line;
	return 0;
}

/*
 * Read "IPV4:PORT", "[IPV6]:PORT" or, when <allow_any> is set,
 * "*:PORT" (every address of both families: *any is set and the address
 * is the IPv6 wildcard).  Returns 0, or -1 when <s> is not such an
 * address.
 */
int
config_parse_addr(const char *s, int allow_any, struct sockaddr_storage *ss,
    socklen_t *len, int *any)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h, *end;
	unsigned long port;
	char *ep;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	*any = 0;
	if ((colon = strrchr(s, ':')) == NULL || colon == s)
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &ep, 10);
	if (colon[1] == '\0' || *ep != '\0' || errno != 0 || port == 0 ||
	    port > 65535 || !isdigit((unsigned char)colon[1]))
		return -1;
	h = s;
	end = colon;
	if (*s == '[') {
		if (end[-1] != ']')
			return -1;
		h++;
		end--;
	}
	hl = (size_t)(end - h);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (allow_any && *s != '[' && strcmp(host, "*") == 0) {
		*any = 1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	if (*s == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	return -1;
}

/* Write "IP:PORT" (IPv6 in brackets) for <sa> into <out>. */
void
addr_format(const struct sockaddr *sa, char *out, size_t size)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		/* An IPv4 client of a "*" listener: show it as IPv4. */
		inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host,
		    sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else
		snprintf(out, size, "-");
}

static int
backend_push(struct route *r, const struct sockaddr *sa, socklen_t len)
{
	struct backend *b;

	b = realloc(r->backends, (r->nbackends + 1) * sizeof(*b));
	if (b == NULL)
		return -1;
	r->backends = b;
	b = &b[r->nbackends++];
	memset(b, 0, sizeof(*b));
	memcpy(&b->addr, sa, len);
	b->addr_len = len;
	addr_format(sa, b->text, sizeof(b->text));
	return 0;
}

/* A port number, 1 to 65535, in decimal; -1 if <s> is not one. */
static int
port_parse(const char *s)
{
	unsigned long port;
	char *ep;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	port = strtoul(s, &ep, 10);
	if (*ep != '\0' || errno != 0 || port == 0 || port > 65535)
		return -1;
	return (int)port;
}

/* Resolve "HOSTNAME:PORT"; every address found becomes one backend. */
static int
backend_resolve(struct parse *p, struct route *r, const char *s)
{
	struct addrinfo hints, *res, *ai;
	char host[256];
	const char *colon = strrchr(s, ':');
	int rc;

	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host)
	    || colon[1] == '\0') {
		config_error(p, "invalid backend '%s': want ADDRESS:PORT", s);
		return -1;
	}
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		config_error(p, "cannot resolve backend '%s': %s", s,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (backend_push(r, ai->ai_addr, ai->ai_addrlen) == -1) {
			freeaddrinfo(res);
			config_error(p, "out of memory");
			return -1;
		}
	freeaddrinfo(res);
	return 0;
}

static int
backends_parse(struct parse *p, struct route *r, char **w, int n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int any, i;

	if (n == 0) {
		config_error(p, "missing backend address");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (config_parse_addr(w[i], 0, &ss, &len, &any) == 0) {
			if (backend_push(r, (struct sockaddr *)&ss, len) ==
			    -1) {
				config_error(p, "out of memory");
				return -1;
			}
		} else if (w[i][0] == '[' || strchr(w[i], ':') == NULL ||
		    port_parse(strrchr(w[i], ':') + 1) == -1 ||
		    strspn(w[i], "0123456789.:") == strlen(w[i])) {
			config_error(p, "invalid backend '%s': want IPV4:PORT, "
			    "[IPV6]:PORT or HOSTNAME:PORT", w[i]);
			return -1;
		} else if (backend_resolve(p, r, w[i]) == -1)
			return -1;
	}
	return 0;
}

static void
route_clear(struct route *r)
{
	free(r->pattern);
	free(r->backends);
	r->pattern = NULL;
	r->backends = NULL;
	r->nbackends = 0;
	if (r->stats != NULL)
		stats_unref(r->stats);
	r->stats = NULL;
}

static void
do_route(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;
	struct route *r;
	const char *why;

	if (n < 1) {
		config_error(p, "usage: route PATTERN BACKEND...");
		return;
	}
	if (table_pattern_check(w[0], &why) == -1) {
		config_error(p, "invalid pattern '%s': %s", w[0], why);
		return;
	}
	if (cf->nroutes == p->routes_size) {
		size_t sz = p->routes_size ? p->routes_size * 2 : 16;

		r = realloc(cf->routes, sz * sizeof(*r));
		if (r == NULL) {
			config_error(p, "out of memory");
			return;
		}
		cf->routes = r;
		p->routes_size = sz;
	}
	r = &cf->routes[cf->nroutes];
	memset(r, 0, sizeof(*r));
	r->line = p->line;
	if ((r->pattern = strdup(w[0])) == NULL) {
		config_error(p, "out of memory");
		return;
	}
	if (backends_parse(p, r, w + 1, n - 1) == -1) {
		route_clear(r);
		return;
	}
	cf->nroutes++;
}

static void
do_default(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;

	if (p->default_line != 0) {
		config_error(p, "duplicate 'default' (first on line %d)",
		    p->default_line);
		return;
	}
	if (backends_parse(p, &cf->nosni, w, n) == -1)
		return;
	p->default_line = p->line;
}

static void
do_nottls(struct parse *p, char **w, int n)
{
	if (p->cf->nottls.nbackends > 0) {
		config_error(p, "duplicate 'not-tls'");
		return;
	}
	backends_parse(p, &p->cf->nottls, w, n);
}

static unsigned
addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void
do_listen(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;
	struct listen_conf *l;
	size_t i;

	if (n != 1) {
		config_error(p, "usage: listen ADDRESS");
		return;
	}
	if (cf->nlistens == p->listens_size) {
		size_t sz = p->listens_size ? p->listens_size * 2 : 4;

		if ((l = realloc(cf->listens, sz * sizeof(*l))) == NULL) {
			config_error(p, "out of memory");
			return;
		}
		cf->listens = l;
		p->listens_size = sz;
	}
	l = &cf->listens[cf->nlistens];
	memset(l, 0, sizeof(*l));
	if (config_parse_addr(w[0], 1, &l->addr, &l->addr_len, &l->any) ==
	    -1) {
		config_error(p, "invalid listen address '%s': want "
		    "IPV4:PORT, [IPV6]:PORT or *:PORT", w[0]);
		return;
	}
	for (i = 0; i < cf->nlistens; i++) {
		if (cf->listens[i].addr_len == l->addr_len &&
		    memcmp(&cf->listens[i].addr, &l->addr, l->addr_len) == 0) {
			config_error(p, "duplicate listen address '%s'", w[0]);
			return;
		}
		if ((l->any || cf->listens[i].any) &&
		    addr_port(&l->addr) == addr_port(&cf->listens[i].addr)) {
			config_error(p, "listen address '%s' overlaps '%s': "
			    "'*' already means every address", w[0],
			    cf->listens[i].text);
			return;
		}
	}
	if ((l->text = strdup(w[0])) == NULL) {
		config_error(p, "out of memory");
		return;
	}
	cf->nlistens++;
}

/* Read a duration with its unit: 500ms, 5s, 10m, 1h.  -1 if invalid. */
static int
duration_parse(const char *s, uint64_t *ms)
{
	unsigned long long v;
	char *ep;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &ep, 10);
	if (errno != 0 || v > 1000ULL * 1000 * 1000)
		return -1;
	if (strcmp(ep, "ms") == 0)
		*ms = v;
	else if (strcmp(ep, "s") == 0)
		*ms = v * 1000;
	else if (strcmp(ep, "m") == 0)
		*ms = v * 60 * 1000;
	else if (strcmp(ep, "h") == 0)
		*ms = v * 60 * 60 * 1000;
	else
		return -1;
	return *ms == 0 ? -1 : 0;
}

static void
do_timeout(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;
	uint64_t ms, *dst;
	enum once which;
	char name[16];

	if (n != 2) {
		config_error(p, "usage: timeout hello|connect|idle|drain "
		    "DURATION");
		return;
	}
	if (strcmp(w[0], "hello") == 0) {
		dst = &cf->hello_ms;
		which = ONCE_HELLO_MS;
	} else if (strcmp(w[0], "connect") == 0) {
		dst = &cf->connect_ms;
		which = ONCE_CONNECT_MS;
	} else if (strcmp(w[0], "idle") == 0) {
		dst = &cf->idle_ms;
		which = ONCE_IDLE_MS;
	} else if (strcmp(w[0], "drain") == 0) {
		dst = &cf->drain_ms;
		which = ONCE_DRAIN_MS;
	} else {
		config_error(p, "unknown timeout '%s': want hello, connect, "
		    "idle or drain", w[0]);
		return;
	}
	if (duration_parse(w[1], &ms) == -1) {
		config_error(p, "invalid duration '%s': want a number with "
		    "a unit (ms, s, m, h), such as 5s", w[1]);
		return;
	}
	snprintf(name, sizeof(name), "timeout %s", w[0]);
	if (config_once(p, which, name) == 0)
		*dst = ms;
}

static void
do_hello_max(struct parse *p, char **w, int n)
{
	unsigned long long v;
	char *ep;

	if (n != 1) {
		config_error(p, "usage: hello-max-size BYTES");
		return;
	}
	errno = 0;
	v = strtoull(w[0], &ep, 10);
	if (errno == 0 && isdigit((unsigned char)w[0][0]) &&
	    (strcmp(ep, "k") == 0 || strcmp(ep, "K") == 0)) {
		v = v > HELLO_MAX_LIMIT / 1024 ? HELLO_MAX_LIMIT + 1 : v * 1024;
		ep++;
	}
	if (errno != 0 || !isdigit((unsigned char)w[0][0]) || *ep != '\0' ||
	    v < 1024 || v > HELLO_MAX_LIMIT) {
		config_error(p, "invalid size '%s': want 1k to %dk",
		    w[0], HELLO_MAX_LIMIT / 1024);
		return;
	}
	if (config_once(p, ONCE_HELLO_MAX, "hello-max-size") == 0)
		p->cf->hello_max = (size_t)v;
}

static void
do_policy(struct parse *p, const char *name, enum once which, char **w,
    int n, int *dst)
{
	int v;

	if (n == 1 && strcmp(w[0], "default") == 0)
		v = 0;
	else if (n == 1 && strcmp(w[0], "refuse") == 0)
		v = 1;
	else {
		config_error(p, "usage: %s default|refuse", name);
		return;
	}
	if (config_once(p, which, name) == 0)
		*dst = v;
}

/* Read a whole number from <lo> to <hi>; -1 if it is not one. */
static int
number_parse(const char *s, unsigned long long lo, unsigned long long hi,
    unsigned long long *v)
{
	char *ep;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &ep, 10);
	if (errno != 0 || *ep != '\0' || *v < lo || *v > hi)
		return -1;
	return 0;
}

static void
do_workers(struct parse *p, char **w, int n)
{
	unsigned long long v;

	if (n == 1 && strcmp(w[0], "auto") == 0)
		v = 0;
	else if (n != 1 || number_parse(w[0], 1, 64, &v) == -1) {
		config_error(p, "usage: workers auto|1..64");
		return;
	}
	if (config_once(p, ONCE_WORKERS, "workers") == 0)
		p->cf->workers = (int)v;
}

static void
do_relay(struct parse *p, char **w, int n)
{
	int relay;

	if (n == 1 && strcmp(w[0], "splice") == 0)
		relay = RELAY_SPLICE;
	else if (n == 1 && strcmp(w[0], "copy") == 0)
		relay = RELAY_COPY;
	else {
		config_error(p, "usage: relay splice|copy");
		return;
	}
	if (config_once(p, ONCE_RELAY, "relay") == 0)
		p->cf->relay = relay;
}

static void
do_max_conns(struct parse *p, char **w, int n)
{
	unsigned long long v;

	if (n == 1 && strcmp(w[0], "auto") == 0)
		v = 0;
	else if (n != 1 || number_parse(w[0], 1, 100000000, &v) == -1) {
		config_error(p, "usage: max-connections auto|NUMBER");
		return;
	}
	if (config_once(p, ONCE_MAX_CONNS, "max-connections") == 0)
		p->cf->max_conns = v;
}

static int
user_lookup(struct parse *p, const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if ((pw = getpwnam(name)) == NULL) {
		config_error(p, "unknown user '%s'", name);
		return -1;
	}
	*uid = pw->pw_uid;
	if (gid != NULL)
		*gid = pw->pw_gid;
	return 0;
}

static int
group_lookup(struct parse *p, const char *name, gid_t *gid)
{
	struct group *gr;

	if ((gr = getgrnam(name)) == NULL) {
		config_error(p, "unknown group '%s'", name);
		return -1;
	}
	*gid = gr->gr_gid;
	return 0;
}

/* stats PATH [mode OCTAL] [owner USER] [group GROUP] */
static void
do_stats(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;
	unsigned long mode;
	char *ep;
	int i;

	if (n < 1 || n % 2 == 0) {
		config_error(p, "usage: stats PATH [mode OCTAL] [owner USER] "
		    "[group GROUP]");
		return;
	}
	if (cf->stats_path != NULL) {
		config_error(p, "duplicate 'stats'");
		return;
	}
	if (strlen(w[0]) >= 100) {
		config_error(p, "stats path too long (at most 99 bytes)");
		return;
	}
	for (i = 1; i < n; i += 2) {
		if (strcmp(w[i], "mode") == 0) {
			errno = 0;
			mode = strtoul(w[i + 1], &ep, 8);
			if (errno != 0 || *ep != '\0' || mode > 0777 ||
			    !isdigit((unsigned char)w[i + 1][0])) {
				config_error(p, "invalid mode '%s': want an "
				    "octal number such as 0660", w[i + 1]);
				return;
			}
			cf->stats_mode = (int)mode;
		} else if (strcmp(w[i], "owner") == 0) {
			if (user_lookup(p, w[i + 1], &cf->stats_uid, NULL) ==
			    -1)
				return;
		} else if (strcmp(w[i], "group") == 0) {
			if (group_lookup(p, w[i + 1], &cf->stats_gid) == -1)
				return;
		} else {
			config_error(p, "unknown stats option '%s': want "
			    "mode, owner or group", w[i]);
			return;
		}
	}
	if ((cf->stats_path = strdup(w[0])) == NULL)
		config_error(p, "out of memory");
}

static void
do_user(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;
	gid_t gid;

	if (n != 1) {
		config_error(p, "usage: user NAME");
		return;
	}
	if (cf->user != NULL) {
		config_error(p, "duplicate 'user'");
		return;
	}
	if (user_lookup(p, w[0], &cf->uid, &gid) == -1)
		return;
	if (!cf->has_group)
		cf->gid = gid;
	if ((cf->user = strdup(w[0])) == NULL)
		config_error(p, "out of memory");
}

static void
do_group(struct parse *p, char **w, int n)
{
	struct config *cf = p->cf;

	if (n != 1) {
		config_error(p, "usage: group NAME");
		return;
	}
	if (cf->has_group) {
		config_error(p, "duplicate 'group'");
		return;
	}
	if (group_lookup(p, w[0], &cf->gid) == 0)
		cf->has_group = 1;
}

static void
config_line(struct parse *p, char *s)
{
	char *w[CONFIG_MAXWORDS];
	char *hash;
	int n = 0;

	if ((hash = strchr(s, '#')) != NULL)
		*hash = '\0';
	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			*s++ = '\0';
		if (*s == '\0')
			break;
		if (n == CONFIG_MAXWORDS) {
			config_error(p, "too many words on one line");
			return;
		}
		w[n++] = s;
		while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\r')
			s++;
	}
	if (n == 0)
		return;
	if (strcmp(w[0], "listen") == 0)
		do_listen(p, w + 1, n - 1);
	else if (strcmp(w[0], "route") == 0)
		do_route(p, w + 1, n - 1);
	else if (strcmp(w[0], "default") == 0)
		do_default(p, w + 1, n - 1);
	else if (strcmp(w[0], "stats") == 0)
		do_stats(p, w + 1, n - 1);
	else if (strcmp(w[0], "timeout") == 0)
		do_timeout(p, w + 1, n - 1);
	else if (strcmp(w[0], "hello-max-size") == 0)
		do_hello_max(p, w + 1, n - 1);
	else if (strcmp(w[0], "not-tls") == 0)
		do_nottls(p, w + 1, n - 1);
	else if (strcmp(w[0], "user") == 0)
		do_user(p, w + 1, n - 1);
	else if (strcmp(w[0], "group") == 0)
		do_group(p, w + 1, n - 1);
	else if (strcmp(w[0], "workers") == 0)
		do_workers(p, w + 1, n - 1);
	else if (strcmp(w[0], "relay") == 0)
		do_relay(p, w + 1, n - 1);
	else if (strcmp(w[0], "max-connections") == 0)
		do_max_conns(p, w + 1, n - 1);
	else if (strcmp(w[0], "no-sni") == 0)
		do_policy(p, w[0], ONCE_NO_SNI, w + 1, n - 1,
		    &p->cf->nosni.refuse);
	else if (strcmp(w[0], "unknown-sni") == 0)
		do_policy(p, w[0], ONCE_UNKNOWN_SNI, w + 1, n - 1,
		    &p->cf->unknown.refuse);
	else
		config_error(p, "unknown directive '%s'", w[0]);
}

/* Put every route in the table; a pattern given twice is an error. */
static void
config_index(struct parse *p)
{
	struct config *cf = p->cf;
	size_t i;

	if ((cf->table = table_new()) == NULL) {
		config_error(p, "out of memory");
		return;
	}
	for (i = 0; i < cf->nroutes; i++) {
		if (table_add(cf->table, cf->routes[i].pattern,
		    &cf->routes[i]) == 0)
			continue;
		p->line = cf->routes[i].line;
		if (errno == EEXIST)
			config_error(p, "duplicate route '%s'",
			    cf->routes[i].pattern);
		else
			config_error(p, "cannot add route '%s': %s",
			    cf->routes[i].pattern, strerror(errno));
	}
}

/* Counter cells per row; fixed once the workers have started. */
unsigned config_ncells;

static struct stats *
stats_new(size_t ncells)
{
	struct stats *st;
	size_t size;

	size = offsetof(struct stats, cell) + ncells * sizeof(st->cell[0]);
	size = (size + 63) / 64 * 64;
	if ((st = aligned_alloc(64, size)) == NULL)
		return NULL;
	memset(st, 0, size);
	atomic_init(&st->refs, 1);
	return st;
}

/* Number of workers that "workers auto" stands for: one per CPU. */
unsigned
config_workers(const struct config *cf)
{
	long n;

	if (cf->workers > 0)
		return (unsigned)cf->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

static int
config_rows(struct config *cf)
{
	size_t i;

	cf->ncells = config_ncells ? config_ncells : config_workers(cf);
	cf->nosni.pattern = strdup("(no-sni)");
	cf->unknown.pattern = strdup("(unknown)");
	if (cf->nosni.pattern == NULL || cf->unknown.pattern == NULL)
		return -1;
	if (cf->nosni.nbackends > 0) {
		cf->unknown.backends = calloc(cf->nosni.nbackends,
		    sizeof(struct backend));
		if (cf->unknown.backends == NULL)
			return -1;
		memcpy(cf->unknown.backends, cf->nosni.backends,
		    cf->nosni.nbackends * sizeof(struct backend));
		cf->unknown.nbackends = cf->nosni.nbackends;
	}
	if ((cf->nosni.stats = stats_new(cf->ncells)) == NULL ||
	    (cf->unknown.stats = stats_new(cf->ncells)) == NULL)
		return -1;
	if (cf->nottls.nbackends > 0 &&
	    ((cf->nottls.pattern = strdup("(not-tls)")) == NULL ||
	    (cf->nottls.stats = stats_new(cf->ncells)) == NULL))
		return -1;
	for (i = 0; i < cf->nroutes; i++)
		if ((cf->routes[i].stats = stats_new(cf->ncells)) == NULL)
			return -1;
	return 0;
}

static struct config *
config_new(const char *path)
{
	struct config *cf;

	if ((cf = calloc(1, sizeof(*cf))) == NULL)
		return NULL;
	atomic_init(&cf->refs, 1);
	cf->hello_ms = DEFAULT_HELLO_MS;
	cf->connect_ms = DEFAULT_CONNECT_MS;
	cf->idle_ms = DEFAULT_IDLE_MS;
	cf->drain_ms = DEFAULT_DRAIN_MS;
	cf->hello_max = DEFAULT_HELLO_MAX;
	cf->stats_mode = 0660;
	cf->stats_uid = (uid_t)-1;
	cf->stats_gid = (gid_t)-1;
	if ((cf->path = strdup(path)) == NULL) {
		free(cf);
		return NULL;
	}
	return cf;
}

/*
 * Read the configuration file <path>.  Every error is printed on stderr
 * as "FILE:LINE: message" and counted in *nerrors.  Returns the new
 * configuration with one reference, or NULL when there was any error.
 */
struct config *
config_load(const char *path, int *nerrors)
{
	struct config *cf;

	if ((cf = config_read(path, nerrors)) != NULL && *nerrors > 0) {
		config_unref(cf);
		return NULL;
	}
	return cf;
}

/*
 * Like config_load(), but a file with errors still gives what its good
 * lines say (for "snimux COMMAND", which only needs the "stats" line).
 * NULL only when the file cannot be read at all.
 */
struct config *
config_read(const char *path, int *nerrors)
{
	struct parse p;
	FILE *f;
	char *buf = NULL;
	size_t size = 0;
	ssize_t n;

	memset(&p, 0, sizeof(p));
	p.file = path;
	if ((p.cf = config_new(path)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", path);
		*nerrors = 1;
		return NULL;
	}
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		config_unref(p.cf);
		*nerrors = 1;
		return NULL;
	}
	while ((n = getline(&buf, &size, f)) != -1) {
		p.line++;
		if (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (strlen(buf) != (size_t)n)
			config_error(&p, "NUL byte in line");
		else
			config_line(&p, buf);
	}
	free(buf);
	if (ferror(f))
		config_error(&p, "read error: %s", strerror(errno));
	fclose(f);
	if (p.cf->nlistens == 0)
		config_error(&p, "no 'listen' line: nothing to serve");
	config_index(&p);
	if (p.nerrors == 0 && config_rows(p.cf) == -1)
		config_error(&p, "out of memory");
	*nerrors = p.nerrors;
	return p.cf;
}

/* Take one more reference on <cf>. */
void
config_ref(struct config *cf)
{
	atomic_fetch_add_explicit(&cf->refs, 1, memory_order_relaxed);
}

/* Drop one reference on <cf>; the last one frees it. */
void
config_unref(struct config *cf)
{
	size_t i;

	if (cf == NULL || atomic_fetch_sub_explicit(&cf->refs, 1,
	    memory_order_acq_rel) > 1)
		return;
	for (i = 0; i < cf->nroutes; i++)
		route_clear(&cf->routes[i]);
	route_clear(&cf->nosni);
	route_clear(&cf->unknown);
	route_clear(&cf->nottls);
	free(cf->user);
	free(cf->routes);
	for (i = 0; i < cf->nlistens; i++)
		free(cf->listens[i].text);
	free(cf->listens);
	table_free(cf->table);
	free(cf->stats_path);
	free(cf->path);
	free(cf);
}

/* Drop one reference on a counters row; the last one frees it. */
void
stats_unref(struct stats *st)
{
	if (st != NULL && atomic_fetch_sub_explicit(&st->refs, 1,
	    memory_order_acq_rel) == 1)
		free(st);
}

static int
route_cmp(const void *a, const void *b)
{
	const struct route *const *ra = a, *const *rb = b;

	return strcmp((*ra)->pattern, (*rb)->pattern);
}

static void
stats_share(struct route *to, const struct route *from)
{
	stats_unref(to->stats);
	to->stats = from->stats;
	atomic_fetch_add_explicit(&to->stats->refs, 1, memory_order_relaxed);
}

/*
 * Give each route of <cf> the counters of the route of <old> with the
 * same pattern, so that counters survive a reload.
 */
void
config_adopt_stats(struct config *cf, const struct config *old)
{
	struct route **a, **b;
	size_t i, j;
	int c;

	stats_share(&cf->nosni, &old->nosni);
	stats_share(&cf->unknown, &old->unknown);
	if (cf->nottls.stats != NULL && old->nottls.stats != NULL)
		stats_share(&cf->nottls, &old->nottls);
	a = calloc(cf->nroutes + 1, sizeof(*a));
	b = calloc(old->nroutes + 1, sizeof(*b));
	if (a == NULL || b == NULL) {
		log_warnx("out of memory: route counters restart at zero");
		free(a);
		free(b);
		return;
	}
	for (i = 0; i < cf->nroutes; i++)
		a[i] = &cf->routes[i];
	for (i = 0; i < old->nroutes; i++)
		b[i] = &old->routes[i];
	qsort(a, cf->nroutes, sizeof(*a), route_cmp);
	qsort(b, old->nroutes, sizeof(*b), route_cmp);
	for (i = j = 0; i < cf->nroutes && j < old->nroutes;) {
		if ((c = strcmp(a[i]->pattern, b[j]->pattern)) == 0)
			stats_share(a[i++], b[j++]);
		else if (c < 0)
			i++;
		else
			j++;
	}
	free(a);
	free(b);
}

/*
 * Sum over the <ncells> cells of row <st> of the counter at byte offset
 * <field> of struct stats_cell.
 */
uint64_t
stats_sum(const struct stats *st, size_t ncells, size_t field)
{
	const _Atomic uint64_t *v;
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < ncells; i++) {
		v = (const _Atomic uint64_t *)(const void *)
		    ((const char *)&st->cell[i] + field);
		sum += CTR_GET(*v);
	}
	return sum;
}

/* Rows of counters: the routes, then (no-sni), (unknown), (not-tls). */
size_t
config_nrows(const struct config *cf)
{
	return cf->nroutes + 2 + (cf->nottls.stats != NULL);
}

/* Row <i> of config_nrows(). */
struct route *
config_row(const struct config *cf, size_t i)
{
	const struct route *r;

	if (i < cf->nroutes)
		r = &cf->routes[i];
	else if (i == cf->nroutes)
		r = &cf->nosni;
	else if (i == cf->nroutes + 1)
		r = &cf->unknown;
	else
		r = &cf->nottls;
	return (struct route *)(uintptr_t)r;
}
