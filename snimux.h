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

#include <pthread.h>
#include <stdatomic.h>
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
 * Counters are written by one worker each, without locks: every worker
 * has its own cell in every row, and readers add the cells up.
 */
#define CTR_ADD(x, n)	atomic_store_explicit(&(x),			\
	atomic_load_explicit(&(x), memory_order_relaxed) + (n),		\
	memory_order_relaxed)
#define CTR_GET(x)	atomic_load_explicit(&(x), memory_order_relaxed)

struct stats_cell {
	_Alignas(64) _Atomic uint64_t active;
	_Atomic uint64_t	total;
	_Atomic uint64_t	c2b_bytes;
	_Atomic uint64_t	b2c_bytes;
	_Atomic uint64_t	backend_failures;
};

/*
 * Counters of one route row.  A row outlives a reload when the new
 * configuration has a route with the same pattern; <refs> counts the
 * configurations that hold it.
 */
struct stats {
	_Atomic unsigned	refs;
	struct stats_cell	cell[];		/* one per worker */
};

/* Why a connection never reached a backend. */
enum hello_fail {
	FAIL_TIMEOUT,
	FAIL_INVALID,
	FAIL_NOT_TLS,
	FAIL_TOO_LARGE,
	FAIL_REFUSED,
	FAIL_ABORTED,
	FAIL_LIMIT,
	FAIL_NREASONS
};

extern const char *const hello_fail_names[FAIL_NREASONS];

/* How a connection that got past its hello ended. */
enum conn_end {
	END_EOF,	/* both sides done */
	END_RESET,	/* a side reset, or a relay error */
	END_IDLE,	/* no traffic for timeout idle */
	END_DRAIN,	/* still open at the end of a drain */
	END_CONNECT,	/* no backend accepted */
	END_ERROR,	/* snimux ran out of something */
	END_NREASONS
};

extern const char *const conn_end_names[END_NREASONS];

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
	struct route		 nottls;	/* row "(not-tls)", if set */
	struct table		*table;		/* pattern -> struct route */
	struct listen_conf	*listens;
	size_t			 nlistens;
	char			*stats_path;
	int			 stats_mode;
	uid_t			 stats_uid;	/* (uid_t)-1: unchanged */
	gid_t			 stats_gid;	/* (gid_t)-1: unchanged */
	char			*user;		/* drop root to this user */
	uid_t			 uid;
	gid_t			 gid;
	int			 has_group;	/* gid from "group" */
	uint64_t		 hello_ms;
	uint64_t		 connect_ms;
	uint64_t		 idle_ms;
	uint64_t		 drain_ms;
	size_t			 hello_max;
	int			 workers;	/* 0: one per CPU */
	int			 relay;		/* RELAY_SPLICE or RELAY_COPY */
	uint64_t		 max_conns;	/* 0: from the fd limit */
	size_t			 ncells;	/* counter cells per row */
	_Atomic unsigned	 refs;
};

#define RELAY_SPLICE	0
#define RELAY_COPY	1

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
struct config	*config_read(const char *, int *);
void		 config_ref(struct config *);
void		 config_unref(struct config *);
void		 config_adopt_stats(struct config *, const struct config *);
int		 config_parse_addr(const char *, int, struct sockaddr_storage *,
		    socklen_t *, int *);
void		 stats_unref(struct stats *);
unsigned	 config_workers(const struct config *);
size_t		 config_nrows(const struct config *);
struct route	*config_row(const struct config *, size_t);
uint64_t	 stats_sum(const struct stats *, size_t, size_t);

extern unsigned	 config_ncells;
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
void		 loop_close(struct loop *, int);
int		 loop_once(struct loop *, int);
uint64_t	 loop_now(const struct loop *);
uint64_t	 now_ms(void);

/* conn.c */
#include <sys/queue.h>

struct conn;
TAILQ_HEAD(conn_list, conn);

/* A pipe for the zero-copy relay, from a worker's pool. */
struct relay_pipe {
	int			 fd[2];
	SLIST_ENTRY(relay_pipe)	 next;
};
SLIST_HEAD(pipe_list, relay_pipe);

/*
 * Connections with a deadline, in deadline order, listed by the timeout
 * <ms> that set it: while the configuration stays the same, each kind
 * of timeout has one list (or shares one, when two are equal).  When
 * reloads leave more timeout values alive than a worker has lists, the
 * extra ones join the list of the nearest value.
 */
#define TIMER_LISTS	8
_Static_assert(TIMER_LISTS <= 256, "struct conn keeps the index in 8 bits");
struct timer_list {
	uint64_t		 ms;
	struct conn_list	 conns;
};

/*
 * One thread with its own event loop, listening sockets and connections.
 * The main thread hands it a new configuration or a stop through <mu>
 * and a byte on <cmd>; only the worker touches the rest.
 */
struct worker {
	pthread_t		 thread;
	unsigned		 idx;
	struct loop		*loop;
	int			 cmd[2];	/* main -> worker pipe */
	pthread_mutex_t		 mu;
	struct config		*next_cf;	/* guarded by mu */
	int			*next_lfds;	/* guarded by mu */
	size_t			 next_nlfds;	/* guarded by mu */
	int			 next_stop;	/* guarded by mu */

	struct config		*cf;		/* for new connections */
	int			*lfds;
	size_t			 nlfds;
	int			 stopping;
	uint64_t		 accept_paused_until;
	uint64_t		 now;
	struct conn_list	 all;
	struct timer_list	 timers[TIMER_LISTS];
	struct conn_list	 fdwait;	/* waiting for a descriptor */
	int			 fd_short;	/* socket() ran out */
	int			 fd_freed;	/* a connection closed */
	uint8_t			*chunk;		/* copy relay buffer */
	uint8_t			*scratch;	/* hello reassembly */
	size_t			 scratch_size;
	struct pipe_list	 pipes;		/* idle pipes */
	size_t			 npipes_free;
	size_t			 npipes_used;
	_Atomic uint64_t	 nconns;
	_Atomic uint64_t	 hello_failures[FAIL_NREASONS];
	_Atomic uint64_t	 endings[END_NREASONS];
};

int		 conn_worker_init(struct worker *);
void		 conn_worker_free(struct worker *);
int		 conn_accept(struct worker *, int);
int		 conn_timers_run(struct worker *, uint64_t);
int		 conn_fdwait_retry(struct worker *);
void		 conn_drain_all(struct worker *);
uint64_t	 conn_open_total(void);
void		 conn_limits(uint64_t, size_t);

/* worker.c */
extern struct worker	*workers;
extern unsigned		 nworkers;

int		 workers_start(unsigned, struct config *, int **, size_t);
void		 workers_apply(struct config *, int **, size_t);
void		 workers_stop(void);
void		 workers_drain(void);
int		 workers_done(void);
void		 workers_join(void);
int		 workers_exit_fd(void);
void		 worker_accept_pause(struct worker *);

/* control.c */
int		 control_open(struct loop *, const char *, int, uid_t, gid_t);
void		 control_close(void);
const char	*control_current(void);
int		 control_timers_run(uint64_t);
int		 control_client(const char *, const char *);

/* snimux.c */
extern struct config *active_config;

#endif
