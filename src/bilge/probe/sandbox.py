"""The sandbox a probe runs in: Debian's ``bwrap`` (bubblewrap) with the materialised image as ``/``.

* ``--unshare-all``: new user, mount, pid, ipc, uts, cgroup and network namespaces -- no network
  (only a loopback that nothing listens on), no host process visible;
* the image's root read-only (``--ro-bind``), tmpfs on /tmp, /var/tmp and /run (where programs
  write), a fresh /proc and a minimal /dev (null, zero, full, random, urandom, tty); nothing of the
  host is mounted;
* an unprivileged user: bwrap itself runs as ``nobody`` (uid 65534) when bilge runs as root, and
  the image's ``User`` (default 0) is only a mapping inside the user namespace; bwrap sets
  ``no_new_privs``, so setuid bits would not be honoured (and materialise does not write them);
* the image's ``Env`` (nothing else: ``--clearenv``), ``WorkingDir``, a new session (no terminal
  injection), ``--die-with-parent``;
* the wall-clock limit is enforced by the caller (the whole process group is killed), the memory
  limit by ``RLIMIT_AS`` set before bwrap starts (inherited by everything inside).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bilge.errors import BilgeError

SANDBOX_UID = 65534  # the host uid the sandbox runs as when bilge runs as root ("nobody")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SandboxSpec:
    rootfs: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    uid: int = 0  # inside the sandbox
    gid: int = 0
    timeout: float = 60.0
    memory: int = 4 << 30  # bytes of address space
    mounts: tuple[str, ...] = ("/proc", "/dev", "/tmp", "/var/tmp", "/run")  # real directories in rootfs


def find_tool(name: str) -> str:
    for d in ("/usr/bin", "/bin", "/usr/sbin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    path = shutil.which(name)
    if path is None:
        package = {"bwrap": "bubblewrap"}.get(name, name)
        raise BilgeError(f"--probe needs {name} (Debian package {package}); it is not installed")
    return path


def host_user() -> tuple[int, int] | None:
    """The (uid, gid) to drop to before starting bwrap, or None to stay who we are (not root)."""
    return (SANDBOX_UID, SANDBOX_UID) if os.geteuid() == 0 else None


def bwrap_argv(spec: SandboxSpec, command: Sequence[str]) -> list[str]:
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    args = [
        find_tool("bwrap"),
        "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
        "--ro-bind", str(spec.rootfs), "/",
        *(["--proc", "/proc"] if "/proc" in spec.mounts else []),
        *(["--dev", "/dev"] if "/dev" in spec.mounts else []),
        *[a for m in ("/tmp", "/var/tmp", "/run") if m in spec.mounts for a in ("--tmpfs", m)],
        "--uid", str(spec.uid), "--gid", str(spec.gid),
        "--hostname", "bilge-probe",
        "--chdir", spec.cwd or "/",
        "--clearenv",
    ]
    for key, value in env.items():
        if key and "=" not in key:
            args += ["--setenv", key, value]
    return [*args, "--", *command]


def image_env(config: Mapping[str, object]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:  # type: ignore[union-attr]
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def image_user(config: Mapping[str, object], passwd: bytes | None, group: bytes | None) -> tuple[int, int]:
    """The image's ``User`` ("name", "uid", "name:group", "uid:gid") as numbers, looked up in the
    image's own /etc/passwd and /etc/group."""
    user = str(config.get("User") or "").strip()
    if not user:
        return 0, 0
    name, _, grp = user.partition(":")

    def table(data: bytes | None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in (data or b"").decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0]:
                out.setdefault(fields[0], fields)
        return out

    users, groups = table(passwd), table(group)
    if name.isdigit():
        uid = int(name)
        gid = next((int(f[3]) for f in users.values() if f[2] == name and f[3].isdigit()), uid)
    elif name in users and users[name][2].isdigit():
        uid = int(users[name][2])
        gid = int(users[name][3]) if users[name][3].isdigit() else uid
    else:
        raise BilgeError(f"the image's User {user!r} is not in its /etc/passwd")
    if grp:
        if grp.isdigit():
            gid = int(grp)
        elif grp in groups and groups[grp][2].isdigit():
            gid = int(groups[grp][2])
        else:
            raise BilgeError(f"the image's User {user!r}: group {grp!r} is not in its /etc/group")
    return uid, gid
