"""Test doubles for embedders and for this project's own tests."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from actors import Future, Promise
from isolator.drivers.base import DriverClient

__all__ = ["DriverCall", "RecordingDriverClient"]

# What a scripted call answers: a value, an exception to fail with, or a Future to follow.
Response = object


class DriverCall(NamedTuple):
    """One call the isolator made to its driver."""

    op: str  # "mount", "unmount" or "path"
    driver: str
    name: str
    options: dict[str, str] | None
    thread: str


class RecordingDriverClient(DriverClient):
    """A ``DriverClient`` that records every call and answers as the test scripts it.

    Unscripted mounts answer ``<base_dir>/<driver>/<name>`` (made on the spot, so give it
    a directory the test owns) and unscripted unmounts succeed. ``hold()`` makes calls
    wait on promises the test completes, to reproduce slow or hanging drivers.

    It counts as Docker's ``local`` driver does (``count++`` on every unscripted Mount,
    ``count--`` on every unscripted Unmount, never below 0): ``counts`` shows what a
    counting plugin would still hold, and an unscripted ``path`` answers the mount point
    while the count is above 0, else ``""``.
    """

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self._base_dir = os.fspath(base_dir)
        self._condition = threading.Condition()
        self._calls: list[DriverCall] = []
        self._scripts: dict[tuple[str, str, str], deque[Response]] = {}
        self._held: dict[tuple[str, str, str], deque[Promise[Any]]] = {}
        self._holding: set[tuple[str, str, str]] = set()
        self._counts: dict[tuple[str, str], int] = {}

    # -- scripting -------------------------------------------------------------------

    def script(self, op: str, driver: str, name: str, *responses: Response) -> None:
        """Answer the next calls of ``op`` on (driver, name) with ``responses``, in order."""
        with self._condition:
            self._scripts.setdefault((op, driver, name), deque()).extend(responses)

    def hold(self, op: str, driver: str, name: str) -> None:
        """Leave calls of ``op`` on (driver, name) pending until ``release`` answers them."""
        with self._condition:
            self._holding.add((op, driver, name))

    def release(self, op: str, driver: str, name: str, response: Response) -> None:
        """Answer the oldest held call of ``op`` on (driver, name)."""
        with self._condition:
            promise = self._held[(op, driver, name)].popleft()
        _answer(promise, response)

    # -- observing -------------------------------------------------------------------

    @property
    def calls(self) -> list[DriverCall]:
        with self._condition:
            return list(self._calls)

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """(driver, name) -> unscripted Mounts less Unmounts, for volumes above 0."""
        with self._condition:
            return {key: count for key, count in self._counts.items() if count}

    def wait_for_calls(self, count: int, *, timeout: float = 10.0) -> list[DriverCall]:
        """Wait until at least ``count`` calls were made; raise ``TimeoutError`` if not."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._calls) >= count, timeout):
                raise TimeoutError(f"expected {count} driver calls, got {self._calls}")
            return list(self._calls)

    # -- DriverClient ----------------------------------------------------------------

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return cast("Future[str]", self._call("mount", driver, name, dict(options)))

    def unmount(self, driver: str, name: str) -> Future[None]:
        return cast("Future[None]", self._call("unmount", driver, name, None))

    def path(self, driver: str, name: str) -> Future[str]:
        return cast("Future[str]", self._call("path", driver, name, None))

    def _call(self, op: str, driver: str, name: str, options: dict[str, str] | None) -> Any:
        key = (op, driver, name)
        promise: Promise[Any] = Promise()
        with self._condition:
            self._calls.append(
                DriverCall(op, driver, name, options, threading.current_thread().name)
            )
            script = self._scripts.get(key)
            # A scripted None is an answer (an unmount's value), not "unscripted".
            scripted = bool(script)
            response: Response = script.popleft() if script else None
            held = key in self._holding and not scripted
            if held:
                self._held.setdefault(key, deque()).append(promise)
            self._condition.notify_all()
        if held:
            return promise.future
        if not scripted:
            response = self._default(op, driver, name)
        _answer(promise, response)
        return promise.future

    def _default(self, op: str, driver: str, name: str) -> Response:
        path = os.path.join(self._base_dir, driver, name)
        with self._condition:
            count = self._counts.get((driver, name), 0)
            if op != "path":
                count = max(0, count + (1 if op == "mount" else -1))
                self._counts[(driver, name)] = count
        if op == "unmount":
            return None
        if op == "path":
            return path if count else ""
        os.makedirs(path, exist_ok=True)
        return path + "\n"  # like dvdcli: the isolator trims it


def _answer(promise: Promise[Any], response: Response) -> None:
    if isinstance(response, BaseException):
        promise.fail(response)
    elif isinstance(response, Future):
        promise.associate(response)
    else:
        promise.set(response)
