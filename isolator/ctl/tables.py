"""What every ``isolator-ctl`` command answers with, and how it is printed: a table as the
docker CLI prints one, or a JSON document."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from isolator.common.names import printable
from isolator.docker.state import VolumeKey

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Outcome",
    "UsageError",
    "table",
    "volume_json",
    "volume_text",
]

EXIT_OK: Final = 0
"""Done; nothing wrong found."""
EXIT_FAILED: Final = 1
"""Something was found wrong, or the action failed."""
EXIT_USAGE: Final = 2
"""Bad arguments or flags, or a confirmation missing: nothing was done."""


class UsageError(Exception):
    """A command refuses to run as asked; the message says why (exit 2, nothing done)."""


@dataclass(frozen=True)
class Outcome:
    """A command's answer: its exit status, its ``--json`` document and its text."""

    code: int
    data: dict[str, Any]
    text: str

    def render(self, *, as_json: bool) -> str:
        if as_json:
            return json.dumps(self.data, indent=2) + "\n"
        return self.text if self.text.endswith("\n") else self.text + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns three spaces apart and left-aligned, as ``docker ps`` prints them; every
    cell printable (control characters escaped)."""
    lines = [list(header), *([printable(cell) for cell in row] for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def volume_text(volume: VolumeKey) -> str:
    return f"{volume.driver}/{volume.name}"


def volume_json(volume: VolumeKey) -> dict[str, str]:
    return {"driver": volume.driver, "name": volume.name}
