"""Every bad input fails ``prepare`` with an error naming it; nothing is left published
or checkpointed, and ``cleanup`` of that container succeeds."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from isolator import IsolatorError
from isolator.messages import container_config, container_id, csi_volume
from isolator.protos import ContainerInfo, Secret, Volume
from tests.support.csi_isolators import PLUGIN_TYPE, CsiSetup, csi_setup, write_config
from tests.support.csi_plugin import PluginProcess, running_csi_plugin, short_tmp
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]


@pytest.fixture(scope="module")
def plugin() -> Iterator[PluginProcess]:
    """One plugin for the module: each test has its own CSI root and refuses before any
    mount, so none sees another's work."""
    with short_tmp("csi-bad-") as workdir, running_csi_plugin(workdir) as running:
        yield running


@pytest.fixture
def csi(plugin: PluginProcess) -> Iterator[CsiSetup]:
    with csi_setup(plugin) as setup:
        yield setup


def _refused(csi: CsiSetup, volumes: list[Volume], match: str, **kwargs: object) -> None:
    isolator = csi.isolator(**kwargs)  # type: ignore[arg-type]
    config = container_config(str(csi.sandbox), volumes)
    with pytest.raises(IsolatorError, match=match):
        isolator.prepare(container_id("bad"), config).get(WAIT)
    isolator.cleanup(container_id("bad")).get(WAIT)
    assert csi.plugin_mounts() == []
    assert csi.state_files() == []
    assert csi.container_dirs() == []
    assert csi.calls.count("NodeUnstageVolume") == 0


def test_unknown_plugin(csi: CsiSetup) -> None:
    _refused(
        csi,
        [csi_volume("org.nowhere", "v", "d")],
        r"Unknown CSI plugin 'org\.nowhere': no CSIPluginInfo in '.*' has this type",
    )


def test_no_plugin_config_dir(csi: CsiSetup) -> None:
    flags = csi.flags(csi_plugin_config_dir=None)
    _refused(
        csi, [csi_volume(PLUGIN_TYPE, "v", "d")], "no csi_plugin_config_dir is set", flags=flags
    )


def test_missing_plugin_config_dir(csi: CsiSetup) -> None:
    flags = csi.flags(csi_plugin_config_dir=str(csi.workdir / "absent"))
    _refused(
        csi,
        [csi_volume(PLUGIN_TYPE, "v", "d")],
        "Failed to list CSI plugin config directory '.*absent'",
        flags=flags,
    )


def test_malformed_plugin_config(csi: CsiSetup) -> None:
    write_config(csi.config_dir, "broken.json", '{"type": "org.broken", "endpoints": 7')
    _refused(
        csi, [csi_volume("org.broken", "v", "d")], r"'.*broken\.json' is not a valid CSIPluginInfo"
    )


def test_plugin_config_without_a_node_endpoint(csi: CsiSetup) -> None:
    write_config(
        csi.config_dir,
        "ctl.json",
        {
            "type": "org.ctl",
            "endpoints": [{"csi_service": "CONTROLLER_SERVICE", "endpoint": "unix:///run/x.sock"}],
        },
    )
    _refused(
        csi,
        [csi_volume("org.ctl", "v", "d")],
        "CSI plugin 'org.ctl' cannot be used: .* has no endpoint with csi_service NODE_SERVICE",
    )


def test_plugin_type_that_would_leave_the_root(csi: CsiSetup) -> None:
    write_config(
        csi.config_dir,
        "evil.json",
        {
            "type": "../evil",
            "endpoints": [{"csi_service": "NODE_SERVICE", "endpoint": csi.plugin.endpoint}],
        },
    )
    _refused(
        csi,
        [csi_volume("../evil", "v", "d")],
        r"CSI plugin '\.\./evil' cannot be used: Invalid CSI plugin type '\.\./evil': "
        "must not contain '/'",
    )
    assert not (csi.workdir / "evil").exists()


def test_unreachable_socket(csi: CsiSetup) -> None:
    write_config(
        csi.config_dir,
        "gone.json",
        {
            "type": "org.gone",
            "endpoints": [
                {"csi_service": "NODE_SERVICE", "endpoint": f"unix://{csi.workdir}/gone.sock"}
            ],
        },
    )
    _refused(
        csi,
        [csi_volume("org.gone", "v", "d")],
        r"'NodeGetCapabilities' of CSI plugin 'org\.gone' failed: UNAVAILABLE: .*"
        r"\(gave up after \d+ attempt\(s\)\)",
        flags=csi.flags(csi_retry_budget=0.3),
    )


@pytest.mark.parametrize("volume_id", ["..", "."])
def test_volume_id_naming_a_directory_outside(csi: CsiSetup, volume_id: str) -> None:
    _refused(
        csi,
        [csi_volume(PLUGIN_TYPE, volume_id, "d")],
        f"Invalid CSI volume ID '{volume_id}': it would name a directory outside",
    )


def test_a_volume_id_with_slashes_stays_inside_the_root(csi: CsiSetup) -> None:
    # Percent-encoded as Mesos does, it is one directory name; the plugin refuses the ID.
    _refused(
        csi,
        [csi_volume(PLUGIN_TYPE, "../../escape", "d")],
        r"'NodeStageVolume' of CSI plugin 'org\.example\.dir' for volume '\.\./\.\./escape' "
        "failed: INVALID_ARGUMENT",
    )
    assert not (csi.workdir / "escape").exists()
    assert not (csi.csi_root.parent / "escape").exists()


def test_unknown_volume_is_the_plugins_not_found(csi: CsiSetup) -> None:
    _refused(
        csi,
        [csi_volume(PLUGIN_TYPE, "ghost", "d")],
        r"'NodeStageVolume' of CSI plugin 'org\.example\.dir' for volume 'ghost' failed: "
        "NOT_FOUND: Volume 'ghost' does not exist",
    )


def test_read_only_access_mode_in_read_write_mode(csi: CsiSetup) -> None:
    csi.volume("v")
    _refused(
        csi,
        [csi_volume(PLUGIN_TYPE, "v", "d", access_mode="MULTI_NODE_READER_ONLY")],
        "Cannot use the read-only volume 'v' in read-write mode",
    )


def test_block_volume(csi: CsiSetup) -> None:
    volume = csi_volume(PLUGIN_TYPE, "v", "d")
    volume.source.csi_volume.static_provisioning.volume_capability.block.SetInParent()
    _refused(csi, [volume], "CSI volume 'v' of plugin 'org.example.dir' is a block volume")


def test_missing_access_mode(csi: CsiSetup) -> None:
    volume = csi_volume(PLUGIN_TYPE, "v", "d", access_mode="UNKNOWN")
    _refused(csi, [volume], r"CSI volume 'v' has no access mode")


def test_duplicate_volume(csi: CsiSetup) -> None:
    csi.volume("v")
    volumes = [csi_volume(PLUGIN_TYPE, "v", "a"), csi_volume(PLUGIN_TYPE, "v", "b")]
    _refused(
        csi, volumes, "Found duplicate CSI volume with plugin 'org.example.dir' and volume ID 'v'"
    )


def test_docker_container(csi: CsiSetup) -> None:
    isolator = csi.isolator()
    config = container_config(
        str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "v", "d")], container_type=ContainerInfo.DOCKER
    )
    with pytest.raises(IsolatorError, match="Can only prepare CSI volumes for a MESOS container"):
        isolator.prepare(container_id("c"), config).get(WAIT)


def test_no_static_provisioning(csi: CsiSetup) -> None:
    volume = Volume(container_path="d", mode=Volume.RW)
    volume.source.type = Volume.Source.CSI_VOLUME
    volume.source.csi_volume.plugin_name = PLUGIN_TYPE
    _refused(csi, [volume], "CSI volume at container path 'd' .* has no 'static_provisioning'")


def test_another_capability_of_a_volume_in_use(csi: CsiSetup) -> None:
    csi.volume("v")
    isolator = csi.isolator()
    first = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "v", "d")])
    assert isolator.prepare(container_id("c1"), first).get(WAIT) is not None
    reader = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "v", "r", mode="RO")])
    assert isolator.prepare(container_id("r"), reader).get(WAIT) is not None  # shares it
    isolator.cleanup(container_id("r")).get(WAIT)
    volume = csi_volume(PLUGIN_TYPE, "v", "e", access_mode="MULTI_NODE_MULTI_WRITER")
    other = container_config(str(csi.sandbox), [volume])
    with pytest.raises(IsolatorError, match="already in use with another volume_capability"):
        isolator.prepare(container_id("c2"), other).get(WAIT)
    isolator.cleanup(container_id("c2")).get(WAIT)
    assert len(csi.plugin_mounts()) == 2  # c1 keeps it
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []


def _with_secret(volume: Volume, kind: Secret.Type.ValueType) -> Volume:
    secret = volume.source.csi_volume.static_provisioning.node_stage_secrets["password"]
    secret.type = kind
    if kind == Secret.VALUE:
        secret.value.data = b"hunter2-secret"
    else:
        secret.reference.name = "vault/password"
    return volume


def test_value_secrets_reach_the_plugin_but_never_disk_nor_logs(
    csi: CsiSetup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csi.volume("v")
    isolator = csi.isolator()
    config = container_config(
        str(csi.sandbox), [_with_secret(csi_volume(PLUGIN_TYPE, "v", "d"), Secret.VALUE)]
    )
    assert isolator.prepare(container_id("c1"), config).get(WAIT) is not None
    written = b"".join(p.read_bytes() for p in csi.csi_root.rglob("*") if p.is_file())
    assert b"password" in written  # the key is kept, with its type...
    assert b"hunter2" not in written  # ... never the value
    assert "hunter2" not in caplog.text
    isolator.cleanup(container_id("c1")).get(WAIT)


def test_reference_secrets_need_a_resolver(csi: CsiSetup) -> None:
    csi.volume("v")
    volume = _with_secret(csi_volume(PLUGIN_TYPE, "v", "d"), Secret.REFERENCE)
    _refused(csi, [volume], "included secrets but the isolator was not given a secret resolver")
    resolved: list[str] = []

    def resolver(secret: Secret) -> bytes:
        resolved.append(secret.reference.name)
        return b"from-the-store"

    isolator = csi.isolator(secret_resolver=resolver)
    config = container_config(str(csi.sandbox), [volume])
    assert isolator.prepare(container_id("c1"), config).get(WAIT) is not None
    assert resolved == ["vault/password"]
    isolator.cleanup(container_id("c1")).get(WAIT)
    assert csi.plugin_mounts() == []
