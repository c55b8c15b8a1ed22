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

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

#define ACCEPT_PAUSE_MS	1000

struct listener {
	struct sockaddr_storage	 addr;
	socklen_t		 addr_len;
	int			 any;
	int			 fd;
	char			*text;
};

struct config		*active_config;

static struct loop	*main_loop;
static struct listener	*listeners;
static size_t		 nlisteners;
static int		 sig_pipe[2] = { -1, -1 };
static int		 stopping;
static uint64_t		 drain_deadline_ms;
static uint64_t		 accept_paused_until;

static void
usage(void)
{
	fprintf(stderr, "usage: snimux [-dt] [-c file]\n"
	    "       snimux [-c file] stats|metrics|help\n"
	    "       snimux -V\n");
	exit(1);
}

static void
listener_event(int fd, int mask, void *arg)
{
	size_t i;

	(void)mask;
	(void)arg;
	if (conn_accept(fd, active_config) == 0)
		return;
	/* Out of descriptors: keep relaying, stop accepting a moment. */
	log_warn("accept: pausing new connections for %d ms",
	    ACCEPT_PAUSE_MS);
	for (i = 0; i < nlisteners; i++)
		loop_watch(main_loop, listeners[i].fd, 0, listener_event,
		    NULL);
	accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
}

static void
listeners_watch(struct listener *ls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (loop_watch(main_loop, ls[i].fd, LOOP_READ, listener_event,
		    NULL) == -1)
			log_warn("watch %s", ls[i].text);
}

/* Open a listening socket for <lc>; -1 with errno set on failure. */
static int
listener_open(const struct listen_conf *lc)
{
	struct sockaddr_in sin;
	const struct sockaddr *sa = (const struct sockaddr *)&lc->addr;
	socklen_t len = lc->addr_len;
	int fd, one = 1, zero = 0, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 && lc->any && errno == EAFNOSUPPORT) {
		/* No IPv6 here: "*" is every IPv4 address. */
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = ((const struct sockaddr_in6 *)sa)->sin6_port;
		sa = (const struct sockaddr *)&sin;
		len = sizeof(sin);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	}
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, lc->any ? &zero : &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, sa, len) == -1 || listen(fd, SOMAXCONN) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static void
listeners_close(struct listener *ls, size_t n, int keep_open)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ls[i].fd != -1 && !keep_open) {
			loop_unwatch(main_loop, ls[i].fd);
			close(ls[i].fd);
		}
		free(ls[i].text);
	}
	free(ls);
}

/*
 * Make the listeners of <cf>, keeping the sockets of the current ones
 * whose address is unchanged.  Returns 0 and swaps them in, or -1 after
 * logging why, with the current listeners untouched.
 */
static int
listeners_apply(const struct config *cf)
{
	struct listener *ls;
	size_t i, j;

	if ((ls = calloc(cf->nlistens, sizeof(*ls))) == NULL) {
		log_warn("listeners");
		return -1;
	}
	for (i = 0; i < cf->nlistens; i++) {
		ls[i].fd = -1;
		ls[i].addr = cf->listens[i].addr;
		ls[i].addr_len = cf->listens[i].addr_len;
		ls[i].any = cf->listens[i].any;
		ls[i].text = strdup(cf->listens[i].text);
		for (j = 0; j < nlisteners; j++)
			if (listeners[j].fd != -1 &&
			    listeners[j].any == ls[i].any &&
			    listeners[j].addr_len == ls[i].addr_len &&
			    memcmp(&listeners[j].addr, &ls[i].addr,
			    ls[i].addr_len) == 0) {
				ls[i].fd = listeners[j].fd;
				listeners[j].fd = -1;
				break;
			}
		if (ls[i].fd == -1 &&
		    (ls[i].fd = listener_open(&cf->listens[i])) == -1) {
			log_warn("listen %s", cf->listens[i].text);
			goto fail;
		}
	}
	listeners_close(listeners, nlisteners, 0);
	listeners = ls;
	nlisteners = cf->nlistens;
	if (accept_paused_until == 0)
		listeners_watch(listeners, nlisteners);
	return 0;
fail:
	/* Hand the reused sockets back, close the new ones. */
	for (i = 0; i < cf->nlistens; i++) {
		for (j = 0; j < nlisteners && ls[i].fd != -1; j++)
			if (listeners[j].fd == -1 &&
			    listeners[j].addr_len == ls[i].addr_len &&
			    memcmp(&listeners[j].addr, &ls[i].addr,
			    ls[i].addr_len) == 0) {
				listeners[j].fd = ls[i].fd;
				ls[i].fd = -1;
			}
	}
	listeners_close(ls, cf->nlistens, 0);
	return -1;
}

static void
config_announce(const struct config *cf, const char *what)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		log_info("listening on %s", listeners[i].text);
	log_info("%s %s: %zu routes, default %s", what, cf->path,
	    cf->nroutes, cf->nosni.nbackends ? cf->nosni.backends[0].text :
	    "none");
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
	if (control_open(main_loop, cf->stats_path) == -1) {
		log_warn("control socket %s", cf->stats_path);
		return -1;
	}
	return 0;
}

static void
reload(void)
{
	struct config *cf, *old = active_config;
	int nerrors;

	log_info("reloading %s", old->path);
	if ((cf = config_load(old->path, &nerrors)) == NULL) {
		log_warnx("reload: %d error%s in %s; keeping the running "
		    "configuration", nerrors, nerrors == 1 ? "" : "s",
		    old->path);
		return;
	}
	if (listeners_apply(cf) == -1) {
		log_warnx("reload: keeping the running configuration");
		config_unref(cf);
		return;
	}
	control_apply(cf);
	config_adopt_stats(cf, old);
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
	listeners_close(listeners, nlisteners, 0);
	listeners = NULL;
	nlisteners = 0;
	drain_deadline_ms = now_ms() + active_config->drain_ms;
	log_info("stopping: %llu connections to finish within %llu ms",
	    (unsigned long long)conn_active(),
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

static void
rlimit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Wait in the loop until a stop has drained; returns the exit status. */
static int
main_run(void)
{
	uint64_t now;
	int timeout, left;

	for (;;) {
		now = now_ms();
		timeout = conn_timers_run(now);
		if (accept_paused_until != 0 && !stopping) {
			if (now >= accept_paused_until) {
				accept_paused_until = 0;
				listeners_watch(listeners, nlisteners);
			} else if (timeout == -1 || (int)(accept_paused_until -
			    now) < timeout)
				timeout = (int)(accept_paused_until - now);
		}
		if (stopping) {
			if (conn_active() == 0)
				break;
			if (now >= drain_deadline_ms) {
				log_info("drain time is up: closing %llu "
				    "connections", (unsigned long long)
				    conn_active());
				conn_drain_all();
				break;
			}
			left = (int)(drain_deadline_ms - now);
			if (timeout == -1 || left < timeout)
				timeout = left;
		}
		if (loop_once(main_loop, timeout) == -1 && errno != EINTR)
			fatal("event loop");
	}
	log_info("stopped");
	return 0;
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
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1 || (argc == 1 && check))
		usage();
	log_init(debug);

	if ((cf = config_load(path, &nerrors)) == NULL)
		return 1;
	if (check) {
		fprintf(stderr, "%s: configuration ok\n", path);
		config_unref(cf);
		return 0;
	}
	if (argc == 1) {
		if (cf->stats_path == NULL) {
			fprintf(stderr, "snimux: %s has no 'stats' line, so "
			    "the daemon has no control socket\n", path);
			return 1;
		}
		rc = control_client(cf->stats_path, argv[0]);
		config_unref(cf);
		return rc;
	}

	rlimit_raise();
	if ((main_loop = loop_new()) == NULL)
		fatal("event loop");
	conn_init(main_loop);
	signals_init();
	if (listeners_apply(cf) == -1)
		fatalx("cannot listen; not starting");
	if (control_apply(cf) == -1)
		fatalx("cannot open the control socket; not starting");
	active_config = cf;
	config_announce(cf, "loaded");
	rc = main_run();
	control_close();
	config_unref(active_config);
	loop_free(main_loop);
	return rc;
}
