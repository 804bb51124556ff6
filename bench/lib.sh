# Shared by the bench scripts: a temp dir and the processes they start, all removed at exit.
# Usage: `source bench/lib.sh; bench_setup <name>`; then append PIDs to ALL_PIDS.

# Creates $TMP (keelson-<name>.XXXXXX) and an empty $RESULTS, and arranges the cleanup.
bench_setup() {
    TMP="$(mktemp -d -t "keelson-$1.XXXXXX")"
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"
    declare -g -a ALL_PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# SIGTERM to every started process, up to 5 s to exit, then SIGKILL; removes $TMP.
bench_cleanup() {
    local p
    for p in "${ALL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${ALL_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for p in "${ALL_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
