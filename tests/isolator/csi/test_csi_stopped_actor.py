"""A CSI isolator whose actor is gone (stopped by the application's shutdown, not by the
handle) fails each call with the isolator's own error, not pykka's "actor not found"."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pykka
import pytest

from isolator import IsolatorError
from isolator.csi.handle import STOPPED
from isolator.messages import container_id
from tests.support.csi_isolators import CsiSetup, csi_setup
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the CSI set-up mounts"),
]


@pytest.fixture
def csi() -> Iterator[CsiSetup]:
    with csi_setup() as setup:
        yield setup


def test_a_call_to_an_actor_stopped_behind_the_handles_back_says_the_isolator_stopped(
    csi: CsiSetup,
) -> None:
    isolator = csi.isolator()
    pykka.ActorRegistry.stop_all()  # the handle does not know
    with pytest.raises(IsolatorError) as failure:
        isolator.cleanup(container_id("c1")).get(WAIT)
    assert str(failure.value) == STOPPED
