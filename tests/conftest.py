"""Fixtures shared by the whole suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Stop every actor a test started, so no actor thread leaks into the next test."""
    yield
    pykka.ActorRegistry.stop_all(timeout=10)
    leftover = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()
                and t is not threading.main_thread()]
    assert not leftover, f"threads still running after the test: {leftover}"
