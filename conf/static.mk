# conf/static.mk - `make static`: one fully static musl binary (STYLE §6).
#
#   make static [ARCH=x86_64|aarch64|armv7] [FLAVOUR=small|full] [WITH_X=0|1 ...]
#
# 1. ci/static/build-deps.sh builds the libraries of the compiled-in
#    features (pinned Debian 12 source packages, cached by version under
#    ~/.cache/exposrd-deps/ARCH/) and writes $(STATIC_B)/deps.mk;
# 2. a sub-make with STATIC=1 compiles everything with the musl compiler
#    into $(STATIC_B)/ (build-static, build-static-aarch64,
#    build-static-full, ...), links with -static and --gc-sections,
#    strips the binary and prints its size.
# The small flavour (libssh on mbedTLS, libpq without TLS, BearSSL alone)
# must stay within 2 MiB stripped on x86_64: `make static` fails above it.
# The full flavour puts one OpenSSL under libssh, libpq (sslmode=require)
# and the TLS engine (WITH_TLS_LIBCRYPTO).
#
# Included by the Makefile after its SAN block, before the flags are put
# together.

ARCH    ?= x86_64
FLAVOUR ?= small
STATIC_B := build-static$(if $(filter-out x86_64,$(ARCH)),-$(ARCH))$(if $(filter full,$(FLAVOUR)),-full)
STATIC_BUDGET := 2097152

# Only for the static build (make static, or its STATIC=1 sub-make): the
# normal build keeps WITH_TLS_LIBCRYPTO as configured.
ifneq ($(filter static static-link,$(MAKECMDGOALS))$(filter 1,$(STATIC)),)
ifeq ($(FLAVOUR),small)
# BearSSL alone does the TLS arithmetic: no OpenSSL in the small binary
TLS_LIBCRYPTO := 0
endif
endif

STATIC_LIBS := $(if $(filter 1,$(WITH_SQLITE)),sqlite3) $(if $(filter 1,$(WITH_TLS)),bearssl) \
               $(if $(filter 1,$(TLS_LIBCRYPTO)),openssl) $(if $(filter 1,$(WITH_SSH)),libssh) \
               $(if $(filter 1,$(WITH_PGSQL)),libpq) $(if $(filter 1,$(WITH_REDIS)),hiredis)

ifeq ($(ARCH),x86_64)
STATIC_TRIPLET := x86_64-linux-gnu
STATIC_CC      := x86_64-linux-musl-gcc
else ifeq ($(ARCH),aarch64)
STATIC_TRIPLET := aarch64-linux-gnu
STATIC_CC      := aarch64-linux-musl-gcc
else ifeq ($(ARCH),armv7)
STATIC_TRIPLET := arm-linux-gnueabihf
STATIC_CC      := arm-linux-musleabihf-gcc
else
$(error ARCH=$(ARCH): use x86_64, aarch64 or armv7)
endif

ifeq ($(STATIC),1)
B        := $(STATIC_B)
SANFLAGS :=
include $(B)/deps.mk
ifeq ($(origin CC),default)
CC := $(STATIC_CC)
endif
ifeq ($(origin AR),default)
AR := $(STATIC_TRIPLET)-ar
endif
STRIP ?= $(STATIC_TRIPLET)-strip
OPT := -Os -ffunction-sections -fdata-sections $(if $(filter aarch64,$(ARCH)),-mno-outline-atomics)
CFLAGS ?= $(OPT)
override CFLAGS  += $(DEPS_CFLAGS)
override LDFLAGS += -static -Wl,--gc-sections $(DEPS_LDFLAGS)
PKG_CONFIG := PKG_CONFIG_LIBDIR=$(DEPS_PKG_CONFIG_LIBDIR) PKG_CONFIG_PATH= pkg-config --static

.PHONY: static-link
static-link: $(B)/exposrd
	@$(STRIP) $(B)/exposrd
	@! $(STATIC_TRIPLET)-readelf -l $(B)/exposrd | grep -q INTERP || { echo "static: $(B)/exposrd is not static"; exit 1; }
	@size=$$(wc -c <$(B)/exposrd); \
	echo "static: $(B)/exposrd $(ARCH)/$(FLAVOUR) [$(strip $(STATIC_LIBS))]: $$size bytes stripped (budget $(STATIC_BUDGET) for x86_64/small)"; \
	if [ "$(ARCH)/$(FLAVOUR)" = x86_64/small ] && [ $$size -gt $(STATIC_BUDGET) ]; then \
		echo "static: over the 2 MiB budget"; exit 1; fi
else
.PHONY: static
static:
	@sh ci/static/build-deps.sh $(ARCH) $(FLAVOUR) $(STATIC_B)/deps.mk $(STATIC_LIBS)
	@$(MAKE) --no-print-directory STATIC=1 static-link
endif

# the rules above must not become the default goal
ifeq ($(.DEFAULT_GOAL),static)
.DEFAULT_GOAL := all
endif
ifeq ($(.DEFAULT_GOAL),static-link)
.DEFAULT_GOAL := all
endif
