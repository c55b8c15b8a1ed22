/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Minimal test harness: each check prints "ok - ..." or "not ok - ...";
 * tests/run.sh adds the lines of every test program up.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failed;

#define ok(cond, ...) do {						\
	int ok_c_ = (cond) ? 1 : 0;					\
	printf("%s - ", ok_c_ ? "ok" : "not ok");			\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!ok_c_) {							\
		printf("#   at %s:%d: %s\n", __FILE__, __LINE__,	\
		    #cond);						\
		harness_failed++;					\
	}								\
} while (0)

#define EXPECT_EQ(a, b, ...) do {					\
	long long ea_ = (long long)(a), eb_ = (long long)(b);		\
	ok(ea_ == eb_, __VA_ARGS__);					\
	if (ea_ != eb_)							\
		printf("#   %s = %lld, %s = %lld\n", #a, ea_, #b, eb_);	\
} while (0)

#define EXPECT_STR(a, b, ...) do {					\
	const char *sa_ = (a), *sb_ = (b);				\
	int se_ = (sa_ == NULL || sb_ == NULL) ? sa_ == sb_ :		\
	    strcmp(sa_, sb_) == 0;					\
	ok(se_, __VA_ARGS__);						\
	if (!se_)							\
		printf("#   %s = \"%s\", %s = \"%s\"\n", #a,		\
		    sa_ ? sa_ : "(null)", #b, sb_ ? sb_ : "(null)");	\
} while (0)

/* Reads <path> whole into a malloc'd buffer; NULL on error. */
static inline uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	*f;
	uint8_t	*b = NULL, *nb;
	size_t	 size = 0, n;

	*len = 0;
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (*len == size) {
			size = size ? size * 2 : 4096;
			if ((nb = realloc(b, size)) == NULL) {
				free(b);
				fclose(f);
				return NULL;
			}
			b = nb;
		}
		if ((n = fread(b + *len, 1, size - *len, f)) == 0)
			break;
		*len += n;
	}
	if (ferror(f)) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

#define harness_exit() (fflush(stdout), harness_failed ? 1 : 0)

#endif
