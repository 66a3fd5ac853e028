"""Latency: one prepare+cleanup round trip, alone, on tmpfs.

One repeat times ``R`` round trips (R = 300; a warm-up of 20 first) one after another, each
on a fresh container ID with the same volume, from a plain thread (as an agent calls):

- isolator: ``prepare(id, config).get()`` then ``cleanup(id).get()``, ``ZeroLatencyDriver``;
- bare: ``bare_prepare`` then ``bare_cleanup`` (``benchmarks.workload``): the same
  checkpoint write (with its fsyncs), mount, unmount and removal.

The figure is ``median isolator round trip / median bare round trip`` within the repeat.
Target (issue 8): <= 2.5.
"""

from __future__ import annotations

import gc
import statistics
import time

from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT, Check, Options, scratch_dir
from benchmarks.workload import bare_cleanup, bare_prepare, containers, isolator_on

__all__ = ["checks", "measure"]


def checks(options: Options) -> list[Check]:
    return [
        Check(
            "ratio",
            "Latency: one prepare+cleanup round trip vs bare loop, tmpfs",
            2.5,
            detail="{bare_us:.0f} us bare, {isolator_us:.0f} us isolator",
        ),
    ]


def measure(options: Options) -> dict[str, float]:
    rounds = options.size(300, smallest=30)
    with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root:
        driver = ZeroLatencyDriver(f"{root}/mount-point")
        checkpoints = f"{root}/checkpoints"
        batch = containers(rounds + 20, volumes=1)
        bare_samples, isolator_samples = [], []
        with isolator_on(checkpoints, driver) as isolator:
            gc.collect()
            for index, container in enumerate(batch):
                cid, config, _ = container
                started = time.perf_counter()
                bare_prepare(checkpoints, driver, container)
                bare_cleanup(checkpoints, driver, container)
                middle = time.perf_counter()
                isolator.prepare(cid, config).get(WAIT)
                isolator.cleanup(cid).get(WAIT)
                ended = time.perf_counter()
                if index >= 20:
                    bare_samples.append(middle - started)
                    isolator_samples.append(ended - middle)
    bare, isolated = statistics.median(bare_samples), statistics.median(isolator_samples)
    return {"ratio": isolated / bare, "bare_us": bare * 1e6, "isolator_us": isolated * 1e6}
