"""Property-based fuzzing of the readers (issue 16): whatever a manifest, index, config or layer tar
holds, reading the image either works or raises a BilgeError (one line, exit 2) -- never another
exception. In process, so hundreds of examples cost seconds. ``BILGE_FUZZ_EXAMPLES`` raises the count
(benchmarks/fuzz_long.py runs it long); CI runs the default."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilge.errors import BilgeError
from bilge.fs import walk_image
from bilge.source import open_image
from bilge.testing import docker_archive
from tests.fuzz.strategies import hostile_layer, mutated_image

EXAMPLES = int(os.environ.get("BILGE_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("BILGE_FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _read(ref: str, verify: bool = True) -> None:
    try:
        src = open_image(ref, verify=verify)
    except BilgeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    try:
        fs = walk_image(src)
        for _ in fs.listdir("/"):
            pass
        _ = src.image.env  # the config fields the commands use
        _ = [h.created_by for h in src.image.history]
    except BilgeError as exc:
        assert str(exc) and "\n" not in str(exc)
    finally:
        src.close()


@SETTINGS
@given(st.data())
def test_documents_with_arbitrary_json(data):
    root = Path(tempfile.mkdtemp(prefix="bilge-fuzz-"))
    try:
        _read(data.draw(mutated_image(root)))
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(hostile_layer(), st.booleans())
def test_layers_with_arbitrary_headers(layer, verify):
    root = Path(tempfile.mkdtemp(prefix="bilge-fuzz-"))
    try:
        docker_archive(root / "img.tar", [[("file", "etc/base", b"base")], layer])
        _read(f"docker-archive:{root / 'img.tar'}", verify=verify)
    finally:
        shutil.rmtree(root)
