"""CSI calls reported to an ``Observer``, as kubelet's ``csi_operations_seconds{method_name,
driver_name, grpc_status_code}``: ``Observer.on_csi_operation`` gets each call."""

from __future__ import annotations

import logging

from isolator.common.observe import Observer
from isolator.csi.client import Report

__all__ = ["reporter"]

_log = logging.getLogger("isolator")


def reporter(observer: Observer | None) -> Report | None:
    """The client's ``report`` for ``observer``; None when it does not look at CSI calls."""
    if observer is None or type(observer).on_csi_operation is Observer.on_csi_operation:
        return None
    method = observer.on_csi_operation

    def report(method_name: str, driver: str, code: str, seconds: float) -> None:
        try:
            method(method_name, driver, code, seconds)
        except Exception:
            _log.exception("Observer %r failed on a CSI operation", observer)

    return report
