"""Fixtures of the OCI tests: a busybox rootfs and a runtime state dir left empty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import delete_all, make_rootfs, runtime_problem


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_rootfs(tmp_path)


@pytest.fixture
def runtime_state(tmp_path: Path, runtime: str) -> Iterator[Path]:
    """The test's own runtime state directory; nothing may be left in it.

    Skips the test when the runtime cannot run a container here, with the reason. What is
    left is deleted, then the test fails for it.
    """
    problem = runtime_problem(runtime)
    if problem is not None:
        pytest.skip(problem)
    state = tmp_path / "runtime-state"
    yield state
    left = delete_all(runtime, state)
    assert not left, f"containers left in the {runtime} state: {left}"
