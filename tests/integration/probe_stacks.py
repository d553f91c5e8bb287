"""Application images for `bilge slim --probe`: three built from Debian's packages only (flask,
express, rails: the engine's builds need Debian's mirror and nothing else) and two built the way most
users build them, from the language's own registry (flask-pip: Flask + gunicorn from PyPI into a venv
with pip; express-npm: express from the npm registry into /app/node_modules with npm).

Each stack has a single-stage Dockerfile the way the story's first Dockerfile is written (build tools
and headers installed next to the runtime), the hand-made multistage equivalent (the runtime only in a
fresh final stage), the probes that exercise the app (load its libraries, boot it and answer one
request over the sandbox's loopback), and the runtime trees a user would name by hand for
``slim --keep``. The engine's builds reach Debian's mirror (plain http) but cannot verify the TLS of
PyPI or the npm registry on these machines (an intercepting proxy's certificate), so, as for the
precision corpus, the registry's packages are downloaded here, by the host's pip or npm, into the
build context (:func:`write_context`), and the build installs them with the image's own pip or npm
from that download (`pip install --no-index --find-links /tmp/wheels flask gunicorn`). For npm that
does not work (Debian's npm 9 in the image does not use the host npm's cached registry documents:
`npm ci --offline` fails with ENOTCACHED), so the host's `npm install express` runs in the build
context and the Dockerfile copies its package.json, lock file and node_modules into /app (express
and its dependencies are JavaScript only: the tree is the same whichever npm unpacks it). When the
download fails (no npm on the host, the registry unreachable: the npm registry in CI) the stack is
unavailable (:class:`Unavailable`). Used by tests/integration/test_probe_stacks.py
(BILGE_PROBE_STACKS=all) and benchmarks/probe_bench.py.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.tools import ToolError, run_tool, which


@dataclass(frozen=True)
class Stack:
    name: str
    single: str
    multi: str
    files: dict[str, str]
    probes: tuple[str, ...]
    keep: tuple[str, ...]  # what a user names by hand for `slim --keep` (with --entrypoint)
    env: dict[str, str] = field(default_factory=dict)
    fetch: str | None = None  # "pip" or "npm": packages downloaded into the build context first


FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "<h1>hello from flask</h1>"
"""

_FLASK_PKGS = "python3-flask gunicorn"
FLASK = Stack(
    name="flask",
    single=f"""\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends {_FLASK_PKGS} build-essential python3-dev \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY app.py /app/app.py
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
""",
    multi=f"""\
FROM bilge-base:bookworm AS build
COPY app.py /app/app.py
RUN python3 -c 1 2>/dev/null || true

FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends {_FLASK_PKGS} && rm -rf /var/lib/apt/lists/*
COPY --from=build /app /app
WORKDIR /app
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
""",
    files={"app.py": FLASK_APP},
    probes=(
        "python3 -c 'import app; print(app.app.test_client().get(\"/\").data.decode())'",
        "sh -c 'gunicorn -b 127.0.0.1:8000 app:app 2>/dev/null & for i in $(seq 100); do python3 -c "
        "\"import urllib.request as u; print(u.urlopen(\\\"http://127.0.0.1:8000/\\\").read().decode())\" "
        "2>/dev/null && break; sleep 0.2; done; kill $!'",
        "gunicorn --version",
    ),
    keep=("/app", "/usr/lib/python3", "/usr/lib/python3.11", "/usr/bin/gunicorn"),
)

EXPRESS_APP = """\
const express = require("express");
const app = express();
app.get("/", (req, res) => res.send("hello from express"));
module.exports = app;
if (require.main === module) app.listen(3000);
"""

EXPRESS = Stack(
    name="express",
    single="""\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nodejs node-express npm build-essential \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY app.js /app/app.js
CMD ["node", "/app/app.js"]
""",
    multi="""\
FROM bilge-base:bookworm AS build
COPY app.js /app/app.js

FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nodejs node-express && rm -rf /var/lib/apt/lists/*
COPY --from=build /app /app
WORKDIR /app
CMD ["node", "/app/app.js"]
""",
    files={"app.js": EXPRESS_APP},
    probes=(
        "node -e 'const app = require(\"/app/app.js\"); const s = app.listen(0, \"127.0.0.1\", () => "
        "require(\"http\").get(\"http://127.0.0.1:\" + s.address().port + \"/\", r => { let b = \"\"; "
        "r.on(\"data\", d => b += d); r.on(\"end\", () => { console.log(r.statusCode, b); s.close(); }); }))'",
        "node --version",
    ),
    keep=("/app", "/usr/share/nodejs", "/usr/lib/x86_64-linux-gnu/nodejs"),
)

RAILS_APP = """\
require "rails"
require "action_controller/railtie"

class App < Rails::Application
  config.eager_load = false
  config.logger = Logger.new(nil)
  config.secret_key_base = "0" * 64
  config.hosts.clear
  config.root = "/app"
end
App.initialize!
App.routes.draw { root to: proc { [200, {"Content-Type" => "text/plain"}, ["hello from rails"]] } }
"""

_RAILS_PKGS = "ruby ruby-rails ruby-pg ruby-mysql2 ruby-nokogiri passenger"
RAILS = Stack(
    name="rails",
    single=f"""\
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends {_RAILS_PKGS} \\
      build-essential ruby-dev libpq-dev default-libmysqlclient-dev \\
 && rm -rf /var/lib/apt/lists/*
ENV RAILS_ENV=production
WORKDIR /app
COPY app.rb /app/app.rb
CMD ["ruby", "-e", "require '/app/app'; puts Rails.application.class"]
""",
    multi=f"""\
FROM bilge-base:bookworm AS build
COPY app.rb /app/app.rb

FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends {_RAILS_PKGS} && rm -rf /var/lib/apt/lists/*
ENV RAILS_ENV=production
COPY --from=build /app /app
WORKDIR /app
CMD ["ruby", "-e", "require '/app/app'; puts Rails.application.class"]
""",
    files={"app.rb": RAILS_APP},
    probes=(
        "ruby -e 'require \"pg\"; require \"mysql2\"; require \"nokogiri\"; "
        "puts PG.library_version > 0, Mysql2::VERSION, Nokogiri::HTML(\"<p>hi</p>\").text'",
        "ruby -e 'require \"/app/app\"; require \"rack/mock\"; "
        "puts Rack::MockRequest.new(Rails.application).get(\"/\").body'",
        "passenger --version",
    ),
    keep=("/app", "/usr/lib/ruby", "/usr/share/rubygems-integration", "/var/lib/gems",
          "/usr/lib/x86_64-linux-gnu/ruby", "/usr/lib/x86_64-linux-gnu/rubygems-integration",
          "/usr/share/passenger", "/usr/bin/passenger"),
)

# Flask + gunicorn from PyPI into a venv, the common modern way (python3 -m venv; pip install).
_PIP_BUILD = """\
RUN apt-get update && apt-get install -y --no-install-recommends \\
      python3 python3-pip python3-venv build-essential python3-dev \\
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,source=wheels,target=/tmp/wheels \\
    python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels flask gunicorn
"""
_PIP_RUN = """\
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
"""
FLASK_PIP = Stack(
    name="flask-pip",
    single=f"""\
FROM bilge-base:bookworm
{_PIP_BUILD}COPY app.py /app/app.py
{_PIP_RUN}""",
    multi=f"""\
FROM bilge-base:bookworm AS build
{_PIP_BUILD}COPY app.py /app/app.py

FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
{_PIP_RUN}""",
    files={"app.py": FLASK_APP},
    probes=FLASK.probes,  # python3 and gunicorn are /opt/venv/bin's, first on the image's PATH
    keep=("/app", "/opt/venv", "/usr/lib/python3.11", "/usr/bin/python3", "/usr/bin/python3.11"),
    fetch="pip",
)

# express from the npm registry into /app/node_modules (`npm install express`, run on the host: see
# the module's docstring), node and npm from Debian.
_NPM_BUILD = """\
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm build-essential \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json /app/
COPY node_modules /app/node_modules
COPY app.js /app/app.js
"""
EXPRESS_NPM = Stack(
    name="express-npm",
    single=f"""\
FROM bilge-base:bookworm
{_NPM_BUILD}CMD ["node", "/app/app.js"]
""",
    multi=f"""\
FROM bilge-base:bookworm AS build
{_NPM_BUILD}
FROM bilge-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nodejs && rm -rf /var/lib/apt/lists/*
COPY --from=build /app /app
WORKDIR /app
CMD ["node", "/app/app.js"]
""",
    files={"app.js": EXPRESS_APP},
    probes=EXPRESS.probes,
    # /usr/share/nodejs: Debian's node loads some of its builtins from there (cjs-module-lexer, undici,
    # acorn); without it node aborts at start-up ("Cannot load externalized builtin").
    keep=("/app", "/usr/share/nodejs", "/usr/lib/x86_64-linux-gnu/nodejs"),
    fetch="npm",
)

STACKS = {s.name: s for s in (FLASK, EXPRESS, RAILS, FLASK_PIP, EXPRESS_NPM)}


class Unavailable(Exception):
    """A stack's packages could not be downloaded from its registry here (the reason)."""


def _fetch_pip(ctx: Path) -> None:
    # The wheels pip would pick for the image's CPython 3.11 (Debian bookworm's), whatever runs this.
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
           "--implementation", "cp", "--platform", "manylinux2014_x86_64", "--dest", str(ctx / "wheels"),
           "flask", "gunicorn"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not list((ctx / "wheels").glob("[Ff]lask-*.whl")):
        raise Unavailable(f"cannot download flask and gunicorn from PyPI: {proc.stderr.strip()[-300:]}")


def _fetch_npm(ctx: Path) -> None:
    if which("npm") is None:
        raise Unavailable("npm is not installed on this host (it installs express from the npm registry)")
    try:
        run_tool("npm", "install", "--prefix", ctx, "--no-audit", "--no-fund", "--fetch-retries", "1",
                 "express", timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable("cannot install express from the npm registry: no answer in 300 s") from exc
    except ToolError as exc:
        said = [ln.split(" ", 2)[-1].strip() for ln in (exc.output or "").splitlines()
                if ln.startswith(("npm error", "npm ERR!")) and ln.split(" ", 2)[-1].strip()]
        raise Unavailable(f"cannot install express from the npm registry: {'; '.join(said[:2])}") from exc


def write_context(stack: Stack, kind: str, ctx: Path) -> None:
    """Write the build context of ``stack``'s ``kind`` ("single" or "multi") Dockerfile into ``ctx``,
    with its registry packages downloaded (raises :class:`Unavailable` when they cannot be)."""
    (ctx / "Dockerfile").write_text(stack.single if kind == "single" else stack.multi)
    for name, body in stack.files.items():
        (ctx / name).write_text(body)
    if stack.fetch == "pip":
        _fetch_pip(ctx)
    elif stack.fetch == "npm":
        _fetch_npm(ctx)
