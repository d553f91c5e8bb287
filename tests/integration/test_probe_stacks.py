"""The larger stacks of issue 13 (Flask, Express, Rails + Passenger + pg + mysql2 + nokogiri built from
Debian's packages; Flask + gunicorn from PyPI and express from npm): slimmed with `--probe` and no
`--keep`, the image runs every probe in the real engine with the original's output, and is smaller
than both the hand-made multistage build and `slim --keep` with the runtime trees named by hand (the
Flask ones: at most 0.25x the multistage build; the others at most what they measure, RATIO_LIMIT).

Minutes of building each: not in CI. Run with BILGE_PROBE_STACKS=all (or a comma-separated list of
stack names). A stack built from another registry (PyPI, npm) skips when its packages cannot be
downloaded here (see probe_stacks.py; the npm registry is not reachable in CI).
benchmarks/probe_bench.py measures the same stacks with timings.
"""

from __future__ import annotations

import json
import os
import shlex

import pytest

from bilge.probe import ProbeOptions, parse_probes
from bilge.rewrite import slim
from bilge.source import open_image
from tests.integration.conftest import DOCKER, docker_rmi, run
from tests.integration.probe_stacks import STACKS, Unavailable, write_context

WANTED = os.environ.get("BILGE_PROBE_STACKS", "")
RATIO_LIMIT = {"flask": 0.25, "flask-pip": 0.25, "rails": 0.26, "express": 0.33, "express-npm": 0.38}


def selected(name: str) -> bool:
    return WANTED == "all" or name in WANTED.split(",")


def engine_size(tag: str) -> int:
    return int(json.loads(run([DOCKER, "image", "inspect", tag]))[0]["Size"])


def engine_outputs(tag: str, probes) -> list[str]:
    out = []
    for p in probes:
        out.append(run([DOCKER, "run", "--rm", "--network", "none", tag, *shlex.split(p)], timeout=600))
    return out


@pytest.mark.parametrize("name", sorted(STACKS))
def test_stack_slimmed_by_probe_runs_and_beats_multistage(name, built_image, tmp_path_factory):
    if not selected(name):
        pytest.skip(f"set BILGE_PROBE_STACKS=all (or {name}) to build and slim the {name} stack")
    stack = STACKS[name]
    images = {}
    for kind in ("single", "multi"):
        ctx = tmp_path_factory.mktemp(f"ctx-{name}-{kind}")
        try:
            write_context(stack, kind, ctx)
        except Unavailable as exc:
            pytest.skip(f"the {name} stack cannot be built here: {exc}")
        images[kind] = built_image(ctx, f"probe-{name}-{kind}")
    want = engine_outputs(images["single"].tag, stack.probes)
    out = tmp_path_factory.mktemp(f"out-{name}")
    tags = {"probe": f"bilge-it-probe-{name}-slim:test", "keep": f"bilge-it-probe-{name}-keep:test"}
    with open_image(str(images["single"].archive)) as src:
        res, _ = slim(src, f"docker-archive:{out / 'probe.tar'}:{tags['probe']}", [],
                      probe=ProbeOptions(parse_probes(stack.probes)))
    assert res.details["probe"]["ok"], res.details["probe"]
    with open_image(str(images["single"].archive)) as src:
        slim(src, f"docker-archive:{out / 'keep.tar'}:{tags['keep']}", list(stack.keep), entrypoint=True)
    try:
        run([DOCKER, "load", "-i", str(out / "probe.tar")])
        run([DOCKER, "load", "-i", str(out / "keep.tar")])
        assert engine_outputs(tags["probe"], stack.probes) == want
        probe_size, keep_size = engine_size(tags["probe"]), engine_size(tags["keep"])
        multi_size = engine_size(images["multi"].tag)
        assert probe_size < keep_size and probe_size < multi_size
        # The 0.25x holds for the Python stacks. Rails (0.258x) and Node (0.33x, 0.38x) miss it
        # with every kept byte but 0.5 MB one their probes load (benchmarks/README.md, base recipe 2):
        # held to what they measure, so that keeping more fails.
        assert probe_size <= RATIO_LIMIT[name] * multi_size, (probe_size, multi_size)
    finally:
        docker_rmi(*tags.values())
