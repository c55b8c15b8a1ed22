/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Logging to stderr, one event a line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snimux.h"

static int log_verbose;

static void log_vwrite(const char *, const char *, va_list, const char *)
    SNIMUX_PRINTF(2, 0);

/*
 * Set the verbosity: debug lines are printed only when <debug> is non-zero.
 */
void
log_init(int debug)
{
	log_verbose = debug;
}

/*
 * Each line goes out in one write(2), so that lines from several
 * workers never interleave and no lock is shared; a longer line is cut
 * to fit, its newline kept.
 */
static void
log_vwrite(const char *level, const char *fmt, va_list ap, const char *err)
{
	char line[1024];
	size_t len;
	int n;

	n = snprintf(line, sizeof(line), "snimux: %s: ", level);
	len = (size_t)n;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = n < 0 ? len : len + (size_t)n;
	if (err != NULL && len < sizeof(line)) {
		n = snprintf(line + len, sizeof(line) - len, ": %s", err);
		len = n < 0 ? len : len + (size_t)n;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	(void)write(STDERR_FILENO, line, len);
}

/* Log a warning followed by the text of the current errno. */
void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite("warning", fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

/* Log a warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite("warning", fmt, ap, NULL);
	va_end(ap);
}

/* Log an event of normal operation. */
void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite("info", fmt, ap, NULL);
	va_end(ap);
}

/* Log a detail that only matters when debugging; quiet by default. */
void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vwrite("debug", fmt, ap, NULL);
	va_end(ap);
}

/* Log an error with the text of errno and exit 1. */
void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite("fatal", fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

/* Log an error and exit 1. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite("fatal", fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
