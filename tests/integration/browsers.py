"""Drive real headless browsers from tests, with the standard library only (no network, no driver package).

* :class:`Chromium` speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (file
  descriptors 3 and 4, NUL-terminated JSON messages): page load, ``Runtime.evaluate``, real key
  presses with ``Input.dispatchKeyEvent``, console messages and uncaught exceptions as events.
* :class:`Firefox` speaks Marionette (Firefox's own automation protocol, ``--marionette``; length-
  prefixed JSON over a local TCP port the browser picks and writes into the fresh profile): WebDriver
  navigation, script execution, ``WebDriver:PerformActions`` key presses, screenshots, and -- in
  the browser's chrome context -- the console service's messages (script errors included).

Both start with a fresh profile directory under the test's temporary directory and are always stopped.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.tools import argv, tool_env

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")

# Windows virtual key codes Chromium wants with each key, and the WebDriver code points Firefox wants.
_CDP_KEYS = {"Tab": ("Tab", 9, ""), "Enter": ("Enter", 13, "\r"), "Escape": ("Escape", 27, ""),
             "Backspace": ("Backspace", 8, ""), "ArrowRight": ("ArrowRight", 39, ""),
             "ArrowLeft": ("ArrowLeft", 37, "")}
_WEBDRIVER_KEYS = {"Tab": "\ue004", "Enter": "\ue007", "Escape": "\ue00c", "Backspace": "\ue003",
                   "ArrowRight": "\ue014", "ArrowLeft": "\ue012"}


class BrowserError(AssertionError):
    pass


def _high(fd: int) -> int:
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""



def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Let a browser that was asked to quit end within ``timeout`` s, else kill it; reap it either way."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class Chromium:
    """Headless Chromium driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, work: Path, size: tuple[int, int] = (1280, 1400)) -> None:
        self.profile = work / f"chromium-profile-{os.getpid()}-{time.monotonic_ns()}"
        self.log = self.profile.with_suffix(".log")
        self._log = open(self.log, "wb")  # noqa: SIM115 (closed in close())
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        cmd_r, resp_w = _high(cmd_r), _high(resp_w)  # not 3 or 4 themselves: bash moves them there
        # the browser reads commands on fd 3 and writes answers on fd 4
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{cmd_r} 4>&{resp_w} {cmd_r}<&- {resp_w}>&-', "sh",
             *argv("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={size[0]},{size[1]}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(cmd_r, resp_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log, env=tool_env())
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._next = 0
        self.session: str | None = None
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", session=False, timeout=10)
                except (BrowserError, OSError):
                    pass
                _wait_or_kill(self.proc, 15)
        finally:
            for fd in (self._cmd_w, self._resp_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if ready:
                chunk = os.read(self._resp_r, 1 << 16)
                if not chunk:
                    raise BrowserError(f"Chromium exited: {_tail(self.log)}")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 60) -> dict:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("method") == method:
                return reply
            if "method" in reply:
                self.events.append(reply)

    def open(self, url: str) -> None:
        """A new tab on ``url``, attached, with console and exception events on; returns after load."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def run(self, body: str) -> Any:
        """Run a function body (``return ...``) in the page; its JSON value."""
        return self.evaluate("(function () {" + body + "})()")

    def press(self, key: str) -> None:
        """One real key press (down, up) delivered to the focused element, as the keyboard would."""
        name, code, text = _CDP_KEYS[key]
        down = {"type": "keyDown" if text else "rawKeyDown", "key": name, "code": name,
                "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": name, "code": name,
                                             "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code})

    def console(self) -> list[str]:
        """Console messages and uncaught exceptions seen so far (drains pending events first)."""
        self.evaluate("0")
        out = []
        for ev in self.events:
            if ev["method"] == "Runtime.consoleAPICalled":
                out.append(f"console.{ev['params']['type']}: " +
                           " ".join(str(a.get("value", a.get("description"))) for a in ev["params"]["args"]))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = ev["params"]["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        return out


class RequestRecorder:
    """A local HTTP proxy that records the request line of every request sent through it and answers
    502: Firefox, told to use it for every URL (localhost included), shows by it each request a page
    makes (Marionette itself gives no record of requests). Use as a context manager."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n" not in data and len(data) < 8192:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    # The browser's own background requests (remote settings, update and plugin checks), which the
    # profile's preferences do not all stop: CONNECT to these hosts is not a request of the page.
    BROWSER_HOSTS = (".mozilla.com", ".mozilla.org", ".mozilla.net", ".firefox.com")
    BROWSER_EXACT = ("update.googleapis.com",)  # Firefox's plugin (GMP) update check

    @staticmethod
    def host(line: str) -> str:
        """The host a request line asks for (``CONNECT host:443`` or ``GET http://host[:port]/path``)."""
        method, _, rest = line.partition(" ")
        target = rest.split(" ", 1)[0]
        if method != "CONNECT":
            target = target.split("://", 1)[-1].split("/", 1)[0]
        return target.rsplit(":", 1)[0] if ":" in target else target

    def page_requests(self) -> list[str]:
        """The recorded request lines, without the browser's own background requests."""
        return [line for line in list(self.requests)
                if not (line.startswith("CONNECT ") and (self.host(line) in self.BROWSER_EXACT
                                                         or self.host(line).endswith(self.BROWSER_HOSTS)))]

    def prefs(self) -> dict[str, Any]:
        return {"network.proxy.type": 1, "network.proxy.http": "127.0.0.1", "network.proxy.http_port": self.port,
                "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": self.port,
                "network.proxy.no_proxies_on": "", "network.proxy.allow_hijacking_localhost": True}

    def __enter__(self) -> RequestRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)


class Firefox:
    """Headless Firefox (Debian's firefox-esr) driven over Marionette. Use as a context manager."""

    PREFS = {
        "marionette.port": 0,  # any free port; Firefox writes it to MarionetteActivePort
        "browser.shell.checkDefaultBrowser": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "app.update.disabledForTesting": True,
        "browser.startup.homepage_override.mstone": "ignore",
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "browser.safebrowsing.update.enabled": False,
        "extensions.update.enabled": False,
        "services.settings.server": "data:,",
    }

    def __init__(self, work: Path, size: tuple[int, int] = (1280, 1400), *,
                 recorder: RequestRecorder | None = None) -> None:
        self.profile = work / f"firefox-profile-{os.getpid()}-{time.monotonic_ns()}"
        self.profile.mkdir(parents=True)
        prefs = {**self.PREFS, **(recorder.prefs() if recorder else {})}
        self.profile.joinpath("user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
        env = tool_env({"MOZ_HEADLESS_WIDTH": str(size[0]), "MOZ_HEADLESS_HEIGHT": str(size[1])})
        self.log = self.profile.with_suffix(".log")
        self._log = open(self.log, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [*argv("firefox-esr"), "--headless", "--marionette", "--remote-allow-system-access", "--no-remote", "--profile", str(self.profile),
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next = 0
        try:
            self._connect()
            self.send("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Firefox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> None:
        port_file = self.profile / "MarionetteActivePort"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"firefox-esr exited {self.proc.returncode}: {_tail(self.log)}")
            text = port_file.read_text().strip() if port_file.is_file() else ""
            if text.isdigit():
                try:
                    self._sock = socket.create_connection(("127.0.0.1", int(text)), timeout=60)
                    self._read()  # the greeting: {"applicationType": "gecko", "marionetteProtocol": 3}
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise BrowserError("Firefox's Marionette port did not open in 90 s")

    def _read(self) -> Any:
        assert self._sock is not None
        while True:
            head, sep, rest = self._buf.partition(b":")
            if sep and len(rest) >= int(head):
                n = int(head)
                self._buf = rest[n:]
                return json.loads(rest[:n])
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise BrowserError("Marionette closed the connection")
            self._buf += chunk

    def send(self, command: str, params: dict | None = None) -> Any:
        assert self._sock is not None
        self._next += 1
        body = json.dumps([0, self._next, command, params or {}]).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body)
        while True:
            kind, msgid, error, result = self._read()
            if kind == 1 and msgid == self._next:
                if error:
                    raise BrowserError(f"{command}: {error}")
                return result

    def close(self) -> None:
        try:
            if self._sock is not None:
                try:
                    self.send("Marionette:Quit", {"flags": ["eForceQuit"]})
                except (BrowserError, OSError, ValueError):
                    pass
                self._sock.close()
                self._sock = None
            _wait_or_kill(self.proc, 20)
        finally:
            self._log.close()

    def open(self, url: str) -> None:
        self.send("WebDriver:Navigate", {"url": url})  # returns once the page has loaded

    def evaluate(self, script: str, *args: Any) -> Any:
        """``script`` is a function body (``return ...``), run in the page."""
        res = self.send("WebDriver:ExecuteScript", {"script": script, "args": list(args)})
        return res.get("value") if isinstance(res, dict) else res

    def run(self, body: str) -> Any:
        """Run a function body (``return ...``) in the page; its JSON value."""
        return self.evaluate(body)

    def press(self, key: str) -> None:
        """One real key press through WebDriver actions, to whatever has the focus."""
        code = _WEBDRIVER_KEYS[key]
        self.send("WebDriver:PerformActions", {"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": code}, {"type": "keyUp", "value": code}]}]})
        self.send("WebDriver:ReleaseActions")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("WebDriver:TakeScreenshot", {"full": False})["value"])
        path.write_bytes(data)
        return data

    def console_errors(self, url_prefix: str) -> list[str]:
        """Errors and warnings the console service holds for scripts under ``url_prefix``."""
        self.send("Marionette:SetContext", {"value": "chrome"})
        try:
            return self.evaluate(
                "const out = [];"
                "for (const m of Services.console.getMessageArray() || []) {"
                "  if (m instanceof Ci.nsIScriptError && (m.sourceName || '').startsWith(arguments[0]))"
                "    out.push(m.category + ': ' + m.errorMessage);"
                "}"
                "return out;", url_prefix)
        finally:
            self.send("Marionette:SetContext", {"value": "content"})
