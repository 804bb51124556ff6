#!/usr/bin/env bash
# Keelson's store vs etcd 3.4 (Debian etcd-server), same workload, same machine, same run.
#
# Both servers run as separate processes on 127.0.0.1 (plain http), fsync on, driven by one
# load-generator process (bench/loadgen, crate keelson-bench) through the same etcd v3 gRPC calls.
# For each cluster size (1 member, then 3 members on loopback) it starts etcd and `keelson store`
# (one after the other, timing each start), runs every workload case on one and then the other
# (alternating which goes first, so load from other processes on this shared machine hits both
# alike), then stops them and restarts each on its data dir:
#   startup-fresh     process start -> first successful linearizable Range, fresh data dir
#   idle-rss          VmRSS 2 s after ready (mean per member)
#   put-c1 put-c64 txn-create-c64 get-lin-c64 get-ser-c64 list100-c8 watch-100 watch-1000
#   rss-after-load    VmRSS after the workload
#   startup-restart   restart on the existing data dir -> first successful Range
#   idle-rss-restart  VmRSS 2 s after that
# Every case prints one `RESULT case=... target=... members=... ops_s=... p50_ms=... p99_ms=...`
# line as it finishes; at the end a table with a keelson/etcd ratio line per case, and as the very
# last line: `put throughput at 64 clients, keelson/etcd: <ratio>` (single member).
#
# Usage: bench/storage.sh [--quick] [--members 1|3|both] [--only etcd|keelson] [--no-build] [--out FILE]
#   --quick     1 s cases and few watch puts (smoke test, ~2 min); the full run takes ~6-8 min
#   --out FILE  also keep the raw RESULT lines in FILE
# Env: CARGO_TARGET_DIR (default /var/cache/keelson-target); KEELSON_BIN overrides the keelson binary.
# Exit status: 0 when both halves ran; 1 when the keelson half could not run (etcd's still does).
set -euo pipefail

QUICK=0
MEMBERS_LIST="1 3"
TARGETS="etcd keelson"
BUILD=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --members)
            shift
            case "${1:-}" in
                1) MEMBERS_LIST="1" ;; 3) MEMBERS_LIST="3" ;; both) MEMBERS_LIST="1 3" ;;
                *) echo "--members takes 1, 3 or both" >&2; exit 2 ;;
            esac ;;
        --only)
            shift
            case "${1:-}" in
                etcd|keelson) TARGETS="$1" ;;
                *) echo "--only takes etcd or keelson" >&2; exit 2 ;;
            esac ;;
        --no-build) BUILD=0 ;;
        --out) shift; OUT="${1:?--out needs a file}" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/keelson-target}"
BENCH="$CARGO_TARGET_DIR/release/keelson-bench"
KEELSON="${KEELSON_BIN:-$CARGO_TARGET_DIR/release/keelson}"
log() { echo "[storage.sh $(date +%H:%M:%S)] $*" >&2; }

# --- etcd from Debian ------------------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    log "installing etcd-server etcd-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y etcd-server etcd-client || { apt-get update && apt-get install -y etcd-server etcd-client; }
fi
ETCD="$(command -v etcd)"
log "etcd: $("$ETCD" --version 2>/dev/null | head -1)"

# --- build ----------------------------------------------------------------------------------------
KEELSON_ERR=""
if [[ $BUILD == 1 ]]; then
    log "building keelson-bench (release)"
    (cd "$ROOT" && cargo build --release -p keelson-bench)
    if [[ " $TARGETS " == *" keelson "* && -z "${KEELSON_BIN:-}" ]]; then
        log "building keelson (release)"
        if ! (cd "$ROOT" && cargo build --release -p keelson); then
            KEELSON_ERR="cargo build --release -p keelson failed"
        fi
    fi
fi
[[ -x "$BENCH" ]] || { echo "missing $BENCH (run without --no-build)" >&2; exit 2; }
if [[ " $TARGETS " == *" keelson "* && -z "$KEELSON_ERR" ]]; then
    if [[ ! -x "$KEELSON" ]]; then
        KEELSON_ERR="no keelson binary at $KEELSON"
    elif ! "$KEELSON" store --help >/dev/null 2>&1; then
        KEELSON_ERR="\`$KEELSON store\` is not runnable yet (\`keelson store --help\` fails)"
    fi
fi

# --- processes and temp dirs, all removed at exit ------------------------------------------------
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_setup bench

# Per running server kind: its PIDs (space-separated), PID list and endpoints (comma-separated).
declare -A T_PIDS=() T_PIDLIST=() T_EPS=()

# start_cluster TARGET N DIR: starts N members with the ports stored in DIR/ports (chosen on first start).
start_cluster() {
    local target=$1 n=$2 dir=$3 i
    if [[ ! -f "$dir/ports" ]]; then
        "$BENCH" ports --count $((2 * n)) >"$dir/ports"
    fi
    local -a ports
    read -r -a ports <"$dir/ports"
    local ic="" pids="" eps=""
    for ((i = 1; i <= n; i++)); do
        ic+="${ic:+,}m$i=http://127.0.0.1:${ports[$((2 * i - 1))]}"
    done
    for ((i = 1; i <= n; i++)); do
        local cport=${ports[$((2 * i - 2))]} pport=${ports[$((2 * i - 1))]}
        local -a flags=(--name "m$i" --data-dir "$dir/m$i"
            --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport"
            --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport"
            --initial-cluster "$ic" --initial-cluster-state new)
        if [[ $target == etcd ]]; then
            "$ETCD" "${flags[@]}" --initial-cluster-token keelson-bench --logger zap --log-level warn \
                >>"$dir/m$i.log" 2>&1 &
        else
            "$KEELSON" store "${flags[@]}" >>"$dir/m$i.log" 2>&1 &
        fi
        ALL_PIDS+=($!)
        pids+="${pids:+ }$!"
        eps+="${eps:+,}http://127.0.0.1:$cport"
    done
    T_PIDS[$target]=$pids
    T_PIDLIST[$target]=${pids// /,}
    T_EPS[$target]=$eps
}

stop_cluster() {
    local target=$1 p
    for p in ${T_PIDS[$target]:-}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${T_PIDS[$target]:-}; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    T_PIDS[$target]=""
}

# Runs a loadgen command, echoing its output to stdout and to the results file.
record() {
    "$@" | tee -a "$RESULTS"
    return "${PIPESTATUS[0]}"
}

show_logs() {
    local dir=$1 f
    for f in "$dir"/m*.log; do
        [[ -f "$f" ]] || continue
        echo "---- last lines of $f ----" >&2
        tail -n 15 "$f" >&2
    done
}

# start_and_wait TARGET N CASE: (re)starts the cluster in its dir, waits for the first Range, and
# records the start-up time as CASE and, 2 s later, the idle RSS.
start_and_wait() {
    local target=$1 n=$2 case=$3 t0
    local dir="$TMP/$target-$n"
    mkdir -p "$dir"
    # Write back what earlier steps left dirty (the other server's data dir was just deleted),
    # so that its I/O does not land on this start's own fsyncs.
    sync
    t0=$(date +%s%N)
    start_cluster "$target" "$n" "$dir"
    if ! record "$BENCH" wait-ready --target "$target" --members "$n" --case "$case" \
        --endpoints "${T_EPS[$target]}" --pids "${T_PIDLIST[$target]}" --since-ns "$t0"; then
        show_logs "$dir"
        stop_cluster "$target"
        return 1
    fi
    sleep 2
    local rss_case=idle-rss
    [[ $case == startup-restart ]] && rss_case=idle-rss-restart
    record "$BENCH" rss --target "$target" --members "$n" --case "$rss_case" --pids "${T_PIDLIST[$target]}" || true
}

# run_size N: everything for one cluster size, for every target that can run.
run_size() {
    local n=$1 target
    local -a active=() args=()
    for target in $TARGETS; do
        if [[ $target == keelson && -n "$KEELSON_ERR" ]]; then
            continue
        fi
        log "$target, $n member(s): fresh start"
        if start_and_wait "$target" "$n" startup-fresh; then
            active+=("$target")
            args+=(--server "$target" --endpoints "${T_EPS[$target]}" --pids "${T_PIDLIST[$target]}")
        else
            log "ERROR: $target with $n member(s) did not answer a Range"
            [[ $target == keelson ]] && KEELSON_ERR="keelson store with $n member(s) did not start serving"
            STATUS=1
        fi
    done
    [[ ${#active[@]} -gt 0 ]] || return 0
    log "workload on ${active[*]}, $n member(s), case by case"
    local -a q=()
    [[ $QUICK == 1 ]] && q=(--quick)
    if ! record "$BENCH" suite --members "$n" "${args[@]}" --conns 8 "${q[@]}"; then
        log "ERROR: the load generator failed"
        STATUS=1
    fi
    for target in "${active[@]}"; do
        record "$BENCH" rss --target "$target" --members "$n" --case rss-after-load \
            --pids "${T_PIDLIST[$target]}" || log "ERROR: $target is gone after the workload"
        if grep -q "target=$target members=$n .*error=" "$RESULTS"; then
            log "$target, $n member(s): some cases failed (error= in their RESULT lines)"
            show_logs "$TMP/$target-$n"
            [[ $target == keelson ]] && KEELSON_ERR="some keelson cases failed" && STATUS=1
        fi
        stop_cluster "$target"
    done
    for target in "${active[@]}"; do
        log "$target, $n member(s): restart on the existing data dir"
        if ! start_and_wait "$target" "$n" startup-restart; then
            log "ERROR: $target with $n member(s) did not restart"
            [[ $target == keelson ]] && KEELSON_ERR="keelson store did not restart"
            STATUS=1
        fi
        stop_cluster "$target"
        rm -rf "${TMP:?}/$target-$n"
    done
}

log "connections: 1-client cases use 1 gRPC connection (to the leader on 3 members); the 64- and"
log "8-client cases share 8 HTTP/2 connections spread round-robin over the members; watchers get"
log "one watch stream each over the same 8 connections. Both servers stay up during the workload"
log "and each case runs on one, then the other (alternating which goes first)."
STATUS=0
if [[ " $TARGETS " == *" keelson "* && -n "$KEELSON_ERR" ]]; then
    log "ERROR: keelson half skipped: $KEELSON_ERR"
    STATUS=1
fi
for n in $MEMBERS_LIST; do
    run_size "$n"
done

[[ -n "$OUT" ]] && cp "$RESULTS" "$OUT"
if [[ " $TARGETS " == *" keelson "* && -n "$KEELSON_ERR" ]]; then
    log "ERROR: the keelson half did not (fully) run: $KEELSON_ERR"
    STATUS=1
fi
echo
"$BENCH" report "$RESULTS"
exit $STATUS
