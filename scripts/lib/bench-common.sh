# shellcheck shell=bash
# Helpers shared by scripts/bench.sh and scripts/bench-coldstart.sh. Source it; it only
# defines functions and the BENCH_PIDS array.
#
# Process handling: everything a bench script starts goes through bench_spawn, which records
# the PID; bench_stop_all (called from the scripts' EXIT trap) stops exactly those PIDs, newest
# first, TERM then KILL. Nothing is ever stopped by name.

BENCH_PIDS=()
BENCH_NAME="${BENCH_NAME:-bench}"

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# bench_need CMD:DEBIAN_PACKAGE...: installs the packages whose command is missing.
bench_need() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    bench_log "installing ${missing[*]} (apt-get)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || bench_die "${pair%%:*} still missing after installing ${pair#*:}"
    done
}

# bench_spawn LOGFILE CMD...: starts CMD in the background with stdout+stderr in LOGFILE and
# records its PID; sets BENCH_LAST_PID. (`taskset -c N cmd` execs cmd: the PID is cmd's.)
bench_spawn() {
    local log="$1"; shift
    "$@" >"$log" 2>&1 &
    BENCH_LAST_PID=$!
    BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID: TERM, wait up to 3 s, then KILL. Only for PIDs this script started.
bench_stop() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

bench_stop_all() {
    local i
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        bench_stop "${BENCH_PIDS[i]}"
    done
    BENCH_PIDS=()
}

# bench_free_port: a TCP port on 127.0.0.1 that was free a moment ago.
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_http URL SECONDS [PID]: waits until URL answers (any HTTP status). Fails early
# when PID (the server) has exited.
bench_wait_http() {
    local url="$1" secs="$2" pid="${3:-}" end=$((SECONDS + $2))
    while ((SECONDS < end)); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# bench_cpu_ticks PID...: summed utime+stime (clock ticks) of the processes, all their threads
# included, live and exited (/proc/PID/stat fields 14 and 15).
bench_cpu_ticks() {
    local pid s total=0
    for pid in "$@"; do
        s=$(<"/proc/$pid/stat") || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# bench_rss_kib PID...: summed VmRSS in KiB.
bench_rss_kib() {
    local pid total=0 v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# bench_threads PID: the Threads: line of /proc/PID/status.
bench_threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# bench_kernel_kib: KernelStack + PageTables from /proc/meminfo (system-wide, KiB): kernel
# memory per thread that no process's RSS shows.
bench_kernel_kib() { awk '/^(KernelStack|PageTables):/ {s += $2} END {print s}' /proc/meminfo; }

# bench_children PID: the direct children of PID (nginx's workers).
bench_children() { pgrep -P "$1" | tr '\n' ' '; }

# bench_machine: one line describing the machine and the tools, for the results header.
bench_machine() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "$(nproc) cores ($cpu), $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
}
