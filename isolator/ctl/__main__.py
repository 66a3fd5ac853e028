"""``python -m isolator.ctl``: the same as ``isolator-ctl``."""

from __future__ import annotations

from isolator.ctl.cli import main

raise SystemExit(main())
