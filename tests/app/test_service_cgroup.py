"""The CPU quota of the process's cgroups (`inference.cgroup`), read from trees laid out
under tmp_path: cgroup v2 nested groups, v1's cpu controller, hybrid hosts, and files
that are absent or malformed (skipped, never an error)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference import cgroup_cpu_limit, usable_cpus


def layout(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (path under `root`: content) and return `root`."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def limit(tmp_path: Path, proc: str | bytes | None, files: dict[str, str | bytes]) -> float | None:
    root = layout(tmp_path / "sys", files)
    root.mkdir(exist_ok=True)
    proc_file = tmp_path / "proc-self-cgroup"
    if proc is not None:
        layout(tmp_path, {"proc-self-cgroup": proc})
    return cgroup_cpu_limit(root, proc_file)


def affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(("files", "expected"), [
    ({"kubepods/pod1/ctr/cpu.max": "150000 100000\n",  # the process's own group
      "kubepods/pod1/cpu.max": "max 100000\n",
      "kubepods/cpu.max": "400000 100000\n"}, 1.5),
    ({"kubepods/pod1/ctr/cpu.max": "max 100000\n",  # a group above binds it too
      "kubepods/pod1/cpu.max": "50000 100000\n",
      "cpu.max": "max 100000\n"}, 0.5),
    ({"cpu.max": "300000 100000\n"}, 3.0),  # only the root's (a container's own view)
    ({"kubepods/pod1/ctr/cpu.max": "max 100000\n"}, None),
    ({"unified/kubepods/pod1/ctr/cpu.max": "200000 100000\n"}, 2.0),  # a hybrid host
])
def test_v2_nested_groups_the_tightest_quota_from_the_own_group_up(
    tmp_path: Path, files: dict[str, str], expected: float | None,
) -> None:
    assert limit(tmp_path, "0::/kubepods/pod1/ctr\n", files) == expected


def test_v1_cpu_controller_quota_from_its_group_up(tmp_path: Path) -> None:
    proc = "12:name=systemd:/docker/abc\n4:cpu,cpuacct:/docker/abc\n2:cpuacct:/\n"
    assert limit(tmp_path, proc, {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/docker/cpu.cfs_quota_us": "-1\n",  # -1: no quota
        "cpu,cpuacct/docker/cpu.cfs_period_us": "100000\n",
        "name=systemd/docker/abc/cpu.cfs_quota_us": "10000\n",  # not the cpu controller
        "name=systemd/docker/abc/cpu.cfs_period_us": "100000\n",
    }) == 2.5


def test_v1_in_a_container_that_sees_its_group_as_the_mount_root(tmp_path: Path) -> None:
    """/proc/self/cgroup names the host's path, which the container's mount lacks."""
    assert limit(tmp_path, "3:cpu:/docker/abc\n", {
        "cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n",
    }) == 1.0
    assert limit(tmp_path / "free", "3:cpu:/docker/abc\n", {
        "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n",
    }) is None


def test_a_hybrid_host_takes_the_tighter_of_both(tmp_path: Path) -> None:
    proc = "1:cpu:/svc\n0::/svc\n"
    assert limit(tmp_path, proc, {
        "cpu/svc/cpu.cfs_quota_us": "300000", "cpu/svc/cpu.cfs_period_us": "100000",
        "unified/svc/cpu.max": "120000 100000",
    }) == 1.2


def test_without_proc_self_cgroup_the_roots_are_read(tmp_path: Path) -> None:
    assert limit(tmp_path, None, {"cpu.max": "200000 100000\n"}) == 2.0
    assert limit(tmp_path / "v1", b"", {
        "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000",
    }) == 0.5


@pytest.mark.parametrize("cpu_max", [
    "abc", "", "100000", "100000 100000 7", "0 100000", "-5 100000", "100000 0",
    "1.5 1", b"\xff\xfe\x00",
])
def test_a_malformed_cpu_max_is_skipped(tmp_path: Path, cpu_max: str | bytes) -> None:
    files = {"app/cpu.max": cpu_max, "cpu.max": "400000 100000\n"}
    assert limit(tmp_path, "0::/app\n", files) == 4.0  # the root's still counts


@pytest.mark.parametrize(("quota", "period"), [
    ("x", "100000"), ("100000", ""), ("100000", "0"), ("0", "100000"), ("", ""),
])
def test_malformed_cfs_files_are_skipped(tmp_path: Path, quota: str, period: str) -> None:
    files = {"cpu/app/cpu.cfs_quota_us": quota, "cpu/app/cpu.cfs_period_us": period}
    assert limit(tmp_path, "5:cpu:/app\n", files) is None


@pytest.mark.parametrize("proc", [
    "garbage\n", "0::relative/path\n", "0::/../../outside\n", b"\xff\xfe", "1:cpu\n",
])
def test_a_malformed_proc_self_cgroup_never_crashes(tmp_path: Path, proc: str | bytes) -> None:
    found = limit(tmp_path, proc, {"cpu.max": "200000 100000", "outside/cpu.max": "1 100000"})
    assert found == 2.0  # the root's quota (a fallback), never the outside group's


def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path: Path) -> None:
    root = layout(tmp_path / "sys", {"app/cpu.max": "150000 100000\n"})
    proc = layout(tmp_path, {"cgroup": "0::/app\n"}) / "cgroup"
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == min(affinity(), 2)
    (root / "app/cpu.max").write_text("max 100000\n")
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == affinity()
    (root / "app/cpu.max").write_text("10000 100000\n")  # a tenth of a CPU: still one
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == 1
    extra = layout(tmp_path, {"extra.max": "100000 100000"}) / "extra.max"
    (root / "app/cpu.max").write_text("max 100000\n")
    assert usable_cpus(extra, cgroup_root=root, proc_cgroup=proc) == 1
