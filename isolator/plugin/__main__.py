"""``python -m isolator.plugin``: the same as the ``isolator-volume-plugin`` console script."""

from __future__ import annotations

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
