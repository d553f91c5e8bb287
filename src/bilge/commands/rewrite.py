"""`bilge squash`, `bilge scrub`, `bilge slim`: write a smaller, cleaner image, offline."""

from __future__ import annotations

import sys
import time
from enum import StrEnum

import typer

from bilge.commands._common import TextOrJson as Format
from bilge.commands._common import warn as _warn
from bilge.commands._sourceopts import SOURCE_ARGS, SourceArgs, with_source_options
from bilge.errors import BilgeError
from bilge.format.common import console
from bilge.format.interface import document
from bilge.format.rewrite import (
    render_scrub_text,
    render_slim_text,
    render_squash_text,
    rewrite_json,
    squash_json,
)


class Mode(StrEnum):
    remove = "remove"
    redact = "redact"


class CompressionKind(StrEnum):
    gzip = "gzip"
    zstd = "zstd"
    none = "none"


OUTPUT_HELP = ("Where to write: oci:DIR or oci:DIR:TAG, oci-archive:PATH or oci-archive:PATH:TAG, "
               "docker-archive:PATH or docker-archive:PATH:NAME:TAG (what `docker load` reads), "
               "docker://HOST/REPO:TAG (push) or docker-daemon:NAME:TAG (load into the engine).")
LEVEL_HELP = ("Compression level. gzip: 1-3 use ISA-L (fast), 4-9 use zlib (smaller, slower); default 3. "
              "zstd: 1-22, default 3.")


def _compression(kind: CompressionKind, level: int | None):
    from bilge.sink import Compression

    return Compression(kind.value, level)


def _check_output_compat(output: str, kind: CompressionKind) -> None:
    if output.startswith("docker-archive:") and kind is CompressionKind.zstd:
        _warn("docker load of Docker Engine 20.10 cannot read zstd layers; newer engines can. "
              "Use --compression gzip for older engines.")


def register(app: typer.Typer) -> None:
    _register_squash(app)
    _register_scrub(app)
    _register_slim(app)


def _register_squash(app: typer.Typer) -> None:
    @app.command("squash")
    @with_source_options
    def squash_cmd(
        reference: str = typer.Argument(..., metavar="REF",
                                        help="Image: docker-archive:PATH, oci:DIR, oci-archive:PATH (each with an optional "
                                             ":TAG), or a path (sniffed)."),
        output: str = typer.Option(..., "--output", "-o", help=OUTPUT_HELP),
        from_layer: int = typer.Option(None, "--from-layer", min=0,
                                       help="Keep layers 0..N-1 untouched; squash N..last into one."),
        base: str = typer.Option(None, "--base",
                                 help="Keep the layers of this base image untouched; squash the rest."),
        compression: CompressionKind = typer.Option(CompressionKind.gzip, "--compression",
                                                    help="Layer compression."),
        level: int = typer.Option(None, "--level", help=LEVEL_HELP),
        platform: str = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT, for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Report format."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest verification of the input."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No report, no progress."),
        keep_secrets: bool = typer.Option(False, "--keep-secrets",
                                          help="Copy secrets found in the history and config as they are "
                                               "(default: redacted, as scrub does)."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> None:
        """Merge layers into one that holds only what is visible; report the bytes dropped.

        Reproducible: the same input and options give the same bytes (mtimes clamped to SOURCE_DATE_EPOCH when set).
        """
        from bilge.commands._common import progress_reporter
        from bilge.rewrite import squash
        from bilge.sink import parse_output, source_date_epoch
        spec = parse_output(output)
        comp = _compression(compression, level)
        _check_output_compat(output, compression)
        clamp = source_date_epoch()
        started = time.perf_counter()
        base_image = None
        if base:
            with source_args.open(base, platform=platform, verify=False, quiet=quiet) as bsrc:
                base_image = bsrc.image
        with source_args.open(reference, platform=platform, verify=not no_verify,
                              quiet=quiet or fmt is Format.json) as src:
            advance, stop = progress_reporter(src, quiet or fmt is Format.json)
            try:
                ruleset, ignores = _secrets_setup() if not keep_secrets else (None, ())
                res = squash(src, spec, from_layer=from_layer, base=base_image, compression=comp, clamp=clamp,
                             progress=advance, command=_command_line("squash", from_layer, base),
                             keep_secrets=keep_secrets, ruleset=ruleset, ignores=ignores)
            finally:
                stop()
        elapsed = time.perf_counter() - started
        if fmt is Format.json:
            sys.stdout.write(document(squash_json(res, elapsed)))
        elif not quiet:
            render_squash_text(console(), res, elapsed)
        for line in res.dropped:
            _warn(f"not written: {line}")
        for line in res.findings:
            _warn(line)
        _secrets_note(res.secrets_redacted, keep_secrets, quiet or fmt is Format.json)


def _register_scrub(app: typer.Typer) -> None:
    @app.command("scrub")
    @with_source_options
    def scrub_cmd(
        reference: str = typer.Argument(..., metavar="REF", help="Image (as for squash)."),
        output: str = typer.Option(..., "--output", "-o", help=OUTPUT_HELP),
        env: Mode = typer.Option(Mode.remove, "--env", help="ENV variables holding a secret: remove or redact."),
        labels: Mode = typer.Option(Mode.remove, "--labels", help="Labels holding a secret: remove or redact."),
        severity: str = typer.Option("high", "--severity", "-s",
                                     help="Scrub findings at or above this severity (as `bilge secrets`)."),
        remove_files: bool = typer.Option(False, "--remove-files",
                                          help="Also delete files that still hold a secret in the final "
                                               "filesystem (otherwise they stay, and scrub exits 1)."),
        compression: CompressionKind = typer.Option(CompressionKind.gzip, "--compression", help="Layer compression."),
        level: int = typer.Option(None, "--level", help=LEVEL_HELP),
        platform: str = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT, for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Report format."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest verification of the input."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No report, no progress."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> None:
        """Remove the secrets `bilge secrets` finds: history values redacted (the instruction stays
        readable), ENV/labels removed or redacted, and files holding a secret squashed away from the
        first layer that has one. Exit 1 when secrets remain in visible files (see --remove-files)."""
        from bilge.commands._common import progress_reporter
        from bilge.rewrite import scrub
        from bilge.sink import parse_output, source_date_epoch
        spec = parse_output(output)
        comp = _compression(compression, level)
        _check_output_compat(output, compression)
        ruleset, ignores = _secrets_setup()
        from bilge.secrets.rules import SEVERITIES

        if severity not in SEVERITIES:
            raise BilgeError(f"--severity {severity}: expected one of {', '.join(SEVERITIES)}")
        started = time.perf_counter()
        with source_args.open(reference, platform=platform, verify=not no_verify,
                              quiet=quiet or fmt is Format.json) as src:
            advance, stop = progress_reporter(src, quiet or fmt is Format.json)
            try:
                res = scrub(src, spec, env_mode=env.value, label_mode=labels.value, remove_files=remove_files,
                            ruleset=ruleset, severity=severity, ignores=ignores,
                            compression=comp, clamp=source_date_epoch(), progress=advance,
                            command="bilge scrub" + (" --remove-files" if remove_files else ""))
            finally:
                stop()
        elapsed = time.perf_counter() - started
        d = res.details
        if fmt is Format.json:
            sys.stdout.write(document(rewrite_json(res, elapsed)))
        elif not quiet:
            render_scrub_text(console(), res, elapsed)
        for p in d["remaining"]:
            _warn(f"a secret is still in {p} (visible in the final filesystem): fix the build, or rerun "
                  "with --remove-files")
        if d["remaining"]:
            raise typer.Exit(1)


def _register_slim(app: typer.Typer) -> None:
    @app.command("slim")
    @with_source_options
    def slim_cmd(
        reference: str = typer.Argument(..., metavar="REF", help="Image (as for squash)."),
        keep: list[str] = typer.Option([], "--keep", help="A path to keep (file or directory; repeatable). "
                                                          "Programs among them bring their library closure."),
        entrypoint: bool = typer.Option(False, "--entrypoint", help="Keep the Entrypoint/Cmd programs and their "
                                                                    "closure."),
        probe: list[str] = typer.Option([], "--probe", metavar="'CMD ARG...'",
                                        help="RUNS THE IMAGE'S CODE: run this command (repeatable) in a sandbox "
                                             "built from the image (bwrap: no network, no host file, an "
                                             "unprivileged user), keep every file it touches plus their library "
                                             "closure, then run it again on the slimmed filesystem and fail "
                                             "unless its exit code and stdout are the same. Needs bwrap and strace."),
        probe_file: str = typer.Option(None, "--probe-file", metavar="FILE",
                                       help="More probes, one command line per line (# comments)."),
        probe_timeout: float = typer.Option(60.0, "--probe-timeout", min=0.1,
                                            help="Wall-clock limit of each probe run, in seconds."),
        probe_memory: int = typer.Option(4096, "--probe-memory", min=64,
                                         help="Address-space limit of each probe run, in MiB."),
        probe_compare: str = typer.Option("output", "--probe-compare", metavar="output|exit",
                                          help="What must match after slimming: exit code and stdout (output), "
                                               "or the exit code only (exit), for programs whose output varies."),
        output: str = typer.Option(None, "--output", "-o", help=OUTPUT_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be kept and its size; write nothing."),
        compression: CompressionKind = typer.Option(CompressionKind.gzip, "--compression", help="Layer compression."),
        level: int = typer.Option(None, "--level", help=LEVEL_HELP),
        platform: str = typer.Option(None, "--platform", help="OS/ARCH or OS/ARCH/VARIANT, for multi-platform images."),
        fmt: Format = typer.Option(Format.text, "--format", "-f", help="Report format."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip digest verification of the input."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No report, no progress."),
        keep_secrets: bool = typer.Option(False, "--keep-secrets",
                                          help="Copy secrets found in the history and config as they are "
                                               "(default: redacted, as scrub does)."),
        source_args: SourceArgs = SOURCE_ARGS,
    ) -> None:
        """The multistage build after the fact: keep the given paths, the ELF closure of every program
        kept (and of the entrypoint), /etc/passwd, /etc/group, nsswitch, CA certificates, timezone data
        and /tmp; drop the rest into one layer. Exit 1 when a needed library is missing."""
        from bilge.commands._common import progress_reporter
        from bilge.rewrite import slim
        from bilge.sink import parse_output, source_date_epoch
        if not dry_run and not output:
            raise BilgeError("slim needs -o OUT (or --dry-run)")
        if probe_compare not in ("output", "exit"):
            raise BilgeError(f"--probe-compare {probe_compare}: expected output or exit")
        probes = None
        if probe or probe_file:
            from bilge.probe import ProbeOptions, parse_probes

            probes = ProbeOptions(parse_probes(probe, probe_file), timeout=probe_timeout,
                                  memory=probe_memory << 20, compare=probe_compare)
        spec = parse_output(output) if output and not dry_run else None
        comp = _compression(compression, level)
        if output:
            _check_output_compat(output, compression)
        started = time.perf_counter()
        cmd = "bilge slim " + " ".join(f"--keep {k}" for k in keep) + (" --entrypoint" if entrypoint else "")
        if probes is not None:
            import shlex

            cmd += "".join(f" --probe {shlex.quote(shlex.join(p))}" for p in probes.probes)
        with source_args.open(reference, platform=platform, verify=not no_verify,
                              quiet=quiet or fmt is Format.json) as src:
            advance, stop = progress_reporter(src, quiet or fmt is Format.json)
            try:
                ruleset, ignores = _secrets_setup() if not keep_secrets else (None, ())
                if probes is None:
                    _interpreter_hint(src.image)
                res, plan = slim(src, spec, keep, entrypoint=entrypoint, compression=comp,
                                 clamp=source_date_epoch(), progress=advance, dry_run=dry_run, command=cmd.strip(),
                                 keep_secrets=keep_secrets, ruleset=ruleset, ignores=ignores, probe=probes)
            finally:
                stop()
        elapsed = time.perf_counter() - started
        d = res.details
        if fmt is Format.json:
            doc = rewrite_json(res, elapsed, dry_run=dry_run, kept=sorted("/" + p for p in plan.keep.exact | plan.keep.trees))
            sys.stdout.write(document(doc))
        elif not quiet:
            render_slim_text(console(), res, plan, dry_run, elapsed)
        if res.output:
            _secrets_note(d.get("secrets_redacted", []), keep_secrets, quiet or fmt is Format.json)
        for line in d["missing"]:
            _warn(f"missing library: {line}")
        if d.get("probe", {}).get("tmpdir_note"):
            _warn(d["probe"]["tmpdir_note"])
        failed = [c for c in d.get("probe", {}).get("probes", []) if not c["ok"]]
        for c in failed:
            _warn(f"probe {c['probe']}: after slimming, {c['why']}" + ("; not found in the slimmed filesystem "
                  "(found in the original): " + ", ".join(c["missing"][:20]) if c["missing"] else ""))
        if failed:
            _warn("no image written: the slimmed filesystem does not pass the probes (add --keep PATH for "
                  "what is missing)")
        if d["missing"] or failed:
            raise typer.Exit(1)


def _secrets_note(redacted, keep_secrets: bool, quiet: bool) -> None:
    """Say what squash/slim redacted from the config (stdout, in the summary), or warn about --keep-secrets."""
    if keep_secrets:
        from bilge.secrets.rewriting import KEEP_WARNING

        _warn(KEEP_WARNING)
        return
    if quiet:
        return
    from bilge.format.common import console

    con = console()
    if redacted:
        con.print(f"  secrets {len(redacted)} redacted from the history and config (--keep-secrets to copy them):",
                  soft_wrap=True, markup=False)
        for line in redacted:
            con.print(f"          {line}", soft_wrap=True, markup=False)
    else:
        con.print("  secrets none found in the history and config", soft_wrap=True, markup=False)


def _interpreter_hint(image) -> None:
    from bilge.probe.session import interpreter_entrypoint

    found = interpreter_entrypoint(dict(image.container_config))
    if found:
        _warn(f"the entrypoint runs {found}, which loads files at run time that the library closure cannot "
              "see: the result may miss them. --probe 'CMD ARG...' runs the program and keeps what it opens.")



def _secrets_setup():
    """The rules and silenced findings `bilge secrets` would use here ([tool.bilge.secrets], .bilgeignore)."""
    from pathlib import Path

    from bilge.config import find_config
    from bilge.secrets.ignore import from_config, read_bilgeignore
    from bilge.secrets.rules import load_ruleset

    found, table = find_config()
    section = table.get("secrets", {}) if isinstance(table, dict) else {}
    if not isinstance(section, dict):
        raise BilgeError(f"{found}: [tool.bilge.secrets] must be a table")
    ruleset = load_ruleset(section, found.parent if found else None)
    ignores = from_config(section.get("ignore"), str(found) if found else "config")
    if Path(".bilgeignore").is_file():
        ignores += read_bilgeignore(Path(".bilgeignore"))
    return ruleset, ignores


def _command_line(name: str, from_layer: int | None, base: str | None) -> str:
    parts = [f"bilge {name}"]
    if from_layer:
        parts.append(f"--from-layer {from_layer}")
    if base:
        parts.append("--base <image>")
    return " ".join(parts)


__all__ = ["register", "BilgeError"]
