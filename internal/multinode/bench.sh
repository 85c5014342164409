#!/usr/bin/env bash
# Ingest and search figures: SQLite against PostgreSQL, and one PostgreSQL
# node against two, through the real kiln binary (kiln load, kiln bench).
#
#   bash .ci/postgres.sh start && . /tmp/kiln-postgres/env
#   bash internal/multinode/bench.sh [BUNDLES] [SECONDS]
#
# BUNDLES (default 10): how many Synthea transaction bundles of
# ../shared/data/synthea/bundles to load in each configuration.
# SECONDS (default 15): length of each `kiln bench -scenario search` run.
# Each configuration starts from an empty store: a temp-dir SQLite, or a
# database kiln_bench_<pid> created in the cluster of KILN_TEST_POSTGRES and
# dropped at the end. It prints figures, not verdicts.
set -euo pipefail

N="${1:-10}"
SECS="${2:-15}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DATA="$ROOT/../shared/data/synthea/bundles"
[ -n "${KILN_TEST_POSTGRES:-}" ] || { echo "bench.sh: KILN_TEST_POSTGRES is not set (bash .ci/postgres.sh start && . /tmp/kiln-postgres/env)" >&2; exit 2; }
[ -d "$DATA" ] || { echo "bench.sh: $DATA is absent" >&2; exit 2; }
PSQL="${KILN_TEST_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}/psql"

WORK="$(mktemp -d /tmp/kiln-mnbench-XXXX)"
BIN="$WORK/kiln"
DB="kiln_bench_$$"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	"$PSQL" -X -q "$KILN_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && go build -o "$BIN" ./cmd/kiln)
mapfile -t FILES < <(ls "$DATA"/*.json.gz | sort | head -n "$N")
HALF=$(((${#FILES[@]} + 1) / 2))
PGURL="$(echo "$KILN_TEST_POSTGRES" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node NAME STORE DATA → sets BASE to the node's origin
start_node() {
	local name="$1" store="$2" data="$3" port
	port="$(free_port)"
	local args=(serve --addr "127.0.0.1:$port" --data "$data" --vault-addr off --log-level warn)
	[ -n "$store" ] && args+=(--store "$store")
	"$BIN" "${args[@]}" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 600); do
		curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && { BASE="http://127.0.0.1:$port"; return; }
		sleep 0.1
	done
	cat "$WORK/$name.log" >&2
	echo "bench.sh: $name did not start" >&2
	exit 1
}

stop_nodes() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}

# load BASE FILES... → "resources seconds" (wall time)
load() {
	local base="$1" start end n
	shift
	start=$(date +%s.%N)
	n="$("$BIN" load -base "$base/fhir/default" -quiet -concurrency 4 "$@" 2>&1 | tee -a "$WORK/load.log" | sed -nE 's/^loaded ([0-9]+) resources .*/\1/p')"
	end=$(date +%s.%N)
	echo "${n:-0} $(awk "BEGIN{print $end-$start}")"
}

rate() { awk "BEGIN{printf \"%.0f\", $1/$2}"; }

# searches BASE: a few searches over the loaded Synthea data, median of 5 runs each
searches() {
	local base="$1/fhir/default" q
	for q in "Patient?family=Hart" "Patient?gender=male&birthdate=ge1940-01-01" \
		"Observation?code=http://loinc.org|8302-2" "Observation?code=http://loinc.org|8302-2&date=ge2015-01-01" \
		"Condition?code=http://snomed.info/sct|444814009" "Encounter?date=ge2019-01-01&_count=50"; do
		local ts=() n
		for _ in 1 2 3 4 5; do
			ts+=("$(curl -sS -o "$WORK/s.json" -w '%{time_total}' "$base/$q")")
		done
		n="$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b.get("total", len(b.get("entry",[]))) if b.get("resourceType")=="Bundle" else "error: "+json.dumps(b)[:200])' "$WORK/s.json")"
		printf '    %-62s median %6.1f ms  (total %s)\n' "$q" "$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p | awk '{print $1*1000}')" "$n"
	done
}

# bench_search BASE... → concurrent `kiln bench -scenario search` runs, one per base; prints each result line
bench_search() {
	local i=0 b
	for b in "$@"; do
		i=$((i + 1))
		"$BIN" bench -base "$b/fhir/default" -scenario search -duration "${SECS}s" -concurrency 4 -patients 100 -seed "$i" >"$WORK/bench$i.out" 2>&1 &
	done
	wait_jobs
	for j in $(seq 1 "$i"); do sed 's/^/    /' "$WORK/bench$j.out" | tail -n 6; done
}

wait_jobs() {
	local j
	for j in $(jobs -p); do
		case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" ;; esac
	done
}

echo "kiln multinode bench: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ingest: ${#FILES[@]} Synthea transaction bundles ($(basename "${FILES[0]}") …), kiln load -concurrency 4"

# 1. SQLite, one node.
start_node sqlite "" "$WORK/sqlite"; base="$BASE"
read -r res t < <(load "$base" "${FILES[@]}")
echo "SQLite, 1 node:      $res resources in $(printf '%.1f' "$t") s = $(rate "$res" "$t") resources/s"
searches "$base"
bench_search "$base"
stop_nodes

# 2. PostgreSQL, one node.
"$PSQL" -X -q "$KILN_TEST_POSTGRES" -c "CREATE DATABASE $DB" >/dev/null
start_node pg1 "$PGURL" "$WORK/pg1"; base="$BASE"
read -r res t < <(load "$base" "${FILES[@]}")
echo "PostgreSQL, 1 node:  $res resources in $(printf '%.1f' "$t") s = $(rate "$res" "$t") resources/s"
searches "$base"
bench_search "$base"
stop_nodes

# 3. PostgreSQL, two nodes (same service key), each loading half.
"$PSQL" -X -q "$KILN_TEST_POSTGRES" -c "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
start_node pg2a "$PGURL" "$WORK/pg2a"; b1="$BASE"
mkdir -p "$WORK/pg2b/keys" && cp "$WORK/pg2a/keys/service.key" "$WORK/pg2b/keys/"
start_node pg2b "$PGURL" "$WORK/pg2b"; b2="$BASE"
start=$(date +%s.%N)
load "$b1" "${FILES[@]:0:$HALF}" >"$WORK/l1" &
load "$b2" "${FILES[@]:$HALF}" >"$WORK/l2" &
wait_jobs
end=$(date +%s.%N)
res=$(cat "$WORK/l1" "$WORK/l2" | awk '{s+=$1} END{print s}')
wall=$(awk "BEGIN{print $end-$start}")
echo "PostgreSQL, 2 nodes: $res resources in $(printf '%.1f' "$wall") s = $(rate "$res" "$wall") resources/s (half of the bundles through each node, concurrently)"
searches "$b2"
bench_search "$b1" "$b2"
stop_nodes
