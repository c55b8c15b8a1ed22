/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Whether two answers of the hello parser are the same, field by field:
 * the unit tests and the fuzz target both ask it of the same bytes fed in
 * different pieces.
 */
#ifndef HELLO_SAME_H
#define HELLO_SAME_H

#include <stdint.h>
#include <string.h>

#include "../parse_hello.h"

static inline int
hello_same_bytes(const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen)
{
	if ((a == NULL) != (b == NULL) || alen != blen)
		return 0;
	return alen == 0 || memcmp(a, b, alen) == 0;
}

/* Answer <ra> with <x> against answer <rb> with <y>. */
static inline int
hello_same(enum hello_result ra, const struct hello *x, enum hello_result rb,
    const struct hello *y)
{
	if (ra != rb || (x->why == NULL) != (y->why == NULL))
		return 0;
	if (x->why != NULL && strcmp(x->why, y->why) != 0)
		return 0;
	return x->off == y->off && x->hello_len == y->hello_len &&
	    x->sslv2 == y->sslv2 && x->record_version == y->record_version &&
	    hello_same_bytes(x->sni, x->sni_len, y->sni, y->sni_len) &&
	    hello_same_bytes(x->alpn, x->alpn_len, y->alpn, y->alpn_len);
}

#endif
