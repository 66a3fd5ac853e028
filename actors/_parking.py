"""Brief blocking calls kept for the thread that runs the turn starting them.

A thread hand-off costs more than a file written on a tmpfs: two wake-ups, and a GIL that
the I/O thread must win back after each of its system calls from a thread running Python
(a convoy). So a turn may *park* a brief call (``actors.run_brief``,
``actors.run_after_turn``): the thread that ran the turn, a worker or a waiting caller,
runs it once the turn is over, outside any actor's turn, so the actor stays free for other
threads meanwhile. Two kinds:

- ``IF_IDLE`` (``run_brief``): kept only by a waiting caller (a donor), which runs the
  first such call itself if it would otherwise sleep; the others are handed off at once,
  so they overlap it and the turns still to run;
- ``ALWAYS`` (``run_after_turn``): run by whichever thread ran the turn, in order, before
  it takes its next task.

A thread that is about to wait on a future inside a turn hands everything it parked off
first, since it could not run it while it waits.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Kind", "hand_off_all", "park", "parking", "settle"]

Call = Callable[[], object]
HandOff = Callable[[Call], object]


class Kind(enum.Enum):
    IF_IDLE = "if idle"
    ALWAYS = "always"


Parked = list[tuple[Call, HandOff, Kind]]


class _Here(threading.local):
    parked: Parked | None = None  # while this thread runs a pool's tasks
    donor = False


_here = _Here()


@contextmanager
def parking(*, donor: bool) -> Iterator[Parked]:
    """Around a thread's run of a pool's tasks: what its turns park, to ``settle``."""
    previous = _here.parked, _here.donor
    parked: Parked = []
    _here.parked, _here.donor = parked, donor
    try:
        yield parked
    finally:
        _here.parked, _here.donor = previous
        hand_off_all(parked)


def park(call: Call, hand_off: HandOff, kind: Kind) -> bool:
    """Keep ``call`` for this thread, to run after its turn; False where it cannot be kept
    (not in a turn, or ``IF_IDLE`` on a worker): the caller hands it off itself."""
    parked = _here.parked
    if parked is None or (kind is Kind.IF_IDLE and not _here.donor):
        return False
    parked.append((call, hand_off, kind))
    return True


def settle(parked: Parked, *, idle: Callable[[], bool], progress: Callable[[], object]) -> None:
    """After a turn: hand off the ``IF_IDLE`` calls, but the first if ``idle()`` (nothing
    else waits for this thread), then run that one and the ``ALWAYS`` ones here, in order,
    each after ``progress()`` (so a pool's nudge sees this thread moving, not stuck).
    Calls they park in turn are settled too."""
    while parked:
        batch = parked[:]
        parked.clear()
        kept_one = False
        mine: list[Call] = []
        for call, hand_off, kind in batch:
            if kind is Kind.ALWAYS:
                mine.append(call)
            elif not kept_one and idle():
                kept_one = True
                mine.append(call)
            else:
                hand_off(call)
        for call in mine:
            progress()
            call()  # runs to its end; a parked call reports its own failures


def hand_off_all(parked: Parked | None = None) -> None:
    """Hand on every call parked (by default, this thread's), in order."""
    parked = _here.parked if parked is None else parked
    while parked:
        call, hand_off, _ = parked.pop(0)
        hand_off(call)
