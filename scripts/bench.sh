#!/usr/bin/env bash
# Throughput, latency, CPU and memory of wakeproxy against nginx as a reverse proxy, both in
# front of the same static nginx backend, over plain HTTP and over TLS; and wakeproxy's stripped
# binary size and its time from start to listening, against their targets. See
# docs/benchmarks.md.
#
#   scripts/bench.sh                          # full run: 3 rounds of 10 s cells (~10 minutes)
#   DURATION=3 ROUNDS=1 scripts/bench.sh      # smoke run (~2 minutes)
#
# Settings (environment): DURATION (s per measured cell, 10), ROUNDS (3), WARMUP (s of load
# before each measured cell, 2), CONNS (wrk connections, 64), SWEEP (the other connection counts
# of the keep-alive 13 B cell, "16 256 1024"; empty: no sweep), IDLE_CONNS (idle keep-alive
# connections for the memory figures, 2000), STARTS (launches for the start-to-listening time,
# 10), BENCH_OUT (target/bench), WAKEPROXY_BIN (a wakeproxy binary to measure instead of
# building this checkout's; WAKEPROXY_REV names it in the report).
#
# Context switches and syscalls per request are counted with `perf stat` attached to the loaded
# proxy during each cell's warm-up run (the tracepoint costs time on every syscall, so never
# during the measured run); with WARMUP=0 they are not counted.
#
# Layout on the 2 cores: the backend nginx and wrk on core 0, the proxies on core 1. The proxies
# run for the whole benchmark; only one is loaded at a time (the idle ones hold a few idle
# upstream connections and use no CPU). nginx serves plain HTTP and TLS from one process.
# wakeproxy runs as two processes with the same settings, because once it has a certificate its
# HTTP port only redirects (or answers 426): one with --no-tls for the plain cells, one with the
# certificate for the TLS cells; each cell counts the CPU and memory of the process it loads.
# Cells run interleaved: for each round, for each cell, nginx then wakeproxy.
#
# Results: a table on stdout and in $BENCH_OUT/results.md; every wrk output and the raw
# measurements (raw.tsv, memory.tsv, startup.tsv) next to it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # read by bench_die
BENCH_NAME=bench
# shellcheck source=scripts/lib/bench-common.sh
source "$repo/scripts/lib/bench-common.sh"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2}"
CONNS="${CONNS:-64}"
SWEEP="${SWEEP-16 256 1024}"
IDLE_CONNS="${IDLE_CONNS:-2000}"
STARTS="${STARTS:-10}"
OUT="${BENCH_OUT:-$repo/target/bench}"
# The machine may be shared: before each cell wait (up to QUIET_WAIT s) until other processes
# use at most QUIET_PCT % of a core, and repeat a cell (up to CELL_TRIES runs) during which they
# used more than OTHER_MAX % of a core. All that waiting and repeating stops once it has taken
# QUIET_BUDGET s in total. The table marks readings that stayed disturbed.
QUIET_WAIT="${QUIET_WAIT:-60}"
QUIET_BUDGET="${QUIET_BUDGET:-900}"
QUIET_PCT="${QUIET_PCT:-15}"
OTHER_MAX="${OTHER_MAX:-15}"
CELL_TRIES="${CELL_TRIES:-3}"
CLIENT_CPU=0   # wrk and the backend
PROXY_CPU=1    # the proxy under test
# Everything the benchmark runs gets this niceness (default -20, the highest priority): on a
# machine shared with builds and tests, the scheduler then gives the benchmark its cores.
BENCH_NICE="${BENCH_NICE:--20}"
ON_CLIENT=(nice -n "$BENCH_NICE" taskset -c "$CLIENT_CPU")
ON_PROXY=(nice -n "$BENCH_NICE" taskset -c "$PROXY_CPU")

[[ "$(nproc)" -ge 2 ]] || bench_die "needs at least 2 CPUs (client+backend on 0, proxy on 1)"
bench_need nginx:nginx-light wrk:wrk perf:linux-perf taskset:util-linux openssl:openssl curl:curl python3:python3 pgrep:procps \
    strip:binutils getent:libc-bin ldd:libc-bin
command -v cargo >/dev/null || bench_die "cargo not found"
sweep_max="$CONNS"
for c in $SWEEP; do
    [[ "$c" =~ ^[1-9][0-9]*$ ]] || bench_die "SWEEP: $c is not a connection count"
    ((c > sweep_max)) && sweep_max="$c"
done

# 2,000 idle connections (and the sweep's busiest cell) need file descriptors in the proxies
# (a client and an upstream socket each) and in the clients.
fds_needed=$(((IDLE_CONNS > sweep_max ? IDLE_CONNS : sweep_max) * 2 + 512))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ "$(ulimit -n)" -ge "$fds_needed" ]] || ulimit -n "$fds_needed" ||
    bench_die "cannot raise the open-files limit to $fds_needed"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wakeproxy-bench.XXXXXX")"
cleanup() {
    bench_stop_all
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT/wrk"
rm -f "$OUT"/wrk/*.txt "$OUT/raw.tsv" "$OUT/memory.tsv" "$OUT/startup.tsv"

# ---------------------------------------------------------------- build
if [[ -n "${WAKEPROXY_BIN:-}" ]]; then
    # Another build (an earlier commit's, for a before/after comparison in one machine state).
    [[ -x "$WAKEPROXY_BIN" ]] || bench_die "WAKEPROXY_BIN=$WAKEPROXY_BIN is not an executable"
    cp "$WAKEPROXY_BIN" "$tmp/wakeproxy"
    rev="${WAKEPROXY_REV:-$("$WAKEPROXY_BIN" --version 2>/dev/null | tr ' ' _ || echo unknown)} (WAKEPROXY_BIN)"
else
    bench_log "building target/release/wakeproxy"
    (cd "$repo" && cargo build --release --locked --bin wakeproxy 2>&1 | tail -n 2) >&2
    # A private copy: a concurrent rebuild of target/ cannot swap the binary mid-run.
    cp "$repo/target/release/wakeproxy" "$tmp/wakeproxy"
    rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
fi

# Binary size. The release profile keeps line tables for backtraces (Cargo.toml: debug =
# "line-tables-only") and does not strip, so a copy is stripped; nginx's binary likewise (Debian
# ships it stripped already). Shared libraries besides glibc's are listed beside it.
cp "$tmp/wakeproxy" "$tmp/wakeproxy.stripped"
strip "$tmp/wakeproxy.stripped"
nginx_bin="$(readlink -f "$(command -v nginx)")"
cp "$nginx_bin" "$tmp/nginx.stripped"
strip "$tmp/nginx.stripped"
size_wp="$(stat -c %s "$tmp/wakeproxy.stripped")"
size_wp_built="$(stat -c %s "$tmp/wakeproxy")"
size_nginx="$(stat -c %s "$tmp/nginx.stripped")"
libs_wp="$(bench_shared_libs "$tmp/wakeproxy")"
libs_nginx="$(bench_shared_libs "$nginx_bin")"
bench_log "wakeproxy binary: $((size_wp / 1024)) KiB stripped ($((size_wp_built / 1024)) KiB as built); nginx: $((size_nginx / 1024)) KiB + shared libraries ${libs_nginx#* }"

# ---------------------------------------------------------------- files and configs
token="bench-$(openssl rand -hex 16)"
mkdir -p "$tmp/www" "$tmp/nginx-tmp"
# nginx workers run as www-data: they must be able to read www/ (mktemp made $tmp 0700).
chmod 755 "$tmp"
printf 'hello, world\n' >"$tmp/www/small"                    # 13 bytes
head -c 65536 /dev/zero | tr '\0' 'x' >"$tmp/www/big"         # 64 KiB
# Self-signed certificate for the TLS cells and the idle TLS connections: ECDSA P-256, as both
# proxies are given it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 600 "$tmp/key.pem"
# The name the TLS clients connect to. wrk sends its URL's host as SNI, and an IP address is not
# a valid SNI name (RFC 6066): rustls then logs a warning on every handshake, which clients that
# use names (browsers, curl, wrk given a name) never cause. So the TLS URLs say "localhost" when
# that name resolves to 127.0.0.1 only (curl is told to connect to 127.0.0.1 whatever the name);
# otherwise they fall back to 127.0.0.1 and the results say so.
tls_host=127.0.0.1
if [[ "$(getent ahosts localhost 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')" == "127.0.0.1 " ]]; then
    tls_host=localhost
fi

backend_port="$(bench_free_port)"
nginx_port="$(bench_free_port)"
nginx_tls_port="$(bench_free_port)"
wp_port="$(bench_free_port)"
wp_tls_port="$(bench_free_port)"
wp_tls_http_port="$(bench_free_port)"   # the TLS instance's HTTP port (bound, never used)

# Temp paths inside $tmp so nothing of the system nginx is touched.
nginx_common() {
    cat <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $tmp/$1.pid;
error_log $tmp/$1-error.log warn;
events { worker_connections 8192; }
EOF
}
nginx_temp_paths() {
    local t
    for t in client_body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $tmp/nginx-tmp/$1-$t;"; done
}

{
    nginx_common backend
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths backend)
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$backend_port backlog=4096;
        root $tmp/www;
        location / { }
    }
}
EOF
} >"$tmp/backend.conf"

# nginx_proxy_conf NAME HTTP_PORT TLS_PORT: the reverse proxy as a competent operator sets it
# up: upstream keep-alive, HTTP/1.1 upstream, no per-request access log, buffers big enough for
# a 64 KiB body (no temp file), and the same work per request as wakeproxy: bearer token check,
# token removed, X-Forwarded-* set.
#
# TLS as wakeproxy's (src/tls/mod.rs: rustls with the ring provider's defaults): TLS 1.3 and
# 1.2; the same cipher suites in the same order, the server's order winning (rustls:
# ignore_client_order); the same key-exchange groups in the same order; an ECDSA P-256
# certificate; ALPN http/1.1 (nginx without http2 offers only that); 16 KiB records (both
# defaults). Session resumption on in both, from a server-side cache and without ticket keys:
# rustls' default is a 256-entry in-memory session cache, TLS 1.2 session IDs and 2 stateful
# TLS 1.3 tickets per handshake (no ticketer); nginx with `ssl_session_tickets off` and a shared
# cache does the same (OpenSSL then sends 2 stateful TLS 1.3 tickets). wrk resumes the previous
# session on every new connection, so this matters in the new-connection cell.
nginx_proxy_conf() {
    nginx_common "$1"
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$1")
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    map \$http_authorization \$bench_denied { "Bearer $token" 0; default 1; }
    upstream backend {
        server 127.0.0.1:$backend_port;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        listen 127.0.0.1:$3 ssl backlog=4096;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256;
        ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;
        location / {
            if (\$bench_denied) { return 401; }
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
        }
    }
}
EOF
}
nginx_proxy_conf proxy "$nginx_port" "$nginx_tls_port" >"$tmp/proxy.conf"

# wakeproxy_conf HTTP_PORT [HTTPS_PORT]: one upstream service to the backend; with HTTPS_PORT
# also the certificate (then the HTTP port answers only /proxy/healthz, ACME and 426: the TLS
# cells use the HTTPS port alone).
wakeproxy_conf() {
    cat <<EOF
global:
  bearer_token: $token
  listen_address: 127.0.0.1
  listen_http: $1
  http_redirect_to_https: false
  log_level: warn          # no per-request access log
  max_connections: $((IDLE_CONNS + sweep_max + 1024))
  max_connections_per_ip: $((IDLE_CONNS + sweep_max + 1024))   # every client is 127.0.0.1
EOF
    if [[ -n "${2:-}" ]]; then
        cat <<EOF
  listen_https: $2
  tls_certfile: $tmp/cert.pem
  tls_keyfile: $tmp/key.pem
EOF
    fi
    cat <<EOF
services:
  - name: static
    path: /
    upstream: 127.0.0.1:$backend_port
EOF
}
wakeproxy_conf "$wp_port" >"$tmp/wakeproxy.yaml"
wakeproxy_conf "$wp_tls_http_port" "$wp_tls_port" >"$tmp/wakeproxy-tls.yaml"

# ---------------------------------------------------------------- helpers in python
cat >"$tmp/benchtool.py" <<'PY'
"""Parses wrk output, holds idle connections, checks TLS, times start-up, renders the report."""
import json, os, re, socket, ssl, statistics, subprocess, sys, time

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

def wrk(path):
    t = open(path).read()
    def lat(p):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % p, t, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    m = re.search(r"^\s*(\d+) requests in", t, re.M)
    reqs = int(m.group(1)) if m else 0
    m = re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errs = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    non2xx = int(m.group(1)) if m else 0
    print(f"{rps:.1f}\t{lat(50):.0f}\t{lat(99):.0f}\t{reqs}\t{errs}\t{non2xx}")

def client_tls(max_version=None):
    """A TLS client context for the benchmark's self-signed certificate: no verification (the
    peer is always 127.0.0.1), ALPN http/1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    if max_version:
        ctx.maximum_version = max_version
    return ctx

def connect(port, ctx, tls_host, session=None):
    """A connection to 127.0.0.1:port, over TLS (SNI tls_host) when ctx is given."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if ctx:
        s = ctx.wrap_socket(s, server_hostname=tls_host, session=session)
    return s

def request(port, tls_host, token, close):
    host = tls_host or "127.0.0.1"
    return (f"GET /small HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()

def read_answer(s, what):
    """Reads one answer with a Content-Length body; exits unless it is a 200."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"{what} closed before the answer")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        sys.exit(f"{what}: status {status.decode()}")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"{what} closed mid-body")
        body += chunk

def hold(port, n, token, ready_file, seconds, tls_host=""):
    """Opens n keep-alive connections (over TLS when tls_host is given), one authorised
    GET /small on each, keeps them open."""
    ctx = client_tls() if tls_host else None
    req = request(port, tls_host, token, False)
    socks = []
    for _ in range(n):
        s = connect(port, ctx, tls_host)
        s.sendall(req)
        read_answer(s, f"connection {len(socks)}")
        socks.append(s)
    with open(ready_file, "w") as f:
        f.write(f"{len(socks)}\n")
    time.sleep(seconds)  # bounded: the script reads memory meanwhile, then stops us

def tlsinfo(port, tls_host, token):
    """What a TLS client gets: version and suite, ALPN, and whether a second connection resumes
    the first one's session (TLS 1.3, then TLS 1.2 only). Two tab-separated fields."""
    out = {}
    for name, maxv in (("1.3", None), ("1.2", ssl.TLSVersion.TLSv1_2)):
        ctx = client_tls(maxv)
        got = []
        session = None
        for _ in range(2):
            s = connect(port, ctx, tls_host, session)
            s.sendall(request(port, tls_host, token, True))
            read_answer(s, f"TLS {name} check")
            # The whole answer is read, so TLS 1.3 tickets sent before it have been processed.
            got.append((s.version(), s.cipher()[0], s.selected_alpn_protocol(), s.session_reused))
            session = s.session
            s.close()
        out[name] = got
    first = out["1.3"][0]
    res = lambda g: "yes" if g[1][3] else "no"
    print(f"{first[0]} {first[1]}\tALPN {first[2]}; session resumption: TLS 1.3 {res(out['1.3'])}, "
          f"TLS 1.2 {res(out['1.2'])} ({out['1.2'][0][1]})")

def startup(spec_file, n, proxy_cpu, out):
    """Launches each program of spec_file n times (interleaved) and times spawn → first
    successful TCP connect to its port (polled every 1 ms); stops it again by its PID."""
    specs = json.load(open(spec_file))
    mine = os.sched_getaffinity(0)
    with open(out, "w") as f:
        f.write("# program\trun\tms\n")
        for run in range(1, int(n) + 1):
            for sp in specs:
                ms = start_once(sp, int(proxy_cpu), mine)
                f.write(f"{sp['label']}\t{run}\t{ms:.2f}\n")
                f.flush()
                print(f"start {run}/{n} {sp['label']}: listening after {ms:.1f} ms", file=sys.stderr)

def start_once(sp, proxy_cpu, mine):
    log = open(sp["log"], "ab")
    # The child is forked on the proxy core (it inherits this affinity and our niceness); we
    # poll from the client core.
    os.sched_setaffinity(0, {proxy_cpu})
    try:
        t0 = time.monotonic()
        p = subprocess.Popen(sp["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        os.sched_setaffinity(0, mine)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", sp["port"]), timeout=1).close()
                return (time.monotonic() - t0) * 1000
            except OSError:
                if p.poll() is not None:
                    sys.exit(f"{sp['label']} exited ({p.returncode}) before listening: see {sp['log']}:\n"
                             + open(sp["log"], errors="replace").read()[-2000:])
                if time.monotonic() - t0 > 10:
                    sys.exit(f"{sp['label']} not listening on {sp['port']} after 10 s")
                time.sleep(0.001)
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")

def counted(p, data, cells, labels, meta):
    """Context switches and syscalls per request, counted during the warm-up runs."""
    p("Per request, counted by `perf stat -e context-switches,raw_syscalls:sys_enter` attached to the loaded "
      "proxy (nginx: master and worker; wakeproxy: every thread) during each cell's warm-up run, medians over "
      "the rounds" + (f" ({meta['count_note']})" if meta.get("count_note") else "") + ":")
    p("")
    p("| cell | nginx switches/req | wakeproxy switches/req | nginx syscalls/req | wakeproxy syscalls/req |")
    p("|---|---:|---:|---:|---:|")
    f = lambda x: f"{x:.2f}" if x == x else "-"
    for cell in cells:
        n, w = data[cell].get("nginx", {}), data[cell].get("wakeproxy", {})
        g = lambda d, k: med([v[k] for v in d.values()])
        p(f"| {labels.get(cell, cell)} | {f(g(n, 'cs'))} | {f(g(w, 'cs'))} | {f(g(n, 'sc'))} | {f(g(w, 'sc'))} |")
    p("")

def sweep(p, data, meta):
    """The keep-alive 13 B cell at each connection count, side by side."""
    rows = sorted(((int(c), cell) for cell, c in (e.split("|") for e in meta.get("sweep", "").split(";") if e)
                   if cell in data))
    if len(rows) < 2:
        return
    p("Connection sweep, keep-alive 13 B (medians over the rounds; ratio as above):")
    p("")
    p("| connections | nginx req/s | wakeproxy req/s | ratio | nginx p99 | wakeproxy p99 | p99 ratio | nginx µs/req | wakeproxy µs/req |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for conns, cell in rows:
        n, w = data[cell].get("nginx", {}), data[cell].get("wakeproxy", {})
        g = lambda d, k: med([v[k] for v in d.values()])
        ratios = [w[k]["rps"] / n[k]["rps"] for k in w if k in n and n[k]["rps"]]
        p99r = [w[k]["p99"] / n[k]["p99"] for k in w if k in n and n[k]["p99"]]
        p(f"| {conns:,} | {g(n, 'rps'):,.0f} | {g(w, 'rps'):,.0f} | {med(ratios):.2f}× | {g(n, 'p99')/1000:.2f} ms | "
          f"{g(w, 'p99')/1000:.2f} ms | {med(p99r):.2f}× | {g(n, 'us_req'):.1f} | {g(w, 'us_req'):.1f} |")
    p("")

def report(raw, memory, startup_tsv, meta_file):
    meta = dict(line.rstrip("\n").split("=", 1) for line in open(meta_file) if "=" in line)
    rows = [l.rstrip("\n").split("\t") for l in open(raw) if not l.startswith("#")]
    # round cell proxy rps p50 p99 reqs errs non2xx proxy_ticks rss_kib core0_busy% other_load% tries
    data = {}
    for r in rows:
        rnd, cell, proxy = r[0], r[1], r[2]
        v = dict(rps=float(r[3]), p50=float(r[4]), p99=float(r[5]), reqs=int(r[6]), errs=int(r[7]),
                 non2xx=int(r[8]), ticks=int(r[9]), rss=int(r[10]), c0=float(r[11]), other=float(r[12]),
                 tries=int(r[13]), cs=float(r[14]) if len(r) > 15 else float("nan"),
                 sc=float(r[15]) if len(r) > 15 else float("nan"))
        v["pcore"] = v["ticks"] * 100 / int(meta["clk_tck"]) / float(meta["duration"])
        v["us_req"] = v["ticks"] * 1e6 / int(meta["clk_tck"]) / v["reqs"] if v["reqs"] else float("nan")
        data.setdefault(cell, {}).setdefault(proxy, {})[rnd] = v
    cells = list(dict.fromkeys(r[1] for r in rows))
    other_max = float(meta["other_max"])
    labels = dict(l.split("|", 1) for l in meta.get("cells", "").split(";") if "|" in l)
    out = []
    p = out.append
    p(f"# wakeproxy vs nginx: reverse-proxy benchmark ({meta['date']})")
    p("")
    p(f"- machine: {meta['machine']}")
    p(f"- wakeproxy {meta['rev']}, {meta['nginx']}, {meta['wrk']}")
    p(f"- command: `{meta['command']}`")
    p(f"- wrk -t1 -c{meta['conns']} -d{meta['duration']}s --latency on core 0 (after {meta['warmup']} s warm-up), "
      f"static nginx backend on core 0, proxy under test on core 1; {meta['rounds']} interleaved round(s), medians shown")
    p(f"- TLS cells: wrk to https://{meta['tls_host']}:PORT; nginx serves them from the same process as the plain "
      "cells, wakeproxy from a second process with the certificate (with TLS on, its HTTP port only redirects); "
      "each cell counts the CPU and memory of the process it loads")
    p("- ratio = median over rounds of (wakeproxy req/s ÷ nginx req/s in the same round); "
      "µs/req = the proxy's own CPU (utime+stime) per request; CPU ratio = median over rounds of "
      "(wakeproxy µs/req ÷ nginx µs/req); proxy core % = the proxy's CPU as a share of its core; core 0 % = busy share of the client core (near 100: "
      "wrk and the backend cap req/s, and µs/req is the fairer comparison)")
    p("")
    p("| cell | nginx req/s | wakeproxy req/s | ratio | nginx p50 | wakeproxy p50 | nginx p99 | wakeproxy p99 | nginx µs/req | wakeproxy µs/req | CPU ratio | proxy core % (n/w) | core 0 % (n/w) | errors (n/w) |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    def ms(us):
        return f"{us/1000:.2f} ms" if us == us else "-"
    for cell in cells:
        n, w = data[cell].get("nginx", {}), data[cell].get("wakeproxy", {})
        ratios = [w[k]["rps"] / n[k]["rps"] for k in w if k in n and n[k]["rps"]]
        cpu_ratios = [w[k]["us_req"] / n[k]["us_req"] for k in w if k in n and n[k]["us_req"]]
        g = lambda d, f: med([v[f] for v in d.values()])
        err = lambda d: sum(v["errs"] + v["non2xx"] for v in d.values())
        mark = " †" if any(v["other"] > other_max for d in (n, w) for v in d.values()) else ""
        p(f"| {labels.get(cell, cell)}{mark} | {g(n,'rps'):,.0f} | {g(w,'rps'):,.0f} | {med(ratios):.2f}× | "
          f"{ms(g(n,'p50'))} | {ms(g(w,'p50'))} | {ms(g(n,'p99'))} | {ms(g(w,'p99'))} | "
          f"{g(n,'us_req'):.1f} | {g(w,'us_req'):.1f} | {med(cpu_ratios):.2f}× | "
          f"{g(n,'pcore'):.0f}/{g(w,'pcore'):.0f} | {g(n,'c0'):.0f}/{g(w,'c0'):.0f} | {err(n)}/{err(w)} |")
    p("")
    all_v = [v for c in data.values() for d in c.values() for v in d.values()]
    worst = max(v["other"] for v in all_v)
    repeats = sum(v["tries"] - 1 for v in all_v)
    counted(p, data, cells, labels, meta)
    sweep(p, data, meta)
    p(f"Other processes on the machine used at most {worst:.0f}% of a core during a kept reading "
      f"({repeats} reading(s) were repeated because other load exceeded {other_max:.0f}%)"
      + ("; † marks cells with a reading still disturbed by other load." if worst > other_max else "."))
    p("")
    # what the TLS cells negotiated, as a client sees it
    tn, tw = meta.get("tls_nginx", "-"), meta.get("tls_wakeproxy", "-")
    if tn == tw:
        p(f"TLS, the same with both proxies (checked before the load): {tn}.")
    else:
        p(f"TLS DIFFERS between the proxies (checked before the load), so the TLS cells do not compare like with like: "
          f"nginx: {tn}; wakeproxy: {tw}.")
    if meta.get("tls_host") != "localhost":
        p("The TLS URLs use 127.0.0.1 (localhost does not resolve to 127.0.0.1 only here): wrk sends it as SNI, "
          "and rustls logs a warning for every such handshake, which adds to wakeproxy's TLS figures.")
    p("")
    # spread of the readings, as the notes advise
    p("Spread of req/s over the rounds ((max − min) ÷ median): " + ", ".join(
        f"{labels.get(c, c)}: n {spread([v['rps'] for v in data[c].get('nginx', {}).values()])}, "
        f"w {spread([v['rps'] for v in data[c].get('wakeproxy', {}).values()])}" for c in cells) + ".")
    p("")
    # size and start-up against the targets
    starts = {}
    for l in open(startup_tsv):
        if l.startswith("#") or not l.strip():
            continue
        prog, _, t = l.rstrip("\n").split("\t")
        starts.setdefault(prog, []).append(float(t))
    mib_b = lambda b: f"{b/1048576:.2f} MiB"
    def libs(v):
        size, _, names = v.partition(" ")
        return f"{mib_b(int(size))} ({names.replace(',', ', ')})" if names else "none"
    def st(prog):
        xs = starts.get(prog)
        return f"{statistics.median(xs):.1f} ms / {max(xs):.1f} ms" if xs else "-"
    def met_start(prog):
        xs = starts.get(prog)
        if not xs:
            return "-"
        return "yes" if max(xs) < 50 else ("median only" if statistics.median(xs) < 50 else "**no**")
    size_wp = int(meta["size_wp"])
    n_starts = meta["starts"]
    p("| footprint | target | wakeproxy | met | nginx |")
    p("|---|---|---:|---|---:|")
    p(f"| release binary, stripped | < 8 MiB | {mib_b(size_wp)} | {'yes' if size_wp < 8 * 1048576 else '**no**'} | {mib_b(int(meta['size_nginx']))} |")
    p(f"| shared libraries besides glibc's (not in the size above) | | {libs(meta['libs_wp'])} | | {libs(meta['libs_nginx'])} |")
    p(f"| start to listening, plain HTTP (median / max of {n_starts}) | < 50 ms | {st('wakeproxy')} | {met_start('wakeproxy')} | {st('nginx')} |")
    p(f"| start to listening, with the certificate: HTTPS port (median / max of {n_starts}) | < 50 ms | {st('wakeproxy-tls')} | {met_start('wakeproxy-tls')} | (binds both ports at once: the row above) |")
    p("")
    p(f"Binary as built (line tables kept, Cargo.toml `debug = \"line-tables-only\"`): {mib_b(int(meta['size_wp_built']))}. "
      "Start to listening: from just before the spawn to the first TCP connect that succeeds on the port, polled every 1 ms "
      "(the process on the proxy core, the poller on the client core); each launch is stopped (SIGTERM) before the next. "
      "\"met\" is yes when even the slowest launch is under the target.")
    p("")
    # memory
    mem = {}
    for l in open(memory):
        if l.startswith("#"):
            continue
        proxy, what, rss, threads, kern = l.rstrip("\n").split("\t")
        mem.setdefault(proxy, {})[what] = (int(rss), threads, int(kern))
    p("| memory (RSS; nginx = master + worker) | nginx | wakeproxy |")
    p("|---|---:|---:|")
    mib = lambda k: f"{k/1024:.1f} MiB"
    same = "(the same process)"
    def row(label, key, nkey=None):
        n, w = mem.get("nginx", {}).get(nkey or key), mem.get("wakeproxy", {}).get(key)
        p(f"| {label} | {mib(n[0]) if n else same} | {mib(w[0]) if w else '-'} |")
    row("idle, before any load", "idle")
    row("idle, before any load: wakeproxy's TLS process", "idle-tls")
    for cell in cells:
        n = med([v["rss"] for v in data[cell].get("nginx", {}).values()])
        w = med([v["rss"] for v in data[cell].get("wakeproxy", {}).values()])
        p(f"| end of load cell: {labels.get(cell, cell)} (median) | {mib(n)} | {mib(w)} |")
    row("idle again, after all load cells", "after")
    row("idle again, after all load cells: wakeproxy's TLS process", "after-tls")
    conns = meta["idle_conns"]
    def per_conn(proxy, key, i):
        d = mem.get(proxy, {})
        if key not in d or key + "-pre" not in d:
            return "-"
        return f"{(d[key][i] - d[key + '-pre'][i]) / int(conns):.1f} KiB"
    for key, kind in (("conns", "plain HTTP"), ("conns-tls", "TLS")):
        row(f"with {conns} idle keep-alive connections, {kind}", key)
        p(f"| RSS added per idle {kind} connection | {per_conn('nginx', key, 0)} | {per_conn('wakeproxy', key, 0)} |")
        p(f"| kernel stacks + page tables added per idle {kind} connection (system-wide /proc/meminfo, not in RSS) | "
          f"{per_conn('nginx', key, 2)} | {per_conn('wakeproxy', key, 2)} |")
        tw = mem.get("wakeproxy", {}).get(key)
        tn = mem.get("nginx", {}).get(key)
        p(f"| threads with {conns} idle {kind} connections | {tn[1] if tn else '-'} (worker) | {tw[1] if tw else '-'} |")
    p("")
    p("Per idle connection: the growth from a snapshot taken just before the connections were opened. "
      "wakeproxy's plain process was stopped after its idle connections were measured, so its parked threads "
      "could not exit during the TLS measurement and shrink the system-wide kernel figure.")
    p("")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)

def spread(xs):
    if len(xs) < 2:
        return "-"
    m = statistics.median(xs)
    return f"{(max(xs) - min(xs)) / m * 100:.0f}%" if m else "-"

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "wrk":
        wrk(sys.argv[2])
    elif cmd == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6]),
             sys.argv[7] if len(sys.argv) > 7 else "")
    elif cmd == "tlsinfo":
        tlsinfo(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "startup":
        startup(*sys.argv[2:6])
    elif cmd == "report":
        report(*sys.argv[2:6])
PY
tool() { python3 "$tmp/benchtool.py" "$@"; }

quiet_spent=0   # seconds spent waiting for quiet and repeating disturbed cells

# ---------------------------------------------------------------- start to listening
# Before the servers run: each program is launched STARTS times (interleaved) with the bench
# configuration on fresh ports, and the time from spawn to the first TCP connect that succeeds on
# its port is taken (polled every 1 ms). wakeproxy: with --no-tls (HTTP port) and with the
# certificate (HTTPS port); nginx: the same proxy configuration (it binds both ports at once).
st_wp_port="$(bench_free_port)"
st_wp_tls_http_port="$(bench_free_port)"
st_wp_tls_port="$(bench_free_port)"
st_nginx_port="$(bench_free_port)"
st_nginx_tls_port="$(bench_free_port)"
wakeproxy_conf "$st_wp_port" >"$tmp/startup-wakeproxy.yaml"
wakeproxy_conf "$st_wp_tls_http_port" "$st_wp_tls_port" >"$tmp/startup-wakeproxy-tls.yaml"
nginx_proxy_conf startup "$st_nginx_port" "$st_nginx_tls_port" >"$tmp/startup-nginx.conf"
cat >"$tmp/startup.json" <<EOF
[
  {"label": "wakeproxy", "port": $st_wp_port, "log": "$tmp/startup-wakeproxy.log",
   "argv": ["$tmp/wakeproxy", "proxy", "--config", "$tmp/startup-wakeproxy.yaml", "--no-tls"]},
  {"label": "wakeproxy-tls", "port": $st_wp_tls_port, "log": "$tmp/startup-wakeproxy-tls.log",
   "argv": ["$tmp/wakeproxy", "proxy", "--config", "$tmp/startup-wakeproxy-tls.yaml"]},
  {"label": "nginx", "port": $st_nginx_port, "log": "$tmp/startup-nginx.log",
   "argv": ["$nginx_bin", "-p", "$tmp", "-e", "$tmp/startup-error.log", "-c", "$tmp/startup-nginx.conf"]}
]
EOF
started=$SECONDS
bench_wait_quiet "$((QUIET_BUDGET < QUIET_WAIT ? QUIET_BUDGET : QUIET_WAIT))" "$QUIET_PCT" ||
    bench_log "the machine did not quieten: measuring anyway"
quiet_spent=$((SECONDS - started))
bench_log "start to listening: $STARTS launches each of wakeproxy (plain, TLS) and nginx"
# In the foreground: the helper stops each launch itself (also on Ctrl-C) before the next.
"${ON_CLIENT[@]}" python3 "$tmp/benchtool.py" startup "$tmp/startup.json" "$STARTS" "$PROXY_CPU" "$OUT/startup.tsv" ||
    bench_die "start-to-listening measurement failed"

# ---------------------------------------------------------------- start the servers
bench_log "starting the backend nginx on core $CLIENT_CPU (127.0.0.1:$backend_port)"
bench_spawn "$tmp/backend.out" "${ON_CLIENT[@]}" nginx -p "$tmp" -e "$tmp/backend-error.log" -c "$tmp/backend.conf"
backend_pid=$BENCH_LAST_PID
bench_wait_http "http://127.0.0.1:$backend_port/small" 10 "$backend_pid" ||
    bench_die "backend nginx did not start: $(cat "$tmp/backend.out" "$tmp/backend-error.log" 2>/dev/null)"

bench_log "starting nginx (reverse proxy) on core $PROXY_CPU (127.0.0.1:$nginx_port, TLS :$nginx_tls_port)"
bench_spawn "$tmp/proxy.out" "${ON_PROXY[@]}" nginx -p "$tmp" -e "$tmp/proxy-error.log" -c "$tmp/proxy.conf"
nginx_pid=$BENCH_LAST_PID
bench_wait_http "http://127.0.0.1:$nginx_port/small" 10 "$nginx_pid" ||
    bench_die "nginx proxy did not start: $(cat "$tmp/proxy.out" "$tmp/proxy-error.log" 2>/dev/null)"

bench_log "starting wakeproxy (plain, --no-tls) on core $PROXY_CPU (127.0.0.1:$wp_port)"
bench_spawn "$tmp/wakeproxy.log" "${ON_PROXY[@]}" "$tmp/wakeproxy" proxy --config "$tmp/wakeproxy.yaml" --no-tls
wp_pid=$BENCH_LAST_PID
bench_wait_http "http://127.0.0.1:$wp_port/proxy/healthz" 10 "$wp_pid" ||
    bench_die "wakeproxy did not start: $(cat "$tmp/wakeproxy.log")"

bench_log "starting wakeproxy (TLS) on core $PROXY_CPU (https://$tls_host:$wp_tls_port)"
bench_spawn "$tmp/wakeproxy-tls.log" "${ON_PROXY[@]}" "$tmp/wakeproxy" proxy --config "$tmp/wakeproxy-tls.yaml"
wp_tls_pid=$BENCH_LAST_PID
bench_wait_http "https://$tls_host:$wp_tls_port/proxy/healthz" 10 "$wp_tls_pid" ||
    bench_die "wakeproxy with TLS did not start: $(cat "$tmp/wakeproxy-tls.log")"

# PIDs whose CPU and memory count for a proxy serving a scheme (nginx: master + workers, for
# both; wakeproxy: the process of that scheme).
proxy_pids() {
    case "$1:${2:-http}" in
        nginx:*) echo "$nginx_pid $(bench_children "$nginx_pid")" ;;
        wakeproxy:http) echo "$wp_pid" ;;
        wakeproxy:https) echo "$wp_tls_pid" ;;
    esac
}
# Base URL of a proxy for a scheme; empty when the proxy cannot serve it.
proxy_url() {
    case "$1:$2" in
        nginx:http) echo "http://127.0.0.1:$nginx_port" ;;
        nginx:https) echo "https://$tls_host:$nginx_tls_port" ;;
        wakeproxy:http) echo "http://127.0.0.1:$wp_port" ;;
        wakeproxy:https) echo "https://$tls_host:$wp_tls_port" ;;
    esac
}

# Both proxies must answer the same bytes, over HTTP and TLS, before anything is measured.
# (--connect-to: whatever the URL's name, connect to 127.0.0.1.)
check_curl=(curl -s -k --connect-to ::127.0.0.1:)
for p in nginx wakeproxy; do
    for scheme in http https; do
        base="$(proxy_url "$p" "$scheme")"
        [[ -n "$base" ]] || continue
        for f in small big; do
            got="$("${check_curl[@]}" -H "Authorization: Bearer $token" -o "$tmp/check" -w '%{http_code}' "$base/$f")"
            cmp -s "$tmp/check" "$tmp/www/$f" ||
                bench_die "$p: $base/$f answered $got with $(wc -c <"$tmp/check") bytes, expected 200 with the $(wc -c <"$tmp/www/$f") bytes of www/$f: $(head -c 300 "$tmp/check")"
        done
        code="$("${check_curl[@]}" -o /dev/null -w '%{http_code}' "$base/small")"
        [[ "$code" == 401 ]] || bench_die "$p: $base/small without the token got $code, expected 401"
    done
done
bench_log "both proxies answer /small (13 B) and /big (64 KiB) over HTTP and TLS, and 401 without the token"

# tls_info PROXY: what a TLS client negotiates with it: version, suite, key exchange, ALPN, and
# whether sessions resume.
tls_info() {
    local base port kx fields
    base="$(proxy_url "$1" https)"
    port="${base##*:}"
    kx="$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$tls_host" -brief </dev/null 2>&1 |
        sed -n -e 's/^Server Temp Key: \([^,]*\).*/\1/p' -e 's/^Negotiated TLS1.3 group: \(.*\)/\1/p' || true)"
    kx="${kx%%$'\n'*}"
    fields="$(tool tlsinfo "$port" "$tls_host" "$token")" || bench_die "$1: TLS check failed"
    echo "${fields%%$'\t'*}, key exchange ${kx:-unknown}, ECDSA P-256 certificate, ${fields#*$'\t'}"
}
tls_nginx="$(tls_info nginx)"
tls_wakeproxy="$(tls_info wakeproxy)"
bench_log "TLS with nginx: $tls_nginx"
bench_log "TLS with wakeproxy: $tls_wakeproxy"

# ---------------------------------------------------------------- memory snapshots
: >"$OUT/memory.tsv"
snapshot() { # PROXY LABEL [SCHEME]
    local pids
    pids="$(proxy_pids "$1" "${3:-http}")"
    # shellcheck disable=SC2086
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(bench_rss_kib $pids)" \
        "$(bench_threads "$(echo "$pids" | awk '{print $NF}')")" "$(bench_kernel_kib)" >>"$OUT/memory.tsv"
}
sleep 1
snapshot nginx idle
snapshot wakeproxy idle
snapshot wakeproxy idle-tls https

# ---------------------------------------------------------------- load cells
# id|scheme|connection|path|label[|connections]. run_cell skips a cell a proxy has no URL for.
CELLS=(
    "ka-small|http|keep-alive|/small|keep-alive 13 B"
    "ka-big|http|keep-alive|/big|keep-alive 64 KiB"
    "close-small|http|close|/small|new connection per request, 13 B"
    "close-big|http|close|/big|new connection per request, 64 KiB"
)
# The connection sweep: the keep-alive 13 B cell at other connection counts.
for c in $SWEEP; do
    [[ "$c" == "$CONNS" ]] && continue
    CELLS+=("ka-small-c$c|http|keep-alive|/small|keep-alive 13 B, $c connections|$c")
done
TLS_CELLS=(
    "tls-ka-small|https|keep-alive|/small|TLS keep-alive 13 B"
    "tls-ka-big|https|keep-alive|/big|TLS keep-alive 64 KiB"
    "tls-close-small|https|close|/small|TLS new connection per request, 13 B"
)
CELLS+=("${TLS_CELLS[@]}")

clk_tck="$(getconf CLK_TCK)"

# What perf can count here: context switches (a software event) and, when tracefs is there (it
# is mounted when missing and we may), syscalls through the raw_syscalls:sys_enter tracepoint.
count_events=""
count_note="not counted: WARMUP=0"
if [[ "$WARMUP" != 0 ]]; then
    if ! command -v perf >/dev/null; then
        count_note="not counted: perf not found (Debian: linux-perf)"
    elif perf stat -e context-switches -p $$ -- true >/dev/null 2>&1; then
        count_events=context-switches
        count_note="syscalls not counted: the raw_syscalls tracepoint is not available"
        if [[ ! -d /sys/kernel/tracing/events/raw_syscalls && -d /sys/kernel/tracing ]]; then
            mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
        fi
        if perf stat -e raw_syscalls:sys_enter -p $$ -- true >/dev/null 2>&1; then
            count_events=context-switches,raw_syscalls:sys_enter
            count_note=""
        fi
    else
        count_note="not counted: perf may not attach to processes here (kernel.perf_event_paranoid)"
    fi
fi
[[ -z "$count_note" ]] || bench_log "context switches and syscalls per request: $count_note"

# per_request FILE REQUESTS: "switches<TAB>syscalls" per request from a `perf stat -x,` output
# ("nan" for what was not counted).
per_request() {
    awk -F, -v n="$2" '
        $3 == "context-switches" && $1 ~ /^[0-9]+$/ {cs = $1}
        $3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {sc = $1}
        END {
            printf "%s\t%s\n", (cs != "" && n > 0 ? sprintf("%.3f", cs / n) : "nan"),
                (sc != "" && n > 0 ? sprintf("%.3f", sc / n) : "nan")
        }' "$1" 2>/dev/null || printf 'nan\tnan\n'
}
# cpu_busy CPU: busy ticks of one core so far (everything but idle and iowait).
cpu_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

: >"$OUT/raw.tsv"
echo "# round cell proxy rps p50_us p99_us requests errors non2xx proxy_ticks rss_end_kib core0_busy% other_load% tries switches/req syscalls/req" >"$OUT/raw.tsv"

backend_pids() { echo "$backend_pid $(bench_children "$backend_pid")"; }

# run_cell ROUND CELL PROXY: warm-up, then one measured wrk run; repeated (up to CELL_TRIES
# times) when other processes used more than OTHER_MAX % of a core during it.
run_cell() {
    local round="$1" spec="$2" proxy="$3" id scheme conn path label conns base hdr=() pids bpids f rss_file try
    local t0 t1 b0 b1 k0 k1 w0 w1 c00 c01 sampler parsed pct0 other rps p50 p99 reqs counts=$'nan\tnan' warm
    IFS='|' read -r id scheme conn path label conns <<<"$spec"
    conns="${conns:-$CONNS}"
    base="$(proxy_url "$proxy" "$scheme")"
    [[ -n "$base" ]] || return 0
    hdr=(-H "Authorization: Bearer $token")
    [[ "$conn" == close ]] && hdr+=(-H "Connection: close")
    pids="$(proxy_pids "$proxy" "$scheme")"
    bpids="$(backend_pids)"
    f="$OUT/wrk/r${round}-${id}-${proxy}.txt"
    rss_file="$tmp/rss-$round-$id-$proxy"
    for ((try = 1; try <= CELL_TRIES; try++)); do
        local left=$((QUIET_BUDGET - quiet_spent)) started=$SECONDS
        if ((left > 0)); then
            bench_wait_quiet "$((left < QUIET_WAIT ? left : QUIET_WAIT))" "$QUIET_PCT" ||
                bench_log "the machine did not quieten: measuring anyway"
            quiet_spent=$((quiet_spent + SECONDS - started))
        fi
        started=$SECONDS
        if [[ -n "$count_events" ]]; then
            # perf counts the proxy's processes (with every thread, also those started meanwhile)
            # for as long as the warm-up wrk runs.
            warm="$OUT/wrk/r${round}-${id}-${proxy}-warmup.txt"
            "${ON_CLIENT[@]}" perf stat -x, -o "$tmp/counts" -e "$count_events" -p "$(echo $pids | tr ' ' ,)" -- \
                wrk -t1 -c"$conns" -d"${WARMUP}s" "${hdr[@]}" "$base$path" >"$warm" 2>&1 || true
            counts="$(per_request "$tmp/counts" "$(tool wrk "$warm" | cut -f4)")"
        elif [[ "$WARMUP" != 0 ]]; then
            "${ON_CLIENT[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" "${hdr[@]}" "$base$path" >/dev/null 2>&1 || true
        fi
        rm -f "$rss_file"
        # RSS half a second before the cell ends, while still under load.
        # shellcheck disable=SC2086
        (sleep "$(awk -v d="$DURATION" 'BEGIN {print (d > 1 ? d - 0.5 : d / 2)}')"; bench_rss_kib $pids >"$rss_file") &
        sampler=$!
        # shellcheck disable=SC2086
        { bench_times "$tmp/times"; t0="$(bench_cpu_ticks $pids)"; k0="$(bench_cpu_ticks $bpids)"; w0="$(bench_children_ticks "$tmp/times")"
          b0="$(bench_busy_ticks)"; c00="$(cpu_busy "$CLIENT_CPU")"; }
        "${ON_CLIENT[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${hdr[@]}" "$base$path" >"$f" 2>&1 ||
            bench_die "wrk failed against $proxy $label: $(cat "$f")"
        # shellcheck disable=SC2086
        { bench_times "$tmp/times"; t1="$(bench_cpu_ticks $pids)"; k1="$(bench_cpu_ticks $bpids)"; w1="$(bench_children_ticks "$tmp/times")"
          b1="$(bench_busy_ticks)"; c01="$(cpu_busy "$CLIENT_CPU")"; }
        wait "$sampler" 2>/dev/null || true
        # Everything busy on the machine minus the proxy, the backend and wrk: other processes.
        other="$(awk -v b=$((b1 - b0 - (t1 - t0) - (k1 - k0) - (w1 - w0))) -v d="$DURATION" -v h="$clk_tck" \
            'BEGIN {o = b / (d * h) * 100; printf "%.0f", (o < 0 ? 0 : o)}')"
        pct0="$(awk -v b=$((c01 - c00)) -v d="$DURATION" -v h="$clk_tck" 'BEGIN {printf "%.0f", b / (d * h) * 100}')"
        parsed="$(tool wrk "$f")"
        IFS=$'\t' read -r rps p50 p99 reqs _ <<<"$parsed"
        bench_log "round $round  $(printf '%-36s %-9s' "$label" "$proxy") $(printf '%9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %5.1f µs/req  other load %3s%%' \
            "$rps" "$(awk -v x="$p50" 'BEGIN {print x / 1000}')" "$(awk -v x="$p99" 'BEGIN {print x / 1000}')" \
            "$(awk -v t=$((t1 - t0)) -v h="$clk_tck" -v n="$reqs" 'BEGIN {print n ? t * 1e6 / h / n : 0}')" "$other")"
        ((other <= OTHER_MAX || try == CELL_TRIES || quiet_spent >= QUIET_BUDGET)) && break
        quiet_spent=$((quiet_spent + SECONDS - started))
        bench_log "other processes used ${other}% of a core during that cell (> ${OTHER_MAX}%): repeating it"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$id" "$proxy" "$parsed" "$((t1 - t0))" \
        "$(cat "$rss_file" 2>/dev/null || echo 0)" "$pct0" "$other" "$try" "$counts" >>"$OUT/raw.tsv"
}

cells_meta=""
sweep_meta=""
for spec in "${CELLS[@]}"; do
    IFS='|' read -r id _ _ _ label conns <<<"$spec"
    cells_meta+="$id|$label;"
    [[ "$id" == ka-small* ]] && sweep_meta+="$id|${conns:-$CONNS};"
done
total=$((ROUNDS * ${#CELLS[@]} * 2 * (DURATION + WARMUP)))
bench_log "$ROUNDS round(s) × ${#CELLS[@]} cells × 2 proxies × (${WARMUP} s warm-up + ${DURATION} s): about $((total / 60)) min $((total % 60)) s of load"
for ((round = 1; round <= ROUNDS; round++)); do
    for spec in "${CELLS[@]}"; do
        for proxy in nginx wakeproxy; do
            run_cell "$round" "$spec" "$proxy"
        done
    done
done

# ---------------------------------------------------------------- idle connections
# Let the keep-alive connections of the last cell close.
sleep 2
snapshot nginx after
snapshot wakeproxy after
snapshot wakeproxy after-tls https
hold_time=$((60 + IDLE_CONNS / 100))
# hold_idle PROXY SCHEME KEY: IDLE_CONNS idle keep-alive connections (over TLS for https), one
# authorised request on each; memory snapshots KEY-pre just before and KEY with them open.
hold_idle() {
    local proxy="$1" scheme="$2" key="$3" base port host="" ready log holder end kern0
    base="$(proxy_url "$proxy" "$scheme")"
    port="${base##*:}"
    [[ "$scheme" == https ]] && host="$tls_host"
    ready="$tmp/held-$proxy-$scheme"
    log="$tmp/hold-$proxy-$scheme.log"
    snapshot "$proxy" "$key-pre" "$scheme"
    kern0="$(bench_kernel_kib)"
    bench_log "opening $IDLE_CONNS idle keep-alive $scheme connections to $proxy"
    bench_spawn "$log" "${ON_CLIENT[@]}" python3 "$tmp/benchtool.py" hold "$port" "$IDLE_CONNS" "$token" "$ready" "$hold_time" "$host"
    holder=$BENCH_LAST_PID
    end=$((SECONDS + hold_time))
    while [[ ! -s "$ready" ]] && ((SECONDS < end)) && kill -0 "$holder" 2>/dev/null; do sleep 0.2; done
    [[ -s "$ready" ]] || bench_die "could not hold $IDLE_CONNS $scheme connections to $proxy: $(cat "$log")"
    sleep 1
    snapshot "$proxy" "$key" "$scheme"
    bench_log "$proxy holds $(cat "$ready") idle $scheme connections: RSS $(($(tail -n1 "$OUT/memory.tsv" | cut -f3) / 1024)) MiB, kernel stacks+page tables +$((($(bench_kernel_kib) - kern0) / 1024)) MiB system-wide"
    bench_stop "$holder"
    sleep 1
}
hold_idle nginx http conns
hold_idle wakeproxy http conns
# The plain wakeproxy has served its part. Stop it now: its 2,000 connection threads, parked
# once the connections close, would otherwise exit (after 60 s) during the TLS measurement and
# shrink the system-wide kernel figure.
bench_stop "$wp_pid"
sleep 1
hold_idle nginx https conns-tls
hold_idle wakeproxy https conns-tls

# ---------------------------------------------------------------- report
temp_files="$(grep -c 'buffered to a temporary file' "$tmp/proxy-error.log" 2>/dev/null || true)"
{
    echo "date=$(date -u +%Y-%m-%d)"
    echo "machine=$(bench_machine)"
    echo "rev=$rev"
    echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk=wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')"
    echo "command=DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP CONNS=$CONNS SWEEP=\"$SWEEP\" IDLE_CONNS=$IDLE_CONNS STARTS=$STARTS scripts/bench.sh"
    echo "conns=$CONNS"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "rounds=$ROUNDS"
    echo "idle_conns=$IDLE_CONNS"
    echo "starts=$STARTS"
    echo "clk_tck=$clk_tck"
    echo "other_max=$OTHER_MAX"
    echo "cells=$cells_meta"
    echo "sweep=$sweep_meta"
    echo "count_note=$count_note"
    echo "tls_host=$tls_host"
    echo "tls_nginx=$tls_nginx"
    echo "tls_wakeproxy=$tls_wakeproxy"
    echo "size_wp=$size_wp"
    echo "size_wp_built=$size_wp_built"
    echo "size_nginx=$size_nginx"
    echo "libs_wp=$libs_wp"
    echo "libs_nginx=$libs_nginx"
} >"$tmp/meta"
tool report "$OUT/raw.tsv" "$OUT/memory.tsv" "$OUT/startup.tsv" "$tmp/meta" >"$OUT/results.md"
if [[ "${temp_files:-0}" != 0 ]]; then
    echo "Note: nginx buffered $temp_files responses to a temporary file (proxy_buffers too small)." >>"$OUT/results.md"
fi
# Broken pipes are expected: wrk drops its connections, mid-response, when a cell ends.
for log in wakeproxy wakeproxy-tls; do
    wp_warn="$(grep -ciE 'warn|error' "$tmp/$log.log" || true)"
    wp_other="$(grep -iE 'warn|error' "$tmp/$log.log" | grep -civ 'broken pipe\|connection reset' || true)"
    if [[ "${wp_warn:-0}" != 0 ]]; then
        {
            echo "$log logged $wp_warn warnings/errors, $wp_other of them other than a broken pipe or reset" \
                "(wrk drops its connections mid-response when a cell ends). First ones:"
            echo '```'
            grep -m 3 -iE 'warn|error' "$tmp/$log.log" || true
            grep -iE 'warn|error' "$tmp/$log.log" | grep -m 3 -iv 'broken pipe\|connection reset' || true
            echo '```'
        } >>"$OUT/results.md"
    fi
    cp "$tmp/$log.log" "$OUT/$log.log"
done
echo
cat "$OUT/results.md"
bench_log "written to ${OUT#"$repo"/}/results.md (raw: raw.tsv, memory.tsv, startup.tsv, wrk/)"
