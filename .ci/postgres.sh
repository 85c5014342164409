#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for Kiln's tests.
#
#   bash .ci/postgres.sh start    # initdb (first time) + pg_ctl start, create kiln_test
#   bash .ci/postgres.sh stop     # pg_ctl stop and remove the cluster directory
#   bash .ci/postgres.sh status   # exit 0 when the cluster answers
#
# The cluster lives in $KILN_PG_DIR (default /tmp/kiln-postgres), owned by
# the OS user postgres when run as root (PostgreSQL refuses to run as root;
# initdb and pg_ctl run through runuser), or by the calling user otherwise.
# It listens on 127.0.0.1 only, on $KILN_PG_PORT (default 55432; the next
# free port when that one is taken by something else), with trust
# authentication on loopback: it is for tests, never for data.
#
# "start" is idempotent: a running cluster is reused. It writes
#   $KILN_PG_DIR/env   (export KILN_TEST_POSTGRES=postgres://...; export KILN_TEST_POSTGRES_DATA=...)
# and prints the same lines, so a caller can do
#   bash .ci/postgres.sh start && . /tmp/kiln-postgres/env
# When PostgreSQL is not installed and we are root, it is installed with apt-get.
set -euo pipefail

DIR="${KILN_PG_DIR:-/tmp/kiln-postgres}"
PORT="${KILN_PG_PORT:-55432}"
DB=kiln_test
DATA="$DIR/data"
LOG="$DIR/postgres.log"
ENVFILE="$DIR/env"

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

find_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return 0
	fi
	return 1
}

install_postgres() {
	[ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root: install the 'postgresql' package"
	say "installing postgresql with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq postgresql >&2
}

# as_owner runs a command as the cluster owner.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u postgres -- "$@"
		else
			su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
		fi
	else
		"$@"
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive: the process exists and is not a zombie (a killed postmaster
# whose parent has not reaped it yet must count as dead).
pid_alive() {
	[ -n "${1:-}" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

postmaster_pid() { head -n1 "$DATA/postmaster.pid" 2>/dev/null || true; }

conf_port() { sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$DATA/kiln.conf" 2>/dev/null | tail -n1; }

# running: our postmaster is alive and answers on its port.
running() {
	local port
	pid_alive "$(postmaster_pid)" || return 1
	port="$(conf_port)"
	[ -n "$port" ] && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 10
}

# clear_stale removes what a killed cluster left behind, so pg_ctl can
# start it again (crash recovery then replays the WAL).
clear_stale() {
	local pid
	pid="$(postmaster_pid)"
	[ -n "$pid" ] || return 0
	if pid_alive "$pid"; then
		say "postmaster $pid does not answer: stopping it"
		as_owner "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 20 >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.2; done
	fi
	pid_alive "$pid" && die "postmaster $pid of $DATA will not stop"
	# A killed postmaster that is still a zombie would make the new one
	# think its socket lock files are in use.
	rm -f "$DATA/postmaster.pid" "$DIR"/.s.PGSQL.*
}

psql_admin() {
	PGCONNECT_TIMEOUT=5 "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"
}

write_env() {
	local url="postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
	{
		echo "export KILN_TEST_POSTGRES='$url'"
		echo "export KILN_TEST_POSTGRES_DATA='$DATA'"
		echo "export KILN_TEST_POSTGRES_BIN='$BIN'"
	} >"$ENVFILE.tmp"
	mv "$ENVFILE.tmp" "$ENVFILE"
	chmod 0644 "$ENVFILE"
	cat "$ENVFILE"
}

start() {
	BIN="$(find_bin)" || { install_postgres; BIN="$(find_bin)" || die "initdb/pg_ctl not found after installing postgresql"; }
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
	fi
	mkdir -p "$DIR"
	chmod 0755 "$DIR"
	[ "$(id -u)" = 0 ] && chown postgres: "$DIR"

	if running; then
		PORT="$(conf_port)"
		say "cluster already running in $DATA on port $PORT"
	else
		clear_stale
		if [ ! -f "$DATA/PG_VERSION" ]; then
			rm -rf "$DATA"
			say "initdb in $DATA"
			as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
				as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 ||
				{ cat "$DIR/initdb.log" >&2; die "initdb failed"; }
		fi
		while port_busy "$PORT"; do
			say "port $PORT is taken, trying $((PORT + 1))"
			PORT=$((PORT + 1))
		done
		# Our settings live in one included file, rewritten on each start.
		as_owner sh -c "cat >'$DATA/kiln.conf'" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 200
logging_collector = off
CONF
		grep -q "^include_if_exists = 'kiln.conf'" "$DATA/postgresql.conf" ||
			as_owner sh -c "echo \"include_if_exists = 'kiln.conf'\" >>'$DATA/postgresql.conf'"
		say "starting on 127.0.0.1:$PORT (log: $LOG)"
		as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null ||
			{ tail -n 30 "$LOG" >&2 || true; die "pg_ctl start failed"; }
	fi

	if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
		psql_admin -c "CREATE DATABASE $DB"
	fi
	write_env
}

stop() {
	BIN="$(find_bin)" || { say "PostgreSQL is not installed: nothing to stop"; rm -rf "$DIR"; return 0; }
	if pid_alive "$(postmaster_pid)"; then
		if as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null 2>&1; then
			say "stopped the cluster in $DATA"
		else
			clear_stale
			say "killed the cluster in $DATA"
		fi
	else
		say "no cluster running in $DATA"
	fi
	if [ "${KILN_PG_KEEP:-}" != 1 ]; then
		rm -rf "$DIR"
	fi
}

status() {
	BIN="$(find_bin)" || die "PostgreSQL is not installed"
	if running; then
		say "running in $DATA"
		[ -f "$ENVFILE" ] && cat "$ENVFILE"
		return 0
	fi
	say "not running"
	return 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
