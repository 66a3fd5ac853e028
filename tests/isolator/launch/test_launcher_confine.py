"""The launcher applies only what it can apply safely: no NUL, no mount through a link.

The launch infos come from a real ``prepare`` (with a recording driver); then the test plays
the attacker, planting a link where ``prepare`` made a directory, and runs the launcher,
which mounts in a namespace of its own. Every test checks the host's mount table after it,
that the command never ran and that nothing appeared where the link pointed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import json_format

from isolator import Flags
from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_REC
from isolator.launcher import EXIT_LAUNCH_FAILURE, LaunchError, launcher_command, run
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import CommandInfo, ContainerLaunchInfo, Volume
from isolator.testing import RecordingDriverClient
from tests.support.hygiene import tree
from tests.support.isolators import running_isolator, sandbox
from tests.support.waits import WAIT

pytestmark = pytest.mark.usefixtures("host_unchanged")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


# -- a NUL in any string is refused, never cut short ------------------------------------


def _mount(**fields: str) -> ContainerLaunchInfo:
    launch_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    mount = {"source": "/src", "target": "/tgt", **fields}
    launch_info.mounts.add(flags=MS_BIND | MS_REC, **mount)
    return launch_info


def _pre_exec(**fields: object) -> ContainerLaunchInfo:
    launch_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    launch_info.pre_exec_commands.append(CommandInfo(shell=False, **fields))  # type: ignore[arg-type]
    return launch_info


NUL_FIELDS: list[tuple[ContainerLaunchInfo, str, str]] = [
    (_mount(target="/tgt\0/../../../etc"), "mount target", "/tgt\\0/../../../etc"),
    (_mount(source="/src\0x"), "mount source", "/src\\0x"),
    (_mount(type="tmpfs\0"), "mount type", "tmpfs\\0"),
    (_mount(options="size=1\0,exec"), "mount options", "size=1\\0,exec"),
    (_pre_exec(value="mount\0x"), "pre-exec command", "mount\\0x"),
    (
        _pre_exec(value="mount", arguments=["mount", "/a\0b"]),
        "pre-exec command argument",
        "/a\\0b",
    ),
    (ContainerLaunchInfo(working_directory="/tmp\0/x"), "working directory", "/tmp\\0/x"),
]
NUL_IDS = ["target", "source", "type", "options", "command", "argument", "working_directory"]


def _nul_message(what: str, shown: str) -> str:
    return f"Invalid launch info: the {what} '{shown}' contains a NUL character"


@pytest.mark.parametrize(("launch_info", "what", "shown"), NUL_FIELDS, ids=NUL_IDS)
def test_a_nul_in_any_field_is_refused_before_the_launcher_starts(
    launch_info: ContainerLaunchInfo, what: str, shown: str
) -> None:
    with pytest.raises(LaunchError) as raised:
        launcher_command(launch_info, ["true"])  # what launch() checks before it starts one
    assert str(raised.value) == _nul_message(what, shown)


@pytest.mark.parametrize(("launch_info", "what", "shown"), NUL_FIELDS, ids=NUL_IDS)
def test_a_nul_in_any_field_exits_125_in_the_launcher(
    tmp_path: Path, launch_info: ContainerLaunchInfo, what: str, shown: str
) -> None:
    """A launch info handed to the launcher directly (JSON escapes the NUL as \\u0000)."""
    text = json_format.MessageToJson(launch_info, indent=None)
    assert "\\u0000" in text
    ran = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-m", "isolator.launcher", f"--launch-info={text}", "touch", str(ran)],
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (EXIT_LAUNCH_FAILURE, b"")
    assert done.stderr.decode() == _nul_message(what, shown) + "\n"
    assert not ran.exists()


def test_a_nul_in_the_environment_exits_125(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    done = run(None, ["touch", str(ran)], env={"PATH": "/bin", "EVIL": "a\0b"}, timeout=WAIT)
    assert done.returncode == EXIT_LAUNCH_FAILURE
    assert done.stderr.decode().endswith("has a NUL character in 'EVIL'\n")
    assert not ran.exists()


# -- no mount through a link ------------------------------------------------------------


class Scene:
    """A prepared container, a decoy directory outside it, and the launch info to attack."""

    def __init__(self, tmp_path: Path, *volumes: Volume) -> None:
        self.tmp_path = tmp_path
        self.box = Path(sandbox(tmp_path, "sandbox"))
        self.decoy = Path(sandbox(tmp_path, "outside")) / "decoy"
        (self.decoy / "sub").mkdir(parents=True)
        self.client = RecordingDriverClient(tmp_path / "volumes")
        flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))
        with running_isolator(flags, self.client) as isolator:
            config = container_config(str(self.box), volumes)
            launch_info = isolator.prepare(container_id("c"), config).get(WAIT)
        assert launch_info is not None
        self.launch_info: ContainerLaunchInfo = launch_info
        self.outside = tree(tmp_path / "outside")

    def plant(self, name: str, target: Path) -> Path:
        """Replace ``name`` (made by prepare) with a link to ``target``."""
        path = self.box / name
        path.rmdir()
        path.symlink_to(target)
        return path

    def launched(self) -> str:
        """The launcher's refusal: 125, its stderr; the command never ran."""
        ran = self.tmp_path / "ran"
        done = run(self.launch_info, ["touch", str(ran)], timeout=WAIT)
        assert (done.returncode, done.stdout) == (EXIT_LAUNCH_FAILURE, b""), done.stderr
        assert not ran.exists()
        assert tree(self.tmp_path / "outside") == self.outside
        return done.stderr.decode()


def source_of(scene: Scene, name: str) -> str:
    return str(scene.tmp_path / "volumes" / "d" / name)


def at_the_target(scene: Scene) -> tuple[str, Path, Path]:
    """The mount point ``prepare`` made becomes a link: (volume, target, link)."""
    link = scene.plant("data", scene.decoy)
    return "n", link, link


def above_the_target(scene: Scene) -> tuple[str, Path, Path]:
    (scene.box / "data" / "sub").rmdir()
    link = scene.plant("data", scene.decoy)
    return "n", link / "sub", link


def inside_a_volume_mounted_before(scene: Scene) -> tuple[str, Path, Path]:
    """Volume ``b`` goes inside volume ``a``, whose content the task wrote on a past run."""
    Path(source_of(scene, "a"), "sub").symlink_to(scene.decoy / "sub")
    target = scene.box / "data" / "sub"
    return "b", target, target


def at_the_bind_source(scene: Scene) -> tuple[str, Path, Path]:
    """The driver's mount point itself becomes a link (a volume inside another, say)."""
    source = Path(source_of(scene, "n"))
    source.rmdir()
    source.symlink_to(scene.decoy)
    return "n", scene.box / "data", source


Plant = Callable[[Scene], tuple[str, Path, Path]]


@pytest.mark.root
@needs_root
@pytest.mark.parametrize(
    ("volumes", "plant"),
    [
        ([docker_volume("d", "n", "data")], at_the_target),
        ([docker_volume("d", "n", "data/sub")], above_the_target),
        (
            [docker_volume("d", "a", "data"), docker_volume("d", "b", "data/sub")],
            inside_a_volume_mounted_before,
        ),
        ([docker_volume("d", "n", "data")], at_the_bind_source),
    ],
    ids=[
        "at_the_target",
        "above_the_target",
        "inside_a_volume_mounted_before",
        "at_the_bind_source",
    ],
)
def test_a_link_planted_after_prepare_exits_125(
    tmp_path: Path, volumes: list[Volume], plant: Plant
) -> None:
    scene = Scene(tmp_path, *volumes)
    volume, target, link = plant(scene)
    assert scene.launched() == (
        f"Failed to mount '{source_of(scene, volume)}' at '{target}': "
        f"'{link}' is a symbolic link; refusing to follow it\n"
    )


@pytest.mark.root
@needs_root
def test_a_directory_onto_a_file_exits_125(tmp_path: Path) -> None:
    scene = Scene(tmp_path, docker_volume("d", "n", "data"))
    target = scene.box / "data"
    target.rmdir()
    target.write_text("")
    assert scene.launched() == (
        f"Failed to mount '{source_of(scene, 'n')}' at '{target}': "
        "the source is a directory but the target is not one\n"
    )


@pytest.mark.root
@needs_root
@pytest.mark.parametrize(
    ("target", "problem"),
    [("relative/data", "it is not an absolute path"), ("/tmp/../data", "it has a '..' component")],
)
def test_a_target_that_is_not_a_plain_absolute_path_exits_125(
    tmp_path: Path, target: str, problem: str
) -> None:
    scene = Scene(tmp_path, docker_volume("d", "n", "data"))
    scene.launch_info.mounts[0].target = target
    assert scene.launched() == (
        f"Failed to mount '{source_of(scene, 'n')}' at '{target}': {problem}\n"
    )
