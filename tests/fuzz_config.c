/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Fuzz target of config_load(): a configuration is loaded XOR errors are
 * counted, and each error is one "PATH:LINE: message" line on stderr.
 * With -DFUZZ_REPLAY, main() runs the same checks over files.
 */

#include <sys/stat.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../snimux.h"

#define FUZZ_NAME	"fuzz_config"
#include "fuzz_target.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN	1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN	1
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

static char	 conf_path[4096];
static int	 conf_fd = -1, err_fd = -1, out_fd = -1;

static void
remove_conf(void)
{
	unlink(conf_path);
}

/*
 * Makes the file config_load() reads and an unlinked one that catches
 * its stderr, both under $TMPDIR.  Sanitizer reports keep going to the
 * real stderr.
 */
static void
setup(void)
{
	const char	*dir;
	char		 err_path[sizeof(conf_path)];

	if ((dir = getenv("TMPDIR")) == NULL || *dir == '\0')
		dir = "/tmp";
	snprintf(conf_path, sizeof(conf_path), "%s/snimux-fuzz-XXXXXX", dir);
	snprintf(err_path, sizeof(err_path), "%s/snimux-fuzz-XXXXXX", dir);
	if ((conf_fd = mkstemp(conf_path)) == -1 ||
	    (err_fd = mkstemp(err_path)) == -1 || (out_fd = dup(2)) == -1) {
		perror("fuzz_config: setup");
		exit(1);
	}
	unlink(err_path);
	atexit(remove_conf);
#ifdef FUZZ_ASAN
	__sanitizer_set_report_fd((void *)(intptr_t)out_fd);
#endif
}

static int
put(int fd, const void *p, size_t n)
{
	if (ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	return n == 0 || pwrite(fd, p, n, 0) == (ssize_t)n ? 0 : -1;
}

/* Reads fd from its start into a NUL-terminated malloc'd string. */
static char *
slurp(int fd, size_t *len)
{
	struct stat	 st;
	char		*s;

	if (fstat(fd, &st) == -1 ||
	    (s = malloc((size_t)st.st_size + 1)) == NULL)
		return NULL;
	*len = (size_t)st.st_size;
	if (*len > 0 && pread(fd, s, *len, 0) != (ssize_t)*len) {
		free(s);
		return NULL;
	}
	s[*len] = '\0';
	return s;
}

/*
 * Might backend word <w> reach getaddrinfo()?  Erring on the safe side:
 * any HOST:PORT whose host is not numeric, except "localhost", which
 * comes from the hosts file; any other name could ask the DNS.
 */
static int
asks_dns(const char *w)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	const char		*colon;
	size_t			 hlen;
	int			 any;

	if (config_parse_addr(w, 0, &ss, &len, &any) == 0 || w[0] == '[' ||
	    (colon = strrchr(w, ':')) == NULL || colon == w ||
	    colon[1] == '\0')
		return 0;
	hlen = (size_t)(colon - w);
	if (strspn(w, "0123456789.") >= hlen)
		return 0;
	return !(hlen == strlen("localhost") &&
	    strncmp(w, "localhost", hlen) == 0);
}

/* Splits one line into words as config.c does; n is the count. */
static int
words(char *s, char **w, int size)
{
	char	*hash;
	int	 n = 0;

	if ((hash = strchr(s, '#')) != NULL)
		*hash = '\0';
	while (*s != '\0' && n < size) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			*s++ = '\0';
		if (*s == '\0')
			break;
		w[n++] = s;
		while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\r')
			s++;
	}
	return n;
}

/* Does a line of d[0..n) name a backend host to resolve? */
static int
resolves(const uint8_t *d, size_t n)
{
	char	*text, *line, *next, *w[256];
	int	 nw, first, found = 0;

	if ((text = malloc(n + 1)) == NULL)
		abort();
	memcpy(text, d, n);
	text[n] = '\0';
	for (line = text; line != NULL && !found; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		nw = words(line, w, 256);
		if (nw > 0 && strcmp(w[0], "route") == 0)
			first = 2;
		else if (nw > 0 && (strcmp(w[0], "default") == 0 ||
		    strcmp(w[0], "not-tls") == 0))
			first = 1;
		else
			continue;
		for (int i = first; i < nw && !found; i++)
			found = asks_dns(w[i]);
	}
	free(text);
	return found;
}

/* Lines getline() hands config_load(): the last one may lack '\n'. */
static long
count_lines(const uint8_t *d, size_t n)
{
	long	 nl = 0;

	for (size_t i = 0; i < n; i++)
		if (d[i] == '\n')
			nl++;
	return nl + (n > 0 && d[n - 1] != '\n');
}

/*
 * Every line of <err> reads "PATH:LINE: message" with LINE from 1 to
 * nlines + 1; sets *nmsg to their count.
 */
static int
errors_ok(const char *err, size_t len, long nlines, int *nmsg)
{
	size_t		 plen = strlen(conf_path);
	const char	*p, *eol;
	char		*ep;
	long		 line;

	*nmsg = 0;
	if (len > 0 && err[len - 1] != '\n')
		return fuzz_fail("error output does not end with a newline");
	for (p = err; p < err + len; p = eol + 1) {
		eol = strchr(p, '\n');
		(*nmsg)++;
		if (strncmp(p, conf_path, plen) != 0 || p[plen] != ':' ||
		    !isdigit((unsigned char)p[plen + 1]))
			return fuzz_fail("error %d: no PATH:LINE: %.*s",
			    *nmsg, (int)(eol - p), p);
		line = strtol(p + plen + 1, &ep, 10);
		if (ep[0] != ':' || ep[1] != ' ' || ep + 2 >= eol)
			return fuzz_fail("error %d: no message after the line "
			    "number: %.*s", *nmsg, (int)(eol - p), p);
		if (line < 1 || line > nlines + 1)
			return fuzz_fail("error %d: line %ld of %ld: %.*s",
			    *nmsg, line, nlines, (int)(eol - p), p);
	}
	return 0;
}

/* What a loaded configuration promises. */
static int
config_ok(const struct config *cf)
{
	if (cf->nlistens == 0)
		return fuzz_fail("loaded without a listen address");
	if (cf->table == NULL || table_count(cf->table) != cf->nroutes)
		return fuzz_fail("table holds other than the routes");
	for (size_t i = 0; i < cf->nroutes; i++)
		if (cf->routes[i].nbackends == 0 ||
		    cf->routes[i].pattern == NULL ||
		    cf->routes[i].stats == NULL)
			return fuzz_fail("route %zu incomplete", i);
	if (cf->hello_max < 1024 || cf->hello_max > HELLO_MAX_LIMIT ||
	    cf->hello_ms == 0 || cf->connect_ms == 0 || cf->idle_ms == 0 ||
	    cf->drain_ms == 0)
		return fuzz_fail("a setting out of its range");
	if (cf->workers < 0 || cf->workers > 64 ||
	    (cf->relay != RELAY_SPLICE && cf->relay != RELAY_COPY))
		return fuzz_fail("workers or relay out of range");
	return 0;
}

/* Loads d[0..n) with stderr caught; *err gets what was printed. */
static struct config *
load(const uint8_t *d, size_t n, int *nerrors, char **err, size_t *len)
{
	struct config	*cf;

	if (conf_fd == -1)
		setup();
	if (put(conf_fd, d, n) == -1 || put(err_fd, "", 0) == -1) {
		perror("fuzz_config: temporary file");
		abort();
	}
	fflush(stderr);
	dup2(err_fd, 2);
	*nerrors = -1;
	cf = config_load(conf_path, nerrors);
	fflush(stderr);
	dup2(out_fd, 2);
	if ((*err = slurp(err_fd, len)) == NULL) {
		perror("fuzz_config: error output");
		abort();
	}
	return cf;
}

/* Every check on one input; 0, or -1 with the fault recorded. */
static int
check(const uint8_t *d, size_t n)
{
	struct config	*cf;
	char		*err;
	size_t		 len;
	int		 nerrors, nmsg, rc;

	if (resolves(d, n))
		return 0;
	cf = load(d, n, &nerrors, &err, &len);
	rc = errors_ok(err, len, count_lines(d, n), &nmsg);
	if (rc == 0 && (cf == NULL) == (nerrors == 0))
		rc = fuzz_fail("config %s with %d errors",
		    cf ? "loaded" : "refused", nerrors);
	if (rc == 0 && nmsg != nerrors)
		rc = fuzz_fail("%d error lines for %d errors", nmsg, nerrors);
	if (rc == 0 && memchr(d, '\0', n) != NULL &&
	    strstr(err, "NUL byte") == NULL)
		rc = fuzz_fail("a NUL byte went unreported");
	if (rc == 0 && cf != NULL)
		rc = config_ok(cf);
	free(err);
	config_unref(cf);
	return rc;
}

#ifdef FUZZ_REPLAY
/*
 * Replays each file or directory named, by default tests/fuzz/config.
 * Exits 0 when every input passes.
 */
int
main(int argc, char *argv[])
{
	if (argc < 2)
		replay_dir("tests/fuzz/config");
	return replay_args(argc, argv);
}
#endif
