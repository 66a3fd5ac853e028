"""``isolator-dvdcli`` keeps a Mesos agent's calls balanced toward the plugin: a Mesos agent
runs ``dvdcli mount`` for every container and ``dvdcli unmount`` once after the last, and
the plugin must see one Mount and one Unmount (issue 16). Its records, locked and hostile-
input safe."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import EventLoopThread
from isolator.drivers.dvdcli import DvdcliClient
from isolator.dvdcli import args as dvdcli_args
from isolator.dvdcli import cli as dvdcli_cli
from isolator.dvdcli.ledger import DEFAULT_STATE_DIR, Ledger, LedgerError, Record
from tests.support.dvdcli_cli import (
    DRIVER,
    WAIT,
    Setup,
    dvdcli_setup,
    isolate_environment,
    mesos_dvdcli,
)
from tests.support.plugin_http import ok

CONTAINERS = 3


@pytest.fixture(autouse=True)
def _no_dvdcli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_environment(monkeypatch, tmp_path)


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(name="test-dvdcli-ledger-loop")
    yield thread
    thread.stop()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """The reference plugin in its default ``calls`` mode."""
    with dvdcli_setup(tmp_path) as running:
        yield running


@pytest.fixture(params=["calls", "refuse-duplicate-id"])
def any_plugin(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Setup]:
    options = {"refuse_duplicate_id": True} if request.param != "calls" else {}
    with dvdcli_setup(tmp_path, **options) as running:
        yield running


def status(setup: Setup, name: str = "vol") -> dict[str, Any]:
    answer: dict[str, Any] = ok(setup.plugin, "VolumeDriver.Get", {"Name": name})["Volume"]
    result: dict[str, Any] = answer["Status"]
    return result


def plugin_path(setup: Setup, name: str = "vol") -> str:
    answer: str = ok(setup.plugin, "VolumeDriver.Path", {"Name": name})["Mountpoint"]
    return answer


def cli(setup: Setup, *argv: str) -> int:
    return dvdcli_cli.main([*setup.flags, *argv, f"--volumedriver={DRIVER}"])


# -- Mesos's call pattern --------------------------------------------------------------------


def test_mesos_n_mounts_and_one_unmount_reach_the_plugin_as_one_of_each(
    any_plugin: Setup, loop: EventLoopThread
) -> None:
    setup = any_plugin
    client = DvdcliClient(mesos_dvdcli(setup), loop=loop)  # exactly as Mesos runs dvdcli
    answers = [client.mount(DRIVER, "vol", {}).get(timeout=WAIT) for _ in range(CONTAINERS)]
    assert len(set(answers)) == 1
    assert answers[0].strip() == plugin_path(setup)
    assert len(setup.calls("VolumeDriver.Mount")) == 1
    assert status(setup)["count"] == 1
    client.unmount(DRIVER, "vol").get(timeout=WAIT)
    [mount] = setup.calls("VolumeDriver.Mount")
    assert setup.calls("VolumeDriver.Unmount") == [{"Name": "vol", "ID": mount["ID"]}]
    assert status(setup) == {"count": 0, "mounts": {}}
    assert plugin_path(setup) == ""  # released
    assert sorted(os.listdir(setup.state_dir)) == ["m-refvol@vol.lock"]  # the record went
    # The next period starts again with a Mount of its own.
    client.mount(DRIVER, "vol", {}).get(timeout=WAIT)
    client.unmount(DRIVER, "vol").get(timeout=WAIT)
    assert len(setup.calls("VolumeDriver.Mount")) == 2
    assert status(setup)["count"] == 0


def test_concurrent_mounts_of_one_volume_send_one_mount(setup: Setup) -> None:
    command = setup.run_argv("mount", f"--volumedriver={DRIVER}", "--volumename=vol")
    procs = [
        subprocess.Popen(command, env=setup.environ(), stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = {proc.communicate(timeout=WAIT)[0] for proc in procs}
    assert [proc.returncode for proc in procs] == [0] * 4
    assert len(outputs) == 1
    assert len(setup.calls("VolumeDriver.Mount")) == 1


# -- unmount of what it did not mount ----------------------------------------------------------


def test_an_unrecorded_unmount_sends_nothing_unless_asked(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(setup.plugin, "VolumeDriver.Create", {"Name": "vol"})
    ok(setup.plugin, "VolumeDriver.Mount", {"Name": "vol", "ID": "docker"})  # someone else's
    assert cli(setup, "unmount", "--volumename=vol") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"isolator-dvdcli: volume 'vol' of plugin 'refvol' has no record in "
        f"'{setup.state_dir}': it was not mounted by isolator-dvdcli, so no Unmount is sent\n"
    )
    assert setup.calls("VolumeDriver.Unmount") == []
    assert status(setup)["count"] == 1  # the other holder keeps its volume
    assert cli(setup, "unmount", "--volumename=vol", "--unmount-unrecorded") == 0
    assert len(setup.calls("VolumeDriver.Unmount")) == 1
    assert status(setup)["count"] == 0


def test_a_refused_mount_leaves_no_record(setup: Setup) -> None:
    assert cli(setup, "mount", "--volumename=vol", "--volumeopts=size=5") == 1
    assert os.listdir(setup.state_dir) == ["m-refvol@vol.lock"]
    assert cli(setup, "unmount", "--volumename=vol") == 0
    assert setup.calls("VolumeDriver.Unmount") == []


# -- an unknown outcome counts as mounted --------------------------------------------------------


def pending(setup: Setup, mount_id: str) -> None:
    """The record a Mount in flight leaves when it is killed."""
    Ledger(setup.state_dir).write(Record(DRIVER, "vol", mount_id, None))


def test_after_an_unknown_mount_that_did_mount_the_next_mount_asks_path(setup: Setup) -> None:
    ok(setup.plugin, "VolumeDriver.Create", {"Name": "vol"})
    mountpoint = ok(setup.plugin, "VolumeDriver.Mount", {"Name": "vol", "ID": "killed"})
    pending(setup, "killed")
    assert cli(setup, "mount", "--volumename=vol") == 0
    assert len(setup.calls("VolumeDriver.Mount")) == 1  # only the one before the kill
    assert Ledger(setup.state_dir).read(DRIVER, "vol") == Record(
        DRIVER, "vol", "killed", mountpoint["Mountpoint"]
    )
    assert cli(setup, "unmount", "--volumename=vol") == 0
    assert setup.calls("VolumeDriver.Unmount") == [{"Name": "vol", "ID": "killed"}]
    assert status(setup)["count"] == 0


def test_after_an_unknown_mount_that_did_not_mount_the_next_mount_mounts(setup: Setup) -> None:
    ok(setup.plugin, "VolumeDriver.Create", {"Name": "vol"})
    pending(setup, "killed")
    assert cli(setup, "mount", "--volumename=vol") == 0
    assert setup.calls("VolumeDriver.Mount") == [{"Name": "vol", "ID": "killed"}]
    assert cli(setup, "unmount", "--volumename=vol") == 0
    assert status(setup) == {"count": 0, "mounts": {}}


def test_an_unknown_mount_still_gets_its_unmount(setup: Setup) -> None:
    ok(setup.plugin, "VolumeDriver.Create", {"Name": "vol"})
    ok(setup.plugin, "VolumeDriver.Mount", {"Name": "vol", "ID": "killed"})
    pending(setup, "killed")
    assert cli(setup, "unmount", "--volumename=vol") == 0
    assert setup.calls("VolumeDriver.Unmount") == [{"Name": "vol", "ID": "killed"}]
    assert status(setup)["count"] == 0


def test_a_failed_unmount_keeps_the_record_for_the_next_try(setup: Setup) -> None:
    assert cli(setup, "mount", "--volumename=vol") == 0
    setup.plugin.stop()
    assert cli(setup, "unmount", "--volumename=vol") == 1
    assert Ledger(setup.state_dir).read(DRIVER, "vol") is not None
    setup.plugin.start()
    assert cli(setup, "unmount", "--volumename=vol") == 0
    assert Ledger(setup.state_dir).read(DRIVER, "vol") is None
    assert status(setup)["count"] == 0


# -- the records themselves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "name", "file"),
    [
        ("d", "../../etc/passwd", "m-d@..%2F..%2Fetc%2Fpasswd.json"),
        ("a@b", "c", "m-a%40b@c.json"),
        ("a", "b@c", "m-a@b%40c.json"),
        ("d", "\0\n", "m-d@%00%0A.json"),
    ],
)
def test_hostile_names_stay_one_file_inside_the_state_dir(
    tmp_path: Path, driver: str, name: str, file: str
) -> None:
    ledger = Ledger(str(tmp_path / "s"))
    with ledger.locked(driver, name):
        ledger.write(Record(driver, name, "", "/p"))
    assert sorted(os.listdir(tmp_path / "s")) == sorted([file, file[:-5] + ".lock"])
    assert ledger.read(driver, name) == Record(driver, name, "", "/p")
    assert sorted(os.listdir(tmp_path)) == ["s"]


def test_a_long_name_gets_a_hashed_file(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path))
    ledger.write(Record("d", "x" * 300, "", "/p"))
    [entry] = os.listdir(tmp_path)
    assert entry.startswith("m#")
    assert len(entry) == len("m#.json") + 64


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{oops", "Expecting property name"),
        (
            '{"version": 1, "driver": "d", "name": "other", "mount_id": "", "mountpoint": "/p"}',
            "it names another volume than its file does",
        ),
        (
            '{"version": 1, "driver": "d", "name": "v", "mount_id": 5, "mountpoint": "/p"}',
            "'mount_id' is not a string",
        ),
        (
            '{"version": 1, "driver": "d", "name": "v", "mount_id": "", "mountpoint": ""}',
            "'mountpoint' is neither a path nor null",
        ),
        ("x" * (65 << 10), "larger than 65536 bytes"),
    ],
)
def test_a_bad_record_is_refused_naming_it(tmp_path: Path, content: str, reason: str) -> None:
    (tmp_path / "m-d@v.json").write_text(content)
    with pytest.raises(LedgerError) as raised:
        Ledger(str(tmp_path)).read("d", "v")
    assert str(raised.value).startswith(f"corrupt record {tmp_path / 'm-d@v.json'}: ")
    assert reason in str(raised.value)


def test_a_linked_record_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"version": 1}))
    (tmp_path / "m-d@v.json").symlink_to(target)
    with pytest.raises(LedgerError, match=r"cannot read record .*: Too many levels"):
        Ledger(str(tmp_path)).read("d", "v")


def test_a_state_dir_others_can_write_is_refused(setup: Setup, capsys: Any) -> None:
    state = Path(setup.state_dir)
    state.mkdir(mode=0o700)
    state.chmod(0o777)
    assert cli(setup, "mount", "--volumename=vol") == 1
    message = f"isolator-dvdcli state directory '{state}' is writable by other users"
    assert capsys.readouterr().err == f"isolator-dvdcli: error: {message}\n"
    assert setup.calls("VolumeDriver.Mount") == []


def test_the_state_dir_is_documented_and_defaults_under_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dvdcli_cli.main(["help", "mount"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--state-dir DIR" in text
    assert f"($DVDCLI_STATE_DIR; default {DEFAULT_STATE_DIR})" in text
    assert DEFAULT_STATE_DIR == "/run/isolator-dvdcli"
    monkeypatch.delenv("DVDCLI_STATE_DIR")
    request = dvdcli_args.parse(["unmount"], {})
    assert (request.state_dir, request.unmount_unrecorded) == (DEFAULT_STATE_DIR, False)
    request = dvdcli_args.parse(
        ["unmount"], {"DVDCLI_STATE_DIR": "/s", "DVDCLI_UNMOUNT_UNRECORDED": "true"}
    )
    assert (request.state_dir, request.unmount_unrecorded) == ("/s", True)
