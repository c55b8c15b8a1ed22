/* SPDX-License-Identifier: ISC */
/*
 * Copyright (c) 2026 The snimux authors
 *
 * Program header: shared structures and the prototypes of every module.
 */
#ifndef SNIMUX_H
#define SNIMUX_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#define SNIMUX_VERSION	"0.1.0"

#include "compat.h"

/* Built-in defaults for the settings of the configuration file. */
#define DEFAULT_CONFIG		"/etc/snimux.conf"
#define DEFAULT_HELLO_MS	(5 * 1000)
#define DEFAULT_CONNECT_MS	(5 * 1000)
#define DEFAULT_IDLE_MS		(10 * 60 * 1000)
#define DEFAULT_DRAIN_MS	(30 * 1000)
#define DEFAULT_HELLO_MAX	(64 * 1024)
#define HELLO_MAX_LIMIT		(1024 * 1024)

/*
 * Counters of one route row.  A row outlives a reload when the new
 * configuration has a route with the same pattern; <refs> counts the
 * configurations and connections that hold it.
 */
struct stats {
	uint64_t	active;
	uint64_t	total;
	uint64_t	c2b_bytes;
	uint64_t	b2c_bytes;
	uint64_t	backend_failures;
	unsigned	refs;
};

/* Why a connection never reached a backend. */
enum hello_fail {
	FAIL_TIMEOUT,
	FAIL_INVALID,
	FAIL_NOT_TLS,
	FAIL_TOO_LARGE,
	FAIL_REFUSED,
	FAIL_ABORTED,
	FAIL_NREASONS
};

extern uint64_t hello_failures[FAIL_NREASONS];
extern const char *const hello_fail_names[FAIL_NREASONS];

struct backend {
	struct sockaddr_storage	 addr;
	socklen_t		 addr_len;
	char			 text[64];	/* "IP:PORT" for logs */
};

struct route {
	char		*pattern;	/* as written; also the row's label */
	struct backend	*backends;	/* tried in order */
	size_t		 nbackends;
	struct stats	*stats;
	int		 refuse;	/* answer with an alert, never relay */
	int		 line;
};

struct listen_conf {
	char			*text;		/* as written */
	struct sockaddr_storage	 addr;
	socklen_t		 addr_len;
	int			 any;		/* "*:PORT": both families */
};

/*
 * A loaded configuration.  Read only once loaded; connections hold a
 * reference so that a reload never pulls a route from under them.
 */
struct config {
	char			*path;
	struct route		*routes;
	size_t			 nroutes;
	struct route		 nosni;		/* row "(no-sni)" */
	struct route		 unknown;	/* row "(unknown)" */
	struct table		*table;		/* pattern -> struct route */
	struct listen_conf	*listens;
	size_t			 nlistens;
	char			*stats_path;
	uint64_t		 hello_ms;
	uint64_t		 connect_ms;
	uint64_t		 idle_ms;
	uint64_t		 drain_ms;
	size_t			 hello_max;
	unsigned		 refs;
};

/* backend_table.c */

/*
 * Route table: maps server-name patterns to opaque values.  Patterns are
 * "name" (exact), "*.suffix" (exactly one more label) and ".suffix" (the
 * suffix itself and any name below it).  Built once, then read only.
 */
struct table;

enum table_kind {
	TABLE_EXACT,
	TABLE_WILD,
	TABLE_SUFFIX
};

struct table	*table_new(void);
void		 table_free(struct table *);
int		 table_add(struct table *, const char *, void *);
void		*table_lookup(const struct table *, const char *, size_t);
int		 table_pattern_check(const char *, const char **);
size_t		 table_count(const struct table *);

/* config.c */
struct config	*config_load(const char *, int *);
void		 config_ref(struct config *);
void		 config_unref(struct config *);
void		 config_adopt_stats(struct config *, const struct config *);
int		 config_parse_addr(const char *, int, struct sockaddr_storage *,
		    socklen_t *, int *);
void		 stats_unref(struct stats *);
void		 addr_format(const struct sockaddr *, char *, size_t);

/* log.c */
void	log_init(int);
void	log_warn(const char *, ...) SNIMUX_PRINTF(1, 2);
void	log_warnx(const char *, ...) SNIMUX_PRINTF(1, 2);
void	log_info(const char *, ...) SNIMUX_PRINTF(1, 2);
void	log_debug(const char *, ...) SNIMUX_PRINTF(1, 2);
void	fatal(const char *, ...) SNIMUX_PRINTF(1, 2) SNIMUX_DEAD;
void	fatalx(const char *, ...) SNIMUX_PRINTF(1, 2) SNIMUX_DEAD;

/* loop.c */
#define LOOP_READ	0x1
#define LOOP_WRITE	0x2
#define LOOP_BATCH	256

typedef void (*loop_cb)(int, int, void *);

struct loop;

struct loop	*loop_new(void);
void		 loop_free(struct loop *);
int		 loop_watch(struct loop *, int, int, loop_cb, void *);
void		 loop_unwatch(struct loop *, int);
int		 loop_once(struct loop *, int);
uint64_t	 loop_now(const struct loop *);
uint64_t	 now_ms(void);

/* conn.c */
void		 conn_init(struct loop *);
int		 conn_accept(int, struct config *);
int		 conn_timers_run(uint64_t);
uint64_t	 conn_active(void);
void		 conn_drain_all(void);


/* control.c */
int		 control_open(struct loop *, const char *);
void		 control_close(void);
const char	*control_current(void);
int		 control_client(const char *, const char *);

/* snimux.c */
extern struct config *active_config;

#endif
