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
#define HAVE_ACCEPT4	1
#define HAVE_SPLICE	1
#else
#define HAVE_EPOLL	0
#define HAVE_ACCEPT4	0
#define HAVE_SPLICE	0
#endif

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
