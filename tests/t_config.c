/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Unit tests of the configuration reader: settings, defaults, and each
 * error reported as FILE:LINE: message.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../snimux.h"
#include "harness.h"

#define TOTAL(cf, r) stats_sum((r)->stats, (cf)->ncells,		\
	offsetof(struct stats_cell, total))

static char conf_path[] = "/tmp/snimux-t_config-XXXXXX";
static char err_text[8192];

/* Load <text> as a configuration; its error output lands in err_text. */
static struct config *
load(const char *text, int *nerrors)
{
	struct config *cf;
	FILE *f, *err;
	int saved;
	size_t n;

	f = fopen(conf_path, "w");
	fputs(text, f);
	fclose(f);
	fflush(stderr);
	err = tmpfile();
	saved = dup(2);
	dup2(fileno(err), 2);
	cf = config_load(conf_path, nerrors);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(err);
	n = fread(err_text, 1, sizeof(err_text) - 1, err);
	err_text[n] = '\0';
	fclose(err);
	return cf;
}

/* The configuration <text> must fail with <msg> on line <line>. */
static void
expect_error(const char *text, int line, const char *msg)
{
	char want[512];
	struct config *cf;
	int nerrors;

	snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, msg);
	cf = load(text, &nerrors);
	ok(cf == NULL && strstr(err_text, want) != NULL,
	    "error '%s' on line %d", msg, line);
	if (cf != NULL || strstr(err_text, want) == NULL)
		printf("#   got: %s", err_text);
	config_unref(cf);
}

/* Like expect_error(), and that error is the only one. */
static void
expect_only(const char *text, int line, const char *msg)
{
	struct config *cf;
	int nerrors;

	expect_error(text, line, msg);
	cf = load(text, &nerrors);
	ok(cf == NULL && nerrors == 1, "'%s' is the only error", msg);
	config_unref(cf);
}

static void
test_good(void)
{
	struct config *cf;
	struct route *r;
	int nerrors;

	cf = load("# comment\n"
	    "listen 127.0.0.1:8443   # trailing comment\n"
	    "listen [::1]:8443\n"
	    "\tlisten *:9443\n"
	    "\n"
	    "route alice.example.com 127.0.0.1:9001\n"
	    "route *.example.net [::1]:9002 127.0.0.1:9003\n"
	    "route .example.org 127.0.0.1:9004\n"
	    "default 127.0.0.1:9005\n"
	    "stats /tmp/snimux.sock\n"
	    "timeout hello 1500ms\n"
	    "timeout connect 2s\n"
	    "timeout idle 3m\n"
	    "timeout drain 1h\n"
	    "hello-max-size 16k\n"
	    "no-sni refuse\n"
	    "unknown-sni default\n"
	    "workers 3\n"
	    "relay copy\n"
	    "max-connections 500\n"
	    "not-tls 127.0.0.1:9006\n"
	    "user nobody\n", &nerrors);
	ok(cf != NULL, "a full configuration loads");
	if (cf == NULL) {
		printf("#   %s", err_text);
		return;
	}
	EXPECT_EQ(nerrors, 0, "no errors");
	EXPECT_EQ(cf->nlistens, 3, "three listeners");
	EXPECT_EQ(cf->listens[2].any, 1, "*:PORT means every address");
	EXPECT_EQ(cf->listens[1].addr.ss_family, AF_INET6, "[::1] is IPv6");
	EXPECT_EQ(cf->nroutes, 3, "three routes");
	EXPECT_EQ(cf->routes[1].nbackends, 2, "two backends on one route");
	EXPECT_STR(cf->routes[1].backends[0].text, "[::1]:9002",
	    "IPv6 backend text");
	EXPECT_STR(cf->nosni.backends[0].text, "127.0.0.1:9005",
	    "default backend");
	EXPECT_EQ(cf->unknown.nbackends, 1, "unknown names share default");
	EXPECT_STR(cf->stats_path, "/tmp/snimux.sock", "stats path");
	EXPECT_EQ(cf->hello_ms, 1500, "hello timeout in ms");
	EXPECT_EQ(cf->connect_ms, 2000, "connect timeout");
	EXPECT_EQ(cf->idle_ms, 180000, "idle timeout");
	EXPECT_EQ(cf->drain_ms, 3600000, "drain timeout");
	EXPECT_EQ(cf->hello_max, 16384, "hello-max-size");
	EXPECT_EQ(cf->nosni.refuse, 1, "no-sni refuse");
	EXPECT_EQ(cf->unknown.refuse, 0, "unknown-sni default");
	EXPECT_EQ(cf->workers, 3, "workers");
	EXPECT_EQ(cf->relay, RELAY_COPY, "relay copy");
	EXPECT_EQ(cf->max_conns, 500, "max-connections");
	EXPECT_EQ(cf->stats_mode, 0660, "control socket mode defaults to 0660");
	EXPECT_STR(cf->nottls.pattern, "(not-tls)", "(not-tls) row");
	EXPECT_EQ(config_nrows(cf), 6, "rows: 3 routes and 3 fixed");
	EXPECT_STR(cf->user, "nobody", "user");
	EXPECT_EQ(cf->uid, 65534, "user's uid");
	r = table_lookup(cf->table, "A.EXAMPLE.NET.", 14);
	ok(r == &cf->routes[1], "table routes by pattern");
	EXPECT_STR(cf->nosni.pattern, "(no-sni)", "(no-sni) row");
	EXPECT_STR(cf->unknown.pattern, "(unknown)", "(unknown) row");
	config_unref(cf);
}

static void
test_defaults(void)
{
	struct config *cf;
	int nerrors;

	cf = load("listen 127.0.0.1:1\n", &nerrors);
	ok(cf != NULL, "a listen line alone is enough");
	if (cf == NULL)
		return;
	EXPECT_EQ(cf->hello_ms, 5000, "default hello timeout 5s");
	EXPECT_EQ(cf->connect_ms, 5000, "default connect timeout 5s");
	EXPECT_EQ(cf->idle_ms, 600000, "default idle timeout 10m");
	EXPECT_EQ(cf->drain_ms, 30000, "default drain timeout 30s");
	EXPECT_EQ(cf->hello_max, 65536, "default hello-max-size 64k");
	EXPECT_EQ(cf->nosni.nbackends, 0, "no default backend");
	ok(cf->stats_path == NULL, "no control socket");
	config_unref(cf);
}

static void
test_stats_kept(void)
{
	struct config *a, *b;
	int nerrors;

	a = load("listen 127.0.0.1:1\nroute a.example 127.0.0.1:2\n"
	    "route b.example 127.0.0.1:3\n", &nerrors);
	b = load("listen 127.0.0.1:1\nroute c.example 127.0.0.1:2\n"
	    "route b.example 127.0.0.1:4\n", &nerrors);
	if (a == NULL || b == NULL) {
		ok(0, "reload pair loads");
		return;
	}
	CTR_ADD(a->routes[1].stats->cell[0].total, 7);
	CTR_ADD(a->nosni.stats->cell[0].total, 3);
	config_adopt_stats(b, a);
	EXPECT_EQ(TOTAL(b, &b->routes[1]), 7, "counters follow the pattern");
	EXPECT_EQ(TOTAL(b, &b->routes[0]), 0, "a new route starts at 0");
	EXPECT_EQ(TOTAL(b, &b->nosni), 3, "(no-sni) row is kept");
	config_unref(a);
	EXPECT_EQ(TOTAL(b, &b->routes[1]), 7, "shared row outlives the old");
	config_unref(b);
}

static void
test_errors(void)
{
	const char *L = "listen 127.0.0.1:8443\n";
	char buf[1024];

	expect_error("listen 127.0.0.1:8443\nfrobnicate on\n", 2,
	    "unknown directive 'frobnicate'");
	expect_error("listen 127.0.0.1\n", 1, "invalid listen address "
	    "'127.0.0.1'");
	expect_error("listen 127.0.0.1:70000\n", 1, "invalid listen address");
	expect_error("listen [::1:80\n", 1, "invalid listen address");
	expect_error("listen 127.0.0.1:1 127.0.0.1:2\n", 1,
	    "usage: listen ADDRESS");
	expect_error("listen 127.0.0.1:1\nlisten 127.0.0.1:1\n", 2,
	    "duplicate listen address");
	expect_error("# nothing\n\n", 2, "no 'listen' line");
	snprintf(buf, sizeof(buf), "%s\n\nroute a..b 127.0.0.1:1\n", L);
	expect_error(buf, 4, "invalid pattern 'a..b': empty label");
	snprintf(buf, sizeof(buf), "%sroute a.b\n", L);
	expect_error(buf, 2, "missing backend address");
	snprintf(buf, sizeof(buf), "%sroute\n", L);
	expect_error(buf, 2, "usage: route PATTERN BACKEND");
	snprintf(buf, sizeof(buf), "%sroute a.b 1.2.3.4\n", L);
	expect_error(buf, 2, "invalid backend '1.2.3.4'");
	snprintf(buf, sizeof(buf), "%sroute a.b 1.2.3.4:0\n", L);
	expect_error(buf, 2, "invalid backend '1.2.3.4:0'");
	snprintf(buf, sizeof(buf), "%sroute a.b [::1]:x\n", L);
	expect_error(buf, 2, "invalid backend '[::1]:x'");
	snprintf(buf, sizeof(buf), "%sroute a.b no-such-host.invalid:1\n", L);
	expect_error(buf, 2, "cannot resolve backend "
	    "'no-such-host.invalid:1'");
	snprintf(buf, sizeof(buf), "%sroute A.b 127.0.0.1:1\n"
	    "route a.b. 127.0.0.1:2\n", L);
	expect_error(buf, 3, "duplicate route 'a.b.'");
	snprintf(buf, sizeof(buf), "%sdefault 127.0.0.1:1\n"
	    "default 127.0.0.1:2\n", L);
	expect_error(buf, 3, "duplicate 'default' (first on line 2)");
	snprintf(buf, sizeof(buf), "%sdefault\n", L);
	expect_error(buf, 2, "missing backend address");
	snprintf(buf, sizeof(buf), "%stimeout hello 5\n", L);
	expect_error(buf, 2, "invalid duration '5'");
	snprintf(buf, sizeof(buf), "%stimeout hello 0s\n", L);
	expect_error(buf, 2, "invalid duration '0s'");
	snprintf(buf, sizeof(buf), "%stimeout nap 5s\n", L);
	expect_error(buf, 2, "unknown timeout 'nap'");
	snprintf(buf, sizeof(buf), "%stimeout idle\n", L);
	expect_error(buf, 2, "usage: timeout");
	snprintf(buf, sizeof(buf), "%shello-max-size 10\n", L);
	expect_error(buf, 2, "invalid size '10'");
	snprintf(buf, sizeof(buf), "%shello-max-size 64q\n", L);
	expect_error(buf, 2, "invalid size '64q'");
	snprintf(buf, sizeof(buf), "%sno-sni maybe\n", L);
	expect_error(buf, 2, "usage: no-sni default|refuse");
	snprintf(buf, sizeof(buf), "%sunknown-sni\n", L);
	expect_error(buf, 2, "usage: unknown-sni default|refuse");
	snprintf(buf, sizeof(buf), "%sstats /a\nstats /b\n", L);
	expect_error(buf, 3, "duplicate 'stats'");
	snprintf(buf, sizeof(buf), "%sstats\n", L);
	expect_error(buf, 2, "usage: stats PATH");
	snprintf(buf, sizeof(buf), "%sstats /a mode 999\n", L);
	expect_error(buf, 2, "invalid mode '999'");
	snprintf(buf, sizeof(buf), "%sstats /a owner no-such-user-x\n", L);
	expect_error(buf, 2, "unknown user 'no-such-user-x'");
	snprintf(buf, sizeof(buf), "%sstats /a colour red\n", L);
	expect_error(buf, 2, "unknown stats option 'colour'");
	snprintf(buf, sizeof(buf), "%sstats /a mode\n", L);
	expect_error(buf, 2, "usage: stats PATH [mode OCTAL]");
	snprintf(buf, sizeof(buf), "%suser\n", L);
	expect_error(buf, 2, "usage: user NAME");
	snprintf(buf, sizeof(buf), "%suser no-such-user-x\n", L);
	expect_error(buf, 2, "unknown user 'no-such-user-x'");
	snprintf(buf, sizeof(buf), "%sgroup no-such-group-x\n", L);
	expect_error(buf, 2, "unknown group 'no-such-group-x'");
	snprintf(buf, sizeof(buf), "%snot-tls\n", L);
	expect_error(buf, 2, "missing backend address");
	snprintf(buf, sizeof(buf), "%snot-tls 127.0.0.1:1\n"
	    "not-tls 127.0.0.1:2\n", L);
	expect_error(buf, 3, "duplicate 'not-tls'");
	snprintf(buf, sizeof(buf), "%sworkers 0\n", L);
	expect_error(buf, 2, "usage: workers auto|1..64");
	/* A setting of one value may be given once: no silent override. */
	snprintf(buf, sizeof(buf), "%stimeout idle 1m\ntimeout hello 2s\n"
	    "timeout idle 2m\n", L);
	expect_error(buf, 4, "duplicate 'timeout idle' (first on line 2)");
	snprintf(buf, sizeof(buf), "%sworkers 2\n# c\nworkers 3\n", L);
	expect_error(buf, 4, "duplicate 'workers' (first on line 2)");
	snprintf(buf, sizeof(buf), "%srelay copy\nrelay copy\n", L);
	expect_error(buf, 3, "duplicate 'relay' (first on line 2)");
	snprintf(buf, sizeof(buf), "%shello-max-size 8k\nhello-max-size 9k\n",
	    L);
	expect_error(buf, 3, "duplicate 'hello-max-size' (first on line 2)");
	snprintf(buf, sizeof(buf), "%smax-connections 9\nmax-connections "
	    "auto\n", L);
	expect_error(buf, 3, "duplicate 'max-connections' (first on line 2)");
	snprintf(buf, sizeof(buf), "%sno-sni refuse\nunknown-sni refuse\n"
	    "no-sni default\n", L);
	expect_error(buf, 4, "duplicate 'no-sni' (first on line 2)");
	snprintf(buf, sizeof(buf), "%sunknown-sni refuse\nunknown-sni "
	    "refuse\n", L);
	expect_error(buf, 3, "duplicate 'unknown-sni' (first on line 2)");
	/* A bad line does not count as the first: one error, not two. */
	snprintf(buf, sizeof(buf), "%sworkers many\nworkers 2\n", L);
	expect_only(buf, 2, "usage: workers auto|1..64");
	snprintf(buf, sizeof(buf), "%stimeout idle 5\ntimeout idle 5s\n", L);
	expect_only(buf, 2, "invalid duration '5'");
	snprintf(buf, sizeof(buf), "%srelay fast\n", L);
	expect_error(buf, 2, "usage: relay splice|copy");
	snprintf(buf, sizeof(buf), "%smax-connections -1\n", L);
	expect_error(buf, 2, "usage: max-connections auto|NUMBER");
}

static void
test_many_errors(void)
{
	struct config *cf;
	int nerrors;

	cf = load("listen nowhere\nbogus\nroute .. 127.0.0.1:1\n",
	    &nerrors);
	ok(cf == NULL, "a file with errors does not load");
	EXPECT_EQ(nerrors, 4, "every error is reported, not just the first");
	cf = load("", &nerrors);
	ok(cf == NULL, "an empty file does not load");
}

int
main(void)
{
	int fd;

	if ((fd = mkstemp(conf_path)) == -1) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	test_good();
	test_defaults();
	test_stats_kept();
	test_errors();
	test_many_errors();
	unlink(conf_path);
	return harness_exit();
}
