/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * ClientHello reader: walks the TLS record headers as bytes arrive, then
 * checks the whole hello once and reports its host name and ALPN list.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parse_hello.h"

/*
 * What a TLS client sends first, as checked here:
 *
 *   record (RFC 8446 section 5.1), repeated until the hello is complete
 *     content_type            1   22 (handshake)
 *     legacy_record_version   2   major 3
 *     length                  2   1..16384
 *     fragment                    the next bytes of the handshake stream
 *   handshake header
 *     msg_type                1   1 (client_hello)
 *     length                  3   the ClientHello below, ending exactly at
 *                                 the end of a record
 *   ClientHello (RFC 8446 section 4.1.2)
 *     legacy_version          2
 *     random                 32
 *     legacy_session_id       1 + 0..32
 *     cipher_suites           2 + 2..65534, even
 *     compression_methods     1 + 1..255
 *     extensions              2 + 0..65535, to the end; may be absent
 *       extension_type        2   each type at most once
 *       extension_data        2 + n
 *   server_name data (type 0, RFC 6066 section 3)
 *     server_name_list        2 + 1.., filling the extension
 *       name_type             1   0 (host_name) at most once
 *       name                  2 + n, for every name type
 *   ALPN data (type 16, RFC 7301 section 3.1)
 *     protocol_name_list      2 + 1.., filling the extension
 *       protocol_name         1 + 1..255
 */

#define REC_HDR_LEN		5
#define REC_MAX_LEN		16384
#define HS_HDR_LEN		4
#define CT_HANDSHAKE		22
#define HS_CLIENT_HELLO		1
#define EXT_SERVER_NAME		0
#define EXT_ALPN		16
#define NAME_TYPE_HOST		0
#define SESSION_ID_MAX		32
#define SSLV2_HDR_LEN		2
#define SSLV2_FIXED_LEN		9

const char hello_why_scratch[] = "hello larger than scratch";

#define WHY_NOT_TLS		"not a TLS record or SSLv2 hello"

/* A read position and the end of the block it may not pass. */
struct cur {
	const uint8_t	*p, *end;
};

/* Where a full parse reads from, to turn a position into an offset. */
struct ctx {
	const uint8_t	*buf;		/* the caller's input */
	const uint8_t	*msg;		/* handshake message: buf or scratch */
	size_t		 hello_len;	/* input bytes the records span */
	struct hello	*out;
};

static int
cur_skip(struct cur *c, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return -1;
	c->p += n;
	return 0;
}

static int
cur_u8(struct cur *c, unsigned *v)
{
	if ((size_t)(c->end - c->p) < 1)
		return -1;
	*v = c->p[0];
	c->p += 1;
	return 0;
}

static int
cur_u16(struct cur *c, unsigned *v)
{
	if ((size_t)(c->end - c->p) < 2)
		return -1;
	*v = (unsigned)c->p[0] << 8 | c->p[1];
	c->p += 2;
	return 0;
}

static int
cur_u24(struct cur *c, size_t *v)
{
	if ((size_t)(c->end - c->p) < 3)
		return -1;
	*v = (size_t)c->p[0] << 16 | (size_t)c->p[1] << 8 | c->p[2];
	c->p += 3;
	return 0;
}

/*
 * Reads a length of <prefix_len> bytes (1 or 2) and the block it
 * announces: <sub> covers the block and <c> moves past it.
 */
static int
cur_vec(struct cur *c, int prefix_len, struct cur *sub)
{
	unsigned	 n;

	if ((prefix_len == 1 ? cur_u8(c, &n) : cur_u16(c, &n)) == -1)
		return -1;
	sub->p = c->p;
	if (cur_skip(c, n) == -1)
		return -1;
	sub->end = c->p;
	return 0;
}

static enum hello_result
fail(struct hello *out, enum hello_result r, const char *why, size_t off)
{
	out->why = why;
	out->off = off;
	return r;
}

static size_t
get16(const uint8_t *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/*
 * Turns a position in the handshake message into an input offset.  When
 * the message was joined in scratch, the records are walked again; that
 * happens only on the way out with an error.
 */
static size_t
ctx_off(const struct ctx *ctx, const uint8_t *p)
{
	size_t	 s, o, rlen;

	if (ctx->msg == ctx->buf + REC_HDR_LEN)
		return (size_t)(p - ctx->buf);
	s = (size_t)(p - ctx->msg);
	for (o = 0;; o += REC_HDR_LEN + rlen) {
		rlen = get16(ctx->buf + o + 3);
		if (s < rlen || o + REC_HDR_LEN + rlen >= ctx->hello_len)
			return o + REC_HDR_LEN + s;
		s -= rlen;
	}
}

static enum hello_result
bad(const struct ctx *ctx, const uint8_t *p, const char *why)
{
	return fail(ctx->out, HELLO_INVALID, why, ctx_off(ctx, p));
}

/*
 * Host name rules (RFC 6066 section 3, narrowed for routing): 1 to 255
 * bytes of letters, digits, '-', '_' and '.', no empty label, but one
 * trailing dot is kept as sent.  Returns NULL or the failed rule.
 */
static const char *
name_check(const uint8_t *name, size_t len)
{
	unsigned	 ch;

	if (len == 0)
		return "empty host name";
	if (len > HELLO_NAME_MAX)
		return "host name over 255 bytes";
	for (size_t i = 0; i < len; i++) {
		ch = name[i];
		if (ch == '.') {
			if (i == 0 || name[i - 1] == '.')
				return "host name has an empty label";
		} else if (!((ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_'))
			return "host name has a bad character";
	}
	return NULL;
}

static enum hello_result
server_name(const struct ctx *ctx, struct cur *ext)
{
	struct cur	 list, name;
	const uint8_t	*entry;
	const char	*why;
	unsigned	 type;

	/* RFC 6066 section 3: server_name_list<1..2^16-1> fills the data. */
	entry = ext->p;
	if (cur_vec(ext, 2, &list) == -1 || ext->p != ext->end)
		return bad(ctx, entry, "server_name list length mismatch");
	if (list.p == list.end)
		return bad(ctx, entry, "server_name list empty");

	while (list.p != list.end) {
		entry = list.p;
		if (cur_u8(&list, &type) == -1 ||
		    cur_vec(&list, 2, &name) == -1)
			return bad(ctx, entry,
			    "server_name entry past list end");
		/* Every name type starts with a 16-bit length: skip others. */
		if (type != NAME_TYPE_HOST)
			continue;
		/* RFC 6066 section 3: at most one name of each type. */
		if (ctx->out->sni != NULL)
			return bad(ctx, entry,
			    "server_name has two host_names");
		why = name_check(name.p, (size_t)(name.end - name.p));
		if (why != NULL)
			return bad(ctx, entry, why);
		ctx->out->sni = name.p;
		ctx->out->sni_len = (size_t)(name.end - name.p);
	}
	return HELLO_NEED_MORE;
}

static enum hello_result
alpn(const struct ctx *ctx, struct cur *ext)
{
	struct cur	 list, name;
	const uint8_t	*entry;

	/* RFC 7301 section 3.1: protocol_name_list fills the data. */
	entry = ext->p;
	if (cur_vec(ext, 2, &list) == -1 || ext->p != ext->end)
		return bad(ctx, entry, "alpn list length mismatch");
	if (list.p == list.end)
		return bad(ctx, entry, "alpn list empty");

	/* RFC 7301 section 3.1: ProtocolName<1..2^8-1>, never empty. */
	ctx->out->alpn = list.p;
	ctx->out->alpn_len = (size_t)(list.end - list.p);
	while (list.p != list.end) {
		entry = list.p;
		if (cur_vec(&list, 1, &name) == -1)
			return bad(ctx, entry, "alpn name past list end");
		if (name.p == name.end)
			return bad(ctx, entry, "alpn empty protocol name");
	}
	return HELLO_NEED_MORE;
}

/*
 * Walks the extensions block.  Unknown types (GREASE, padding, ECH,
 * key shares) are only checked for framing and uniqueness; a bit per
 * possible type keeps the duplicate check linear.
 */
static enum hello_result
extensions(const struct ctx *ctx, struct cur *block)
{
	uint8_t		 seen[65536 / 8];
	struct cur	 data;
	const uint8_t	*start;
	unsigned	 type;
	enum hello_result r;

	memset(seen, 0, sizeof(seen));
	while (block->p != block->end) {
		start = block->p;
		if (cur_u16(block, &type) == -1 ||
		    cur_vec(block, 2, &data) == -1)
			return bad(ctx, start, "extension past extensions end");
		/* RFC 8446 section 4.2: no type may appear twice. */
		if (seen[type >> 3] & (1U << (type & 7)))
			return bad(ctx, start, "duplicate extension");
		seen[type >> 3] |= (uint8_t)(1U << (type & 7));

		r = HELLO_NEED_MORE;
		if (type == EXT_SERVER_NAME)
			r = server_name(ctx, &data);
		else if (type == EXT_ALPN)
			r = alpn(ctx, &data);
		if (r != HELLO_NEED_MORE)
			return r;
	}
	return ctx->out->sni != NULL ? HELLO_SNI : HELLO_NO_SNI;
}

/*
 * Checks a complete ClientHello body (after the handshake header) against
 * RFC 8446 section 4.1.2 and fills <ctx->out>.
 */
static enum hello_result
client_hello(const struct ctx *ctx, struct cur *c)
{
	struct cur	 v;
	const uint8_t	*start;

	if (cur_skip(c, 2 + 32) == -1)
		return bad(ctx, c->p, "hello too short for version and random");

	/* legacy_session_id<0..32> */
	start = c->p;
	if (cur_vec(c, 1, &v) == -1)
		return bad(ctx, start, "session id past hello end");
	if (v.end - v.p > SESSION_ID_MAX)
		return bad(ctx, start, "session id over 32 bytes");

	/* cipher_suites<2..2^16-2>: two bytes per suite */
	start = c->p;
	if (cur_vec(c, 2, &v) == -1)
		return bad(ctx, start, "cipher suites past hello end");
	if (v.p == v.end)
		return bad(ctx, start, "cipher suites empty");
	if ((v.end - v.p) % 2 != 0)
		return bad(ctx, start, "cipher suites length odd");

	/* legacy_compression_methods<1..2^8-1> */
	start = c->p;
	if (cur_vec(c, 1, &v) == -1)
		return bad(ctx, start, "compression methods past hello end");
	if (v.p == v.end)
		return bad(ctx, start, "no compression methods");

	/* Old hellos stop here; otherwise the block ends the message. */
	if (c->p == c->end)
		return HELLO_NO_SNI;
	start = c->p;
	if (cur_vec(c, 2, &v) == -1 || c->p != c->end)
		return bad(ctx, start, "extensions length mismatch");
	return extensions(ctx, &v);
}

/*
 * Runs once the records hold the whole handshake message: joins the
 * record bodies in <scratch> when there are several, then parses.
 */
static enum hello_result
hello_finish(const struct hello_scan *scan, const uint8_t *buf,
    uint8_t *scratch, struct hello *out)
{
	struct ctx	 ctx;
	struct cur	 c;
	const char	*why;
	size_t		 off, have, rlen, at;
	enum hello_result r;

	ctx.buf = buf;
	ctx.hello_len = scan->rec_off;
	ctx.out = out;
	ctx.msg = buf + REC_HDR_LEN;
	if (scan->nrecords > 1) {
		for (off = 0, have = 0; have < scan->hs_need;
		    off += REC_HDR_LEN + rlen) {
			rlen = get16(buf + off + 3);
			memcpy(scratch + have, buf + off + REC_HDR_LEN, rlen);
			have += rlen;
		}
		ctx.msg = scratch;
	}

	c.p = ctx.msg + HS_HDR_LEN;
	c.end = ctx.msg + scan->hs_need;
	r = client_hello(&ctx, &c);
	if (r == HELLO_SNI || r == HELLO_NO_SNI) {
		out->hello_len = scan->rec_off;
		out->record_version = (unsigned)get16(buf + 1);
		return r;
	}

	/* A rejected hello reports only why and where. */
	why = out->why;
	at = out->off;
	memset(out, 0, sizeof(*out));
	return fail(out, r, why, at);
}

/*
 * Checks the header of the record at <off> (RFC 8446 section 5.1) as far
 * as it has arrived.  Sets <*rlen> to its length once all 5 bytes are
 * there and sound, else leaves it 0.
 */
static enum hello_result
record_head(const uint8_t *buf, size_t len, size_t off, size_t *rlen,
    struct hello *out)
{
	*rlen = 0;
	if (len <= off)
		return HELLO_NEED_MORE;
	/* Any other record type before the hello is complete. */
	if (buf[off] != CT_HANDSHAKE)
		return fail(out, HELLO_INVALID, "record type not handshake",
		    off);
	if (len - off < 2)
		return HELLO_NEED_MORE;
	if (buf[off + 1] != 3)
		return fail(out, HELLO_INVALID, "record version major not 3",
		    off + 1);
	if (len - off < REC_HDR_LEN)
		return HELLO_NEED_MORE;
	if (get16(buf + off + 3) == 0)
		return fail(out, HELLO_INVALID, "record length 0", off + 3);
	/* RFC 8446 section 5.1: a plaintext fragment is at most 2^14. */
	if (get16(buf + off + 3) > REC_MAX_LEN)
		return fail(out, HELLO_INVALID, "record length over 16384",
		    off + 3);
	*rlen = get16(buf + off + 3);
	return HELLO_NEED_MORE;
}

/*
 * Reads the handshake header, which may be spread over up to four records
 * of which the one at <off> has <have> body bytes so far.  Sets
 * scan->hs_need once all four bytes are there and sound.
 */
static enum hello_result
hs_head(struct hello_scan *scan, const uint8_t *buf, size_t off,
    size_t have, size_t scratch_size, struct hello *out)
{
	uint8_t		 h[HS_HDR_LEN];
	struct cur	 hc;
	size_t		 o, rlen, avail, got, len_off = 0, need;

	/* RFC 8446 section 4: the first message is a client_hello. */
	if (scan->nrecords == 0 && have > 0 &&
	    buf[REC_HDR_LEN] != HS_CLIENT_HELLO)
		return fail(out, HELLO_INVALID,
		    "handshake type not client_hello", REC_HDR_LEN);

	/* Every record holds at least one byte: at most four to visit. */
	for (o = 0, got = 0; o <= off && got < HS_HDR_LEN;
	    o += REC_HDR_LEN + rlen) {
		rlen = get16(buf + o + 3);
		avail = o == off ? have : rlen;
		for (size_t i = 0; i < avail && got < HS_HDR_LEN; i++) {
			if (got == 1)
				len_off = o + REC_HDR_LEN + i;
			h[got++] = buf[o + REC_HDR_LEN + i];
		}
	}
	hc.p = h;
	hc.end = h + got;
	if (cur_skip(&hc, 1) == -1 || cur_u24(&hc, &need) == -1)
		return HELLO_NEED_MORE;
	need += HS_HDR_LEN;
	if (need > get16(buf + 3) && need > scratch_size)
		return fail(out, HELLO_INVALID, hello_why_scratch, len_off);
	scan->hs_need = need;
	return HELLO_NEED_MORE;
}

/*
 * Moves scan->rec_off over every record that has fully arrived, checking
 * each header once and the handshake header as soon as it is there.
 * Stops when the records hold the whole handshake message.
 */
static enum hello_result
records_walk(struct hello_scan *scan, const uint8_t *buf, size_t len,
    size_t scratch_size, struct hello *out)
{
	size_t		 off, rlen, have;
	enum hello_result r;

	while (scan->hs_need == 0 || scan->hs_have < scan->hs_need) {
		off = scan->rec_off;
		r = record_head(buf, len, off, &rlen, out);
		if (r != HELLO_NEED_MORE || rlen == 0)
			return r;
		have = len - off - REC_HDR_LEN;
		if (have > rlen)
			have = rlen;
		if (scan->hs_need == 0) {
			r = hs_head(scan, buf, off, have, scratch_size, out);
			if (r != HELLO_NEED_MORE)
				return r;
		}
		/* The hello must end exactly at the end of a record. */
		if (scan->hs_need != 0 &&
		    scan->hs_have + rlen > scan->hs_need)
			return fail(out, HELLO_INVALID,
			    "record data after hello", off + REC_HDR_LEN +
			    (scan->hs_need - scan->hs_have));
		if (have < rlen)
			return HELLO_NEED_MORE;
		scan->hs_have += rlen;
		scan->rec_off = off + REC_HDR_LEN + rlen;
		scan->nrecords++;
	}
	return HELLO_NEED_MORE;
}

/*
 * SSL 2.0-compatible CLIENT-HELLO (RFC 5246 appendix E.2), 2-byte header:
 *
 *   length                  2   top bit set, 15-bit length
 *   msg_type                1   1
 *   version                 2   major 3
 *   cipher_spec_length      2   non-zero multiple of 3
 *   session_id_length       2   0 or 16
 *   challenge_length        2   16..32
 *   cipher_specs, session_id, challenge, filling the length exactly
 *
 * It has no room for extensions, so it never carries a name.
 */
static enum hello_result
sslv2(const uint8_t *buf, size_t len, struct hello *out)
{
	size_t	 rlen, specs, sid, chal;

	if (len < 3)
		return HELLO_NEED_MORE;
	if (buf[2] != HS_CLIENT_HELLO)
		return fail(out, HELLO_NOT_TLS, WHY_NOT_TLS, 2);
	if (len < 4)
		return HELLO_NEED_MORE;
	if (buf[3] != 3)
		return fail(out, HELLO_INVALID, "sslv2 version major not 3",
		    3);
	if (len < SSLV2_HDR_LEN + SSLV2_FIXED_LEN)
		return HELLO_NEED_MORE;

	rlen = (size_t)(buf[0] & 0x7f) << 8 | buf[1];
	specs = get16(buf + 5);
	sid = get16(buf + 7);
	chal = get16(buf + 9);
	if (specs == 0 || specs % 3 != 0)
		return fail(out, HELLO_INVALID, "sslv2 cipher specs length", 5);
	if (sid != 0 && sid != 16)
		return fail(out, HELLO_INVALID, "sslv2 session id length", 7);
	if (chal < 16 || chal > 32)
		return fail(out, HELLO_INVALID, "sslv2 challenge length", 9);
	if (SSLV2_FIXED_LEN + specs + sid + chal != rlen)
		return fail(out, HELLO_INVALID, "sslv2 length mismatch", 0);
	if (len < SSLV2_HDR_LEN + rlen)
		return HELLO_NEED_MORE;

	out->sslv2 = 1;
	out->hello_len = SSLV2_HDR_LEN + rlen;
	return HELLO_NO_SNI;
}

/*
 * Sorts a first byte that is not 22.  The other TLS content types
 * (change_cipher_spec 20, alert 21, application_data 23, heartbeat 24)
 * open a TLS record that is not a hello: HELLO_INVALID.  A set top bit
 * may open an SSLv2-compatible hello.  Anything else is HELLO_NOT_TLS,
 * decided on this one byte.
 */
static enum hello_result
first_byte(const uint8_t *buf, size_t len, struct hello *out)
{
	if (buf[0] >= 20 && buf[0] <= 24)
		return fail(out, HELLO_INVALID, "record type not handshake", 0);
	if (buf[0] & 0x80)
		return sslv2(buf, len, out);
	return fail(out, HELLO_NOT_TLS, WHY_NOT_TLS, 0);
}

/*
 * Sets up <scan> for a new connection.
 */
void
hello_init(struct hello_scan *scan)
{
	memset(scan, 0, sizeof(*scan));
}

/*
 * Looks at buf[0..len), every byte received so far, and says whether it
 * starts with a ClientHello; bytes after the hello are left alone.
 * <scan> carries what earlier calls on the same growing buffer learnt:
 * each call costs O(1) plus the records completed since, and the full
 * parse runs when the last record of the hello arrives.  A hello spread
 * over several records is joined in scratch[0..scratch_size), which may
 * be NULL otherwise; one that does not fit is HELLO_INVALID.  Pure: no
 * allocation, no I/O.  Once it returns anything but HELLO_NEED_MORE, a
 * further call returns the same.  Clears <out>, then fills it as
 * parse_hello.h describes.
 */
enum hello_result
hello_parse(struct hello_scan *scan, const uint8_t *buf, size_t len,
    uint8_t *scratch, size_t scratch_size, struct hello *out)
{
	enum hello_result r;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return HELLO_NEED_MORE;
	if (buf[0] != CT_HANDSHAKE)
		return first_byte(buf, len, out);

	r = records_walk(scan, buf, len, scratch_size, out);
	if (r != HELLO_NEED_MORE || scan->hs_need == 0 ||
	    scan->hs_have < scan->hs_need)
		return r;
	return hello_finish(scan, buf, scratch, out);
}

/*
 * Steps through an ALPN protocol_name_list body as reported in struct
 * hello: on each call stores the next name in <*name> and <*name_len>,
 * advances <*p> and <*left> and returns 1; returns 0 at the end or at a
 * name that does not fit.
 */
int
hello_alpn_next(const uint8_t **p, size_t *left, const uint8_t **name,
    size_t *name_len)
{
	size_t	 n;

	if (*left == 0)
		return 0;
	n = (*p)[0];
	if (n == 0 || n > *left - 1)
		return 0;
	*name = *p + 1;
	*name_len = n;
	*p += 1 + n;
	*left -= 1 + n;
	return 1;
}
