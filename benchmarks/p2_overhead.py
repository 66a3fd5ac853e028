"""P2 overhead: what the isolator adds to the work it must do, with a driver that costs nothing.

One repeat, for each of three runs (N containers, each with its own volume, checkpointed on
tmpfs with N = 1,000 and N = 10,000, and on disk with N = 1,000):

- bare: the bare loop (``benchmarks.workload``) writes every checkpoint and mounts, then
  unmounts every volume and removes every checkpoint;
- isolator: ``prepare`` of all N in flight at once, then ``cleanup`` of all N
  (``workload.prepare_and_cleanup``), on a ``ZeroLatencyDriver``.

The figure is the throughput ratio ``bare seconds / isolator seconds`` (1.0: the isolator
adds nothing; 0.5: it takes twice as long). Targets (issue 8): >= 0.6 on tmpfs, >= 0.85 on
disk, where fsync dominates; and linear cost: the tmpfs ratio at 10,000 is >= 0.9 times the
ratio at 1,000 (``p2_linearity``). Each run starts with a warm-up of 50 containers through
both, so neither pays for first calls (imports, thread starts).
"""

from __future__ import annotations

from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import Check, Options, scratch_dir, timed
from benchmarks.workload import bare_all_at_once, containers, isolator_on, prepare_and_cleanup

__all__ = ["checks", "measure"]


def _sizes(options: Options) -> tuple[int, int, int]:
    return options.size(1_000), options.size(10_000, smallest=100), options.size(1_000)


def checks(options: Options) -> list[Check]:
    small, large, disk = _sizes(options)
    return [
        Check(
            "tmpfs_small",
            f"P2 prepare+cleanup throughput vs bare loop, tmpfs, {small:,}",
            0.6,
            higher_is_better=True,
            detail="{tmpfs_small_bare_s:.3f} s bare, {tmpfs_small_isolator_s:.3f} s isolator",
        ),
        Check(
            "tmpfs_large",
            f"P2 same, tmpfs, {large:,} containers",
            0.6,
            higher_is_better=True,
            detail="{tmpfs_large_bare_s:.3f} s bare, {tmpfs_large_isolator_s:.3f} s isolator",
        ),
        Check(
            "linearity",
            f"P2 linearity: tmpfs ratio at {large:,} / ratio at {small:,}",
            0.9,
            higher_is_better=True,
        ),
        Check(
            "disk",
            f"P2 same, disk, {disk:,} containers",
            0.85,
            higher_is_better=True,
            detail="{disk_bare_s:.3f} s bare, {disk_isolator_s:.3f} s isolator",
        ),
    ]


def _one(root: str, count: int) -> tuple[float, float]:
    """Seconds for the bare loop and for the isolator, on ``count`` fresh containers."""
    driver = ZeroLatencyDriver(f"{root}/mount-point")
    checkpoints = f"{root}/checkpoints"
    warm_up, batch = containers(50, prefix="w"), containers(count)

    with isolator_on(checkpoints, driver) as isolator:
        bare_all_at_once(checkpoints, driver, warm_up)
        prepare_and_cleanup(isolator, warm_up)
        bare_seconds = timed(lambda: bare_all_at_once(checkpoints, driver, batch))
        isolator_seconds = timed(lambda: prepare_and_cleanup(isolator, batch))
    expected = 2 * (count + len(warm_up))
    if driver.count("mount") != expected or driver.count("unmount") != expected:
        raise AssertionError(f"driver calls: {driver.count('mount')} mounts, expected {expected}")
    return bare_seconds, isolator_seconds


def measure(options: Options) -> dict[str, float]:
    small, large, disk = _sizes(options)
    result: dict[str, float] = {}
    runs = (
        ("tmpfs_small", options.tmpfs_dir, True, small),
        ("tmpfs_large", options.tmpfs_dir, True, large),
        ("disk", options.disk_dir, False, disk),
    )
    for key, parent, tmpfs, count in runs:
        with scratch_dir(parent, expect_tmpfs=tmpfs) as root:
            bare, isolator = _one(root, count)
        result[f"{key}_bare_s"], result[f"{key}_isolator_s"] = bare, isolator
        result[key] = bare / isolator
    result["linearity"] = result["tmpfs_large"] / result["tmpfs_small"]
    return result
