"""`bilge report` in Firefox: Debian's firefox-esr, headless, driven over Marionette (its own automation
protocol; see tests/integration/browsers.py), with a fresh profile.

The report of the demo image (a real image) must render: a screenshot (kept in the test's temporary
directory, a CI artefact), the treemap drawn by the page's script with the largest directory of
``bilge analyze --format json`` by name and every rectangle focusable and labelled, no script error
in Firefox's console service, and the keyboard navigation of the Chromium test, with real key
presses. A control copy of the report with a script error proves the console probe sees one.
Every request is sent through a local recording proxy (Marionette gives no record of requests): the
report makes none, and a control page that loads an image and fetches a script shows it would see them.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.conftest import require_tool
from tests.integration.test_report_browser import STATE, assert_keyboard_navigation, demo_report

NODES = ("return Array.prototype.map.call(document.querySelectorAll('#treemap g.node'), function (g) {"
         " return {path: g.getAttribute('data-path'), tabindex: g.getAttribute('tabindex'),"
         " role: g.getAttribute('role'), label: g.getAttribute('aria-label'),"
         " text: Array.prototype.map.call(g.querySelectorAll('text'), function (t) { return t.textContent; })"
         "   .join(' ')}; });")


def test_report_in_headless_firefox(tmp_path: Path) -> None:
    from tests.integration.browsers import Firefox, RequestRecorder

    require_tool("firefox-esr")
    report, analyze = demo_report(tmp_path)
    largest = analyze["directories"][0]["path"]  # "/bin": busybox
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text(encoding="utf-8").replace("render(false);", "render(false); noSuchFn();", 1),
                      encoding="utf-8")

    leak = tmp_path / "leak.html"  # control: the recorder sees the requests a page makes
    leak.write_text('<!DOCTYPE html><img src="http://leak.invalid/x.png">'
                    '<script>fetch("https://cdn.leak.invalid/y.js").catch(function () {});</script>')

    with RequestRecorder() as recorder, Firefox(tmp_path, recorder=recorder) as ff:
        ff.open(report.resolve().as_uri())
        shot = ff.screenshot(tmp_path / "report-firefox.png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000

        nodes = ff.run(NODES)
        by_path = {n["path"]: n for n in nodes}
        assert len(nodes) >= 3 and largest in by_path, sorted(by_path)
        assert by_path[largest]["text"].startswith(largest.rsplit("/", 1)[-1] + " "), by_path[largest]
        for n in nodes:
            assert n["tabindex"] == "0" and n["role"] in ("button", "img") and "visible" in n["label"], n
        state = ff.run(STATE)
        files = analyze["summary"]["files"]
        assert state["current"].startswith("root,") and f"visible in {files:,} files" in state["detail"], state

        assert_keyboard_navigation(ff)
        assert ff.console_errors(report.resolve().as_uri()) == []

        assert recorder.page_requests() == []

        ff.open(broken.resolve().as_uri())  # control: the probe sees a script error
        assert any("noSuchFn" in e for e in ff.console_errors(broken.resolve().as_uri()))
        ff.open(leak.resolve().as_uri())
        deadline = time.monotonic() + 30
        while len(recorder.page_requests()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {recorder.host(r) for r in recorder.page_requests()} == {"leak.invalid", "cdn.leak.invalid"}, \
            recorder.requests
