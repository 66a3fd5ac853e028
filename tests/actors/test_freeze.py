"""``freeze_long_lived``: what is alive leaves the collector's walks; garbage is not kept."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

import actors


class _Record:
    """A tracked object with a cycle, as a container record is."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the suite runs with the collector as before


@pytest.mark.usefixtures("_unfrozen")
def test_live_objects_are_frozen_and_garbage_is_collected_first() -> None:
    alive = _Record()
    garbage = _Record()
    gone = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    frozen = actors.freeze_long_lived()
    # Other threads may free frozen objects meanwhile, so the count can only have dropped.
    assert 0 < gc.get_freeze_count() <= frozen
    assert gone() is None, "garbage was frozen instead of collected"
    assert not any(o is alive for o in gc.get_objects())  # out of every generation walked
    gc.unfreeze()
    assert any(o is alive for o in gc.get_objects())


@pytest.mark.usefixtures("_unfrozen")
def test_without_collect_nothing_is_collected() -> None:
    garbage = _Record()
    gone = weakref.ref(garbage)
    del garbage
    actors.freeze_long_lived(collect=False)
    assert gone() is not None
