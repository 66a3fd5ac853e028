"""``isolator-ctl``: the isolator's state for an operator, read (and repaired) offline.

One module per concern: ``checkpoints`` (``status``, ``volumes``, ``forget``),
``recovery`` (``recover --dry-run``, by running the isolator's own recovery on a copy),
``plugins`` (discovery and activation), ``doctor`` (the host's fitness), ``tables`` (how
answers are printed and exit), ``cli`` (the command line).
"""

from __future__ import annotations

from isolator.ctl.cli import main

__all__ = ["main"]
