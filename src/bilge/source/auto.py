"""A bare ``NAME[:TAG]`` that is not a path: the local Docker engine when one answers and has the
image, else the registry -- what trivy and syft do, so that ``bilge analyze myapp:latest`` right after
``docker build -t myapp .`` just works. One line on stderr says which was used (``options.notice``).
"""

from __future__ import annotations

from bilge.errors import BilgeError
from bilge.image import Platform
from bilge.reference import Reference
from bilge.remote.engine import Engine, EngineError, NoEngine
from bilge.source import daemon, registry
from bilge.source.base import ImageSource, SourceOptions


def open_source(ref: Reference, want: Platform | None, verify: bool, options: SourceOptions) -> ImageSource:
    name = ref.name
    if name is None:
        raise BilgeError(f"{ref}: not an image name")
    notice = options.notice or (lambda _message: None)
    try:
        with Engine(options.docker_host, timeout=10) as engine:
            wanted = daemon.engine_name(ref)
            info = engine.inspect(wanted)
            if info is not None:
                notice(f"reading {ref} from the Docker engine at {engine.host} "
                       f"(use docker://{name} for the registry's copy)")
                return daemon.export_and_open(engine, wanted, info, ref, want, verify, options)
            why = f"not in the Docker engine at {engine.host}"
    except NoEngine:
        why = "no Docker engine answers"
    except EngineError as exc:  # e.g. permission denied on the socket: say so, then try the registry
        why = str(exc)
    notice(f"reading {ref} from the registry as docker://{name} ({why})")
    remote = Reference("docker", str(name), original=str(ref), name=name)
    try:
        return registry.open_source(remote, want, verify, options)
    except BilgeError as exc:
        raise BilgeError(f"{ref}: not a file or directory here, {why}, and from the registry: {exc}") from None
