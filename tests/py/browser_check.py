#!/usr/bin/env python3
"""Browser access through wakeproxy with a real browser: headless Chromium (Debian's `chromium`
package) driven over the Chrome DevTools Protocol with the `websockets` package.

Usage: browser_check.py PROXY_URL TOKEN [--slow PATH] [--failing PATH] [--screenshot FILE]

PROXY_URL is `http://127.0.0.1:PORT` of a wakeproxy with a service at `/app` whose backend is
`wakeproxy-testbackend` (for its `/wspage` and `/ws` endpoints). The browser:

  1. opens /app/wspage without a session, is sent (303) to /proxy/login?next=/app/wspage and
     finds the form (#token, hidden next, #submit);
  2. submits a wrong token: the form comes back with 401 and no cookie is set;
  3. submits the right token: 303 to /app/wspage, with an HttpOnly wakeproxy_session cookie;
  4. the page opens a WebSocket to /app/ws through the proxy (the cookie is its only credential),
     sends `hello from browser` and puts the echo in its title: `WS:hello from browser`;
  5. a fetch() from the page reaches the backend without the wakeproxy_session cookie;
  6. with --slow PATH: opens PATH, a service whose container starts slowly, sees the waiting page
     (saved as a PNG with --screenshot FILE) and ends on the app's page (its echo JSON) without
     anybody reloading;
  7. with --failing PATH: opens PATH, a service whose container exits at start, and finds the
     reason on the page.

Prints one JSON object on stdout and exits 0 when every check passed, 1 when one failed, 2 when
the check could not run (no Chromium, bad arguments). Chromium and its temporary profile are
removed in every case.

Network: Chromium only ever talks to 127.0.0.1. Host names resolve to nothing
(--host-resolver-rules), background services are off, the component updater and the Google
accounts check are pointed at a closed 127.0.0.1 port, and every other request for a host that is
not 127.0.0.1 goes to a trap proxy on 127.0.0.1 that answers nothing and records what was asked.
Any such request fails the check (`stray_requests`): it means a new Chromium found another way out
that needs a flag.
"""
import asyncio
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote, urlsplit

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# websockets 15 and later follow proxy settings from the environment; DevTools is on 127.0.0.1.
NO_PROXY = {"proxy": None} if int(websockets.version.version.split(".")[0]) >= 15 else {}

INSTALL_HINT = "chromium not found: apt-get install chromium"
# The real binary of Debian's package; /usr/bin/chromium is a shell wrapper that adds flags of
# its own (--enable-remote-extensions among them), so it is used only as a fallback.
CANDIDATES = ["/usr/lib/chromium/chromium"]
NAMES = ["chromium", "chromium-browser"]

NEXT = "/app/wspage"
WANT_TITLE = "WS:hello from browser"
STEP_TIMEOUT = 15.0
# A cold start of a slow container, or its failure, may take longer than a step.
WAIT_TIMEOUT = 60.0
TOTAL_TIMEOUT = 150.0


def chromium_flags(profile, trap_port, dead_port):
    """`trap_port`: the trap proxy; `dead_port`: a bound, never listening 127.0.0.1 port."""
    dead = f"http://127.0.0.1:{dead_port}/"
    return [
        "--headless=new",
        "--no-sandbox",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        # Nothing but 127.0.0.1: no name resolves, and any other destination goes to the trap.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{trap_port}",
        "--proxy-bypass-list=127.0.0.1",
        # Two services that the flags below do not stop: on-demand component installs (which
        # ignore --disable-component-update) and the Google-accounts check of every profile.
        # Both are pointed at a closed loopback port.
        f"--component-updater=url-source={dead}",
        f"--gaia-url={dead}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--metrics-recording-only",
        "--no-pings",
        # NetworkTimeServiceQuerying: without it Chromium asks clients2.google.com for the time.
        "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
        "CertificateTransparencyComponentUpdater,DnsOverHttps,NetworkTimeServiceQuerying",
        "--safebrowsing-disable-auto-update",
        "--disable-breakpad",
        "--password-store=basic",
        "--disable-gpu",
        "about:blank",
    ]


def find_chromium():
    explicit = os.environ.get("WAKEPROXY_CHROMIUM")
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    for c in CANDIDATES:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    for n in NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


class Failed(Exception):
    pass


class Terminated(BaseException):
    """SIGTERM arrived (the test's own timeout)."""


class Trap:
    """A 'proxy' on 127.0.0.1 that records the first line of every request and answers nothing."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.closed = False

    def start(self):
        # Started after Chromium is spawned: no thread runs while preexec_fn does.
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(1.0)
                data = conn.recv(4096)
                self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1") or "(nothing sent)")
            except OSError:
                self.requests.append("(nothing sent)")
            finally:
                conn.close()

    def close(self):
        self.closed = True
        self.sock.close()


class Cdp:
    """One DevTools WebSocket: commands by id, events kept in order."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    self.events.append(msg)
                    self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(Failed("the DevTools connection closed"))
                    fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
            self.changed.set()

    async def call(self, method, params=None, timeout=STEP_TIMEOUT):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        try:
            msg = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Failed(f"no answer to {method} within {timeout} s") from None
        if "error" in msg:
            raise Failed(f"{method} failed: {msg['error']}")
        return msg.get("result", {})

    async def wait_event(self, what, pred, start=0, timeout=STEP_TIMEOUT):
        """The first event from index `start` on for which pred(event) holds."""
        end = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.events):
                if pred(self.events[i]):
                    return self.events[i]
                i += 1
            if self.reader.done():
                raise Failed(f"the DevTools connection closed while waiting for {what}")
            left = end - time.monotonic()
            if left <= 0:
                raise Failed(f"timed out after {timeout} s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def eval(self, expr, await_promise=False):
        r = await self.call(
            "Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": await_promise}
        )
        if "exceptionDetails" in r:
            raise Failed(f"page script failed: {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def poll(self, what, expr, done, timeout=STEP_TIMEOUT):
        """Evaluates `expr` until done(value); returns the last value."""
        end = time.monotonic() + timeout
        while True:
            try:
                value = await self.eval(expr)
            except Failed:
                value = None  # e.g. the context is being replaced by a navigation
            if done(value):
                return value
            if time.monotonic() > end:
                raise Failed(f"timed out after {timeout} s waiting for {what}; last value {value!r}")
            await asyncio.sleep(0.05)

    def document_response(self, start, path):
        """The Network.responseReceived of the main document at `path`, from index `start` on."""

        def pred(e):
            if e.get("method") == "Network.loadingFailed" and e["params"].get("type") == "Document":
                raise Failed(f"loading a page failed ({e['params'].get('errorText')}) while waiting for {path}")
            if e.get("method") != "Network.responseReceived" or e["params"].get("type") != "Document":
                return False
            return urlsplit(e["params"]["response"]["url"]).path == path

        return self.wait_event(f"the document response for {path}", pred, start)

    async def navigate(self, url):
        r = await self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise Failed(f"navigating to {url} failed: {r['errorText']}")

    def load_fired(self, start):
        return self.wait_event("the page load", lambda e: e.get("method") == "Page.loadEventFired", start)

    async def close(self):
        try:
            await self.ws.close()
        except ConnectionClosed:
            pass
        self.reader.cancel()


def session_cookies(cookies):
    return [c for c in cookies if c.get("name") == "wakeproxy_session"]


async def check(base, token, devtools_port, browser_path, result, waits):
    async with connect(
        f"ws://127.0.0.1:{devtools_port}{browser_path}", max_size=None, open_timeout=STEP_TIMEOUT, **NO_PROXY
    ) as bws:
        browser = Cdp(bws)
        version = await browser.call("Browser.getVersion")
        result["chromium"] = version.get("product")
        targets = (await browser.call("Target.getTargets"))["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        if not pages:
            raise Failed(f"Chromium has no page target: {targets}")
        page_id = pages[0]["targetId"]
        await browser.close()

    async with connect(
        f"ws://127.0.0.1:{devtools_port}/devtools/page/{page_id}", max_size=None, open_timeout=STEP_TIMEOUT,
        **NO_PROXY,
    ) as pws:
        cdp = Cdp(pws)
        for domain in ("Page", "Network", "Runtime"):
            await cdp.call(f"{domain}.enable")

        # 1. The protected page, without a session: 303 to the login form, which knows where
        # to come back to.
        start = len(cdp.events)
        await cdp.navigate(f"{base}{NEXT}")
        sent_on = await cdp.wait_event(
            f"the redirect from {NEXT}",
            lambda e: e.get("method") == "Network.requestWillBeSent"
            and e["params"].get("redirectResponse") is not None
            and urlsplit(e["params"]["redirectResponse"]["url"]).path == NEXT,
            start,
        )
        resp = await cdp.document_response(start, "/proxy/login")
        await cdp.load_fired(start)
        form = await cdp.eval(
            """(() => { const f = document.querySelector('form');
                        const n = f && f.querySelector('input[name=next]');
                        return { method: f && f.method, action: f && f.getAttribute('action'),
                                 token: !!document.querySelector('#token'),
                                 submit: !!document.querySelector('#submit'),
                                 next: n && n.value, title: document.title }; })()"""
        )
        result["form"] = {
            "status": resp["params"]["response"]["status"],
            "redirect_status": sent_on["params"]["redirectResponse"]["status"],
            "redirect_to": sent_on["params"]["request"]["url"].removeprefix(base),
            **form,
        }
        if result["form"]["status"] != 200 or not (form["token"] and form["submit"]):
            raise Failed(f"no login form: {result['form']}")
        if form["method"] != "post" or form["action"] != "/proxy/login" or form["next"] != NEXT:
            raise Failed(f"unexpected login form: {result['form']}")

        # 2. A wrong token: the form again with 401, and no cookie.
        start = len(cdp.events)
        await cdp.eval(
            "document.querySelector('#token').value = 'not-the-token'; document.querySelector('#submit').click(); true"
        )
        resp = await cdp.document_response(start, "/proxy/login")
        await cdp.load_fired(start)
        again = await cdp.eval(
            """({ token: !!document.querySelector('#token'),
                  wrong: document.body.innerText.includes('Wrong token'),
                  next: (document.querySelector('input[name=next]') || {}).value })"""
        )
        cookies = (await cdp.call("Network.getCookies", {"urls": [base + "/"]}))["cookies"]
        result["wrong_token"] = {
            "status": resp["params"]["response"]["status"],
            "form_again": again["token"],
            "says_wrong": again["wrong"],
            "next": again["next"],
            "session_cookie": bool(session_cookies(cookies)),
        }
        w = result["wrong_token"]
        if w["status"] != 401 or not w["form_again"] or w["session_cookie"] or w["next"] != NEXT:
            raise Failed(f"a wrong token was not refused properly: {w}")

        # 3. The right token: 303 to the page, cookie set.
        start = len(cdp.events)
        await cdp.eval(
            f"document.querySelector('#token').value = {json.dumps(token)}; document.querySelector('#submit').click(); true"
        )

        def redirected(e):
            if e.get("method") == "Network.responseReceived" and e["params"].get("type") == "Document":
                r = e["params"]["response"]
                raise Failed(f"the login answered {r['status']} instead of 303 (wrong token?)")
            return (
                e.get("method") == "Network.requestWillBeSent"
                and e["params"].get("redirectResponse") is not None
                and urlsplit(e["params"]["redirectResponse"]["url"]).path == "/proxy/login"
            )

        redirect = await cdp.wait_event("the 303 from POST /proxy/login", redirected, start)
        resp = await cdp.document_response(start, NEXT)
        await cdp.load_fired(start)
        location = await cdp.poll(
            f"the browser to be at {NEXT}", "location.pathname", lambda v: v == NEXT
        )
        result["login"] = {
            "redirect_status": redirect["params"]["redirectResponse"]["status"],
            "redirect_to": urlsplit(redirect["params"]["request"]["url"]).path,
            "page_status": resp["params"]["response"]["status"],
            "page_type": resp["params"]["response"].get("mimeType"),
            "location": location,
        }
        li = result["login"]
        if li["redirect_status"] != 303 or li["redirect_to"] != NEXT or li["page_status"] != 200:
            raise Failed(f"login did not lead to the page: {li}")
        if li["page_type"] != "text/html":
            raise Failed(f"the page is not HTML: {li}")

        # 4. The page's WebSocket, through the proxy with the cookie as its credential.
        title = await cdp.poll(
            f"document.title == {WANT_TITLE!r}",
            "document.title",
            lambda v: v == WANT_TITLE or (isinstance(v, str) and (v.startswith("WS error") or v.startswith("WS closed"))),
        )
        handshake = next(
            (e["params"]["response"] for e in cdp.events if e.get("method") == "Network.webSocketHandshakeResponseReceived"),
            {},
        )
        result["websocket"] = {"title": title, "handshake_status": handshake.get("status")}
        if title != WANT_TITLE:
            raise Failed(f"the page's WebSocket did not echo: title {title!r}")

        # The cookie: HttpOnly (invisible to scripts), SameSite=Strict, not Secure over plain HTTP.
        cookies = session_cookies((await cdp.call("Network.getCookies", {"urls": [base + "/"]}))["cookies"])
        doc_cookie = await cdp.eval("document.cookie")
        if len(cookies) != 1:
            raise Failed(f"expected one wakeproxy_session cookie, got {cookies}")
        c = cookies[0]
        result["cookie"] = {
            "http_only": c.get("httpOnly"),
            "same_site": c.get("sameSite"),
            "secure": c.get("secure"),
            "path": c.get("path"),
            "value_is_token": c.get("value") == token,
            "visible_to_script": "wakeproxy_session" in (doc_cookie or ""),
        }
        ck = result["cookie"]
        if not ck["http_only"] or ck["visible_to_script"] or ck["same_site"] != "Strict" or ck["secure"]:
            raise Failed(f"the session cookie has the wrong attributes: {ck}")
        if ck["value_is_token"]:
            raise Failed("the session cookie holds the raw token")

        # 5. A request from the page reaches the backend, without the session cookie.
        echo = await cdp.eval(
            "fetch('/app/echo', {headers: {'X-From-Page': '1'}}).then(r => r.text().then(t => ({status: r.status, body: t})))",
            await_promise=True,
        )
        result["fetch"] = {
            "status": echo["status"],
            "reached_backend": '"x-from-page"' in echo["body"].lower(),
            "session_cookie_forwarded": "wakeproxy_session" in echo["body"],
        }
        f = result["fetch"]
        if f["status"] != 200 or not f["reached_backend"] or f["session_cookie_forwarded"]:
            raise Failed(f"a fetch from the page went wrong: {f} {echo['body'][:500]}")
        if waits.get("slow"):
            await waiting_page(cdp, base, waits, result)
        if waits.get("failing"):
            await failing_start(cdp, base, waits, result)
        await cdp.close()


STAGE = "(document.getElementById('wakeproxy-stage') || {}).textContent || null"
ERROR = "(document.getElementById('wakeproxy-error') || {}).textContent || ''"


async def screenshot(cdp, path):
    shot = await cdp.call("Page.captureScreenshot", {"format": "png"})
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(shot["data"]))
    return os.path.getsize(path)


async def waiting_page(cdp, base, waits, result):
    """6. A service that starts slowly: the waiting page, then the app, with no reload asked."""
    path = waits["slow"]
    start = len(cdp.events)
    await cdp.navigate(base + path)
    resp = await cdp.document_response(start, path)
    await cdp.load_fired(start)
    stage = await cdp.poll("the waiting page's stage", STAGE, lambda v: bool(v))
    title = await cdp.eval("document.title")
    shot = waits.get("screenshot")
    size = await screenshot(cdp, shot) if shot else None
    # The page polls and reloads itself; the app's answer is the echo JSON.
    app = await cdp.poll(
        "the app's page after the wait",
        f"({STAGE}) === null && document.body.innerText.includes('\"target\"') ? document.body.innerText : null",
        lambda v: bool(v),
        timeout=WAIT_TIMEOUT,
    )
    documents = [
        e["params"]["response"]["status"]
        for e in cdp.events[start:]
        if e.get("method") == "Network.responseReceived"
        and e["params"].get("type") == "Document"
        and urlsplit(e["params"]["response"]["url"]).path == path
    ]
    result["waiting"] = {
        "status": resp["params"]["response"]["status"],
        "cache_control": {k.lower(): v for k, v in resp["params"]["response"]["headers"].items()}.get("cache-control"),
        "title": title,
        "stage": stage,
        "screenshot_bytes": size,
        "documents": documents,
        "app": json.loads(app) if app.strip().startswith("{") else app[:300],
        "location": await cdp.eval("location.pathname"),
    }


async def failing_start(cdp, base, waits, result):
    """7. A service whose start fails: the page shows why."""
    path = waits["failing"]
    start = len(cdp.events)
    await cdp.navigate(base + path)
    resp = await cdp.document_response(start, path)
    await cdp.load_fired(start)
    error = await cdp.poll("the failure on the page", ERROR, lambda v: bool(v), timeout=WAIT_TIMEOUT)
    result["failing"] = {
        "first_status": resp["params"]["response"]["status"],
        "error": error,
        "stage": await cdp.eval(STAGE),
        "location": await cdp.eval("location.pathname"),
    }


def profile_processes(profile):
    """Live (not zombie) processes whose command line names our profile."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if profile.encode() in cmdline and state != b"Z":
            pids.append(int(pid))
    return pids


def kill_tree(proc, profile):
    """Ends Chromium: SIGTERM to the browser (which then ends its helpers), SIGKILL to its process
    group after 5 s, then to anything still running with our profile. Returns what survived."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while True:
        pids = profile_processes(profile)
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def on_sigterm(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
    raise Terminated("terminated by SIGTERM")


def child_setup():
    """Runs in the Chromium child before exec."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    # SIGKILL when this script dies without cleaning up (Linux only).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main():
    t0 = time.monotonic()
    result = {"ok": False}

    def finish(code):
        result["elapsed_s"] = round(time.monotonic() - t0, 2)
        print(json.dumps(result), flush=True)
        sys.exit(code)

    args = sys.argv[1:]
    waits = {}
    while len(args) > 2 and args[-2] in ("--slow", "--failing", "--screenshot"):
        waits[args[-2][2:]] = args[-1]
        args = args[:-2]
    if len(args) != 2:
        result["error"] = "usage: browser_check.py PROXY_URL TOKEN [--slow PATH] [--failing PATH] [--screenshot FILE]"
        finish(2)
    base, token = args[0].rstrip("/"), args[1]
    u = urlsplit(base)
    if u.scheme != "http" or u.hostname != "127.0.0.1" or u.path:
        result["error"] = f"PROXY_URL must be http://127.0.0.1:PORT, got {base!r}"
        finish(2)

    chromium = find_chromium()
    if chromium is None:
        result["error"] = INSTALL_HINT
        finish(2)
    result["chromium_path"] = chromium

    code = 1
    tmp = home = proc = trap = dead = None
    try:
        # SIGTERM (the test's own timeout) unwinds through the cleanup below; installed inside
        # the try so that there is no moment when it could skip the cleanup.
        signal.signal(signal.SIGTERM, on_sigterm)
        tmp = tempfile.mkdtemp(prefix="wakeproxy-chromium-")
        profile = os.path.join(tmp, "profile")
        os.mkdir(profile)
        log_path = os.path.join(tmp, "chromium.log")
        trap = Trap()
        dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dead.bind(("127.0.0.1", 0))  # never listens: connections to it are refused
        flags = chromium_flags(profile, trap.port, dead.getsockname()[1])
        result["flags"] = flags
        # No proxy settings from the environment, and a home and TMPDIR of its own inside `tmp`:
        # Chromium writes to ~/.config, ~/.cache and $TMPDIR whatever --user-data-dir says.
        home = os.path.join(tmp, "home")
        os.mkdir(home)
        os.mkdir(os.path.join(tmp, "tmp"))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("XDG_")}
        env.update(
            HOME=home,
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            XDG_CACHE_HOME=os.path.join(home, ".cache"),
            XDG_DATA_HOME=os.path.join(home, ".local", "share"),
            TMPDIR=os.path.join(tmp, "tmp"),
        )
        # SIGTERM is held while Chromium starts so that `proc` is always known when it lands.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [chromium, *flags],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=child_setup,
                )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        trap.start()
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise Failed(f"Chromium exited with {proc.returncode} before opening DevTools")
            try:
                with open(port_file) as fh:
                    lines = fh.read().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/"):
                    port, browser_path = int(lines[0]), lines[1].strip()
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise Failed("Chromium did not write DevToolsActivePort within 20 s")
            time.sleep(0.05)

        async def run():
            await asyncio.wait_for(check(base, token, port, browser_path, result, waits), TOTAL_TIMEOUT)

        try:
            asyncio.run(run())
        except asyncio.TimeoutError:
            raise Failed(f"the whole check took longer than {TOTAL_TIMEOUT} s") from None
        result["ok"] = True
        code = 0
    except Failed as e:
        result["error"] = str(e)
    except BaseException as e:  # anything else (SIGTERM included) is a failure too, with its type
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup runs to its end
        if proc is not None:
            result["leftover_processes"] = kill_tree(proc, profile)
        if trap is not None:
            trap.close()
            result["stray_requests"] = trap.requests
            if trap.requests:
                result["ok"] = False
                result.setdefault("error", f"Chromium tried to reach other hosts: {trap.requests}")
                code = 1
        if dead is not None:
            dead.close()
        if tmp is not None:
            if not result["ok"]:
                try:
                    with open(log_path, "rb") as fh:
                        lines = fh.read().decode("utf-8", "replace").splitlines()
                    # Without a D-Bus (as in containers) Chromium logs many harmless D-Bus errors.
                    lines = [line for line in lines if "dbus" not in line.lower()]
                    result["chromium_log_tail"] = "\n".join(lines)[-4000:]
                except OSError:
                    pass
            if home is not None:
                pending = os.path.join(home, ".config", "chromium", "Crash Reports", "pending")
                result["crash_dumps"] = len(os.listdir(pending)) if os.path.isdir(pending) else 0
            shutil.rmtree(tmp, ignore_errors=True)
            result["temp_dir_removed"] = not os.path.exists(tmp)
    finish(code)


if __name__ == "__main__":
    main()
