/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Unit tests of the route table: pattern rules, precedence, case and
 * trailing dots, and a table of 100,000 routes.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../snimux.h"
#include "harness.h"

#define BIG_EXACT	90000
#define BIG_WILD	5000
#define BIG_SUFFIX	5000
#define BIG_ROUTES	(BIG_EXACT + BIG_WILD + BIG_SUFFIX)
#define NAME_SIZE	64
#define TIMED_LOOKUPS	1000000

static unsigned char	 big_mark[BIG_ROUTES];

static const char *
look(const struct table *t, const char *name)
{
	return table_lookup(t, name, strlen(name));
}

/* Add pattern with the pattern itself as value; returns table_add()'s. */
static int
add(struct table *t, const char *pattern)
{
	return table_add(t, pattern, (void *)(uintptr_t)pattern);
}

/* Pattern as printable text, for test descriptions. */
static const char *
show(const char *s)
{
	static char	 buf[80];
	size_t		 i;

	for (i = 0; s[i] != '\0' && i < sizeof(buf) - 1; i++)
		buf[i] = (s[i] >= ' ' && s[i] <= '~') ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static double
now_sec(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_empty(void)
{
	struct table	*t = table_new();

	ok(t != NULL, "table_new");
	EXPECT_EQ(table_count(t), 0, "new table is empty");
	EXPECT_STR(look(t, "a.example.com"), NULL, "empty table finds nothing");
	EXPECT_STR(table_lookup(t, NULL, 0), NULL, "NULL name, empty table");
	table_free(t);
	table_free(NULL);
	ok(1, "table_free(NULL)");
	EXPECT_EQ(table_count(NULL), 0, "table_count(NULL)");
}

static void
test_precedence(void)
{
	struct table	*t = table_new();

	EXPECT_EQ(add(t, ".org"), 0, "add .org");
	EXPECT_EQ(add(t, ".example.org"), 0, "add .example.org");
	EXPECT_EQ(add(t, ".deep.example.org"), 0, "add .deep.example.org");
	EXPECT_EQ(add(t, "*.example.org"), 0, "add *.example.org");
	EXPECT_EQ(add(t, "www.example.org"), 0, "add www.example.org");
	EXPECT_EQ(add(t, "example.org"), 0, "add example.org");
	EXPECT_EQ(add(t, ".x.example.org"), 0, "add .x.example.org");
	EXPECT_EQ(table_count(t), 7, "seven routes");

	EXPECT_STR(look(t, "www.example.org"), "www.example.org",
	    "exact beats * and .");
	EXPECT_STR(look(t, "example.org"), "example.org",
	    "exact beats . on the suffix itself");
	EXPECT_STR(look(t, "mail.example.org"), "*.example.org",
	    "* beats .");
	EXPECT_STR(look(t, "x.example.org"), "*.example.org",
	    "* beats a longer . that also matches");
	EXPECT_STR(look(t, "a.x.example.org"), ".x.example.org",
	    "* does not match two labels; longest . wins");
	EXPECT_STR(look(t, "a.b.mail.example.org"), ".example.org",
	    ". matches at any depth");
	EXPECT_STR(look(t, "deep.example.org"), "*.example.org",
	    "* beats . naming the name itself");
	EXPECT_STR(look(t, "a.deep.example.org"), ".deep.example.org",
	    "longest . wins");
	EXPECT_STR(look(t, "a.b.c.deep.example.org"), ".deep.example.org",
	    "longest . wins at depth");
	EXPECT_STR(look(t, "other.org"), ".org", "shortest . as fallback");
	EXPECT_STR(look(t, "org"), ".org", ". matches its own name");
	EXPECT_STR(look(t, "example.com"), NULL, "other tld misses");
	EXPECT_STR(look(t, "xorg"), NULL, ". needs a label boundary");
	EXPECT_STR(look(t, "aexample.org"), ".org",
	    "suffix match is by label, not by bytes");
	table_free(t);
}

static void
test_wild_depth(void)
{
	struct table	*t = table_new();

	EXPECT_EQ(add(t, "*.example.net"), 0, "add *.example.net");
	EXPECT_STR(look(t, "a.example.net"), "*.example.net",
	    "* matches one label");
	EXPECT_STR(look(t, "a-b_c9.example.net"), "*.example.net",
	    "* matches a label with - and _");
	EXPECT_STR(look(t, "a.b.example.net"), NULL, "* needs exactly one");
	EXPECT_STR(look(t, "example.net"), NULL, "* needs one label");
	EXPECT_STR(look(t, "net"), NULL, "* does not match the tld");
	EXPECT_STR(look(t, ".example.net"), NULL, "empty first label");
	EXPECT_STR(look(t, "a..example.net"), NULL, "empty inner label");
	EXPECT_STR(look(t, "aexample.net"), NULL, "no label boundary");
	table_free(t);
}

static void
test_case_and_dots(void)
{
	struct table	*t = table_new();
	const char	*n = "www.example.comXYZ";

	EXPECT_EQ(add(t, "MiXeD.Example.COM"), 0, "add mixed case exact");
	EXPECT_EQ(add(t, "*.WILD.Test"), 0, "add mixed case wildcard");
	EXPECT_EQ(add(t, ".Suffix.ORG"), 0, "add mixed case suffix");
	EXPECT_EQ(add(t, "dot.example.com."), 0, "add with trailing dot");
	EXPECT_EQ(add(t, "*.dotwild.example."), 0, "add * with trailing dot");
	EXPECT_EQ(add(t, "www.example.com"), 0, "add www.example.com");

	EXPECT_STR(look(t, "mixed.example.com"), "MiXeD.Example.COM",
	    "lowercase name, mixed pattern");
	EXPECT_STR(look(t, "MIXED.EXAMPLE.COM"), "MiXeD.Example.COM",
	    "uppercase name");
	EXPECT_STR(look(t, "A.wild.TEST"), "*.WILD.Test", "wildcard folding");
	EXPECT_STR(look(t, "X.Y.SUFFIX.org"), ".Suffix.ORG", "suffix folding");
	EXPECT_STR(look(t, "dot.example.com"), "dot.example.com.",
	    "pattern trailing dot ignored");
	EXPECT_STR(look(t, "dot.example.com."), "dot.example.com.",
	    "name and pattern trailing dots");
	EXPECT_STR(look(t, "Mixed.Example.Com."), "MiXeD.Example.COM",
	    "name trailing dot ignored");
	EXPECT_STR(look(t, "a.dotwild.example"), "*.dotwild.example.",
	    "wildcard with trailing dot");
	EXPECT_STR(look(t, "mixed.example.com.."), NULL,
	    "two trailing dots miss");
	EXPECT_STR(table_lookup(t, n, 15), "www.example.com",
	    "name is not read past len");
	EXPECT_STR(table_lookup(t, n, 16), NULL, "one byte more misses");
	table_free(t);
}

static void
test_duplicates(void)
{
	struct table	*t = table_new();

	EXPECT_EQ(add(t, "A.com"), 0, "add A.com");
	errno = 0;
	EXPECT_EQ(add(t, "a.com."), -1, "a.com. duplicates A.com");
	EXPECT_EQ(errno, EEXIST, "errno EEXIST");
	EXPECT_EQ(add(t, "*.a.com"), 0, "add *.a.com (other kind)");
	EXPECT_EQ(add(t, ".a.com"), 0, "add .a.com (other kind)");
	errno = 0;
	EXPECT_EQ(add(t, "*.A.COM."), -1, "*.A.COM. duplicates *.a.com");
	EXPECT_EQ(errno, EEXIST, "errno EEXIST for *");
	errno = 0;
	EXPECT_EQ(add(t, ".A.Com"), -1, ".A.Com duplicates .a.com");
	EXPECT_EQ(errno, EEXIST, "errno EEXIST for .");
	EXPECT_EQ(table_count(t), 3, "duplicates not counted");
	EXPECT_STR(look(t, "a.com"), "A.com", "first value kept");
	EXPECT_STR(look(t, "b.a.com"), "*.a.com", "* value kept");
	EXPECT_STR(look(t, "c.b.a.com"), ".a.com", ". value kept");
	table_free(t);
}

static void
test_invalid(void)
{
	static const struct {
		const char	*pattern;
		const char	*why;
	} cases[] = {
		{ "", "empty pattern" },
		{ ".", "empty pattern" },
		{ "..", "empty label in pattern" },
		{ "a..b", "empty label in pattern" },
		{ "a.b..", "empty label in pattern" },
		{ "..a.b", "empty label in pattern" },
		{ "*..a", "empty label in pattern" },
		{ "*", "nothing after '*.' in pattern" },
		{ "*.", "nothing after '*.' in pattern" },
		{ "*.*.a", "'*' only allowed as the whole first label" },
		{ "a.*.b", "'*' only allowed as the whole first label" },
		{ "*a.b", "'*' only allowed as the whole first label" },
		{ "a*.b", "'*' only allowed as the whole first label" },
		{ "**.b", "'*' only allowed as the whole first label" },
		{ ".*.b", "'*' only allowed as the whole first label" },
		{ "a.b*", "'*' only allowed as the whole first label" },
		{ "a b.com", "invalid character in pattern" },
		{ "a/b.com", "invalid character in pattern" },
		{ "a.b:443", "invalid character in pattern" },
		{ "\xc3\xa9.com", "invalid character in pattern" },
		{ "a.com\n", "invalid character in pattern" },
	};
	struct table	*t = table_new();
	char		 longp[300];
	const char	*why;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char	*p = cases[i].pattern;

		why = NULL;
		EXPECT_EQ(table_pattern_check(p, &why), -1, "invalid: \"%s\"",
		    show(p));
		EXPECT_STR(why, cases[i].why, "why: \"%s\"", show(p));
		errno = 0;
		EXPECT_EQ(table_add(t, p, t), -1, "add refuses \"%s\"",
		    show(p));
		EXPECT_EQ(errno, EINVAL, "errno EINVAL");
	}
	why = NULL;
	EXPECT_EQ(table_pattern_check(NULL, &why), -1, "NULL pattern");
	EXPECT_STR(why, "empty pattern", "why: NULL pattern");
	EXPECT_EQ(table_count(t), 0, "nothing added");

	/* 255 bytes is the longest pattern, a trailing dot included. */
	memset(longp, 'a', sizeof(longp));
	for (i = 63; i < 255; i += 64)
		longp[i] = '.';
	longp[255] = '\0';
	EXPECT_EQ(table_pattern_check(longp, NULL), 0, "255 bytes valid");
	longp[254] = '.';
	EXPECT_EQ(table_pattern_check(longp, NULL), 0,
	    "255 bytes with trailing dot valid");
	longp[254] = 'a';
	longp[255] = 'a';
	longp[256] = '\0';
	why = NULL;
	EXPECT_EQ(table_pattern_check(longp, &why), -1, "256 bytes invalid");
	EXPECT_STR(why, "pattern longer than 255 bytes", "why: 256 bytes");
	longp[255] = '.';
	why = NULL;
	EXPECT_EQ(table_pattern_check(longp, &why), -1,
	    "256 bytes with trailing dot invalid");
	EXPECT_STR(why, "pattern longer than 255 bytes", "why: 256 with dot");

	EXPECT_EQ(table_pattern_check("alice.example.com", NULL), 0, "exact");
	EXPECT_EQ(table_pattern_check("*.example.net", NULL), 0, "wildcard");
	EXPECT_EQ(table_pattern_check(".example.org", NULL), 0, "suffix");
	EXPECT_EQ(table_pattern_check("*.net.", NULL), 0, "* one label");
	EXPECT_EQ(table_pattern_check(".org.", NULL), 0, ". one label");
	EXPECT_EQ(table_pattern_check("localhost", NULL), 0, "single label");
	EXPECT_EQ(table_pattern_check("_a-1.B_2", NULL), 0, "all characters");
	table_free(t);
}

static void
test_odd_names(void)
{
	struct table	*t = table_new();
	char		 name[300];
	size_t		 i;

	EXPECT_EQ(add(t, ".org"), 0, "add .org");
	EXPECT_EQ(add(t, "*.org"), 0, "add *.org");

	/* A valid 255-byte exact name, then the same longer by a dot. */
	memset(name, 'a', sizeof(name));
	for (i = 60; i < 250; i += 61)
		name[i] = '.';
	memcpy(name + 251, ".org", 4);
	name[255] = '\0';
	EXPECT_EQ(add(t, name), 0, "add a 255-byte exact pattern");
	EXPECT_STR(table_lookup(t, name, 255), name, "255-byte name found");
	name[255] = '.';
	EXPECT_STR(table_lookup(t, name, 256), NULL,
	    "256-byte name (trailing dot) refused");
	EXPECT_STR(table_lookup(t, name, sizeof(name)), NULL,
	    "300-byte name refused");
	EXPECT_STR(table_lookup(t, name, SIZE_MAX), NULL,
	    "SIZE_MAX length refused without reading");
	EXPECT_STR(table_lookup(t, name + 252, 3), ".org", "org itself");
	EXPECT_STR(table_lookup(t, "", 0), NULL, "empty name");
	EXPECT_STR(table_lookup(t, NULL, 0), NULL, "NULL name");
	EXPECT_STR(look(t, "."), NULL, "name \".\"");
	EXPECT_STR(look(t, ".."), NULL, "name \"..\"");
	EXPECT_STR(look(t, ".org"), NULL, "name with empty first label");
	EXPECT_STR(look(t, "a.b.org."), ".org", "trailing dot, . route");
	EXPECT_STR(look(t, "a.org."), "*.org", "trailing dot, * route");
	EXPECT_STR(table_lookup(t, "a\0b.org", 7), NULL, "NUL in name");
	EXPECT_STR(look(t, "\xff.org"), NULL, "high byte in name");
	EXPECT_STR(look(t, "a*.org"), NULL, "'*' in name");
	EXPECT_STR(look(t, "*.org"), NULL, "name \"*.org\"");
	EXPECT_STR(look(t, "a b.org"), NULL, "space in name");
	table_free(t);
}

/* Answers of the order test; each table must give all of them. */
static const struct {
	const char	*name;
	const char	*want;
} order_cases[] = {
	{ "www.example.org", "www.example.org" },
	{ "example.org", ".example.org" },
	{ "mail.example.org", "*.example.org" },
	{ "a.mail.example.org", ".example.org" },
	{ "sub.example.org", "*.example.org" },
	{ "a.sub.example.org", "*.sub.example.org" },
	{ "a.b.sub.example.org", ".sub.example.org" },
	{ "foo.org", ".org" },
	{ "com", NULL },
};

static const char *const order_patterns[] = {
	"www.example.org", "*.example.org", ".example.org", ".org",
	".sub.example.org", "*.sub.example.org"
};
#define NORDER	(sizeof(order_patterns) / sizeof(order_patterns[0]))

/* Every order of the patterns; returns the number of wrong answers. */
static int
order_try(size_t *perm, size_t k)
{
	struct table	*t;
	size_t		 i, tmp;
	int		 bad = 0;

	if (k == NORDER) {
		if ((t = table_new()) == NULL)
			return 1;
		for (i = 0; i < NORDER; i++)
			bad += add(t, order_patterns[perm[i]]) != 0;
		for (i = 0; i < sizeof(order_cases) /
		    sizeof(order_cases[0]); i++) {
			const char	*got = look(t, order_cases[i].name);
			const char	*want = order_cases[i].want;

			if (got == NULL || want == NULL)
				bad += got != want;
			else
				bad += strcmp(got, want) != 0;
		}
		table_free(t);
		return bad;
	}
	for (i = k; i < NORDER; i++) {
		tmp = perm[k];
		perm[k] = perm[i];
		perm[i] = tmp;
		bad += order_try(perm, k + 1);
		perm[i] = perm[k];
		perm[k] = tmp;
	}
	return bad;
}

static void
test_order(void)
{
	size_t	 perm[NORDER], i;

	for (i = 0; i < NORDER; i++)
		perm[i] = i;
	EXPECT_EQ(order_try(perm, 0), 0,
	    "all 720 orders of adding give the same answers");
}

static void
big_pattern(char *buf, size_t i)
{
	if (i < BIG_EXACT)
		snprintf(buf, NAME_SIZE, "host%zu.zone%zu.example.com",
		    i, i % 100);
	else if (i < BIG_EXACT + BIG_WILD)
		snprintf(buf, NAME_SIZE, "*.w%zu.zone%zu.example.net",
		    i, i % 100);
	else
		snprintf(buf, NAME_SIZE, ".s%zu.example.org", i);
}

/* Seconds per lookup of the nnames names at names, TIMED_LOOKUPS times. */
static double
time_lookups(const struct table *t, const char *names, size_t nnames,
    size_t *nhits)
{
	double	 start = now_sec();
	size_t	 i, j;

	*nhits = 0;
	for (i = 0, j = 0; i < TIMED_LOOKUPS; i++) {
		const char	*n = names + j * NAME_SIZE;

		*nhits += table_lookup(t, n, strlen(n)) != NULL;
		if (++j == nnames)
			j = 0;
	}
	return (now_sec() - start) / TIMED_LOOKUPS;
}

static void
test_big(void)
{
	struct table	*t = table_new(), *small = table_new();
	char		*names, buf[NAME_SIZE + 8];
	size_t		 i, bad = 0, nhits;
	double		 start, build, per_small, per_big;

	names = malloc((size_t)BIG_ROUTES * NAME_SIZE);
	ok(t != NULL && small != NULL && names != NULL, "big: allocations");
	if (t == NULL || small == NULL || names == NULL)
		goto done;

	for (i = 0; i < BIG_ROUTES; i++)
		big_pattern(names + i * NAME_SIZE, i);
	start = now_sec();
	for (i = 0; i < BIG_ROUTES; i++)
		bad += table_add(t, names + i * NAME_SIZE, &big_mark[i]) != 0;
	build = now_sec() - start;
	EXPECT_EQ(bad, 0, "big: every add succeeds");
	EXPECT_EQ(table_count(t), BIG_ROUTES, "big: 100,000 routes");

	bad = 0;
	for (i = 0; i < BIG_ROUTES; i++) {
		const char	*p = names + i * NAME_SIZE;

		if (i < BIG_EXACT) {
			bad += look(t, p) != (void *)&big_mark[i];
			snprintf(buf, sizeof(buf), "x%s", p);
			bad += look(t, buf) != NULL;
			snprintf(buf, sizeof(buf),
			    "host%zu.zone%zu.example.com", i, (i + 1) % 100);
			bad += look(t, buf) != NULL;
		} else if (i < BIG_EXACT + BIG_WILD) {
			snprintf(buf, sizeof(buf), "A%s", p + 1);
			bad += look(t, buf) != (void *)&big_mark[i];
			bad += look(t, p + 2) != NULL;
			snprintf(buf, sizeof(buf), "a.b%s", p + 1);
			bad += look(t, buf) != NULL;
		} else {
			bad += look(t, p + 1) != (void *)&big_mark[i];
			snprintf(buf, sizeof(buf), "a.B%s", p);
			bad += look(t, buf) != (void *)&big_mark[i];
			snprintf(buf, sizeof(buf), "x%s", p + 1);
			bad += look(t, buf) != NULL;
		}
	}
	EXPECT_EQ(bad, 0, "big: every route found, every miss NULL");

	bad = 0;
	for (i = 0; i < 10; i++)
		bad += table_add(small, names + i * NAME_SIZE,
		    &big_mark[i]) != 0;
	EXPECT_EQ(bad, 0, "small: 10 routes added");
	per_small = time_lookups(small, names, 10, &nhits);
	EXPECT_EQ(nhits, TIMED_LOOKUPS, "small: timed lookups all hit");
	per_big = time_lookups(t, names, BIG_EXACT, &nhits);
	EXPECT_EQ(nhits, TIMED_LOOKUPS, "big: timed lookups all hit");
	printf("# build of %d routes: %.1f ms; lookup: %.0f ns with 10 "
	    "routes, %.0f ns with %d routes\n", BIG_ROUTES, build * 1e3,
	    per_small * 1e9, per_big * 1e9, BIG_ROUTES);
done:
	free(names);
	table_free(small);
	table_free(t);
}

int
main(void)
{
	test_empty();
	test_precedence();
	test_wild_depth();
	test_case_and_dots();
	test_duplicates();
	test_invalid();
	test_odd_names();
	test_order();
	test_big();
	return harness_exit();
}
