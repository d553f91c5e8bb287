"""Renderers of the rewrites' results (squash, slim, scrub): json and text."""

from __future__ import annotations

from typing import Any

from bilge.rewrite.squash import SquashResult
from bilge.units import human_bytes

SCHEMA = "bilge.squash/1"  # slim and scrub: bilge.slim/1, bilge.scrub/1 (RewriteResult.command)


def to_json(res, elapsed: float, **extra: Any) -> dict[str, Any]:
    return squash_json(res, elapsed) if isinstance(res, SquashResult) else rewrite_json(res, elapsed, **extra)


def render_text(con, res, elapsed: float, plan=None, dry_run: bool = False) -> None:
    if isinstance(res, SquashResult):
        render_squash_text(con, res, elapsed)
    elif res.command == "slim":
        render_slim_text(con, res, plan, dry_run, elapsed)
    else:
        render_scrub_text(con, res, elapsed)


def squash_json(res, elapsed: float) -> dict[str, Any]:
    """``bilge.squash/1`` for a :class:`bilge.rewrite.SquashResult`."""
    return {
        "schema": "bilge.squash/1",
        "reference": res.reference,
        "output": str(res.output.output),
        "manifest_digest": res.output.manifest_digest,
        "image_id": res.output.config_digest,
        "from_layer": res.start,
        "layers_in": res.layers_in,
        "layers_out": len(res.output.layers),
        "squashed_layers": list(res.squashed_layers),
        "bytes_saved": res.bytes_saved,
        "range_file_bytes": res.range_file_bytes,
        "written_file_bytes": res.written_file_bytes,
        "input_bytes": res.input_bytes,
        "output_bytes": res.output_bytes,
        "entries": {"dirs": res.counts.dirs, "files": res.counts.files, "symlinks": res.counts.symlinks,
                    "hardlinks": res.counts.hardlinks, "other": res.counts.other,
                    "whiteouts": res.counts.whiteouts},
        "layers": [{"digest": r.digest, "diff_id": r.diff_id, "size": r.size, "media_type": r.media_type,
                    "copied": r.copied} for r in res.output.layers],
        "dropped": list(res.dropped),
        "findings": list(res.findings),
        "secrets_redacted": list(res.secrets_redacted),
        "secrets_kept": res.secrets_kept,
        "seconds": round(elapsed, 3),
    }


def rewrite_json(res, elapsed: float, **extra: Any) -> dict[str, Any]:
    """``bilge.slim/1`` / ``bilge.scrub/1`` for a :class:`bilge.rewrite.RewriteResult` (its details included)."""
    out = {
        "schema": f"bilge.{res.command}/1",
        "reference": res.reference,
        "output": str(res.output.output) if res.output else None,
        "manifest_digest": res.output.manifest_digest if res.output else None,
        "image_id": res.output.config_digest if res.output else None,
        "layers_in": res.layers_in,
        "layers_out": len(res.output.layers) if res.output else None,
        "input_bytes": res.input_bytes,
        "output_bytes": res.output_bytes,
    }
    out.update(res.details)
    out.update(extra)
    out["seconds"] = round(elapsed, 3)
    return out


def render_squash_text(con, res, elapsed: float) -> None:
    first, last = res.squashed_layers[0], res.squashed_layers[-1]
    span = f"layers {first}-{last}" if last > first else f"layer {first}"
    con.print(f"squashed {span} of {res.reference} into one layer", soft_wrap=True, markup=False)
    con.print(f"  output  {res.output.output}", soft_wrap=True, markup=False)
    for rec in res.output.layers:
        if rec.copied:
            con.print(f"  kept   {rec.digest[:19]}  {human_bytes(rec.size):>9}  (base layer, byte for byte)")
        else:
            c = res.counts
            con.print(f"  wrote  {rec.digest[:19]}  {human_bytes(rec.size):>9}  "
                      f"{c.files} files, {c.dirs} dirs, {c.symlinks} symlinks, {c.hardlinks} hardlinks"
                      + (f", {c.whiteouts} whiteouts" if c.whiteouts else ""))
    con.print(f"  dropped {human_bytes(res.bytes_saved)} of hidden files (uncompressed; analyze's reclaimable "
              f"bytes for {span})")
    con.print(f"  layers  {res.layers_in} -> {len(res.output.layers)};  stored {human_bytes(res.input_bytes)} -> "
              f"{human_bytes(res.output_bytes)};  {elapsed:.1f}s")
    con.print(f"  image   {res.output.config_digest}")


def render_scrub_text(con, res, elapsed: float) -> None:
    d = res.details
    total = d["config_findings"] + d["file_findings"]
    con.print(f"scrubbed {res.reference}: {total} secret finding(s)", soft_wrap=True, markup=False)
    con.print(f"  output  {res.output.output}", soft_wrap=True, markup=False)
    for f in d["findings"]:
        state = " (deleted file)" if f["deleted"] else ""
        con.print(f"  found   {f['rule']}  {f['where']}  {f['secret']}{state}", soft_wrap=True, markup=False)
    for a in d["actions"]:
        con.print(f"  done    {a}", soft_wrap=True, markup=False)
    if d["squashed_from"] is not None:
        con.print(f"  done    squashed layers {d['squashed_from']}-{res.layers_in - 1}: the files' bytes "
                  "are gone from the image", soft_wrap=True, markup=False)
    for p in d["removed_files"]:
        con.print(f"  done    removed {p}", soft_wrap=True, markup=False)
    con.print(f"  layers  {res.layers_in} -> {len(res.output.layers)};  stored "
              f"{human_bytes(res.input_bytes)} -> {human_bytes(res.output_bytes)};  {elapsed:.1f}s")


def render_slim_text(con, res, plan, dry_run: bool, elapsed: float) -> None:
    d = res.details
    verb = "would keep" if dry_run else "kept"
    con.print(f"slim {res.reference}: {verb} {d['kept_files']} of {d['visible_files']} files, "
              f"{human_bytes(d['kept_bytes'])} of {human_bytes(d['visible_bytes'])}", soft_wrap=True,
              markup=False)
    if res.output:
        con.print(f"  output  {res.output.output}", soft_wrap=True, markup=False)
    for path, files, size in plan.top:
        con.print(f"  {human_bytes(size):>9}  {files:>5} files  {path}", soft_wrap=True, markup=False)
    me = d.get("multistage_equivalent")
    if me:
        con.print(f"  multistage equivalent {human_bytes(me['bytes'])}: the bottom layer whole (the base image, "
                  f"{human_bytes(me['base_layer_bytes'])}) plus the kept files the layers above it wrote "
                  f"({human_bytes(me['kept_above_base_bytes'])}); slim keeps {human_bytes(d['kept_bytes'])} "
                  f"({d['kept_bytes'] / max(me['bytes'], 1):.2f}x)", soft_wrap=True, markup=False)
    if res.output:
        con.print(f"  layers  {res.layers_in} -> {len(res.output.layers)};  stored "
                  f"{human_bytes(res.input_bytes)} -> {human_bytes(res.output_bytes)};  {elapsed:.1f}s")
    if "probe" in d:
        render_probe_text(con, d)


def render_probe_text(con, d) -> None:
    """What ``slim --probe`` ran and kept (``details["probe"]``)."""
    p = d["probe"]
    origins = d.get("kept_by_origin", {})
    con.print("  kept by origin: " + ", ".join(
        f"{name} {v['files']} files {human_bytes(v['bytes'])}" for name, v in sorted(origins.items())),
        soft_wrap=True, markup=False)
    con.print(f"  probes  {len(p['probes'])} run in {p['probe_seconds']:.1f}s, {p['traced_paths']} image paths "
              f"touched; filesystem materialised in {p['materialise_seconds']:.1f}s, verified in "
              f"{p['verify_seconds']:.1f}s", soft_wrap=True, markup=False)
    for c in p["probes"]:
        o, s = c["original"], c["slim"]
        state = "same result on the slimmed filesystem" if c["ok"] else f"FAILED after slimming: {c['why']}"
        con.print(f"  probe   {c['probe']}: exit {o['exit_code']}, {o['stdout_bytes']} bytes of stdout, "
                  f"{o['paths_found']} paths found, {o['paths_not_found']} not found"
                  + (f"; slim run exit {s['exit_code']}" if s else "") + f"; {state}", soft_wrap=True, markup=False)
