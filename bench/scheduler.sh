#!/usr/bin/env bash
# The scheduler and controller benchmark (issue 17), on simulated nodes:
#   schedule   NODES simulated nodes, PODS pending pods (100m CPU, 128Mi each) created first, then
#              `keelson scheduler` started as its own process: pods bound per second from the first
#              binding to the last (seen by a watch), the scheduler's CPU seconds per 1 000 pods,
#              and its peak RSS. Goal: >= 2 000 pods/s at 1 000 nodes / 10 000 pods.
#   rollout    a Deployment of 1 000 replicas from create to 1 000 available (goal < 10 s).
#   idle-rss   `keelson server` with its scheduler and controller-manager, idle (goal < 80 MiB).
# Prints `RESULT case=...` lines and a summary with the goals.
#
# Usage: bench/scheduler.sh [--nodes N] [--pods N] [--large] [--debug] [--no-build] [KUBECONFIG]
#   KUBECONFIG  use that cluster (its controller-manager must run; its own scheduler must not
#               schedule the pods, i.e. none runs); the simulated nodes and the measured
#               scheduler run here against it. No idle-rss case.
#   --large     5 000 nodes and 30 000 pods instead of 1 000 / 10 000.
#   --debug     use the debug build (quick to build, slow to run: not for the goals).
# Env: CARGO_TARGET_DIR (default /var/cache/keelson-target); KEELSON_BIN, KEELSON_BENCH_BIN
# override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

NODES=1000
PODS=10000
PROFILE=release
BUILD=1
KUBECONFIG_ARG=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) shift; NODES="$1" ;;
        --pods) shift; PODS="$1" ;;
        --large) NODES=5000; PODS=30000 ;;
        --debug) PROFILE=debug ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
        *) KUBECONFIG_ARG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/keelson-target}"
if [[ $BUILD == 1 && -z "${KEELSON_BIN:-}" ]]; then
    flag=""; [[ $PROFILE == release ]] && flag="--release"
    cargo build $flag -p keelson -p keelson-bench >&2
fi
KEELSON="${KEELSON_BIN:-$CARGO_TARGET_DIR/$PROFILE/keelson}"
BENCH="${KEELSON_BENCH_BIN:-$CARGO_TARGET_DIR/$PROFILE/keelson-bench}"
KUBECTL="$(command -v kubectl || echo /var/cache/keelson-kube-clients/kubectl-1.33)"

bench_setup scheduler

# Peak and current RSS (MiB) and CPU seconds of a process.
proc_stats() {
    local pid=$1 ticks
    ticks=$(getconf CLK_TCK)
    awk -v t="$ticks" '{printf "cpu_s=%.2f", ($14 + $15) / t}' "/proc/$pid/stat"
    awk '/VmHWM/ {printf " peak_rss_mib=%.0f", $2 / 1024} /VmRSS/ {printf " rss_mib=%.0f", $2 / 1024}' "/proc/$pid/status"
}

# Starts `keelson server` with `$@`; sets SERVER_PID and SERVER_KUBECONFIG.
start_server() {
    local port log="$TMP/server.log"
    port=$("$BENCH" ports --count 1)
    "$KEELSON" server --ephemeral --secure-port "$port" "$@" >"$TMP/server.out" 2>"$log" &
    SERVER_PID=$!
    ALL_PIDS+=("$SERVER_PID")
    for _ in $(seq 600); do
        grep -q "Keelson is ready" "$TMP/server.out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    SERVER_KUBECONFIG=$(sed -n 's/.*(kubeconfig: \(.*\))$/\1/p' "$TMP/server.out")
}

if [[ -z "$KUBECONFIG_ARG" ]]; then
    # The cluster: API server, controller-manager and the simulated nodes; no scheduler.
    start_server --disable scheduler --simulated-nodes "$NODES" --kubelet-arg=kube-api-qps=2000 \
        --kubelet-arg=kube-api-burst=4000
    ADMIN="$SERVER_KUBECONFIG"
    SCHED_KUBECONFIG="$(dirname "$ADMIN")/scheduler.kubeconfig"
else
    ADMIN="$KUBECONFIG_ARG"
    SCHED_KUBECONFIG="$KUBECONFIG_ARG"
    "$KEELSON" kubelet --simulated --nodes "$NODES" --kubeconfig "$ADMIN" --secure-port 0 \
        --kube-api-qps 2000 --kube-api-burst 4000 2>"$TMP/kubelet.log" &
    ALL_PIDS+=("$!")
fi

echo "waiting for $NODES ready nodes" >&2
for _ in $(seq 1200); do
    ready=$("$KUBECTL" --kubeconfig "$ADMIN" get nodes --no-headers 2>/dev/null | grep -c " Ready " || true)
    [[ "$ready" -ge "$NODES" ]] && break
    sleep 0.5
done
[[ "$ready" -ge "$NODES" ]] || { echo "only $ready of $NODES nodes ready" >&2; exit 1; }

"$BENCH" create-pods --kubeconfig "$ADMIN" --count "$PODS" | tee -a "$RESULTS"
"$BENCH" watch-bound --kubeconfig "$ADMIN" --count "$PODS" >"$TMP/watch.out" 2>"$TMP/watch.err" &
WATCH_PID=$!
ALL_PIDS+=("$WATCH_PID")
for _ in $(seq 600); do grep -q watching "$TMP/watch.out" && break; sleep 0.1; done

"$KEELSON" scheduler --kubeconfig "$SCHED_KUBECONFIG" --leader-elect=false --secure-port 0 \
    --bind-address 127.0.0.1 --kube-api-qps 100000 --kube-api-burst 100000 2>"$TMP/scheduler.log" &
SCHED_PID=$!
ALL_PIDS+=("$SCHED_PID")
wait "$WATCH_PID" || { cat "$TMP/watch.err" "$TMP/scheduler.log" >&2; exit 1; }
grep RESULT "$TMP/watch.out" | tee -a "$RESULTS"
stats=$(proc_stats "$SCHED_PID")
cpu=$(sed 's/cpu_s=\([0-9.]*\).*/\1/' <<<"$stats")
echo "RESULT case=scheduler-process nodes=$NODES pods=$PODS $stats cpu_s_per_1000_pods=$(awk -v c="$cpu" -v p="$PODS" 'BEGIN {printf "%.2f", c * 1000 / p}')" | tee -a "$RESULTS"
[[ -n "${SERVER_PID:-}" ]] && echo "RESULT case=server-process $(proc_stats "$SERVER_PID")" | tee -a "$RESULTS"

# A 1 000-replica Deployment with the scheduler still running.
"$BENCH" rollout --kubeconfig "$ADMIN" --namespace rollout-bench --count 1000 | tee -a "$RESULTS"

if [[ -z "$KUBECONFIG_ARG" ]]; then
    # Idle footprint of the whole control plane in one process.
    kill -TERM "$SCHED_PID" "$SERVER_PID" 2>/dev/null || true
    wait "$SCHED_PID" "$SERVER_PID" 2>/dev/null || true
    start_server
    sleep 10
    echo "RESULT case=idle-rss $(proc_stats "$SERVER_PID")" | tee -a "$RESULTS"
fi

echo
echo "== summary ($PROFILE build, $NODES nodes, $PODS pods)"
awk '
    /case=schedule / { for (i = 1; i <= NF; i++) if ($i ~ /^pods_per_s=/) { split($i, a, "="); r = a[2] } }
    /case=rollout / { for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) { split($i, a, "="); s = a[2] } }
    /case=idle-rss / { for (i = 1; i <= NF; i++) if ($i ~ /^rss_mib=/) { split($i, a, "="); m = a[2] } }
    END {
        printf "pods bound/s: %s (goal >= 2000: %s)\n", r, (r >= 2000 ? "met" : "NOT met")
        printf "1000-replica rollout: %s s (goal < 10 s: %s)\n", s, (s != "" && s < 10 ? "met" : "NOT met")
        if (m != "") printf "idle server RSS: %s MiB (goal < 80 MiB: %s)\n", m, (m < 80 ? "met" : "NOT met")
    }' "$RESULTS"
