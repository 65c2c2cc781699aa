#!/usr/bin/env python3
"""A real WebSocket client (the `websockets` package) driven by wakeproxy's integration tests.

Usage: ws_client.py MODE URL TOKEN [ARGS...]; prints one JSON object on stdout and exits 0 when
every check passed, 1 otherwise (the JSON says what failed).

Modes:
  echo                     text and binary messages of 1 B to 16 MiB, ping/pong, close both ways
  many N SECONDS EVERY     N concurrent sockets, each echoing a message every EVERY seconds
  hold SECONDS             one socket kept open (idle) for SECONDS, then closed cleanly
  unauthorised             an upgrade without the token must be refused with 401
  hold-until FILE          one socket echoing a message every 0.2 s until FILE exists, then closed cleanly

wss:// URLs: WS_CA_FILE names the CA file to verify the server with; WS_CONNECT=HOST:PORT
connects there instead of resolving the URL's host (which stays the TLS server name).
"""
import asyncio
import json
import os
import socket
import ssl
import sys
import time

from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def out(result, ok):
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


def headers(token):
    return {"Authorization": f"Bearer {token}"}


def tls(url, with_sock=True):
    """Extra connect() arguments for wss:// URLs and WS_CONNECT."""
    kw = {}
    if url.startswith("wss://") and os.environ.get("WS_CA_FILE"):
        kw["ssl"] = ssl.create_default_context(cafile=os.environ["WS_CA_FILE"])
    target = os.environ.get("WS_CONNECT")
    if target and with_sock:
        host, port = target.rsplit(":", 1)
        kw["sock"] = socket.create_connection((host, int(port)), timeout=30)
    return kw


def echo(url, token):
    sizes = [1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
    failures = []
    with connect(url, additional_headers=headers(token), max_size=None, open_timeout=30, close_timeout=10, **tls(url)) as ws:
        for n in sizes:
            data = os.urandom(n)
            ws.send(data)
            back = ws.recv(timeout=60)
            if back != data:
                failures.append(f"binary {n} bytes came back different ({len(back)} bytes)")
            text = ("é" * (n // 2 + 1))[: max(1, n // 2)]
            ws.send(text)
            back = ws.recv(timeout=60)
            if back != text:
                failures.append(f"text of {len(text)} chars came back different")
        pong = ws.ping(b"are you there")
        if not pong.wait(timeout=10):
            failures.append("no pong")
        ws.close(code=4001, reason="done")
        if ws.close_code != 4001:
            failures.append(f"close code echoed as {ws.close_code}")
    out({"mode": "echo", "sizes": sizes, "failures": failures}, not failures)


async def many(url, token, n, seconds, every):
    errors = []
    sent = 0
    started = time.monotonic()

    async def one(i):
        nonlocal sent
        try:
            async with aconnect(url, additional_headers=headers(token), open_timeout=60, max_size=None, **tls(url, False)) as ws:
                # Spread the first messages so the load is steady.
                await asyncio.sleep((i % 100) * every / 100)
                k = 0
                while time.monotonic() - started < seconds:
                    msg = f"socket {i} message {k}"
                    await ws.send(msg)
                    back = await asyncio.wait_for(ws.recv(), timeout=30)
                    if back != msg:
                        errors.append(f"socket {i}: got {back!r}")
                        return
                    sent += 1
                    k += 1
                    await asyncio.sleep(every)
        except Exception as e:  # every failure counts
            errors.append(f"socket {i}: {type(e).__name__}: {e}")

    await asyncio.gather(*(one(i) for i in range(n)))
    out({"mode": "many", "sockets": n, "messages": sent, "errors": errors[:20], "error_count": len(errors)}, not errors and sent >= n)


def hold(url, token, seconds):
    with connect(url, additional_headers=headers(token), open_timeout=30, **tls(url)) as ws:
        ws.send("hello")
        first = ws.recv(timeout=10)
        time.sleep(seconds)
        ws.send("still here")
        second = ws.recv(timeout=10)
    out({"mode": "hold", "echoes": [first, second]}, first == "hello" and second == "still here")


def hold_until(url, token, path):
    ticks = 0
    failures = []
    with connect(url, additional_headers=headers(token), open_timeout=30, **tls(url)) as ws:
        # Tell the test the socket is open (it waits for this line on stderr).
        print("open", file=sys.stderr, flush=True)
        while True:
            done = os.path.exists(path)
            msg = f"tick {ticks}"
            ws.send(msg)
            back = ws.recv(timeout=10)
            if back != msg:
                failures.append(f"sent {msg!r}, got {back!r}")
                break
            ticks += 1
            if done:
                break
            time.sleep(0.2)
    out({"mode": "hold-until", "ticks": ticks, "failures": failures}, not failures and ticks >= 2)


def unauthorised(url):
    try:
        with connect(url, open_timeout=10, **tls(url)):
            pass
    except InvalidStatus as e:
        status = e.response.status_code
        out({"mode": "unauthorised", "status": status}, status == 401)
    out({"mode": "unauthorised", "status": None, "failure": "the upgrade was accepted"}, False)


def main():
    mode, url = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else ""
    if mode == "echo":
        echo(url, token)
    elif mode == "many":
        asyncio.run(many(url, token, int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])))
    elif mode == "hold":
        hold(url, token, float(sys.argv[4]))
    elif mode == "hold-until":
        hold_until(url, token, sys.argv[4])
    elif mode == "unauthorised":
        unauthorised(url)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
