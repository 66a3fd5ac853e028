"""``Flags.from_args`` and ``Flags.from_env``: the agent's command line and environment,
read by stout's rules, with stout's messages and the constructor's for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from isolator.config.flags import Flags
from isolator.config.parsing import FlagError

ACCEPTED: list[tuple[list[str], dict[str, Any]]] = [
    (["--docker_volume_checkpoint_dir=/ckpt"], {"docker_volume_checkpoint_dir": "/ckpt"}),
    (["--docker_volume_chown"], {"docker_volume_chown": True}),
    (["--docker_volume_chown="], {"docker_volume_chown": True}),
    (["--docker_volume_chown=true"], {"docker_volume_chown": True}),
    (["--docker_volume_chown=1"], {"docker_volume_chown": True}),
    (["--docker_volume_chown=false"], {"docker_volume_chown": False}),
    (["--docker_volume_chown=0"], {"docker_volume_chown": False}),
    (["--no-docker_volume_chown"], {"docker_volume_chown": False}),
    (["--no-docker_volume_chown="], {"docker_volume_chown": False}),
    (["--docker_volume_mount_timeout=2mins"], {"docker_volume_mount_timeout": 120.0}),
    (["--docker_volume_mount_timeout=500ms"], {"docker_volume_mount_timeout": 0.5}),
    (["--docker_volume_unmount_timeout=1.5hrs"], {"docker_volume_unmount_timeout": 5400.0}),
    (["--docker_plugin_retry_budget=0secs"], {"docker_plugin_retry_budget": 0.0}),
    (["--docker_plugin_spec_dirs=/a,/b"], {"docker_plugin_spec_dirs": ("/a", "/b")}),
    (["--docker_plugin_spec_dirs="], {"docker_plugin_spec_dirs": ()}),
    (["--docker_plugin_mount_id="], {"docker_plugin_mount_id": ""}),
    (["--docker_plugin_mount_id=a=b"], {"docker_plugin_mount_id": "a=b"}),
    (
        ["--docker_volume_launch_style=pre_exec_commands"],
        {"docker_volume_launch_style": "pre_exec_commands"},
    ),
    (["--docker_volume_driver_client=dvdcli"], {"docker_volume_driver_client": "dvdcli"}),
    (["--DOCKER_VOLUME_CHOWN"], {"docker_volume_chown": True}),
    (["  --sandbox_directory=/sb "], {"sandbox_directory": "/sb"}),
    ([], {}),
]


@pytest.mark.parametrize(("argv", "expected"), ACCEPTED, ids=[" ".join(a) for a, _ in ACCEPTED])
def test_from_args_reads_mesos_flags(argv: list[str], expected: dict[str, Any]) -> None:
    assert Flags.from_args(argv) == Flags(**expected)


REFUSED: list[tuple[list[str], str]] = [
    (["--bogus=1"], "Failed to load unknown flag 'bogus'"),
    (["--no-bogus"], "Failed to load unknown flag 'bogus' via 'no-bogus'"),
    (
        ["--docker_volume_chown", "--docker_volume_chown=false"],
        "Duplicate flag 'docker_volume_chown' on command line",
    ),
    (
        ["--docker_volume_chown", "--no-docker_volume_chown"],
        "Duplicate flag 'no-docker_volume_chown' on command line",
    ),
    (
        ["--no-docker_volume_checkpoint_dir"],
        "Failed to load non-boolean flag 'docker_volume_checkpoint_dir' via "
        "'no-docker_volume_checkpoint_dir'",
    ),
    (
        ["--docker_volume_checkpoint_dir"],
        "Failed to load non-boolean flag 'docker_volume_checkpoint_dir': Missing value",
    ),
    (
        ["--no-docker_volume_chown=true"],
        "Failed to load boolean flag 'docker_volume_chown' via 'no-docker_volume_chown' "
        "with value 'true'",
    ),
    (
        ["--docker_volume_chown=yes"],
        "Invalid flag 'docker_volume_chown': 'yes' is not a boolean; expected true, false, 1 or 0",
    ),
    (
        ["--docker_volume_mount_timeout=120"],
        "Invalid flag 'docker_volume_mount_timeout': '120' is not a duration "
        "(Invalid duration '120'); expected a number and a unit, e.g. '2mins'",
    ),
    (
        ["--docker_volume_mount_timeout=2m"],
        "Invalid flag 'docker_volume_mount_timeout': '2m' is not a duration (Unknown duration "
        "unit 'm'; supported units are 'ns', 'us', 'ms', 'secs', 'mins', 'hrs', 'days', and "
        "'weeks'); expected a number and a unit, e.g. '2mins'",
    ),
    (
        ["--docker_plugin_retry_budget=-1secs"],
        "Invalid flag 'docker_plugin_retry_budget': '-1secs' is not a duration (Failed to "
        "convert '' to number); expected a number and a unit, e.g. '2mins'",
    ),
    (
        ["--docker_volume_mount_timeout=0secs"],
        "Invalid flag 'docker_volume_mount_timeout': 0.0 is not greater than 0; "
        "expected a finite number of seconds, greater than 0",
    ),
    (
        ["--docker_volume_driver_client=docker"],
        "Invalid flag 'docker_volume_driver_client': 'docker' is not supported; "
        "expected one of 'plugin', 'dvdcli'",
    ),
    (
        ["--docker_plugin_socket_dir=run/docker/plugins"],
        "Invalid flag 'docker_plugin_socket_dir': 'run/docker/plugins' is not an absolute "
        "path; expected a path starting with '/'",
    ),
    (
        ["--docker_plugin_spec_dirs=/etc/docker/plugins,plugins"],
        "Invalid flag 'docker_plugin_spec_dirs': ('/etc/docker/plugins', 'plugins') contains "
        "'plugins', which is not an absolute path; expected a sequence of absolute paths",
    ),
    (
        ["--docker_volume_checkpoint_dir", "/ckpt"],
        "Unexpected argument '/ckpt': flags are written --name=value (--name or --no-name "
        "for a boolean)",
    ),
    (
        ["--", "--docker_volume_chown"],
        "Unexpected argument '--': flags are written --name=value (--name or --no-name "
        "for a boolean)",
    ),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_from_args_refuses_with_a_clear_message(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as raised:
        Flags.from_args(argv)
    assert str(raised.value) == message


def test_a_bad_value_is_a_value_error_as_from_the_constructor() -> None:
    with pytest.raises(ValueError, match=r"^Invalid flag 'docker_volume_chown'"):
        Flags.from_args(["--docker_volume_chown=maybe"])


def test_unknowns_skips_the_agents_other_flags() -> None:
    argv = [
        "--master=zk://zk1:2181/mesos",
        "--work_dir=/var/lib/mesos",
        "--no-hostname_lookup",
        "--isolation=filesystem/linux,docker/volume",
        "--docker_volume_checkpoint_dir=/ckpt",
    ]
    flags = Flags.from_args(argv, unknowns=True)
    assert flags == Flags(docker_volume_checkpoint_dir="/ckpt")
    with pytest.raises(FlagError, match="unknown flag 'master'"):
        Flags.from_args(argv)


def test_from_args_on_a_base_keeps_what_it_does_not_set() -> None:
    base = Flags(docker_volume_checkpoint_dir="/ckpt", docker_volume_chown=True)
    flags = Flags.from_args(["--no-docker_volume_chown"], base=base)
    assert flags == Flags(docker_volume_checkpoint_dir="/ckpt", docker_volume_chown=False)


def test_from_env_reads_mesos_prefixed_variables() -> None:
    environ = {
        "MESOS_DOCKER_VOLUME_CHECKPOINT_DIR": "/ckpt",
        "MESOS_docker_volume_chown": "true",
        "MESOS_DOCKER_VOLUME_MOUNT_TIMEOUT": "90secs",
        "MESOS_DOCKER_PLUGIN_SPEC_DIRS": "/specs",
        "MESOS_MASTER": "zk://zk1:2181/mesos",  # the agent's: ignored
        "DOCKER_VOLUME_CHOWN": "false",  # no prefix: ignored
    }
    assert Flags.from_env(environ) == Flags(
        docker_volume_checkpoint_dir="/ckpt",
        docker_volume_chown=True,
        docker_volume_mount_timeout=90,
        docker_plugin_spec_dirs=("/specs",),
    )


def test_from_env_takes_a_negated_boolean() -> None:
    environ = {"MESOS_NO-DOCKER_VOLUME_CHOWN": ""}
    flags = Flags.from_env(environ, base=Flags(docker_volume_chown=True))
    assert flags.docker_volume_chown is False


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESOS_DOCKER_PLUGIN_MOUNT_ID", "agent-1")
    assert Flags.from_env().docker_plugin_mount_id == "agent-1"


def test_from_env_words_a_bad_value_as_the_constructor() -> None:
    with pytest.raises(FlagError) as raised:
        Flags.from_env({"MESOS_DOCKER_VOLUME_LAUNCH_STYLE": "bogus"})
    assert str(raised.value) == (
        "Invalid flag 'docker_volume_launch_style': 'bogus' is not supported; "
        "expected one of 'mounts', 'pre_exec_commands'"
    )


def test_the_command_line_wins_over_the_environment() -> None:
    environ = {"MESOS_DOCKER_VOLUME_CHECKPOINT_DIR": "/env", "MESOS_DOCKER_VOLUME_CHOWN": "1"}
    argv = ["--docker_volume_checkpoint_dir=/argv"]
    flags = Flags.from_args(argv, base=Flags.from_env(environ))
    assert flags == Flags(docker_volume_checkpoint_dir="/argv", docker_volume_chown=True)
