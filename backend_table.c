/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Route table: one open-addressing hash of (kind, lowercased name) keys, so
 * a lookup costs at most two probes more than the name has labels.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snimux.h"

/* Longest pattern or name, in bytes as written (RFC 6066 section 3). */
#define TABLE_NAME_MAX		255

#define TABLE_MIN_SLOTS		16
#define TABLE_CHUNK_SIZE	65536

/* One hash slot; an empty slot has key NULL. */
struct slot {
	const char	*key;		/* lowercased, not terminated */
	void		*value;		/* the caller's, not dereferenced */
	uint32_t	 hash;
	uint8_t		 key_len;
	uint8_t		 kind;		/* enum table_kind */
};

/* Arena chunk holding key bytes back to back. */
struct chunk {
	struct chunk	*next;
	size_t		 used;
	char		 buf[];
};

struct table {
	struct slot	*slots;
	size_t		 nslots;	/* 0 or a power of two */
	size_t		 nroutes;
	struct chunk	*chunks;	/* newest first */
};

static int
table_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static unsigned char
table_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the kind byte and the key, folded to 32 bits. */
static uint32_t
table_hash(enum table_kind kind, const char *key, size_t len)
{
	uint64_t	 h = 14695981039346656037ULL;
	size_t		 i;

	h = (h ^ (uint8_t)kind) * 1099511628211ULL;
	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	return (uint32_t)(h ^ (h >> 32));
}

/*
 * Slot holding (kind, key) or, when absent, the empty slot where it would
 * go.  Needs nslots > 0 and at least one empty slot.
 */
static struct slot *
table_probe(const struct table *t, enum table_kind kind, const char *key,
    size_t len)
{
	uint32_t	 h = table_hash(kind, key, len);
	size_t		 mask = t->nslots - 1, i = h & mask;
	struct slot	*s;

	for (;; i = (i + 1) & mask) {
		s = &t->slots[i];
		if (s->key == NULL)
			return s;
		if (s->hash == h && s->kind == kind && s->key_len == len &&
		    memcmp(s->key, key, len) == 0)
			return s;
	}
}

/* The slot of route (kind, key), or NULL when there is none. */
static const struct slot *
table_find(const struct table *t, enum table_kind kind, const char *key,
    size_t len)
{
	const struct slot	*s = table_probe(t, kind, key, len);

	return s->key != NULL ? s : NULL;
}

/* Make room for one more route, keeping the load at most 3/4. */
static int
table_reserve(struct table *t)
{
	struct slot	*old = t->slots, *ns;
	size_t		 oldn = t->nslots, n, i, j;

	if ((t->nroutes + 1) * 4 <= t->nslots * 3)
		return 0;
	n = oldn == 0 ? TABLE_MIN_SLOTS : oldn * 2;
	if (n > UINT32_MAX || n > SIZE_MAX / sizeof(*ns)) {
		errno = ENOMEM;
		return -1;
	}
	if ((ns = calloc(n, sizeof(*ns))) == NULL)
		return -1;

	/* Slot hashes are 32 bits, which is enough to place every key. */
	for (i = 0; i < oldn; i++) {
		if (old[i].key == NULL)
			continue;
		for (j = old[i].hash & (n - 1); ns[j].key != NULL;
		    j = (j + 1) & (n - 1))
			;
		ns[j] = old[i];
	}
	free(old);
	t->slots = ns;
	t->nslots = n;
	return 0;
}

/* Copy len bytes of key into the arena; NULL with errno ENOMEM. */
static const char *
table_keep(struct table *t, const char *key, size_t len)
{
	struct chunk	*c = t->chunks;
	char		*p;

	if (c == NULL || TABLE_CHUNK_SIZE - c->used < len) {
		if ((c = malloc(sizeof(*c) + TABLE_CHUNK_SIZE)) == NULL)
			return NULL;
		c->next = t->chunks;
		c->used = 0;
		t->chunks = c;
	}
	p = c->buf + c->used;
	memcpy(p, key, len);
	c->used += len;
	return p;
}

/*
 * Create an empty table.  Returns it, or NULL with errno ENOMEM.  Free it
 * with table_free().
 */
struct table *
table_new(void)
{
	return calloc(1, sizeof(struct table));
}

/*
 * Free table t and the copies of its patterns; the values stay the
 * caller's.  t may be NULL.
 */
void
table_free(struct table *t)
{
	struct chunk	*c, *next;

	if (t == NULL)
		return;
	for (c = t->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(t->slots);
	free(t);
}

/* NULL when pattern is valid, else a static message saying why not. */
static const char *
table_pattern_why(const char *pattern)
{
	const char	*p = pattern;
	size_t		 len, label = 0, i;

	len = p == NULL ? 0 : strnlen(p, TABLE_NAME_MAX + 1);
	if (len > TABLE_NAME_MAX)
		return "pattern longer than 255 bytes";
	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0)
		return "empty pattern";

	/* Skip the "*." or "." prefix; the rest is a plain name. */
	if (len == 1 && p[0] == '*')
		return "nothing after '*.' in pattern";
	if (p[0] == '*' && p[1] == '.') {
		p += 2;
		len -= 2;
		if (len == 0)
			return "nothing after '*.' in pattern";
	} else if (p[0] == '.') {
		p++;
		len--;
	}

	for (i = 0; i < len; i++) {
		if (p[i] == '*')
			return "'*' only allowed as the whole first label";
		if (p[i] != '.' && !table_char_ok((unsigned char)p[i]))
			return "invalid character in pattern";
		if (p[i] == '.' && label == 0)
			return "empty label in pattern";
		label = p[i] == '.' ? 0 : label + 1;
	}
	if (label == 0)
		return "empty label in pattern";
	return NULL;
}

/*
 * Check that pattern is "name", "*.name" or ".name", where name is labels
 * of letters, digits, '-' and '_' joined by single dots, with one trailing
 * dot allowed, at most 255 bytes in all.  Returns 0 if valid, else -1 and
 * points *why (if why is not NULL) at a static message.
 */
int
table_pattern_check(const char *pattern, const char **why)
{
	const char	*msg = table_pattern_why(pattern);

	if (msg == NULL)
		return 0;
	if (why != NULL)
		*why = msg;
	return -1;
}

/*
 * Add a route from pattern (see table_pattern_check()) to value, which is
 * stored as is.  Case and one trailing dot of pattern do not matter; the
 * table keeps its own copy.  Returns 0, or -1 with errno EINVAL (invalid
 * pattern), EEXIST (same pattern already present) or ENOMEM, leaving the
 * routes unchanged.
 */
int
table_add(struct table *t, const char *pattern, void *value)
{
	char			 key[TABLE_NAME_MAX];
	enum table_kind		 kind = TABLE_EXACT;
	const char		*p = pattern, *copy;
	size_t			 len, i;
	struct slot		*s;

	if (t == NULL || table_pattern_check(pattern, NULL) == -1) {
		errno = EINVAL;
		return -1;
	}
	len = strlen(p);
	if (p[len - 1] == '.')
		len--;
	if (p[0] == '*') {
		kind = TABLE_WILD;
		p += 2;
		len -= 2;
	} else if (p[0] == '.') {
		kind = TABLE_SUFFIX;
		p++;
		len--;
	}
	for (i = 0; i < len; i++)
		key[i] = (char)table_lower((unsigned char)p[i]);

	if (t->nslots > 0 && table_probe(t, kind, key, len)->key != NULL) {
		errno = EEXIST;
		return -1;
	}
	if (table_reserve(t) == -1 || (copy = table_keep(t, key, len)) == NULL)
		return -1;
	s = table_probe(t, kind, key, len);
	s->key = copy;
	s->value = value;
	s->hash = table_hash(kind, key, len);
	s->key_len = (uint8_t)len;
	s->kind = (uint8_t)kind;
	t->nroutes++;
	return 0;
}

/*
 * Find the route for the len bytes at name, a server name as a client sent
 * it (any case, one trailing dot allowed, not terminated).  An exact route
 * wins over a "*." route, which wins over the longest matching "." route.
 * Returns that route's value, or NULL when none matches or name is not a
 * well-formed name of at most 255 bytes.  Reads only name[0..len).
 */
void *
table_lookup(const struct table *t, const char *name, size_t len)
{
	char			 buf[TABLE_NAME_MAX];
	const struct slot	*s;
	size_t			 i, first = 0, label = 0;

	if (t == NULL || t->nroutes == 0 || name == NULL ||
	    len > TABLE_NAME_MAX)
		return NULL;
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0)
		return NULL;

	/* Lowercase once, refusing bytes and empty labels no route has. */
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return NULL;
			if (first == 0)
				first = i;
			label = 0;
		} else if (table_char_ok((unsigned char)name[i]))
			label++;
		else
			return NULL;
		buf[i] = (char)table_lower((unsigned char)name[i]);
	}
	if (label == 0)
		return NULL;

	/* Exact, then "*." on the rest, then "." suffixes longest first. */
	if ((s = table_find(t, TABLE_EXACT, buf, len)) != NULL)
		return s->value;
	if (first > 0 && (s = table_find(t, TABLE_WILD, buf + first + 1,
	    len - first - 1)) != NULL)
		return s->value;
	if ((s = table_find(t, TABLE_SUFFIX, buf, len)) != NULL)
		return s->value;
	for (i = first; first > 0 && i < len; i++) {
		if (buf[i] == '.' && (s = table_find(t, TABLE_SUFFIX,
		    buf + i + 1, len - i - 1)) != NULL)
			return s->value;
	}
	return NULL;
}

/*
 * Number of routes in table t.
 */
size_t
table_count(const struct table *t)
{
	return t == NULL ? 0 : t->nroutes;
}
