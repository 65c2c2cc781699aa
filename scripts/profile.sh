#!/usr/bin/env bash
# Where wakeproxy's CPU goes per request on the warm path: the release binary in front of a
# static nginx backend, under wrk's keep-alive and new-connection loads (13 B), on one core.
# For each load it prints CPU µs per request, context switches and syscalls per request, and
# the CPU split into named costs (µs per request each), from `perf record` call graphs of the
# proxy's core. See docs/benchmarks.md ("An account of the warm path").
#
#   scripts/profile.sh                       # both loads, 10 s each (~2 minutes)
#   LOADS=keep-alive SECONDS_PER_LOAD=5 scripts/profile.sh
#
# Settings (environment): LOADS ("keep-alive close"), SECONDS_PER_LOAD (10), CONNS (64),
# WAKEPROXY_BIN (a binary to profile instead of building this checkout's), PROFILE_OUT (or
# BENCH_OUT; default target/profile: perf data, wrk outputs, report.md).
#
# Layout as in bench.sh: the backend and wrk on core 0, the proxy on core 1. Three runs per
# load: a clean one for CPU per request (no perf attached), one under `perf stat` for the
# counts, one under `perf record -C 1 --call-graph dwarf` for the split. Each sample of the
# proxy's process is given to the first named cost found walking its stack from the leaf
# (scripts/lib/profile-buckets.py), so a memcpy called from header code counts as a copy.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # read by bench_die
BENCH_NAME=profile
# shellcheck source=scripts/lib/bench-common.sh
source "$repo/scripts/lib/bench-common.sh"

LOADS="${LOADS:-keep-alive close}"
SECS="${SECONDS_PER_LOAD:-10}"
CONNS="${CONNS:-64}"
OUT="${PROFILE_OUT:-${BENCH_OUT:-$repo/target/profile}}"
[[ "$(nproc)" -ge 2 ]] || bench_die "needs at least 2 CPUs (client+backend on 0, proxy on 1)"
bench_need nginx:nginx-light wrk:wrk perf:linux-perf taskset:util-linux curl:curl python3:python3
for l in $LOADS; do
    [[ "$l" == keep-alive || "$l" == close ]] || bench_die "LOADS: $l is not keep-alive or close"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Kernel symbols for the split (root may read them when kptr_restrict allows).
[[ -r /proc/sys/kernel/kptr_restrict ]] && echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null || true

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wakeproxy-profile.XXXXXX")"
trap 'bench_stop_all; rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

if [[ -n "${WAKEPROXY_BIN:-}" ]]; then
    cp "$WAKEPROXY_BIN" "$tmp/wakeproxy"
else
    bench_log "building target/release/wakeproxy"
    (cd "$repo" && cargo build --release --locked --bin wakeproxy 2>&1 | tail -n 2) >&2
    cp "$repo/target/release/wakeproxy" "$tmp/wakeproxy"
fi

token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
backend_port="$(bench_free_port)"
wp_port="$(bench_free_port)"
mkdir -p "$tmp/www" "$tmp/nginx-tmp"
chmod 755 "$tmp"
printf 'hello, world\n' >"$tmp/www/small"
chmod -R a+rX "$tmp/www"
cat >"$tmp/backend.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $tmp/backend.pid;
error_log $tmp/backend-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx-tmp/body;
    proxy_temp_path $tmp/nginx-tmp/proxy;
    fastcgi_temp_path $tmp/nginx-tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx-tmp/uwsgi;
    scgi_temp_path $tmp/nginx-tmp/scgi;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$backend_port backlog=4096; root $tmp/www; location / { } }
}
EOF
cat >"$tmp/wakeproxy.yaml" <<EOF
global:
  bearer_token: $token
  listen_address: 127.0.0.1
  listen_http: $wp_port
  http_redirect_to_https: false
  log_level: warn
  max_connections: 4096
  max_connections_per_ip: 4096
services:
  - name: static
    path: /
    upstream: 127.0.0.1:$backend_port
EOF

ON_CLIENT=(nice -n -20 taskset -c 0)
ON_PROXY=(nice -n -20 taskset -c 1)
bench_spawn "$tmp/backend.log" "${ON_CLIENT[@]}" nginx -c "$tmp/backend.conf" -p "$tmp"
bench_spawn "$OUT/wakeproxy.log" "${ON_PROXY[@]}" "$tmp/wakeproxy" proxy --config "$tmp/wakeproxy.yaml" --no-tls
wp_pid=$BENCH_LAST_PID
url="http://127.0.0.1:$wp_port/small"
bench_wait_http "$url" 20 "$wp_pid" || bench_die "wakeproxy did not answer: $(cat "$OUT/wakeproxy.log")"

# wrk_run LOAD SECONDS OUTFILE [PREFIX...]: the load, on core 0; PREFIX (a perf command that
# measures for as long as its command runs) runs it, so the measurement covers exactly the load.
wrk_run() {
    local load="$1" secs="$2" out="$3" hdr=(-H "Authorization: Bearer $token")
    shift 3
    [[ "$load" == close ]] && hdr+=(-H "Connection: close")
    "$@" "${ON_CLIENT[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" "${hdr[@]}" "$url" >"$out"
}
requests() { awk '/ requests in / {print $1}' "$1"; }

hz="$(getconf CLK_TCK)"
syscalls=""
if [[ ! -d /sys/kernel/tracing/events/raw_syscalls && -d /sys/kernel/tracing ]]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
perf stat -e raw_syscalls:sys_enter -p $$ -- true >/dev/null 2>&1 && syscalls=",raw_syscalls:sys_enter"
: >"$OUT/summary.tsv"
for load in $LOADS; do
    bench_log "$load: warm-up"
    wrk_run "$load" 2 "$OUT/$load-warmup.txt"
    bench_log "$load: CPU per request ($SECS s, nothing attached)"
    t0="$(bench_cpu_ticks "$wp_pid")"
    wrk_run "$load" "$SECS" "$OUT/$load-clean.txt"
    t1="$(bench_cpu_ticks "$wp_pid")"
    n="$(requests "$OUT/$load-clean.txt")"
    [[ "${n:-0}" -gt 0 ]] || bench_die "$load: wrk made no requests: $(cat "$OUT/$load-clean.txt")"
    cpu_us="$(python3 -c "print(($t1 - $t0) * 1e6 / $hz / $n)")"
    bench_log "$load: counts per request (perf stat)"
    wrk_run "$load" "$SECS" "$OUT/$load-stat.txt" \
        perf stat -x, -e "context-switches$syscalls" -p "$wp_pid" -o "$OUT/$load-stat.csv" --
    bench_log "$load: call graphs (perf record on core 1)"
    wrk_run "$load" "$SECS" "$OUT/$load-record.txt" \
        perf record -q -C 1 -F 999 --call-graph dwarf,16384 -o "$OUT/$load.perf.data" --
    printf '%s\t%s\t%s\t%s\t%s\n' "$load" "$cpu_us" "$(requests "$OUT/$load-stat.txt")" \
        "$OUT/$load-stat.csv" "$OUT/$load.perf.data" >>"$OUT/summary.tsv"
done
bench_stop "$wp_pid"

bench_log "splitting the samples (perf script; this takes a minute)"
for load in $LOADS; do
    perf script -i "$OUT/$load.perf.data" -F comm,pid,ip,sym --no-inline 2>/dev/null |
        gzip >"$OUT/$load.script.gz"
done
python3 "$repo/scripts/lib/profile-buckets.py" "$OUT/summary.tsv" "$wp_pid" >"$OUT/report.md"
echo
cat "$OUT/report.md"
bench_log "written to ${OUT#"$repo"/}/report.md"
