"""How many cores this process may really use: the container's CPU limit, not the host's cores.

`os.cpu_count()` tells the host's cores; a pod limited to 2 CPUs on a 32-core node would start
32 model threads and be throttled by the kernel. The order: a cgroup v2 `cpu.max` quota, else a
cgroup v1 CFS quota (on the process's own cgroup and its parents, the smallest wins), then the
CPUs the process is pinned to (`sched_getaffinity`: cpusets, `taskset`), then `os.cpu_count()`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """controller (or "" for the v2 unified tree) -> path of this process's cgroup."""
    found: dict[str, str] = {}
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup's own folder and every parent up to the mount point (limits are inherited).
    Inside a container the path may not exist under the mount (its root is the cgroup): then
    the mount point alone."""
    folders = []
    current = Path(path.lstrip("/"))
    while True:
        folder = mount / current
        if folder.is_dir():
            folders.append(folder)
        if current == Path("."):
            break
        current = current.parent
    return folders or [mount]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_v2_limit(root: Path, path: str) -> float | None:
    """Smallest `cpu.max` quota/period on the way up, in cores; None without a limit."""
    limits = []
    for folder in _ancestors(root, path):
        text = _read(folder / "cpu.max")
        if not text:
            continue
        quota, _, period = text.partition(" ")
        if quota != "max" and period and int(period) > 0:
            limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def cgroup_v1_limit(root: Path, path: str) -> float | None:
    """Smallest CFS quota/period (cpu controller) on the way up, in cores; None without a limit."""
    for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
        if not mount.is_dir():
            continue
        limits = []
        for folder in _ancestors(mount, path):
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0 and int(period) > 0:
                limits.append(int(quota) / int(period))
        return min(limits) if limits else None
    return None


def cgroup_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota in cores (fractional) of this process's cgroup, v2 first; None when unlimited."""
    own = _own_cgroups(proc_cgroup)
    if (root / "cgroup.controllers").is_file():  # v2 mounted at the root (the unified hierarchy)
        return cgroup_v2_limit(root, own.get("", "/"))
    return cgroup_v1_limit(root, own.get("cpu", "/"))


def available_cores(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Whole cores to size thread pools by: the quota rounded up (1.5 CPUs -> 2 threads, one
    throttled part of the time, beats one idle half core), never more than the CPUs the process
    may be scheduled on, at least 1."""
    try:
        pinned = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        pinned = os.cpu_count() or 1
    quota = cgroup_limit(root, proc_cgroup)
    cores = pinned if quota is None else min(pinned, math.ceil(quota))
    return max(1, cores)
