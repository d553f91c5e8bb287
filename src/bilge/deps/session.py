"""One program being loaded (:class:`_Session`) and the collected files (:class:`_Sink`)."""

from __future__ import annotations

import posixpath
import re
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bilge.deps.ldconfig import _MUSL_RESERVED
from bilge.deps.model import Edge, Likely, _Fail, _Obj
from bilge.deps.tree import Tree
from bilge.elf import ElfInfo

if TYPE_CHECKING:
    from bilge.deps.resolver import Resolver


class _Session:
    """The state of one program being loaded: objects in load order, names they answer to, edges."""

    def __init__(self, r: Resolver, sink: _Sink, main: _Obj, flavor: str, record_edges: bool = True) -> None:
        self.r = r
        self.sink = sink
        self.main = main
        self.flavor = flavor
        self.loaded: list[_Obj] = [main]
        self.by_name: dict[str, _Obj] = {n: main for n in main.names}
        if flavor == "glibc" and main.info.soname:
            self.by_name.setdefault(main.info.soname, main)
        self.by_path: dict[str, _Obj] = {main.path: main}
        self.edges: dict[str, list[Edge]] = {}
        self.queue: deque[_Obj] = deque([main])
        self.interp: str | None = main.info.interp
        self.interp_obj: _Obj | None = None
        self.interp_canonical: str | None = None
        self.record_edges = record_edges

    def adopt(self, other: _Session) -> None:
        """Start from what ``other`` has loaded (a dlopen happens after the program is loaded)."""
        self.loaded = list(other.loaded)
        self.by_name = dict(other.by_name)
        self.by_path = dict(other.by_path)
        self.interp, self.interp_obj, self.interp_canonical = other.interp, other.interp_obj, other.interp_canonical
        self.queue = deque()

    def _edge(self, req: _Obj, edge: Edge) -> None:
        if self.record_edges:
            self.edges.setdefault(req.path, []).append(edge)

    def _name(self, obj: _Obj, name: str) -> None:
        obj.names.add(name)
        self.by_name.setdefault(name, obj)

    def start_interp(self) -> None:
        r, main, sink = self.r, self.main, self.sink
        interp = self.interp
        if interp:
            res = r.tree.resolve(interp, r.cwd)
            iinfo = r.elf_at(res.path) if res.kind == "file" else None
            if iinfo is None:
                self._edge(main, Edge(interp, None, interp, "interp"))
                sink.miss(interp, main.path, "the program interpreter (PT_INTERP) is not in the image"
                          if res.kind == "missing" else f"{interp} is not a loadable ELF file")
                return
            obj = _Obj(res.path, interp, iinfo, None, set(), origin=posixpath.dirname(interp))
            self._name(obj, interp)
            if iinfo.soname and self.flavor == "glibc":
                self._name(obj, iinfo.soname)
            self.loaded.insert(0, obj)
            self.by_path[res.path] = obj
            self.interp_obj, self.interp_canonical = obj, res.path
            self._edge(main, Edge(interp, res.path, interp, "interp"))
            sink.add_object(res.path, iinfo, "interp", main.path, res.links)
        elif self.flavor == "musl":  # a shared object: musl maps libc's names to the default loader
            self.interp = r.default_interp(main.info, "musl")
            if self.interp:
                res = r.tree.resolve(self.interp)
                if res.kind == "file" and (iinfo := r.elf_at(res.path)) is not None:
                    self.interp_obj = _Obj(res.path, self.interp, iinfo, None, {self.interp},
                                           origin=posixpath.dirname(self.interp))
                    self.by_path[res.path] = self.interp_obj

    def preload_names(self) -> list[str]:
        names: list[str] = []
        if self.flavor != "glibc":
            return names
        lp = self.r.env.get("LD_PRELOAD")
        if lp:
            names.extend(n for n in re.split(r"[ :]", lp) if n)
        res = self.r.tree.resolve("/etc/ld.so.preload")
        if res.kind == "file":
            text = (self.r.view.read_small(res.path) or b"").decode("utf-8", "surrogateescape")
            names.extend(n for n in re.split(r"[\s:]", text) if n)
        return names

    def drain(self, role: str) -> None:
        while self.queue:
            obj = self.queue.popleft()
            for name in obj.info.needed:
                self.load(name, obj, role, f"needed by {obj.path}" if role == "likely" else None)

    def load(self, name: str, req: _Obj, role: str, reason: str | None = None) -> _Obj | None:
        r, sink, flavor = self.r, self.sink, self.flavor
        likely = role == "likely"
        # Already loaded under this name (glibc: or this SONAME, which is in the names too)?
        o = self.by_name.get(name)
        if o is not None:
            self._edge(req, Edge(name, o.path, None, "loaded", likely=likely))
            return o
        if flavor == "musl" and name.startswith("lib") and name[3:].startswith(_MUSL_RESERVED):
            iobj = self.interp_obj
            if iobj is None:
                self._edge(req, Edge(name, None, None, "loader"))
                sink.miss(name, req.path, "musl maps this name to its loader, which is not in the image")
                return None
            self._edge(req, Edge(name, iobj.path, self.interp, "loader", likely=likely))
            if iobj not in self.loaded:
                self.loaded.append(iobj)
                sink.add_object(iobj.path, iobj.info, "needed" if self.main.info.interp else "interp",
                                req.path, r.tree.resolve(iobj.opened).links)
            return iobj
        if flavor == "musl":
            got = r._musl_find(name, req, self.main, self.interp or "/lib/ld-musl.so.1")
        else:
            got = r._glibc_find(name, req, self.main, self.interp_canonical)
        if isinstance(got, _Fail):
            self._edge(req, Edge(name, None, None, "missing", got.reason, likely=likely))
            if likely:
                sink.likely_absent(name, reason or "", got.reason)
            else:
                sink.miss(name, req.path, got.reason)
            return None
        res = got.res
        if got.note:
            r.note(f"{name} (needed by {req.path}): {got.note}")
        self._edge(req, Edge(name, res.path, got.opened, got.via, got.note, likely=likely))
        sink.add_object(res.path, got.info, role, req.path, res.links, reason=reason)
        for vpath, vres, vinfo in got.variants:
            sink.add_object(vres.path, vinfo, "hwcaps" if not likely else "likely", req.path, vres.links,
                            reason=f"CPU-specific build of {name} ({vpath})")
            if vres.path not in self.by_path:
                vobj = _Obj(vres.path, vpath, vinfo, req, {vpath}, origin=posixpath.dirname(vpath))
                self.by_path[vres.path] = vobj
                self.queue.append(vobj)
        obj = self.by_path.get(res.path)
        if obj is not None and obj in self.loaded:  # the same file under another name
            self._name(obj, name)
            return obj
        if obj is None:
            obj = _Obj(res.path, got.opened, got.info or self.main.info, req, set(),
                       origin=posixpath.dirname(got.opened) or "/")
            self.by_path[res.path] = obj
        self._name(obj, name)
        if flavor == "glibc" and obj.info.soname:
            self._name(obj, obj.info.soname)
        self.loaded.append(obj)
        self.queue.append(obj)
        return obj


class _Sink:
    """Collects objects across roots."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.files: dict[str, dict] = {}
        self.missing: dict[str, dict] = {}
        self.likely: dict[str, Likely] = {}
        self.trees: dict[str, dict[str, tuple[Edge, ...]]] = {}

    _RANK = {"root": 0, "interp": 1, "needed": 2, "hwcaps": 3, "likely": 4, "link": 5}

    def _entry(self, path: str, kind: str, size: int, role: str, target: str | None = None,
               info: ElfInfo | None = None) -> dict:
        e = self.files.get(path)
        if e is None:
            e = self.files[path] = {"kind": kind, "size": size, "role": role, "needed_by": set(),
                                    "target": target, "reasons": [], "elf": info.describe() if info else None}
        elif self._RANK[role] < self._RANK[e["role"]]:
            e["role"] = role
        return e

    def add_links(self, links: Iterable[str], needed_by: str | None, role: str, reason: str | None = None) -> None:
        for link in links:
            st = self.tree.lstat(link)
            e = self._entry(link, "symlink", 0, role if role in ("root", "likely") else "needed",
                            st.linkname if st else None)
            if needed_by:
                e["needed_by"].add(needed_by)
            if reason and role == "likely" and reason not in e["reasons"]:
                e["reasons"].append(reason)

    def add_object(self, path: str, info: ElfInfo | None, role: str, needed_by: str | None,
                   links: Iterable[str], reason: str | None = None) -> None:
        st = self.tree.lstat(path)
        e = self._entry(path, "file", st.size if st else 0, role, None, info)
        if needed_by and role != "root":
            e["needed_by"].add(needed_by)
        if reason and reason not in e["reasons"]:
            e["reasons"].append(reason)
        if role == "likely" and reason:
            self.likely.setdefault(path, Likely(path, reason))
        self.add_links(links, needed_by if role != "root" else None, role, reason)

    def add_plain(self, path: str, size: int, role: str, needed_by: str | None, reason: str | None) -> None:
        e = self._entry(path, "file", size, role)
        if needed_by:
            e["needed_by"].add(needed_by)
        if reason and reason not in e["reasons"]:
            e["reasons"].append(reason)
        if role == "likely" and reason:
            self.likely.setdefault(path, Likely(path, reason))

    def likely_absent(self, name: str, reason: str, why: str | None) -> None:
        key = "!" + name
        if key not in self.likely:
            self.likely[key] = Likely(name, f"{reason}; not found{': ' + why if why else ''}", present=False)

    def miss(self, name: str, needed_by: str, reason: str | None) -> None:
        m = self.missing.setdefault(name, {"needed_by": set(), "reasons": []})
        m["needed_by"].add(needed_by)
        if reason and reason not in m["reasons"]:
            m["reasons"].append(reason)
