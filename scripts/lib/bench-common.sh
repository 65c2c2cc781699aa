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

# bench_stop PID: TERM, wait up to 3 s, then KILL, and forget the PID. Only for PIDs this
# script started (bench_spawn).
bench_stop() {
    local pid="$1" i keep=()
    for i in "${BENCH_PIDS[@]}"; do [[ "$i" == "$pid" ]] || keep+=("$i"); done
    BENCH_PIDS=("${keep[@]}")
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

bench_stop_all() {
    while ((${#BENCH_PIDS[@]})); do
        bench_stop "${BENCH_PIDS[${#BENCH_PIDS[@]} - 1]}"
    done
}

# bench_free_port: a TCP port on 127.0.0.1 that was free a moment ago.
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_http URL SECONDS [PID]: waits until URL answers (any HTTP status). Fails early
# when PID (the server) has exited. An https URL may have the benchmarks' self-signed
# certificate (-k), and whatever name the URL gives, curl connects to 127.0.0.1.
bench_wait_http() {
    local url="$1" pid="${3:-}" end=$((SECONDS + $2))
    while ((SECONDS < end)); do
        curl -s -k --connect-to ::127.0.0.1: -o /dev/null --max-time 1 "$url" && return 0
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

# bench_shared_libs BINARY: "BYTES NAME,NAME..." of the shared libraries BINARY loads besides
# glibc's own (libc, libm, ld-linux, ...), sizes of the files they resolve to ("0" when none).
bench_shared_libs() {
    local lib path total=0 names=()
    while read -r lib path; do
        case "$lib" in
            libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux*) continue ;;
        esac
        path="$(readlink -f "$path")" || continue
        total=$((total + $(stat -c %s "$path")))
        names+=("${lib%%.so*}")
    done < <(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
    local IFS=,
    echo "$total ${names[*]}"
}

# bench_machine: one line describing the machine and the tools, for the results header.
bench_machine() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "$(nproc) cores ($cpu), $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
}

# ---- other load: this machine is shared (builds, tests), and one busy core ruins a cell.

# bench_busy_ticks: busy ticks of all CPUs so far (/proc/stat "cpu" line: user, nice, system,
# irq, softirq). A process's stime includes the softirq time spent in its context, so the
# softirq field belongs with the processes when they are subtracted from this.
bench_busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }

# bench_times FILE: saves `times` of this shell to FILE. Call it directly, never in $(...):
# a subshell has its own (empty) children's times.
bench_times() { times >"$1"; }

# bench_children_ticks FILE: user+sys ticks of the shell's waited-for children as saved by
# bench_times FILE.
bench_children_ticks() {
    awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%d\n", t * hz + 0.5
    }' "$1"
}

# bench_wait_quiet MAX_SECONDS MAX_PERCENT: waits until, over one second, everything on the
# machine together keeps less than MAX_PERCENT of one core busy (our servers are idle then).
# Returns 1 if that did not happen within MAX_SECONDS.
bench_wait_quiet() {
    local end=$((SECONDS + $1)) hz b0 b1 pct said=0
    hz="$(getconf CLK_TCK)"
    while :; do
        b0="$(bench_busy_ticks)"
        sleep 1
        b1="$(bench_busy_ticks)"
        pct=$(((b1 - b0) * 100 / hz))
        ((pct <= $2)) && return 0
        ((SECONDS >= end)) && return 1
        if ((!said)); then
            bench_log "other processes keep ${pct}% of a core busy: waiting up to $1 s for them to finish"
            said=1
        fi
        sleep 4
    done
}
