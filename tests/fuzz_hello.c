/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Fuzz target of hello_parse(): every way of feeding an input must give
 * one answer, and no answer may point past the bytes it was given.  With
 * -DFUZZ_REPLAY, main() runs the same checks over files and directories.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../parse_hello.h"

#define FUZZ_NAME	"fuzz_hello"
#include "fuzz_target.h"
#include "hello_same.h"

/* Over any handshake length the 24-bit field can declare, plus 4. */
#define BIG_SCRATCH	(((size_t)1 << 24) + 4)
#define REC_HDR_LEN	5
#define NCUTS		4

/* What one way of feeding an input gave. */
struct answer {
	enum hello_result r;
	struct hello	 h;
	size_t		 at;		/* input length of the answer */
};

/* How to feed: the growing lengths, scratch, and heap copies or not. */
struct way {
	const size_t	*ls;
	size_t		 nl;
	uint8_t		*scratch;
	size_t		 scratch_size;
	int		 copy;
	const char	*name;
};

static uint8_t	*big;
static size_t	*lens;
static size_t	 lens_size;

static size_t
get16(const uint8_t *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/* Is p[0..n) inside base[0..size)? */
static int
inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
	uintptr_t	 a = (uintptr_t)p, b = (uintptr_t)base;

	return base != NULL && a >= b && n <= size && a - b <= size - n;
}

/* 1 to 255 bytes of [A-Za-z0-9-_.], no empty label but a last dot. */
static int
name_ok(const uint8_t *s, size_t n)
{
	size_t	 label = 0;

	if (n < 1 || n > HELLO_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_')
			label++;
		else
			return 0;
	}
	return 1;
}

/* The ALPN body is a run of 1..255-byte names that ends exactly. */
static int
alpn_ok(const uint8_t *p, size_t left)
{
	const uint8_t	*name;
	size_t		 name_len, n = 0;

	while (hello_alpn_next(&p, &left, &name, &name_len))
		n++;
	return n > 0 && left == 0;
}

/* Where an accepted answer's name and ALPN list may lie. */
static int
accepted_ok(const uint8_t *b, size_t len, const struct way *w,
    enum hello_result r, const struct hello *h)
{
	if (h->why != NULL || h->off != 0)
		return fuzz_fail("accepted with why or off set");
	if (h->hello_len == 0 || h->hello_len > len)
		return fuzz_fail("hello_len %zu of %zu bytes", h->hello_len,
		    len);
	if ((r == HELLO_SNI) != (h->sni != NULL))
		return fuzz_fail("result and sni disagree");
	if ((h->alpn == NULL) != (h->alpn_len == 0))
		return fuzz_fail("alpn and alpn_len disagree");
	if (h->sslv2)
		return h->sni != NULL || h->alpn != NULL ||
		    h->record_version != 0 ?
		    fuzz_fail("sslv2 hello with fields set") : 0;
	if (h->record_version != get16(b + 1) || b[1] != 3)
		return fuzz_fail("record_version %#x", h->record_version);
	if (h->sni != NULL && !inside(h->sni, h->sni_len, b, h->hello_len) &&
	    !inside(h->sni, h->sni_len, w->scratch, w->scratch_size))
		return fuzz_fail("sni outside the input and scratch");
	if (h->alpn != NULL &&
	    !inside(h->alpn, h->alpn_len, b, h->hello_len) &&
	    !inside(h->alpn, h->alpn_len, w->scratch, w->scratch_size))
		return fuzz_fail("alpn outside the input and scratch");
	if (h->sni != NULL && !name_ok(h->sni, h->sni_len))
		return fuzz_fail("sni breaks the name rules");
	if (h->alpn != NULL && !alpn_ok(h->alpn, h->alpn_len))
		return fuzz_fail("alpn list does not walk");
	return 0;
}

/* The fields parse_hello.h promises for each kind of answer. */
static int
shape_ok(const uint8_t *b, size_t len, const struct way *w,
    enum hello_result r, const struct hello *h)
{
	switch (r) {
	case HELLO_NEED_MORE:
		if (h->sni != NULL || h->alpn != NULL || h->sni_len != 0 ||
		    h->alpn_len != 0 || h->hello_len != 0 || h->sslv2 != 0 ||
		    h->record_version != 0 || h->why != NULL || h->off != 0)
			return fuzz_fail("NEED_MORE with fields set");
		return 0;
	case HELLO_NOT_TLS:
	case HELLO_INVALID:
		if (h->why == NULL)
			return fuzz_fail("rejected without why");
		if (h->sni != NULL || h->alpn != NULL || h->sni_len != 0 ||
		    h->alpn_len != 0 || h->hello_len != 0 || h->sslv2 != 0 ||
		    h->record_version != 0)
			return fuzz_fail("rejected with fields set");
		return 0;
	case HELLO_SNI:
	case HELLO_NO_SNI:
		return accepted_ok(b, len, w, r, h);
	}
	return fuzz_fail("result %d out of range", (int)r);
}

/* Moves a pointer into the copy <from> to the same place in <to>. */
static const uint8_t *
rebase(const uint8_t *p, const uint8_t *from, size_t len, const uint8_t *to)
{
	if (p == NULL || !inside(p, 0, from, len))
		return p;
	return to + (p - from);
}

/*
 * One hello_parse() call on b[0..len), through an exact-size heap copy
 * when the way asks for it, so that a read past the end is caught.
 */
static int
call(struct hello_scan *scan, const uint8_t *b, size_t len,
    const struct way *w, enum hello_result *r, struct hello *h)
{
	uint8_t		*c = NULL;
	const uint8_t	*p = b;
	int		 rc;

	if (w->copy && len > 0) {
		if ((c = malloc(len)) == NULL)
			abort();
		memcpy(c, b, len);
		p = c;
	}
	*r = hello_parse(scan, p, len, w->scratch, w->scratch_size, h);
	rc = shape_ok(p, len, w, *r, h);
	h->sni = rebase(h->sni, p, len, b);
	h->alpn = rebase(h->alpn, p, len, b);
	free(c);
	return rc;
}

/*
 * Feeds b[0..n) in the lengths of <w> to one scan until it answers, then
 * asks once more with all n bytes: the answer must not change.
 */
static int
feed(const uint8_t *b, size_t n, const struct way *w, struct answer *a)
{
	struct hello_scan	 scan;
	struct answer		 again;

	hello_init(&scan);
	memset(a, 0, sizeof(*a));
	a->r = HELLO_NEED_MORE;
	a->at = n;
	for (size_t i = 0; i < w->nl; i++) {
		if (call(&scan, b, w->ls[i], w, &a->r, &a->h) == -1)
			return fuzz_fail("%s, %zu bytes: %s", w->name,
			    w->ls[i], fault);
		if (a->r != HELLO_NEED_MORE) {
			a->at = w->ls[i];
			break;
		}
	}
	if (a->r == HELLO_NEED_MORE)
		return 0;
	if (call(&scan, b, n, w, &again.r, &again.h) == -1)
		return fuzz_fail("%s, asked again: %s", w->name, fault);
	if (!hello_same(a->r, &a->h, again.r, &again.h))
		return fuzz_fail("%s: asked again, the answer changed",
		    w->name);
	return 0;
}

/*
 * A feed agrees with the whole-input answer, and an accepted hello is
 * answered by the first length that holds all of it.
 */
static int
agree(const struct answer *whole, const struct answer *a,
    const struct way *w)
{
	if (!hello_same(whole->r, &whole->h, a->r, &a->h))
		return fuzz_fail("%s: result %d why \"%s\", whole gave %d "
		    "why \"%s\"", w->name, (int)a->r,
		    a->h.why ? a->h.why : "-", (int)whole->r,
		    whole->h.why ? whole->h.why : "-");
	if (whole->r != HELLO_SNI && whole->r != HELLO_NO_SNI)
		return 0;
	for (size_t i = 0; i < w->nl; i++)
		if (w->ls[i] >= whole->h.hello_len)
			return a->at == w->ls[i] ? 0 : fuzz_fail("%s: "
			    "answered at %zu, hello ends at %zu", w->name,
			    a->at, whole->h.hello_len);
	return fuzz_fail("%s: never fed the whole hello", w->name);
}

static int
feed_agree(const uint8_t *b, size_t n, const struct way *w,
    const struct answer *whole)
{
	struct answer	 a;

	if (feed(b, n, w, &a) == -1)
		return -1;
	return agree(whole, &a, w);
}

static uint32_t
hash(const uint8_t *b, size_t n)
{
	uint32_t	 h = 2166136261U;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619U;
	return h != 0 ? h : 1;
}

static uint32_t
rng(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int
size_cmp(const void *a, const void *b)
{
	size_t	 x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Fills lens[] with 1..n, every length once. */
static size_t
lens_all(size_t n)
{
	for (size_t i = 0; i < n; i++)
		lens[i] = i + 1;
	return n;
}

/* Fills lens[] with up to NCUTS growing lengths from <seed>, then n. */
static size_t
lens_cut(size_t n, uint32_t *seed)
{
	size_t	 nl = 0;

	for (size_t i = 0; i < NCUTS && n > 1; i++)
		lens[nl++] = 1 + rng(seed) % (n - 1);
	qsort(lens, nl, sizeof(lens[0]), size_cmp);
	lens[nl++] = n;
	return nl;
}

/*
 * For an accepted TLS hello: the records it spans, whose bodies must add
 * up to the handshake message joined in scratch.
 */
static int
records(const uint8_t *b, size_t hello_len, size_t *nrec, size_t *body)
{
	size_t	 off, rlen;

	*nrec = 0;
	*body = 0;
	for (off = 0; off < hello_len; off += REC_HDR_LEN + rlen) {
		if (hello_len - off < REC_HDR_LEN)
			return fuzz_fail("hello ends inside a record header");
		rlen = get16(b + off + 3);
		*body += rlen;
		(*nrec)++;
	}
	if (off != hello_len)
		return fuzz_fail("hello ends inside a record");
	return 0;
}

/* What a feed with a given scratch size must answer. */
enum want {
	WANT_SAME,		/* what the whole input gave */
	WANT_TOO_LARGE,		/* HELLO_INVALID, hello_why_scratch */
	WANT_EITHER
};

/*
 * Feeds b[0..n) once with a heap scratch of exactly <size> bytes (NULL
 * for 0) and compares the answer with <whole> as <want> says.
 */
static int
feed_scratch(const uint8_t *b, size_t n, const struct answer *whole,
    size_t size, enum want want)
{
	struct answer	 a;
	struct way	 w;
	uint8_t		*s = NULL;
	int		 rc, big_ok;

	if (size > 0 && (s = malloc(size)) == NULL)
		abort();
	lens[0] = n;
	w = (struct way){ lens, 1, s, size, 0, "sized scratch" };
	if ((rc = feed(b, n, &w, &a)) == 0) {
		big_ok = a.r == HELLO_INVALID && a.h.why == hello_why_scratch;
		if (want == WANT_SAME)
			rc = agree(whole, &a, &w);
		else if (want == WANT_EITHER && !big_ok)
			rc = agree(whole, &a, &w);
		else if (want == WANT_TOO_LARGE && !big_ok)
			rc = fuzz_fail("scratch one byte short: result %d",
			    (int)a.r);
	}
	free(s);
	if (rc == -1)
		return fuzz_fail("scratch of %zu: %s", size, fault);
	return 0;
}

/*
 * An accepted hello needs scratch only when it spans records, and then
 * exactly the handshake message: one byte less must be "too large".
 */
static int
scratch_exact(const uint8_t *b, size_t n, const struct answer *whole)
{
	size_t	 nrec, need;

	if (records(b, whole->h.hello_len, &nrec, &need) == -1)
		return -1;
	if (nrec == 1)
		return feed_scratch(b, n, whole, 0, WANT_SAME);
	if (feed_scratch(b, n, whole, need, WANT_SAME) == -1)
		return -1;
	return feed_scratch(b, n, whole, need - 1, WANT_TOO_LARGE);
}

/* Every check on one input; 0, or -1 with the fault recorded. */
static int
check(const uint8_t *b, size_t n)
{
	struct answer	 whole;
	struct way	 w;
	uint32_t	 seed = hash(b, n);

	if (big == NULL && (big = malloc(BIG_SCRATCH)) == NULL)
		abort();
	if (lens_size < n + NCUTS + 1) {
		free(lens);
		lens_size = n + NCUTS + 1;
		if ((lens = malloc(lens_size * sizeof(*lens))) == NULL)
			abort();
	}

	lens[0] = n;
	w = (struct way){ lens, 1, big, BIG_SCRATCH, 0, "whole" };
	if (feed(b, n, &w, &whole) == -1)
		return -1;
	if (whole.r == HELLO_INVALID && whole.h.why == hello_why_scratch)
		return fuzz_fail("too large for a scratch over 16 MB");

	w = (struct way){ lens, lens_all(n), big, BIG_SCRATCH, 0,
	    "byte by byte" };
	if (feed_agree(b, n, &w, &whole) == -1)
		return -1;
	w = (struct way){ lens, lens_cut(n, &seed), big, BIG_SCRATCH, 1,
	    "cut at random, heap copies" };
	if (feed_agree(b, n, &w, &whole) == -1)
		return -1;

	if ((whole.r == HELLO_SNI || whole.r == HELLO_NO_SNI) &&
	    !whole.h.sslv2 && scratch_exact(b, n, &whole) == -1)
		return -1;
	/* Any scratch size: the same answer, or "too large". */
	return feed_scratch(b, n, &whole, rng(&seed) % (n + 1), WANT_EITHER);
}

#ifdef FUZZ_REPLAY
/*
 * Replays each file or directory named, by default tests/fuzz/hello and
 * the ClientHello corpus ($SNIMUX_CORPUS or tests/corpus).  Exits 0 when
 * every input passes.
 */
int
main(int argc, char *argv[])
{
	const char	*corpus;

	if (argc < 2) {
		if ((corpus = getenv("SNIMUX_CORPUS")) == NULL)
			corpus = "tests/corpus";
		replay_dir("tests/fuzz/hello");
		replay_dir(corpus);
	}
	return replay_args(argc, argv);
}
#endif
