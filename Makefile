# SPDX-License-Identifier: ISC
# snimux: plain make, no configure step.  gcc or clang (make CC=clang).
#   make              build ./snimux
#   make check        every test (installs what the tests need)
#   make demo         two TLS servers and a default behind one port
#   make soak         a mix of clients for 10 minutes (SOAK_SECONDS=N)
#   make SANITIZE=address,undefined check    the same under sanitizers

CC	?= cc
CFLAGS	?= -O2 -g
WARN	= -std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
	  -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes \
	  -Wmissing-declarations -Wwrite-strings -Wformat=2 -Wundef \
	  -Wdeclaration-after-statement
DEFS	= -D_GNU_SOURCE
ifneq ($(SANITIZE),)
SANFLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	   -fno-sanitize-recover=all
endif
ALL_CFLAGS = $(WARN) $(DEFS) $(CFLAGS) $(SANFLAGS)
LDLIBS	?= -lpthread

SRCS	= snimux.c worker.c conn.c parse_hello.c backend_table.c config.c \
	  loop.c control.c log.c
OBJS	= $(SRCS:.c=.o)
HDRS	= snimux.h parse_hello.h compat.h

UNIT	= tests/t_hello tests/t_table tests/t_config
INTEG	= $(wildcard tests/integ/t_*.py)

all: snimux

snimux: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

%.o: %.c $(HDRS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

loop.o: loop_epoll.c loop_kqueue.c

tests/t_hello: tests/t_hello.c parse_hello.c parse_hello.h tests/harness.h \
		tests/hello_same.h
	$(CC) $(ALL_CFLAGS) -o $@ tests/t_hello.c parse_hello.c

tests/t_table: tests/t_table.c backend_table.c snimux.h tests/harness.h
	$(CC) $(ALL_CFLAGS) -o $@ tests/t_table.c backend_table.c

tests/t_config: tests/t_config.c config.c backend_table.c log.c snimux.h \
		tests/harness.h
	$(CC) $(ALL_CFLAGS) -o $@ tests/t_config.c config.c backend_table.c \
	    log.c $(LDLIBS)

unit: $(UNIT)

# libFuzzer targets (clang): the hello parser and the configuration reader.
FUZZ_CC	?= clang
FUZZ_FLAGS = $(WARN) $(DEFS) -O1 -g \
	     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60

tests/fuzz_hello: tests/fuzz_hello.c parse_hello.c parse_hello.h \
		tests/fuzz_target.h tests/hello_same.h tests/harness.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz_hello.c parse_hello.c

tests/fuzz_config: tests/fuzz_config.c config.c backend_table.c log.c \
		snimux.h tests/fuzz_target.h tests/harness.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz_config.c config.c \
	    backend_table.c log.c $(LDLIBS)

# Each target for FUZZ_SECONDS (make fuzz FUZZ_SECONDS=600).
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz.sh

check: snimux $(UNIT)
	sh tests/deps.sh
	sh tests/run.sh tests/t_lint.sh $(UNIT) tests/fuzz.sh $(INTEG) \
	    tests/t_soak.sh

# The whole suite again on a clang build with AddressSanitizer and UBSan.
check-asan:
	$(MAKE) clean
	$(MAKE) CC=clang SANITIZE=address,undefined TEST_LOGS=tests/logs/asan \
	    check
	rm -f snimux $(OBJS) $(UNIT)

demo: snimux
	sh tests/demo.sh

# The soak test: every kind of client at once for SOAK_SECONDS (make
# soak SOAK_SECONDS=60); make check runs 30 s of it (tests/t_soak.sh).
SOAK_SECONDS ?= 600

soak: snimux
	SOAK_SECONDS=$(SOAK_SECONDS) python3 tests/soak.py

# The benchmark: snimux against a direct connection and, when installed,
# HAProxy and nginx stream.  bench-quick is the short form (< 3 min).
bench/loadgen: bench/loadgen.c
	$(CC) $(WARN) $(DEFS) -O2 -g -o $@ bench/loadgen.c $(LDLIBS)

bench: snimux bench/loadgen
	sh bench/setup.sh
	python3 bench/bench.py

bench-quick: snimux bench/loadgen
	sh bench/setup.sh
	python3 bench/bench.py --quick

PREFIX	?= /usr/local
install: snimux
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 snimux $(DESTDIR)$(PREFIX)/sbin/snimux
	install -m 644 snimux.8 $(DESTDIR)$(PREFIX)/share/man/man8/snimux.8
	install -m 644 snimux.conf.5 \
	    $(DESTDIR)$(PREFIX)/share/man/man5/snimux.conf.5

lint:
	sh tests/lint.sh *.c *.h tests/*.c tests/*.h

clean:
	rm -f snimux $(OBJS) $(UNIT) tests/fuzz_hello tests/fuzz_config \
	    bench/loadgen
	rm -rf tests/logs

.PHONY: all unit check check-asan demo install lint clean fuzz bench bench-quick \
	soak
