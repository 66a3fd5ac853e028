"""The driver of a dry run: it sends nothing anywhere and remembers the unmounts it was asked.

``recover --dry-run`` runs the isolator's own recovery on a copy of the checkpoints with
this client, so the unmounts it lists are exactly the ones a real recovery would send.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from actors import Future
from isolator.common.errors import MountRefusedError
from isolator.drivers.base import DriverClient

__all__ = ["DryRunDriverClient"]


class DryRunDriverClient(DriverClient):
    """Answers every unmount at once with success and records it; refuses every mount.

    Recovery only unmounts; a mount would mean a dry run touching a volume, so it is
    refused (``MountRefusedError``: nothing was mounted, nothing to undo).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unmounts: list[tuple[str, str]] = []

    @property
    def unmounts(self) -> list[tuple[str, str]]:
        """(driver, name) of each unmount asked for, in the order asked."""
        with self._lock:
            return list(self._unmounts)

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return Future.failed(
            MountRefusedError(f"A dry run does not mount volume '{name}' of driver '{driver}'")
        )

    def unmount(self, driver: str, name: str) -> Future[None]:
        with self._lock:
            self._unmounts.append((driver, name))
        return Future.ready(None)
