"""Cores available to the process: cgroup v2 and v1 quotas (on the process's cgroup and its
parents), then the CPU affinity, on cgroup trees laid out as the kernel does."""

from __future__ import annotations

import os
from pathlib import Path

from services.runtime import cpus


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def pinned() -> int:
    return len(os.sched_getaffinity(0))


def v2_tree(tmp_path: Path, limits: dict[str, str], own: str = "/kubepods/pod1/c1") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for folder, value in limits.items():
        write(root / folder.lstrip("/") / "cpu.max", value + "\n")
    (root / own.lstrip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    write(proc, f"0::{own}\n")
    return root, proc


def test_v2_quota_of_the_process_cgroup(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/kubepods/pod1/c1": "150000 100000"})
    assert cpus.cgroup_limit(root, proc) == 1.5
    assert cpus.available_cores(root, proc) == min(pinned(), 2)


def test_v2_smallest_limit_on_the_way_up_wins(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/kubepods/pod1/c1": "max 100000", "/kubepods/pod1": "50000 100000",
                                    "/kubepods": "400000 100000"})
    assert cpus.cgroup_limit(root, proc) == 0.5
    assert cpus.available_cores(root, proc) == 1  # half a core still needs one thread


def test_v2_without_a_limit_falls_back_to_the_affinity(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/kubepods/pod1/c1": "max 100000"})
    assert cpus.cgroup_limit(root, proc) is None
    assert cpus.available_cores(root, proc) == pinned()


def test_v2_inside_a_container_namespace(tmp_path: Path) -> None:
    """/proc/self/cgroup says `0::/` and the container's own cgroup is mounted at the root."""
    root, proc = v2_tree(tmp_path, {"/": "100000 100000"}, own="/")
    assert cpus.cgroup_limit(root, proc) == 1.0
    assert cpus.available_cores(root, proc) == 1


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct" / "docker" / "abc"
    write(folder / "cpu.cfs_quota_us", "200000\n")
    write(folder / "cpu.cfs_period_us", "100000\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-cgroup"
    write(proc, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpus.cgroup_limit(root, proc) == 2.0
    assert cpus.available_cores(root, proc) == min(pinned(), 2)


def test_v1_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-cgroup"
    write(proc, "1:cpu:/\n")
    assert cpus.cgroup_limit(root, proc) is None
    assert cpus.available_cores(root, proc) == pinned()


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    assert cpus.available_cores(tmp_path / "none", tmp_path / "none-proc") == pinned()


def test_this_machine() -> None:
    """On the machine the suite runs on: within the CPUs the process may run on."""
    assert 1 <= cpus.available_cores() <= pinned() <= (os.cpu_count() or 1)
