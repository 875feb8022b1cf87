#!/bin/sh
# services.sh start|stop - run the real servers the tests need, on loopback
# only, in a private directory: PostgreSQL (initdb + pg_ctl) and
# redis-server.  "start" prints shell assignments to eval:
#   EXPOSRD_TEST_PGSQL_URL=...  EXPOSRD_TEST_REDIS_URL=...  EXPOSRD_SERVICES_DIR=...
# A server whose binaries are missing is left out (the tests that need it
# then fail with a clear message).
set -u
cmd=${1:-start}
DIR=${EXPOSRD_SERVICES_DIR:-/tmp/exposrd-services.$(id -u)}
PG_PORT=${EXPOSRD_PG_PORT:-25432}
REDIS_PORT=${EXPOSRD_REDIS_PORT:-26379}

pg_bin() {
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && { echo "$d"; return; }
	done
}

as_pg_user() {
	# initdb refuses to run as root: use the postgres account then.
	if [ "$(id -u)" -eq 0 ]; then
		su postgres -s /bin/sh -c "$*"
	else
		sh -c "$*"
	fi
}

start() {
	mkdir -p "$DIR"
	PGBIN=$(pg_bin)
	if [ -n "$PGBIN" ]; then
		if [ ! -f "$DIR/pg/PG_VERSION" ]; then
			mkdir -p "$DIR/pg"
			[ "$(id -u)" -eq 0 ] && chown postgres "$DIR" "$DIR/pg"
			as_pg_user "$PGBIN/initdb -D $DIR/pg -A trust -U postgres >$DIR/initdb.log 2>&1" ||
				{ cat "$DIR/initdb.log" >&2; }
		fi
		if ! as_pg_user "$PGBIN/pg_ctl -D $DIR/pg status >/dev/null 2>&1"; then
			as_pg_user "$PGBIN/pg_ctl -D $DIR/pg -l $DIR/pg.log -w -t 30 \
				-o '-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null 2>&1" ||
				tail -20 "$DIR/pg.log" >&2
		fi
		"$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
			"SELECT 1 FROM pg_database WHERE datname='exposrd_test'" 2>/dev/null | grep -q 1 ||
			"$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres exposrd_test 2>/dev/null
		echo "EXPOSRD_TEST_PGSQL_URL=postgres://postgres@127.0.0.1:$PG_PORT/exposrd_test; export EXPOSRD_TEST_PGSQL_URL"
		echo "EXPOSRD_PG_BIN=$PGBIN; export EXPOSRD_PG_BIN"
	fi
	if command -v redis-server >/dev/null 2>&1; then
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 ||
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
			--daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR" >/dev/null
		i=0
		while [ $i -lt 50 ] && ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
			sleep 0.1
			i=$((i + 1))
		done
		echo "EXPOSRD_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0; export EXPOSRD_TEST_REDIS_URL"
	fi
	echo "EXPOSRD_SERVICES_DIR=$DIR; export EXPOSRD_SERVICES_DIR"
}

stop() {
	PGBIN=$(pg_bin)
	if [ -n "$PGBIN" ] && [ -f "$DIR/pg/postmaster.pid" ]; then
		as_pg_user "$PGBIN/pg_ctl -D $DIR/pg -m fast -w -t 30 stop >/dev/null 2>&1"
	fi
	if [ -f "$DIR/redis.pid" ]; then
		kill "$(cat "$DIR/redis.pid")" 2>/dev/null
		rm -f "$DIR/redis.pid"
	fi
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
