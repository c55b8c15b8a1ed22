/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * kqueue(2) poller backend, included by loop.c on the BSDs.
 */
#include <sys/event.h>
#include <sys/time.h>

static int
poller_init(struct loop *l)
{
	if ((l->pfd = kqueue()) == -1)
		return -1;
	l->nevents = LOOP_BATCH;
	l->events = calloc(l->nevents, sizeof(struct kevent));
	if (l->events == NULL) {
		close(l->pfd);
		return -1;
	}
	return 0;
}

static void
poller_free(struct loop *l)
{
	if (l->pfd != -1)
		close(l->pfd);
	free(l->events);
}

static int
poller_set(struct loop *l, int fd, int old, int mask, uint32_t gen)
{
	void *tag = (void *)(uintptr_t)gen;

	struct kevent ch[2];
	int n = 0;

	if ((old ^ mask) & LOOP_READ) {
		EV_SET(&ch[n], fd, EVFILT_READ,
		    (mask & LOOP_READ) ? EV_ADD : EV_DELETE, 0, 0, tag);
		n++;
	}
	if ((old ^ mask) & LOOP_WRITE) {
		EV_SET(&ch[n], fd, EVFILT_WRITE,
		    (mask & LOOP_WRITE) ? EV_ADD : EV_DELETE, 0, 0, tag);
		n++;
	}
	return kevent(l->pfd, ch, n, NULL, 0, NULL);
}

static int
poller_wait(struct loop *l, struct loop_fired *fired, int timeout_ms)
{
	struct kevent *ev = l->events;
	struct timespec ts, *tsp = NULL;
	int n, i;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
		tsp = &ts;
	}
	if ((n = kevent(l->pfd, NULL, 0, ev, l->nevents, tsp)) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		fired[i].fd = (int)ev[i].ident;
		fired[i].gen = (uint32_t)(uintptr_t)ev[i].udata;
		fired[i].mask = ev[i].filter == EVFILT_READ ? LOOP_READ :
		    LOOP_WRITE;
	}
	return n;
}
