/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * snimux: many TLS servers behind one address, chosen by the server name
 * in the ClientHello.  Start-up, listeners, signals, reload and stop.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

/* Descriptors kept for everything but clients: logs, control, pipes. */
#define FD_RESERVE	64
#define PIPES_PER_WORKER 32

/*
 * One listen address: one socket per worker where the kernel spreads
 * connections over SO_REUSEPORT sockets, else one socket they share.
 */
struct listener {
	struct sockaddr_storage	 addr;
	socklen_t		 addr_len;
	int			 any;
	int			*fds;
	unsigned		 nfds;
	char			*text;
};

struct config		*active_config;

static struct loop	*main_loop;
static struct listener	*listeners;
static size_t		 nlisteners;
static int		 sig_pipe[2] = { -1, -1 };
static int		 stopping;
static uint64_t		 drain_deadline_ms;

/* The usage text: on stdout with status 0 for -h, else an error. */
static void
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: snimux [-dt] [-c file]\n"
	    "       snimux [-c file] stats|metrics|help\n"
	    "       snimux -V | -h\n");
	exit(status);
}

/*
 * A listening socket for <sa>, with SO_REUSEPORT when <reuse> is 1.
 * With <reuse> -1, only check that the address is free: bind, close and
 * return 0.  -1 with errno set on failure.
 */
static int
socket_listen(const struct sockaddr *sa, socklen_t len, int any, int reuse)
{
	int fd, one = 1, zero = 0, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (reuse > 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) == -1)
		goto fail;
	if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, any ? &zero : &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, sa, len) == -1)
		goto fail;
	if (reuse == -1) {
		close(fd);
		return 0;
	}
	/* Clients inherit it where the system allows (compat.h). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (listen(fd, SOMAXCONN) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/*
 * Open the sockets of listener <ls> for <n> workers.  A first bind
 * without SO_REUSEPORT makes sure that no other process serves the
 * address, as SO_REUSEPORT alone would let two daemons share it.
 */
static int
listener_open(struct listener *ls, unsigned n)
{
	struct sockaddr_in sin;
	const struct sockaddr *sa = (const struct sockaddr *)&ls->addr;
	socklen_t len = ls->addr_len;
	unsigned i;

	if (socket_listen(sa, len, ls->any, -1) == -1) {
		if (!ls->any || errno != EAFNOSUPPORT)
			return -1;
		/* No IPv6 here: "*" is every IPv4 address. */
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = ((const struct sockaddr_in6 *)sa)->sin6_port;
		sa = (const struct sockaddr *)&sin;
		len = sizeof(sin);
		if (socket_listen(sa, len, 0, -1) == -1)
			return -1;
	}
	if ((ls->fds = calloc(n, sizeof(int))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		ls->fds[i] = socket_listen(sa, len, ls->any, n > 1);
		if (ls->fds[i] == -1 && i == 0 && errno == ENOPROTOOPT) {
			/* No SO_REUSEPORT: the workers share one socket. */
			ls->fds[0] = socket_listen(sa, len, ls->any, 0);
			ls->nfds = ls->fds[0] == -1 ? 0 : 1;
			return ls->fds[0] == -1 ? -1 : 0;
		}
		if (ls->fds[i] == -1)
			return -1;
		ls->nfds = i + 1;
	}
	return 0;
}

static void
listener_free(struct listener *ls)
{
	unsigned i;

	for (i = 0; i < ls->nfds; i++)
		if (ls->fds[i] != -1)
			close(ls->fds[i]);
	free(ls->fds);
	free(ls->text);
}

static void
listeners_free(struct listener *ls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		listener_free(&ls[i]);
	free(ls);
}

static struct listener *
listener_find(const struct listener *want)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		if (listeners[i].nfds > 0 && listeners[i].any == want->any &&
		    listeners[i].addr_len == want->addr_len &&
		    memcmp(&listeners[i].addr, &want->addr,
		    want->addr_len) == 0)
			return &listeners[i];
	return NULL;
}

/*
 * Build the listeners of <cf>, taking over the sockets of current ones
 * with the same address.  Returns the new set, or NULL after logging
 * why, with the current set as it was.
 */
static struct listener *
listeners_build(const struct config *cf, unsigned n, int quiet)
{
	struct listener *ls, *old;
	size_t i, j;
	int saved;

	if ((ls = calloc(cf->nlistens + 1, sizeof(*ls))) == NULL) {
		log_warn("listeners");
		return NULL;
	}
	for (i = 0; i < cf->nlistens; i++) {
		ls[i].addr = cf->listens[i].addr;
		ls[i].addr_len = cf->listens[i].addr_len;
		ls[i].any = cf->listens[i].any;
		if ((ls[i].text = strdup(cf->listens[i].text)) == NULL)
			goto fail;
		if ((old = listener_find(&ls[i])) != NULL) {
			ls[i].fds = old->fds;
			ls[i].nfds = old->nfds;
			old->fds = NULL;
			old->nfds = 0;
		} else if (listener_open(&ls[i], n) == -1) {
			if (!quiet || errno != EADDRINUSE)
				log_warn("listen %s", cf->listens[i].text);
			goto fail;
		}
	}
	return ls;
fail:
	/* Hand the taken-over sockets back. */
	for (i = 0; i < cf->nlistens; i++)
		for (j = 0; j < nlisteners && ls[i].fds != NULL; j++)
			if (listeners[j].nfds == 0 &&
			    listeners[j].addr_len == ls[i].addr_len &&
			    memcmp(&listeners[j].addr, &ls[i].addr,
			    ls[i].addr_len) == 0) {
				listeners[j].fds = ls[i].fds;
				listeners[j].nfds = ls[i].nfds;
				ls[i].fds = NULL;
				ls[i].nfds = 0;
			}
	saved = errno;
	listeners_free(ls, cf->nlistens);
	errno = saved;
	return NULL;
}

/* For each worker, the sockets it watches: one per listener. */
static int **
listeners_split(const struct listener *ls, size_t nl, unsigned n)
{
	int **fds;
	unsigned i;
	size_t j;

	if ((fds = calloc(n, sizeof(*fds))) == NULL)
		fatal("listeners");
	for (i = 0; i < n; i++) {
		if ((fds[i] = calloc(nl + 1, sizeof(int))) == NULL)
			fatal("listeners");
		for (j = 0; j < nl; j++)
			fds[i][j] = ls[j].fds[ls[j].nfds > 1 ? i : 0];
	}
	return fds;
}

static void
split_free(int **fds, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		free(fds[i]);
	free(fds);
}

static void
config_announce(const struct config *cf, const char *what)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		log_info("listening on %s (%u socket%s)", listeners[i].text,
		    listeners[i].nfds, listeners[i].nfds == 1 ? "" : "s");
	log_info("%s %s: %zu routes, default %s, relay %s", what, cf->path,
	    cf->nroutes, cf->nosni.nbackends ? cf->nosni.backends[0].text :
	    "none", cf->relay == RELAY_COPY ? "copy" : "splice");
}

static int
control_apply(const struct config *cf)
{
	const char *cur = control_current();

	if (cf->stats_path == NULL) {
		control_close();
		return 0;
	}
	if (cur != NULL && strcmp(cur, cf->stats_path) == 0)
		return 0;
	if (control_open(main_loop, cf->stats_path, cf->stats_mode,
	    cf->stats_uid, cf->stats_gid) == -1) {
		log_warn("control socket %s", cf->stats_path);
		return -1;
	}
	return 0;
}

/*
 * A new address may overlap one that goes away ("*:443" for
 * "127.0.0.1:443"): have the workers let go of the listeners that the
 * new configuration drops, close them, and bind again.  When that fails
 * too, the dropped listeners are opened anew and handed back.
 */
static struct listener *
listeners_rebind(const struct config *cf)
{
	struct listener *ls, *keep;
	size_t i, j, nkeep = 0;
	int **fds;

	if ((keep = calloc(nlisteners + 1, sizeof(*keep))) == NULL)
		return NULL;
	for (i = 0; i < nlisteners; i++) {
		for (j = 0; j < cf->nlistens; j++)
			if (listeners[i].any == cf->listens[j].any &&
			    listeners[i].addr_len == cf->listens[j].addr_len &&
			    memcmp(&listeners[i].addr, &cf->listens[j].addr,
			    listeners[i].addr_len) == 0)
				break;
		if (j < cf->nlistens)
			keep[nkeep++] = listeners[i];
		else
			listener_free(&listeners[i]);
	}
	free(listeners);
	listeners = keep;
	nlisteners = nkeep;
	fds = listeners_split(listeners, nlisteners, nworkers);
	workers_apply(active_config, fds, nlisteners);
	split_free(fds, nworkers);
	log_info("reload: released the listeners it drops, binding again");
	if ((ls = listeners_build(cf, nworkers, 0)) != NULL)
		return ls;

	/* Back to the running configuration's listeners. */
	if ((ls = listeners_build(active_config, nworkers, 0)) == NULL) {
		log_warnx("reload: cannot reopen the running listeners; "
		    "serving on %zu of them", nlisteners);
		return NULL;
	}
	listeners_free(listeners, nlisteners);
	listeners = ls;
	nlisteners = active_config->nlistens;
	fds = listeners_split(listeners, nlisteners, nworkers);
	workers_apply(active_config, fds, nlisteners);
	split_free(fds, nworkers);
	return NULL;
}

static void
reload(void)
{
	struct config *cf, *old = active_config;
	struct listener *ls;
	int nerrors, **fds;

	log_info("reloading %s", old->path);
	if ((cf = config_load(old->path, &nerrors)) == NULL) {
		log_warnx("reload: %d error%s in %s; keeping the running "
		    "configuration", nerrors, nerrors == 1 ? "" : "s",
		    old->path);
		return;
	}
	if ((ls = listeners_build(cf, nworkers, 1)) == NULL &&
	    (errno != EADDRINUSE || (ls = listeners_rebind(cf)) == NULL)) {
		log_warnx("reload: keeping the running configuration");
		config_unref(cf);
		return;
	}
	if (config_workers(cf) != nworkers)
		log_warnx("reload: the number of workers changes only at "
		    "restart; keeping %u", nworkers);
	if (control_apply(cf) == -1)
		log_warnx("reload: the control socket stays at %s",
		    control_current() ? control_current() : "(none)");
	config_adopt_stats(cf, old);
	fds = listeners_split(ls, cf->nlistens, nworkers);
	workers_apply(cf, fds, cf->nlistens);
	split_free(fds, nworkers);
	/* No worker watches the old sockets any more. */
	listeners_free(listeners, nlisteners);
	listeners = ls;
	nlisteners = cf->nlistens;
	active_config = cf;
	config_unref(old);
	config_announce(cf, "reloaded");
}

static void
sig_handler(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	(void)write(sig_pipe[1], &c, 1);
	errno = saved;
}

static void
stop_begin(void)
{
	stopping = 1;
	workers_stop();
	listeners_free(listeners, nlisteners);
	listeners = NULL;
	nlisteners = 0;
	drain_deadline_ms = now_ms() + active_config->drain_ms;
	log_info("stopping: %llu connections to finish within %llu ms",
	    (unsigned long long)conn_open_total(),
	    (unsigned long long)active_config->drain_ms);
}

static void
sig_event(int fd, int mask, void *arg)
{
	unsigned char c;

	(void)mask;
	(void)arg;
	while (read(fd, &c, 1) == 1) {
		if (c == SIGHUP && !stopping)
			reload();
		else if ((c == SIGTERM || c == SIGINT) && !stopping)
			stop_begin();
	}
}

static void
exit_event(int fd, int mask, void *arg)
{
	(void)fd;
	(void)mask;
	(void)arg;
}

static void
signals_init(void)
{
	struct sigaction sa;

	if (pipe(sig_pipe) == -1)
		fatal("pipe");
	fcntl(sig_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
	fcntl(sig_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(sig_pipe[1], F_SETFD, FD_CLOEXEC);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = sig_handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (loop_watch(main_loop, sig_pipe[0], LOOP_READ, sig_event, NULL) ==
	    -1)
		fatal("watch signals");
}

/*
 * Raise the descriptor limit to its hard limit and derive how many
 * clients fit: two descriptors each, after the listeners, the relay
 * pipes and a reserve.
 */
static uint64_t
limits_init(const struct config *cf, unsigned n)
{
	struct rlimit rl;
	uint64_t fit, fixed;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 1 << 20;
	fixed = FD_RESERVE + (uint64_t)n * (cf->nlistens + 2) +
	    (uint64_t)n * PIPES_PER_WORKER * 2;
	fit = rl.rlim_cur > fixed + 2 ? (rl.rlim_cur - fixed) / 2 : 1;
	if (cf->max_conns != 0 && cf->max_conns > fit)
		log_warnx("max-connections %llu is over the %llu that %llu "
		    "descriptors allow: accepting pauses when they run out",
		    (unsigned long long)cf->max_conns, (unsigned long long)fit,
		    (unsigned long long)rl.rlim_cur);
	if (cf->max_conns != 0)
		fit = cf->max_conns;
	conn_limits(fit, PIPES_PER_WORKER);
	log_info("%u worker%s, max-connections %llu (descriptor limit %llu)",
	    n, n == 1 ? "" : "s", (unsigned long long)fit,
	    (unsigned long long)rl.rlim_cur);
	return fit;
}

/* Serve until a stop has drained; returns the exit status. */
static int
main_run(void)
{
	uint64_t now;
	int timeout;

	for (;;) {
		timeout = control_timers_run(now_ms());
		if (stopping) {
			if (workers_done())
				break;
			now = now_ms();
			if (drain_deadline_ms != 0 &&
			    now >= drain_deadline_ms) {
				log_info("drain time is up: closing %llu "
				    "connections", (unsigned long long)
				    conn_open_total());
				workers_drain();
				drain_deadline_ms = 0;
			} else if (drain_deadline_ms != 0 && (timeout == -1 ||
			    drain_deadline_ms - now < (uint64_t)timeout))
				timeout = drain_deadline_ms - now > 60000 ?
				    60000 : (int)(drain_deadline_ms - now);
		}
		if (loop_once(main_loop, timeout) == -1 && errno != EINTR)
			fatal("event loop");
	}
	workers_join();
	log_info("stopped");
	return 0;
}

/*
 * Give up root for the user and group of the configuration, once the
 * listeners and the control socket are open and before any client.
 */
static void
privileges_drop(const struct config *cf)
{
	if (cf->user == NULL && !cf->has_group)
		return;
	if (setgroups(1, &cf->gid) == -1 || setgid(cf->gid) == -1)
		fatal("group %u", (unsigned)cf->gid);
	if (cf->user != NULL && setuid(cf->uid) == -1)
		fatal("user %s", cf->user);
	if (cf->user != NULL && cf->uid != 0 && setuid(0) != -1)
		fatalx("user %s: root could be taken back", cf->user);
	log_info("running as user %s, group %u",
	    cf->user ? cf->user : "(unchanged)", (unsigned)cf->gid);
}

static int
serve(struct config *cf)
{
	unsigned n = config_workers(cf);
	int **fds, rc;

	config_ncells = n;
	if ((main_loop = loop_new()) == NULL)
		fatal("event loop");
	signals_init();
	limits_init(cf, n);
	nworkers = n;
	if ((listeners = listeners_build(cf, n, 0)) == NULL)
		fatalx("cannot listen; not starting");
	nlisteners = cf->nlistens;
	if (control_apply(cf) == -1)
		fatalx("cannot open the control socket; not starting");
	privileges_drop(cf);
	active_config = cf;
	fds = listeners_split(listeners, nlisteners, n);
	workers_start(n, cf, fds, nlisteners);
	split_free(fds, n);
	if (loop_watch(main_loop, workers_exit_fd(), LOOP_READ, exit_event,
	    NULL) == -1)
		fatal("watch workers");
	config_announce(cf, "loaded");
	rc = main_run();
	control_close();
	config_unref(active_config);
	loop_free(main_loop);
	return rc;
}

int
main(int argc, char *argv[])
{
	const char *path = DEFAULT_CONFIG;
	int ch, check = 0, debug = 0, nerrors, rc;
	struct config *cf;

	while ((ch = getopt(argc, argv, "c:dhtV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 't':
			check = 1;
			break;
		case 'V':
			printf("snimux %s\n", SNIMUX_VERSION);
			return 0;
		case 'h':
			usage(0);
			break;
		default:
			usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1 || (argc == 1 && check))
		usage(1);
	log_init(debug);

	if (argc == 1) {
		/* The control socket can answer even if other lines are bad. */
		if ((cf = config_read(path, &nerrors)) == NULL)
			return 1;
		if (cf->stats_path == NULL) {
			fprintf(stderr, "snimux: %s has no valid 'stats' line, "
			    "so the daemon has no control socket\n", path);
			config_unref(cf);
			return 1;
		}
		rc = control_client(cf->stats_path, argv[0]);
		config_unref(cf);
		return rc;
	}
	if ((cf = config_load(path, &nerrors)) == NULL)
		return 1;
	if (check) {
		fprintf(stderr, "%s: configuration ok\n", path);
		config_unref(cf);
		return 0;
	}
	return serve(cf);
}
