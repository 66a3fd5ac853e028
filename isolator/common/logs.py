"""The console scripts' logs: text for a person at a terminal, JSON lines for a collector.

Only console scripts configure logging (a library leaves that to its embedder). Where they
do, the HTTP client's per-request lines (``httpx`` logs each request at INFO, ``httpcore``
each step at DEBUG) are kept to WARNING and above unless DEBUG is asked for: an expected
answer such as the "no such volume" of ``VolumeDriver.Get`` before an implicit Create
would otherwise read as a failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, TextIO

__all__ = ["FORMATS", "LEVELS", "QUIET_LIBRARIES", "JsonFormatter", "add_arguments", "configure"]

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS: Final = ("text", "json")
QUIET_LIBRARIES: Final = ("httpx", "httpcore")
"""Loggers held at WARNING unless the level is DEBUG."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (RFC 3339, UTC), ``level``, ``logger``,
    ``message``, and ``exception`` when there is one; a newline in a message stays inside
    its string, so every line is one record."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def add_arguments(parser: argparse.ArgumentParser, *, default_level: str = "INFO") -> None:
    """``--log-level`` and ``--log-format``, the same in every console script."""
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=default_level,
        help="log this level and above, on stderr (default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="json: one object per line with time, level, logger, message (default: %(default)s)",
    )


def configure(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log ``level`` and above to ``stream`` (stderr) in ``fmt``, unless logging is set up
    already (an embedding program, pytest): then its configuration wins, untouched."""
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    if level != "DEBUG":
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
