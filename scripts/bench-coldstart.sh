#!/usr/bin/env bash
# Cold-start overhead of wakeproxy on the real Docker daemon. See docs/benchmarks.md.
#
#   scripts/bench-coldstart.sh            # N=10 runs of (a) and (b), then (c) with 100 requests
#   N=3 CONCURRENT=20 scripts/bench-coldstart.sh   # quicker
#
# (a) baseline: Engine API start (the call `docker start` and wakeproxy make) of an already
#     created wakeproxy-testbackend container (--init, port 8000 published on 127.0.0.1) until
#     its first HTTP answer on /health, polled every 1 ms; also the same with the `docker start`
#     CLI, whose own process start adds to the figure.
# (b) through wakeproxy (host_port mode, default bridge): time to first byte of one request
#     while the service is stopped (its container exists, stopped). Runs of (a) and (b) are
#     interleaved, so other load on the machine hits both alike.
# (c) CONCURRENT requests at once to the stopped service, then again with the container
#     removed: TTFB p50/p99 and how many containers were created and started (must be one start).
#
# Other load: before each run of (a)+(b) and each burst of (c) it waits up to QUIET_WAIT s (60)
# until other processes keep under QUIET_PCT % (25) of a core busy.
#
# Results: $BENCH_OUT/coldstart.md (default target/bench). Exits 1 when a correctness check
# fails (a request not answered 200, or not exactly one container start in (c)).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # read by bench_die
BENCH_NAME=bench-coldstart
# shellcheck source=scripts/lib/bench-common.sh
source "$repo/scripts/lib/bench-common.sh"

N="${N:-10}"
CONCURRENT="${CONCURRENT:-100}"
OUT="${BENCH_OUT:-$repo/target/bench}"
INSTANCE=bench
LABEL="wakeproxy.instance=$INSTANCE"
IMAGE=wakeproxy-testbackend:latest
SERVICE=wakeproxy-bench-cold          # wakeproxy names the container after the service
BASELINE=wakeproxy-bench-baseline

bench_need curl:curl python3:python3
command -v docker >/dev/null 2>&1 || bench_die "docker CLI not found in PATH"
docker info >/dev/null 2>&1 || bench_die "cannot reach the Docker daemon (${DOCKER_HOST:-unix:///var/run/docker.sock}); this benchmark needs it"
sock="${DOCKER_HOST:-unix:///var/run/docker.sock}"
sock="${sock#unix://}"
[[ -S "$sock" ]] || bench_die "this benchmark talks to the daemon over a Unix socket; $sock is not one"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wakeproxy-coldstart.XXXXXX")"
remove_ours() {
    local ids
    ids="$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)"
    # shellcheck disable=SC2086
    [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1 || true
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    bench_stop_all
    remove_ours
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

# ---------------------------------------------------------------- build
bench_log "building the test image and target/release/wakeproxy"
"$repo/scripts/build-test-image.sh" >&2
(cd "$repo" && cargo build --release --locked --bin wakeproxy 2>&1 | tail -n 2) >&2
cp "$repo/target/release/wakeproxy" "$tmp/wakeproxy"
rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$repo" diff --quiet HEAD -- src testbackend Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
remove_ours   # leftovers of an interrupted run

# ---------------------------------------------------------------- the timing tool
cat >"$tmp/coldtool.py" <<'PY'
"""Timing helpers: Engine API calls over the Unix socket, HTTP polls, cold requests."""
import http.client, json, socket, statistics, subprocess, sys, threading, time

DOCKER_SOCK = sys.argv[2]

class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

def api(method, path):
    c = UnixConn(DOCKER_SOCK)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status >= 400:
        sys.exit(f"Docker API {method} {path}: {r.status} {body[:200]!r}")
    return r.status

def first_answer(port, deadline):
    """Polls GET /health every 1 ms until an HTTP status line arrives; returns its time."""
    req = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(req)
                data = s.recv(16)
                if data.startswith(b"HTTP/1."):
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.001)
    sys.exit(f"no HTTP answer on 127.0.0.1:{port} within the deadline")

def baseline(name, port, how):
    """Starts the (stopped) container and times until its first HTTP answer, in ms."""
    t0 = time.perf_counter()
    if how == "api":
        api("POST", f"/containers/{name}/start")
    else:
        subprocess.run(["docker", "start", name], check=True, stdout=subprocess.DEVNULL)
    t1 = first_answer(port, t0 + 30)
    print(f"{(t1 - t0) * 1000:.1f}")

def request(port, token, path="/hello"):
    """One GET on a fresh connection: (ttfb ms, status)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
           f"Connection: close\r\n\r\n").encode()
    return s, req

def finish(s, t0):
    first = s.recv(1)
    t1 = time.perf_counter()
    data = first
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "none"
    return (t1 - t0) * 1000, status

def cold(port, token):
    s, req = request(port, token)
    t0 = time.perf_counter()
    s.sendall(req)
    ms, status = finish(s, t0)
    print(f"{ms:.1f}\t{status}")

def concurrent(port, token, n):
    """n requests sent at the same moment (connections opened first); prints each TTFB."""
    conns = [request(port, token) for _ in range(n)]
    barrier = threading.Barrier(n)
    results = [None] * n
    def run(i):
        s, req = conns[i]
        barrier.wait()
        t0 = time.perf_counter()
        s.sendall(req)
        results[i] = finish(s, t0)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ms, status in results:
        print(f"{ms:.1f}\t{status}")

def status_of(port, token, service):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/proxy/status", headers={"Authorization": f"Bearer {token}"})
    doc = json.loads(c.getresponse().read())
    c.close()
    services = doc["services"] if isinstance(doc, dict) else doc  # an object now, a list before
    return next(s["status"] for s in services if s["name"] == service)

def wait_status(port, token, service, want, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if status_of(port, token, service) == want:
            return
        time.sleep(0.02)
    sys.exit(f"{service} did not reach status {want!r} within {seconds} s")

def quantile(xs, q):
    """Nearest-rank quantile."""
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(-(-q * len(xs) // 1)) - 1))
    return xs[k]

def stats(path):
    xs = [float(l.split("\t")[0]) for l in open(path) if l.strip()]
    xs = [x for x in xs if x == x] or [float("nan")]
    print(f"{statistics.median(xs):.1f}\t{quantile(xs, 0.9):.1f}\t{quantile(xs, 0.99):.1f}\t{min(xs):.1f}\t{max(xs):.1f}\t{len(xs)}")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[3:]
    if cmd == "baseline":
        baseline(args[0], int(args[1]), args[2])
    elif cmd == "stop":
        api("POST", f"/containers/{args[0]}/stop?t=10")
    elif cmd == "cold":
        cold(int(args[0]), args[1])
    elif cmd == "concurrent":
        concurrent(int(args[0]), args[1], int(args[2]))
    elif cmd == "wait-status":
        wait_status(int(args[0]), args[1], args[2], args[3], float(args[4]))
    elif cmd == "stats":
        stats(args[0])
PY
tool() { python3 "$tmp/coldtool.py" "$1" "$sock" "${@:2}"; }

# ---------------------------------------------------------------- baseline container
base_port="$(bench_free_port)"
docker create --name "$BASELINE" --label "$LABEL" --init -p "127.0.0.1:$base_port:8000" "$IMAGE" >/dev/null
bench_log "baseline container $BASELINE publishes 127.0.0.1:$base_port"

# ---------------------------------------------------------------- wakeproxy
token="bench-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
wp_port="$(bench_free_port)"
cat >"$tmp/wakeproxy.yaml" <<EOF
global:
  bearer_token: $token
  listen_address: 127.0.0.1
  listen_http: $wp_port
  http_redirect_to_https: false
  docker_network: ''
  connect_mode: host_port
  instance: $INSTANCE
  idle_timeout: 0
  log_level: info
services:
  - name: $SERVICE
    path: /
    image: $IMAGE
    internal_port: 8000
    health_path: /health
    idle_timeout: 0
EOF
bench_spawn "$tmp/wakeproxy.log" "$tmp/wakeproxy" proxy --config "$tmp/wakeproxy.yaml" --no-tls
wp_pid=$BENCH_LAST_PID
bench_wait_http "http://127.0.0.1:$wp_port/proxy/healthz" 10 "$wp_pid" || bench_die "wakeproxy did not start: $(cat "$tmp/wakeproxy.log")"

log_lines() { wc -l <"$tmp/wakeproxy.log"; }
# count_since LINE PATTERN: log lines after line LINE that contain PATTERN.
count_since() { tail -n +"$(($1 + 1))" "$tmp/wakeproxy.log" | grep -c -- "$2" || true; }
# ready_ms_since LINE: wakeproxy's own "ready at ... after N ms" after line LINE.
ready_ms_since() { tail -n +"$(($1 + 1))" "$tmp/wakeproxy.log" | sed -n 's/.* ready at .* after \([0-9]*\) ms.*/\1/p' | tail -n 1; }

stop_service() { # docker stop, then wait until wakeproxy's status says stopped
    docker stop -t 10 "$SERVICE" >/dev/null
    tool wait-status "$wp_port" "$token" "$SERVICE" stopped 30
}

failed=0
check_status() { # FILE WHAT: every line's second field must be 200
    local bad
    bad="$(awk -F'\t' '$2 != "200"' "$1" | wc -l)"
    if [[ "$bad" != 0 ]]; then
        bench_log "FAIL: $2: $bad request(s) not answered 200: $(awk -F'\t' '$2 != "200" {print $2}' "$1" | sort | uniq -c | tr '\n' ' ')"
        failed=1
    fi
}

# First request ever: the container does not exist yet (create + start).
mark="$(log_lines)"
tool cold "$wp_port" "$token" >"$tmp/first.tsv"
check_status "$tmp/first.tsv" "first request"
first_ms="$(cut -f1 "$tmp/first.tsv")"
first_ready="$(ready_ms_since "$mark")"
bench_log "first request (create + start): TTFB $first_ms ms (wakeproxy: ready after ${first_ready:-?} ms)"
stop_service

# ---------------------------------------------------------------- (a) and (b), interleaved
: >"$tmp/api.tsv"; : >"$tmp/cli.tsv"; : >"$tmp/wp.tsv"; : >"$tmp/wp-ready.tsv"
for ((i = 1; i <= N; i++)); do
    bench_wait_quiet "${QUIET_WAIT:-60}" "${QUIET_PCT:-25}" || bench_log "the machine did not quieten: measuring anyway"
    a="$(tool baseline "$BASELINE" "$base_port" api)"; echo "$a" >>"$tmp/api.tsv"
    tool stop "$BASELINE"
    c="$(tool baseline "$BASELINE" "$base_port" cli)"; echo "$c" >>"$tmp/cli.tsv"
    tool stop "$BASELINE"
    mark="$(log_lines)"
    tool cold "$wp_port" "$token" >"$tmp/one.tsv"
    cat "$tmp/one.tsv" >>"$tmp/wp.tsv"
    r="$(ready_ms_since "$mark")"; echo "${r:-nan}" >>"$tmp/wp-ready.tsv"
    bench_log "run $i/$N: baseline API $a ms, baseline CLI $c ms, wakeproxy TTFB $(cut -f1 "$tmp/one.tsv") ms (its own ready-after: ${r:-?} ms)"
    stop_service
done
check_status "$tmp/wp.tsv" "(b) cold requests"

# ---------------------------------------------------------------- (c) concurrent
# events_between T0 T1 ACTION: Docker events of our label in that window.
events_between() {
    docker events --since "$1" --until "$2" --filter "label=$LABEL" --filter "container=$SERVICE" \
        --filter "event=$3" --format '{{.Action}}' | wc -l
}
run_concurrent() { # NAME CREATES (containers it must create: 0 or 1)
    local name="$1" creates="$2" t0 t1 mark
    bench_wait_quiet "${QUIET_WAIT:-60}" "${QUIET_PCT:-25}" || true
    mark="$(log_lines)"
    t0="$(date +%s.%N)"
    tool concurrent "$wp_port" "$token" "$CONCURRENT" >"$tmp/c-$name.tsv"
    sleep 1
    t1="$(date +%s.%N)"
    check_status "$tmp/c-$name.tsv" "(c) $name"
    count_since "$mark" 'created container' >"$tmp/c-$name.created"
    count_since "$mark" ' ready at ' >"$tmp/c-$name.ready"
    events_between "$t0" "$t1" create >"$tmp/c-$name.ev-create"
    events_between "$t0" "$t1" start >"$tmp/c-$name.ev-start"
    bench_log "(c) $name: $(tool stats "$tmp/c-$name.tsv" | awk -F'\t' '{print "TTFB p50 " $1 " ms, p99 " $3 " ms, max " $5 " ms"}'); " \
        "created $(cat "$tmp/c-$name.created") / started $(cat "$tmp/c-$name.ev-start") (Docker events), ready lines $(cat "$tmp/c-$name.ready")"
    if [[ "$(cat "$tmp/c-$name.ev-start")" != 1 || "$(cat "$tmp/c-$name.ready")" != 1 ||
        "$(cat "$tmp/c-$name.ev-create")" != "$creates" ]]; then
        bench_log "FAIL: (c) $name: expected exactly one container start and $creates creation(s)"
        failed=1
    fi
}
run_concurrent stopped 0
stop_service
docker rm "$SERVICE" >/dev/null   # now the first request must create it again
run_concurrent removed 1

# ---------------------------------------------------------------- report
read -r api_med api_p90 _ api_min api_max _ < <(tool stats "$tmp/api.tsv")
read -r cli_med cli_p90 _ cli_min cli_max _ < <(tool stats "$tmp/cli.tsv")
read -r wp_med wp_p90 _ wp_min wp_max _ < <(tool stats "$tmp/wp.tsv")
read -r rd_med rd_p90 _ rd_min rd_max _ < <(tool stats "$tmp/wp-ready.tsv")
diff_med="$(awk -v a="$wp_med" -v b="$api_med" 'BEGIN {printf "%.1f", a - b}')"
diff_p90="$(awk -v a="$wp_p90" -v b="$api_p90" 'BEGIN {printf "%.1f", a - b}')"
diff_min="$(awk -v a="$wp_min" -v b="$api_min" 'BEGIN {printf "%.1f", a - b}')"
after_ready="$(paste "$tmp/wp.tsv" "$tmp/wp-ready.tsv" | awk -F'\t' '$3 == $3 + 0 {print $1 - $3}' | sort -n |
    awk '{a[NR] = $1} END {printf "%.1f", NR ? (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) : 0}')"
verdict="$(awk -v d="$diff_med" 'BEGIN {print (d <= 25 ? "met" : "missed")}')"
row_c() { # NAME LABEL
    local s
    s="$(tool stats "$tmp/c-$1.tsv")"
    IFS=$'\t' read -r med _ p99 _ max n <<<"$s"
    echo "| $2 | $n | $med ms | $p99 ms | $max ms | $(cat "$tmp/c-$1.created") / $(cat "$tmp/c-$1.ev-create") | $(cat "$tmp/c-$1.ready") / $(cat "$tmp/c-$1.ev-start") |"
}
{
    echo "# wakeproxy cold start ($(date -u +%Y-%m-%d))"
    echo
    echo "- machine: $(bench_machine); Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), storage driver $(docker info --format '{{.Driver}}' 2>/dev/null)"
    echo "- wakeproxy $rev; image $IMAGE; command: \`N=$N CONCURRENT=$CONCURRENT scripts/bench-coldstart.sh\`"
    echo "- runs of (a) and (b) interleaved; medians and p90 (nearest rank) of $N runs each"
    echo
    echo "| measurement | median | p90 | min | max |"
    echo "|---|---:|---:|---:|---:|"
    echo "| (a) baseline: Engine API start → first HTTP answer on /health (1 ms polls) | $api_med ms | $api_p90 ms | $api_min ms | $api_max ms |"
    echo "| (a') baseline with the \`docker start\` CLI | $cli_med ms | $cli_p90 ms | $cli_min ms | $cli_max ms |"
    echo "| (b) wakeproxy: TTFB of a request to the stopped service | $wp_med ms | $wp_p90 ms | $wp_min ms | $wp_max ms |"
    echo "| (b) wakeproxy's own log: start → ready | $rd_med ms | $rd_p90 ms | $rd_min ms | $rd_max ms |"
    echo "| **(b) − (a): wakeproxy's overhead** | **$diff_med ms** | $diff_p90 ms | $diff_min ms | |"
    echo
    echo "Target: wakeproxy TTFB minus baseline ≤ 25 ms (median): **$verdict**. From \"ready\" in wakeproxy's log to the"
    echo "first byte at the client took $after_ready ms (median): the forward itself."
    echo "The first request ever (container created, then started) took $first_ms ms (wakeproxy: ready after ${first_ready:-?} ms)."
    echo
    echo "(c) $CONCURRENT requests sent at the same moment:"
    echo
    echo "| state before | requests | TTFB p50 | TTFB p99 | max | created (log / Docker events) | started (ready log lines / Docker start events) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    row_c stopped "container stopped"
    row_c removed "container removed"
    echo
    if ((failed)); then echo "**A correctness check failed: see the log above.**"; else echo "All requests were answered 200; each burst caused exactly one container start."; fi
} >"$OUT/coldstart.md"
cp "$tmp/wakeproxy.log" "$OUT/coldstart-wakeproxy.log"
echo
cat "$OUT/coldstart.md"
bench_log "written to ${OUT#"$repo"/}/coldstart.md"
exit "$failed"
