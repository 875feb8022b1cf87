#!/bin/sh
# build-deps.sh - build the libraries of a static exposrd from Debian 12
# source packages, into a cache outside the work tree.
#
#   sh ci/static/build-deps.sh ARCH FLAVOUR OUT.mk LIB...
#
#   ARCH     x86_64 | aarch64 | armv7
#   FLAVOUR  small (libssh on mbedTLS, libpq without TLS) | full (OpenSSL
#            under libssh and libpq)
#   OUT.mk   written for the Makefile (conf/static.mk): DEPS_CFLAGS,
#            DEPS_LDFLAGS, DEPS_PKG_CONFIG_LIBDIR
#   LIB      sqlite3 bearssl hiredis libssh libpq openssl (the crypto
#            library a LIB needs is added by itself)
#
# Versions are pinned in versions.sh and fetched with `apt-get source
# PKG=VERSION` (apt checks the hashes against the signed Release file;
# deb-src entries are added when missing).  Each library is installed into
#   $EXPOSRD_DEPS_CACHE/ARCH/NAME-VERSION[+CRYPTO-VERSION]-rREV/
# (default ~/.cache/exposrd-deps), so a second build finds it and does
# nothing.  Sources live in $EXPOSRD_DEPS_CACHE/src/.  Build logs of a
# failed step are printed; progress goes to stderr.
# Recipe and measurements: shared/notes/static-builds.md.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/versions.sh"

ARCH=${1:?usage: build-deps.sh ARCH FLAVOUR OUT.mk LIB...}
FLAVOUR=${2:?flavour}
OUT=${3:?output file}
shift 3

CACHE=${EXPOSRD_DEPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exposrd-deps}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

say() { echo "deps: $*" >&2; }
die() {
	echo "deps: error: $*" >&2
	exit 1
}

case $ARCH in
x86_64)
	CC=x86_64-linux-musl-gcc TRIPLET=x86_64-linux-gnu HOST=x86_64-linux-musl
	OSSL_TARGET=linux-x86_64 ARCH_CFLAGS='' DEB_ARCH=amd64 ;;
aarch64)
	CC=aarch64-linux-musl-gcc TRIPLET=aarch64-linux-gnu HOST=aarch64-linux-musl
	OSSL_TARGET=linux-aarch64 DEB_ARCH=arm64
	# libgcc's outline atomics need glibc's __getauxval
	ARCH_CFLAGS=-mno-outline-atomics ;;
armv7)
	CC=arm-linux-musleabihf-gcc TRIPLET=arm-linux-gnueabihf HOST=arm-linux-musleabihf
	OSSL_TARGET=linux-armv4 ARCH_CFLAGS='' DEB_ARCH=armhf ;;
*) die "unknown ARCH $ARCH (x86_64, aarch64, armv7)" ;;
esac
case $FLAVOUR in small | full) ;; *) die "unknown FLAVOUR $FLAVOUR (small, full)" ;; esac
AR=$TRIPLET-ar
RANLIB=$TRIPLET-ranlib
CFLAGS="-Os -ffunction-sections -fdata-sections $ARCH_CFLAGS"
export LC_ALL=C

# ---- host tools ----

ensure_tools() {
	_need="make cmake tclsh:tcl dpkg-source:dpkg-dev pkg-config perl python3 musl-gcc:musl-tools $TRIPLET-gcc:gcc-$TRIPLET"
	[ "$ARCH" = x86_64 ] && _need="make cmake tclsh:tcl dpkg-source:dpkg-dev pkg-config perl python3 $CC:musl-tools $AR:binutils"
	_pkgs=
	for _t in $_need; do
		_cmd=${_t%%:*}
		_pkg=${_t#*:}
		command -v "$_cmd" >/dev/null 2>&1 || _pkgs="$_pkgs $_pkg"
	done
	if [ "$ARCH" != x86_64 ]; then
		dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH" || {
			say "adding dpkg architecture $DEB_ARCH"
			$SUDO dpkg --add-architecture "$DEB_ARCH"
			APT_UPDATED=
		}
		dpkg-query -W -f='${Status}' "musl-dev:$DEB_ARCH" 2>/dev/null | grep -q 'ok installed' ||
			_pkgs="$_pkgs musl-dev:$DEB_ARCH"
	fi
	[ -n "$_pkgs" ] || return 0
	say "installing:$_pkgs"
	apt_update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $_pkgs >&2
}

APT_UPDATED=
apt_update() {
	[ -n "$APT_UPDATED" ] && return 0
	# a partly failed update (one index of a syncing mirror) still leaves
	# usable lists: go on and let install/source report what is missing
	$SUDO apt-get update -q >&2 || say "warning: apt-get update reported errors"
	APT_UPDATED=1
}

# deb-src entries for bookworm and bookworm-security, added once.
SRC_LIST=/etc/apt/sources.list.d/exposrd-deb-src.sources
ensure_deb_src() {
	[ -n "$APT_UPDATED" ] && return 0
	apt-cache showsrc sqlite3 2>/dev/null | grep -qx "Version: $SQLITE3_VERSION" && return 0
	if [ ! -f "$SRC_LIST" ]; then
		say "adding deb-src entries ($SRC_LIST)"
		$SUDO tee "$SRC_LIST" >/dev/null <<'EOF'
# added by exposrd ci/static/build-deps.sh: source packages for static builds
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	fi
	APT_UPDATED=
	apt_update
}

# fetch SRCPKG VERSION: sets SRC to the unpacked (patched) source tree.
fetch() {
	_d=$CACHE/src/$1_$2
	if [ ! -f "$_d/.done" ]; then
		ensure_deb_src
		say "fetching $1=$2"
		rm -rf "$_d"
		mkdir -p "$_d"
		(cd "$_d" && apt-get source -q "$1=$2" >"$_d.log" 2>&1) || {
			tail -20 "$_d.log" >&2
			die "apt-get source $1=$2 failed (is the version still in the archive? see versions.sh)"
		}
		: >"$_d/.done"
	fi
	SRC=$(find "$_d" -mindepth 1 -maxdepth 1 -type d | head -1)
	[ -n "$SRC" ] || die "no source tree in $_d"
}

# ---- building ----

# run LOG CMD...: run quietly; on failure show the log tail and stop.
run() {
	_log=$1
	shift
	"$@" >>"$_log" 2>&1 || {
		tail -40 "$_log" >&2
		die "failed: $* (log: $_log)"
	}
}

# begin NAME KEY: sets PREFIX; returns 1 when it is already built.
begin() {
	PREFIX=$CACHE/$ARCH/$2
	[ -f "$PREFIX/.done" ] && return 1
	say "building $1 for $ARCH ($2)"
	T0=$(date +%s)
	BUILD=$CACHE/build/$ARCH/$2
	LOG=$CACHE/build/$ARCH/$2.log
	rm -rf "$BUILD" "$PREFIX" "$LOG"
	mkdir -p "$BUILD" "$PREFIX/include" "$PREFIX/lib/pkgconfig"
	return 0
}

done_() {
	: >"$PREFIX/.done"
	rm -rf "$BUILD"
	say "built $(basename "$PREFIX") in $(($(date +%s) - T0)) s"
}

# pcfile NAME VERSION CFLAGS LIBS [LIBS.PRIVATE]
pcfile() {
	cat >"$PREFIX/lib/pkgconfig/$1.pc" <<EOF
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: $1
Description: $1 (static, exposrd ci/static/build-deps.sh)
Version: $2
Cflags: $3
Libs: $4
Libs.private: ${5:-}
EOF
}

PREFIXES=

use() { PREFIXES="$PREFIXES $PREFIX"; }

build_sqlite3() {
	if begin sqlite3 "sqlite3-$SQLITE3_VERSION-r1"; then
		fetch sqlite3 "$SQLITE3_VERSION"
		# the amalgamation, generated once (natively, needs tclsh)
		_am=$CACHE/src/sqlite3_$SQLITE3_VERSION/amalgamation
		if [ ! -f "$_am/sqlite3.c" ]; then
			rm -rf "$_am.tmp"
			mkdir -p "$_am.tmp"
			(cd "$_am.tmp" && run "$LOG" "$SRC/configure" --disable-tcl --disable-readline &&
				run "$LOG" make sqlite3.c) || exit 1
			mkdir -p "$_am"
			cp "$_am.tmp/sqlite3.c" "$_am.tmp/sqlite3.h" "$_am/"
			rm -rf "$_am.tmp"
		fi
		cd "$BUILD"
		# no dlopen (load_extension), no deprecated APIs
		run "$LOG" $CC $CFLAGS -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION \
			-DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_OMIT_DEPRECATED -DSQLITE_DQS=0 \
			-c "$_am/sqlite3.c" -o sqlite3.o
		run "$LOG" $AR rcs "$PREFIX/lib/libsqlite3.a" sqlite3.o
		cp "$_am/sqlite3.h" "$PREFIX/include/"
		pcfile sqlite3 "${SQLITE3_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lsqlite3"
		done_
	fi
	use
}

build_bearssl() {
	if begin bearssl "bearssl-$BEARSSL_VERSION-r1"; then
		fetch bearssl "$BEARSSL_VERSION"
		cp -a "$SRC/." "$BUILD/"
		cd "$BUILD"
		run "$LOG" make -j"$JOBS" CC="$CC" AR="$AR" CFLAGS="$CFLAGS -W -Wall" lib
		cp build/libbearssl.a "$PREFIX/lib/"
		cp inc/*.h "$PREFIX/include/"
		pcfile bearssl "${BEARSSL_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lbearssl"
		done_
	fi
	use
}

build_hiredis() {
	if begin hiredis "hiredis-$HIREDIS_VERSION-r1"; then
		fetch hiredis "$HIREDIS_VERSION"
		cp -a "$SRC/." "$BUILD/"
		cd "$BUILD"
		run "$LOG" make -j"$JOBS" CC="$CC" AR="$AR rcs" OPTIMIZATION="$CFLAGS" DEBUG_FLAGS= static
		cp libhiredis.a "$PREFIX/lib/"
		mkdir -p "$PREFIX/include/hiredis/adapters"
		cp ./*.h "$PREFIX/include/hiredis/"
		cp adapters/*.h "$PREFIX/include/hiredis/adapters/"
		# the same Cflags as Debian's hiredis.pc
		pcfile hiredis "${HIREDIS_VERSION%%-*}" "-I\${includedir}/hiredis -D_FILE_OFFSET_BITS=64" "-L\${libdir} -lhiredis"
		done_
	fi
	use
}

build_mbedtls() {
	if begin mbedtls "mbedtls-$MBEDTLS_VERSION-r1"; then
		fetch mbedtls "$MBEDTLS_VERSION"
		cp -a "$SRC/." "$BUILD/"
		cd "$BUILD"
		# getrandom() on musl too (upstream only checks __GLIBC__), so no /dev is needed
		sed -i 's/defined(__linux__) && defined(__GLIBC__)/defined(__linux__)/' library/entropy_poll.c
		run "$LOG" python3 scripts/config.py set MBEDTLS_THREADING_C
		run "$LOG" python3 scripts/config.py set MBEDTLS_THREADING_PTHREAD
		run "$LOG" make -j"$JOBS" -C library CC="$CC" AR="$AR" CFLAGS="$CFLAGS" static
		cp library/libmbedcrypto.a library/libmbedx509.a library/libmbedtls.a "$PREFIX/lib/"
		cp -r include/mbedtls "$PREFIX/include/"
		[ -d include/psa ] && cp -r include/psa "$PREFIX/include/"
		pcfile mbedcrypto "${MBEDTLS_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lmbedcrypto"
		done_
	fi
	MBEDTLS_PREFIX=$PREFIX
	use
}

build_openssl() {
	if begin openssl "openssl-$OPENSSL_VERSION-r1"; then
		fetch openssl "$OPENSSL_VERSION"
		cp -a "$SRC/." "$BUILD/"
		cd "$BUILD"
		# OpenSSL includes <linux/mman.h>; the musl specs use -nostdinc:
		# a directory with only the kernel UAPI headers, searched last
		_uapi=$BUILD/uapi
		mkdir -p "$_uapi"
		if [ "$ARCH" = x86_64 ]; then
			_k=/usr/include
			ln -s /usr/include/x86_64-linux-gnu/asm "$_uapi/asm"
		else
			_k=/usr/$TRIPLET/include # linux-libc-dev-<arch>-cross
			[ -d "$_k/linux" ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
				--no-install-recommends "linux-libc-dev-$DEB_ARCH-cross" >&2
			ln -s "$_k/asm" "$_uapi/asm"
		fi
		ln -s "$_k/linux" "$_uapi/linux"
		ln -s "$_k/asm-generic" "$_uapi/asm-generic"
		# keep ENGINE (libssh 0.10 calls it); no-dso keeps dlopen out
		run "$LOG" ./Configure "$OSSL_TARGET" --prefix="$PREFIX" --libdir=lib no-shared no-module no-dso \
			no-afalgeng no-legacy no-tests no-ui-console no-comp no-ssl3 no-dtls no-srp no-idea no-seed \
			no-camellia no-md4 no-mdc2 no-rc2 no-rc4 no-whirlpool no-sm2 no-sm3 no-sm4 no-siphash \
			CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="$CFLAGS -idirafter $_uapi"
		run "$LOG" make -j"$JOBS" build_libs
		run "$LOG" make install_dev
		pcfile libcrypto "${OPENSSL_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lcrypto" "-pthread"
		pcfile libssl "${OPENSSL_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lssl -lcrypto" "-pthread"
		done_
	fi
	OPENSSL_PREFIX=$PREFIX
	use
}

build_libssh() {
	if [ "$FLAVOUR" = small ]; then
		build_mbedtls
		_key=libssh-$LIBSSH_VERSION+mbedtls-$MBEDTLS_VERSION-r1
		_crypto="-DWITH_MBEDTLS=ON -DMBEDTLS_ROOT_DIR=$MBEDTLS_PREFIX"
		_cpre=$MBEDTLS_PREFIX
		_clibs="-L$MBEDTLS_PREFIX/lib -lmbedcrypto -pthread"
	else
		build_openssl
		_key=libssh-$LIBSSH_VERSION+openssl-$OPENSSL_VERSION-r1
		_crypto="-DOPENSSL_ROOT_DIR=$OPENSSL_PREFIX -DOPENSSL_USE_STATIC_LIBS=TRUE"
		_cpre=$OPENSSL_PREFIX
		_clibs="-L$OPENSSL_PREFIX/lib -lcrypto -pthread"
	fi
	if begin libssh "$_key"; then
		fetch libssh "$LIBSSH_VERSION"
		cd "$BUILD"
		# a toolchain file even for x86_64: without it cmake finds the
		# host's glibc libcrypto, libz, libgssapi
		cat >toolchain.cmake <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER $CC)
set(CMAKE_AR $(command -v "$AR"))
set(CMAKE_RANLIB $(command -v "$RANLIB"))
set(CMAKE_FIND_ROOT_PATH $_cpre $PREFIX)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
EOF
		# shellcheck disable=SC2086
		run "$LOG" cmake "$SRC" -DCMAKE_TOOLCHAIN_FILE="$BUILD/toolchain.cmake" \
			-DCMAKE_BUILD_TYPE=MinSizeRel -DCMAKE_C_FLAGS="$CFLAGS" \
			-DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
			-DBUILD_SHARED_LIBS=OFF -DWITH_GSSAPI=OFF -DWITH_ZLIB=OFF -DWITH_EXAMPLES=OFF \
			-DWITH_PCAP=OFF -DWITH_NACL=OFF -DWITH_SYMBOL_VERSIONING=OFF -DWITH_SERVER=ON \
			-DWITH_SFTP=ON -DUNIT_TESTING=OFF -DCLIENT_TESTING=OFF -DSERVER_TESTING=OFF $_crypto
		grep -q 'GSSAPI support *: *OFF' "$LOG" || die "libssh: GSSAPI not off (log: $LOG)"
		run "$LOG" make -j"$JOBS" ssh
		run "$LOG" make install
		rm -rf "$PREFIX/lib/cmake"
		pcfile libssh "${LIBSSH_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lssh" "$_clibs"
		done_
	fi
	use
}

build_libpq() {
	_ssl=--without-openssl
	_key=libpq-$POSTGRESQL_VERSION-r1
	_priv=
	_cppf=
	_ldf=
	if [ "$FLAVOUR" = full ]; then
		build_openssl
		_ssl=--with-openssl
		_key=libpq-$POSTGRESQL_VERSION+openssl-$OPENSSL_VERSION-r1
		_priv="-L$OPENSSL_PREFIX/lib -lssl -lcrypto"
		_cppf=-I$OPENSSL_PREFIX/include
		_ldf=-L$OPENSSL_PREFIX/lib
	fi
	if begin libpq "$_key"; then
		fetch postgresql-15 "$POSTGRESQL_VERSION"
		cd "$BUILD"
		# configure the whole tree (out of tree), build only libpq and
		# the two helper libraries it needs
		run "$LOG" "$SRC/configure" --host="$HOST" --prefix="$PREFIX" $_ssl \
			--without-readline --without-zlib --without-icu --without-gssapi --without-ldap \
			--without-pam --without-libxml --without-llvm --without-systemd --without-lz4 \
			--without-zstd CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="$CFLAGS" \
			CPPFLAGS="$_cppf" LDFLAGS="$_ldf"
		# generated headers first: src/port's _srv objects need
		# utils/errcodes.h, which a parallel libpq build can race
		run "$LOG" make -C src/backend generated-headers
		run "$LOG" make -j"$JOBS" -C src/interfaces/libpq all-static-lib
		cp src/interfaces/libpq/libpq.a src/common/libpgcommon_shlib.a src/port/libpgport_shlib.a "$PREFIX/lib/"
		cp "$SRC/src/interfaces/libpq/libpq-fe.h" "$SRC/src/interfaces/libpq/libpq-events.h" \
			"$SRC/src/include/postgres_ext.h" src/include/pg_config_ext.h "$PREFIX/include/"
		pcfile libpq "${POSTGRESQL_VERSION%%-*}" "-I\${includedir}" "-L\${libdir} -lpq" \
			"-lpgcommon_shlib -lpgport_shlib $_priv -pthread"
		done_
	fi
	use
}

# ---- main ----

START_DIR=$(pwd)
mkdir -p "$CACHE"
ensure_tools
# one build at a time per cache (CI and a developer may share it)
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE/.lock"
	flock 9
fi
START=$(date +%s)
for lib in "$@"; do
	case $lib in
	sqlite3 | bearssl | hiredis | libssh | libpq | openssl | mbedtls) build_"$lib" ;;
	*) die "unknown library $lib" ;;
	esac
done
cd "$START_DIR"

pc='' cf='' ld=''
for p in $PREFIXES; do
	case " $pc " in *" $p/lib/pkgconfig "*) continue ;; esac
	pc="$pc $p/lib/pkgconfig"
	cf="$cf -I$p/include"
	ld="$ld -L$p/lib"
done
mkdir -p "$(dirname "$OUT")"
{
	echo "# written by ci/static/build-deps.sh $ARCH $FLAVOUR $*"
	echo "DEPS_ARCH := $ARCH"
	echo "DEPS_CFLAGS :=$cf"
	echo "DEPS_LDFLAGS :=$ld"
	echo "DEPS_PKG_CONFIG_LIBDIR := $(echo $pc | tr ' ' ':')"
} >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
say "$ARCH/$FLAVOUR: $* ready in $(($(date +%s) - START)) s (cache $CACHE)"
