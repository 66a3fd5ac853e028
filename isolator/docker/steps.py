"""Small pieces the isolator actor composes its steps from: future plumbing, lazy log
arguments, and driver calls bound to a volume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from actors import Future, Promise
from isolator.common.container_ids import format_container_id
from isolator.docker.state import VolumeKey
from isolator.protos import ContainerID

__all__ = ["Shown", "after", "driver_call", "failure_text", "log_orphan_failure", "run"]

logger = logging.getLogger("isolator")

T = TypeVar("T")
U = TypeVar("U")


def failure_text(future: Future[Any]) -> str:
    return str(future.failure()) if future.is_failed() else "discarded"


class Shown:
    """A container ID printed only if the log line is written (lazy %-formatting)."""

    __slots__ = ("_container_id",)

    def __init__(self, container_id: ContainerID) -> None:
        self._container_id = container_id

    def __str__(self) -> str:
        return format_container_id(self._container_id)


def run(fn: Callable[[], T]) -> T:
    return fn()


def log_orphan_failure(entry: str, error: BaseException) -> None:
    logger.warning("Failed to clean up unknown orphan container %s: %s", entry, error)


def after(future: Future[T], then: Callable[[Future[T]], Future[U]]) -> Future[U]:
    """``then(future)`` once ``future`` is complete, however it ended."""
    promise: Promise[U] = Promise()
    future.on_any(lambda done: promise.associate(then(done)))
    return promise.future


def driver_call(
    method: Callable[..., Future[Any]], volume: VolumeKey, *args: Any
) -> Callable[[], Future[Any]]:
    """``method(driver, name, *args)`` for ``volume``, to run when its sequence gets to it."""
    return lambda: method(volume.driver, volume.name, *args)
