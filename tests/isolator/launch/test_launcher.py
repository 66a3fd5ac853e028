"""The launcher applies a launch info in a mount namespace of its own, never on the host.

Every test checks that the host's mount table is the same before and after it (and, where a
volume is mounted, while the launched command runs) and that no process it started is left.
Tests that mount need root; they run as root in CI and are skipped otherwise.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.launcher import (
    EXIT_COMMAND_NOT_FOUND,
    EXIT_LAUNCH_FAILURE,
    LaunchError,
    apply_launch_info,
    launch,
    launcher_command,
    run,
)
from isolator.protos import CommandInfo, ContainerLaunchInfo
from tests.support.hygiene import mount_table

TIMEOUT = 10.0
PATH = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
CONTENT = "hello from the volume"

pytestmark = pytest.mark.usefixtures("host_unchanged")

# Mounting needs root: CI runs as root, elsewhere these tests are skipped.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, Path]:
    """A source directory with a file in it and an empty mount point for it."""
    source = tmp_path / "source"
    target = tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "hello.txt").write_text(CONTENT)
    return source, target


def _mounts_info(source: Path, target: Path, read_only: bool) -> ContainerLaunchInfo:
    """What the isolator's ``_prepare`` returns."""
    launch_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    launch_info.mounts.add(
        source=str(source),
        target=str(target),
        flags=MS_BIND | MS_REC | (MS_RDONLY if read_only else 0),
    )
    return launch_info


def _pre_exec_info(source: Path, target: Path, read_only: bool) -> ContainerLaunchInfo:
    """The isolator's older form: ``mount`` commands run before the task."""
    launch_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    launch_info.pre_exec_commands.add(
        shell=False, value="mount", arguments=["mount", "-n", "--rbind", str(source), str(target)]
    )
    if read_only:
        launch_info.pre_exec_commands.add(
            shell=False,
            value="mount",
            arguments=["mount", "-n", "-o", "remount,bind,ro", str(target)],
        )
    return launch_info


def _mounts_without_namespace(source: Path, target: Path, read_only: bool) -> ContainerLaunchInfo:
    """Mounts but no CLONE_NEWNS: the launcher still mounts in a namespace of its own."""
    launch_info = _mounts_info(source, target, read_only)
    del launch_info.clone_namespaces[:]
    return launch_info


Style = Callable[[Path, Path, bool], ContainerLaunchInfo]
STYLES = pytest.mark.parametrize(
    "style",
    [_mounts_info, _pre_exec_info, _mounts_without_namespace],
    ids=["mounts", "pre_exec_commands", "mounts_without_clone_namespaces"],
)


def _read_until(process: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read the process's stdout up to ``marker``, waiting at most TIMEOUT for each chunk."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    while marker not in data:
        ready, _, _ = select.select([fd], [], [], TIMEOUT)
        assert ready, f"no {marker!r} from the launched command within {TIMEOUT}s: {data!r}"
        chunk = os.read(fd, 4096)
        assert chunk, f"the launched command closed its stdout before {marker!r}: {data!r}"
        data += chunk
    return data


# -- mounts ---------------------------------------------------------------------------------


@pytest.mark.root
@needs_root
@STYLES
def test_bind_mount_is_seen_inside_only(style: Style, volume: tuple[Path, Path]) -> None:
    source, target = volume
    host_mounts = mount_table()
    script = (
        'cat "$1/hello.txt" && echo && echo written > "$1/new.txt" && readlink /proc/self/ns/mnt'
        ' && echo ready && read line && echo "got $line"'
    )
    process = launch(
        style(source, target, False),
        ["sh", "-c", script, "sh", str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The command runs, with the volume mounted, until the test lets it go.
        before_go = _read_until(process, b"ready\n").decode()
        assert os.listdir(target) == []
        assert mount_table() == host_mounts
        out, err = process.communicate(b"go\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (process.returncode, err) == (0, b""), err.decode()
    content, namespace, _ = before_go.splitlines()
    assert content == CONTENT
    assert namespace != os.readlink("/proc/self/ns/mnt")
    assert out == b"got go\n"
    assert (source / "new.txt").read_text() == "written\n"
    assert os.listdir(target) == []


@pytest.mark.root
@needs_root
@STYLES
def test_read_only_mount_refuses_writes(style: Style, volume: tuple[Path, Path]) -> None:
    source, target = volume
    done = run(
        style(source, target, True),
        ["sh", "-c", 'cat "$1/hello.txt" && touch "$1/new.txt"', "sh", str(target)],
        timeout=TIMEOUT,
    )
    assert done.stdout.decode() == CONTENT
    assert done.returncode == 1
    assert os.strerror(errno.EROFS) in done.stderr.decode()
    assert not (source / "new.txt").exists()
    assert os.listdir(target) == []


@pytest.mark.root
@needs_root
def test_working_directory_and_environment_apply_inside_the_volume(
    volume: tuple[Path, Path],
) -> None:
    source, target = volume
    done = run(
        _mounts_info(source, target, False),
        ["sh", "-c", 'pwd && cat hello.txt && echo && echo "$FOO ${HOME-unset}"'],
        cwd=target,
        env={"PATH": PATH, "FOO": "bar"},
        timeout=TIMEOUT,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == f"{target}\n{CONTENT}\nbar unset\n"


@pytest.mark.root
@needs_root
def test_a_bad_source_fails_before_the_command(volume: tuple[Path, Path]) -> None:
    source, target = volume
    missing = source / "missing"
    done = run(
        _mounts_info(missing, target, False),
        ["touch", str(source / "ran")],
        timeout=TIMEOUT,
    )
    assert done.returncode == EXIT_LAUNCH_FAILURE
    assert done.stderr.decode() == (
        f"Failed to mount '{missing}' at '{target}': No such file or directory\n"
    )
    assert done.stdout == b""
    assert not (source / "ran").exists()


@pytest.mark.root
@needs_root
def test_a_failing_mount_command_fails_before_the_command(volume: tuple[Path, Path]) -> None:
    source, target = volume
    missing = source / "missing"
    done = run(
        _pre_exec_info(missing, target, False),
        ["touch", str(source / "ran")],
        timeout=TIMEOUT,
    )
    assert done.returncode == EXIT_LAUNCH_FAILURE
    first_line = done.stderr.decode().splitlines()[0]
    assert first_line.startswith(
        f"Failed to execute pre-exec command 'mount -n --rbind {missing} {target}': "
        "exited with status 32: mount: "
    ), first_line
    assert not (source / "ran").exists()


@pytest.mark.root
@needs_root
def test_a_failing_shell_command_shows_its_status_and_output() -> None:
    launch_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    launch_info.pre_exec_commands.add(value="echo oops >&2; exit 3")  # shell by default
    done = run(launch_info, ["echo", "ran"], timeout=TIMEOUT)
    assert (done.returncode, done.stdout) == (EXIT_LAUNCH_FAILURE, b"")
    assert done.stderr == (
        b"Failed to execute pre-exec command 'echo oops >&2; exit 3': exited with status 3: oops\n"
    )


# -- not root ---------------------------------------------------------------------------

NOT_ROOT = (
    "Cannot apply the launch info: creating a mount namespace and bind mounting volumes needs "
    "root (CAP_SYS_ADMIN) but the launcher runs as uid {uid}; run the launcher as root"
)


@pytest.mark.root
@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_an_unprivileged_launcher_says_it_needs_root(volume: tuple[Path, Path]) -> None:
    source, target = volume
    command = launcher_command(_mounts_info(source, target, False), ["echo", "ran"])
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (EXIT_LAUNCH_FAILURE, b"")
    assert done.stderr.decode() == NOT_ROOT.format(uid=65534) + "\n"


def test_apply_launch_info_refuses_before_unsharing_when_not_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unshare() -> None:
        raise AssertionError("must not unshare the test process's mount namespace")

    monkeypatch.setattr("isolator.launch.mounting._unshare_mount_namespace", unshare)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LaunchError) as raised:
        apply_launch_info(ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS]))
    assert str(raised.value) == NOT_ROOT.format(uid=1000)


# -- without a launch info and other failures ---------------------------------------------


def test_without_launch_info_the_command_just_runs(tmp_path: Path) -> None:
    done = run(
        None,
        ["sh", "-c", 'echo "$FOO ${HOME-unset}" && pwd && readlink /proc/self/ns/mnt'],
        cwd=tmp_path,
        env={"PATH": PATH, "FOO": "bar"},
        timeout=TIMEOUT,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    namespace = os.readlink("/proc/self/ns/mnt")
    assert done.stdout.decode() == f"bar unset\n{tmp_path}\n{namespace}\n"


def test_the_command_keeps_stdin_and_its_exit_status() -> None:
    done = run(
        None,
        [sys.executable, "-c", "import sys; sys.exit(len(sys.stdin.read()))"],
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0
    process = launch(None, ["sh", "-c", "read x; exit $x"], stdin=subprocess.PIPE)
    process.communicate(b"7\n", timeout=TIMEOUT)
    assert process.returncode == 7


def test_a_missing_command_exits_127() -> None:
    done = run(None, ["no-such-command-here"], timeout=TIMEOUT)
    assert done.returncode == EXIT_COMMAND_NOT_FOUND
    assert done.stderr == b"Failed to execute 'no-such-command-here': No such file or directory\n"


def test_a_missing_working_directory_is_a_launch_failure(tmp_path: Path) -> None:
    done = run(None, ["true"], cwd=tmp_path / "missing", timeout=TIMEOUT)
    assert done.returncode == EXIT_LAUNCH_FAILURE
    assert done.stderr.decode() == (
        f"Failed to change the working directory to '{tmp_path / 'missing'}': "
        "No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("launch_info", "unsupported"),
    [
        (ContainerLaunchInfo(rootfs="/rootfs"), "rootfs"),
        (
            ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS, 0x40000000]),
            "clone_namespaces (0x40000000)",
        ),
        (ContainerLaunchInfo(command=CommandInfo(value="true")), "command"),
    ],
    ids=["rootfs", "network_namespace", "command"],
)
def test_what_the_launcher_cannot_apply_is_refused(
    launch_info: ContainerLaunchInfo, unsupported: str
) -> None:
    with pytest.raises(LaunchError) as raised:
        launch(launch_info, ["true"])
    assert str(raised.value) == (
        f"Unsupported launch info: {unsupported}; this launcher applies only clone_namespaces "
        "(CLONE_NEWNS), mounts, pre_exec_commands and working_directory"
    )


def test_run_kills_the_command_on_timeout() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run(None, ["sleep", "60"], timeout=0.3)
