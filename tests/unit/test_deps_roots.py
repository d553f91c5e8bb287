"""Build tiny root filesystems with real ELF programs and libraries (gcc, musl-gcc) for the deps tests.

Every library function returns a string naming the copy it was compiled for, so running the program
inside the root (``chroot``) tells which file the real loader picked: the independent measurement
the resolver is checked against.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from tests.tools import argv, which

HOST_LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
HOST_LOADER = HOST_LIBDIR / "ld-linux-x86-64.so.2"
HOST_LIBC = HOST_LIBDIR / "libc.so.6"
HOST_MUSL = Path("/usr/lib/x86_64-linux-musl/libc.so")


def have_gcc() -> bool:
    return which("gcc") is not None and HOST_LOADER.is_file() and HOST_LIBC.is_file()


def have_musl() -> bool:
    return which("musl-gcc") is not None and HOST_MUSL.is_file()


def can_chroot() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and which("chroot") is not None


def have_m32() -> bool:
    """gcc can compile -m32 objects and ld can link them (no 32-bit libc needed for -nostdlib)."""
    return which("gcc") is not None and which("ld") is not None


class Root:
    """A directory laid out like a merged-/usr Debian root, with the host's glibc copied in."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path = path
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        self._n = 0

    # -- layout ---------------------------------------------------------------------------------
    def p(self, rel: str) -> Path:
        return self.path / rel.lstrip("/")

    def mkdir(self, rel: str) -> Path:
        d = self.p(rel)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def symlink(self, rel: str, target: str) -> None:
        link = self.p(rel)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)

    def write(self, rel: str, data: bytes | str, mode: int = 0o644) -> Path:
        f = self.p(rel)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data.encode() if isinstance(data, str) else data)
        f.chmod(mode)
        return f

    def copy(self, src: Path, rel: str, mode: int | None = None) -> Path:
        dst = self.p(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(mode if mode is not None else (src.stat().st_mode & 0o777))
        return dst

    def glibc(self) -> Root:
        """usr/lib/x86_64-linux-gnu/{ld-linux-x86-64.so.2,libc.so.6}, lib -> usr/lib, /lib64 link."""
        self.copy(HOST_LOADER, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 0o755)
        self.copy(HOST_LIBC, "usr/lib/x86_64-linux-gnu/libc.so.6", 0o755)
        self.symlink("lib", "usr/lib")
        self.mkdir("usr/lib64")
        self.symlink("lib64", "usr/lib64")
        self.symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        self.mkdir("etc")
        return self

    def musl(self) -> Root:
        """Debian's musl layout: /lib/ld-musl-x86_64.so.1 -> x86_64-linux-musl/libc.so + path file."""
        self.copy(HOST_MUSL, "usr/lib/x86_64-linux-musl/libc.so", 0o755)
        if not self.p("lib").is_symlink():
            self.symlink("lib", "usr/lib")
        self.symlink("usr/lib/ld-musl-x86_64.so.1", "x86_64-linux-musl/libc.so")
        self.write("etc/ld-musl-x86_64.path", "/lib/x86_64-linux-musl\n/usr/lib/x86_64-linux-musl\n")
        return self

    def ld_so_conf(self, text: str, extra: dict[str, str] | None = None) -> None:
        self.write("etc/ld.so.conf", text)
        for rel, body in (extra or {}).items():
            self.write(rel, body)

    def ldconfig(self) -> None:
        """Build etc/ld.so.cache with the host's ldconfig, as the image's ldconfig would."""
        subprocess.run([*argv("ldconfig"), "-X", "-r", str(self.path)], check=True, capture_output=True)

    # -- compiling -------------------------------------------------------------------------------
    def _src(self, body: str) -> Path:
        self._n += 1
        src = self.work / f"src{self._n}.c"
        src.write_text(body)
        return src

    def lib(
        self,
        rel: str,
        soname: str,
        symbol: str,
        text: str,
        *,
        deps: tuple[tuple[str, str], ...] = (),  # (host path of a built lib to link, its symbol)
        rpath: str | None = None,
        runpath: str | None = None,
        musl: bool = False,
        m32: bool = False,
        extra_c: str = "",
        flags: tuple[str, ...] = (),
    ) -> Path:
        """A shared library at ``rel`` whose ``symbol()`` returns ``text`` (+ its deps' strings)."""
        decls = "".join(f"const char *{s}(void);\n" for _, s in deps)
        if deps and not m32:
            body = (
                "#include <stdio.h>\n" + decls + extra_c +
                f"const char *{symbol}(void) {{ static char bilge_buf[4096]; snprintf(bilge_buf, sizeof bilge_buf, \"%s\"" +
                "".join(" \"+%s\"" for _ in deps) + f", \"{text}\"" +
                "".join(f", {s}()" for _, s in deps) + "); return bilge_buf; }\n"
            )
        else:
            body = extra_c + f"const char *{symbol}(void) {{ return \"{text}\"; }}\n"
        src = self._src(body)
        out = self.p(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        if m32:
            obj = self.work / f"o{self._n}.o"
            subprocess.run([*argv("gcc"), "-m32", "-fPIC", "-c", str(src), "-o", str(obj)], check=True)
            subprocess.run([*argv("ld"), "-m", "elf_i386", "-shared", "-soname", soname, "-o", str(out), str(obj)],
                           check=True)
            return out
        cc = "musl-gcc" if musl else "gcc"
        cmd = [*argv(cc), "-shared", "-fPIC", "-o", str(out), str(src), f"-Wl,-soname,{soname}", "-Wl,--no-as-needed"]
        cmd += [str(p) for p, _ in deps] + self._rpath_link(p for p, _ in deps)
        cmd += self._path_flags(rpath, runpath)
        cmd += list(flags)
        subprocess.run(cmd, check=True, capture_output=True)
        return out

    def prog(
        self,
        rel: str,
        calls: tuple[tuple[Path | None, str], ...],  # (host path of lib to link or None, symbol to print)
        *,
        rpath: str | None = None,
        runpath: str | None = None,
        musl: bool = False,
        flags: tuple[str, ...] = (),
        extra_libs: tuple[str, ...] = (),
        body: str = "",
    ) -> Path:
        decls = "".join(f"const char *{s}(void);\n" for _, s in calls)
        prints = "".join(f"  puts({s}());\n" for _, s in calls)
        src = self._src("#include <stdio.h>\n" + decls + "int main(void) {\n" + prints + body + "  return 0;\n}\n")
        out = self.p(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        cc = "musl-gcc" if musl else "gcc"
        cmd = [*argv(cc), "-o", str(out), str(src), "-Wl,--no-as-needed"]
        cmd += [str(p) for p, _ in calls if p is not None] + list(extra_libs)
        cmd += self._rpath_link(p for p, _ in calls if p is not None)
        cmd += self._path_flags(rpath, runpath)
        cmd += list(flags)
        subprocess.run(cmd, check=True, capture_output=True)
        return out

    def _rpath_link(self, libs) -> list[str]:
        """Let ld find the dependencies of the libraries it links against, wherever they are in the root."""
        dirs = sorted({str(Path(p).parent) for p in libs} | {str(d) for d in self.path.rglob("*")
                                                             if d.is_dir() and not d.is_symlink()})
        return [f"-Wl,-rpath-link,{d}" for d in dirs] + ["-Wl,--allow-shlib-undefined"]

    @staticmethod
    def _path_flags(rpath: str | None, runpath: str | None) -> list[str]:
        if rpath is not None and runpath is not None:
            raise ValueError("gcc/ld writes one of RPATH or RUNPATH; use both_paths() to get both")
        if rpath is not None:
            return ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
        if runpath is not None:
            return ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
        return ["-Wl,--enable-new-dtags"]

    # -- running -----------------------------------------------------------------------------------
    def run(self, rel: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``rel`` inside the root with the real loader (chroot). Independent of bilge.

        Variables in ``env`` are set inside the chroot by the root's own /usr/bin/env, so they reach
        the program and not the host's chroot binary (LD_TRACE_LOADED_OBJECTS would trace chroot).
        """
        cmd = [*argv("chroot"), str(self.path)]
        if which("unshare"):  # a private /proc: the loaders read /proc/self/exe for $ORIGIN
            self.mkdir("proc")
            cmd = [*argv("unshare"), "--mount", "--fork", f"--mount-proc={self.path}/proc", *cmd]
        if env:
            if not self.p("usr/bin/env").exists():
                raise RuntimeError("this root has no /usr/bin/env to pass variables with")
            cmd += ["/usr/bin/env", *[f"{k}={v}" for k, v in env.items()]]
        return subprocess.run(cmd + [rel], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, timeout=30)


def set_machine(path: Path, machine: int) -> None:
    """Overwrite e_machine (a foreign-architecture copy of a real library)."""
    data = bytearray(path.read_bytes())
    little = data[5] == 1
    struct.pack_into("<H" if little else ">H", data, 18, machine)
    path.write_bytes(bytes(data))
