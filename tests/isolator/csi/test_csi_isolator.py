"""The CSI isolator against the reference CSI plugin, with real mounts in the plugin's
mount namespace: read-write and read-only volumes, sharing, and the end of each volume."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import isolator as isolator_package
from isolator import CsiVolumeIsolator, Flags, IsolatorError
from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.messages import container_config, container_id, csi_volume
from tests.support.csi_isolators import PLUGIN_TYPE, CsiCalls, CsiSetup, csi_setup, write_config
from tests.support.csi_plugin import running_csi_plugin, short_tmp
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]


@pytest.fixture
def csi() -> Iterator[CsiSetup]:
    with csi_setup() as setup:
        yield setup


def test_a_read_write_volume_is_staged_published_and_bound_into_the_task(csi: CsiSetup) -> None:
    csi.volume("vol", "hello")
    isolator = csi.isolator()
    config = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "vol", "data")])
    info = isolator.prepare(container_id("c1"), config).get(WAIT)
    assert info is not None
    assert list(info.clone_namespaces) == [CLONE_NEWNS]
    (mount,) = info.mounts
    target = csi.csi_root / "plugins" / PLUGIN_TYPE / "default" / "mounts" / "vol" / "target"
    staging = target.parent / "staging"
    assert (mount.source, mount.target) == (str(target), str(csi.sandbox / "data"))
    assert mount.flags == MS_BIND | MS_REC
    assert csi.plugin_mounts() == [str(staging), str(target)]
    assert isolator.volume_states().get(WAIT) == {f"{PLUGIN_TYPE}/vol": "PUBLISHED"}
    done = csi.in_container(info, "cat data/data && echo written > data/new")
    assert (done.returncode, done.stdout) == (0, "hello"), done.stderr
    assert (csi.plugin.root / "vol" / "new").read_text() == "written\n"
    assert csi.calls.count("NodeGetCapabilities") == 1
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []
    assert csi.container_dirs() == []
    assert (csi.calls.count("NodeUnpublishVolume"), csi.calls.count("NodeUnstageVolume")) == (1, 1)


def test_a_read_only_volume_cannot_be_written(csi: CsiSetup) -> None:
    csi.volume("ro", "data")
    isolator = csi.isolator()
    volume = csi_volume(PLUGIN_TYPE, "ro", "data", mode="RO", access_mode="SINGLE_NODE_READER_ONLY")
    info = isolator.prepare(container_id("c1"), container_config(str(csi.sandbox), [volume])).get(
        WAIT
    )
    assert info is not None
    assert info.mounts[0].flags == MS_BIND | MS_REC | MS_RDONLY
    done = csi.in_container(info, "cat data/data; echo x > data/nope")
    assert done.stdout == "data"
    assert "Read-only file system" in done.stderr
    assert not (csi.plugin.root / "ro" / "nope").exists()
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []


def test_two_containers_share_one_publish(csi: CsiSetup) -> None:
    csi.volume("shared")
    isolator = csi.isolator()
    for name in ("c1", "c2"):
        config = container_config(str(csi.sandbox / name), [csi_volume(PLUGIN_TYPE, "shared", "d")])
        (csi.sandbox / name).mkdir()
        assert isolator.prepare(container_id(name), config).get(WAIT) is not None
    assert csi.calls.count("NodeStageVolume") == 1
    assert csi.calls.count("NodePublishVolume") == 1
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.calls.count("NodeUnpublishVolume") == 0  # c2 still uses it
    assert len(csi.plugin_mounts()) == 2
    assert isolator.usage().get(WAIT).holders  # c2
    isolator.cleanup(container_id("c2")).get(WAIT)
    assert csi.calls.count("NodeUnpublishVolume") == 1
    assert csi.calls.count("NodeUnstageVolume") == 1
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []
    assert isolator.sequence_count().get(WAIT) == 0


def test_different_volumes_of_one_container(csi: CsiSetup) -> None:
    csi.volume("a", "A")
    csi.volume("b", "B")
    isolator = csi.isolator()
    volumes = [csi_volume(PLUGIN_TYPE, "a", "a"), csi_volume(PLUGIN_TYPE, "b", "b", mode="RO")]
    info = isolator.prepare(container_id("c1"), container_config(str(csi.sandbox), volumes)).get(
        WAIT
    )
    assert info is not None
    done = csi.in_container(info, "cat a/data b/data")
    assert done.stdout == "AB"
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []


def test_a_stopped_isolator_fails_its_futures(csi: CsiSetup) -> None:
    isolator = csi.isolator()
    isolator.stop()
    with pytest.raises(IsolatorError, match="stopped"):
        isolator.cleanup(container_id("c1")).get(WAIT)


def test_create_is_exported_lazily() -> None:
    assert "CsiVolumeIsolator" in isolator_package.__all__
    assert isolator_package.CsiVolumeIsolator is CsiVolumeIsolator
    assert "CsiVolumeIsolatorActor" in isolator_package.__all__


def test_an_unavailable_plugin_is_retried_until_it_serves() -> None:
    with short_tmp("csi-retry-") as workdir:
        (workdir / "volumes" / "vol").mkdir(parents=True)
        config_dir = workdir / "plugins.d"
        config_dir.mkdir()
        write_config(
            config_dir,
            "dir.json",
            {
                "type": PLUGIN_TYPE,
                "endpoints": [
                    {"csi_service": "NODE_SERVICE", "endpoint": f"unix://{workdir}/csi.sock"}
                ],
            },
        )
        (workdir / "sandbox").mkdir()
        calls = CsiCalls()
        flags = Flags(
            csi_plugin_config_dir=str(config_dir),
            csi_root_dir=str(workdir / "csi"),
            csi_retry_budget=WAIT,
        )
        isolator = CsiVolumeIsolator.create(flags, observer=calls)
        try:
            isolator.recover([], []).get(WAIT)
            config = container_config(
                str(workdir / "sandbox"), [csi_volume(PLUGIN_TYPE, "vol", "d")]
            )
            prepared = isolator.prepare(container_id("c1"), config)  # the plugin is not up yet
            with running_csi_plugin(workdir) as plugin:
                assert prepared.get(WAIT) is not None
                assert calls.count("NodeGetCapabilities", "UNAVAILABLE") >= 1
                assert calls.count("NodeGetCapabilities") == 1
                assert len(plugin.mounts_under(workdir / "csi")) == 2
                isolator.cleanup(container_id("c1")).get(WAIT)
                assert plugin.mounts_under(workdir / "csi") == []
        finally:
            isolator.stop()
