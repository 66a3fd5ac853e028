"""Driver doubles for the figures: real ``DriverClient``s whose cost is known.

``ZeroLatencyDriver`` answers with futures that are already complete, so a figure measures
the isolator and the file I/O, not a driver. ``TimerDriver`` answers after a fixed latency
from the shared timer thread, holding no thread while it waits, and checks that no two calls
on one volume ever overlap (the per-volume order the isolator promises).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from actors import Future, Promise
from actors._timer import call_later
from isolator import DriverClient

__all__ = ["TimerDriver", "ZeroLatencyDriver"]


class ZeroLatencyDriver(DriverClient):
    """Every mount answers ``mount_point`` (made once, here) and every unmount succeeds, at
    once; each call is counted (a list append: the same cost for the bare loop)."""

    def __init__(self, mount_point: str) -> None:
        os.makedirs(mount_point, exist_ok=True)
        self.mount_point = mount_point
        self._mounted: Future[str] = Future.ready(mount_point)
        self._unmounted: Future[None] = Future.ready(None)
        self.calls: list[str] = []

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        self.calls.append("mount")
        return self._mounted

    def unmount(self, driver: str, name: str) -> Future[None]:
        self.calls.append("unmount")
        return self._unmounted

    def count(self, op: str) -> int:
        return self.calls.count(op)


class OverlapError(AssertionError):
    """Two driver calls on one volume were in flight at once."""


class TimerDriver(DriverClient):
    """Answers every call ``latency`` seconds later from the timer thread; records, per
    volume, the calls in the order they started, and fails a call that starts while
    another on the same volume is still in flight."""

    def __init__(self, latency: float, mount_point: str) -> None:
        os.makedirs(mount_point, exist_ok=True)
        self._latency = latency
        self._mount_point = mount_point
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self.order: dict[str, list[str]] = {}
        self.overlaps = 0

    def _call(self, op: str, name: str, value: Any) -> Future[Any]:
        with self._lock:
            if name in self._busy:
                self.overlaps += 1
            self._busy.add(name)
            self.order.setdefault(name, []).append(op)
        promise: Promise[Any] = Promise()

        def _answer() -> None:
            with self._lock:
                self._busy.discard(name)
            promise.set(value)

        call_later(self._latency, _answer)
        return promise.future

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return self._call("mount", name, self._mount_point)

    def unmount(self, driver: str, name: str) -> Future[None]:
        return self._call("unmount", name, None)

    def check(self, volumes: int, per_volume: int) -> None:
        """Raise unless each volume saw ``per_volume`` mount/unmount pairs, in turn, apart."""
        expected = ["mount", "unmount"] * per_volume
        wrong = [name for name, calls in self.order.items() if calls != expected]
        if self.overlaps or wrong or len(self.order) != volumes:
            raise OverlapError(
                f"{self.overlaps} overlapping calls; {len(wrong)} volumes out of order "
                f"(e.g. {wrong[:3]}); {len(self.order)} volumes of {volumes}"
            )
