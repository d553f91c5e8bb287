#!/usr/bin/env python3
"""bilge side by side with the tools people use instead, on the same inputs in one run (issue 12).

usage: python3 benchmarks/peers.py --image LABEL=ARCHIVE [--image ...] [--truth LABEL=WHERE ...]
                                   [--engine-tag LABEL=TAG ...] [--dockerfiles DIR]
                                   [--peers /opt/bilge-peers-venv/bin] [--skip TASK ...] [--json OUT]

ARCHIVE is a ``docker save`` archive. The peers come from ``benchmarks/install_peers.sh`` (their own
virtualenv, outside bilge's dependencies). Every command runs under ``/usr/bin/time`` (wall seconds
and peak RSS of the whole process, interpreter or Go runtime start-up included, for both sides).

- ``analyze`` vs ``dive --source docker-archive ARCHIVE --json``: time, peak RSS, and whether the
  image size, wasted bytes and efficiency score are equal (bilge's ``dive`` block).
- ``secrets`` vs ``trivy image --input ARCHIVE --scanners secret --offline-scan --skip-db-update``:
  time, peak RSS, findings. bilge's are counted at its default threshold (high and above); trivy's
  all (its secret rules have no lower level that would be hidden). ``--truth LABEL=WHERE`` names
  the real secrets of an image (``history:KEY`` for a build arg or ENV in the history,
  ``file:PATH`` for a file): a finding that matches one is true, any other is a false alarm.
  An image without ``--truth`` holds no planted secret: every finding on it is false.
- ``lint`` vs ``hadolint -f json`` on every ``*.Dockerfile`` of ``--dockerfiles``: the lines each
  flags and the lines both flag (the rules differ: hadolint checks style and pinning, bilge size
  and secrets; the overlap shows where they agree a line needs attention).
- ``deps`` vs ``lddtree -R`` (pax-utils): the closure of every ELF file under /usr, bilge reading the
  archive, lddtree the rootfs unpacked (skopeo + umoci) -- ``benchmarks/deps_bench.py`` runs both and
  compares them root by root, with the image's own loader (``ld.so --list`` in a chroot) as referee.
- ``squash`` vs ``docker-squash`` (needs the image in the engine: ``--engine-tag LABEL=TAG``): time,
  peak RSS, output bytes, and whether the two squashed images hold the same files (path, size, mode,
  link target), read back with Python's tarfile, independently of bilge.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BILGE = [sys.executable, "-m", "bilge"]
sys.path.insert(0, str(REPO))
from tests.tools import argv, tool_env  # noqa: E402  (how peers are run)

CPU: dict[int, float] = {}  # id(completed process) -> user + system CPU seconds of the child


def timed(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MB, completed process) of ``cmd`` under /usr/bin/time; its CPU
    seconds (user + system, every thread) in ``CPU[id(process)]``: the steadier figure on a loaded machine."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"), NO_COLOR="1")
        env.pop("CI", None)
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", tf.name, *cmd], capture_output=True,
                              text=True, env=env, **kw)
        wall, rss, user, system = open(tf.name).read().split()[-4:]
    CPU[id(proc)] = float(user) + float(system)
    return float(wall), int(rss) / 1024, proc


def analyze_vs_dive(label: str, archive: Path, peers: Path, work: Path) -> dict:
    t_b, m_b, p = timed([*BILGE, "analyze", f"docker-archive:{archive}", "-f", "json"])
    c_b = CPU[id(p)]
    ours = json.loads(p.stdout)["dive"]
    out = work / f"dive-{label}.json"
    t_d, m_d, p = timed([str(peers / "dive"), "--source", "docker-archive", str(archive), "--json", str(out)])
    if p.returncode != 0:
        raise SystemExit(f"dive failed on {archive}: {p.stderr[-500:]}")
    c_d = CPU[id(p)]
    theirs = json.loads(out.read_text())["image"]
    return {
        "bilge": {"seconds": t_b, "cpu_seconds": round(c_b, 2), "peak_rss_mb": round(m_b, 1)},
        "dive": {"seconds": t_d, "cpu_seconds": round(c_d, 2), "peak_rss_mb": round(m_d, 1)},
        "size_bytes": [ours["size_bytes"], theirs["sizeBytes"]],
        "wasted_bytes": [ours["wasted_bytes"], theirs["inefficientBytes"]],
        "efficiency": [ours["efficiency"], theirs["efficiencyScore"]],
        "equal": (ours["size_bytes"] == theirs["sizeBytes"] and ours["wasted_bytes"] == theirs["inefficientBytes"]
                  and abs(ours["efficiency"] - theirs["efficiencyScore"]) < 1e-9),
    }


def _is_true(where: str, truths: list[str]) -> bool:
    return any(where == t or where.endswith(t) for t in truths)


def secrets_vs_trivy(label: str, archive: Path, peers: Path, work: Path, truths: list[str]) -> dict:
    t_b, m_b, p = timed([*BILGE, "secrets", f"docker-archive:{archive}", "-f", "json"])
    c_b = CPU[id(p)]
    doc = json.loads(p.stdout)
    ours = []
    for f in doc["findings"]:
        if f["severity"] not in ("critical", "high"):
            continue
        loc = f["location"]
        where = f"history:{loc['key']}" if loc["kind"] == "history" else (
            f"file:{loc['path']}" if loc["kind"] == "file" else f"{loc['kind']}:{loc['key']}")
        ours.append({"rule": f["rule"], "severity": f["severity"], "where": where, "true": _is_true(where, truths)})
    out = work / f"trivy-{label}.json"
    t_t, m_t, p = timed([str(peers / "trivy"), "image", "--input", str(archive), "--scanners", "secret",
                         "--offline-scan", "--skip-db-update", "--cache-dir", str(work / "trivy-cache"), "--timeout", "60m",
                         "-q", "-f", "json", "-o", str(out)])
    if p.returncode != 0:
        raise SystemExit(f"trivy failed on {archive}: {p.stderr[-500:]}")
    c_t = CPU[id(p)]
    theirs = []
    for r in json.loads(out.read_text()).get("Results") or []:
        for s in r.get("Secrets") or []:
            target = r.get("Target", "")
            # trivy reports the image config (history, env) with the archive as its target
            if r.get("Class") == "config" or target.endswith(archive.name) or target == str(archive):
                key = "GITHUB_ACCESS_TOKEN" if "GITHUB_ACCESS_TOKEN" in (s.get("Match") or "") else s["RuleID"]
                where = f"history:{key}"
            else:
                where = f"file:{target.lstrip('/')}"
            theirs.append({"rule": s["RuleID"], "severity": s["Severity"].lower(), "where": where,
                           "line": s.get("StartLine"), "true": _is_true(where, truths)})

    def tally(found: list[dict]) -> dict:
        true_where = {f["where"] for f in found if f["true"]}
        return {"findings": len(found), "true": sum(f["true"] for f in found),
                "false": sum(not f["true"] for f in found),
                "real_secrets_found": sorted(true_where), "missed": sorted(set(truths) - true_where)}

    return {"bilge": {"seconds": t_b, "cpu_seconds": round(c_b, 2), "peak_rss_mb": round(m_b, 1), **tally(ours),
                      "list": ours},
            "trivy": {"seconds": t_t, "cpu_seconds": round(c_t, 2), "peak_rss_mb": round(m_t, 1), **tally(theirs),
                      "list": theirs},
            "speed_ratio_trivy_over_bilge": round(t_t / t_b, 2), "cpu_ratio_trivy_over_bilge": round(c_t / c_b, 2)}


def lint_vs_hadolint(dockerfiles: Path, peers: Path) -> dict:
    rows = []
    t_b = t_h = 0.0
    for df in sorted(dockerfiles.glob("*.Dockerfile")):
        tb, _, p = timed([*BILGE, "lint", str(df), "-f", "json", "--fail-on", "never"])
        ours = {f["line"] for f in json.loads(p.stdout)["findings"]}
        th, _, p = timed([str(peers / "hadolint"), "-f", "json", "--no-fail", str(df)])
        theirs = {f["line"] for f in json.loads(p.stdout or "[]")}
        t_b += tb
        t_h += th
        rows.append({"dockerfile": df.name, "bilge_lines": sorted(ours), "hadolint_lines": sorted(theirs),
                     "both": sorted(ours & theirs)})
    return {"files": len(rows), "bilge_seconds": round(t_b, 2), "hadolint_seconds": round(t_h, 2),
            "bilge_lines": sum(len(r["bilge_lines"]) for r in rows),
            "hadolint_lines": sum(len(r["hadolint_lines"]) for r in rows),
            "both": sum(len(r["both"]) for r in rows), "rows": rows}


def deps_vs_lddtree(label: str, archive: Path, work: Path) -> dict:
    """deps_bench.py on the archive and its unpacked rootfs (deleted afterwards)."""
    oci, bundle, out = work / f"oci-{label}", work / f"bundle-{label}", work / f"deps-{label}.json"
    try:
        subprocess.run([*argv("skopeo"), "copy", "-q", f"docker-archive:{archive}", f"oci:{oci}:img"], check=True,
                       capture_output=True, env=tool_env())
        subprocess.run([*argv("umoci"), "unpack", "--image", f"{oci}:img", str(bundle)], check=True, capture_output=True,
                       env=tool_env())
        t, m, p = timed([sys.executable, str(REPO / "benchmarks" / "deps_bench.py"), "--archive", str(archive),
                         "--rootfs", str(bundle / "rootfs"), "--json", str(out)])
        if not out.exists():
            raise SystemExit(f"deps_bench failed on {archive}: {p.stderr[-800:]}")
        d = json.loads(out.read_text())
    finally:
        shutil.rmtree(oci, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
    return {"roots": d["roots"], "bilge_seconds": d["bilge_image_s"], "lddtree_seconds": d["lddtree_s"],
            "same_roots": d["same_roots"], "referee_roots": d["referee_roots"],
            "referee_agrees_bilge": d["referee_agrees_bilge"], "referee_agrees_lddtree": d["referee_agrees_lddtree"],
            "differences": d["differences"][:20], "script_seconds": t, "script_peak_rss_mb": round(m, 1)}


def _layers(outer: tarfile.TarFile) -> list[str]:
    names = set(outer.getnames())
    if "manifest.json" in names:  # docker-archive
        return json.load(outer.extractfile("manifest.json"))[0]["Layers"]
    index = json.load(outer.extractfile("index.json"))
    manifest = json.load(outer.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
    return ["blobs/sha256/" + layer["digest"][7:] for layer in manifest["layers"]]


def _norm(name: str) -> str:
    """A tar member name as a path: no leading ``./`` or ``/``, no trailing ``/`` (``.env`` stays)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name  # the root directory's own entry (docker-squash writes one)


def _visible(path: str, hidden: set[str], opaque: set[str]) -> bool:
    """Whether a lower layer's ``path`` survives a layer's whiteouts (``hidden``) and opaque dirs."""
    parts = path.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return path not in hidden and not any(a in hidden or a in opaque for a in ancestors)


def merged_files(path: Path) -> dict[str, tuple]:
    """The final filesystem of an image archive: path -> (type, size, mode, link target). A layer's
    whiteouts (``.wh.NAME``, ``.wh..wh..opq``) hide the layers below it, never its own entries."""
    files: dict[str, tuple] = {}
    with tarfile.open(path) as outer:
        for name in _layers(outer):
            gone: list[str] = []
            opaque: list[str] = []
            mine: dict[str, tuple] = {}
            with tarfile.open(fileobj=outer.extractfile(name), mode="r|*") as layer:
                for m in layer:
                    p = _norm(m.name)
                    head, _, base = p.rpartition("/")
                    if base == ".wh..wh..opq":
                        opaque.append(head + "/" if head else "")
                    elif base.startswith(".wh."):
                        gone.append((head + "/" if head else "") + base[4:])
                    elif p and m.islnk():  # a hardlink is a file of its target's size (either tool may link)
                        target = mine.get(_norm(m.linkname)) or files.get(_norm(m.linkname))
                        mine[p] = ("file", target[1] if target else 0, m.mode & 0o7777, "")
                    elif p:
                        mine[p] = ("file" if m.isfile() else m.type.decode("latin-1"), m.size if m.isfile() else 0,
                                   m.mode & 0o7777, m.linkname if m.issym() else "")
            if gone or opaque:
                files = {k: v for k, v in files.items()
                         if _visible(k, set(gone), {o.rstrip("/") for o in opaque if o})}
            files.update(mine)
    return files


def squash_vs_docker_squash(label: str, archive: Path, tag: str, peers: Path, work: Path) -> dict:
    ours, theirs = work / f"squash-bilge-{label}.tar", work / f"squash-dsq-{label}.tar"
    try:
        t_b, m_b, p = timed([*BILGE, "squash", f"docker-archive:{archive}", "-o", f"docker-archive:{ours}:peers:{label}",
                             "-f", "json"])
        if p.returncode != 0:
            raise SystemExit(f"bilge squash failed on {archive}: {p.stderr[-500:]}")
        c_b = CPU[id(p)]
        t_d, m_d, p = timed([str(peers / "docker-squash"), "--output-path", str(theirs), "--load-image", "false",
                             "-t", f"peers-dsq:{label}", tag])
        if p.returncode != 0:
            raise SystemExit(f"docker-squash failed on {tag}: {p.stderr[-500:]}")
        c_d = CPU[id(p)]
        a, b = merged_files(ours), merged_files(theirs)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return {"bilge": {"seconds": t_b, "cpu_seconds": round(c_b, 2), "peak_rss_mb": round(m_b, 1),
                          "output_bytes": ours.stat().st_size},
                "docker-squash": {"seconds": t_d, "cpu_seconds": round(c_d, 2), "peak_rss_mb": round(m_d, 1),
                                  "output_bytes": theirs.stat().st_size},
                "files": [len(a), len(b)], "same_files": not differ, "differing": differ[:20]}
    finally:
        ours.unlink(missing_ok=True)
        theirs.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", action="append", default=[], help="LABEL=docker-archive path")
    ap.add_argument("--truth", action="append", default=[], help="LABEL=history:KEY or LABEL=file:PATH")
    ap.add_argument("--dockerfiles", type=Path, default=REPO.parent / "shared" / "fixtures" / "dockerfiles")
    ap.add_argument("--peers", type=Path, default=Path(os.environ.get("BILGE_PEERS_VENV", "/opt/bilge-peers-venv")) / "bin")
    ap.add_argument("--engine-tag", action="append", default=[], help="LABEL=TAG of the same image in the engine "
                    "(docker-squash reads the engine)")
    ap.add_argument("--skip", action="append", default=[], choices=["analyze", "secrets", "lint", "deps", "squash"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    for tool in ("dive", "trivy", "hadolint", "docker-squash"):
        if not (args.peers / tool).exists():
            sys.exit(f"{args.peers / tool} is missing: run benchmarks/install_peers.sh")
    tags = dict(t.partition("=")[::2] for t in args.engine_tag)
    truths: dict[str, list[str]] = {}
    for t in args.truth:
        label, _, where = t.partition("=")
        truths.setdefault(label, []).append(where)
    results: dict = {"images": {}}
    with tempfile.TemporaryDirectory(prefix="bilge-peers-") as tmp:
        work = Path(tmp)
        for spec in args.image:
            label, _, path = spec.partition("=")
            archive = Path(path).resolve()
            r: dict = {"archive": str(archive), "bytes": archive.stat().st_size}
            if "analyze" not in args.skip:
                r["analyze"] = a = analyze_vs_dive(label, archive, args.peers, work)
                print(f"[{label}] analyze  bilge {a['bilge']['seconds']:6.1f} s ({a['bilge']['cpu_seconds']:.1f} s CPU) "
                      f"{a['bilge']['peak_rss_mb']:7.1f} MB | dive {a['dive']['seconds']:6.1f} s "
                      f"({a['dive']['cpu_seconds']:.1f} s CPU) {a['dive']['peak_rss_mb']:7.1f} MB | "
                      f"wasted {a['wasted_bytes']} efficiency {a['efficiency']} equal={a['equal']}", flush=True)
            if "secrets" not in args.skip:
                r["secrets"] = s = secrets_vs_trivy(label, archive, args.peers, work, truths.get(label, []))
                for name in ("bilge", "trivy"):
                    x = s[name]
                    print(f"[{label}] secrets  {name:5} {x['seconds']:6.1f} s ({x['cpu_seconds']:.1f} s CPU) "
                          f"{x['peak_rss_mb']:7.1f} MB | "
                          f"{x['findings']} findings: {x['true']} true, {x['false']} false; missed {x['missed']}",
                          flush=True)
                    for f in x["list"]:
                        print(f"             {'TRUE ' if f['true'] else 'false'} {f['severity']:8} {f['rule']:22} {f['where']}")
            if "deps" not in args.skip:
                r["deps"] = d = deps_vs_lddtree(label, archive, work)
                print(f"[{label}] deps     bilge {d['bilge_seconds']:6.1f} s | lddtree {d['lddtree_seconds']:6.1f} s | "
                      f"{d['roots']} ELF roots, same answer for {d['same_roots']}; the loader agrees with bilge on "
                      f"{d['referee_agrees_bilge']}/{d['referee_roots']}, with lddtree on {d['referee_agrees_lddtree']}",
                      flush=True)
            if "squash" not in args.skip and label in tags:
                r["squash"] = q = squash_vs_docker_squash(label, archive, tags[label], args.peers, work)
                print(f"[{label}] squash   bilge {q['bilge']['seconds']:6.1f} s ({q['bilge']['cpu_seconds']:.1f} s CPU) "
                      f"{q['bilge']['peak_rss_mb']:7.1f} MB {q['bilge']['output_bytes']} B | docker-squash "
                      f"{q['docker-squash']['seconds']:6.1f} s ({q['docker-squash']['cpu_seconds']:.1f} s CPU) "
                      f"{q['docker-squash']['peak_rss_mb']:7.1f} MB {q['docker-squash']['output_bytes']} B | "
                      f"files {q['files']} same={q['same_files']}", flush=True)
            results["images"][label] = r
        if "lint" not in args.skip and args.dockerfiles.is_dir():
            results["lint"] = lt = lint_vs_hadolint(args.dockerfiles, args.peers)
            print(f"lint: {lt['files']} Dockerfiles; lines flagged: bilge {lt['bilge_lines']}, hadolint "
                  f"{lt['hadolint_lines']}, both {lt['both']}; time bilge {lt['bilge_seconds']} s, hadolint "
                  f"{lt['hadolint_seconds']} s (process start-up included)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
