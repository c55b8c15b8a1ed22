/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * ClientHello reader: finds the server name (and ALPN list) in the first
 * bytes a TLS client sends, without copying and without allocating.
 */
#ifndef PARSE_HELLO_H
#define PARSE_HELLO_H

#include <stddef.h>
#include <stdint.h>

enum hello_result {
	HELLO_NEED_MORE,	/* well-formed so far, more bytes needed */
	HELLO_SNI,		/* complete hello with a host_name */
	HELLO_NO_SNI,		/* complete hello, no host_name */
	HELLO_NOT_TLS,		/* first bytes are not a TLS/SSL handshake */
	HELLO_INVALID		/* a TLS handshake, but malformed */
};

/* Longest host name a hello may carry (RFC 6066 section 3). */
#define HELLO_NAME_MAX	255

/*
 * State kept by the caller between calls on one growing buffer: zero it
 * before the first call with hello_init().  It holds offsets only, and
 * lets a hello that trickles in be checked in time linear in its size.
 */
struct hello_scan {
	size_t	rec_off;	/* start of the first record not yet complete */
	size_t	hs_have;	/* handshake bytes in the complete records */
	size_t	hs_need;	/* handshake message size, 0 while unknown */
	size_t	nrecords;	/* complete records seen so far */
};

/*
 * What hello_parse() found.  sni, alpn, hello_len, sslv2 and
 * record_version are set for HELLO_SNI and HELLO_NO_SNI, why and off for
 * HELLO_INVALID and HELLO_NOT_TLS; everything else is 0 or NULL.  sni and
 * alpn point into the input, or into scratch when the hello spans
 * several records.
 */
struct hello {
	const uint8_t	*sni;		/* host name as sent, not terminated */
	size_t		 sni_len;
	const uint8_t	*alpn;		/* ALPN protocol_name_list body */
	size_t		 alpn_len;	/* 0 when no ALPN extension */
	size_t		 hello_len;	/* input bytes the hello occupies */
	int		 sslv2;		/* 1 for an SSL 2.0-compatible hello */
	unsigned	 record_version; /* first record's, 0 for SSLv2 */
	const char	*why;		/* failed check, for tests and debug */
	size_t		 off;		/* input offset of that check */
};

/*
 * The <why> of a hello whose declared size is over the scratch size the
 * caller gave: the caller can tell "too large" from "malformed" with a
 * pointer comparison.
 */
extern const char hello_why_scratch[];

void	hello_init(struct hello_scan *);
enum hello_result hello_parse(struct hello_scan *, const uint8_t *, size_t,
	    uint8_t *, size_t, struct hello *);
int	hello_alpn_next(const uint8_t **, size_t *, const uint8_t **,
	    size_t *);

#endif
