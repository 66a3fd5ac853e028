"""The dry-run driver sends nothing, answers unmounts and refuses mounts."""

from __future__ import annotations

import pytest

from isolator.common.errors import MountRefusedError
from isolator.ctl.dry_run import DryRunDriverClient


def test_it_records_unmounts_in_order_and_answers_them_at_once() -> None:
    client = DryRunDriverClient()
    assert client.unmount("d", "v2").get(timeout=0) is None
    assert client.unmount("d", "v1").get(timeout=0) is None
    assert client.unmounts == [("d", "v2"), ("d", "v1")]


def test_it_refuses_to_mount_so_a_dry_run_never_touches_a_volume() -> None:
    client = DryRunDriverClient()
    with pytest.raises(MountRefusedError, match="does not mount volume 'v' of driver 'd'"):
        client.mount("d", "v", {}).get(timeout=0)
    assert client.unmounts == []
