/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Event loop: level-triggered readiness on descriptors, with one poller
 * backend chosen at compile time (epoll on Linux, kqueue elsewhere).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "snimux.h"

struct loop_slot {
	int		 mask;
	uint32_t	 gen;		/* changes each time it is dropped */
	loop_cb		 cb;
	void		*arg;
};

struct loop {
	struct loop_slot	*slots;		/* indexed by descriptor */
	int			 nslots;
	int			 pfd;		/* poller descriptor */
	void			*events;	/* poller's result array */
	int			 nevents;
	uint64_t		 now_ms;	/* when the last wait ended */
};

/*
 * Each backend provides: poller_init (create the poller and its result
 * array), poller_set (change a descriptor's interest from one mask to
 * another, tagging its events with the slot's generation), poller_wait
 * (fill <fired>, return how many) and poller_free.  The generation lets
 * the loop drop an event that was pending for a descriptor closed and
 * reused by an earlier callback of the same batch.
 */
struct loop_fired {
	int		 fd;
	int		 mask;
	uint32_t	 gen;
};

#if HAVE_EPOLL
#include "loop_epoll.c"
#else
#include "loop_kqueue.c"
#endif

/* Milliseconds of a clock that never goes back. */
uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The time at which the loop's last wait ended, from now_ms(). */
uint64_t
loop_now(const struct loop *l)
{
	return l->now_ms;
}

/* Create a loop; NULL with errno set on failure. */
struct loop *
loop_new(void)
{
	struct loop *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->pfd = -1;
	l->now_ms = now_ms();
	if (poller_init(l) == -1) {
		free(l);
		return NULL;
	}
	return l;
}

/* Free a loop.  Watched descriptors are the caller's and stay open. */
void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	poller_free(l);
	free(l->slots);
	free(l);
}

static int
loop_grow(struct loop *l, int fd)
{
	struct loop_slot *s;
	int n = l->nslots ? l->nslots : 64;

	while (n <= fd)
		n *= 2;
	if ((s = realloc(l->slots, n * sizeof(*s))) == NULL)
		return -1;
	memset(s + l->nslots, 0, (n - l->nslots) * sizeof(*s));
	l->slots = s;
	l->nslots = n;
	return 0;
}

/*
 * Watch <fd> for <mask> (LOOP_READ, LOOP_WRITE or both) and call <cb>
 * with <arg> when it is ready; a mask of 0 stops watching.  Asking for
 * the mask already set costs no system call.  Returns 0, or -1 with
 * errno set.
 */
int
loop_watch(struct loop *l, int fd, int mask, loop_cb cb, void *arg)
{
	struct loop_slot *s;

	if (fd >= l->nslots && loop_grow(l, fd) == -1)
		return -1;
	s = &l->slots[fd];
	s->cb = cb;
	s->arg = arg;
	if (s->mask == mask)
		return 0;
	if (poller_set(l, fd, s->mask, mask, s->gen) == -1)
		return -1;
	s->mask = mask;
	return 0;
}

static void
slot_drop(struct loop *l, int fd, int tell)
{
	if (fd < 0 || fd >= l->nslots)
		return;
	if (tell && l->slots[fd].mask != 0)
		poller_set(l, fd, l->slots[fd].mask, 0, 0);
	l->slots[fd].mask = 0;
	l->slots[fd].cb = NULL;
	l->slots[fd].arg = NULL;
	l->slots[fd].gen++;
}

/* Stop watching <fd>, which stays open. */
void
loop_unwatch(struct loop *l, int fd)
{
	slot_drop(l, fd, 1);
}

/*
 * Stop watching <fd> and close it.  Closing the last descriptor of a
 * socket takes it out of epoll and kqueue alike, so this costs no call
 * to the poller; snimux never duplicates the descriptors it watches.
 */
void
loop_close(struct loop *l, int fd)
{
	slot_drop(l, fd, 0);
	close(fd);
}

/*
 * Wait up to <timeout_ms> (-1: no limit) and call the callbacks of the
 * descriptors that are ready.  Returns the number of events handled, or
 * -1 with errno set (EINTR included).
 */
int
loop_once(struct loop *l, int timeout_ms)
{
	struct loop_fired fired[LOOP_BATCH];
	int n, i, fd, mask;
	struct loop_slot *s;

	n = poller_wait(l, fired, timeout_ms);
	l->now_ms = now_ms();
	if (n == -1)
		return -1;
	for (i = 0; i < n; i++) {
		fd = fired[i].fd;
		if (fd < 0 || fd >= l->nslots)
			continue;
		s = &l->slots[fd];
		/* An earlier callback in this batch may have dropped it. */
		if (s->gen != fired[i].gen)
			continue;
		mask = fired[i].mask & s->mask;
		if (mask != 0 && s->cb != NULL)
			s->cb(fd, mask, s->arg);
	}
	return n;
}
