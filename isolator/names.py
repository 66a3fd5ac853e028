"""Names that become path components: one rule for container IDs, plugins and volumes."""

from __future__ import annotations

__all__ = ["component_problem"]


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
