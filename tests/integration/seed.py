"""The seed's app built two ways, shared by every test that needs them (built once per session).

The app is a Ruby script using the pg extension (Debian's ruby + ruby-pg). SINGLE is built like the
seed's first Dockerfile: build tools installed in one RUN and purged in a later one, a GitHub token
passed as a build arg and written to /root/.netrc, deleted in a later RUN. MULTI builds in one stage
and installs only the runtime packages in a fresh final stage. The session fixture ``seed_images``
(tests/integration/conftest.py) builds SINGLE with the legacy builder and MULTI with BuildKit.
"""

from __future__ import annotations

import secrets
import string

from bilge.secrets.precision import github_token

APP = """printf '%s\\n' 'require "pg"' 'puts "pg #{PG.library_version}"' \\
  'puts PG::Connection.escape_string("it'"'"'s")' > /app/check.rb"""

SINGLE = f"""\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ruby ruby-pg build-essential libpq-dev
ARG GITHUB_ACCESS_TOKEN
RUN printf 'machine github.com login x-access-token password %s\\n' "$GITHUB_ACCESS_TOKEN" > /root/.netrc \\
 && mkdir -p /app && {APP}
RUN rm /root/.netrc && apt-get purge -y build-essential libpq-dev && apt-get autoremove -y \\
 && rm -rf /var/lib/apt/lists/*
CMD ["ruby", "/app/check.rb"]
"""

MULTI = f"""\
FROM bilge-base:bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends ruby ruby-pg build-essential libpq-dev
ARG GITHUB_ACCESS_TOKEN
RUN printf 'machine github.com login x-access-token password %s\\n' "$GITHUB_ACCESS_TOKEN" > /root/.netrc \\
 && mkdir -p /app && {APP}

FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ruby ruby-pg && rm -rf /var/lib/apt/lists/*
COPY --from=builder /app /app
CMD ["ruby", "/app/check.rb"]
"""


def token() -> str:
    """A fresh GitHub token of the right shape (checksum included), new every session."""
    return github_token("ghp_", "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30)))
