"""Recovery of the CSI isolator: known containers keep their volumes, unknown orphans'
volumes are released, and a reboot (a changed boot ID) means nothing staged is trusted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from isolator.ctl import main as ctl_main
from isolator.messages import container_config, container_id, csi_volume
from isolator.protos import ContainerState
from tests.support.csi_isolators import PLUGIN_TYPE, CsiSetup, csi_setup
from tests.support.csi_plugin import running_csi_plugin
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]


@pytest.fixture
def csi() -> Iterator[CsiSetup]:
    with csi_setup() as setup:
        yield setup


def _state(csi: CsiSetup, name: str) -> ContainerState:
    return ContainerState(container_id=container_id(name), pid=1, directory=str(csi.sandbox))


def _prepare(csi: CsiSetup, names: list[str], volume: str = "vol", **kwargs: object) -> None:
    isolator = csi.isolator(**kwargs)  # type: ignore[arg-type]
    for name in names:
        config = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, volume, name)])
        assert isolator.prepare(container_id(name), config).get(WAIT) is not None
    isolator.stop()  # as a crash: checkpoints and states stay


def test_a_known_container_keeps_its_published_volume(csi: CsiSetup) -> None:
    csi.volume("vol")
    _prepare(csi, ["c1"])
    before = csi.plugin_mounts()
    isolator = csi.isolator(recover=False)
    isolator.recover([_state(csi, "c1")], []).get(WAIT)
    isolator.background().get(WAIT)
    assert csi.plugin_mounts() == before
    assert isolator.volume_states().get(WAIT) == {f"{PLUGIN_TYPE}/vol": "PUBLISHED"}
    assert csi.calls.count("NodePublishVolume") == 1  # nothing redone
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []


def test_unknown_orphans_release_their_volumes(csi: CsiSetup) -> None:
    csi.volume("vol")
    _prepare(csi, ["c1", "c2"])
    isolator = csi.isolator(recover=False)
    isolator.recover([], []).get(WAIT)
    cleanups = isolator.background().get(WAIT)
    assert [f.is_ready() for f in cleanups] == [True, True]
    assert (csi.calls.count("NodeUnpublishVolume"), csi.calls.count("NodeUnstageVolume")) == (1, 1)
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []
    assert csi.container_dirs() == []


def test_a_known_orphan_keeps_the_volume_until_its_cleanup(csi: CsiSetup) -> None:
    csi.volume("vol")
    _prepare(csi, ["c1", "c2"])
    isolator = csi.isolator(recover=False)
    isolator.recover([_state(csi, "c1")], [container_id("c2")]).get(WAIT)
    isolator.background().get(WAIT)
    assert len(csi.plugin_mounts()) == 2
    isolator.cleanup(container_id("c2")).get(WAIT)
    assert len(csi.plugin_mounts()) == 2  # c1 still uses it
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []


def test_after_a_reboot_an_orphan_needs_no_call(csi: CsiSetup) -> None:
    csi.volume("vol")
    _prepare(csi, ["c1"], node_boot_id="boot-1")
    isolator = csi.isolator(recover=False, node_boot_id="boot-2")
    calls = sum(csi.calls.calls.values())
    isolator.recover([], []).get(WAIT)
    isolator.background().get(WAIT)
    assert sum(csi.calls.calls.values()) == calls  # staged and published are gone with the boot
    assert csi.state_files() == []
    assert csi.container_dirs() == []


def test_after_a_reboot_a_known_container_gets_its_volume_again(csi: CsiSetup) -> None:
    csi.volume("vol", "kept")
    _prepare(csi, ["c1"], node_boot_id="boot-1")
    csi.plugin.process.terminate()  # the reboot: the plugin's namespace and mounts go
    csi.plugin.process.wait(WAIT)
    with running_csi_plugin(csi.workdir) as plugin:
        csi.plugin = plugin
        assert csi.plugin_mounts() == []
        isolator = csi.isolator(recover=False, node_boot_id="boot-2")
        isolator.recover([_state(csi, "c1")], []).get(WAIT)
        assert all(f.is_ready() for f in isolator.background().get(WAIT))
        assert csi.calls.count("NodeStageVolume") == 2  # once per boot
        assert csi.calls.count("NodePublishVolume") == 2
        assert len(csi.plugin_mounts()) == 2
        isolator.cleanup(container_id("c1")).get(WAIT)
        assert csi.plugin_mounts() == []
        assert csi.state_files() == []


def test_isolator_ctl_shows_csi_volumes_and_their_states(
    csi: CsiSetup, capsys: pytest.CaptureFixture[str]
) -> None:
    csi.volume("vol")
    _prepare(csi, ["c1", "c2"])
    assert ctl_main(["csi", "--csi-root", str(csi.csi_root)], environ={}) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["PLUGIN", "NAME", "VOLUME", "STATE", "CONTAINERS"]
    assert out.splitlines()[1].split() == [PLUGIN_TYPE, "default", "vol", "PUBLISHED", "c1,", "c2"]
    assert ctl_main(["csi", "--json", "--csi-root", str(csi.csi_root)], environ={}) == 0
    (volume,) = json.loads(capsys.readouterr().out)["volumes"]
    assert (volume["state"], volume["containers"]) == ("PUBLISHED", ["c1", "c2"])
    isolator = csi.isolator()  # recovers both as unknown orphans: released
    isolator.background().get(WAIT)
    assert ctl_main(["csi", "--csi-root", str(csi.csi_root)], environ={}) == 0
    assert "0 CSI volume(s)" in capsys.readouterr().out
