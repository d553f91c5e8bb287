"""``-o docker-daemon:NAME[:TAG]``: load the written image into the local Docker engine.

The image is written as a ``docker-archive`` into a private temporary directory (the engine's load
API takes exactly that tar; the archive writer verifies it), streamed to ``POST /images/load``, and
the tag is then inspected: its image id must be the config digest just written. The temporary
archive is removed in every case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bilge import cleanup
from bilge.errors import OutputError
from bilge.remote.engine import Engine
from bilge.sink import dockerarchive
from bilge.sink.common import LayerInput, LayerRecord, OutputSpec, WriteResult
from bilge.sink.layer import Compression


def write(spec: OutputSpec, config: Mapping[str, Any], layers: Sequence[LayerInput], compression: Compression,
          clamp: int | None, on_layer: Callable[[int, LayerRecord], None] | None = None,
          verify_full: bool = True) -> WriteResult:
    tag = spec.tag
    assert tag is not None
    with Engine() as engine:
        engine.ping()  # fail before writing anything when no engine answers
        tmpdir = cleanup.mkdtemp(cleanup.tempdir(), "bilge-load-")
        try:
            archive = tmpdir / "image.tar"
            res = dockerarchive.write(OutputSpec("docker-archive", archive, tag), config, layers, compression,
                                      clamp, on_layer, verify_full)
            with open(archive, "rb") as fh:
                engine.load(fh)
            info = engine.inspect(tag)
            if info is None or info.get("Id") != res.config_digest:
                got = info.get("Id") if info else "nothing"
                raise OutputError(f"docker-daemon:{tag}: after the load the engine's {tag} is {got}, "
                                  f"not the written {res.config_digest}")
        finally:
            cleanup.remove(tmpdir)
    return dataclasses.replace(res, output=spec)



