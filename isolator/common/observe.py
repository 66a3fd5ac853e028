"""What an isolator reports as it works, for metrics and logs, without depending on any
metrics library: pass an ``Observer`` to ``DockerVolumeIsolator.create``.

``isolator.contrib.prometheus.PrometheusObserver`` (the ``[metrics]`` extra) turns these
reports into kubelet-style Prometheus metrics; any other sink subclasses ``Observer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from actors import DiscardedError

if TYPE_CHECKING:
    from actors import Future

__all__ = [
    "Gauges",
    "Observer",
    "Operation",
    "OperationEvent",
    "observes_gauges",
    "observes_operations",
    "report_when_done",
]

logger = logging.getLogger("isolator")

Operation = Literal["prepare", "cleanup", "recover", "mount", "unmount"]


@dataclass(frozen=True)
class OperationEvent:
    """One operation that ended: a container's ``prepare``/``cleanup``, the ``recover``,
    or one driver call (``mount``/``unmount``, with its ``driver``)."""

    operation: Operation
    seconds: float
    error: BaseException | None = None
    driver: str = ""
    """The volume driver of a ``mount`` or ``unmount``; empty for container operations."""

    @property
    def status(self) -> Literal["success", "error"]:
        return "success" if self.error is None else "error"


@dataclass(frozen=True)
class Gauges:
    """How much the isolator holds right now."""

    containers: int
    """Containers it knows (prepared, being cleaned up, or with a failed cleanup)."""
    volume_sequences: int
    """Per-volume sequences alive."""
    volumes_in_use: Mapping[str, int] = field(default_factory=dict)
    """Driver -> how many of its volumes at least one container holds."""


class Observer:
    """Receives the isolator's reports; override what you need (the defaults do nothing).

    Called from the isolator's threads: an observer must be quick and never block. An
    exception it raises is logged and otherwise ignored.
    """

    def on_operation(self, event: OperationEvent) -> None:
        """An operation ended."""

    def on_gauges(self, gauges: Gauges) -> None:
        """The counts changed (after each prepare, cleanup, recovery or forget)."""

    def on_csi_operation(self, method: str, driver: str, code: str, seconds: float) -> None:
        """One CSI call ended (the CSI isolator): its gRPC ``method`` (``NodeStageVolume``...),
        the plugin's type, the gRPC status code's name (``OK``, ``NOT_FOUND``...), its time."""


def observes_operations(observer: Observer) -> bool:
    """Whether ``observer`` does anything with operations: if not, none is timed."""
    return type(observer).on_operation is not Observer.on_operation


def observes_gauges(observer: Observer) -> bool:
    """Whether ``observer`` does anything with gauges: if not, none is counted."""
    return type(observer).on_gauges is not Observer.on_gauges


def notify_operation(observer: Observer, event: OperationEvent) -> None:
    """``observer.on_operation(event)``, never letting the observer break the isolator."""
    try:
        observer.on_operation(event)
    except Exception:
        logger.exception("Observer %r failed on %s", observer, event)


def notify_gauges(observer: Observer, gauges: Gauges) -> None:
    """``observer.on_gauges(gauges)``, never letting the observer break the isolator."""
    try:
        observer.on_gauges(gauges)
    except Exception:
        logger.exception("Observer %r failed on %s", observer, gauges)


def report_when_done(
    observer: Observer,
    future: Future[Any],
    operation: Operation,
    started: float,
    *,
    driver: str = "",
) -> None:
    """Once ``future`` completes, report ``operation`` to ``observer``: the seconds since
    ``started`` (a ``time.monotonic()``) and its error (``DiscardedError`` if discarded)."""

    def report(done: Future[Any]) -> None:
        error = None if done.is_ready() else (done.failure() or DiscardedError())
        seconds = time.monotonic() - started
        notify_operation(observer, OperationEvent(operation, seconds, error, driver=driver))

    future.on_any(report)
