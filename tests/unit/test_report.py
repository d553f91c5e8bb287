"""`bilge report`: one self-contained HTML file whose numbers are the other commands' JSON.

The HTML is checked structurally here (an HTML parser, no browser): every number shown equals the
value at its place in ``bilge analyze --format json`` / ``bilge secrets --format json``; nothing
outside the file is referenced; secrets are masked unless asked; the treemap's totals equal an
independent merge of the layers done here with :mod:`tarfile`; bad input writes nothing. The
browser check (headless Chromium) is tests/integration/test_report_browser.py.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bilge.testing import docker_archive
from tests.conftest import require_shared_fixtures

DEMO = str(Path(__file__).resolve().parents[2] / "src" / "bilge" / "data" / "demo.tar.gz")


def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "bilge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


class Page(HTMLParser):
    """Every <data> element (value, data-key, text), every attribute that can load something, the
    scripts, and the text of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[dict[str, str]] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._data: dict[str, str] | None = None
        self._script: dict[str, str | None] | None = None
        self._style = False
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "xlink:href", "action", "poster", "srcset", "data", "background"):
            if a.get(name):
                self.urls.append((tag, name, a[name] or ""))
        if "style" in a and a["style"] and "url(" in a["style"]:
            self.urls.append((tag, "style", a["style"]))
        if tag == "data":
            self._data = {"value": a.get("value") or "", "key": a.get("data-key") or ""}
            self._buf = []
        elif tag == "script":
            self._script = a
            self._buf = []
        elif tag == "style":
            self._style = True
            self._buf = []

    def handle_endtag(self, tag):
        if tag == "data" and self._data is not None:
            self._data["text"] = "".join(self._buf)
            self.data.append(self._data)
            self._data = None
        elif tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buf)))
            self._script = None
        elif tag == "style" and self._style:
            self.styles.append("".join(self._buf))
            self._style = False

    def handle_data(self, data):
        if self._data is not None or self._script is not None or self._style:
            self._buf.append(data)
        if self._script is None and not self._style:
            self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def lookup(doc, key: str):
    for part in key.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def decimal(n: int) -> str:
    """Decimal units as docker and dive print them (1.5 MB, 276 B), written again here."""
    if n < 1000:
        return f"{n} B"
    for i, unit in enumerate(("kB", "MB", "GB", "TB"), start=1):
        if n < 1000 ** (i + 1) or unit == "TB":
            return f"{n / 1000 ** i:.1f} {unit}"
    raise AssertionError


def client_data(page: Page) -> dict:
    blocks = [body for attrs, body in page.scripts if attrs.get("type") == "application/json"]
    assert len(blocks) == 1
    return json.loads(blocks[0])


def check_numbers(page: Page, analyze_doc: dict, secrets_doc: dict | None, **more: dict) -> int:
    """Every <data data-key> equals its JSON value, and its text is that value formatted."""
    checked = 0
    for d in page.data:
        if not d["key"]:
            continue
        source, _, key = d["key"].rpartition(":")
        doc = {"": analyze_doc, "secrets": secrets_doc, **more}[source]
        want = lookup(doc, key)
        if isinstance(want, float):
            assert float(d["value"]) == pytest.approx(want, rel=1e-9), d
            continue
        assert int(d["value"]) == want, d
        assert d["text"] in (decimal(want), f"{want:,}"), d
        checked += 1
    return checked


def independent_merge(archive: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(visible, written) regular-file bytes per top-level name, by applying the layers of a
    `docker save` archive with tarfile: whiteouts and opaque markers hide lower layers only, a
    non-directory replaces a directory with everything below it, hardlinks count 0 bytes."""
    entries: dict[str, tuple[int, str, int]] = {}  # path -> (layer, kind, size)
    written: dict[str, int] = {}

    def top(p: str) -> str:
        return p.split("/", 1)[0]

    def drop_below(p: str, before_layer: int, include_self: bool) -> None:
        for q in [q for q in entries if (q.startswith(p + "/") if p else True) or (include_self and q == p)]:
            if entries[q][0] < before_layer:
                del entries[q]

    with tarfile.open(archive, "r:*") as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for index, name in enumerate(manifest[0]["Layers"]):
            member = outer.getmember(name)
            if member.issym():
                member = outer.getmember(posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname)))
            with tarfile.open(fileobj=outer.extractfile(member), mode="r:*") as layer:
                for m in layer:
                    p = posixpath.normpath("/" + m.name).lstrip("/")
                    base, parent = posixpath.basename(p), posixpath.dirname(p)
                    if base == ".wh..wh..opq":
                        drop_below(parent, index, include_self=False)
                        continue
                    if base.startswith(".wh."):
                        drop_below(posixpath.join(parent, base[4:]), index + 1, include_self=True)
                        continue
                    if not m.isdir():
                        drop_below(p, index + 1, include_self=False)
                    kind = "file" if m.isreg() else "dir" if m.isdir() else "other"
                    entries[p] = (index, kind, m.size if m.isreg() else 0)
                    if m.isreg():
                        written[top(p)] = written.get(top(p), 0) + m.size
    visible: dict[str, int] = {}
    for p, (_layer, kind, size) in entries.items():
        if kind == "file":
            visible[top(p)] = visible.get(top(p), 0) + size
    return visible, written


def report_and_json(tmp_path: Path, ref: str) -> tuple[Path, dict, dict]:
    out = tmp_path / "report.html"
    proc = run("report", ref, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert f"wrote {out}" in proc.stderr
    analyze = run("analyze", ref, "--format", "json")
    assert analyze.returncode == 0, analyze.stderr
    secrets = run("secrets", ref, "--format", "json")
    assert secrets.returncode in (0, 1), secrets.stderr
    return out, json.loads(analyze.stdout), json.loads(secrets.stdout)


def assert_self_contained(page: Page, html: str) -> None:
    # nothing to load and no link out: only links to places in the page itself
    assert [u for u in page.urls if not u[2].startswith("#")] == [], page.urls
    assert not {"link", "img", "iframe", "object", "embed", "audio", "video", "source"} & set(page.tags)
    for css in page.styles:
        assert re.findall(r"url\(\s*['\"]?(?!#)", css) == []
        assert "@import" not in css
    for attrs, body in page.scripts:
        assert "src" not in attrs
        assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts|sendBeacon)\b", body)
    # the browser is told so too: nothing but inline style and script
    assert "default-src 'none'" in html


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict, dict]:
    return report_and_json(tmp_path_factory.mktemp("demo"), DEMO)


def test_demo_report_numbers_equal_the_json_outputs(demo):
    out, analyze, secrets = demo
    html = out.read_text(encoding="utf-8")
    page = parse(out)
    assert check_numbers(page, analyze, secrets) >= 40
    keys = {d["key"] for d in page.data}
    for key in ("summary.visible_bytes", "summary.reclaimable_bytes", "summary.layer_bytes",
                "summary.compressed_bytes", "layers.3.reclaimable_bytes", "layers.8.visible_bytes",
                "wasted.0.bytes", "directories.0.bytes", "secrets:summary.findings"):
        assert key in keys, key
    # one bar per layer, each with its instruction, in order
    assert len([k for k in keys if re.fullmatch(r"layers\.\d+\.layer_bytes", k)]) == len(analyze["layers"])
    text = " ".join(" ".join(page.text).split())
    assert "RUN dpkg -i -F depends /debs/make.deb" in text and "RUN dpkg -r make" in text
    assert "/usr/bin/make" in text  # the dead-weight table
    assert_self_contained(page, html)
    assert len(html.encode()) < 200_000


def test_demo_report_masks_the_token_unless_asked(tmp_path):
    shown = json.loads(run("secrets", DEMO, "--format", "json", "--show-secrets").stdout)
    token = next(f["match"] for f in shown["findings"] if f["rule"] == "github-pat")
    assert re.fullmatch(r"ghp_\w{36}", token)
    out = tmp_path / "masked.html"
    assert run("report", DEMO, "-o", str(out), "-q").returncode == 0
    html = out.read_text(encoding="utf-8")
    assert token not in html and token[4:] not in html
    assert "ghp_" in html and "(40 chars)" in html  # the masked form is there
    full = tmp_path / "full.html"
    assert run("report", DEMO, "-o", str(full), "-q", "--show-secrets").returncode == 0
    assert token in full.read_text(encoding="utf-8")


def test_treemap_totals_equal_an_independent_merge_of_the_layers(demo):
    out, analyze, _ = demo
    tree = client_data(parse(out))["tree"]
    s = analyze["summary"]
    assert (tree["v"], tree["x"], tree["f"]) == (s["visible_bytes"], s["reclaimable_bytes"], s["files"])
    visible, written = independent_merge(Path(DEMO))
    assert tree["v"] == sum(visible.values()) and tree["v"] + tree["x"] == sum(written.values())
    named = {c["n"]: c for c in tree["c"] if c["k"] != "r"}
    assert {"usr", "bin"} <= set(named)
    for name, node in named.items():
        assert node["v"] == visible.get(name, 0), name
        assert node["v"] + node.get("x", 0) == written[name], name
    # the dead weight sits where it was written: /usr/bin/make, deleted by `RUN dpkg -r make`
    usr_bin = next(c for c in named["usr"]["c"] if c["n"] == "bin")
    make = next(c for c in usr_bin.get("c", []) if c["n"] == "make") if "c" in usr_bin else usr_bin
    assert make.get("x", 0) > 0 and make["xl"][0][0] == 3


def test_treemap_of_whiteouts_opaque_dirs_and_overwrites(tmp_path):
    img = tmp_path / "img.tar"
    docker_archive(img, [
        [("dir", "opt"), ("file", "opt/keep", b"k" * 3000), ("file", "opt/gone", b"g" * 5000),
         ("dir", "var/cache"), ("file", "var/cache/a", b"a" * 7000), ("file", "etc/conf", b"c" * 100)],
        [("whiteout", "opt/gone"), ("opaque", "var/cache"), ("file", "var/cache/b", b"b" * 11),
         ("file", "etc/conf", b"C" * 120)],
    ], history=["COPY . /", "RUN rm -rf /opt/gone /var/cache/* && fix /etc/conf"])
    out, analyze, secrets = report_and_json(tmp_path, str(img))
    page = parse(out)
    check_numbers(page, analyze, secrets)
    tree = client_data(page)["tree"]
    visible, written = independent_merge(img)
    assert visible == {"opt": 3000, "var": 11, "etc": 120}
    named = {c["n"]: c for c in tree["c"]}
    for name in ("opt", "var", "etc"):
        assert named[name]["v"] == visible[name]
        assert named[name]["v"] + named[name].get("x", 0) == written[name]
    assert named["var"]["xl"] == [[0, 7000]] and named["opt"]["xl"] == [[0, 5000]]
    assert named["etc"]["l"] == [[1, 120]] and named["etc"]["xl"] == [[0, 100]]


def test_fixture_reports(tmp_path):
    for name in ("dive-test-docker-image.tar", "jib-docker-save.tar"):
        ref = require_shared_fixtures("images", name)
        out, analyze, secrets = report_and_json(tmp_path, str(ref))
        page = parse(out)
        assert check_numbers(page, analyze, secrets) > 10
        assert_self_contained(page, out.read_text(encoding="utf-8"))
        tree = client_data(page)["tree"]
        visible, written = independent_merge(ref)
        assert tree["v"] == sum(visible.values()) == analyze["summary"]["visible_bytes"]
        assert tree["v"] + tree.get("x", 0) == sum(written.values()) == analyze["summary"]["layer_bytes"]
        for node in tree.get("c", []):
            if node["k"] != "r":
                assert node["v"] == visible.get(node["n"], 0), (name, node["n"])


def test_ten_thousand_files_make_a_small_report(tmp_path):
    img = tmp_path / "many.tar"
    files = [("file", f"srv/d{i % 40:02d}/sub{i % 7}/f{i:05d}.txt", b"x" * (i % 500 + 1)) for i in range(12_000)]
    files += [("file", "srv/big.bin", b"\0" * 400_000)]
    docker_archive(img, [files, [("whiteout", "srv/d00")]], history=["COPY . /", "RUN rm -rf /srv/d00"])
    out = tmp_path / "many.html"
    proc = run("report", str(img), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    size = out.stat().st_size
    assert size < 2_000_000
    tree = client_data(parse(out))["tree"]

    def count(n):
        return 1 + sum(count(c) for c in n.get("c", []))

    assert count(tree) < 4000
    assert tree["f"] == 12_000 - 300 + 1  # /srv/d00 held every 40th file
    assert tree["v"] + tree["x"] == sum(len(f[2]) for f in files)


def test_lint_and_deps_sections_equal_their_commands_json(tmp_path):
    dockerfile = str(Path(DEMO).parents[3] / "demo" / "Dockerfile")
    out = tmp_path / "all.html"
    proc = run("report", DEMO, "-o", str(out), "-q", "--dockerfile", dockerfile, "--binary", "/bin/busybox")
    assert proc.returncode == 0, proc.stderr
    lint = json.loads(run("lint", dockerfile, "--image", DEMO, "--format", "json").stdout)
    deps = json.loads(run("deps", DEMO, "--binary", "/bin/busybox", "--format", "json").stdout)
    analyze = json.loads(run("analyze", DEMO, "--format", "json").stdout)
    secrets = json.loads(run("secrets", DEMO, "--format", "json").stdout)
    page = parse(out)
    check_numbers(page, analyze, secrets, lint=lint, deps=deps)
    keys = {d["key"] for d in page.data}
    measured = [i for i, f in enumerate(lint["findings"]) if f["bytes"] is not None]
    assert measured and {f"lint:findings.{i}.bytes" for i in measured} <= keys
    assert {"lint:summary.findings", "deps:total_bytes", "deps:file_count"} <= keys
    text = " ".join(page.text)
    assert all(f["rule"] in text for f in lint["findings"])
    assert_self_contained(page, out.read_text(encoding="utf-8"))


def test_json_format_carries_the_other_documents(tmp_path, demo):
    out = tmp_path / "report.json"
    assert run("report", DEMO, "-o", str(out), "-f", "json", "-q").returncode == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "bilge.report/1"
    assert doc["analyze"] == demo[1]
    assert doc["secrets"]["schema"] == "bilge.secrets/1" and doc["lint"] is None and doc["deps"] is None


def test_the_forked_size_tree_gives_the_same_report(tmp_path):
    """The size tree is made in a forked child (bilge.forked) beside analyze: byte for byte the report
    of the same call made in-process (BILGE_NO_FORK=1), in both formats."""
    for fmt in ("html", "json"):
        outs = []
        for no_fork in ("0", "1"):
            out = tmp_path / f"r-{no_fork}.{fmt}"
            env = {k: v for k, v in os.environ.items() if k != "CI"}
            env.update(PYTHONPATH=os.pathsep.join(sys.path), BILGE_NO_FORK=no_fork)
            proc = subprocess.run([sys.executable, "-m", "bilge", "report", DEMO, "-o", str(out), "-f", fmt, "-q"],
                                  capture_output=True, text=True, env=env, timeout=300)
            assert proc.returncode == 0 and proc.stderr == "", proc.stderr
            outs.append(out.read_bytes())
        assert outs[0] == outs[1]
        assert re.search(rb'"n": ?"usr"', outs[0])  # the tree is there


def test_the_page_template_compiled_elsewhere_renders_the_same_page(monkeypatch):
    """The forked child compiles the page template (compile_template); the page rendered from that code
    is the page compiled in place, and code that is not the template's is compiled again, not used."""
    import jinja2

    from bilge.analyze import analyze
    from bilge.format.html import ReportInput, compile_template, render_html
    from bilge.fs import walk_image
    from bilge.fstree import build_tree
    from bilge.source import open_image

    with open_image(DEMO) as src:
        fs = walk_image(src)
        inp = ReportInput(analysis=analyze(src.image, fs), tree=build_tree(fs), version="test")
    plain = render_html(inp)
    code = compile_template()
    compiles: list[str] = []
    real = jinja2.Environment.compile

    def counted(self, source, name=None, *args, **kwargs):
        compiles.append(name)
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    assert render_html(inp, compiled=code) == plain and compiles == []
    assert render_html(inp, compiled=b"not the template's code") == plain and compiles == ["report.html.j2"]


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/no/such/dir/r.html"], "does not exist"),
    (["-o", "{tmp}"], "is a directory"),
    (["{tmp}/missing.tar", "-o", "{tmp}/r.html"], ""),
    (["-o", "{tmp}/r.html", "--dockerfile", "{tmp}/nope/Dockerfile"], "Dockerfile not found"),
    (["-o", "{tmp}/r.html", "--severity", "loud"], "--severity"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, args, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = set(tmp_path.rglob("*"))
    proc = run("report", *argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bilge: error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(tmp_path.rglob("*")) == before  # nothing written, no temporary file left


def test_a_corrupt_image_leaves_no_partial_report(tmp_path):
    img = tmp_path / "img.tar"
    docker_archive(img, [[("file", "a", b"x" * 100)]])
    data = bytearray(img.read_bytes())
    i = data.index(b"x" * 100)
    data[i] = ord("y")  # the layer no longer matches its diff_id
    img.write_bytes(bytes(data))
    out = tmp_path / "r.html"
    proc = run("report", str(img), "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tar"]
