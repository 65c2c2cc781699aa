#!/usr/bin/env bash
# Try wakeproxy on this machine: builds the demo image (wakeproxy-testbackend, FROM scratch,
# no registry needed) and wakeproxy itself, writes .quickstart/proxy.yaml with two on-demand
# services, prints what to try, and runs the proxy in the foreground on 127.0.0.1 without TLS.
# Ctrl-C stops it. Needs Rust and a running Docker daemon.
#
#   PORT=9000 scripts/quickstart.sh              # listen on 127.0.0.1:9000 (default 8080)
#   PROXY_BEARER_TOKEN=... scripts/quickstart.sh # use this token (default: a random one)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

die() { echo "quickstart: $*" >&2; exit 1; }

port="${PORT:-8080}"
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || (( 10#$port < 1 || 10#$port > 65535 )); then
    die "PORT must be a port number (1-65535), not '$port'"
fi
port=$(( 10#$port ))

if [[ -n "${PROXY_BEARER_TOKEN:-}" ]]; then
    token="$PROXY_BEARER_TOKEN"
    (( ${#token} >= 32 )) || die "PROXY_BEARER_TOKEN must be at least 32 characters (generate one with: openssl rand -hex 32)"
    [[ "$token" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "PROXY_BEARER_TOKEN may only hold letters, digits and ._~+/=-"
else
    token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH (install Rust: https://rustup.rs)"

# Checks the Docker daemon, then builds wakeproxy-testbackend:latest.
scripts/build-test-image.sh

echo "==> cargo build --release"
cargo build --release
bin="${CARGO_TARGET_DIR:-$repo/target}/release/wakeproxy"
[[ -x "$bin" ]] || die "build finished but $bin is missing"

# The config holds the token: readable by this user only.
umask 077
mkdir -p .quickstart
config=.quickstart/proxy.yaml
cat >"$config" <<EOF
# Written by scripts/quickstart.sh (rewritten on every run).
global:
  bearer_token: "$token"
  listen_address: 127.0.0.1
  listen_http: $port
  connect_mode: host_port     # containers publish on 127.0.0.1 only; the proxy runs on the host
  docker_network: ''
  instance: quickstart        # its containers carry the label wakeproxy.instance=quickstart

services:
  - name: hello
    path: /hello
    image: wakeproxy-testbackend:latest
    environment:
      NAME: hello
    health_path: /health
    idle_timeout: 60

  - name: slow
    path: /slow
    image: wakeproxy-testbackend:latest
    environment:
      NAME: slow
      STARTUP_DELAY_MS: 1500  # an app that takes 1.5 s to start listening
    health_path: /health
    idle_timeout: 30
EOF

"$bin" proxy-validate-config --config "$config" >/dev/null || die "the generated $config is invalid (see above)"

url="http://127.0.0.1:$port"
cat <<EOF

==> wakeproxy will listen on $url with the config in $repo/$config
    Try, in another terminal:

    export PROXY_BEARER_TOKEN=$token

    # cold: starts the 'hello' container, then answers (the backend echoes the request as JSON)
    curl -sS -w '\n%{http_code} in %{time_total} s\n' -H "Authorization: Bearer \$PROXY_BEARER_TOKEN" $url/hello/world
    # warm: the same container answers at once
    curl -sS -w '\n%{http_code} in %{time_total} s\n' -H "Authorization: Bearer \$PROXY_BEARER_TOKEN" $url/hello/again
    # 'slow' takes about 1.5 s to start; the request is held until it is ready
    curl -sS -w '\n%{http_code} in %{time_total} s\n' -H "Authorization: Bearer \$PROXY_BEARER_TOKEN" $url/slow/
    # without the token: 401
    curl -sS -w '\n%{http_code}\n' $url/hello/
    # every service's state, as JSON and as a table (add --follow to watch them stop when idle)
    curl -sS -H "Authorization: Bearer \$PROXY_BEARER_TOKEN" $url/proxy/status
    $bin proxy-status --server-url $url

    'hello' stops after 60 s without requests, 'slow' after 30 s. Ctrl-C stops the proxy; containers
    it started keep running until the next run adopts (and later stops) them. To remove them:
    docker rm -f \$(docker ps -aq --filter label=wakeproxy.instance=quickstart)

EOF

exec "$bin" proxy --config "$config" --no-tls
