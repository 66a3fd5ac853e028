"""Integrations with other software, each behind an optional extra: ``prometheus``
(``[metrics]``) and ``ray`` (``[ray]``). The core package imports none of them."""
