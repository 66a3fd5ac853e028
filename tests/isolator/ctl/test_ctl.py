"""``isolator-ctl`` on a real checkpoint directory: ``status``, ``volumes``, ``recover
--dry-run`` and ``forget``, as text and as JSON, with their exit statuses; the flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from isolator import DriverError, Flags
from isolator.ctl import checkpoints, main
from isolator.docker.state import VolumeKey, checkpoint_container
from isolator.protos import ContainerID
from tests.support.hygiene import tree
from tests.support.repo import REPO

SHARED = VolumeKey("local", "shared")
SCRATCH = VolumeKey("local", "scratch")
DB = VolumeKey("rexray", "db")
LOGS = VolumeKey("local", "logs")


def checkpoint(root: Path, value: str, *volumes: VolumeKey) -> None:
    checkpoint_container(str(root), ContainerID(value=value), list(volumes))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """c1 holds shared and scratch; c2 shared; c3 db and logs; c4 logs; c5 nothing."""
    path = tmp_path / "checkpoints"
    checkpoint(path, "c1", SHARED, SCRATCH)
    checkpoint(path, "c2", SHARED)
    checkpoint(path, "c3", DB, LOGS)
    checkpoint(path, "c4", LOGS)
    (path / "c5").mkdir()  # the agent died before writing the file
    return path


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``isolator-ctl ARGV`` in this process, with no ``MESOS_`` environment."""
    code = main(list(argv), environ={})
    out, err = capsys.readouterr()
    return code, out, err


def ctl_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _ = ctl(capsys, *argv, "--json")
    return code, json.loads(out)


# -- status and volumes ---------------------------------------------------------------------


def test_status_lists_each_container_with_its_volumes(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ctl(capsys, "status", "--checkpoint-dir", str(root))
    assert (code, err) == (0, "")
    assert out == (
        "CONTAINER   DRIVER   VOLUME    NOTE\n"
        "c1          local    shared\n"
        "c1          local    scratch\n"
        "c2          local    shared\n"
        "c3          rexray   db\n"
        "c3          local    logs\n"
        "c4          local    logs\n"
        "c5          -        -         no checkpoint file: the agent stopped before writing "
        "it; nothing was mounted\n"
        f"5 container(s), 4 volume(s) in '{root}'\n"
    )


def test_status_as_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = ctl_json(capsys, "status", "--checkpoint-dir", str(root))
    assert code == 0
    assert document["checkpoint_dir"] == str(root)
    containers = {entry["container"]: entry for entry in document["containers"]}
    assert list(containers) == ["c1", "c2", "c3", "c4", "c5"]
    assert containers["c1"] == {
        "container": "c1",
        "volumes": [{"driver": "local", "name": "shared"}, {"driver": "local", "name": "scratch"}],
        "checkpoint": "volumes",
        "error": None,
    }
    assert containers["c5"]["checkpoint"] == "no file"


def test_an_unreadable_checkpoint_is_shown_and_fails_the_status(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "c6").mkdir()
    (root / "c6" / "volumes").write_text("{bad")
    (root / "c7").mkdir()
    (root / "c7" / "volumes").write_text("")
    code, out, _ = ctl(capsys, "status", "--checkpoint-dir", str(root))
    assert code == 1
    assert "c6          -        -         unreadable: JSON parse failed: " in out
    assert "c7          -        -         the checkpoint is empty: nothing was mounted\n" in out
    code, document = ctl_json(capsys, "status", "--checkpoint-dir", str(root))
    assert code == 1
    (bad,) = [c for c in document["containers"] if c["checkpoint"] == "unreadable"]
    assert bad["container"] == "c6"
    assert bad["error"].startswith("JSON parse failed: ")


def test_status_of_a_missing_directory_finds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none"
    code, out, _ = ctl(capsys, "status", "--checkpoint-dir", str(missing))
    assert (code, out) == (0, f"No checkpoint directory at '{missing}': nothing is checkpointed.\n")
    assert ctl_json(capsys, "volumes", "--checkpoint-dir", str(missing)) == (
        0,
        {"checkpoint_dir": str(missing), "volumes": []},
    )


def test_volumes_lists_each_volume_with_its_holders(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = ctl(capsys, "volumes", "--offline", "--checkpoint-dir", str(root))
    assert code == 0
    assert out == (
        "DRIVER   VOLUME    HOLDERS   CONTAINERS\n"
        "local    logs      2         c3, c4\n"
        "local    scratch   1         c1\n"
        "local    shared    2         c1, c2\n"
        "rexray   db        1         c3\n"
    )
    code, document = ctl_json(capsys, "volumes", "--offline", "--checkpoint-dir", str(root))
    assert code == 0
    assert document["volumes"][0] == {
        "driver": "local",
        "name": "logs",
        "holders": 2,
        "containers": ["c3", "c4"],
    }
    assert document["unreadable"] == []


def test_volumes_shows_the_mount_point_each_plugin_reports(root: Path) -> None:
    asked: list[list[VolumeKey]] = []

    def find(volumes: list[VolumeKey]) -> dict[VolumeKey, str | Exception]:
        asked.append(volumes)
        return {LOGS: "/mnt/logs", SCRATCH: "", SHARED: "/mnt/shared", DB: DriverError("down")}

    flags = Flags(docker_volume_checkpoint_dir=str(root))
    outcome = checkpoints.volumes(flags, find)
    assert asked == [[LOGS, SCRATCH, SHARED, DB]]  # each volume once, however many hold it
    assert outcome.text == (
        "DRIVER   VOLUME    HOLDERS   MOUNT POINT     CONTAINERS\n"
        "local    logs      2         /mnt/logs       c3, c4\n"
        "local    scratch   1         (not mounted)   c1\n"
        "local    shared    2         /mnt/shared     c1, c2\n"
        "rexray   db        1         ?               c3\n"
        "mount point unknown: rexray/db: down\n"
    )
    assert outcome.data["volumes"][3]["mount_point"] == {"path": None, "error": "down"}
    assert outcome.data["volumes"][0]["mount_point"] == {"path": "/mnt/logs", "error": None}


def test_volumes_says_whose_holders_are_unknown(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "c6").mkdir()
    (root / "c6" / "volumes").write_text("[]")
    code, out, _ = ctl(capsys, "volumes", "--checkpoint-dir", str(root))
    assert code == 1
    assert "holders unknown: container c6's unreadable: JSON parse failed: " in out


# -- recover --dry-run ----------------------------------------------------------------------


def test_recover_dry_run_follows_the_isolators_rules(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(root)
    code, out, err = ctl(
        capsys, "recover", "--dry-run", "--checkpoint-dir", str(root), "--known", "c1", "c9"
    )
    assert (code, err) == (0, "")
    # shared: c1 (known) still holds it; logs: c3 and c4 (orphans) unmount it once.
    assert out == (
        "CHECKPOINT   ROLE             VOLUMES\n"
        "c1           known            local/shared, local/scratch\n"
        "c2           unknown orphan   local/shared\n"
        "c3           unknown orphan   rexray/db, local/logs\n"
        "c4           unknown orphan   local/logs\n"
        "c5           unknown orphan   -\n"
        "known, without a checkpoint: c9\n"
        "\n"
        "Unmounts recovery would send (2):\n"
        "DRIVER   VOLUME\n"
        "local    logs\n"
        "rexray   db\n"
        "\n"
        "Kept mounted (a known container holds them):\n"
        "DRIVER   VOLUME    CONTAINERS\n"
        "local    scratch   c1\n"
        "local    shared    c1\n"
    )
    assert tree(root) == before, "a dry run changed the checkpoint directory"


def test_recover_dry_run_as_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = ctl_json(
        capsys, "recover", "--dry-run", "--checkpoint-dir", str(root), "--known", "c2"
    )
    assert code == 0
    assert document == {
        "checkpoint_dir": str(root),
        "known": [{"container": "c2", "checkpointed": True}],
        "orphans": ["c1", "c3", "c4", "c5"],
        "unmounts": [
            {"driver": "local", "name": "logs"},
            {"driver": "local", "name": "scratch"},
            {"driver": "rexray", "name": "db"},
        ],
        "kept": [{"driver": "local", "name": "shared", "containers": ["c2"]}],
    }


def test_recover_dry_run_says_a_recovery_would_fail(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "c6").mkdir()
    (root / "c6" / "volumes").write_text('{"volumes":[{"driver":"d"}]}')
    code, out, _ = ctl(capsys, "recover", "--dry-run", "--checkpoint-dir", str(root))
    assert code == 1
    assert out == (
        "Recovery would fail: Failed to recover docker volumes for orphan container c6: "
        "Protobuf parse failed: Missing required fields: volumes[0].name\n"
    )


def test_recover_without_dry_run_refuses_and_changes_nothing(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(root)
    code, out, err = ctl(capsys, "recover", "--checkpoint-dir", str(root))
    assert (code, out) == (2, "")
    assert err == (
        "isolator-ctl recover: error: recover only shows what a recovery would do "
        "(--dry-run): recovering is the agent's job, when its isolator starts\n"
    )
    assert tree(root) == before


def test_recover_refuses_a_known_id_that_is_not_one(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["recover", "--dry-run", "--checkpoint-dir", str(root), "--known", ".."]
    code, _, err = ctl(capsys, *argv)
    assert code == 2
    assert "Invalid container ID '..': a container ID value must not be '..'" in err


# -- forget ---------------------------------------------------------------------------------


def test_forget_without_yes_says_what_it_would_remove(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ctl(capsys, "forget", "c3", "--checkpoint-dir", str(root))
    assert (code, out) == (2, "")
    assert err == (
        f"isolator-ctl forget: error: Not removing the checkpoint of container c3 at "
        f"'{root}/c3' (volumes: rexray/db, local/logs); its volumes are NOT unmounted: a "
        "plugin keeps them mounted for the agent's mount ID. Do it only with the agent "
        "stopped, or for a container it no longer knows; to remove it, run again with --yes\n"
    )
    assert (root / "c3" / "volumes").exists()


def test_forget_with_yes_removes_only_the_checkpoint(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = ctl_json(capsys, "forget", "c3", "--yes", "--checkpoint-dir", str(root))
    assert code == 0
    assert document["removed"] == f"{root}/c3"
    assert document["checkpoint"]["volumes"] == [
        {"driver": "rexray", "name": "db"},
        {"driver": "local", "name": "logs"},
    ]
    assert not (root / "c3").exists()
    code, out, _ = ctl(capsys, "status", "--checkpoint-dir", str(root))
    assert "c3" not in out


def test_forget_leaves_a_directory_holding_anything_else(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "c1" / "notes").write_text("not the isolator's")
    code, out, _ = ctl(capsys, "forget", "c1", "--yes", "--checkpoint-dir", str(root))
    assert code == 1
    assert out == (
        f"Failed to remove the checkpoint directory at '{root}/c1': Directory not empty\n"
    )
    assert (root / "c1" / "notes").exists()


def test_forget_of_a_container_without_checkpoint(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = ctl(capsys, "forget", "c9", "--yes", "--checkpoint-dir", str(root))
    assert code == 1
    assert out == f"Container c9 has no checkpoint: '{root}/c9' does not exist\n"
    code, _, err = ctl(capsys, "forget", "a/b", "--yes", "--checkpoint-dir", str(root))
    assert code == 2
    assert "Invalid container ID 'a/b': a container ID value must not contain '/'" in err


# -- the agent's flags and environment ------------------------------------------------------


def test_the_agents_flags_and_environment_are_taken(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["status", f"--docker_volume_checkpoint_dir={root}", "--docker_volume_chown"]
    assert ctl_json(capsys, *argv)[1]["checkpoint_dir"] == str(root)
    code = main(["volumes", "--json"], environ={"MESOS_DOCKER_VOLUME_CHECKPOINT_DIR": str(root)})
    assert code == 0
    assert json.loads(capsys.readouterr().out)["checkpoint_dir"] == str(root)
    # The command's own option wins over the agent's flag.
    argv = ["status", "--docker_volume_checkpoint_dir=/nowhere", "--checkpoint-dir", str(root)]
    assert ctl_json(capsys, *argv)[1]["checkpoint_dir"] == str(root)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "--bogus"], "isolator-ctl: error: Failed to load unknown flag 'bogus'"),
        (
            ["status", "--docker_volume_mount_timeout=120"],
            "isolator-ctl: error: Invalid flag 'docker_volume_mount_timeout': '120' is not a "
            "duration (Invalid duration '120'); expected a number and a unit, e.g. '2mins'",
        ),
        (["plugins", "--timeout", "0"], "must be a positive number of seconds, not '0'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ctl(capsys, *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_help_documents_exit_statuses_and_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["status", "--help"], ["forget", "--help"]):
        code, out, _ = ctl(capsys, *argv)
        assert code == 0
        assert "exit status:\n  0  done, nothing wrong found\n" in out
        assert "  2  usage error: " in out
        assert "  --docker_volume_checkpoint_dir=VALUE (default: " in out
        assert "  --[no-]docker_volume_chown (default: false)" in out


def test_the_module_runs_as_the_console_script(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isolator.ctl", "status", "--json", "--checkpoint-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert len(json.loads(done.stdout)["containers"]) == 5


@pytest.mark.parametrize("command", [["status"], ["volumes"], ["recover", "--dry-run"]])
def test_a_checkpoint_directory_that_cannot_be_listed_fails(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    code, out, _ = ctl(capsys, *command, "--checkpoint-dir", str(not_a_directory))
    assert (code, out) == (
        1,
        f"Unable to list docker volume checkpoint directory '{not_a_directory}': Not a directory\n",
    )
