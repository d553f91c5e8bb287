"""Command-line entry point: parse arguments, call the library, map errors to exit codes.

Each command lives in ``bilge.commands.<name>`` and exposes ``register(app)``. Exit codes:
0 clean, 1 findings or a failed CI rule, 2 bad input or usage. A :class:`BilgeError` prints one
line on stderr; a traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

try:  # typer >= 0.2x vendors click (typer._click) and no longer depends on it
    from typer._click.exceptions import ClickException
    from typer.exceptions import Abort, Exit
except ImportError:  # older typer: click is a dependency
    from click.exceptions import Abort, ClickException, Exit  # type: ignore[no-redef]

from bilge import __version__, cleanup
from bilge.errors import BilgeError

app = typer.Typer(
    name="bilge",
    help="Where the bytes of a container image go, what secrets it still carries, and how to make it smaller.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMAND_MODULES = ("analyze", "secrets", "lint", "deps", "rewrite", "diff", "report")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bilge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug or bool(os.environ.get("BILGE_DEBUG"))


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"bilge.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command not built yet
        if exc.name != f"bilge.commands.{_name}":
            raise
        continue
    _module.register(app)


MAX_ERROR_CHARS = 1000


def error_line(message: str) -> None:
    """Print one error line on stderr: newlines folded, at most MAX_ERROR_CHARS characters."""
    line = " ".join(message.split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 30].rstrip() + f" … ({len(line):,} characters)"
    sys.stderr.write(f"bilge: error: {line}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> None:
    from bilge.fs import fewer_collections

    cleanup.install_handlers()
    try:
        with fewer_collections():  # a command's objects mostly live until it ends (bilge.fs)
            _main(argv)
    finally:  # temporary paths still recorded now are garbage, however the run ended (typer turns
        # Ctrl-C into Exit(130) before we see it); a second signal during this changes nothing
        with cleanup.signals_held(discard=True):
            cleanup.remove_all()


def _main(argv: list[str] | None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("BILGE_DEBUG"))
    try:
        rv = app(args=argv, standalone_mode=False)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except ClickException as exc:  # usage errors
        exc.show()
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        sys.exit(130)
    except cleanup.Terminated as exc:
        sys.exit(128 + exc.signum)
    except BilgeError as exc:
        if debug:
            raise
        error_line(str(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `bilge analyze | head`: the reader is gone, that is not an error
        _silence_stdout()
        sys.exit(0)
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        error_line(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))
        sys.exit(2)
    except BaseException:
        # The interruption's exception, turned into another by the code it landed in: threading's
        # Condition.wait, interrupted while it takes its lock back, raises "release unlocked lock"
        # from Thread.start() (seen in CI: SIGHUP while a gzip writer started its threads).
        if (signum := cleanup.interrupted()) is not None and not debug:
            sys.exit(128 + signum)
        raise
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    if (signum := cleanup.interrupted()) is not None:  # its exception was swallowed (see checkpoint)
        sys.exit(128 + signum)
    sys.exit(rv if isinstance(rv, int) else 0)
