#!/usr/bin/env bash
# proxy-daemon driven the way deployment scripts drive it, with every exit code checked.
# Usage: daemon.sh WAKEPROXY_BINARY WORKDIR BACKEND_ADDR
set -u
bin=$1; dir=$2; backend=$3
token=daemon-test-token-b5429e5a10cd107b563c2d
fails=0
check() { # check WANT_CODE DESCRIPTION -- command...
  local want=$1 what=$2; shift 3
  local out; out=$("$@" 2>&1); local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: exit $got, wanted $want"; echo "$out" | sed 's/^/    /'; fails=$((fails+1))
  else
    echo "ok: $what (exit $got)"
  fi
  last_out=$out
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/good.yaml" <<YAML
global:
  bearer_token: $token
  listen_address: 127.0.0.1
  listen_http: $port
  shutdown_timeout: 5
services:
  - name: app
    path: /app
    upstream: $backend
YAML
cat > "$dir/broken.yaml" <<YAML
global:
  bearer_token: short
services: []
YAML

check 1 "start with a broken config fails" -- "$bin" proxy-daemon --config "$dir/broken.yaml" start
case "$last_out" in *bearer_token*) echo "ok: the error names the field";; *) echo "FAIL: no error shown: $last_out"; fails=$((fails+1));; esac
[ ! -e "$dir/wakeproxy.pid" ] || { echo "FAIL: a pid file was left by the failed start"; fails=$((fails+1)); }

check 3 "status before start: not running" -- "$bin" proxy-daemon --config "$dir/good.yaml" status
check 0 "stop when not running" -- "$bin" proxy-daemon --config "$dir/good.yaml" stop
check 0 "start" -- "$bin" proxy-daemon --config "$dir/good.yaml" start
pid=$(cat "$dir/wakeproxy.pid")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/app/x")
[ "$code" = 200 ] && echo "ok: the started proxy serves (200)" || { echo "FAIL: request through the daemon got $code"; fails=$((fails+1)); }
check 0 "start again: already running" -- "$bin" proxy-daemon --config "$dir/good.yaml" start
[ "$(cat "$dir/wakeproxy.pid")" = "$pid" ] || { echo "FAIL: a second proxy was started"; fails=$((fails+1)); }
check 0 "status while running" -- "$bin" proxy-daemon --config "$dir/good.yaml" status
check 0 "healthcheck while running" -- "$bin" healthcheck --config "$dir/good.yaml"
check 0 "reload" -- "$bin" proxy-daemon --config "$dir/good.yaml" reload
check 1 "reload with a broken config is refused" -- "$bin" proxy-daemon --config "$dir/broken.yaml" --pid-file "$dir/wakeproxy.pid" reload
check 0 "stop" -- "$bin" proxy-daemon --config "$dir/good.yaml" stop
# A zombie (exited, waiting to be reaped by whoever adopted it) counts as gone.
state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
if [ "$state" != gone ] && [ "$state" != Z ]; then echo "FAIL: pid $pid still alive after stop (state $state)"; fails=$((fails+1)); else echo "ok: the process is gone"; fi
check 3 "status after stop" -- "$bin" proxy-daemon --config "$dir/good.yaml" status
check 1 "healthcheck after stop" -- "$bin" healthcheck --config "$dir/good.yaml"
check 3 "reload when not running" -- "$bin" proxy-daemon --config "$dir/good.yaml" reload

# A stale pid file (a dead pid, then a live process that is not wakeproxy) is never trusted.
echo 999999 > "$dir/wakeproxy.pid"
check 3 "status with a stale pid file" -- "$bin" proxy-daemon --config "$dir/good.yaml" status
[ ! -e "$dir/wakeproxy.pid" ] && echo "ok: the stale pid file was removed" || { echo "FAIL: stale pid file kept"; fails=$((fails+1)); }
sleep 60 & other=$!
echo "$other" > "$dir/wakeproxy.pid"
check 0 "stop with a pid file naming another program does not kill it" -- "$bin" proxy-daemon --config "$dir/good.yaml" stop
if kill -0 "$other" 2>/dev/null; then echo "ok: the unrelated process survived"; else echo "FAIL: an unrelated process was killed"; fails=$((fails+1)); fi
kill "$other" 2>/dev/null
check 0 "restart from stopped" -- "$bin" proxy-daemon --config "$dir/good.yaml" restart
check 0 "restart while running" -- "$bin" proxy-daemon --config "$dir/good.yaml" restart
check 0 "final stop" -- "$bin" proxy-daemon --config "$dir/good.yaml" stop

echo "$((fails == 0 ? 1 : 0)) passed, $fails failed"
[ "$fails" = 0 ]
