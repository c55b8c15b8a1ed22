/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Workers: one thread per core, each with its own event loop, listening
 * sockets and connections.  The main thread hands them configurations.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

#define ACCEPT_PAUSE_MS	1000

/* What the main thread asks of a worker, besides a new configuration. */
#define STOP_NONE	0
#define STOP_ACCEPT	1	/* stop accepting, finish what is open */
#define STOP_NOW	2	/* close everything now */

struct worker		*workers;
unsigned		 nworkers;

static int		 ack_pipe[2] = { -1, -1 };
static int		 exit_pipe[2] = { -1, -1 };
static unsigned		 nexited;

static void	worker_accept(int, int, void *);

static void
lfds_watch(struct worker *w, int mask)
{
	size_t i;

	for (i = 0; i < w->nlfds; i++)
		if (loop_watch(w->loop, w->lfds[i], mask, worker_accept, w) ==
		    -1)
			log_warn("worker %u: listening socket", w->idx);
}

static void
worker_accept(int fd, int mask, void *arg)
{
	struct worker *w = arg;

	(void)mask;
	if (conn_accept(w, fd) == 0)
		return;
	worker_accept_pause(w);
}

/*
 * Out of descriptors: keep relaying, stop accepting a moment.  Clients
 * that arrive meanwhile wait in the listen backlog.
 */
void
worker_accept_pause(struct worker *w)
{
	if (w->accept_paused_until != 0)
		return;
	log_warn("accept: pausing new connections for %d ms",
	    ACCEPT_PAUSE_MS);
	lfds_watch(w, 0);
	w->accept_paused_until = w->now + ACCEPT_PAUSE_MS;
}

static void
worker_listen(struct worker *w, int *lfds, size_t n)
{
	size_t i, j;

	/* Sockets that are not in the new set are the main thread's. */
	for (i = 0; i < w->nlfds; i++) {
		for (j = 0; j < n && lfds[j] != w->lfds[i]; j++)
			;
		if (j == n)
			loop_unwatch(w->loop, w->lfds[i]);
	}
	free(w->lfds);
	w->lfds = lfds;
	w->nlfds = n;
	if (w->accept_paused_until == 0 && !w->stopping)
		lfds_watch(w, LOOP_READ);
}

static void
worker_command(int fd, int mask, void *arg)
{
	struct worker *w = arg;
	struct config *cf;
	int *lfds, stop;
	size_t n, i;
	char c;

	(void)mask;
	w->now = loop_now(w->loop);
	while (read(fd, &c, 1) == 1)
		;
	pthread_mutex_lock(&w->mu);
	cf = w->next_cf;
	lfds = w->next_lfds;
	n = w->next_nlfds;
	stop = w->next_stop;
	w->next_cf = NULL;
	w->next_lfds = NULL;
	w->next_stop = STOP_NONE;
	pthread_mutex_unlock(&w->mu);

	if (cf != NULL) {
		config_unref(w->cf);
		w->cf = cf;
		worker_listen(w, lfds, n);
	}
	if (stop != STOP_NONE && !w->stopping) {
		w->stopping = 1;
		for (i = 0; i < w->nlfds; i++)
			loop_unwatch(w->loop, w->lfds[i]);
	}
	if (stop == STOP_NOW) {
		conn_drain_all(w);
		return;
	}
	c = 'a';
	(void)write(ack_pipe[1], &c, 1);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t now;
	int timeout;
	char c = 'x';

	for (;;) {
		now = now_ms();
		timeout = conn_timers_run(w, now);
		if (w->stopping && CTR_GET(w->nconns) == 0)
			break;
		if (w->fd_freed && !TAILQ_EMPTY(&w->fdwait)) {
			conn_fdwait_retry(w);
			/* A retry may have started a timer. */
			timeout = conn_timers_run(w, now);
		}
		if (w->accept_paused_until != 0) {
			if (now >= w->accept_paused_until) {
				w->accept_paused_until = 0;
				/* Those waiting for a descriptor go first. */
				if (conn_fdwait_retry(w) > 0)
					worker_accept_pause(w);
				else if (!w->stopping)
					lfds_watch(w, LOOP_READ);
				timeout = conn_timers_run(w, now);
			} else if (timeout == -1 ||
			    w->accept_paused_until - now < (uint64_t)timeout)
				timeout = (int)(w->accept_paused_until - now);
		}
		if (loop_once(w->loop, timeout) == -1 && errno != EINTR)
			fatal("worker %u: event loop", w->idx);
	}
	(void)write(exit_pipe[1], &c, 1);
	return NULL;
}

static int *
lfds_copy(int *src, size_t n)
{
	int *p;

	if ((p = calloc(n ? n : 1, sizeof(*p))) == NULL)
		fatal("listening sockets");
	memcpy(p, src, n * sizeof(*p));
	return p;
}

static void
pipe_open(int p[2])
{
	if (pipe(p) == -1)
		fatal("pipe");
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
}

/*
 * Start <n> workers on configuration <cf>; worker i watches the <nl>
 * listening sockets lfds[i][0..nl).  Signals stay with the main thread.
 * Returns 0; failures to start are fatal.
 */
int
workers_start(unsigned n, struct config *cf, int **lfds, size_t nl)
{
	sigset_t all, old;
	struct worker *w;
	unsigned i;

	if ((workers = calloc(n, sizeof(*workers))) == NULL)
		fatal("workers");
	nworkers = n;
	pipe_open(ack_pipe);
	pipe_open(exit_pipe);
	fcntl(exit_pipe[0], F_SETFL, O_NONBLOCK);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < n; i++) {
		w = &workers[i];
		w->idx = i;
		pthread_mutex_init(&w->mu, NULL);
		pipe_open(w->cmd);
		fcntl(w->cmd[0], F_SETFL, O_NONBLOCK);
		if ((w->loop = loop_new()) == NULL ||
		    conn_worker_init(w) == -1)
			fatal("worker %u", i);
		config_ref(cf);
		w->cf = cf;
		if (loop_watch(w->loop, w->cmd[0], LOOP_READ, worker_command,
		    w) == -1)
			fatal("worker %u", i);
		worker_listen(w, lfds_copy(lfds[i], nl), nl);
		errno = pthread_create(&w->thread, NULL, worker_main, w);
		if (errno != 0)
			fatal("worker %u: thread", i);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

static void
workers_send(struct config *cf, int **lfds, size_t nl, int stop)
{
	unsigned i, acks = 0;
	struct worker *w;
	char c = 'c';

	for (i = 0; i < nworkers; i++) {
		w = &workers[i];
		pthread_mutex_lock(&w->mu);
		if (cf != NULL) {
			config_ref(cf);
			config_unref(w->next_cf);
			w->next_cf = cf;
			free(w->next_lfds);
			w->next_lfds = lfds_copy(lfds[i], nl);
			w->next_nlfds = nl;
		}
		if (stop > w->next_stop)
			w->next_stop = stop;
		pthread_mutex_unlock(&w->mu);
		(void)write(w->cmd[1], &c, 1);
	}
	/*
	 * Each worker answers once it no longer uses the old sockets; a
	 * final drain gets no answer, as a worker may have ended already.
	 */
	while (stop != STOP_NOW && acks < nworkers)
		if (read(ack_pipe[0], &c, 1) == 1)
			acks++;
		else if (errno != EINTR)
			fatal("waiting for workers");
}

/*
 * Give every worker configuration <cf> and its listening sockets, and
 * wait until each has switched: sockets they no longer watch may then
 * be closed.
 */
void
workers_apply(struct config *cf, int **lfds, size_t nl)
{
	workers_send(cf, lfds, nl, STOP_NONE);
}

/* Stop accepting everywhere; returns once no worker watches a socket. */
void
workers_stop(void)
{
	workers_send(NULL, NULL, 0, STOP_ACCEPT);
}

/* Close every connection now. */
void
workers_drain(void)
{
	workers_send(NULL, NULL, 0, STOP_NOW);
}

/* Descriptor that becomes readable when a worker has finished. */
int
workers_exit_fd(void)
{
	return exit_pipe[0];
}

/* Count finished workers; 1 once all of them are. */
int
workers_done(void)
{
	char c;

	while (read(exit_pipe[0], &c, 1) == 1)
		nexited++;
	return nexited == nworkers;
}

/* Wait for every worker thread and free what they held. */
void
workers_join(void)
{
	struct worker *w;
	unsigned i;

	for (i = 0; i < nworkers; i++) {
		w = &workers[i];
		pthread_join(w->thread, NULL);
		conn_worker_free(w);
		loop_free(w->loop);
		config_unref(w->cf);
		config_unref(w->next_cf);
		free(w->lfds);
		free(w->next_lfds);
		close(w->cmd[0]);
		close(w->cmd[1]);
		pthread_mutex_destroy(&w->mu);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
}
