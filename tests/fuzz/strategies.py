"""Hypothesis strategies for the readers: image documents with arbitrary JSON in any field, and tar
streams whose header fields (and PAX records) hold arbitrary values."""

from __future__ import annotations

import io
import tarfile

from hypothesis import strategies as st

from tests.hostile import images

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)

# paths into each valid document (keys and indexes that exist in it), plus new keys
CONFIG_PATHS = [(), ("architecture",), ("os",), ("config",), ("config", "Env"), ("config", "Env", 0),
                ("config", "Cmd"), ("config", "Entrypoint"), ("config", "Labels"), ("config", "WorkingDir"),
                ("config", "User"), ("rootfs",), ("rootfs", "diff_ids"), ("rootfs", "diff_ids", 0), ("history",),
                ("history", 0), ("history", 0, "created_by"), ("history", 0, "empty_layer"), ("variant",)]
MANIFEST_PATHS = [(), ("config",), ("config", "digest"), ("config", "size"), ("config", "mediaType"), ("layers",),
                  ("layers", 0), ("layers", 0, "size"), ("layers", 0, "digest"), ("layers", 0, "mediaType"),
                  ("layers", 0, "annotations"), ("annotations",), ("mediaType",), ("artifactType",)]
INDEX_PATHS = [(), ("manifests",), ("manifests", 0), ("manifests", 0, "size"), ("manifests", 0, "digest"),
               ("manifests", 0, "platform"), ("manifests", 0, "annotations"), ("manifests", 0, "mediaType"),
               ("annotations",)]
SAVE_PATHS = [(), (0,), (0, "Config"), (0, "RepoTags"), (0, "RepoTags", 0), (0, "Layers"), (0, "Layers", 0),
              (0, "LayerSources")]


@st.composite
def mutated_image(draw, root):
    """Write an image under ``root`` with one (or two) fields of one document set to arbitrary JSON;
    return its reference."""
    doc = draw(st.sampled_from(["config-save", "config-oci", "manifest", "index", "docker-save"]))
    edits = draw(st.lists(st.tuples(st.sampled_from({
        "config-save": CONFIG_PATHS, "config-oci": CONFIG_PATHS, "manifest": MANIFEST_PATHS,
        "index": INDEX_PATHS, "docker-save": SAVE_PATHS}[doc]), json_values), min_size=1, max_size=2))

    def apply(d):
        for path, value in edits:
            try:
                d = images.set_path(d, path, value)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit removed the parent: keep what there is
        return d

    root.mkdir(parents=True, exist_ok=True)
    if doc == "config-save":
        images.docker_save(root / "img.tar", config=apply(images.base_config()))
        return f"docker-archive:{root / 'img.tar'}"
    if doc == "docker-save":
        images.docker_save(root / "img.tar", manifest=apply)
        return f"docker-archive:{root / 'img.tar'}"
    if doc == "config-oci":
        images.oci_layout(root / "oci", config=apply(images.base_config()))
    else:
        images.oci_layout(root / "oci", **{doc: apply})
    return f"oci:{root / 'oci'}"


HEADER_FIELDS = {  # (offset, length) in a ustar header
    "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12), "mtime": (136, 12),
    "typeflag": (156, 1), "linkname": (157, 100), "magic": (257, 8), "devmajor": (329, 8), "name": (0, 100),
}
PAX_KEYS = ["size", "uid", "gid", "mtime", "path", "linkpath", "atime", "uname", "SCHILY.xattr.user.x",
            "GNU.sparse.size", "GNU.sparse.map"]


@st.composite
def hostile_layer(draw) -> bytes:
    """A layer tar: a few good members, one with arbitrary header bytes and/or PAX records."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ok = tarfile.TarInfo("etc/ok")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(draw(st.sampled_from(["etc/x", "a/../../x", ".wh.", "usr/.wh..wh..opq", "x/"])))
        info.size = 5
        pax = draw(st.dictionaries(st.sampled_from(PAX_KEYS), st.text(max_size=24), max_size=3))
        info.pax_headers = pax
        tf.addfile(info, io.BytesIO(b"hello"))
    data = bytearray(buf.getvalue())
    # the last header block written for "info" (after any PAX header): find it by its name field
    for field, raw in draw(st.dictionaries(st.sampled_from(sorted(HEADER_FIELDS)), st.binary(max_size=12),
                                           max_size=3)).items():
        off, length = HEADER_FIELDS[field]
        blocks = [i for i in range(0, len(data) - 511, 512) if data[i + 257:i + 262] == b"ustar"]
        if not blocks:
            break
        base = blocks[-1]
        data[base + off:base + off + min(length, len(raw))] = raw[:length]
        if draw(st.booleans()):  # usually keep the checksum valid, so the field itself is tested
            data[base + 148:base + 156] = b"        "
            data[base + 148:base + 155] = f"{sum(data[base:base + 512]):06o}\0".encode()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    return bytes(data)
