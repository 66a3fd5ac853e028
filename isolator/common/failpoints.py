"""Named points where a test can crash or fail the isolator, to prove that it recovers.

The isolator calls ``hit(name)`` at every step that matters to its one promise (a volume
is unmounted exactly when its last user is gone, across crashes). Nothing happens unless a
point is armed, and only an explicit call arms one: a test's ``arm``/``armed``, or a test
program's ``arm_from_env()``, which reads the environment variable ``ISOLATOR_FAILPOINTS``,
e.g. ``before-mount=kill`` or ``after-unmount=kill@2,before-checkpoint-removal=raise``
(``@N``: act on the N-th hit). Importing this module arms nothing and reads no environment,
so a production process can never be armed by a stray variable. Unarmed, ``hit`` is one
truth test of an empty dict.

Actions: ``kill`` sends SIGKILL to this process (a crash: no cleanup, no flush); ``raise``
raises ``FailpointError`` at that step.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal, cast

from isolator.common.errors import IsolatorError

__all__ = [
    "CSI_POINTS",
    "ENV",
    "POINTS",
    "FailpointError",
    "arm",
    "arm_from_env",
    "arm_spec",
    "armed",
    "disarm",
    "hit",
    "hits",
]

ENV: Final = "ISOLATOR_FAILPOINTS"

POINTS: Final = (
    "after-checkpoint-write",
    "before-mount",
    "after-mount",
    "before-unmount",
    "after-unmount",
    "before-checkpoint-removal",
    "during-recovery",
)
"""Every point of the docker/volume isolator, in the order a container's life passes them."""

CSI_POINTS: Final = (
    "csi-after-checkpoint-write",
    "csi-after-state-write",
    "csi-before-stage",
    "csi-after-stage",
    "csi-before-publish",
    "csi-after-publish",
    "csi-before-unpublish",
    "csi-after-unpublish",
    "csi-before-unstage",
    "csi-after-unstage",
    "csi-before-checkpoint-removal",
    "csi-during-recovery",
)
"""The volume/csi isolator's points: each state-machine step, before and after its call
(``csi-after-state-write``: a volume's state is on disk and its call not yet made)."""

_KNOWN: Final = frozenset(POINTS + CSI_POINTS)

Action = Literal["kill", "raise"]
_ACTIONS: Final = ("kill", "raise")


class FailpointError(IsolatorError):
    """Raised at an armed ``raise`` failpoint."""


@dataclass
class _Arm:
    action: Action
    on_hit: int  # act on this hit (1 = the first)
    seen: int = 0


_lock = threading.Lock()
_armed: dict[str, _Arm] = {}
_hits: dict[str, int] = {}


def _check(name: str, action: str, on_hit: int) -> None:
    if name not in _KNOWN:
        every = ", ".join(POINTS + CSI_POINTS)
        raise ValueError(f"Unknown failpoint {name!r}; the points are: {every}")
    if action not in _ACTIONS:
        raise ValueError(f"Unknown failpoint action {action!r}; expected 'kill' or 'raise'")
    if on_hit < 1:
        raise ValueError(f"Failpoint {name!r}: the hit to act on must be 1 or more, not {on_hit}")


def arm(name: str, action: Action = "raise", *, on_hit: int = 1) -> None:
    """Make the ``on_hit``-th pass through ``name`` (counted from now) ``kill`` or ``raise``."""
    _check(name, action, on_hit)
    with _lock:
        _armed[name] = _Arm(action, on_hit)


def disarm(name: str | None = None) -> None:
    """Disarm ``name``, or every point; also forgets the hit counts."""
    with _lock:
        if name is None:
            _armed.clear()
            _hits.clear()
        else:
            _armed.pop(name, None)
            _hits.pop(name, None)


@contextmanager
def armed(name: str, action: Action = "raise", *, on_hit: int = 1) -> Iterator[None]:
    """``arm`` for the length of a ``with`` block."""
    arm(name, action, on_hit=on_hit)
    try:
        yield
    finally:
        disarm(name)


def hits() -> Mapping[str, int]:
    """How often each point was passed while any point was armed (for tests)."""
    with _lock:
        return dict(_hits)


def hit(name: str) -> None:
    """Pass through failpoint ``name``: nothing, unless it is armed."""
    if not _armed:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        arm_ = _armed.get(name)
        if arm_ is None:
            return
        arm_.seen += 1
        if arm_.seen != arm_.on_hit:
            return
        action = arm_.action
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"Failpoint '{name}' hit")


def arm_spec(spec: str) -> None:
    """Arm every point ``spec`` names (``name=action[@N],...``), or none if a part is wrong."""
    parsed: dict[str, _Arm] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = item.partition("=")
        action, _, count = rest.partition("@")
        try:
            on_hit = int(count) if count else 1
        except ValueError:
            raise ValueError(f"{ENV}: bad hit count in {item!r}") from None
        _check(name, action, on_hit)
        parsed[name] = _Arm(cast("Action", action), on_hit)
    with _lock:
        _armed.update(parsed)


def arm_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Arm the points ``ISOLATOR_FAILPOINTS`` names in ``environ`` (default ``os.environ``).

    Only test programs call this (the crash agent does, first thing): production code never
    reads the variable, so it cannot arm a point by accident.
    """
    arm_spec((os.environ if environ is None else environ).get(ENV, ""))
