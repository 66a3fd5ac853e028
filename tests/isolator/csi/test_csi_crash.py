"""Crash the CSI isolator at every step of the volume state machine, and at random
moments, then recover and check its promises: no publish leaked, nothing a live container
uses was unpublished, no state stranded.

Each round runs an agent process (``csi_crash_agent.py``) beside one reference plugin that
outlives it: it prepares containers sharing volumes and cleans them up until it dies, by a
failpoint (``ISOLATOR_FAILPOINTS``) in the first rounds, one per point, then by SIGKILL
after a random delay. The test then recovers in its own process with the containers the
agent reported prepared (and not being cleaned up) as known ones, checks that their
volumes are still published, cleans them up and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isolator import CsiVolumeIsolator
from isolator.common import failpoints
from isolator.messages import container_id
from isolator.protos import ContainerState
from tests.support.csi_isolators import PLUGIN_TYPE, CsiSetup, csi_setup
from tests.support.csi_plugin import PluginProcess, running_csi_plugin, short_tmp
from tests.support.repo import REPO
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]

AGENT = REPO / "tests" / "support" / "csi_crash_agent.py"
ACTIONS: list[list[Any]] = [
    ["prepare", "c1", ["a"]],
    ["prepare", "c2", ["a", "b"]],
    ["prepare", "c3", ["b"]],
    ["cleanup", "c1"],
    ["cleanup", "c2"],
    ["prepare", "c4", ["a"]],
    ["cleanup", "c3"],
    ["cleanup", "c4"],
]
VOLUMES = {action[1]: action[2] for action in ACTIONS if action[0] == "prepare"}
RANDOM_KILLS = 8
SEED = int(os.environ.get("ISOLATOR_CRASH_SEED", "20261203"))


@pytest.fixture(scope="module")
def plugin() -> Iterator[PluginProcess]:
    with short_tmp("csi-crash-") as workdir, running_csi_plugin(workdir) as running:
        for name in ("a", "b"):
            (running.root / name).mkdir()
        yield running


@pytest.fixture(scope="module")
def csi(plugin: PluginProcess) -> Iterator[CsiSetup]:
    with csi_setup(plugin) as setup:  # one root for every round: each starts where the last ended
        yield setup


def _agent(csi: CsiSetup, env: dict[str, str]) -> subprocess.Popen[str]:
    plan = {
        "config_dir": str(csi.config_dir),
        "root": str(csi.csi_root),
        "sandbox": str(csi.sandbox),
        "plugin": PLUGIN_TYPE,
        "actions": ACTIONS,
    }
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [sys.executable, str(AGENT), json.dumps(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
        cwd=REPO,
    )


def _known(lines: list[str]) -> list[str]:
    """Containers prepared and not yet being cleaned up: the ones still running."""
    prepared = [
        line.split()[1] for line in lines if line.startswith("prepared ") and "failed" not in line
    ]
    cleaning = {line.split()[1] for line in lines if line.startswith("cleaning ")}
    return [name for name in prepared if name not in cleaning]


def _recover_and_check(csi: CsiSetup, known: list[str]) -> None:
    isolator = CsiVolumeIsolator.create(csi.flags())
    try:
        states = [
            ContainerState(container_id=container_id(n), pid=1, directory=str(csi.sandbox / n))
            for n in known
        ]
        isolator.recover(states, []).get(WAIT)
        failed = [str(f.failure()) for f in isolator.background().get(WAIT) if f.is_failed()]
        assert not failed, failed
        published = {name for key, name in _published(isolator)}
        for name in known:  # 0 unpublish under a live container
            assert set(VOLUMES[name]) <= published, (name, published)
        held = {v for name in known for v in VOLUMES[name]}
        assert published == held  # 0 leaked: nothing published that nobody holds
        for name in known:
            isolator.cleanup(container_id(name)).get(WAIT)
        assert csi.plugin_mounts() == []
        assert csi.state_files() == []  # 0 stranded state
        assert csi.container_dirs() == []
        if csi.plugin.state.exists():  # absent: the plugin never staged anything
            assert json.loads(csi.plugin.state.read_text()) == {
                "volumes": {}
            }  # the plugin holds nothing staged or published
    finally:
        isolator.stop()


def _published(isolator: CsiVolumeIsolator) -> list[tuple[str, str]]:
    states = isolator.volume_states().get(WAIT)
    assert set(states.values()) <= {"PUBLISHED"}, states
    return [tuple(key.rsplit("/", 1)) for key in states]  # type: ignore[misc]


@pytest.mark.parametrize("point", [p for p in failpoints.CSI_POINTS if p != "csi-during-recovery"])
def test_a_crash_at_every_step_is_recovered(csi: CsiSetup, point: str) -> None:
    agent = _agent(csi, {failpoints.ENV: f"{point}=kill"})
    out, _ = agent.communicate(timeout=60)
    lines = out.splitlines()
    assert agent.returncode == -signal.SIGKILL, (point, lines)  # it did reach the point
    _recover_and_check(csi, _known(lines))


def test_a_crash_during_recovery_is_recovered(csi: CsiSetup) -> None:
    agent = _agent(csi, {failpoints.ENV: "csi-after-publish=kill@2"})
    agent.communicate(timeout=60)
    assert agent.returncode == -signal.SIGKILL
    # The next agent dies while recovering what the first left.
    again = _agent(csi, {failpoints.ENV: "csi-during-recovery=kill"})
    out, _ = again.communicate(timeout=60)
    assert again.returncode == -signal.SIGKILL
    assert "recovered" not in out
    _recover_and_check(csi, [])


def test_random_kills_are_recovered(csi: CsiSetup) -> None:
    chance = random.Random(SEED)
    for _ in range(RANDOM_KILLS):
        agent = _agent(csi, {})
        try:
            out, _ = agent.communicate(timeout=chance.uniform(0.3, 1.5))
        except subprocess.TimeoutExpired:
            agent.kill()
            out, _ = agent.communicate(timeout=60)
        _recover_and_check(csi, _known(out.splitlines()))


def test_all_points_are_known() -> None:
    assert Path(AGENT).exists()
    assert "csi-after-state-write" in failpoints.CSI_POINTS
