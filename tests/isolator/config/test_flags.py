"""``Flags``: Mesos's defaults, and a clear error for every bad value."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from isolator.config.flags import Flags
from isolator.drivers import DockerPluginClient, create_client
from isolator.drivers.mount_id import default_mount_id


def test_defaults() -> None:
    flags = Flags()
    assert flags.docker_volume_checkpoint_dir == "/var/run/mesos/isolators/docker/volume"
    assert flags.docker_volume_chown is False
    assert flags.sandbox_directory == "/mnt/mesos/sandbox"
    assert flags.docker_volume_launch_style == "mounts"
    assert flags.docker_volume_mount_timeout == 120.0
    assert flags.docker_volume_unmount_timeout == 600.0
    assert flags.dvdcli_path == "dvdcli"
    assert flags.docker_volume_driver_client == "plugin"
    assert flags.docker_plugin_socket_dir == "/run/docker/plugins"
    assert flags.docker_plugin_spec_dirs == ("/etc/docker/plugins", "/usr/lib/docker/plugins")
    assert flags.docker_volume_explicit_create is False
    assert flags.docker_plugin_retry_budget == 10.0
    assert flags.docker_plugin_mount_id is None


def test_accepts_valid_values() -> None:
    flags = Flags(
        docker_volume_checkpoint_dir="relative/checkpoints",
        docker_volume_chown=True,
        sandbox_directory="/sandbox",
        docker_volume_launch_style="pre_exec_commands",
        docker_volume_mount_timeout=0.5,
        docker_volume_unmount_timeout=1,
        dvdcli_path="/usr/bin/dvdcli",
        docker_volume_driver_client="dvdcli",
        docker_plugin_socket_dir="/tmp/plugins",
        docker_plugin_spec_dirs=(),
        docker_volume_explicit_create=True,
        docker_plugin_retry_budget=0,
        docker_plugin_mount_id="",
    )
    assert flags.docker_volume_unmount_timeout == 1.0
    assert flags.docker_plugin_retry_budget == 0.0
    assert isinstance(flags.docker_plugin_retry_budget, float)
    assert isinstance(flags.docker_volume_unmount_timeout, float)
    assert flags.docker_plugin_spec_dirs == ()


def test_spec_dirs_list_is_stored_as_a_tuple() -> None:
    dirs: Any = ["/a", "/b"]
    flags = Flags(docker_plugin_spec_dirs=dirs)
    assert flags.docker_plugin_spec_dirs == ("/a", "/b")
    assert isinstance(flags.docker_plugin_spec_dirs, tuple)
    hash(flags)  # frozen with only hashable values


def test_is_frozen() -> None:
    flags = Flags()
    with pytest.raises(dataclasses.FrozenInstanceError):
        flags.docker_volume_chown = True  # type: ignore[misc]


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Flags("/tmp")  # type: ignore[call-arg]


def test_replace_validates_again() -> None:
    with pytest.raises(ValueError, match="docker_volume_mount_timeout"):
        dataclasses.replace(Flags(), docker_volume_mount_timeout=0)


REJECTIONS: list[tuple[str, Any, str]] = [
    (
        "docker_volume_checkpoint_dir",
        "",
        "Invalid flag 'docker_volume_checkpoint_dir': '' is empty; expected a non-empty string",
    ),
    (
        "docker_volume_checkpoint_dir",
        None,
        "Invalid flag 'docker_volume_checkpoint_dir': None is not a string; "
        "expected a non-empty string",
    ),
    (
        "docker_volume_chown",
        1,
        "Invalid flag 'docker_volume_chown': 1 is not a bool; expected True or False",
    ),
    (
        "docker_volume_chown",
        "true",
        "Invalid flag 'docker_volume_chown': 'true' is not a bool; expected True or False",
    ),
    (
        "sandbox_directory",
        "mnt/mesos/sandbox",
        "Invalid flag 'sandbox_directory': 'mnt/mesos/sandbox' is not an absolute path; "
        "expected a path starting with '/'",
    ),
    (
        "sandbox_directory",
        "",
        "Invalid flag 'sandbox_directory': '' is not an absolute path; "
        "expected a path starting with '/'",
    ),
    (
        "sandbox_directory",
        b"/x",
        "Invalid flag 'sandbox_directory': b'/x' is not a string; expected an absolute path",
    ),
    (
        "docker_volume_launch_style",
        "mount",
        "Invalid flag 'docker_volume_launch_style': 'mount' is not supported; "
        "expected one of 'mounts', 'pre_exec_commands'",
    ),
    (
        "docker_volume_launch_style",
        ["mounts"],
        "Invalid flag 'docker_volume_launch_style': ['mounts'] is not supported; "
        "expected one of 'mounts', 'pre_exec_commands'",
    ),
    (
        "docker_volume_mount_timeout",
        0,
        "Invalid flag 'docker_volume_mount_timeout': 0 is not greater than 0; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_mount_timeout",
        -1.5,
        "Invalid flag 'docker_volume_mount_timeout': -1.5 is not greater than 0; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_mount_timeout",
        float("inf"),
        "Invalid flag 'docker_volume_mount_timeout': inf is not finite; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_mount_timeout",
        float("nan"),
        "Invalid flag 'docker_volume_mount_timeout': nan is not finite; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_mount_timeout",
        "120",
        "Invalid flag 'docker_volume_mount_timeout': '120' is not a number; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_mount_timeout",
        True,
        "Invalid flag 'docker_volume_mount_timeout': True is not a number; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_unmount_timeout",
        -600,
        "Invalid flag 'docker_volume_unmount_timeout': -600 is not greater than 0; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "docker_volume_unmount_timeout",
        10**400,
        "is not finite; expected a finite number of seconds, greater than 0",
    ),
    (
        "dvdcli_path",
        "",
        "Invalid flag 'dvdcli_path': '' is empty; expected a non-empty string",
    ),
    (
        "docker_volume_driver_client",
        "docker",
        "Invalid flag 'docker_volume_driver_client': 'docker' is not supported; "
        "expected one of 'plugin', 'dvdcli'",
    ),
    (
        "docker_plugin_socket_dir",
        "run/docker/plugins",
        "Invalid flag 'docker_plugin_socket_dir': 'run/docker/plugins' is not an absolute path; "
        "expected a path starting with '/'",
    ),
    (
        "docker_plugin_spec_dirs",
        "/etc/docker/plugins",
        "Invalid flag 'docker_plugin_spec_dirs': '/etc/docker/plugins' is not a list or tuple; "
        "expected a sequence of absolute paths",
    ),
    (
        "docker_plugin_spec_dirs",
        ("/etc/docker/plugins", "plugins"),
        "Invalid flag 'docker_plugin_spec_dirs': ('/etc/docker/plugins', 'plugins') contains "
        "'plugins', which is not an absolute path; expected a sequence of absolute paths",
    ),
    (
        "docker_plugin_spec_dirs",
        [None],
        "Invalid flag 'docker_plugin_spec_dirs': [None] contains None, which is not an "
        "absolute path; expected a sequence of absolute paths",
    ),
    (
        "docker_volume_explicit_create",
        "yes",
        "Invalid flag 'docker_volume_explicit_create': 'yes' is not a bool; expected True or False",
    ),
    (
        "docker_plugin_retry_budget",
        -1,
        "Invalid flag 'docker_plugin_retry_budget': -1 is negative; "
        "expected a finite number of seconds, 0 or more",
    ),
    (
        "docker_plugin_retry_budget",
        float("inf"),
        "Invalid flag 'docker_plugin_retry_budget': inf is not finite; "
        "expected a finite number of seconds, 0 or more",
    ),
    (
        "docker_plugin_mount_id",
        42,
        "Invalid flag 'docker_plugin_mount_id': 42 is not a string; expected a string or None",
    ),
    (
        "csi_plugin_config_dir",
        "etc/csi",
        "Invalid flag 'csi_plugin_config_dir': 'etc/csi' is not an absolute path; "
        "expected a path starting with '/'",
    ),
    (
        "csi_root_dir",
        "",
        "Invalid flag 'csi_root_dir': '' is not an absolute path; "
        "expected a path starting with '/'",
    ),
    (
        "csi_rpc_timeout",
        0,
        "Invalid flag 'csi_rpc_timeout': 0 is not greater than 0; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        "csi_retry_budget",
        -1,
        "Invalid flag 'csi_retry_budget': -1 is negative; "
        "expected a finite number of seconds, 0 or more",
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    REJECTIONS,
    ids=[f"{name}={value!r:.30}" for name, value, _ in REJECTIONS],
)
def test_rejects_bad_values(name: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        Flags(**{name: value})
    if message.startswith("Invalid flag"):
        assert str(info.value) == message
    else:
        assert str(info.value).startswith(f"Invalid flag '{name}': ")
        assert str(info.value).endswith(message)


def test_every_field_has_a_rejection_test() -> None:
    fields = {field.name for field in dataclasses.fields(Flags)}
    assert fields == {name for name, _, _ in REJECTIONS}


@pytest.mark.skipif(os.geteuid() != 0, reason="create_client checks for root, as Mesos")
def test_the_plugin_client_gets_the_retry_budget_and_mount_id() -> None:
    flags = Flags(docker_plugin_retry_budget=3, docker_plugin_mount_id="agent-7")
    client = create_client(flags)
    try:
        assert isinstance(client, DockerPluginClient)
        assert client.api.backoff.budget == 3.0
        assert client.mount_id == "agent-7"
    finally:
        client.close()
    default = create_client(Flags(docker_plugin_socket_dir="/srv/plugins"))
    try:
        assert isinstance(default, DockerPluginClient)
        assert default.api.backoff.budget == Flags().docker_plugin_retry_budget
        assert default.mount_id == default_mount_id(
            socket_dir="/srv/plugins", spec_dirs=Flags().docker_plugin_spec_dirs
        )
    finally:
        default.close()
