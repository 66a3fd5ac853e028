"""Names that come from a task: one rule for path components, one for control characters, and
one way to print any hostile string in a message."""

from __future__ import annotations

import hashlib
import unicodedata
from urllib.parse import quote

__all__ = ["component_problem", "control_problem", "encoded_file_name", "printable"]

_MAX_ENCODED = 200
"""Longest encoded file name kept readable; file names are limited to 255 bytes."""

# Control (Cc: NUL, newline, ESC...), format (Cf: bidi overrides that make a name read as
# another), line and paragraph separators (Zl, Zp) and lone surrogates (Cs: undecodable bytes
# from os.fsdecode): each can forge or cut a log line or a terminal's view of one.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT = {"\0": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def _plainly_visible(value: str) -> bool:
    """True when ``value`` is ASCII with no control character: it has nothing to hide (the
    only hidden ASCII characters are controls, which ``isprintable`` refuses), checked in C
    rather than one category lookup per character."""
    return value.isascii() and value.isprintable()


def printable(value: str) -> str:
    """``value`` with every control character escaped (``\\0``, ``\\n``, ``\\x1b``, ``\\u202e``).

    For any string a task controls that goes into an error or a log line: the message stays
    one line and shows what was sent. Everything else is kept as is, so ordinary names print
    exactly as Mesos prints them.
    """
    if _plainly_visible(value) or not any(_hidden(char) for char in value):
        return value
    return "".join(_escape(char) if _hidden(char) else char for char in value)


def _escape(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def control_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name a driver sees, or ``None``; completes "<what> ..."."""
    if not _plainly_visible(value) and any(_hidden(char) for char in value):
        return "must not contain control characters"
    return None


def component_problem(value: str) -> str | None:
    """Why ``value`` cannot be one path component under a root, or ``None`` when it can.

    Empty, ``.`` and ``..`` name the root or its parent; ``/`` names another directory;
    NUL names no valid path at all. The answer completes "<what> ...", e.g. "must not be
    empty".
    """
    if not value:
        return "must not be empty"
    if value in (".", ".."):
        return f"must not be '{value}'"
    if "/" in value:
        return "must not contain '/'"
    if "\0" in value:
        return "must not contain a NUL character"
    return None


def encoded_file_name(*parts: str, kind: str, suffix: str) -> str:
    """A file name standing for ``parts`` (any strings, hostile ones too): never a path.

    ``<kind>-<part>@<part>...<suffix>`` with each part percent-encoded (only letters,
    digits and ``_.-~`` stay, so ``/``, ``@`` and NUL cannot appear raw and distinct parts
    give distinct names); when that is longer than about 200 bytes,
    ``<kind>#<sha256 of the parts><suffix>``. ``kind`` keeps the name from starting
    with a dot, and tells the two forms apart.
    """
    raw = [part.encode("utf-8", "surrogatepass") for part in parts]
    encoded = "@".join(quote(part, safe="") for part in raw)
    if len(encoded) <= _MAX_ENCODED:
        return f"{kind}-{encoded}{suffix}"
    digest = hashlib.sha256(b"\0".join(raw)).hexdigest()
    return f"{kind}#{digest}{suffix}"
