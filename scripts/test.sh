#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests against the real binary, and the Docker
# tests against the local daemon (which must be running). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need curl || missing+=(curl)
# The browser-access test drives a real headless Chromium.
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
# TLS and ACME tests: an offline ACME server (Pebble), certbot, a TLS scanner, openssl.
need pebble || missing+=(pebble)
need pebble-challtestsrv || missing+=(pebble)
need certbot || missing+=(certbot)
need testssl || missing+=(testssl.sh)
need openssl || missing+=(openssl)
# The compose tests drive Debian's docker-compose (1.29).
need docker-compose || missing+=(docker-compose)
# The deployment test verifies the systemd unit.
need systemd-analyze || missing+=(systemd)
# The pull tests push to and pull from a real registry on 127.0.0.1.
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
# ...one of them with basic auth (bcrypt htpasswd) over TLS.
need htpasswd || missing+=(apache2-utils)
need ip || missing+=(iproute2)  # scripts/swarm-nodes.sh (tests/swarm_nodes.rs)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python packages the tests drive: a real WebSocket client and a real Prometheus text parser.
if ! python3 -c 'import websockets, sys; sys.exit(int(websockets.version.version.split(".")[0]) < 13)' 2>/dev/null; then
  echo "test.sh: installing the websockets package"
  python3 -m pip install -q 'websockets>=13'
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "test.sh: installing the prometheus_client package"
  python3 -m pip install -q prometheus_client
fi

if ! docker info >/dev/null 2>&1; then
  echo "test.sh: the Docker daemon is not reachable (${DOCKER_HOST:-unix:///var/run/docker.sock}); the Docker tests need it" >&2
  exit 1
fi

scripts/build-test-image.sh
# The whole workspace: the integration tests run the wakeproxy-testbackend binary of the
# testbackend/ member, which only a build of that package makes. --no-fail-fast: one run
# shows every failing test binary.
cargo build --workspace --all-targets
# The benchmark tests run the release binary; building it here keeps their deadlines about
# the scripts, not about a compile on a busy machine.
cargo build --release --locked --bin wakeproxy
cargo test --workspace --all-targets --no-fail-fast -- --test-threads 4
