#!/usr/bin/env bash
# The Kubernetes API server benchmark: `keelson server` (or any API server, given its kubeconfig)
# driven over TLS by a kube-rs client in another process, next to a raw `keelson store` doing the
# same writes in the same run (the API layer's overhead as a ratio).
#
# One load-generator process (bench/loadgen, crate keelson-bench, `api` subcommand) runs, on
# ConfigMaps with a 256-byte value (the raw store's put size), case by case:
#   create-c1 create-c64    creates of new ConfigMaps, 1 / 64 concurrent clients   (store: put-c1, put-c64)
#   get-c64                 gets of one of 1 000 preloaded ConfigMaps, 64 clients   (store: get-lin-c64)
#   list1000-c1             list of those 1 000 ConfigMaps, 1 client (latency)
#   list1000-paged500-c1    the same list in pages of limit=500 (latency of the whole list)
#   watch-1000              1 000 watchers on one namespace, 4 writers creating 500 ConfigMaps
#                           stamped with their send time, paced at 100 creates/s (100 000
#                           deliveries/s): p50/p99/max delivery, every event delivered
#                                                                                   (store: watch-1000)
#   watch-1000-max          the same with the writers unpaced (each writes again as soon as its
#                           create is answered): the most events/s   (store: watch-1000-max)
# Each API case runs right before or after its store counterpart (alternating), both servers up.
# When the script starts `keelson server` itself (no KUBECONFIG argument), also:
#   startup-fresh     process start -> first successful GET with the admin kubeconfig, fresh data dir
#   idle-rss          VmRSS of `keelson server` 2 s after that, before any load
#   rss-after-load    VmRSS after the workload
#   startup-restart   restart on the existing data dir -> first successful GET
#   idle-rss-restart  VmRSS 2 s after that
# Prints one `RESULT case=... target=apiserver|store ...` line per case as it finishes, then a table
# with an apiserver/store ratio line per case, the goals of issue 3 with met / NOT met, and as the
# very last line: `creates/s at 64 clients, apiserver/raw store: <ratio>`.
#
# Usage: bench/apiserver.sh [--quick] [--no-build] [--out FILE] [KUBECONFIG]
#   KUBECONFIG  run the API load against that server (its current context) instead of starting
#               `keelson server`; no RSS or start-up figures. The raw store still runs locally when
#               a keelson binary is available (KEELSON_BIN, or an already built release binary).
#   --quick     1 s cases, 50 watch writes (smoke test, ~1 min); the full run takes ~2-3 min
#   --out FILE  also keep the raw RESULT lines in FILE
# Env: CARGO_TARGET_DIR (default /var/cache/keelson-target); KEELSON_BIN overrides the keelson binary.
# Exit status: 0 when every case ran without errors, 1 otherwise.
set -euo pipefail

QUICK=0
BUILD=1
OUT=""
KUBECONFIG_ARG=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --out) shift; OUT="${1:?--out needs a file}" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
        *)
            [[ -z "$KUBECONFIG_ARG" ]] || { echo "only one KUBECONFIG argument" >&2; exit 2; }
            KUBECONFIG_ARG="$1" ;;
    esac
    shift
done
if [[ -n "$KUBECONFIG_ARG" ]]; then
    [[ -r "$KUBECONFIG_ARG" ]] || { echo "cannot read kubeconfig $KUBECONFIG_ARG" >&2; exit 2; }
    KUBECONFIG_ARG="$(cd "$(dirname "$KUBECONFIG_ARG")" && pwd)/$(basename "$KUBECONFIG_ARG")"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/keelson-target}"
BENCH="$CARGO_TARGET_DIR/release/keelson-bench"
KEELSON="${KEELSON_BIN:-$CARGO_TARGET_DIR/release/keelson}"
log() { echo "[apiserver.sh $(date +%H:%M:%S)] $*" >&2; }

# --- build ----------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "building keelson-bench (release)"
    (cd "$ROOT" && cargo build --release -p keelson-bench)
    # Against a given server keelson is only needed for the raw store: use it if it is there.
    if [[ -z "${KEELSON_BIN:-}" && -z "$KUBECONFIG_ARG" ]]; then
        log "building keelson (release)"
        (cd "$ROOT" && cargo build --release -p keelson)
    fi
fi
[[ -x "$BENCH" ]] || { echo "missing $BENCH (run without --no-build)" >&2; exit 2; }
HAVE_KEELSON=0
if [[ -x "$KEELSON" ]] && "$KEELSON" server --help >/dev/null 2>&1 && "$KEELSON" store --help >/dev/null 2>&1; then
    HAVE_KEELSON=1
elif [[ -z "$KUBECONFIG_ARG" ]]; then
    echo "no runnable keelson binary at $KEELSON (set KEELSON_BIN or run without --no-build)" >&2
    exit 2
else
    log "no keelson binary at $KEELSON: no raw store to compare with (set KEELSON_BIN)"
fi

# --- processes and temp dirs, all removed at exit ------------------------------------------------
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_setup apibench

# Runs a loadgen command, echoing its output to stdout and to the results file.
record() {
    "$@" | tee -a "$RESULTS"
    return "${PIPESTATUS[0]}"
}

stop() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

show_log() {
    echo "---- last lines of $1 ----" >&2
    tail -n 20 "$1" >&2
}

STATUS=0

# --- the raw store (same flags as bench/storage.sh, plain http on loopback, fsync on) -------------
STORE_PID="" STORE_EP=""
if [[ $HAVE_KEELSON == 1 ]]; then
    read -r CPORT PPORT < <("$BENCH" ports --count 2)
    mkdir -p "$TMP/store"
    "$KEELSON" store --name m1 --data-dir "$TMP/store/m1" \
        --listen-client-urls "http://127.0.0.1:$CPORT" --advertise-client-urls "http://127.0.0.1:$CPORT" \
        --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
        --initial-cluster "m1=http://127.0.0.1:$PPORT" --initial-cluster-state new \
        >>"$TMP/store/m1.log" 2>&1 &
    STORE_PID=$!
    ALL_PIDS+=("$STORE_PID")
    if "$BENCH" wait-ready --target store --case store-startup --endpoints "http://127.0.0.1:$CPORT" \
        --pids "$STORE_PID" --since-ns "$(date +%s%N)" >/dev/null; then
        STORE_EP="http://127.0.0.1:$CPORT"
        log "raw store (keelson store) ready on $STORE_EP"
    else
        log "ERROR: keelson store did not answer a Range: no store comparison"
        show_log "$TMP/store/m1.log"
        STATUS=1
    fi
fi

# --- the API server -------------------------------------------------------------------------------
SERVER_PID="" SERVER_PORT="" SERVER_DIR="$TMP/server"
# start_server CASE: starts `keelson server` on SERVER_DIR and SERVER_PORT, records the time to the
# first successful GET as CASE and, 2 s later, the idle RSS.
start_server() {
    local case=$1 t0 rss_case=idle-rss
    [[ $case == startup-restart ]] && rss_case=idle-rss-restart
    t0=$(date +%s%N)
    "$KEELSON" server --data-dir "$SERVER_DIR" --secure-port "$SERVER_PORT" >>"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    ALL_PIDS+=("$SERVER_PID")
    if ! record "$BENCH" api-wait-ready --kubeconfig "$SERVER_DIR/admin.kubeconfig" --case "$case" \
        --pid "$SERVER_PID" --since-ns "$t0"; then
        show_log "$TMP/server.log"
        return 1
    fi
    sleep 2
    record "$BENCH" rss --target apiserver --case "$rss_case" --pids "$SERVER_PID" || true
}

if [[ -n "$KUBECONFIG_ARG" ]]; then
    KCFG="$KUBECONFIG_ARG"
    log "API server: the current context of $KCFG"
else
    SERVER_PORT=$("$BENCH" ports)
    log "keelson server, fresh data dir, port $SERVER_PORT"
    if ! start_server startup-fresh; then
        log "ERROR: keelson server did not answer"
        exit 1
    fi
    KCFG="$SERVER_DIR/admin.kubeconfig"
fi

# --- the workload ---------------------------------------------------------------------------------
log "workload: kube-rs (HTTP/1.1 over TLS: one connection per request in flight) vs the raw store's"
log "etcd v3 gRPC (1 connection for 1 client, 8 shared HTTP/2 connections for 64 clients and the"
log "watchers); each case runs on one, then the other (alternating which goes first)"
args=(api --kubeconfig "$KCFG")
[[ -n "$SERVER_PID" ]] && args+=(--pid "$SERVER_PID")
[[ -n "$STORE_EP" ]] && args+=(--store-endpoint "$STORE_EP" --store-pid "$STORE_PID")
[[ $QUICK == 1 ]] && args+=(--quick)
if ! record "$BENCH" "${args[@]}"; then
    log "ERROR: the load generator failed"
    STATUS=1
fi
if grep -q " error=\| missing_events=[1-9]" "$RESULTS"; then
    log "some cases failed (error= or missing_events= in their RESULT lines)"
    [[ -n "$SERVER_PID" ]] && show_log "$TMP/server.log"
    STATUS=1
fi

# --- footprint after load, restart on the existing data dir ---------------------------------------
if [[ -n "$SERVER_PID" ]]; then
    record "$BENCH" rss --target apiserver --case rss-after-load --pids "$SERVER_PID" \
        || { log "ERROR: keelson server is gone after the workload"; STATUS=1; }
    stop "$SERVER_PID"
    log "keelson server: restart on the existing data dir"
    if ! start_server startup-restart; then
        log "ERROR: keelson server did not restart"
        STATUS=1
    fi
    stop "$SERVER_PID"
fi
[[ -n "$STORE_PID" ]] && stop "$STORE_PID"

[[ -n "$OUT" ]] && cp "$RESULTS" "$OUT"
echo
"$BENCH" api-report "$RESULTS"
exit $STATUS
