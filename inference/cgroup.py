"""The CPU quota of this process's cgroups: a container's `--cpus` or a pod's CPU limit,
which the CPU affinity does not show (`session.usable_cpus` caps the affinity by it).

A quota set on any group above the process's own also binds it, so every group from the
process's own (named in `/proc/self/cgroup`) up to the hierarchy's root is read, and the
tightest quota wins:

- cgroup v2: `cpu.max` ("<quota> <period>", or "max <period>": none), under
  `/sys/fs/cgroup` (or `/sys/fs/cgroup/unified` on a hybrid host) at the path of the
  `0::<path>` line.
- cgroup v1: `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`, under the cpu
  controller's mount (`/sys/fs/cgroup/cpu`, or the directory named by its controller
  list, `cpu,cpuacct`) at the path of its line. In a container that sees its own group
  as the mount's root while `/proc/self/cgroup` names the host's path, the groups that
  do not exist are skipped and the mount's root read.

A file that is absent, unreadable or malformed is skipped: the quota is then unknown,
never an error. Both roots are arguments, so tests can lay out a tree of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["CGROUP_ROOT", "PROC_SELF_CGROUP", "cgroup_cpu_limit", "cpu_max"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def cgroup_cpu_limit(cgroup_root: Path = CGROUP_ROOT,
                     proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The tightest CPU quota of this process's cgroups, in CPUs (1.5: one and a half),
    or None when no quota is set or none can be read."""
    limits: list[float | None] = []
    for controllers, path in _own_groups(proc_cgroup):
        if controllers is None:  # the v2 (unified) hierarchy
            for root in (cgroup_root, cgroup_root / "unified"):
                limits += [cpu_max(group / "cpu.max") for group in _up_from(root, path)]
        elif "cpu" in controllers:
            for mount in _v1_cpu_mounts(cgroup_root, controllers):
                limits += [_cfs_quota(group) for group in _up_from(mount, path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _own_groups(proc_cgroup: Path) -> list[tuple[list[str] | None, str]]:
    """(controllers, path) of each line of /proc/self/cgroup; None for the v2 line.
    Unreadable or empty: the root groups of both versions (where a container sees its
    own)."""
    fallback: list[tuple[list[str] | None, str]] = [(None, "/"), (["cpu"], "/")]
    try:
        text = proc_cgroup.read_text()
    except (OSError, UnicodeDecodeError):
        return fallback
    groups: list[tuple[list[str] | None, str]] = []
    for line in text.splitlines():
        fields = line.split(":", 2)  # hierarchy-id:controllers:path; a path may hold ':'
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and not controllers:
            groups.append((None, path))
        else:
            groups.append((controllers.split(","), path))
    return groups or fallback


def _up_from(root: Path, path: str) -> Iterator[Path]:
    """`root`/`path` and every group above it, up to `root` itself. A path that leaves
    the root (`..`: a group outside this cgroup namespace) reads the root only."""
    parts = PurePosixPath(path).parts[1:]
    if ".." in parts:
        parts = ()
    for depth in range(len(parts), -1, -1):
        yield root.joinpath(*parts[:depth])


def _v1_cpu_mounts(cgroup_root: Path, controllers: list[str]) -> list[Path]:
    """Where the v1 cpu controller may be mounted; those that exist."""
    names = dict.fromkeys([",".join(controllers), "cpu", "cpu,cpuacct", "cpuacct,cpu"])
    return [cgroup_root / name for name in names if (cgroup_root / name).is_dir()]


def cpu_max(file: Path) -> float | None:
    """CPUs allowed by a v2 `cpu.max`; None for "max" or a file that cannot be read."""
    try:
        quota, period = file.read_text().split()
        if quota == "max":
            return None
        return _ratio(int(quota), int(period))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _cfs_quota(group: Path) -> float | None:
    """CPUs allowed by a v1 group's CFS quota; None for -1 (none) or unreadable files."""
    try:
        quota = int((group / "cpu.cfs_quota_us").read_text())
        if quota < 0:
            return None
        return _ratio(quota, int((group / "cpu.cfs_period_us").read_text()))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _ratio(quota: int, period: int) -> float | None:
    """quota / period, or None when either is not positive (no kernel writes that)."""
    return quota / period if quota > 0 and period > 0 else None
