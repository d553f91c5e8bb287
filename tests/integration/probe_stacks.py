"""Application images for `bilge slim --probe`, built from Debian's packages only (no PyPI, no npm, no
rubygems: the engine's builds reach Debian's mirror and nothing else).

Each stack has a single-stage Dockerfile the way the story's first Dockerfile is written (build tools
and headers installed next to the runtime), the hand-made multistage equivalent (the runtime packages
only in a fresh final stage), the probes that exercise the app (load its libraries, boot it and
answer one request over the sandbox's loopback), and the runtime trees a user would name by hand
for ``slim --keep``. Used by tests/integration/test_probe_stacks.py (BILGE_PROBE_STACKS=all) and
benchmarks/probe_bench.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stack:
    name: str
    single: str
    multi: str
    files: dict[str, str]
    probes: tuple[str, ...]
    keep: tuple[str, ...]  # what a user names by hand for `slim --keep` (with --entrypoint)
    env: dict[str, str] = field(default_factory=dict)


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

STACKS = {s.name: s for s in (FLASK, EXPRESS, RAILS)}
