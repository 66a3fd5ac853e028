"""Failpoints are armed only by an explicit call, never by importing the isolator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from isolator.common import failpoints
from tests.support.repo import REPO

ALL_POINTS = failpoints.POINTS + failpoints.CSI_POINTS
EVERY_POINT = ",".join(f"{point}=raise" for point in ALL_POINTS)

# Imports every module under isolator/ (but the ``__main__`` ones, which run a program),
# passes every point, then arms from the environment on purpose: the points must raise now.
_IMPORT_ALL = """
import importlib, pkgutil, isolator
from isolator.common import failpoints
imported = []
for module in pkgutil.walk_packages(isolator.__path__, "isolator."):
    if module.name.rpartition(".")[2] != "__main__":
        importlib.import_module(module.name)
        imported.append(module.name)
every = failpoints.POINTS + failpoints.CSI_POINTS
for point in every:
    failpoints.hit(point)  # raises if importing armed it
assert not failpoints.hits(), failpoints.hits()
failpoints.arm_from_env()
raised = 0
for point in every:
    try:
        failpoints.hit(point)
    except failpoints.FailpointError:
        raised += 1
print(len(imported), raised)
"""


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    yield
    failpoints.disarm()


def test_importing_every_module_with_the_variable_set_arms_nothing() -> None:
    env = {**os.environ, failpoints.ENV: EVERY_POINT, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported, raised = map(int, done.stdout.split())
    assert imported > 50  # every module, not a few
    assert raised == len(ALL_POINTS)  # the explicit call did arm them


def test_arm_from_env_reads_only_the_mapping_it_is_given() -> None:
    failpoints.arm_from_env({failpoints.ENV: "before-mount=raise@2"})
    failpoints.hit("before-mount")
    with pytest.raises(failpoints.FailpointError, match="'before-mount' hit"):
        failpoints.hit("before-mount")
    assert failpoints.hits() == {"before-mount": 2}


def test_a_wrong_spec_arms_no_point() -> None:
    with pytest.raises(ValueError, match="Unknown failpoint 'nowhere'"):
        failpoints.arm_spec("before-mount=kill,nowhere=raise")
    failpoints.hit("before-mount")  # not armed: the spec was refused as a whole
    assert failpoints.hits() == {}
    with pytest.raises(ValueError, match="bad hit count in 'after-mount=raise@x'"):
        failpoints.arm_spec("after-mount=raise@x")
