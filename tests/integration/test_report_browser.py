"""`bilge report` opened in a real browser: Debian's headless Chromium.

The report of the demo image (a real image, built from Debian packages) is loaded from a file:// URL
with networking features off and a fresh profile; Chromium's console (``--enable-logging=stderr``)
must show no message, its net log (``--log-net-log``) no request started by the page (the browser's
own background requests have no origin; a page's have one), and the DOM after the scripts ran must
hold the treemap with the largest directory of ``bilge analyze --format json`` by name, every
rectangle focusable with a label. Two controls prove the probes see what they look for: a copy of the
report with a script error, and a page that loads an image and fetches a URL. The screenshot stays
in the test's temporary directory (CI keeps it as an artefact).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from tests.integration.conftest import require_tool
from tests.tools import argv, tool_env

DEMO = str(Path(__file__).resolve().parents[2] / "src" / "bilge" / "data" / "demo.tar.gz")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")


def bilge(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@functools.cache
def _demo_outputs() -> tuple[str, str]:
    """The demo image's report (HTML) and ``bilge analyze --format json``, made once per test session."""
    with tempfile.TemporaryDirectory(prefix="bilge-report-test-") as tmp:
        out = Path(tmp) / "report.html"
        proc = bilge("report", DEMO, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        html = out.read_text(encoding="utf-8")
    proc = bilge("analyze", DEMO, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return html, proc.stdout


def demo_report(work: Path) -> tuple[Path, dict]:
    """The demo image's report written into ``work``, and its ``bilge analyze --format json``."""
    html, analyze = _demo_outputs()
    report = work / "report.html"
    report.write_text(html, encoding="utf-8")
    return report, json.loads(analyze)


def chromium(page: Path, work: Path, name: str, *extra: str) -> tuple[str, list[str], list[str]]:
    """(DOM after the scripts ran, console lines, URLs the page asked the network for)."""
    profile = work / f"profile-{name}"
    netlog = work / f"netlog-{name}.json"
    proc = subprocess.run(
        [*argv("chromium"), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         f"--log-net-log={netlog}", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env=tool_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = [e["params"]["url"] for e in log["events"]
                 if e["type"] == start and "url" in e.get("params", {})
                 and e["params"].get("initiator") != "not an origin"]
    return proc.stdout, console, requested


class Treemap(HTMLParser):
    """The treemap's <g class="node"> elements: their attributes and the <text> drawn inside."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[dict] = []
        self._stack: list[dict | None] = []
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "g":
            node = None
            if "node" in (a.get("class") or "").split():
                node = {"attrs": a, "texts": []}
                self.nodes.append(node)
            self._stack.append(node)
        elif tag == "text":
            self._in_text = True

    def handle_endtag(self, tag):
        if tag == "g" and self._stack:
            self._stack.pop()
        elif tag == "text":
            self._in_text = False

    def handle_data(self, data):
        if self._in_text:
            for node in reversed(self._stack):
                if node is not None:
                    node["texts"].append(data)
                    break


def test_report_in_headless_chromium(tmp_path):
    require_tool("chromium")
    report, analyze = demo_report(tmp_path)
    largest = analyze["directories"][0]["path"]  # "/bin": busybox

    shot = tmp_path / "report.png"
    _dom, console, requested = chromium(report, tmp_path, "shot", "--window-size=1280,1400", f"--screenshot={shot}")
    assert console == [] and requested == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

    dom, console, requested = chromium(report, tmp_path, "dom", "--window-size=1280,1400", "--dump-dom")
    assert console == [] and requested == []
    tm = Treemap()
    tm.feed(dom)
    assert len(tm.nodes) >= 3
    by_path = {n["attrs"].get("data-path"): n for n in tm.nodes}
    assert largest in by_path, sorted(by_path)
    label = " ".join(by_path[largest]["texts"])
    assert label.startswith(largest.rsplit("/", 1)[-1] + " "), label  # "bin 2.0 MB"
    for n in tm.nodes:  # keyboard and screen readers: every rectangle is focusable and says what it is
        assert n["attrs"].get("tabindex") == "0" and n["attrs"].get("role") in ("button", "img")
        assert "visible" in n["attrs"].get("aria-label", "")
    # the breadcrumb and the detail line were filled in by the script
    assert 'aria-current="location"' in dom and "visible in 906 files" in dom

    # controls: the probes do see a script error and a request a page makes
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text(encoding="utf-8").replace("render(false);", "render(false); noSuchFn();", 1),
                      encoding="utf-8")
    _dom, console, _ = chromium(broken, tmp_path, "broken", "--dump-dom")
    assert any("noSuchFn" in line for line in console)
    leak = tmp_path / "leak.html"
    leak.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/x.png"><script>fetch("http://127.0.0.1:9/y")'
                    '.catch(function () {})</script>', encoding="utf-8")
    _dom, _console, requested = chromium(leak, tmp_path, "leak", "--dump-dom")
    assert "http://127.0.0.1:9/x.png" in requested


# The treemap's state as the page shows it: the focused rectangle, the breadcrumb, the rectangles drawn.
STATE = ("var a = document.activeElement, cur = document.querySelector('#crumbs [aria-current=location]');"
         "var attr = function (n) { return a && a.getAttribute ? a.getAttribute(n) : null; };"
         "return {active: attr('data-path'), role: attr('role'),"
         " crumbs: Array.prototype.map.call(document.querySelectorAll('#crumbs button'),"
         "   function (b) { return b.getAttribute('aria-label'); }),"
         " current: cur ? cur.getAttribute('aria-label') : null,"
         " nodes: Array.prototype.map.call(document.querySelectorAll('#treemap g.node'),"
         "   function (g) { return [g.getAttribute('data-path'), g.getAttribute('role')]; }),"
         " detail: document.getElementById('treemap-detail').textContent};")


def assert_keyboard_navigation(browser) -> None:
    """Drive the treemap with real key presses (``browser``: tests.integration.browsers.Chromium or
    Firefox, on a loaded report) and check after each that the page shows what the key asks for."""
    top = browser.run(STATE)
    paths = [p for p, _ in top["nodes"]]
    assert len(top["crumbs"]) == 1 and top["active"] is None and len(paths) >= 2
    for _ in range(3):  # the skip link, the root of the breadcrumb, then the treemap's first rectangle
        browser.press("Tab")
    s = browser.run(STATE)
    assert s["active"] == paths[0], s
    assert s["detail"].startswith(paths[0])  # the detail line describes the focused rectangle
    browser.press("ArrowRight")
    s = browser.run(STATE)
    assert s["active"] == paths[1] and s["detail"].startswith(paths[1]), s
    browser.press("ArrowLeft")
    assert browser.run(STATE)["active"] == paths[0]

    target = next(i for i, (_, role) in enumerate(top["nodes"]) if role == "button")  # a directory to zoom into
    for back in ("Escape", "Backspace"):
        for _ in range(target):
            browser.press("ArrowRight")
        assert browser.run(STATE)["active"] == paths[target]
        browser.press("Enter")
        inner = browser.run(STATE)
        assert len(inner["crumbs"]) == 2 and inner["current"].startswith(paths[target] + ","), inner
        assert inner["nodes"] and all(p.startswith(paths[target] + "/") for p, _ in inner["nodes"]), inner
        assert inner["active"] == inner["nodes"][0][0]  # the focus follows into the directory
        browser.press(back)
        out = browser.run(STATE)
        assert len(out["crumbs"]) == 1 and [p for p, _ in out["nodes"]] == paths, (back, out)
        assert out["active"] == paths[0]


def test_keyboard_navigation_in_headless_chromium(tmp_path):
    from tests.integration.browsers import Chromium

    require_tool("chromium")
    report, _ = demo_report(tmp_path)
    with Chromium(tmp_path) as browser:
        browser.open(report.resolve().as_uri())
        assert_keyboard_navigation(browser)
        assert browser.console() == []
