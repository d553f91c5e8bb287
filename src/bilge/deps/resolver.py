"""The resolver: finds each DT_NEEDED name as the image's glibc or musl loader would."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

from bilge.deps.ldconfig import (
    _GLIBC_INTERP,
    _HWCAPS,
    _MULTIARCH,
    _PLATFORMS,
    CacheEntry,
    _arch_key,
    _musl_arch,
    is_musl_interp,
    loader_search_info,
    parse_ld_so_cache,
    parse_ld_so_conf,
    parse_nsswitch,
)
from bilge.deps.model import _Fail, _Found, _Obj
from bilge.deps.session import _Session, _Sink
from bilge.deps.tree import Resolved, Tree, _join
from bilge.deps.view import LOADER_LIMIT, View
from bilge.elf import LINUX_OSABIS, ElfInfo, incompatibility

_DST_RE = re.compile(r"\$(?:\{(ORIGIN|PLATFORM|LIB)\}|(ORIGIN|PLATFORM|LIB)(?=/|$))")


class Resolver:
    """Computes closures over one view. Create once per image; :meth:`closure` per set of roots."""

    def __init__(self, view: View, env: Mapping[str, str] | None = None, workdir: str = "/") -> None:
        self.view = view
        self.tree = Tree(view)
        self.env = dict(env or {})
        self.cwd = workdir if workdir.startswith("/") else "/" + workdir
        self._conf_dirs: list[str] | None = None
        self._cache: list[CacheEntry] | None | bool = False  # False: not read yet
        self._cache_by_key: dict[str, list[CacheEntry]] = {}
        self._loader_info: dict[str, tuple[list[str] | None, str | None]] = {}
        self._search_memo: dict[tuple, tuple[_Found | _Fail | None, list[str]]] = {}
        self._musl_path: dict[str, list[str]] = {}
        self._bundles: set[tuple] = set()
        self.notes: list[str] = []
        self._note_set: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        if text not in self._note_set:
            self._note_set.add(text)
            self.notes.append(text)

    def elf_at(self, canonical: str) -> ElfInfo | None:
        return self.view.elf(canonical)

    def conf_dirs(self) -> list[str]:
        if self._conf_dirs is None:
            self._conf_dirs = parse_ld_so_conf(self.tree)
        return self._conf_dirs

    def cache(self) -> list[CacheEntry] | None:
        if self._cache is False:
            r = self.tree.resolve("/etc/ld.so.cache")
            data = self.view.read_small(r.path, 64 << 20) if r.kind == "file" else None
            entries = parse_ld_so_cache(data) if data else None
            if data and entries is None:
                self.note("/etc/ld.so.cache is not a cache file bilge can read; ignored")
            self._cache = entries
            for e in entries or []:
                self._cache_by_key.setdefault(e.key, []).append(e)
        return self._cache  # type: ignore[return-value]

    def glibc_loader(self, interp_canonical: str | None, ref: ElfInfo) -> tuple[list[str], str]:
        """System directories and $LIB of the loader (read from it when possible)."""
        key = interp_canonical or ""
        if key not in self._loader_info:
            dirs = lib = None
            if interp_canonical:
                dirs, lib = loader_search_info(self.view.read_small(interp_canonical, LOADER_LIMIT))
            self._loader_info[key] = (dirs, lib)
        dirs, lib = self._loader_info[key]
        if dirs is None:
            triplet = _MULTIARCH.get(_arch_key(ref))
            if triplet and self.tree.resolve(f"/usr/lib/{triplet}").kind == "dir":
                dirs = [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"]
            elif ref.elf_class == 64 and self.tree.resolve("/usr/lib64").kind == "dir":
                dirs = ["/lib64", "/usr/lib64"]
            else:
                dirs = ["/lib", "/usr/lib"]
        if lib is None:
            lib = dirs[0].strip("/")
        return dirs, lib

    def default_interp(self, ref: ElfInfo, flavor: str) -> str | None:
        if flavor == "musl":
            arch = _musl_arch(ref)
            return f"/lib/ld-musl-{arch}.so.1" if arch else None
        if ref.machine == "EM_ARM":
            return "/lib/ld-linux-armhf.so.3" if ref.flags & 0x400 else "/lib/ld-linux.so.3"
        return _GLIBC_INTERP.get(_arch_key(ref))

    def musl_sys_path(self, interp: str) -> list[str]:
        if interp not in self._musl_path:
            m = re.match(r"ld-musl-(.+)\.so\.1$", posixpath.basename(interp))
            arch = m.group(1) if m else "unknown"
            # musl: prefix = the loader's path minus its last two components ("/lib/ld-musl..." -> "").
            prefix = posixpath.dirname(posixpath.dirname(interp)) if interp.startswith("/") else ""
            prefix = "" if prefix == "/" else prefix
            conf = f"{prefix}/etc/ld-musl-{arch}.path"
            r = self.tree.resolve(conf)
            if r.kind == "file":
                text = (self.view.read_small(r.path) or b"").decode("utf-8", "surrogateescape")
                dirs = [d for d in re.split(r"[:\n]", text) if d]
            elif r.kind == "missing":
                dirs = ["/lib", "/usr/local/lib", "/usr/lib"]
            else:
                dirs = []
            self._musl_path[interp] = dirs
        return self._musl_path[interp]

    def _expand(self, text: str, origin: str, lib: str, platforms: tuple[str, ...]) -> list[str]:
        """Every expansion of ``text``: one per candidate $PLATFORM when it names $PLATFORM, else one."""
        uses_platform = any((m.group(1) or m.group(2)) == "PLATFORM" for m in _DST_RE.finditer(text))
        out: list[str] = []
        for platform in platforms if uses_platform else platforms[:1]:
            def sub(m: re.Match[str], platform: str = platform) -> str:
                name = m.group(1) or m.group(2)
                return {"ORIGIN": origin, "LIB": lib, "PLATFORM": platform}[name]

            expanded = _DST_RE.sub(sub, text)
            if expanded not in out:
                out.append(expanded)
        return out

    def _split_dirs(self, text: str, origin: str, lib: str, platforms: tuple[str, ...],
                    seps: str = ":") -> list[str]:
        out = []
        for item in re.split(f"[{re.escape(seps)}]", text):
            for expanded in self._expand(item, origin, lib, platforms):
                if expanded == "":
                    expanded = self.cwd
                elif not expanded.startswith("/"):
                    expanded = _join(self.cwd, expanded)
                expanded = expanded.rstrip("/") or "/"
                if expanded not in out:
                    out.append(expanded)
        return out

    # -- candidate checks --------------------------------------------------------------------------

    def _glibc_check(self, ref: ElfInfo, cand: str) -> tuple[str, Resolved, ElfInfo | None, str]:
        """("ok"|"absent"|"skip"|"fatal", resolved, info, reason) for one candidate path."""
        res = self.tree.resolve(cand)
        if res.kind == "missing" or res.kind == "loop":
            return "absent", res, None, ""
        if res.kind != "file":  # open() succeeds on a directory, then reading fails: an error
            return "fatal", res, None, f"{cand}: cannot read file data ({res.kind})"
        info = self.elf_at(res.path)
        # The order of glibc's open_verify(): another ELF class is skipped silently; a bad header,
        # byte order or OS/ABI is an error that ends the search; another machine is skipped.
        if info is None:
            return "fatal", res, None, f"{cand}: invalid ELF header"
        if info.elf_class == 0 or info.error:
            return "fatal", res, info, f"{cand}: {info.error}"
        if info.elf_class != ref.elf_class:
            return "skip", res, info, f"{cand}: ELFCLASS{info.elf_class}, need ELFCLASS{ref.elf_class}"
        if info.little_endian != ref.little_endian:
            return "fatal", res, info, f"{cand}: ELF file data encoding not {'little' if ref.little_endian else 'big'}-endian"
        if info.osabi != ref.osabi and not (info.osabi in LINUX_OSABIS and ref.osabi in LINUX_OSABIS):
            return "fatal", res, info, f"{cand}: ELF file OS ABI invalid ({info.osabi})"
        why = incompatibility(ref, info)
        if why:  # another machine (or ARM float ABI): skipped
            return "skip", res, info, f"{cand}: {why}"
        return "ok", res, info, ""

    def _search_dirs_glibc(self, name: str, dirs: Sequence[str], ref: ElfInfo, via: str,
                           hwcaps: Sequence[str], skipped: list[str]) -> _Found | _Fail | None:
        variants: list[tuple[str, Resolved, ElfInfo]] = []
        for d in dirs:
            for sub in hwcaps:
                cand = _join(d, f"glibc-hwcaps/{sub}/{name}")
                verdict, res, info, why = self._glibc_check(ref, cand)
                if verdict == "ok" and info is not None:
                    variants.append((cand, res, info))
                elif verdict == "skip":
                    skipped.append(why)
            cand = _join(d, name)
            verdict, res, info, why = self._glibc_check(ref, cand)
            if verdict == "ok":
                return _Found(cand, res, info, via, tuple(variants))
            if verdict == "skip":
                skipped.append(why)
            elif verdict == "fatal":
                return _Fail(why)
        if variants:  # only CPU-specific builds exist: the loader finds them on capable CPUs only
            cand, res, info = variants[0]
            return _Found(cand, res, info, via, tuple(variants[1:]),
                          note=f"only a glibc-hwcaps build exists ({cand})")
        return None

    # -- glibc search for one name -------------------------------------------------------------------

    def _glibc_find(self, name: str, req: _Obj, main: _Obj, interp: str | None) -> _Found | _Fail:
        ref = main.info
        sysdirs, lib = self.glibc_loader(interp, ref)
        platform = _PLATFORMS.get(str(ref.machine), ("unknown",))
        hwcaps = _HWCAPS.get(str(ref.machine), ())
        skipped: list[str] = []

        if "/" in name:
            why = ""
            for path in self._expand(name, req.origin, lib, platform):
                verdict, res, info, why = self._glibc_check(ref, path)
                if verdict == "ok":
                    return _Found(path, res, info, "path")
                if verdict == "fatal":
                    break
            return _Fail(why or "not found")

        # 1. DT_RPATH of the requester and up its loading chain, unless it has DT_RUNPATH.
        if req.info.runpath is None:
            chain: list[_Obj] = []
            o: _Obj | None = req
            while o is not None:
                chain.append(o)
                o = o.loader
            if main not in chain:
                chain.append(main)
            for o in chain:
                if o.info.rpath is None or o.info.runpath is not None:
                    continue
                if o._rpath is None:
                    o._rpath = self._split_dirs(o.info.rpath, o.origin, lib, platform)
                got = self._memo_search(name, tuple(o._rpath), ref, "rpath", hwcaps, skipped)
                if got is not None:
                    return got
        # 2. LD_LIBRARY_PATH from the image's environment.
        llp = self.env.get("LD_LIBRARY_PATH")
        if llp:
            dirs = self._split_dirs(llp, main.origin, lib, platform, seps=":;")
            got = self._memo_search(name, tuple(dirs), ref, "ld_library_path", hwcaps, skipped)
            if got is not None:
                return got
        # 3. DT_RUNPATH of the requester only.
        if req.info.runpath is not None:
            if req._runpath is None:
                req._runpath = self._split_dirs(req.info.runpath, req.origin, lib, platform)
            got = self._memo_search(name, tuple(req._runpath), ref, "runpath", hwcaps, skipped)
            if got is not None:
                return got
        nodeflib = req.info.nodeflib
        # 4. /etc/ld.so.cache.
        got = self._memo_cache(name, ref, nodeflib, tuple(sysdirs), skipped)
        if got is not None:
            return got
        # 5. The loader's system directories.
        if not nodeflib:
            got = self._memo_search(name, tuple(sysdirs), ref, "default", hwcaps, skipped)
            if got is not None:
                return got
        # 6. Not found by the loader: directories of /etc/ld.so.conf that the cache does not cover.
        conf = [d for d in self.conf_dirs() if d not in sysdirs]
        if conf:
            got = self._memo_search(name, tuple(conf), ref, "ld.so.conf", hwcaps, skipped)
            if isinstance(got, _Found):
                cache = self.cache()
                if cache is None:
                    why = ("the image has no /etc/ld.so.cache, and the loader reads /etc/ld.so.conf only "
                           "through it: run ldconfig in the image")
                else:
                    why = "/etc/ld.so.cache has no entry for it: run ldconfig in the image"
                return _Found(got.opened, got.res, got.info, got.via, got.variants,
                              note=f"found only through /etc/ld.so.conf; {why}")
            if got is not None:
                return got
        if skipped:
            return _Fail("only incompatible files found: " + "; ".join(dict.fromkeys(skipped)))
        return _Fail(None)

    def _memo_search(self, name: str, dirs: tuple[str, ...], ref: ElfInfo, via: str,
                     hwcaps: Sequence[str], skipped: list[str]) -> _Found | _Fail | None:
        key = ("s", name, dirs, _arch_key(ref), ref.flags, via)
        hit = self._search_memo.get(key)
        if hit is None:
            skips: list[str] = []
            hit = self._search_memo[key] = (self._search_dirs_glibc(name, dirs, ref, via, hwcaps, skips), skips)
        skipped.extend(hit[1])
        return hit[0]

    def _memo_cache(self, name: str, ref: ElfInfo, nodeflib: bool, sysdirs: tuple[str, ...],
                    skipped: list[str]) -> _Found | _Fail | None:
        key = ("c", name, _arch_key(ref), ref.flags, nodeflib, sysdirs)
        hit = self._search_memo.get(key)
        if hit is None:
            skips: list[str] = []
            hit = self._search_memo[key] = (self._cache_lookup(name, ref, nodeflib, sysdirs, skips), skips)
        skipped.extend(hit[1])
        return hit[0]

    def _cache_lookup(self, name: str, ref: ElfInfo, nodeflib: bool, sysdirs: Sequence[str],
                      skipped: list[str]) -> _Found | _Fail | None:
        if self.cache() is None:
            return None
        entries = self._cache_by_key.get(name, [])
        variants: list[tuple[str, Resolved, ElfInfo]] = []
        for e in entries:
            if nodeflib and any(e.path.startswith(d.rstrip("/") + "/") for d in sysdirs):
                continue
            verdict, res, info, why = self._glibc_check(ref, e.path)
            if e.hwcap:
                if verdict == "ok" and info is not None:
                    variants.append((e.path, res, info))
                continue
            if verdict == "ok":
                return _Found(e.path, res, info, "ld.so.cache", tuple(variants))
            if verdict == "skip":
                skipped.append(why)
                continue  # an entry for another architecture (multilib cache)
            if verdict == "absent":
                self.note(f"/etc/ld.so.cache lists {e.path} for {e.key}, but it is not in the image (stale cache)")
        if variants:
            cand, res, info = variants[0]
            return _Found(cand, res, info, "ld.so.cache", tuple(variants[1:]),
                          note=f"only a glibc-hwcaps build exists ({cand})")
        return None

    # -- musl search -----------------------------------------------------------------------------------

    def _musl_find(self, name: str, req: _Obj, main: _Obj, interp: str) -> _Found | _Fail:
        ref = main.info

        def first_file(dirs: Iterable[str], via: str) -> _Found | _Fail | None:
            for d in dirs:
                cand = _join(d, name)
                res = self.tree.resolve(cand)
                if res.kind == "file":
                    info = self.elf_at(res.path)
                    if info is None:
                        return _Fail(f"{cand} is not an ELF file (musl opens the first match)")
                    why = incompatibility(ref, info)
                    if why:
                        return _Fail(f"{cand}: {why} (musl opens the first match and does not skip it)")
                    return _Found(cand, res, info, via)
                if res.kind == "dir":
                    return _Fail(f"{cand} is a directory (musl opens the first match)")
            return None

        if "/" in name:
            res = self.tree.resolve(name, self.cwd)
            info = self.elf_at(res.path) if res.kind == "file" else None
            if info is not None and not incompatibility(ref, info):
                return _Found(name, res, info, "path")
            return _Fail(None)
        llp = self.env.get("LD_LIBRARY_PATH")
        if llp:
            got = first_file([d for d in llp.split(":") if d], "ld_library_path")
            if got is not None:
                return got
        o: _Obj | None = req
        while o is not None:
            raw = o.info.runpath if o.info.runpath is not None else o.info.rpath
            if raw:
                expanded = raw.replace("${ORIGIN}", o.origin).replace("$ORIGIN", o.origin)
                got = first_file([d for d in expanded.split(":") if d], "rpath")
                if got is not None:
                    return got
            o = o.loader
        got = first_file(self.musl_sys_path(interp), "musl-path")
        if got is not None:
            return got
        return _Fail(None)

    # -- one root ----------------------------------------------------------------------------------------

    def _flavor(self, info: ElfInfo) -> str:
        if info.interp:
            return "musl" if is_musl_interp(info.interp) else "glibc"
        needed = set(info.needed)
        if "libc.so.6" in needed:
            return "glibc"
        if "libc.so" in needed or any(n.startswith("libc.musl-") for n in needed):
            return "musl"
        for probe in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux.so.2"):
            if self.tree.resolve(probe).kind == "file":
                return "glibc"
        arch = _musl_arch(info)
        if arch and self.tree.resolve(f"/lib/ld-musl-{arch}.so.1").kind == "file":
            return "musl"
        return "glibc"

    def root_closure(self, canonical: str, given: str, info: ElfInfo, strict: bool,
                     sink: _Sink) -> str | None:
        """Load one root like the loader would; record every object, link and miss in ``sink``."""
        if not info.interp and not info.needed:
            return None  # static, static-pie, or a shared object that needs nothing (the loader itself)
        flavor = self._flavor(info)
        main = _Obj(canonical, given, info, None, {given},
                    origin=posixpath.dirname(canonical if info.interp else given) or "/")
        s = _Session(self, sink, main, flavor)
        s.start_interp()
        for name in s.preload_names():
            s.load(name, main, "needed")
        s.drain("needed")
        if not strict:
            self._likely(s)
        sink.trees[canonical] = {k: tuple(v) for k, v in s.edges.items() if v}
        return flavor

    def _likely(self, s: _Session) -> None:
        """Files loaded with dlopen that programs commonly need: loader, NSS, libgcc_s, gconv."""
        info, sink, canonical = s.main.info, s.sink, s.main.path
        if not info.interp:  # a shared object: whoever loads it runs the dynamic loader
            ip = self.default_interp(info, s.flavor)
            if ip:
                res = self.tree.resolve(ip)
                if res.kind == "file" and (iinfo := self.elf_at(res.path)) is not None:
                    sink.add_object(res.path, iinfo, "likely", canonical, res.links,
                                    reason="the dynamic loader (this root is a shared object)")
                else:
                    sink.likely_absent(ip, "the dynamic loader (this root is a shared object)", "not in the image")
        if s.flavor != "glibc":
            return
        libc = next((o for o in s.loaded if o.info.soname == "libc.so.6"), None)
        if libc is None:
            return
        others = [o for o in s.loaded if o is not libc]
        gcc_user = next((o.path for o in others if o.info.markers & {"pthread_cancel", "pthread_exit", "backtrace"}),
                        None)
        iconv_user = next((o.path for o in others if "iconv_open" in o.info.markers), None)
        # dlopen from libc searches the RPATH chain up to the program: part of the key
        chain_rpath = None if s.main.info.runpath is not None else s.main.info.rpath
        key = (libc.path, s.interp_canonical, chain_rpath, s.main.origin if chain_rpath else None,
               gcc_user is not None, iconv_user is not None)
        if key in self._bundles:
            return  # the same files were already added to this sink
        self._bundles.add(key)
        sub = _Session(self, sink, s.main, s.flavor, record_edges=False)
        sub.adopt(s)
        builtin = "GLIBC_2.34" in libc.info.markers
        r = self.tree.resolve("/etc/nsswitch.conf")
        data = self.view.read_small(r.path) if r.kind == "file" else None
        services: list[str] = []
        for _db, svc in parse_nsswitch(data):
            if builtin and svc in ("files", "dns"):  # built into libc since glibc 2.34
                continue
            if svc not in services:
                services.append(svc)
        for svc in services:
            sub.load(f"libnss_{svc}.so.2", libc, "likely", f"NSS module for \"{svc}\" in /etc/nsswitch.conf")
        if gcc_user:
            sub.load("libgcc_s.so.1", libc, "likely",
                     "dlopen'ed by glibc to unwind for pthread_cancel/pthread_exit/backtrace, which the program uses")
        if iconv_user:
            reason = "iconv (gconv) modules, dlopen'ed by glibc's iconv_open, which the program uses"
            dirs: list[str] = []
            gp = self.env.get("GCONV_PATH")
            if gp:
                dirs.extend(d for d in gp.split(":") if d.startswith("/"))
            dirs.append(_join(posixpath.dirname(libc.path), "gconv"))
            for d in dirs:
                res = self.tree.resolve(d)
                if res.kind != "dir":
                    continue
                sink.add_links(res.links, canonical, "likely", reason)
                for p in self.tree.walk_files(res.path):
                    ginfo = self.elf_at(p)
                    if ginfo is not None and ginfo.dynamic:
                        sub.load(p, libc, "likely", reason)
                    else:
                        st = self.tree.lstat(p)
                        sink.add_plain(p, st.size if st else 0, "likely", libc.path, reason)
        sub.drain("likely")
