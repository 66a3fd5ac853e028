"""``isolator-dvdcli`` against the reference plugin: as a subprocess, in-process, and as the
binary behind ``DvdcliClient`` (the way Mesos runs dvdcli)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import EventLoopThread
from isolator.common.errors import DriverError
from isolator.drivers.dvdcli import DvdcliClient
from isolator.dvdcli import args as dvdcli_args
from isolator.dvdcli import cli as dvdcli_cli
from isolator.plugin import PluginCall
from tests.support.dvdcli_cli import (
    DRIVER,
    WAIT,
    Setup,
    dvdcli_setup,
    isolate_environment,
    mesos_dvdcli,
)


@pytest.fixture(autouse=True)
def _no_dvdcli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with dvdcli_setup(tmp_path) as running:
        yield running


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(name="test-dvdcli-cli-loop")
    yield thread
    thread.stop()


def _volume_flags(name: str) -> list[str]:
    return [f"--volumedriver={DRIVER}", f"--volumename={name}"]


# -- as a subprocess ------------------------------------------------------------------------


def test_every_plugin_command_as_a_subprocess(setup: Setup) -> None:
    data = setup.root / "data"
    created = setup.run("create", *_volume_flags("v1"), f"--volumeopts=mountpoint={data}")
    assert (created.returncode, created.stdout, created.stderr) == (0, "", "")
    assert setup.calls("VolumeDriver.Create") == [{"Name": "v1", "Opts": {"mountpoint": str(data)}}]

    # dvdcli's persistent flags may come before the command; mount creates implicitly.
    mounted = setup.run(*_volume_flags("v2"), "mount")
    v2 = setup.root / "plugin" / "volumes" / "v2"
    assert (mounted.returncode, mounted.stdout, mounted.stderr) == (0, f"{v2}\n", "")
    assert setup.calls("VolumeDriver.Create")[-1] == {"Name": "v2", "Opts": {}}
    [mount] = setup.calls("VolumeDriver.Mount")
    assert mount["Name"] == "v2"

    path = setup.run("path", *_volume_flags("v2"))
    assert (path.returncode, path.stdout) == (0, f"{v2}\n")

    got = setup.run("get", *_volume_flags("v1"))
    assert (got.returncode, got.stdout) == (0, "v1\n")

    listed = setup.run("list", f"--volumedriver={DRIVER}")
    assert (listed.returncode, listed.stdout) == (0, "v1\nv2\n")

    unmounted = setup.run("unmount", *_volume_flags("v2"))
    assert (unmounted.returncode, unmounted.stdout, unmounted.stderr) == (0, "", "")
    [unmount] = setup.calls("VolumeDriver.Unmount")
    assert unmount == {"Name": "v2", "ID": mount["ID"]}

    removed = setup.run("remove", *_volume_flags("v1"))
    assert (removed.returncode, removed.stdout, removed.stderr) == (0, "", "")
    assert setup.calls("VolumeDriver.Remove") == [{"Name": "v1"}]

    gone = setup.run("get", *_volume_flags("v1"))
    assert (gone.returncode, gone.stdout) == (1, "")
    assert gone.stderr == "isolator-dvdcli: error: VolumeDriver.Get: volume v1 not found\n"


def test_version_as_a_subprocess(setup: Setup) -> None:
    result = setup.run("version")
    assert result.returncode == 0
    keys = [line.split(":", 1)[0] for line in result.stdout.splitlines()]
    assert keys == ["Binary", "SemVer", "OsArch", "Branch", "Commit", "Formed"]


def test_an_unknown_flag_is_a_usage_error(setup: Setup) -> None:
    result = setup.run("mount", *_volume_flags("v"), "--bogus=1")
    assert (result.returncode, result.stdout) == (2, "")
    assert "unrecognized arguments: --bogus=1" in result.stderr
    assert setup.plugin.calls == []


def test_a_missing_plugin_fails_naming_it(setup: Setup) -> None:
    result = setup.run("mount", "--volumedriver=nosuchplugin", "--volumename=v")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("isolator-dvdcli: error: Docker volume plugin 'nosuchplugin'")
    assert "not found" in result.stderr


def test_explicitcreate_refuses_a_missing_volume(setup: Setup) -> None:
    result = setup.run("mount", "--explicitcreate", *_volume_flags("absent"))
    assert (result.returncode, result.stdout) == (1, "")
    assert "explicit create" in result.stderr
    assert "VolumeDriver.Get: volume absent not found" in result.stderr
    assert setup.calls("VolumeDriver.Create") == []
    assert setup.calls("VolumeDriver.Mount") == []


# -- in-process: parsing and settings -------------------------------------------------------


def test_explicitcreate_false_still_creates(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*setup.flags, "mount", "--explicitcreate=false", *_volume_flags("v")]
    assert dvdcli_cli.main(argv) == 0
    assert capsys.readouterr().out == f"{setup.root / 'plugin' / 'volumes' / 'v'}\n"
    assert setup.calls("VolumeDriver.Create") == [{"Name": "v", "Opts": {}}]


def test_a_volume_option_is_split_at_its_first_equals_sign_only(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    mountpoint = f"{setup.root}/a=b,c"
    argv = ["create", *_volume_flags("v"), f"--volumeopts=mountpoint={mountpoint}", *setup.flags]
    assert dvdcli_cli.main(argv) == 0  # options given after the command, too
    assert capsys.readouterr() == ("", "")
    assert setup.calls("VolumeDriver.Create") == [{"Name": "v", "Opts": {"mountpoint": mountpoint}}]


def test_mount_id_may_be_dvdclis_empty_one(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(dvdcli_args.ENV_MOUNT_ID, "")
    assert dvdcli_cli.main([*setup.flags, "mount", *_volume_flags("v")]) == 0
    assert dvdcli_cli.main([*setup.flags, "unmount", *_volume_flags("v"), "--mount-id="]) == 0
    assert setup.calls("VolumeDriver.Mount") == [{"Name": "v", "ID": ""}]
    assert setup.calls("VolumeDriver.Unmount") == [{"Name": "v", "ID": ""}]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param([], "required: COMMAND", id="no-command"),
        pytest.param(["frobnicate"], "invalid choice: 'frobnicate'", id="unknown-command"),
        pytest.param(["--volumedrive=x", "list"], "--volumedrive=x", id="no-abbreviations"),
        pytest.param(["mount", "--volumeopts=novalue"], "'novalue' is not KEY=VALUE", id="opt"),
        pytest.param(["mount", "--volumeopts==v"], "empty key", id="opt-empty-key"),
        pytest.param(["unmount", "--volumeopts=a=b"], "--volumeopts=a=b", id="opts-on-unmount"),
        pytest.param(["create", "--explicitcreate"], "--explicitcreate", id="explicit-on-create"),
        pytest.param(["mount", "--explicitcreate=maybe"], "'maybe' is not a boolean", id="bool"),
        pytest.param(["--retry-budget=-1", "list"], "'-1' must be zero or more", id="budget"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dvdcli_cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert needle in captured.err


def test_a_bad_retry_budget_in_the_environment_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(dvdcli_args.ENV_RETRY_BUDGET, "soon")
    assert dvdcli_cli.main(["list", "--volumedriver=x"]) == 2
    assert "$DVDCLI_RETRY_BUDGET: 'soon' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mount", "--volumename=v"], "Missing volume driver name"),
        (["get", "--volumedriver=x"], "Missing volume name"),
    ],
)
def test_missing_driver_or_volume_name_fails_with_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dvdcli_cli.main(argv) == 1
    assert capsys.readouterr() == ("", f"isolator-dvdcli: error: {message}\n")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert dvdcli_cli.main(["help", "mount"]) == 0
    assert "--explicitcreate" in capsys.readouterr().out
    assert dvdcli_cli.main(["--help"]) == 0
    assert "unmount" in capsys.readouterr().out


# -- behind DvdcliClient, as Mesos runs dvdcli ------------------------------------------------


def test_dvdcli_client_mounts_and_unmounts_through_the_cli(
    setup: Setup, loop: EventLoopThread
) -> None:
    client = DvdcliClient(mesos_dvdcli(setup), loop=loop)
    data = setup.root / "data"
    mountpoint = client.mount(DRIVER, "vol", {"mountpoint": str(data)}).get(timeout=WAIT)
    assert mountpoint == f"{data}\n"  # untrimmed, as Mesos reads it
    assert setup.calls("VolumeDriver.Create") == [
        {"Name": "vol", "Opts": {"mountpoint": str(data)}}
    ]
    assert client.unmount(DRIVER, "vol").get(timeout=WAIT) is None
    [mount] = setup.calls("VolumeDriver.Mount")
    assert setup.calls("VolumeDriver.Unmount") == [{"Name": "vol", "ID": mount["ID"]}]
    assert setup.plugin.calls[0] == PluginCall("Plugin.Activate", {})


def test_dvdcli_client_reports_a_refused_mount_with_the_cli_stderr(
    setup: Setup, loop: EventLoopThread
) -> None:
    client = DvdcliClient(mesos_dvdcli(setup), loop=loop)
    with pytest.raises(DriverError) as caught:
        client.mount(DRIVER, "vol", {"size": "5"}).get(timeout=WAIT)
    assert str(caught.value) == (
        "Unexpected termination of the subprocess: isolator-dvdcli: error: "
        "VolumeDriver.Create: unknown option 'size' (the only option is 'mountpoint')\n"
    )
    assert setup.calls("VolumeDriver.Mount") == []
