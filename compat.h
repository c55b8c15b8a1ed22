/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * The few differences between Linux and the BSDs that the daemon meets,
 * kept here so that no other file needs an operating-system #ifdef.
 */
#ifndef COMPAT_H
#define COMPAT_H

#include <sys/socket.h>

#if defined(__linux__)
#define HAVE_EPOLL	1
#define HAVE_SPLICE	1
#else
#define HAVE_EPOLL	0
#define HAVE_SPLICE	0
#endif

/* Accepted sockets take TCP_NODELAY from their listening socket. */
#if defined(__linux__) || defined(__FreeBSD__)
#define ACCEPT_KEEPS_NODELAY	1
#else
#define ACCEPT_KEEPS_NODELAY	0
#endif

#if !HAVE_SPLICE
#include <errno.h>
#include <unistd.h>

/* Without splice(2) the relay copies; this makes it fall back at once. */
#define SPLICE_F_MOVE		0
#define SPLICE_F_NONBLOCK	0
static inline ssize_t
splice(int in, void *inoff, int out, void *outoff, size_t len, unsigned f)
{
	(void)in; (void)inoff; (void)out; (void)outoff; (void)len; (void)f;
	errno = ENOSYS;
	return -1;
}
#endif

#include <fcntl.h>

/* Ask for a larger pipe where the system can size them. */
static inline void
pipe_set_size(int fd, int size)
{
#ifdef F_SETPIPE_SZ
	(void)fcntl(fd, F_SETPIPE_SZ, size);
#else
	(void)fd;
	(void)size;
#endif
}

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL	0
#endif

#if defined(__GNUC__)
#define SNIMUX_DEAD	__attribute__((__noreturn__))
#define SNIMUX_PRINTF(f, a) __attribute__((__format__(__printf__, f, a)))
#else
#define SNIMUX_DEAD
#define SNIMUX_PRINTF(f, a)
#endif

#endif
