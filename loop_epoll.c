/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * epoll(7) poller backend, included by loop.c on Linux.
 */
#include <sys/epoll.h>

static int
poller_init(struct loop *l)
{
	if ((l->pfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	l->nevents = LOOP_BATCH;
	l->events = calloc(l->nevents, sizeof(struct epoll_event));
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
	struct epoll_event ev;
	int op;

	memset(&ev, 0, sizeof(ev));
	ev.data.u64 = (uint64_t)gen << 32 | (uint32_t)fd;
	if (mask & LOOP_READ)
		ev.events |= EPOLLIN;
	if (mask & LOOP_WRITE)
		ev.events |= EPOLLOUT;
	if (old == 0)
		op = EPOLL_CTL_ADD;
	else if (mask == 0)
		op = EPOLL_CTL_DEL;
	else
		op = EPOLL_CTL_MOD;
	return epoll_ctl(l->pfd, op, fd, &ev);
}

static int
poller_wait(struct loop *l, struct loop_fired *fired, int timeout_ms)
{
	struct epoll_event *ev = l->events;
	int n, i, m;

	if ((n = epoll_wait(l->pfd, ev, l->nevents, timeout_ms)) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		m = 0;
		/* An error or hang-up is reported as both ways ready. */
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			m |= LOOP_READ;
		if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			m |= LOOP_WRITE;
		fired[i].fd = (int)(uint32_t)ev[i].data.u64;
		fired[i].gen = (uint32_t)(ev[i].data.u64 >> 32);
		fired[i].mask = m;
	}
	return n;
}
