/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Control socket: answers "stats", "metrics" and "help", one command a
 * connection, and the client side of "snimux COMMAND".
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

#define CONTROL_LINE_MAX	256

struct out {
	char	*p;
	size_t	 len;
	size_t	 size;
	int	 failed;
};

#define CONTROL_TIMEOUT_MS	5000
#define CONTROL_CLIENTS_MAX	64

enum ctl_state {
	CTL_READ,		/* reading the command line */
	CTL_WRITE,		/* sending the answer */
	CTL_DRAIN		/* answer sent; reading until the client goes */
};

struct ctl {
	TAILQ_ENTRY(ctl)	 entry;
	int			 fd;
	enum ctl_state		 state;
	uint64_t		 deadline_ms;
	size_t			 in_len;
	char			 in[CONTROL_LINE_MAX];
	struct out		 out;
	size_t			 out_off;
};

static TAILQ_HEAD(, ctl) ctl_list = TAILQ_HEAD_INITIALIZER(ctl_list);
static unsigned		 nctl;
static struct loop	*control_loop;
static int		 control_fd = -1;
static char		*control_path;

static void out_printf(struct out *, const char *, ...) SNIMUX_PRINTF(2, 3);

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	char *p;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p ? o->p + o->len : NULL,
		    o->p ? o->size - o->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if (o->p != NULL && (size_t)n < o->size - o->len) {
			o->len += (size_t)n;
			return;
		}
		need = o->len + (size_t)n + 1;
		if (need < o->size * 2)
			need = o->size * 2;
		if (need < 4096)
			need = 4096;
		if ((p = realloc(o->p, need)) == NULL) {
			o->failed = 1;
			return;
		}
		o->p = p;
		o->size = need;
	}
}

#define ROW(cf, r, f) ((unsigned long long)stats_sum((r)->stats,	\
	(cf)->ncells, offsetof(struct stats_cell, f)))

/* The sum over the workers of the counter at <off> in struct worker. */
static uint64_t
workers_sum(size_t off)
{
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < nworkers; i++)
		sum += CTR_GET(*(_Atomic uint64_t *)((char *)&workers[i] +
		    off));
	return sum;
}

/* Element <i> of the counter array <arr> of struct worker, summed. */
#define WORKERS_SUM(arr, i) ((unsigned long long)workers_sum(		\
	offsetof(struct worker, arr) + (size_t)(i) * sizeof(_Atomic uint64_t)))

static void
stats_row(struct out *o, const struct config *cf, const struct route *r,
    int width)
{
	out_printf(o, "%-*s %8llu %10llu %17llu %17llu %10llu\n", width,
	    r->pattern, ROW(cf, r, active), ROW(cf, r, total),
	    ROW(cf, r, c2b_bytes), ROW(cf, r, b2c_bytes),
	    ROW(cf, r, backend_failures));
}

static void
control_stats(struct out *o, const struct config *cf)
{
	int width = 9, i;
	size_t n;

	for (n = 0; n < cf->nroutes; n++)
		if ((int)strlen(cf->routes[n].pattern) > width)
			width = (int)strlen(cf->routes[n].pattern);
	out_printf(o, "%-*s %8s %10s %17s %17s %10s\n", width, "route",
	    "active", "total", "client_to_backend", "backend_to_client",
	    "failures");
	for (n = 0; n < config_nrows(cf); n++)
		stats_row(o, cf, config_row(cf, n), width);
	out_printf(o, "\nhello failures:");
	for (i = 0; i < FAIL_NREASONS; i++)
		out_printf(o, " %s=%llu", hello_fail_names[i],
		    WORKERS_SUM(hello_failures, i));
	out_printf(o, "\nconnections ended:");
	for (i = 0; i < END_NREASONS; i++)
		out_printf(o, " %s=%llu", conn_end_names[i],
		    WORKERS_SUM(endings, i));
	out_printf(o, "\nconnections open: %llu\n",
	    (unsigned long long)conn_open_total());
}

/* Write <s> as a Prometheus label value: escape \, " and newline. */
static void
metrics_label(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			out_printf(o, "\\%c", *s);
		else if (*s == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *s);
	}
}

static void
metrics_series(struct out *o, const struct config *cf, const char *name,
    const char *extra, size_t field)
{
	const struct route *r;
	size_t n;

	for (n = 0; n < config_nrows(cf); n++) {
		r = config_row(cf, n);
		out_printf(o, "%s{route=\"", name);
		metrics_label(o, r->pattern);
		out_printf(o, "\"%s} %llu\n", extra, (unsigned long long)
		    stats_sum(r->stats, cf->ncells, field));
	}
}

static void
control_metrics(struct out *o, const struct config *cf)
{
	int i;

	out_printf(o, "# HELP snimux_connections_active Connections open "
	    "now, by route.\n# TYPE snimux_connections_active gauge\n");
	metrics_series(o, cf, "snimux_connections_active", "",
	    offsetof(struct stats_cell, active));
	out_printf(o, "# HELP snimux_connections_total Connections "
	    "routed, by route.\n# TYPE snimux_connections_total counter\n");
	metrics_series(o, cf, "snimux_connections_total", "",
	    offsetof(struct stats_cell, total));
	out_printf(o, "# HELP snimux_bytes_total Bytes relayed, the "
	    "forwarded hello included.\n# TYPE snimux_bytes_total counter\n");
	metrics_series(o, cf, "snimux_bytes_total",
	    ",direction=\"client_to_backend\"",
	    offsetof(struct stats_cell, c2b_bytes));
	metrics_series(o, cf, "snimux_bytes_total",
	    ",direction=\"backend_to_client\"",
	    offsetof(struct stats_cell, b2c_bytes));
	out_printf(o, "# HELP snimux_backend_failures_total Backend "
	    "connection attempts that failed.\n"
	    "# TYPE snimux_backend_failures_total counter\n");
	metrics_series(o, cf, "snimux_backend_failures_total", "",
	    offsetof(struct stats_cell, backend_failures));
	out_printf(o, "# HELP snimux_hello_failures_total Connections that "
	    "never reached a backend.\n"
	    "# TYPE snimux_hello_failures_total counter\n");
	for (i = 0; i < FAIL_NREASONS; i++)
		out_printf(o, "snimux_hello_failures_total{reason=\"%s\"} "
		    "%llu\n", hello_fail_names[i],
		    WORKERS_SUM(hello_failures, i));
	out_printf(o, "# HELP snimux_connections_ended_total Connections "
	    "that ended, but for hello failures, by how.\n"
	    "# TYPE snimux_connections_ended_total counter\n");
	for (i = 0; i < END_NREASONS; i++)
		out_printf(o, "snimux_connections_ended_total{end=\"%s\"} "
		    "%llu\n", conn_end_names[i],
		    WORKERS_SUM(endings, i));
	out_printf(o, "# HELP snimux_open_connections Client connections "
	    "open now.\n# TYPE snimux_open_connections gauge\n"
	    "snimux_open_connections %llu\n",
	    (unsigned long long)conn_open_total());
}

static void
control_answer(struct ctl *k, const char *cmd)
{
	if (strcmp(cmd, "stats") == 0)
		control_stats(&k->out, active_config);
	else if (strcmp(cmd, "metrics") == 0)
		control_metrics(&k->out, active_config);
	else if (strcmp(cmd, "help") == 0)
		out_printf(&k->out, "stats    counters by route, for people\n"
		    "metrics  counters in the Prometheus text format\n"
		    "help     this list\n");
	else
		out_printf(&k->out, "error: unknown command '%.64s'; "
		    "try 'help'\n", cmd);
}

static void
ctl_free(struct ctl *k)
{
	loop_close(control_loop, k->fd);
	TAILQ_REMOVE(&ctl_list, k, entry);
	nctl--;
	free(k->out.p);
	free(k);
}

/*
 * Read the command line: it ends at a newline, at the end of the input,
 * or when it is too long to be a command.  Returns 1 once it is complete.
 */
static int
ctl_read_line(struct ctl *k)
{
	ssize_t n;
	char *nl;

	n = read(k->fd, k->in + k->in_len, sizeof(k->in) - 1 - k->in_len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1 || (n == 0 && k->in_len == 0)) {
		ctl_free(k);
		return -1;
	}
	k->in_len += (size_t)n;
	k->in[k->in_len] = '\0';
	if ((nl = strchr(k->in, '\n')) != NULL)
		*nl = '\0';
	else if (n != 0 && k->in_len < sizeof(k->in) - 1)
		return 0;
	k->in[strcspn(k->in, "\r")] = '\0';
	return 1;
}

static void
ctl_event(int fd, int mask, void *arg)
{
	struct ctl *k = arg;
	ssize_t n;
	char buf[256];

	(void)mask;
	switch (k->state) {
	case CTL_READ:
		if (ctl_read_line(k) != 1)
			return;
		control_answer(k, k->in);
		if (k->out.failed || k->out.p == NULL) {
			ctl_free(k);
			return;
		}
		k->state = CTL_WRITE;
		loop_watch(control_loop, fd, LOOP_WRITE, ctl_event, k);
		return;
	case CTL_WRITE:
		n = send(fd, k->out.p + k->out_off, k->out.len - k->out_off,
		    MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			ctl_free(k);
			return;
		}
		k->out_off += (size_t)n;
		if (k->out_off < k->out.len)
			return;
		/* Let the client read it all before the socket goes. */
		shutdown(fd, SHUT_WR);
		k->state = CTL_DRAIN;
		loop_watch(control_loop, fd, LOOP_READ, ctl_event, k);
		return;
	case CTL_DRAIN:
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			ctl_free(k);
		return;
	}
}

static void
control_accept(int fd, int mask, void *arg)
{
	struct ctl *k;
	int cfd;

	(void)mask;
	(void)arg;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd == -1)
		return;
	if (nctl >= CONTROL_CLIENTS_MAX || (k = calloc(1, sizeof(*k))) ==
	    NULL) {
		close(cfd);
		return;
	}
	k->fd = cfd;
	k->state = CTL_READ;
	k->deadline_ms = now_ms() + CONTROL_TIMEOUT_MS;
	TAILQ_INSERT_TAIL(&ctl_list, k, entry);
	nctl++;
	if (loop_watch(control_loop, cfd, LOOP_READ, ctl_event, k) == -1)
		ctl_free(k);
}

/*
 * Close the control clients that have had their time.  Returns the
 * milliseconds until the next one's deadline, or -1 when there is none.
 */
int
control_timers_run(uint64_t now)
{
	struct ctl *k;

	while ((k = TAILQ_FIRST(&ctl_list)) != NULL && k->deadline_ms <= now)
		ctl_free(k);
	if (k == NULL)
		return -1;
	return (int)(k->deadline_ms - now);
}

static int
control_sockaddr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

/*
 * Listen on the control socket <path> with <mode>, owned by <uid> and
 * <gid> ((uid_t)-1 and (gid_t)-1 leave them), replacing a stale socket
 * file that no daemon answers on.  Returns 0, or -1 with errno set
 * (EADDRINUSE when a running daemon answers on it).
 */
int
control_open(struct loop *l, const char *path, int mode, uid_t uid,
    gid_t gid)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, probe;

	control_loop = l;
	if (control_sockaddr(path, &sun) == -1)
		return -1;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe != -1 && connect(probe, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0) {
			close(probe);
			errno = EADDRINUSE;
			return -1;
		}
		if (probe != -1)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (chmod(path, (mode_t)mode) == -1 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) == -1) || listen(fd, 16) == -1 ||
	    loop_watch(l, fd, LOOP_READ, control_accept, NULL) == -1) {
		unlink(path);
		goto fail;
	}
	control_close();
	control_fd = fd;
	control_path = strdup(path);
	return 0;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

/* Stop listening on the control socket and remove its file. */
void
control_close(void)
{
	if (control_fd == -1)
		return;
	loop_unwatch(control_loop, control_fd);
	close(control_fd);
	if (control_path != NULL)
		unlink(control_path);
	free(control_path);
	control_path = NULL;
	control_fd = -1;
}

/* Path of the control socket in use, or NULL. */
const char *
control_current(void)
{
	return control_path;
}

/*
 * Client side: send <cmd> to the daemon listening on <path> and copy its
 * answer to stdout.  Returns 0, or 1 after printing why on stderr.
 */
int
control_client(const char *path, const char *cmd)
{
	struct sockaddr_un sun;
	FILE *out = NULL;
	char buf[8192];
	ssize_t n;
	int fd;

	if (control_sockaddr(path, &sun) == -1 ||
	    (fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		fprintf(stderr, "snimux: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "snimux: cannot reach the daemon at %s: %s "
		    "(is snimux running?)\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	snprintf(buf, sizeof(buf), "%s\n", cmd);
	if (write(fd, buf, strlen(buf)) == -1) {
		fprintf(stderr, "snimux: %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	/* An answer that begins "error: " goes to stderr, with status 1. */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (out == NULL)
			out = n >= 7 && memcmp(buf, "error: ", 7) == 0 ?
			    stderr : stdout;
		if (fwrite(buf, 1, (size_t)n, out) != (size_t)n)
			break;
	}
	close(fd);
	if (n == -1) {
		fprintf(stderr, "snimux: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (out == NULL) {
		/* Busy (too many control clients), or out of memory. */
		fprintf(stderr, "snimux: %s: the daemon closed the connection "
		    "without an answer\n", path);
		return 1;
	}
	if (fflush(out) == EOF || ferror(out))
		return 1;
	return out == stderr ? 1 : 0;
}
