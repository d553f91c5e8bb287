"""Talking to the places images live over HTTP: registries (the OCI distribution API) and the Docker
engine's API. Used by the ``docker://`` and ``docker-daemon:`` sources and sinks.

* :mod:`bilge.remote.client`      -- a registry client: scheme probing, auth, redirects, retries
* :mod:`bilge.remote.auth`        -- ``WWW-Authenticate`` challenges, the Bearer token flow, Basic
* :mod:`bilge.remote.credentials` -- where credentials come from (flags, auth.json, docker config,
  credential helpers)
* :mod:`bilge.remote.blobs`       -- blob streams (Range resume) and the content-addressed blob cache
* :mod:`bilge.remote.engine`      -- the Docker engine API over a unix socket or TCP

A credential never appears in a message, a log line or a repr.
"""
