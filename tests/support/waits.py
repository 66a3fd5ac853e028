"""The suite's two waits: one for what must happen, one for what must not."""

from __future__ import annotations

__all__ = ["NEGATIVE_WAIT", "WAIT"]

WAIT = 10.0
"""Seconds a test waits on something that must happen; it returns as soon as it does."""

NEGATIVE_WAIT = 0.1
"""Seconds a negative check watches for something that must not happen."""
