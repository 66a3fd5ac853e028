"""stout's ``Duration``: printed as Mesos prints it (timeouts in messages) and parsed as
Mesos parses a duration flag (``--docker_volume_mount_timeout=2mins``).

Stdlib only: ``isolator.config.flags`` parses durations and ``isolator.launcher`` imports it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["UNIT_NAMES", "DurationError", "format_duration", "parse_duration"]

_NANOSECONDS: Final = 1
_MICROSECONDS: Final = 1000 * _NANOSECONDS
_MILLISECONDS: Final = 1000 * _MICROSECONDS
_SECONDS: Final = 1000 * _MILLISECONDS
_MINUTES: Final = 60 * _SECONDS
_HOURS: Final = 60 * _MINUTES
_DAYS: Final = 24 * _HOURS
_WEEKS: Final = 7 * _DAYS
_INT64_MAX: Final = 2**63 - 1
_INT64_MIN: Final = -(2**63)

_UNITS: Final = (
    (_NANOSECONDS, "ns"),
    (_MICROSECONDS, "us"),
    (_MILLISECONDS, "ms"),
    (_SECONDS, "secs"),
    (_MINUTES, "mins"),
    (_HOURS, "hrs"),
    (_DAYS, "days"),
    (_WEEKS, "weeks"),
)

UNIT_NAMES: Final = tuple(name for _, name in _UNITS)
"""The units a duration is written in: ``ns``, ``us``, ``ms``, ``secs``, ``mins``, ``hrs``,
``days``, ``weeks``."""

_SCALES: Final = {name: nanos for nanos, name in _UNITS}
_NUMBER_THEN_UNIT: Final = re.compile(r"([0-9.]*)(.*)", re.DOTALL)


class DurationError(ValueError):
    """A text that is not a stout duration; the message is stout's."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``, read as stout's ``Duration::parse``: digits and dots, then a unit.

    ``"2mins"`` is 120.0, ``"500ms"`` 0.5, ``"1.5secs"`` 1.5. A number without a unit
    (``"120"``), a sign, or an unknown unit raise ``DurationError`` with stout's message;
    as in stout, the nanoseconds are truncated to a whole number (``Duration`` holds an
    int64) and a value beyond its range is refused.
    """
    match = _NUMBER_THEN_UNIT.fullmatch(text)
    assert match is not None  # the pattern matches every string
    number, unit = match.groups()
    if not unit:
        raise DurationError(f"Invalid duration '{text}'")
    try:
        value = float(number)
    except ValueError:
        raise DurationError(f"Failed to convert '{number}' to number") from None
    scale = _SCALES.get(unit)
    if scale is None:
        supported = ", ".join(f"'{name}'" for name in UNIT_NAMES[:-1])
        raise DurationError(
            f"Unknown duration unit '{unit}'; supported units are {supported}, "
            f"and '{UNIT_NAMES[-1]}'"
        )
    nanos = value * scale
    if not nanos < 2**63:
        raise DurationError(
            "Argument out of the range that a Duration can represent due to int64_t's size limit"
        )
    return int(nanos) / _SECONDS


def format_duration(seconds: float) -> str:
    """``stringify(Duration)`` from stout, so timeout messages read exactly as Mesos's.

    Like ``Duration::create`` the seconds are truncated to whole nanoseconds; the unit is
    the largest one not above the duration, or the next smaller one when only that gives
    a whole number (``1.5`` -> ``1500ms``, ``90`` -> ``90secs``, ``120`` -> ``2mins``).
    Raises ``ValueError`` for a duration outside stout's int64 nanoseconds (or NaN).
    """
    nanos = float(seconds) * _SECONDS
    if not _INT64_MIN <= nanos < 2**63:  # also rejects NaN
        raise ValueError(f"{seconds} seconds is out of the range of a Duration")
    return _format_nanos(int(nanos))


def _format_nanos(nanos: int) -> str:
    # A port of stout's ``operator<<(std::ostream&, const Duration&)``; values are
    # printed as C++ streams print a double at precision 15 (``%.15g``).
    sign = ""
    if nanos < 0:
        sign = "-"
        # ``duration * -1`` goes through a double in stout; Duration::min() becomes max().
        nanos = _INT64_MAX if nanos == _INT64_MIN else min(int(nanos * -1.0), _INT64_MAX)
    index = 0
    while index + 1 < len(_UNITS) and nanos >= _UNITS[index + 1][0]:
        index += 1
    if index > 0:
        unit = _UNITS[index][0]
        if nanos % unit != 0 and nanos % _UNITS[index - 1][0] == 0:
            index -= 1
    unit, name = _UNITS[index]
    if unit == _NANOSECONDS:
        return f"{sign}{nanos}{name}"
    return f"{sign}{float(nanos) / float(unit):.15g}{name}"
