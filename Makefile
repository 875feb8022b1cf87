# exposrd - self-hosted reverse tunnel relay server
#
#   make                 build ./exposrd
#   make test            unit tests, fuzz-corpus replay, integration tests
#   make test SAN=1      the same under AddressSanitizer + UBSan (build-san/)
#   make fuzz            libFuzzer targets (needs clang)
#   make bench           benchmarks (tests/bench/, not part of the test suite)
#   make install PREFIX=/usr/local DESTDIR=
#   make static          fully static musl binary in build-static/ (conf/static.mk)
#   make clean
#
# Optional parts are 0/1 switches: WITH_SQLITE (default 1), WITH_SSH (default 1:
# the SSH transport on libssh), WITH_TLS (default 1: the SNI ingress on
# BearSSL; WITH_TLS_LIBCRYPTO=1, the default, adds libcrypto's arithmetic).

VERSION      := 0.1.0
PREFIX       ?= /usr/local
DESTDIR      ?=
CC           ?= cc
PKG_CONFIG   ?= pkg-config
SAN          ?= 0
WITH_SQLITE  ?= 1
WITH_PGSQL   ?= 1
WITH_REDIS   ?= 1
WITH_SSH     ?= 1
WITH_TLS     ?= 1
WITH_TLS_LIBCRYPTO ?= 1
# libcrypto is used only in a TLS build
TLS_LIBCRYPTO := $(if $(filter 1,$(WITH_TLS)),$(WITH_TLS_LIBCRYPTO),0)

ifeq ($(SAN),1)
B            := build-san
SANFLAGS     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT          ?= -O1 -g
else
B            := build
SANFLAGS     :=
OPT          ?= -O2 -g
endif

# make static [ARCH=x86_64|aarch64|armv7] [FLAVOUR=small|full]
include conf/static.mk

WARN   := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
          -Wpointer-arith -Wsign-compare -Wno-unused-parameter
# snprintf truncation is deliberate throughout; gcc warns about it at -O2.
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
WARN   += -Wno-format-truncation
endif
CFLAGS ?= $(OPT)
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SANFLAGS) \
          -Ilib -Icompat -I$(B) -DEXPOSRD_VERSION='"$(VERSION)"' \
          -DWITH_SQLITE=$(WITH_SQLITE) -DWITH_PGSQL=$(WITH_PGSQL) -DWITH_REDIS=$(WITH_REDIS) \
          -DWITH_SSH=$(WITH_SSH) -DWITH_TLS=$(WITH_TLS) -DWITH_TLS_LIBCRYPTO=$(TLS_LIBCRYPTO)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)
LIBS   :=

# Files named here are compiled only with their switch; the modules of a
# switch are listed in its block below.
OPTIONAL_SRCS := lib/storage-sqlite.c lib/storage-pgsql.c lib/storage-redis.c \
                 $(wildcard lib/tls*.c lib/ingress-sni*.c lib/transport-ssh*.c)
LIB_SRCS := $(filter-out $(OPTIONAL_SRCS),$(wildcard lib/*.c)) $(wildcard compat/*.c)

ifeq ($(WITH_SQLITE),1)
LIB_SRCS += lib/storage-sqlite.c
SQLITE_CFLAGS := $(shell $(PKG_CONFIG) --cflags sqlite3 2>/dev/null)
SQLITE_LIBS   := $(shell $(PKG_CONFIG) --libs sqlite3 2>/dev/null || echo -lsqlite3)
ALL_CFLAGS += $(SQLITE_CFLAGS)
LIBS += $(SQLITE_LIBS)
endif

ifeq ($(WITH_PGSQL),1)
LIB_SRCS += lib/storage-pgsql.c
ALL_CFLAGS += $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
LIBS += $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null || echo -lpq)
endif

ifeq ($(WITH_REDIS),1)
LIB_SRCS += lib/storage-redis.c
ALL_CFLAGS += $(shell $(PKG_CONFIG) --cflags hiredis 2>/dev/null)
LIBS += $(shell $(PKG_CONFIG) --libs hiredis 2>/dev/null || echo -lhiredis)
endif

# SNI ingress on BearSSL; WITH_TLS_LIBCRYPTO=1 lets libcrypto (OpenSSL) do
# the per-handshake public-key arithmetic under BearSSL's engine
# (lib/tls-libcrypto.h); 0 is BearSSL alone.
ifeq ($(WITH_TLS),1)
LIB_SRCS += $(wildcard lib/tls*.c lib/ingress-sni*.c)
LIBS += -lbearssl
ifeq ($(TLS_LIBCRYPTO),1)
ALL_CFLAGS += $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
LIBS += $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
endif
endif

ifeq ($(WITH_SSH),1)
LIB_SRCS += $(wildcard lib/transport-ssh*.c)
ALL_CFLAGS += $(shell $(PKG_CONFIG) --cflags libssh 2>/dev/null)
LIBS += $(shell $(PKG_CONFIG) --libs libssh 2>/dev/null || echo -lssh)
endif

LIB_OBJS  := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS))
UNIT_SRCS := $(wildcard tests/unit/t-*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
REPLAY_BINS := $(patsubst tests/fuzz/fuzz-%.c,$(B)/fuzz/replay-%,$(FUZZ_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/fuzz-%.c,build-fuzz/fuzz-%,$(FUZZ_SRCS))

.PHONY: all test unit replay integration fuzz bench install clean check lint run

ifeq ($(SAN),1)
all: $(B)/exposrd
else
all: exposrd
exposrd: $(B)/exposrd
	@cp $(B)/exposrd exposrd.tmp && mv -f exposrd.tmp exposrd
endif

# Objects depend on the flags they were built with: switching a WITH_* or
# SAN setting rebuilds instead of linking stale objects.
FLAGS_STAMP := $(B)/.flags
$(shell mkdir -p $(B); echo '$(ALL_CFLAGS) $(LIBS)' | cmp -s - $(FLAGS_STAMP) || echo '$(ALL_CFLAGS) $(LIBS)' > $(FLAGS_STAMP))

$(B)/%.o: %.c $(wildcard lib/*.h compat/*.h) Makefile $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libexposrd.a: $(LIB_OBJS)
	@rm -f $@
	@$(AR) rcs $@ $^

$(B)/exposrd: $(B)/exposrd.o $(B)/libexposrd.a
	@echo "  LINK    $@"
	@$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/test.h $(B)/libexposrd.a
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(B)/libexposrd.a $(LIBS)

$(B)/fuzz/replay-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $(B)/libexposrd.a
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c $(B)/libexposrd.a $(LIBS)

# Fuzz targets need only the parsers: the networked backends and the SSH
# transport are left out.
FUZZ_LIB_SRCS := $(filter-out lib/storage-pgsql.c lib/storage-redis.c lib/transport-ssh%,$(LIB_SRCS))
build-fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	clang -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined \
	  -Ilib -Icompat -DEXPOSRD_VERSION='"$(VERSION)"' -DWITH_SQLITE=$(WITH_SQLITE) \
	  -DWITH_PGSQL=0 -DWITH_REDIS=0 -DWITH_SSH=0 -DWITH_TLS=$(WITH_TLS) \
	  -DWITH_TLS_LIBCRYPTO=$(TLS_LIBCRYPTO) -o $@ $< $(FUZZ_LIB_SRCS) $(LIBS)

unit: $(UNIT_BINS)
replay: $(REPLAY_BINS)

# The README's test command. Prints one "N passed, N failed" line at the end.
test: $(B)/exposrd $(UNIT_BINS) $(REPLAY_BINS)
	@sh tests/run-tests.sh $(B)

integration: $(B)/exposrd
	@sh tests/run-tests.sh $(B) integration

fuzz: $(FUZZ_BINS)

bench: all
	@sh tests/bench/run.sh

# The README's test command: lint, then the whole suite in the default and
# the sanitizer build; one "N passed, N failed" line at the end.
check:
	@sh tests/check.sh

lint:
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets)\(' lib/*.c compat/*.c exposrd.c || { echo 'lint: banned function'; exit 1; }
	@! grep -nE '#ifdef WITH_|#if defined\(WITH_' lib/*.[ch] exposrd.c || { echo 'lint: use #if WITH_X'; exit 1; }

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 exposrd $(DESTDIR)$(PREFIX)/bin/exposrd

clean:
	rm -rf build build-san build-fuzz build-static build-static-* build-fallback exposrd
