/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Tests parse_hello.c: every corpus case and hellos built here are fed
 * whole, byte by byte, in chunks and against an inaccessible page.
 */

#include <sys/mman.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../parse_hello.h"
#include "harness.h"
#include "hello_same.h"

#define BLD_SIZE	(192 * 1024)
#define NAMES_MAX	512
#define ALPN_MAX	16
#define CHUNKS_MAX	256
#define NO_OFF		((size_t)-1)
#define WHY_NOT_TLS	"not a TLS record or SSLv2 hello"

/* A byte string under construction. */
struct bld {
	uint8_t	b[BLD_SIZE];
	size_t	len;
};

/* The shape of a built ClientHello. */
struct spec {
	unsigned	type;		/* handshake type */
	size_t		sid_len;
	size_t		cs_len;		/* cipher suites, in bytes */
	size_t		comp_len;
	int		exts;		/* 0 none, 1 ext_b, 2 one stray byte */
	int		ext_delta;	/* added to the block's length field */
	int		hs_delta;	/* added to the handshake length */
};

/* What one way of feeding an input gave. */
struct run {
	enum hello_result r;
	struct hello	 h;
	size_t		 at;		/* input length of the answer */
	int		 again;		/* one more call agreed */
};

/* Mapped pages ending in a PROT_NONE one. */
struct guard {
	uint8_t	*map;
	size_t	 map_len;
	uint8_t	*end;			/* first inaccessible byte */
};

/* The fields of a corpus NAME.json the test uses. */
struct jcase {
	int	 valid;
	int	 has_sni;
	char	 sni[1024];
	size_t	 sni_len;
	int	 has_alpn;
	size_t	 nalpn;
	char	 alpn[ALPN_MAX][256];
	size_t	 alpn_len[ALPN_MAX];
	size_t	 nchunks;
	size_t	 chunks[CHUNKS_MAX];
	char	 note[2048];
};

struct jp {
	const char	*p, *end;
};

static const struct spec good = { 1, 32, 8, 1, 1, 0, 0 };

static const char *const whys[] = {
	WHY_NOT_TLS,
	"record type not handshake",
	"record version major not 3",
	"record length 0",
	"record length over 16384",
	"handshake type not client_hello",
	"hello larger than scratch",
	"record data after hello",
	"hello too short for version and random",
	"session id past hello end",
	"session id over 32 bytes",
	"cipher suites past hello end",
	"cipher suites empty",
	"cipher suites length odd",
	"compression methods past hello end",
	"no compression methods",
	"extensions length mismatch",
	"extension past extensions end",
	"duplicate extension",
	"server_name list length mismatch",
	"server_name list empty",
	"server_name entry past list end",
	"server_name has two host_names",
	"empty host name",
	"host name over 255 bytes",
	"host name has a bad character",
	"host name has an empty label",
	"alpn list length mismatch",
	"alpn list empty",
	"alpn name past list end",
	"alpn empty protocol name",
	"sslv2 version major not 3",
	"sslv2 cipher specs length",
	"sslv2 session id length",
	"sslv2 challenge length",
	"sslv2 length mismatch"
};
#define NWHYS	(sizeof(whys) / sizeof(whys[0]))

static int	why_hit[NWHYS];
static struct bld msg_b, ext_b, in_b, tmp_b;
static size_t	lens[BLD_SIZE];
static uint8_t	scratch_w[BLD_SIZE], scratch_o[BLD_SIZE], mut[BLD_SIZE];
static uint32_t	rng_state = 0x2545f491;

static void
why_mark(const char *why)
{
	for (size_t i = 0; i < NWHYS; i++)
		if (why != NULL && strcmp(whys[i], why) == 0)
			why_hit[i] = 1;
}

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static const char *
rname(enum hello_result r)
{
	switch (r) {
	case HELLO_NEED_MORE:
		return "NEED_MORE";
	case HELLO_SNI:
		return "SNI";
	case HELLO_NO_SNI:
		return "NO_SNI";
	case HELLO_NOT_TLS:
		return "NOT_TLS";
	case HELLO_INVALID:
		return "INVALID";
	}
	return "?";
}

static void
bld_reset(struct bld *b)
{
	b->len = 0;
}

static void
put8(struct bld *b, size_t v)
{
	if (b->len >= BLD_SIZE) {
		fprintf(stderr, "builder full\n");
		abort();
	}
	b->b[b->len++] = (uint8_t)v;
}

static void
put16(struct bld *b, size_t v)
{
	put8(b, (v >> 8) & 0xff);
	put8(b, v & 0xff);
}

static void
putn(struct bld *b, const void *p, size_t n)
{
	const uint8_t	*s = p;

	for (size_t i = 0; i < n; i++)
		put8(b, s[i]);
}

static void
putfill(struct bld *b, int byte, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put8(b, (size_t)byte);
}

/* Reserves a <width>-byte length field; len_patch() fills it in. */
static size_t
len_mark(struct bld *b, int width)
{
	size_t	 at = b->len;

	putfill(b, 0, (size_t)width);
	return at;
}

static void
len_patch(struct bld *b, size_t at, int width, int delta)
{
	size_t	 v = b->len - at - (size_t)width + (size_t)(long)delta;

	for (int i = width - 1; i >= 0; i--) {
		b->b[at + (size_t)i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static void
ext_add(struct bld *e, unsigned type, const void *data, size_t len)
{
	put16(e, type);
	put16(e, len);
	putn(e, data, len);
}

static void
ext_sni_n(struct bld *e, const char *name, size_t n)
{
	size_t	 ext, list;

	put16(e, 0);
	ext = len_mark(e, 2);
	list = len_mark(e, 2);
	put8(e, 0);
	put16(e, n);
	putn(e, name, n);
	len_patch(e, list, 2, 0);
	len_patch(e, ext, 2, 0);
}

static void
ext_sni(struct bld *e, const char *name)
{
	ext_sni_n(e, name, strlen(name));
}

/* ALPN extension from a NULL-terminated list of names. */
static void
ext_alpn(struct bld *e, const char *const *names)
{
	size_t	 ext, list;

	put16(e, 16);
	ext = len_mark(e, 2);
	list = len_mark(e, 2);
	for (; *names != NULL; names++) {
		put8(e, strlen(*names));
		putn(e, *names, strlen(*names));
	}
	len_patch(e, list, 2, 0);
	len_patch(e, ext, 2, 0);
}

/* Builds a handshake message into msg_b, extensions from ext_b. */
static void
msg_build(const struct spec *s)
{
	size_t	 at;

	bld_reset(&msg_b);
	put8(&msg_b, s->type);
	at = len_mark(&msg_b, 3);
	put16(&msg_b, 0x0303);
	putfill(&msg_b, 0x5a, 32);
	put8(&msg_b, s->sid_len);
	putfill(&msg_b, 0x33, s->sid_len);
	put16(&msg_b, s->cs_len);
	for (size_t i = 0; i < s->cs_len; i++)
		put8(&msg_b, i % 2 ? 0x01 : 0x13);
	put8(&msg_b, s->comp_len);
	putfill(&msg_b, 0, s->comp_len);
	if (s->exts == 1) {
		put16(&msg_b, ext_b.len + (size_t)(long)s->ext_delta);
		putn(&msg_b, ext_b.b, ext_b.len);
	} else if (s->exts == 2)
		put8(&msg_b, 0);
	len_patch(&msg_b, at, 3, s->hs_delta);
}

/* Cuts the ClientHello body to <body_len> bytes, fixing its length. */
static void
msg_cut(size_t body_len)
{
	msg_b.len = 4 + body_len;
	len_patch(&msg_b, 1, 3, 0);
}

/* Splits msg_b into records of sizes[i] bytes, the last size repeating. */
static void
wrap(const size_t *sizes, size_t nsizes)
{
	size_t	 off, n;

	bld_reset(&in_b);
	for (off = 0; off < msg_b.len; off += n) {
		n = *sizes;
		if (nsizes > 1) {
			sizes++;
			nsizes--;
		}
		if (n > msg_b.len - off)
			n = msg_b.len - off;
		put8(&in_b, 22);
		put16(&in_b, 0x0301);
		put16(&in_b, n);
		putn(&in_b, msg_b.b + off, n);
	}
}

static void
build(const struct spec *s, size_t rec_size)
{
	msg_build(s);
	wrap(&rec_size, 1);
}

static void
in_set(const void *p, size_t n)
{
	bld_reset(&in_b);
	putn(&in_b, p, n);
}

static int
guard_new(struct guard *g, size_t n)
{
	size_t	 pg = (size_t)sysconf(_SC_PAGESIZE), data;

	data = (n + pg - 1) / pg * pg;
	if (data == 0)
		data = pg;
	g->map_len = data + pg;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->map == MAP_FAILED)
		return -1;
	if (mprotect(g->map + data, pg, PROT_NONE) == -1) {
		munmap(g->map, g->map_len);
		return -1;
	}
	g->end = g->map + data;
	return 0;
}

static void
guard_free(struct guard *g)
{
	munmap(g->map, g->map_len);
}

/* Puts b[0..n) right before the guard page, or leaves it in place. */
static const uint8_t *
place(const uint8_t *b, size_t n, const struct guard *g)
{
	if (g == NULL)
		return b;
	memcpy(g->end - n, b, n);
	return g->end - n;
}

/*
 * Calls hello_parse() with the lengths ls[0..nl) on one scan state until
 * it answers, then once more.  With a guard, each call's bytes are moved
 * to end at the guard page; the scan state holds only offsets.
 */
static void
feed(const uint8_t *b, size_t n, const size_t *ls, size_t nl,
    const struct guard *g, uint8_t *scratch, size_t ssize, struct run *run)
{
	struct hello_scan	 scan;
	struct hello		 h;
	const uint8_t		*p;
	enum hello_result	 r;
	size_t			 again_len;

	hello_init(&scan);
	memset(run, 0, sizeof(*run));
	run->r = HELLO_NEED_MORE;
	run->at = n;
	run->again = 1;
	for (size_t i = 0; i < nl; i++) {
		p = place(b, ls[i], g);
		run->r = hello_parse(&scan, p, ls[i], scratch, ssize, &run->h);
		if (run->r != HELLO_NEED_MORE) {
			run->at = ls[i];
			break;
		}
	}
	if (run->r == HELLO_NEED_MORE)
		return;

	/* A caller that asks again gets the same answer. */
	again_len = g == NULL ? n : run->at;
	r = hello_parse(&scan, place(b, again_len, g), again_len, scratch,
	    ssize, &h);
	run->again = r == run->r && h.off == run->h.off &&
	    h.hello_len == run->h.hello_len && h.sni_len == run->h.sni_len &&
	    h.alpn_len == run->h.alpn_len && h.why == run->h.why;
}

static int
accepted(enum hello_result r)
{
	return r == HELLO_SNI || r == HELLO_NO_SNI;
}

/*
 * A feed agrees with the whole-input answer, and an accepted hello is
 * answered by the first call that holds all of it, not before or after.
 */
static int
feed_agrees(const struct run *whole, const struct run *run,
    const size_t *ls, size_t nl)
{
	if (!hello_same(whole->r, &whole->h, run->r, &run->h) || !run->again)
		return 0;
	if (!accepted(whole->r))
		return 1;
	for (size_t i = 0; i < nl; i++)
		if (ls[i] >= whole->h.hello_len)
			return run->at == ls[i];
	return 0;
}

static void
run_diag(const char *what, const struct run *run)
{
	printf("#   %s: %s why=%s off=%zu at=%zu hello_len=%zu\n", what,
	    rname(run->r), run->h.why != NULL ? run->h.why : "-", run->h.off,
	    run->at, run->h.hello_len);
}

static void
feed_ok(const char *label, const char *how, const struct run *whole,
    const struct run *run, const size_t *ls, size_t nl)
{
	int	 agree = feed_agrees(whole, run, ls, nl);

	ok(agree, "%s: %s", label, how);
	if (!agree) {
		run_diag("whole", whole);
		run_diag(how, run);
	}
}

/* Growing lengths for the guard-page sweep: all of them when short. */
static size_t
prefix_lens(size_t n)
{
	size_t	 nl = 0, k;

	for (k = 1; k <= n && (k <= 512 || n <= 4096); k++)
		lens[nl++] = k;
	for (; k < n; k += 509)
		lens[nl++] = k;
	if (lens[nl - 1] != n)
		lens[nl++] = n;
	return nl;
}

/*
 * Feeds b[0..n) whole (into <whole>, with <scratch>), byte by byte, whole
 * and growing against a guard page (scratch against one too), and in
 * <chunks>; every feed must agree with the whole one.
 */
static void
check_feeds(const char *label, const uint8_t *b, size_t n,
    const size_t *chunks, size_t nchunks, uint8_t *scratch, size_t ssize,
    struct run *whole)
{
	struct run	 run;
	struct guard	 g, gs;
	uint8_t		*so = scratch == NULL ? NULL : scratch_o, *sg = NULL;
	size_t		 nl, sum = 0;

	lens[0] = n;
	feed(b, n, lens, 1, NULL, scratch, ssize, whole);
	for (size_t i = 0; i < n; i++)
		lens[i] = i + 1;
	feed(b, n, lens, n, NULL, so, ssize, &run);
	feed_ok(label, "byte by byte", whole, &run, lens, n);

	if (guard_new(&g, n) == -1) {
		ok(0, "%s: guard page", label);
		return;
	}
	if (guard_new(&gs, ssize) == -1) {
		ok(0, "%s: guard page for scratch", label);
		guard_free(&g);
		return;
	}
	if (scratch != NULL && ssize > 0)
		sg = gs.end - ssize;
	lens[0] = n;
	feed(b, n, lens, 1, &g, sg, ssize, &run);
	feed_ok(label, "whole against guard page", whole, &run, lens, 1);
	nl = prefix_lens(n);
	feed(b, n, lens, nl, &g, sg, ssize, &run);
	feed_ok(label, "growing against guard page", whole, &run, lens, nl);
	guard_free(&gs);
	guard_free(&g);

	if (nchunks == 0)
		return;
	for (size_t i = 0; i < nchunks; i++) {
		sum += chunks[i];
		lens[i] = sum;
	}
	EXPECT_EQ(sum, n, "%s: chunks add up to the size", label);
	feed(b, n, lens, nchunks, NULL, so, ssize, &run);
	feed_ok(label, "in chunks", whole, &run, lens, nchunks);
}

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
	    *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

/* Skips blanks, then consumes <lit> if it comes next. */
static int
jp_lit(struct jp *j, const char *lit)
{
	size_t	 n = strlen(lit);

	jp_ws(j);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return 0;
	j->p += n;
	return 1;
}

static int
jp_hex4(struct jp *j, unsigned *v)
{
	unsigned	 d;

	*v = 0;
	for (int i = 0; i < 4; i++, j->p++) {
		if (j->p == j->end)
			return -1;
		if (*j->p >= '0' && *j->p <= '9')
			d = (unsigned)(*j->p - '0');
		else if (*j->p >= 'a' && *j->p <= 'f')
			d = (unsigned)(*j->p - 'a' + 10);
		else if (*j->p >= 'A' && *j->p <= 'F')
			d = (unsigned)(*j->p - 'A' + 10);
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* Appends code point <ch> as UTF-8; dst NULL only counts. */
static int
jp_emit(char *dst, size_t size, size_t *n, unsigned ch)
{
	uint8_t	 u[3];
	size_t	 k;

	if (ch < 0x80) {
		u[0] = (uint8_t)ch;
		k = 1;
	} else if (ch < 0x800) {
		u[0] = (uint8_t)(0xc0 | ch >> 6);
		u[1] = (uint8_t)(0x80 | (ch & 0x3f));
		k = 2;
	} else {
		u[0] = (uint8_t)(0xe0 | ch >> 12);
		u[1] = (uint8_t)(0x80 | ((ch >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (ch & 0x3f));
		k = 3;
	}
	if (dst != NULL && *n + k >= size)
		return -1;
	if (dst != NULL)
		memcpy(dst + *n, u, k);
	*n += k;
	return 0;
}

static unsigned
jp_escape(unsigned ch)
{
	switch (ch) {
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case 'r':
		return '\r';
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case '"':
	case '\\':
	case '/':
		return ch;
	}
	return 0x110000;
}

/* A JSON string into dst[0..size), NUL-terminated; dst NULL skips it. */
static int
jp_str(struct jp *j, char *dst, size_t size, size_t *len)
{
	size_t		 n = 0;
	unsigned	 ch;

	if (!jp_lit(j, "\""))
		return -1;
	while (j->p < j->end && *j->p != '"') {
		ch = (unsigned char)*j->p++;
		if (ch == '\\' && j->p < j->end) {
			ch = (unsigned char)*j->p++;
			if (ch == 'u') {
				if (jp_hex4(j, &ch) == -1)
					return -1;
			} else if ((ch = jp_escape(ch)) == 0x110000)
				return -1;
		}
		if (jp_emit(dst, size, &n, ch) == -1)
			return -1;
	}
	if (j->p == j->end)
		return -1;
	j->p++;
	if (dst != NULL)
		dst[n] = '\0';
	if (len != NULL)
		*len = n;
	return 0;
}

static int
jp_num(struct jp *j, size_t *v)
{
	jp_ws(j);
	if (j->p == j->end || *j->p < '0' || *j->p > '9')
		return -1;
	for (*v = 0; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++)
		*v = *v * 10 + (size_t)(*j->p - '0');
	return 0;
}

/* Skips any value of the flat corpus files. */
static int
jp_skip(struct jp *j)
{
	size_t	 v;

	jp_ws(j);
	if (j->p == j->end)
		return -1;
	if (*j->p == '"')
		return jp_str(j, NULL, 0, NULL);
	if (jp_lit(j, "null") || jp_lit(j, "true") || jp_lit(j, "false"))
		return 0;
	if (jp_lit(j, "[")) {
		if (jp_lit(j, "]"))
			return 0;
		do {
			if (jp_skip(j) == -1)
				return -1;
		} while (jp_lit(j, ","));
		return jp_lit(j, "]") ? 0 : -1;
	}
	if (*j->p == '-')
		j->p++;
	return jp_num(j, &v);
}

static int
jp_alpn(struct jp *j, struct jcase *c)
{
	if (jp_lit(j, "null"))
		return 0;
	c->has_alpn = 1;
	if (!jp_lit(j, "["))
		return -1;
	if (jp_lit(j, "]"))
		return 0;
	do {
		if (c->nalpn == ALPN_MAX || jp_str(j, c->alpn[c->nalpn],
		    sizeof(c->alpn[0]), &c->alpn_len[c->nalpn]) == -1)
			return -1;
		c->nalpn++;
	} while (jp_lit(j, ","));
	return jp_lit(j, "]") ? 0 : -1;
}

static int
jp_chunks(struct jp *j, struct jcase *c)
{
	if (jp_lit(j, "null"))
		return 0;
	if (!jp_lit(j, "["))
		return -1;
	if (jp_lit(j, "]"))
		return 0;
	do {
		if (c->nchunks == CHUNKS_MAX ||
		    jp_num(j, &c->chunks[c->nchunks]) == -1)
			return -1;
		c->nchunks++;
	} while (jp_lit(j, ","));
	return jp_lit(j, "]") ? 0 : -1;
}

static int
jp_field(struct jp *j, const char *key, struct jcase *c)
{
	if (strcmp(key, "sni") == 0) {
		if (jp_lit(j, "null"))
			return 0;
		c->has_sni = 1;
		return jp_str(j, c->sni, sizeof(c->sni), &c->sni_len);
	}
	if (strcmp(key, "alpn") == 0)
		return jp_alpn(j, c);
	if (strcmp(key, "chunks") == 0)
		return jp_chunks(j, c);
	if (strcmp(key, "valid") == 0) {
		if (jp_lit(j, "true"))
			c->valid = 1;
		else if (jp_lit(j, "false"))
			c->valid = 0;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "note") == 0 && !jp_lit(j, "null"))
		return jp_str(j, c->note, sizeof(c->note), NULL);
	return jp_skip(j);
}

/* Reads one flat corpus object; 0 when it parsed and has "valid". */
static int
jp_case(const char *text, size_t n, struct jcase *c)
{
	struct jp	 j;
	char		 key[64];

	memset(c, 0, sizeof(*c));
	c->valid = -1;
	j.p = text;
	j.end = text + n;
	if (!jp_lit(&j, "{"))
		return -1;
	if (!jp_lit(&j, "}")) {
		do {
			if (jp_str(&j, key, sizeof(key), NULL) == -1 ||
			    !jp_lit(&j, ":") || jp_field(&j, key, c) == -1)
				return -1;
		} while (jp_lit(&j, ","));
		if (!jp_lit(&j, "}"))
			return -1;
	}
	jp_ws(&j);
	return j.p == j.end && c->valid != -1 ? 0 : -1;
}

static int
alpn_equal(const struct hello *h, const struct jcase *c)
{
	const uint8_t	*p = h->alpn, *name;
	size_t		 left = h->alpn_len, name_len, i;

	if (!c->has_alpn)
		return h->alpn == NULL && h->alpn_len == 0;
	for (i = 0; hello_alpn_next(&p, &left, &name, &name_len); i++)
		if (i >= c->nalpn || name_len != c->alpn_len[i] ||
		    memcmp(name, c->alpn[i], name_len) != 0)
			return 0;
	return i == c->nalpn && left == 0;
}

/* The exact answer expected for the corpus cases that must fail. */
static const struct {
	const char		*name;
	enum hello_result	 r;
	const char		*why;
} corpus_bad[] = {
	{ "crafted_duplicate_server_name_ext", HELLO_INVALID,
	    "duplicate extension" },
	{ "crafted_extension_length_past_end", HELLO_INVALID,
	    "extension past extensions end" },
	{ "crafted_handshake_type_server_hello", HELLO_INVALID,
	    "handshake type not client_hello" },
	{ "crafted_plain_http_get", HELLO_NOT_TLS, WHY_NOT_TLS },
	{ "crafted_record_length_over_16384", HELLO_INVALID,
	    "record length over 16384" },
	{ "crafted_record_type_application_data", HELLO_INVALID,
	    "record type not handshake" },
	{ "crafted_sni_list_length_too_long", HELLO_INVALID,
	    "server_name list length mismatch" },
	{ "crafted_sni_name_length_0", HELLO_INVALID, "empty host name" },
	{ "crafted_sni_name_with_nul", HELLO_INVALID,
	    "host name has a bad character" },
	{ "crafted_sni_zero_entries", HELLO_INVALID,
	    "server_name list empty" },
	{ "crafted_truncated_record", HELLO_NEED_MORE, NULL }
};

static void
corpus_expect_bad(const char *name, const struct run *w)
{
	/*
	 * The README counts the end of the input before the hello is
	 * complete as invalid: the daemon sees EOF while NEED_MORE.
	 */
	ok(w->r == HELLO_INVALID || w->r == HELLO_NOT_TLS ||
	    w->r == HELLO_NEED_MORE, "%s: rejected (%s%s%s)", name,
	    rname(w->r), w->h.why != NULL ? ": " : "",
	    w->h.why != NULL ? w->h.why : "");
	for (size_t i = 0; i < sizeof(corpus_bad) / sizeof(corpus_bad[0]);
	    i++) {
		if (strcmp(corpus_bad[i].name, name) != 0)
			continue;
		EXPECT_EQ(w->r, corpus_bad[i].r, "%s: result", name);
		EXPECT_STR(w->h.why, corpus_bad[i].why, "%s: why", name);
		if (w->r == corpus_bad[i].r)
			why_mark(w->h.why);
	}
}

static void
corpus_expect_good(const char *name, const struct jcase *c, size_t size,
    const struct run *w)
{
	const char	*s;
	size_t		 end = size;

	if ((s = strstr(c->note, "ends at byte ")) != NULL)
		end = strtoul(s + strlen("ends at byte "), NULL, 10);
	EXPECT_EQ(w->r, c->has_sni ? HELLO_SNI : HELLO_NO_SNI, "%s: result",
	    name);
	if (c->has_sni)
		ok(w->h.sni_len == c->sni_len && w->h.sni != NULL &&
		    memcmp(w->h.sni, c->sni, c->sni_len) == 0, "%s: sni %s",
		    name, c->sni);
	else
		ok(w->h.sni == NULL && w->h.sni_len == 0, "%s: no sni", name);
	ok(alpn_equal(&w->h, c), "%s: alpn list", name);
	EXPECT_EQ(w->h.hello_len, end, "%s: hello_len", name);
}

static void
corpus_case(const char *dir, const char *name)
{
	struct jcase	 c;
	struct run	 w;
	char		 path[4096];
	char		*json;
	uint8_t		*bin;
	size_t		 json_len, size;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	json = (char *)read_file(path, &json_len);
	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	bin = read_file(path, &size);
	ok(json != NULL && bin != NULL && jp_case(json, json_len, &c) == 0,
	    "%s: json and bin read", name);
	if (json == NULL || bin == NULL || c.valid == -1) {
		free(json);
		free(bin);
		return;
	}

	check_feeds(name, bin, size, c.chunks, c.nchunks, scratch_w, size,
	    &w);
	if (c.valid)
		corpus_expect_good(name, &c, size, &w);
	else
		corpus_expect_bad(name, &w);
	free(json);
	free(bin);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
t_corpus(void)
{
	static char	 names[NAMES_MAX][256];
	const char	*dir;
	DIR		*d;
	struct dirent	*de;
	size_t		 n = 0, k;

	if ((dir = getenv("SNIMUX_CORPUS")) == NULL)
		dir = "tests/corpus";
	if ((d = opendir(dir)) == NULL) {
		ok(0, "corpus directory %s opens", dir);
		return;
	}
	while ((de = readdir(d)) != NULL && n < NAMES_MAX) {
		k = strlen(de->d_name);
		if (k <= 5 || k >= sizeof(names[0]) + 5 ||
		    strcmp(de->d_name + k - 5, ".json") != 0)
			continue;
		memcpy(names[n], de->d_name, k - 5);
		names[n++][k - 5] = '\0';
	}
	closedir(d);
	ok(n > 0, "corpus %s has %zu cases", dir, n);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++)
		corpus_case(dir, names[i]);
}

/* Checks in_b as a good hello carrying <sni> (NULL: none). */
static void
expect_sni(const char *label, const char *sni, struct run *w)
{
	check_feeds(label, in_b.b, in_b.len, NULL, 0, scratch_w, in_b.len, w);
	if (sni == NULL)
		ok(w->r == HELLO_NO_SNI && w->h.sni == NULL, "%s: no name",
		    label);
	else
		ok(w->r == HELLO_SNI && w->h.sni_len == strlen(sni) &&
		    memcmp(w->h.sni, sni, w->h.sni_len) == 0, "%s: name",
		    label);
	EXPECT_EQ(w->h.hello_len, in_b.len, "%s: hello_len", label);
}

/* Checks that in_b gives <r> for reason <why> at <off> (or anywhere). */
static void
expect_bad(const char *label, enum hello_result r, const char *why,
    size_t off)
{
	struct run	 w;

	check_feeds(label, in_b.b, in_b.len, NULL, 0, scratch_w, in_b.len,
	    &w);
	EXPECT_EQ(w.r, r, "%s: %s", label, rname(r));
	EXPECT_STR(w.h.why, why, "%s: why", label);
	if (w.r == r && w.h.why != NULL && strcmp(w.h.why, why) == 0)
		why_mark(why);
	if (off != NO_OFF)
		EXPECT_EQ(w.h.off, off, "%s: offset", label);
}

/* Good hello with one extension block built from ext_b, one record. */
static void
build_good(void)
{
	build(&good, 16384);
}

static void
t_not_tls(void)
{
	static const uint8_t	 v2_type[] = { 0x80, 0x31, 0x02, 0x03, 0x01 };

	in_set("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
	expect_bad("http request", HELLO_NOT_TLS, WHY_NOT_TLS, 0);
	in_set("SSH-2.0-OpenSSH_9.2p1\r\n", 23);
	expect_bad("ssh banner", HELLO_NOT_TLS, WHY_NOT_TLS, 0);
	in_set("\0", 1);
	expect_bad("NUL byte", HELLO_NOT_TLS, WHY_NOT_TLS, 0);
	in_set(v2_type, sizeof(v2_type));
	expect_bad("sslv2 header, message type 2", HELLO_NOT_TLS,
	    WHY_NOT_TLS, 2);
}

static void
t_records(void)
{
	static const uint8_t	 alert[] = { 21, 3, 3, 0, 2, 2, 40 };
	static const uint8_t	 v2rec[] = { 22, 2, 0, 0, 4, 1, 0, 0, 0 };
	static const uint8_t	 zero[] = { 22, 3, 1, 0, 0, 1, 0 };
	static const uint8_t	 over[] = { 22, 3, 1, 0x40, 0x01, 1 };
	static const uint8_t	 ccs[] = { 20, 3, 3, 0, 1, 1 };
	size_t			 fifty = 50;
	struct bld		*b = &tmp_b;

	in_set(alert, sizeof(alert));
	expect_bad("alert record first", HELLO_INVALID,
	    "record type not handshake", 0);
	in_set(v2rec, sizeof(v2rec));
	expect_bad("record version 2.0", HELLO_INVALID,
	    "record version major not 3", 1);
	in_set(zero, sizeof(zero));
	expect_bad("record length 0", HELLO_INVALID, "record length 0", 3);
	in_set(over, sizeof(over));
	expect_bad("record length 16385", HELLO_INVALID,
	    "record length over 16384", 3);

	/* A change_cipher_spec record between two hello records. */
	bld_reset(&ext_b);
	ext_sni(&ext_b, "ccs.example.com");
	msg_build(&good);
	wrap(&fifty, 1);
	bld_reset(b);
	putn(b, in_b.b, 55);
	putn(b, ccs, sizeof(ccs));
	putn(b, in_b.b + 55, in_b.len - 55);
	in_set(b->b, b->len);
	expect_bad("change_cipher_spec inside the hello", HELLO_INVALID,
	    "record type not handshake", 55);
	wrap(&fifty, 1);
	in_b.b[56] = 2;
	expect_bad("second record version 2", HELLO_INVALID,
	    "record version major not 3", 56);
}

static void
t_handshake(void)
{
	struct spec	 s;
	struct run	 w;
	size_t		 fifty = 50;

	bld_reset(&ext_b);
	ext_sni(&ext_b, "hs.example.com");
	s = good;
	s.type = 2;
	build(&s, 16384);
	expect_bad("handshake type server_hello", HELLO_INVALID,
	    "handshake type not client_hello", 5);

	/* The message ends 10 bytes before its record does. */
	s = good;
	s.hs_delta = -10;
	build(&s, 16384);
	expect_bad("record longer than the hello", HELLO_INVALID,
	    "record data after hello", 5 + msg_b.len - 10);
	msg_build(&s);
	wrap(&fifty, 1);
	expect_bad("last record longer than the hello", HELLO_INVALID,
	    "record data after hello", (msg_b.len - 10) / 50 * 55 + 5 +
	    (msg_b.len - 10) % 50);

	/* The message claims 10 more bytes than its records: wait. */
	s = good;
	s.hs_delta = 10;
	build(&s, 16384);
	check_feeds("hello longer than its record", in_b.b, in_b.len, NULL, 0,
	    scratch_w, in_b.len + 10, &w);
	EXPECT_EQ(w.r, HELLO_NEED_MORE, "hello longer than its record: waits");
	/* ... and the 10 bytes that come next break the extensions. */
	put8(&in_b, 22);
	put16(&in_b, 0x0303);
	put16(&in_b, 10);
	putfill(&in_b, 0, 10);
	expect_bad("hello padded by a second record", HELLO_INVALID,
	    "extensions length mismatch", 5 + 4 + 2 + 32 + 1 + 32 + 2 + 8 +
	    2);
}

static void
t_body(void)
{
	struct spec	 s;
	size_t		 comp_at = 2 + 32 + 1 + 32 + 2 + 8;

	bld_reset(&ext_b);
	ext_sni(&ext_b, "body.example.com");
	msg_build(&good);
	msg_cut(20);
	wrap((size_t[]){ 16384 }, 1);
	expect_bad("hello of 20 bytes", HELLO_INVALID,
	    "hello too short for version and random", 9);
	msg_build(&good);
	msg_cut(2 + 32 + 1 + 10);
	wrap((size_t[]){ 16384 }, 1);
	expect_bad("session id cut", HELLO_INVALID,
	    "session id past hello end", 9 + 34);
	s = good;
	s.sid_len = 33;
	build(&s, 16384);
	expect_bad("session id of 33 bytes", HELLO_INVALID,
	    "session id over 32 bytes", 9 + 34);
	msg_build(&good);
	msg_cut(2 + 32 + 1 + 32 + 2 + 3);
	wrap((size_t[]){ 16384 }, 1);
	expect_bad("cipher suites cut", HELLO_INVALID,
	    "cipher suites past hello end", 9 + 67);
	s = good;
	s.cs_len = 0;
	build(&s, 16384);
	expect_bad("no cipher suites", HELLO_INVALID, "cipher suites empty",
	    9 + 67);
	s.cs_len = 3;
	build(&s, 16384);
	expect_bad("cipher suites length 3", HELLO_INVALID,
	    "cipher suites length odd", 9 + 67);
	s = good;
	s.comp_len = 2;
	msg_build(&s);
	msg_cut(comp_at + 1 + 1);
	wrap((size_t[]){ 16384 }, 1);
	expect_bad("compression methods cut", HELLO_INVALID,
	    "compression methods past hello end", 9 + comp_at);
	s = good;
	s.comp_len = 0;
	build(&s, 16384);
	expect_bad("no compression methods", HELLO_INVALID,
	    "no compression methods", 9 + comp_at);
}

static void
t_extensions(void)
{
	static const char *const h2[] = { "h2", NULL };
	struct spec	 s;
	size_t		 block = 5 + 4 + 2 + 32 + 1 + 32 + 2 + 8 + 1 + 1;

	bld_reset(&ext_b);
	ext_sni(&ext_b, "ext.example.com");
	s = good;
	s.ext_delta = -1;
	build(&s, 16384);
	expect_bad("extensions block with a trailing byte", HELLO_INVALID,
	    "extensions length mismatch", block);
	s.ext_delta = 1;
	build(&s, 16384);
	expect_bad("extensions block one byte short", HELLO_INVALID,
	    "extensions length mismatch", block);
	s.exts = 2;
	build(&s, 16384);
	expect_bad("one stray byte after compression", HELLO_INVALID,
	    "extensions length mismatch", block);

	putfill(&ext_b, 0x44, 3);
	build_good();
	expect_bad("three stray bytes in the block", HELLO_INVALID,
	    "extension past extensions end", in_b.len - 3);
	bld_reset(&ext_b);
	ext_sni(&ext_b, "ext.example.com");
	put16(&ext_b, 0x1234);
	put16(&ext_b, 5);
	putfill(&ext_b, 0, 4);
	build_good();
	expect_bad("extension longer than the block", HELLO_INVALID,
	    "extension past extensions end", in_b.len - 8);

	bld_reset(&ext_b);
	ext_alpn(&ext_b, h2);
	ext_sni(&ext_b, "dup.example.com");
	ext_alpn(&ext_b, h2);
	build_good();
	expect_bad("two ALPN extensions", HELLO_INVALID,
	    "duplicate extension", in_b.len - 9);
	bld_reset(&ext_b);
	ext_add(&ext_b, 0x1234, "x", 1);
	ext_add(&ext_b, 0x1234, "", 0);
	build_good();
	expect_bad("two unknown extensions of one type", HELLO_INVALID,
	    "duplicate extension", in_b.len - 4);
}

/* An absent or empty extensions block is a good hello without a name. */
static void
t_no_extensions(void)
{
	struct spec	 s;
	struct run	 w;

	bld_reset(&ext_b);
	build_good();
	expect_sni("empty extensions block", NULL, &w);
	s = good;
	s.exts = 0;
	build(&s, 16384);
	expect_sni("no extensions block", NULL, &w);
	EXPECT_EQ(w.h.record_version, 0x0301, "no extensions: record version");
}

/* A hello whose last extension is <type> with data[0..len). */
static void
build_ext_data(unsigned type, const void *data, size_t len)
{
	bld_reset(&ext_b);
	ext_add(&ext_b, 23, "", 0);
	ext_add(&ext_b, type, data, len);
	build_good();
}

/* Malformed extension data and where in it the check fails. */
static const struct {
	const char	*label;
	unsigned	 type;
	const char	*data;
	size_t		 len;
	const char	*why;
	size_t		 at;
} bad_data[] = {
	{ "server_name without data", 0, "", 0,
	    "server_name list length mismatch", 0 },
	{ "server_name list length one too long", 0, "\0\6\0\0\2ab", 7,
	    "server_name list length mismatch", 0 },
	{ "server_name list empty", 0, "\0\0", 2, "server_name list empty",
	    0 },
	{ "host name longer than the list", 0, "\0\5\0\0\20ab", 7,
	    "server_name entry past list end", 2 },
	{ "server_name entry cut", 0, "\0\2\0\0", 4,
	    "server_name entry past list end", 2 },
	{ "two host_name entries", 0, "\0\20\0\0\5a.com\0\0\5b.com", 18,
	    "server_name has two host_names", 10 },
	{ "ALPN without data", 16, "", 0, "alpn list length mismatch", 0 },
	{ "ALPN list length one too long", 16, "\0\4\2h2", 5,
	    "alpn list length mismatch", 0 },
	{ "ALPN list length one too short", 16, "\0\2\2h2", 5,
	    "alpn list length mismatch", 0 },
	{ "ALPN list empty", 16, "\0\0", 2, "alpn list empty", 0 },
	{ "ALPN name past the list", 16, "\0\3\3h2", 5,
	    "alpn name past list end", 2 },
	{ "ALPN empty name", 16, "\0\4\2h2\0", 6, "alpn empty protocol name",
	    5 }
};

static void
t_bad_data(void)
{
	for (size_t i = 0; i < sizeof(bad_data) / sizeof(bad_data[0]); i++) {
		build_ext_data(bad_data[i].type, bad_data[i].data,
		    bad_data[i].len);
		expect_bad(bad_data[i].label, HELLO_INVALID, bad_data[i].why,
		    in_b.len - bad_data[i].len + bad_data[i].at);
	}
}

/* A hello whose one server_name holds name[0..n). */
static void
build_name(const char *name, size_t n)
{
	bld_reset(&ext_b);
	ext_sni_n(&ext_b, name, n);
	build_good();
}

static void
t_names_good(void)
{
	static const char *const good_names[] = {
		"a", "A-b_c.D", "a.", "xn--caf-dma.example.net", "127.0.0.1",
		"-_-", "UPPER.Example.NET.", NULL
	};
	struct run	 w;
	char		 label[128];

	for (size_t i = 0; good_names[i] != NULL; i++) {
		build_name(good_names[i], strlen(good_names[i]));
		snprintf(label, sizeof(label), "name \"%s\"", good_names[i]);
		expect_sni(label, good_names[i], &w);
		ok(w.h.sni >= in_b.b && w.h.sni < in_b.b + in_b.len,
		    "%s: points into the input", label);
	}

	/* A name type other than host_name is skipped by its length. */
	build_ext_data(0, "\0\27\1\0\4\0\1\2\3\0\0\15t.example.net", 25);
	expect_sni("name type 1, then host_name", "t.example.net", &w);
	build_ext_data(0, "\0\5\7\0\2zz", 7);
	expect_sni("only name type 7", NULL, &w);
}

static void
t_names_bad(void)
{
	static const char *const bad_chars[] = {
		"a b.example", "a/b", "caf\xc3\xa9.example", "a\tb", "a*b",
		"a:443", "a\x7f", NULL
	};
	static const char *const empty_labels[] = {
		"a..b", ".a", ".", "a..", "..", NULL
	};
	static char	 longname[300];
	struct run	 w;
	char		 label[128];

	build_name("", 0);
	expect_bad("empty name", HELLO_INVALID, "empty host name",
	    in_b.len - 3);
	for (size_t i = 0; bad_chars[i] != NULL; i++) {
		build_name(bad_chars[i], strlen(bad_chars[i]));
		snprintf(label, sizeof(label), "bad character %zu", i);
		expect_bad(label, HELLO_INVALID,
		    "host name has a bad character", in_b.len - 3 -
		    strlen(bad_chars[i]));
	}
	build_name("alice.example.com\0.evil.example", 31);
	expect_bad("name with NUL", HELLO_INVALID,
	    "host name has a bad character", in_b.len - 3 - 31);
	for (size_t i = 0; empty_labels[i] != NULL; i++) {
		build_name(empty_labels[i], strlen(empty_labels[i]));
		snprintf(label, sizeof(label), "name \"%s\"", empty_labels[i]);
		expect_bad(label, HELLO_INVALID,
		    "host name has an empty label", NO_OFF);
	}

	/* Four labels of 63 bytes and dots: 255 bytes, then one more. */
	for (size_t i = 0; i < sizeof(longname); i++)
		longname[i] = i % 64 == 63 ? '.' : 'a' + (char)(i % 26);
	build_name(longname, 255);
	check_feeds("name of 255 bytes", in_b.b, in_b.len, NULL, 0,
	    scratch_w, in_b.len, &w);
	ok(w.r == HELLO_SNI && w.h.sni_len == 255 &&
	    memcmp(w.h.sni, longname, 255) == 0, "name of 255 bytes: name");
	build_name(longname, 256);
	expect_bad("name of 256 bytes", HELLO_INVALID,
	    "host name over 255 bytes", NO_OFF);
}

static void
t_alpn(void)
{
	static const char *const three[] = { "h2", "http/1.1", "x", NULL };
	const uint8_t	*p, *name;
	size_t		 left, name_len, n;
	struct run	 w;
	int		 good_list;

	bld_reset(&ext_b);
	ext_alpn(&ext_b, three);
	build_good();
	expect_sni("ALPN without server_name", NULL, &w);
	p = w.h.alpn;
	left = w.h.alpn_len;
	good_list = 1;
	for (n = 0; hello_alpn_next(&p, &left, &name, &name_len); n++)
		good_list &= n < 3 && name_len == strlen(three[n]) &&
		    memcmp(name, three[n], name_len) == 0;
	ok(good_list && n == 3 && left == 0,
	    "ALPN without server_name: three names in order");
	EXPECT_EQ(w.h.alpn_len, 3 + 9 + 2, "ALPN list length");

	p = (const uint8_t *)"\003abc\005de";
	left = 7;
	ok(hello_alpn_next(&p, &left, &name, &name_len) == 1 &&
	    name_len == 3 && hello_alpn_next(&p, &left, &name, &name_len) == 0,
	    "hello_alpn_next stops at a name that does not fit");
}

static void
sslv2_build(unsigned major, size_t specs, size_t sid, size_t chal,
    int delta)
{
	size_t	 n = 9 + specs + sid + chal + (size_t)(long)delta;

	bld_reset(&in_b);
	put16(&in_b, 0x8000 | n);
	put8(&in_b, 1);
	put8(&in_b, major);
	put8(&in_b, 1);
	put16(&in_b, specs);
	put16(&in_b, sid);
	put16(&in_b, chal);
	putfill(&in_b, 0x01, specs);
	putfill(&in_b, 0x22, sid);
	putfill(&in_b, 0x44, chal);
}

static void
t_sslv2(void)
{
	struct run	 w;

	sslv2_build(3, 24, 16, 32, 0);
	expect_sni("sslv2 hello with session id", NULL, &w);
	ok(w.h.sslv2 == 1 && w.h.record_version == 0,
	    "sslv2 hello: sslv2 set, no record version");
	sslv2_build(2, 24, 0, 16, 0);
	expect_bad("sslv2 hello version 2", HELLO_INVALID,
	    "sslv2 version major not 3", 3);
	sslv2_build(3, 0, 0, 16, 0);
	expect_bad("sslv2 no cipher specs", HELLO_INVALID,
	    "sslv2 cipher specs length", 5);
	sslv2_build(3, 4, 0, 16, 0);
	expect_bad("sslv2 cipher specs of 4 bytes", HELLO_INVALID,
	    "sslv2 cipher specs length", 5);
	sslv2_build(3, 3, 5, 16, 0);
	expect_bad("sslv2 session id of 5", HELLO_INVALID,
	    "sslv2 session id length", 7);
	sslv2_build(3, 3, 0, 15, 0);
	expect_bad("sslv2 challenge of 15", HELLO_INVALID,
	    "sslv2 challenge length", 9);
	sslv2_build(3, 3, 0, 33, 0);
	expect_bad("sslv2 challenge of 33", HELLO_INVALID,
	    "sslv2 challenge length", 9);
	sslv2_build(3, 3, 0, 16, 1);
	expect_bad("sslv2 length one too long", HELLO_INVALID,
	    "sslv2 length mismatch", 0);
}

static void
t_valid(void)
{
	static const char *const two[] = { "h2", "http/1.1", NULL };
	static uint8_t	 big[1300];
	struct run	 w;

	/* GREASE, ECH outer, a large key share and padding are opaque. */
	bld_reset(&ext_b);
	ext_add(&ext_b, 0x0a0a, "", 0);
	ext_add(&ext_b, 0xfe0d, big, 200);
	ext_add(&ext_b, 51, big, sizeof(big));
	ext_alpn(&ext_b, two);
	ext_sni(&ext_b, "grease.example.com");
	ext_add(&ext_b, 21, big, 300);
	ext_add(&ext_b, 0x1a1a, "\0", 1);
	build_good();
	expect_sni("GREASE, ECH, key share, padding", "grease.example.com",
	    &w);
	EXPECT_EQ(w.h.alpn_len, 3 + 9,
	    "GREASE, ECH, key share, padding: ALPN list");

	/* Bytes after the hello record are not part of the hello. */
	bld_reset(&ext_b);
	ext_sni(&ext_b, "early.example.com");
	build_good();
	put8(&in_b, 20);
	put16(&in_b, 0x0303);
	put16(&in_b, 1);
	put8(&in_b, 1);
	putn(&in_b, "GET ", 4);
	check_feeds("hello then more bytes", in_b.b, in_b.len, NULL, 0,
	    scratch_w, in_b.len, &w);
	EXPECT_EQ(w.r, HELLO_SNI, "hello then more bytes: name");
	EXPECT_EQ(w.h.hello_len, in_b.len - 10,
	    "hello then more bytes: hello_len");

	bld_reset(&ext_b);
	ext_sni(&ext_b, "v13.example.com");
	build_good();
	in_b.b[1] = 3;
	in_b.b[2] = 0;
	expect_sni("record version 3.0", "v13.example.com", &w);
	EXPECT_EQ(w.h.record_version, 0x0300, "record version 3.0: reported");
}

static void
t_spanning(void)
{
	static const size_t	 split[] = { 2, 3, 16384 };
	struct run		 w;
	const uint8_t		*at;
	size_t			 one = 1, fifty = 50, stream;

	bld_reset(&ext_b);
	ext_sni(&ext_b, "span.example.org");
	msg_build(&good);
	wrap(split, 3);
	EXPECT_EQ(in_b.len, msg_b.len + 15,
	    "handshake header split: 3 records");
	expect_sni("handshake header split", "span.example.org", &w);
	ok(w.h.sni >= scratch_w && w.h.sni < scratch_w + msg_b.len,
	    "handshake header split: name points into scratch");

	wrap(&one, 1);
	expect_sni("records of 1 byte", "span.example.org", &w);
	EXPECT_EQ(in_b.len, msg_b.len * 6, "records of 1 byte: input size");

	/* An error in a later record is reported at its input offset. */
	bld_reset(&ext_b);
	ext_add(&ext_b, 0x1234, "0123456789", 10);
	ext_sni(&ext_b, "bad name.example");
	msg_build(&good);
	wrap(&fifty, 1);
	at = memmem(msg_b.b, msg_b.len, "bad name", 8);
	stream = (size_t)(at - msg_b.b) - 3;
	expect_bad("bad name in the third record", HELLO_INVALID,
	    "host name has a bad character",
	    stream / 50 * 55 + 5 + stream % 50);
}

static void
t_scratch(void)
{
	struct run	 w;
	size_t		 hundred = 100;
	int		 untouched = 1;

	bld_reset(&ext_b);
	ext_sni(&ext_b, "scratch.example.com");
	build_good();
	memset(scratch_w, 0xee, in_b.len);
	lens[0] = in_b.len;
	feed(in_b.b, in_b.len, lens, 1, NULL, scratch_w, in_b.len, &w);
	for (size_t i = 0; i < in_b.len; i++)
		untouched &= scratch_w[i] == 0xee;
	ok(w.r == HELLO_SNI && untouched && w.h.sni > in_b.b &&
	    w.h.sni < in_b.b + in_b.len,
	    "one record: scratch untouched, name points into the input");
	check_feeds("one record, no scratch", in_b.b, in_b.len, NULL, 0, NULL,
	    0, &w);
	EXPECT_EQ(w.r, HELLO_SNI, "one record, no scratch: name");

	msg_build(&good);
	wrap(&hundred, 1);
	check_feeds("scratch of the hello size", in_b.b, in_b.len, NULL, 0,
	    scratch_w, msg_b.len, &w);
	EXPECT_EQ(w.r, HELLO_SNI, "scratch of the hello size: name");
	check_feeds("scratch one byte short", in_b.b, in_b.len, NULL, 0,
	    scratch_w, msg_b.len - 1, &w);
	EXPECT_EQ(w.r, HELLO_INVALID, "scratch one byte short: invalid");
	EXPECT_STR(w.h.why, "hello larger than scratch",
	    "scratch one byte short: why");
	EXPECT_EQ(w.h.off, 6, "scratch one byte short: offset");
	why_mark(w.h.why);
	check_feeds("several records, no scratch", in_b.b, in_b.len, NULL, 0,
	    NULL, 0, &w);
	EXPECT_STR(w.h.why, "hello larger than scratch",
	    "several records, no scratch: why");
}

/*
 * Feeds a 60000-byte hello one byte at a time and checks after every call
 * that the scan has taken in exactly the records that are complete: each
 * byte is then walked once and the full parse can run only at the end.
 */
static void
t_linear(void)
{
	struct hello_scan	 scan;
	struct hello		 h;
	enum hello_result	 r = HELLO_NEED_MORE;
	size_t			 whole, done, have, drift = 0, calls = 0;

	bld_reset(&ext_b);
	put16(&ext_b, 21);
	put16(&ext_b, 60000);
	putfill(&ext_b, 0, 60000);
	ext_sni(&ext_b, "linear.example.com");
	build_good();
	EXPECT_EQ(in_b.len, msg_b.len + 4 * 5, "linear: 60 KiB in 4 records");

	hello_init(&scan);
	for (size_t len = 1; len <= in_b.len && r == HELLO_NEED_MORE; len++) {
		r = hello_parse(&scan, in_b.b, len, scratch_w,
		    sizeof(scratch_w), &h);
		calls++;
		/* Records before the last are 5 + 16384 bytes long. */
		whole = len / (5 + 16384);
		done = len == in_b.len ? 4 : whole;
		have = len == in_b.len ? len : whole * (5 + 16384);
		drift += scan.rec_off != have || scan.nrecords != done ||
		    scan.hs_have != have - 5 * done;
	}
	ok(r == HELLO_SNI && h.sni_len == 18 &&
	    memcmp(h.sni, "linear.example.com", 18) == 0,
	    "linear: name found after %zu calls", calls);
	EXPECT_EQ(calls, in_b.len, "linear: answered at the last byte");
	EXPECT_EQ(drift, 0, "linear: scan holds exactly the complete records");
	EXPECT_EQ(scan.hs_need, msg_b.len, "linear: handshake size known");
}

/* Random inputs: never accepted, and a first byte alone rules on them. */
static void
t_random(void)
{
	struct run	 w, run;
	uint8_t		 b[80];
	size_t		 n, differ = 0, not_tls = 0, taken = 0;

	for (int k = 0; k < 4000; k++) {
		n = 1 + rng() % sizeof(b);
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rng();
		if (k % 4 == 1 && n > 5) {
			b[0] = 22;
			b[1] = 3;
			b[3] = 0;
		}
		lens[0] = n;
		feed(b, n, lens, 1, NULL, scratch_w, n, &w);
		for (size_t i = 0; i < n; i++)
			lens[i] = i + 1;
		feed(b, n, lens, n, NULL, scratch_o, n, &run);
		differ += !feed_agrees(&w, &run, lens, n);
		taken += accepted(w.r);
		if (b[0] < 20 || (b[0] > 24 && b[0] < 0x80))
			not_tls += w.r != HELLO_NOT_TLS || w.h.off != 0;
	}
	EXPECT_EQ(differ, 0, "random: byte by byte agrees, 4000 inputs");
	EXPECT_EQ(taken, 0, "random: none accepted");
	EXPECT_EQ(not_tls, 0, "random: not TLS decided on the first byte");
}

/*
 * Flips bits of in_b one byte at a time: fed whole against a guard page
 * or byte by byte, the answers agree, and an accepted name obeys the
 * name rules.
 */
static void
t_mutate(const char *label)
{
	static const uint8_t	 flips[] = { 0x01, 0x80, 0xff };
	struct guard		 g;
	struct run		 w, run;
	size_t			 n = in_b.len, differ = 0, tried = 0;
	size_t			 badname = 0;

	if (guard_new(&g, n) == -1) {
		ok(0, "%s: guard page", label);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			memcpy(mut, in_b.b, n);
			mut[i] ^= flips[f];
			lens[0] = n;
			feed(mut, n, lens, 1, &g, scratch_w, n, &w);
			for (size_t k = 0; k < n; k++)
				lens[k] = k + 1;
			feed(mut, n, lens, n, NULL, scratch_o, n, &run);
			differ += !feed_agrees(&w, &run, lens, n);
			tried++;
			for (size_t k = 0; w.r == HELLO_SNI &&
			    k < w.h.sni_len; k++)
				badname += strchr("abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
				    w.h.sni[k]) == NULL || w.h.sni[k] == 0;
		}
	}
	guard_free(&g);
	EXPECT_EQ(differ, 0, "%s: %zu one-byte mutations agree", label, tried);
	EXPECT_EQ(badname, 0, "%s: accepted names keep the rules", label);
}

static void
t_mutations(void)
{
	static const char *const two[] = { "h2", "http/1.1", NULL };
	static const size_t	 split[] = { 2, 3, 40 };

	bld_reset(&ext_b);
	ext_add(&ext_b, 0x0a0a, "", 0);
	ext_sni(&ext_b, "mut.example.com");
	ext_alpn(&ext_b, two);
	build_good();
	t_mutate("mutations, one record");
	msg_build(&good);
	wrap(split, 3);
	t_mutate("mutations, split records");
	sslv2_build(3, 24, 0, 16, 0);
	t_mutate("mutations, sslv2");
}

/*
 * Runs every check, printing one "ok" or "not ok" line each; the corpus
 * is read from $SNIMUX_CORPUS or tests/corpus.  Exits 0 when all pass.
 */
int
main(void)
{
	t_corpus();
	t_not_tls();
	t_records();
	t_handshake();
	t_body();
	t_extensions();
	t_no_extensions();
	t_bad_data();
	t_names_good();
	t_names_bad();
	t_alpn();
	t_sslv2();
	t_valid();
	t_spanning();
	t_scratch();
	t_linear();
	t_random();
	t_mutations();
	for (size_t i = 0; i < NWHYS; i++)
		ok(why_hit[i], "why \"%s\" asserted", whys[i]);
	return harness_exit();
}
