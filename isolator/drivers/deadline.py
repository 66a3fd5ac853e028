"""A moment by which a whole driver call must be done, on the event loop's clock.

The mount and unmount timeouts bound a whole call (discovery, activation, retries, every
exchange, the mount-point check), not each step of it: several steps that each stay
within the timeout must not add up to several timeouts. The call's owner enforces the
deadline (``asyncio.timeout_at(deadline.when)``) and words its expiry; the layers below
are handed the same ``Deadline`` so that they start no retry that could not finish and
give no step more time than is left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["Deadline"]


@dataclass(frozen=True)
class Deadline:
    """``when`` is in ``loop.time()`` seconds; read it only on the loop that made it."""

    when: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now, on the running loop's clock."""
        return cls(asyncio.get_running_loop().time() + seconds)

    def remaining(self) -> float:
        """Seconds left, 0 once passed."""
        return max(0.0, self.when - asyncio.get_running_loop().time())
