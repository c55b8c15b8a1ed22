/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * What every libFuzzer target shares, included once by each: the fault
 * record, libFuzzer's entry point and, with -DFUZZ_REPLAY, the replay of
 * files and directories.  The target defines FUZZ_NAME (its name, which
 * starts each message) before it includes this header, and then
 * check(): every check on one input, 0, or -1 with the fault recorded by
 * fuzz_fail().  With -DFUZZ_REPLAY it also defines main(), which replays
 * its own seeds when given no argument and then calls replay_args().
 */
#ifndef FUZZ_TARGET_H
#define FUZZ_TARGET_H

#include <sys/stat.h>

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_target.h"
#endif

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	 fault[512];

static int	check(const uint8_t *, size_t);
static int fuzz_fail(const char *, ...)
    __attribute__((__format__(__printf__, 1, 2)));

/* Records what broke for the caller to report; returns -1. */
static int
fuzz_fail(const char *fmt, ...)
{
	char	 msg[sizeof(fault)];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(fault, msg, sizeof(fault));
	return -1;
}

/*
 * libFuzzer's entry point: runs every check on data[0..size) and aborts
 * with a message on stderr when one fails.  Always returns 0.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (check(data, size) == -1) {
		fprintf(stderr, FUZZ_NAME ": %s\n", fault);
		abort();
	}
	return 0;
}

#ifdef FUZZ_REPLAY
#include "harness.h"

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays one file; 0, or -1 after a "not ok" line. */
static int
replay_file(const char *path)
{
	uint8_t		*b;
	size_t		 n;
	int		 rc;

	if ((b = read_file(path, &n)) == NULL) {
		ok(0, FUZZ_NAME ": %s reads", path);
		return -1;
	}
	rc = check(b, n);
	free(b);
	if (rc == -1)
		ok(0, FUZZ_NAME ": %s: %s", path, fault);
	return rc;
}

/* Replays every regular file of <dir> in name order, one "ok" line. */
static void
replay_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 path[4096], **names = NULL, **nn;
	size_t		 n = 0, nbad = 0;

	if ((d = opendir(dir)) == NULL) {
		ok(0, FUZZ_NAME ": directory %s opens", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    (nn = realloc(names, (n + 1) * sizeof(*names))) == NULL)
			continue;
		names = nn;
		if ((names[n] = strdup(de->d_name)) != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    replay_file(path) == -1)
			nbad++;
		free(names[i]);
	}
	free(names);
	ok(nbad == 0, FUZZ_NAME ": %zu inputs of %s replayed", n, dir);
}

/*
 * Replays each file or directory of argv[1..argc), after what main()
 * replayed before.  Returns main()'s exit status: 0 when every input
 * passed.
 */
static int
replay_args(int argc, char *argv[])
{
	struct stat	 st;

	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else if (replay_file(argv[i]) == 0)
			ok(1, FUZZ_NAME ": %s replayed", argv[i]);
	}
	return harness_exit();
}
#endif

#endif
